// node-coap CON PUT for test_coap_broker.py: PUT BODY to URL and print the
// response code (node-coap takes a separate response as well as a
// piggybacked one).  Usage: node coap_put.js URL BODY
'use strict';
const coap = require('coap');
const url = new URL(process.argv[2]);
const req = coap.request({
  hostname: url.hostname,
  port: parseInt(url.port, 10),
  pathname: decodeURIComponent(url.pathname),
  method: 'PUT',
  confirmable: true,
});
const timer = setTimeout(() => process.exit(2), 60000);
req.on('response', (res) => {
  process.stdout.write(res.code + '\n');
  clearTimeout(timer);
  setTimeout(() => process.exit(0), 100);
});
req.on('error', (e) => { console.error(e.message); process.exit(2); });
req.write(process.argv[3]);
req.end();
