// node-coap observer for test_coap_broker.py: observe URL, print each
// notification's payload on a line, stop after COUNT of them (the first
// response included) and deregister.  Usage: node coap_observe.js URL COUNT
'use strict';
const coap = require('coap');
const url = new URL(process.argv[2]);
const count = parseInt(process.argv[3], 10);
const req = coap.request({
  hostname: url.hostname,
  port: parseInt(url.port, 10),
  pathname: decodeURIComponent(url.pathname),
  observe: true,
});
let seen = 0;
const timer = setTimeout(() => process.exit(2), 30000);
req.on('response', (res) => {
  res.on('data', (chunk) => {
    process.stdout.write(chunk.toString() + '\n');
    if (++seen >= count) {
      clearTimeout(timer);
      res.close();
      setTimeout(() => process.exit(0), 200);
    }
  });
});
req.on('error', (e) => { console.error(e.message); process.exit(2); });
req.end();
