"""The http listener (protocol http): /metrics, /healthz, /readyz.

/metrics is checked with `promtool check metrics` (Debian's prometheus
package) and its counters against the traffic this test sends with
mosquitto_pub/_sub and paho-mqtt.  Hostile HTTP (huge headers, bodies, odd
methods, paths with .. and NUL) gets clear errors with bounded memory; a
slowloris on the HTTP port does not stop MQTT delivery (a canary client).
No timing assertions: every wait is bounded and only decides failure.
"""
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt

from moat_harness import (MOATD, Broker, BrokerTest, password_file_text,
                          proc_status_kib, wait_for)

TIMEOUT = 10.0
HTTP_LINE = re.compile(r"listening on 127\.0\.0\.1:(\d+) \((HTTPS?)\)")


def http_port(broker, scheme="HTTP"):
    for port, kind in HTTP_LINE.findall(broker.run_log()):
        if kind == scheme:
            return int(port)
    raise AssertionError("no %s listener in the log" % scheme)


def get(port, path="/metrics", auth=None, method="GET", headers=None,
        data=None, context=None, scheme="http"):
    """(status, headers, body) of one request; HTTP errors are answers."""
    req = urllib.request.Request("%s://127.0.0.1:%d%s" % (scheme, port, path),
                                 method=method, data=data,
                                 headers=dict(headers or {}))
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT,
                                    context=context) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def raw_http(port, data, timeout=TIMEOUT):
    """Send raw bytes, return what comes back until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def parse_metrics(text):
    """{'name{labels}': value} of the samples."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def promtool_check(testcase, text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    testcase.assertEqual(r.returncode, 0, "promtool:\n%s%s\n---\n%s"
                         % (r.stdout, r.stderr, text[:3000]))
    testcase.assertEqual(r.stdout + r.stderr, "", "promtool lint output")


