"""A real browser speaks MQTT to moatd over WebSockets.

Headless Chromium (Debian `chromium`) loads a test page served on
loopback by this test; the page uses MQTT.js's browser bundle (copied at
test time from tests/js/node_modules, installed by scripts/npm-deps.sh:
no CDN) to subscribe and publish through moatd.  paho-mqtt on plain TCP
is the other end: it receives what the browser published and answers
with a message the browser must receive.  The page also tries a
WebSocket listener that does not list its Origin and must be refused.

The page writes its verdict into the DOM; Chromium's --dump-dom prints
the DOM once the page has loaded, and the page's last script is held by
the test server until the page has reported (or 30 s passed), so the
dump comes after the verdict.
"""
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.parse

import paho.mqtt.client as mqtt

from moat_harness import Broker, HOST, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUNDLE = os.path.join(ROOT, "tests", "js", "node_modules", "mqtt", "dist",
                      "mqtt.min.js")
CHROMIUM = shutil.which("chromium")

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>moat browser test</title>
<script src="/mqtt.min.js"></script></head>
<body><pre id="result">pending</pre>
<script>
'use strict';
const out = document.getElementById('result');
let refused = null, echoed = null;
function report() {
  if (refused === null || echoed === null) return;
  out.textContent = (refused && echoed ? 'PASS ' : 'FAIL ') +
    JSON.stringify({refused, echoed});
  fetch('/report?r=' + encodeURIComponent(out.textContent));
}
// 1. A listener that does not allow this page's Origin: refused.
const bad = mqtt.connect('ws://127.0.0.1:%(bad)d/mqtt',
  {reconnectPeriod: 0, connectTimeout: 5000, clientId: 'browser-bad'});
bad.on('connect', () => { refused = false; bad.end(); report(); });
bad.on('close', () => { if (refused === null) { refused = true; report(); } });
bad.on('error', () => {});
// 2. The allowed one: publish to paho, receive its answer.
const c = mqtt.connect('ws://127.0.0.1:%(good)d/mqtt',
  {reconnectPeriod: 0, protocolVersion: 5, clientId: 'browser-good'});
c.on('error', (e) => { echoed = false; out.textContent = 'FAIL ' + e; report(); });
c.on('message', (topic, payload) => {
  echoed = payload.toString() === 'answer to ' + navigator.userAgent.length;
  c.end(); report();
});
c.on('connect', () => {
  c.subscribe('browser/in', {qos: 1}, () => {
    c.publish('browser/out', 'ua ' + navigator.userAgent.length, {qos: 1});
  });
});
</script>
<script src="/wait.js"></script>
</body></html>
"""


class PageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def make_handler(page, bundle, reported):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, body, ctype):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = urllib.parse.urlparse(self.path)
            if path.path == "/":
                self.send(page, "text/html; charset=utf-8")
            elif path.path == "/mqtt.min.js":
                self.send(bundle, "application/javascript")
            elif path.path == "/report":
                q = urllib.parse.parse_qs(path.query)
                reported["result"] = q.get("r", [""])[0]
                reported["event"].set()
                self.send(b"ok", "text/plain")
            elif path.path == "/wait.js":
                reported["event"].wait(30)
                self.send(b"", "application/javascript")
            else:
                self.send_error(404)
    return Handler


@unittest.skipUnless(CHROMIUM and os.path.exists(BUNDLE),
                     "needs chromium and MQTT.js (scripts/deps.sh)")
class BrowserTest(unittest.TestCase):
    def test_chromium_mqttjs_over_websockets(self):
        http_port = free_port()
        origin = "http://127.0.0.1:%d" % http_port
        config = ("allow_anonymous true\n"
                  "listener 0 127.0.0.1\nprotocol websockets\n"
                  "websockets_origin %s\n"
                  "listener 0 127.0.0.1\nprotocol websockets\n" % origin)
        with Broker(config) as b:
            good, bad = b.ws_ports
            with open(BUNDLE, "rb") as f:
                bundle = f.read()
            page = (PAGE % {"good": good, "bad": bad}).encode()
            reported = {"event": threading.Event(), "result": None}
            srv = PageServer((HOST, http_port),
                             make_handler(page, bundle, reported))
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            paho = mqtt.Client(client_id="paho-browser-peer",
                               protocol=mqtt.MQTTv311)

            def on_message(c, u, m):
                n = m.payload.decode().split()[-1]
                c.publish("browser/in", "answer to " + n, qos=1)
            paho.on_message = on_message
            paho.connect(HOST, b.port)
            paho.subscribe("browser/out", 1)
            paho.loop_start()
            try:
                dom = self.run_chromium("http://127.0.0.1:%d/" % http_port)
            finally:
                paho.disconnect()
                paho.loop_stop()
                srv.shutdown()
                srv.server_close()
            log = b.read_log()
        self.assertIn('<pre id="result">PASS ', dom, dom[-2000:] + log[-3000:])
        self.assertTrue(reported["result"].startswith("PASS"))
        self.assertIn("client browser-good connected from 127.0.0.1", log)
        self.assertIn("Origin not allowed", log)

    def run_chromium(self, url):
        with tempfile.TemporaryDirectory(prefix="moat-chromium-") as prof:
            r = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + prof, "--dump-dom", url],
                capture_output=True, text=True, timeout=90)
        return r.stdout


if __name__ == "__main__":
    unittest.main()
