// MQTT.js (npm "mqtt") over ws:// or wss:// through moatd: a subscriber
// and a publisher; QoS 0 and 1, a payload larger than one WebSocket frame
// of ours.  Prints one JSON line; exit status 0 when every message came
// back intact.  Bounded: gives up after 15 s.
//   node ws_pubsub.js URL VERSION [CAFILE]
'use strict';
const mqtt = require('mqtt');
const fs = require('fs');

const [url, version, cafile] = process.argv.slice(2);
const opts = { protocolVersion: Number(version), reconnectPeriod: 0,
	       connectTimeout: 5000, clean: true };
if (cafile) opts.ca = fs.readFileSync(cafile);
const topic = 'ws/' + process.pid + '/' + version;
const payloads = [Buffer.from('hello'), Buffer.alloc(300 * 1024, 7),
		  Buffer.from('ünïcode ✓')];

let finished = false;
function done(ok, detail) {
	if (finished) return;
	finished = true;
	console.log(JSON.stringify({ ok, detail }));
	process.exit(ok ? 0 : 1);
}
setTimeout(() => done(false, 'timeout'), 15000);

const sub = mqtt.connect(url, { ...opts, clientId: 'js-sub-' + version });
const got = [];
sub.on('error', (e) => done(false, 'sub: ' + e.message));
sub.on('message', (t, p) => {
	got.push(p);
	if (got.length < payloads.length) return;
	const ok = payloads.every((want, i) => want.equals(got[i]));
	// A clean end: DISCONNECT, the WebSocket close handshake, no error.
	sub.end(false, () => done(ok, ok ? 'received ' + got.length
					  : 'payload mismatch'));
});
sub.on('connect', () => {
	sub.subscribe(topic, { qos: 1 }, (err) => {
		if (err) return done(false, 'subscribe: ' + err.message);
		const pub = mqtt.connect(url, { ...opts,
						clientId: 'js-pub-' + version });
		pub.on('error', (e) => done(false, 'pub: ' + e.message));
		pub.on('connect', () => {
			let n = 0;
			for (const p of payloads)
				pub.publish(topic, p, { qos: n++ % 2 ? 0 : 1 });
			pub.end();
		});
	});
});