class MetricsTests(BrokerTest):
    broker_config = "listener 0 127.0.0.1\nprotocol http\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.http = http_port(cls.broker)

    def scrape(self):
        status, headers, body = get(self.http)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith(
            "text/plain; version=0.0.4"))
        return body

    def test_promtool_clean(self):
        text = self.scrape()
        promtool_check(self, text)
        for family in ("moat_connections", "moat_sessions",
                       "moat_subscriptions", "moat_retained_messages",
                       "moat_retained_bytes", "moat_messages_received_total",
                       "moat_messages_sent_total", "moat_received_bytes_total",
                       "moat_sent_bytes_total", "moat_messages_dropped_total",
                       "moat_messages_expired_total", "moat_queued_messages",
                       "moat_inflight_messages",
                       "moat_connections_accepted_total",
                       "moat_connections_refused_total",
                       "moat_authentications_total",
                       "moat_acl_denials_total", "moat_limit_hits_total",
                       "moat_leak_findings_total",
                       "moat_worker_loop_duration_seconds",
                       "moat_memory_bytes", "moat_memory_limit_bytes"):
            self.assertIn("# TYPE %s " % family, text)

    def test_counters_follow_traffic(self):
        before = parse_metrics(self.scrape())
        topic = "metrics/count"
        n = 5
        sub = subprocess.Popen(
            ["mosquitto_sub", "-p", str(self.port), "-t", topic, "-q", "1",
             "-C", str(n), "-W", "20", "-i", "metrics-sub"],
            stdout=subprocess.PIPE, text=True)
        self.assertTrue(wait_for(lambda: parse_metrics(self.scrape()).get(
            "moat_subscriptions", 0) >= before.get("moat_subscriptions", 0)
            + 1, TIMEOUT))
        for i in range(n):
            subprocess.run(["mosquitto_pub", "-p", str(self.port), "-t",
                            topic, "-q", "1", "-m", "m%d" % i], check=True,
                           timeout=TIMEOUT)
        out, _ = sub.communicate(timeout=30)
        self.assertEqual(out.split(), ["m%d" % i for i in range(n)])
        after = parse_metrics(self.scrape())

        def delta(key):
            return after.get(key, 0) - before.get(key, 0)
        q1_in = 'moat_messages_received_total{protocol="mqtt",qos="1"}'
        q1_out = 'moat_messages_sent_total{protocol="mqtt",qos="1"}'
        self.assertEqual(delta(q1_in), n)
        self.assertEqual(delta(q1_out), n)
        self.assertEqual(delta(
            'moat_messages_received_total{protocol="mqtt",qos="0"}'), 0)
        self.assertEqual(delta(
            'moat_connections_accepted_total{protocol="mqtt"}'), n + 1)
        # Each PUBLISH carries at least topic and payload.
        self.assertGreaterEqual(delta(
            'moat_received_bytes_total{protocol="mqtt"}'),
            n * (len(topic) + 2))
        self.assertGreaterEqual(delta(
            'moat_sent_bytes_total{protocol="mqtt"}'), n * (len(topic) + 2))
        self.assertEqual(after["moat_clients_connected"],
                         before["moat_clients_connected"])

    def test_paho_qos2_and_leak_counted(self):
        before = parse_metrics(self.scrape())
        c = mqtt.Client(client_id="metrics-paho",
                        protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            infos = [c.publish("metrics/leak", "mail me at alice@example.com",
                               qos=2)]
            infos.append(c.publish("metrics/plain", "21.5", qos=0))
            for info in infos:
                info.wait_for_publish(TIMEOUT)
        finally:
            c.disconnect()
            c.loop_stop()
        key2 = 'moat_messages_received_total{protocol="mqtt",qos="2"}'
        key0 = 'moat_messages_received_total{protocol="mqtt",qos="0"}'
        leak = 'moat_leak_findings_total{category="email",action="alert"}'
        self.assertTrue(wait_for(lambda: parse_metrics(self.scrape()).get(
            key0, 0) >= before.get(key0, 0) + 1, TIMEOUT))
        after = parse_metrics(self.scrape())
        self.assertEqual(after[key2] - before[key2], 1)
        self.assertEqual(after[key0] - before[key0], 1)
        self.assertEqual(after[leak] - before[leak], 1)
        # The value never reaches the metrics (no topic or client labels).
        text = self.scrape()
        for secret in ("alice", "metrics/leak", "metrics-paho"):
            self.assertNotIn(secret, text)

    def test_health_and_ready(self):
        self.assertEqual(get(self.http, "/healthz")[:3:2], (200, "ok\n"))
        self.assertEqual(get(self.http, "/readyz")[:3:2], (200, "ready\n"))
        status, headers, _ = get(self.http, "/healthz", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")

    def test_bad_requests_get_clear_errors(self):
        self.assertEqual(get(self.http, "/nope")[0], 404)
        status, headers, _ = get(self.http, "/metrics", method="POST",
                                 data=b"x=1")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET, HEAD")
        for method in ("PUT", "DELETE", "OPTIONS", "TRACE", "BREW"):
            self.assertEqual(get(self.http, "/metrics", method=method)[0],
                             405, method)
        # A body on a GET is refused before it is read.
        self.assertEqual(get(self.http, "/metrics", data=b"a" * 100000,
                             method="GET")[0], 413)
        # Paths: dot-dot, escapes (%00, %2e), raw NUL and control bytes.
        for path in (b"/../metrics", b"/metrics/..", b"/metrics%00",
                     b"/%2e%2e/metrics", b"/metrics%00.txt"):
            out = raw_http(self.http, b"GET " + path +
                           b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (path, out))
        out = raw_http(self.http, b"GET /met\x00rics HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertRegex(out[:12], rb"^HTTP/1\.1 4\d\d")
        out = raw_http(self.http, b"\x16\x03\x01garbage\r\n\r\n")
        self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 400"), out)
        # Huge headers: one large, or many.
        status = get(self.http, "/metrics",
                     headers={"X-Big": "a" * 40000})[0]
        self.assertEqual(status, 431)
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100)
                        for i in range(400))
        out = raw_http(self.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" +
                       many + b"\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:100])

    def test_memory_bounded_under_big_requests(self):
        pid = self.broker.proc.pid
        # Warm up, then measure across many oversized requests.
        for _ in range(20):
            get(self.http, "/metrics", headers={"X-Big": "a" * 15000})
        base = proc_status_kib(pid)
        for i in range(300):
            get(self.http, "/x%d" % i, headers={"X-Big": "a" * 15000})
            raw_http(self.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100000000\r\n\r\n" + b"z" * 20000)
        grown = proc_status_kib(pid) - base
        self.assertLess(grown, 32 * 1024, "RSS grew by %d KiB" % grown)
        self.assertEqual(get(self.http, "/healthz")[0], 200)

    def canary(self, topic, n):
        """n QoS 1 messages through the broker: all must arrive."""
        got = []
        subscribed = threading.Event()
        done = threading.Event()
        sub = mqtt.Client(client_id="canary-sub", protocol=mqtt.MQTTv311)

        def on_message(client, userdata, msg):
            got.append(msg.payload)
            if len(got) == n:
                done.set()
        sub.on_message = on_message
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.connect("127.0.0.1", self.port)
        sub.loop_start()
        try:
            sub.subscribe(topic, qos=1)
            self.assertTrue(subscribed.wait(TIMEOUT))
            for i in range(n):
                subprocess.run(["mosquitto_pub", "-p", str(self.port), "-t",
                                topic, "-q", "1", "-m", "c%d" % i],
                               check=True, timeout=TIMEOUT)
            self.assertTrue(done.wait(TIMEOUT), "got %d of %d" % (len(got), n))
        finally:
            sub.disconnect()
            sub.loop_stop()
        self.assertEqual(got, [b"c%d" % i for i in range(n)])

    def test_slowloris_does_not_stop_mqtt(self):
        # Hold every HTTP connection the listener allows (and more), each
        # sending a header byte now and then.
        socks = []
        stop = threading.Event()
        for _ in range(80):
            try:
                s = socket.create_connection(("127.0.0.1", self.http),
                                             timeout=TIMEOUT)
                s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                socks.append(s)
            except OSError:
                break

        def drip():
            while not stop.wait(0.5):
                for s in list(socks):
                    try:
                        s.sendall(b"a")
                    except OSError:
                        socks.remove(s)
        t = threading.Thread(target=drip, daemon=True)
        t.start()
        try:
            self.assertGreaterEqual(len(socks), 16)
            self.canary("canary/slowloris", 50)
        finally:
            stop.set()
            t.join(5)
            for s in socks:
                s.close()
        # The HTTP side recovers once the slow clients are gone.
        def healthy():
            try:
                return get(self.http, "/healthz")[0] == 200
            except OSError:
                return False
        self.assertTrue(wait_for(healthy, TIMEOUT))


ADMIN_PW = "Adm1n-metrics-pass"
BOB_PW = "B0b-metrics-pass"


class AuthTests(unittest.TestCase):
    """A listener that is not anonymous: /metrics for administrators."""

    @classmethod
    def setUpClass(cls):
        files = {
            "passwd": password_file_text({"admin": ADMIN_PW, "bob": BOB_PW}),
            "acl": "user admin\ntopic read $SYS/#\n"
                   "user bob\ntopic readwrite bob/#\n",
        }
        cfg = ("allow_anonymous false\npassword_file @DIR@/passwd\n"
               "acl_file @DIR@/acl\nauth_backoff_initial 2s\n"
               "listener 0 127.0.0.1\nprotocol http\n")
        cls.broker = Broker(cfg, files=files).start()
        cls.http = http_port(cls.broker)

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.broker.dir.cleanup()

    def test_login_rules(self):
        status, headers, _ = get(self.http)
        self.assertEqual(status, 401)
        self.assertIn("Basic", headers["WWW-Authenticate"])
        self.assertEqual(get(self.http, auth=("bob", BOB_PW))[0], 403)
        status, _, body = get(self.http, auth=("admin", ADMIN_PW))
        self.assertEqual(status, 200)
        promtool_check(self, body)
        # Probes need no login and say nothing else.
        self.assertEqual(get(self.http, "/healthz")[:3:2], (200, "ok\n"))
        self.assertIn('security: acl denial: http user "bob"',
                      self.broker.read_log())

    def test_wrong_password_backs_off(self):
        self.assertEqual(get(self.http, auth=("mallory", "nope"))[0], 401)
        # The next attempt for the same user (and address) waits.
        self.assertEqual(get(self.http, auth=("mallory", "nope"))[0], 429)
        log = self.broker.read_log()
        self.assertIn('security: auth failure: http user "mallory"', log)
        self.assertIn('security: auth throttled: http user "mallory"', log)
        # An admin from the same address waits out the back-off too.
        self.assertTrue(wait_for(lambda: get(
            self.http, auth=("admin", ADMIN_PW))[0] == 200, TIMEOUT))
        m = parse_metrics(get(self.http, auth=("admin", ADMIN_PW))[2])
        self.assertGreaterEqual(
            m['moat_authentications_total{result="failure"}'], 1)
        self.assertGreaterEqual(
            m['moat_authentications_total{result="throttled"}'], 1)


class ConfigTests(unittest.TestCase):
    def check(self, text):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "moatd.conf")
            with open(path, "w") as f:
                f.write(text)
            return subprocess.run([MOATD, "-t", "-c", path],
                                  capture_output=True, text=True,
                                  timeout=TIMEOUT)

    def test_network_http_needs_tls_and_auth(self):
        r = self.check("listener 0 0.0.0.0\nprotocol http\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("reachable from the network without TLS", r.stderr)

    def test_client_certificates_refused_on_http(self):
        r = self.check("listener 0 127.0.0.1\nprotocol http\n"
                       "certfile a.crt\nkeyfile a.key\ncafile ca.crt\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not available on protocol http", r.stderr)

    def test_unknown_protocol(self):
        r = self.check("listener 0 127.0.0.1\nprotocol gopher\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected one of", r.stderr)


class TlsTests(unittest.TestCase):
    """protocol http with certfile: HTTPS (GnuTLS, in libmicrohttpd)."""

    def test_https_metrics(self):
        with tempfile.TemporaryDirectory() as pki:
            def openssl(*args):
                subprocess.run(["openssl"] + list(args), cwd=pki, check=True,
                               capture_output=True, timeout=60)
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key",
                    "-out", "srv.crt", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1")
            os.chmod(os.path.join(pki, "srv.key"), 0o600)
            cfg = ("listener 0 127.0.0.1\nprotocol http\ncertfile %s\n"
                   "keyfile %s\n" % (os.path.join(pki, "srv.crt"),
                                     os.path.join(pki, "srv.key")))
            with Broker(cfg) as b:
                port = http_port(b, "HTTPS")
                ctx = ssl.create_default_context(
                    cafile=os.path.join(pki, "srv.crt"))
                status, _, body = get(port, context=ctx, scheme="https")
                self.assertEqual(status, 200)
                promtool_check(self, body)
                # Plain HTTP on the HTTPS port gets no metrics.
                out = raw_http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                self.assertNotIn(b"moat_", out)


if __name__ == "__main__":
    unittest.main()
