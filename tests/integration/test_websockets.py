"""MQTT over WebSockets (RFC 6455; MQTT 5.0 and 3.1.1 §6) in moatd.

Real clients: MQTT.js (npm `mqtt`, installed by scripts/npm-deps.sh) in
Node.js over ws:// and wss:// with MQTT 3.1.1 and 5, and paho-mqtt with
transport="websockets".  Raw tests check the handshake (accept key,
sub-protocol, path, Origin rules) and the framing: MQTT packets split
across frames and several in one frame, fragmented messages, ping/pong,
the close handshake and the close codes of protocol errors.  The hostile
catalogue is in test_hostile.py; the browser test in test_browser.py.
"""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt

from moat_harness import (MOAT, Broker, BrokerTest, HOST, connect_packet,
                          publish_packet,
                          raw_connect, subscribe_packet, wait_for,
                          ws_binary, ws_close_frame, ws_connect, ws_frame,
                          ws_read_response, ws_request)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
JS = os.path.join(ROOT, "tests", "js")
NODE = shutil.which("node")
PKI = None


def have_mqttjs():
    return NODE and os.path.isdir(os.path.join(JS, "node_modules", "mqtt"))


def openssl(*args):
    subprocess.run(["openssl"] + list(args), cwd=PKI, check=True,
                   capture_output=True, timeout=60)


def setUpModule():
    """A throw-away CA and a server certificate for 127.0.0.1."""
    global PKI, _TMP
    _TMP = tempfile.TemporaryDirectory(prefix="moat-ws-pki-")
    PKI = _TMP.name
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("genpkey", *ec, "-out", "ca.key")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days",
            "2", "-subj", "/CN=moat ws test CA", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("genpkey", *ec, "-out", "server.key")
    openssl("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1",
            "-out", "server.csr")
    with open(os.path.join(PKI, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
            "ca.key", "-set_serial", "7", "-days", "2", "-sha256",
            "-extfile", "server.ext", "-out", "server.crt")


def tearDownModule():
    _TMP.cleanup()


def pki_file(name):
    with open(os.path.join(PKI, name)) as f:
        return f.read()


class WsTest(BrokerTest):
    """One broker: MQTT on TCP, ws on /mqtt, wss, and ws on /custom with
    an Origin allowlist."""
    broker_config = """allow_anonymous true
listener 0 127.0.0.1
protocol websockets
listener 0 127.0.0.1
protocol websockets
certfile @DIR@/server.crt
keyfile @DIR@/server.key
listener 0 127.0.0.1
protocol websockets
websockets_path /custom
websockets_origin http://allowed.example,http://127.0.0.1:8080
listener 0 127.0.0.1
protocol websockets
websockets_trusted_proxy ::1,127.0.0.1
max_packet_size 400000
"""

    @classmethod
    def setUpClass(cls):
        cls.broker_files = {"server.crt": pki_file("server.crt"),
                            "server.key": pki_file("server.key")}
        super().setUpClass()
        cls.ws, cls.custom, cls.proxied = cls.broker.ws_ports
        cls.wss = cls.broker.wss_ports[0]

    def ctx(self):
        c = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
        return lambda s: c.wrap_socket(s, server_hostname="127.0.0.1")

    # ---- real clients --------------------------------------------------

    def mqttjs(self, url, version, ca=None):
        args = [NODE, os.path.join(JS, "ws_pubsub.js"), url, str(version)]
        if ca:
            args.append(ca)
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(json.loads(r.stdout.splitlines()[-1])["ok"])

    def test_moat_pub_sub_over_ws_and_wss(self):
        # moat's own clients: --ws and ws:// / wss:// URLs (the TLS
        # listener's certificate names 127.0.0.1), v3.1.1 and v5, and the
        # path of a listener that serves /custom
        ca = os.path.join(PKI, "ca.crt")
        cases = (
            ("ws v3", ["--ws", "-h", "127.0.0.1", "-p", str(self.ws)],
             ["-L", "ws://127.0.0.1:%d/moat/ws3" % self.ws], "moat/ws3"),
            ("wss v5", ["--ws", "-h", "127.0.0.1", "-p", str(self.wss),
                        "--cafile", ca, "-V", "5"],
             ["-L", "wss://127.0.0.1:%d/moat/wss5" % self.wss, "--cafile",
              ca, "-V", "5"], "moat/wss5"),
            ("custom path", ["--ws", "--ws-path", "/custom", "-h",
                             "127.0.0.1", "-p", str(self.custom)],
             ["-L", "ws://127.0.0.1:%d/moat/custom" % self.custom,
              "--ws-path", "/custom"], "moat/custom"),
        )
        for name, sub_args, pub_args, topic in cases:
            with self.subTest(name):
                sub = subprocess.Popen(
                    [MOAT, "sub"] + sub_args + ["-t", topic, "-C", "1",
                                                "-W", "20", "-v"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
                try:
                    # publish until the subscriber (-C 1) has one
                    def delivered():
                        r = subprocess.run(
                            [MOAT, "pub"] + pub_args + ["-m", "over-ws",
                                                        "-q", "1"],
                            capture_output=True, text=True, timeout=30)
                        self.assertEqual(r.returncode, 0, r.stderr)
                        return sub.poll() is not None
                    self.assertTrue(wait_for(delivered, 20, 0.3))
                    out, err = sub.communicate(timeout=30)
                    self.assertEqual(sub.returncode, 0, err)
                    self.assertEqual(out.strip(), "%s over-ws" % topic)
                finally:
                    if sub.poll() is None:
                        sub.kill()
                        sub.communicate()
        # a path the listener does not serve: refused, exit 1
        r = subprocess.run([MOAT, "pub", "--ws", "--ws-path", "/nope", "-h",
                            "127.0.0.1", "-p", str(self.ws), "-t", "x",
                            "-m", "y"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("WebSocket", r.stderr)

    @unittest.skipUnless(have_mqttjs(), "MQTT.js not installed "
                         "(scripts/npm-deps.sh)")
    def test_mqttjs_ws(self):
        for v in (4, 5):
            with self.subTest(version=v):
                self.mqttjs("ws://127.0.0.1:%d/mqtt" % self.ws, v)
        self.assertIn("over WebSocket (protocol 5", self.broker.read_log())

    @unittest.skipUnless(have_mqttjs(), "MQTT.js not installed "
                         "(scripts/npm-deps.sh)")
    def test_mqttjs_wss(self):
        for v in (4, 5):
            with self.subTest(version=v):
                self.mqttjs("wss://127.0.0.1:%d/mqtt" % self.wss, v,
                            os.path.join(PKI, "ca.crt"))
        self.assertIn("over WebSocket/TLS (protocol 4",
                      self.broker.read_log())

    def paho_roundtrip(self, port, tls, version):
        got, ready = [], threading.Event()
        sub = mqtt.Client(client_id="paho-ws-sub-%d-%d" % (port, version),
                          transport="websockets", protocol=version)
        pub = mqtt.Client(client_id="paho-ws-pub-%d-%d" % (port, version),
                          transport="websockets", protocol=version)
        for c in (sub, pub):
            if tls:
                c.tls_set(ca_certs=os.path.join(PKI, "ca.crt"))
        sub.on_message = lambda c, u, m: (got.append(m.payload),
                                          ready.set())
        sub.connect(HOST, port)
        sub.loop_start()
        try:
            r = sub.subscribe("paho/ws", 1)
            self.assertTrue(wait_for(lambda: sub.is_connected()))
            pub.connect(HOST, port)
            pub.loop_start()
            info = pub.publish("paho/ws", b"p" * 70000, qos=1)
            info.wait_for_publish(5)
            self.assertTrue(ready.wait(5))
            self.assertEqual(got[0], b"p" * 70000)
            pub.disconnect()
            pub.loop_stop()
        finally:
            sub.disconnect()
            sub.loop_stop()
        del r

    def test_paho_ws_and_wss(self):
        for port, tls in ((self.ws, False), (self.wss, True)):
            for v in (mqtt.MQTTv311, mqtt.MQTTv5):
                with self.subTest(tls=tls, version=v):
                    self.paho_roundtrip(port, tls, v)

    # ---- handshake -------------------------------------------------------

    def handshake(self, port=None, **kw):
        s = raw_connect(port or self.ws)
        s.sendall(ws_request(**kw))
        status, headers, _ = ws_read_response(s)
        s.close()
        return status, headers

    def test_subprotocols(self):
        self.assertEqual(self.handshake(protocol="mqtt")[1]
                         ["sec-websocket-protocol"], "mqtt")
        self.assertEqual(self.handshake(protocol="chat, mqttv3.1")[1]
                         ["sec-websocket-protocol"], "mqttv3.1")
        self.assertEqual(self.handshake(protocol="chat")[0], 400)
        self.assertEqual(self.handshake(protocol=None)[0], 400)

    def test_path(self):
        self.assertEqual(self.handshake(path="/other")[0], 404)
        self.assertEqual(self.handshake(path="/mqtt?x=1")[0], 101)
        self.assertEqual(self.handshake(self.custom, path="/custom")[0], 101)
        self.assertEqual(self.handshake(self.custom, path="/mqtt")[0], 404)

    def test_origin_rules(self):
        # None configured: browsers (an Origin) are refused ...
        self.assertEqual(self.handshake(origin="http://evil.example")[0],
                         403)
        # ... clients without Origin, or naming the broker itself, are not.
        self.assertEqual(self.handshake()[0], 101)
        self.assertEqual(self.handshake(
            origin="https://127.0.0.1:%d" % self.ws,
            host="127.0.0.1:%d" % self.ws)[0], 101)
        self.assertEqual(self.handshake(
            origin="https://127.0.0.1:%d" % self.ws)[0], 403)
        c = self.custom
        self.assertEqual(self.handshake(c, path="/custom",
                                        origin="http://allowed.example")[0],
                         101)
        self.assertEqual(self.handshake(c, path="/custom",
                                        origin="HTTP://Allowed.Example")[0],
                         101)
        self.assertEqual(self.handshake(c, path="/custom",
                                        origin="http://allowed.example.evil")
                         [0], 403)
        self.assertIn("Origin not allowed", self.broker.read_log())

    def test_version_and_key(self):
        s = raw_connect(self.ws)
        s.sendall(ws_request().replace(b"Version: 13", b"Version: 8"))
        status, headers, _ = ws_read_response(s)
        self.assertEqual((status, headers.get("sec-websocket-version")),
                         (426, "13"))
        self.assertEqual(self.handshake(key=b"")[0], 400)
        self.assertEqual(self.handshake(key=b"c2hvcnQ=")[0], 400)

    def test_forwarded_for_only_from_trusted_proxies(self):
        fwd = b"X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n"
        for port, cid in ((self.proxied, "ws-fwd-trusted"),
                          (self.ws, "ws-fwd-untrusted")):
            ws = ws_connect(port, extra=fwd)
            ws.send(ws_binary(connect_packet(cid)))
            self.assertEqual(ws.read_packet()[0], 0x20)
            ws.send(ws_binary(b"\xe0\x00"))
            ws.s.close()
        log = self.broker.read_log()
        self.assertRegex(log, r"client ws-fwd-trusted connected from "
                         r"127\.0\.0\.1:\d+ \(X-Forwarded-For 203\.0\.113\.9\)"
                         r" over WebSocket")
        self.assertRegex(log, r"client ws-fwd-untrusted connected from "
                         r"127\.0\.0\.1:\d+ over WebSocket")

    # ---- framing ---------------------------------------------------------

    def session(self, cid, port=None, wrap=None):
        ws = ws_connect(port or self.ws, wrap=wrap)
        c = connect_packet(cid)
        # A CONNECT split across two frames.
        ws.send(ws_binary(c[:5]) + ws_binary(c[5:]))
        first, body = ws.read_packet()
        self.assertEqual((first, body[1]), (0x20, 0))
        return ws

    def test_split_and_coalesced_packets(self):
        sub = self.session("ws-raw-sub")
        pub = self.session("ws-raw-pub")
        sub.send(ws_binary(subscribe_packet(1, [("raw/#", 0)])))
        self.assertEqual(sub.read_packet()[0], 0x90)
        # Three PUBLISHes in one frame, then one in three frames, then a
        # fragmented message (binary + continuation + final continuation).
        three = b"".join(publish_packet("raw/%d" % i, b"m%d" % i)
                         for i in range(3))
        pub.send(ws_binary(three))
        p = publish_packet("raw/3", b"m3")
        pub.send(ws_binary(p[:2]) + ws_binary(p[2:4]) + ws_binary(p[4:]))
        p = publish_packet("raw/4", b"m4" * 100)
        pub.send(ws_frame(0x2, p[:3], fin=False) +
                 ws_frame(0x0, p[3:50], fin=False) +
                 ws_frame(0x9, b"between") +  # control inside a message
                 ws_frame(0x0, p[50:], fin=True))
        for i in range(5):
            first, body = sub.read_packet()
            self.assertEqual(first, 0x30)
            self.assertIn(b"raw/%d" % i, body)
        self.assertIn((0xA, b"between"), pub.control or
                      [self.pong_of(pub)])
        pub.send(ws_close_frame(1000))
        self.assertEqual(pub.close_code(), 1000)
        sub.send(ws_close_frame(1001, b"bye"))
        self.assertEqual(sub.close_code(), 1001)
        pub.s.close()
        sub.s.close()

    def pong_of(self, ws):
        fin, op, payload = ws.frame()
        return op, payload

    def test_ping_pong(self):
        ws = self.session("ws-ping")
        ws.send(ws_frame(0x9, b"abc"))
        self.assertEqual(self.pong_of(ws), (0xA, b"abc"))
        ws.send(ws_frame(0xA, b"unsolicited"))  # ignored
        ws.send(ws_binary(b"\xc0\x00"))  # PINGREQ
        self.assertEqual(ws.read_packet(), (0xD0, b""))
        ws.s.close()

    def test_wss_raw(self):
        ws = self.session("ws-tls-raw", self.wss, self.ctx())
        ws.send(ws_frame(0x9, b"t"))
        self.assertEqual(self.pong_of(ws), (0xA, b"t"))
        ws.send(ws_close_frame(1000))
        self.assertEqual(ws.close_code(), 1000)

    def close_code_after(self, data, connect=True):
        ws = self.session("ws-err") if connect else ws_connect(self.ws)
        ws.send(data)
        try:
            return ws.close_code()
        finally:
            ws.s.close()

    def test_protocol_errors_close_with_codes(self):
        cases = [
            ("text frame", ws_frame(0x1, b"hi"), 1003),
            ("unmasked", ws_frame(0x2, b"\xc0\x00", mask=False), 1002),
            ("reserved opcode", ws_frame(0x3, b""), 1002),
            ("reserved bit", ws_frame(0x2, b"\xc0\x00", rsv=4), 1002),
            ("long ping", ws_frame(0x9, b"x" * 126), 1002),
            ("fragmented ping", ws_frame(0x9, b"x", fin=False), 1002),
            ("stray continuation", ws_frame(0x0, b"x"), 1002),
            ("2^63 length", ws_frame(0x2, b"", length=1 << 63), 1002),
            ("over max_packet_size", ws_frame(0x2, b"", length=400001),
             1009),
            ("bad close code", ws_frame(0x8, b"\x03\xe4"), 1002),
        ]
        for name, data, code in cases:
            with self.subTest(name):
                self.assertEqual(self.close_code_after(data), code)
        self.assertIn("websocket refused", self.broker.read_log())

    def test_mqtt_error_then_normal_close(self):
        # An MQTT protocol error ends the WebSocket with a close frame too.
        self.assertEqual(self.close_code_after(ws_binary(b"\x10\x00"),
                                               connect=False), 1000)


class WsConfigTest(unittest.TestCase):
    def refused(self, config, message):
        b = Broker(config)
        try:
            with self.assertRaisesRegex(RuntimeError, message):
                b.start()
        finally:
            b.dir.cleanup()

    def test_bad_directives_refused(self):
        self.refused("listener 0 127.0.0.1\nprotocol websockets\n"
                     "websockets_path mqtt\n", "must start with '/'")
        self.refused("listener 0 127.0.0.1\nprotocol websockets\n"
                     "websockets_trusted_proxy proxy.example\n",
                     "numeric IPv4 or IPv6")

    def test_plain_ws_on_network_address_refused(self):
        # The rules of MQTT listeners: TLS and authentication, or refusal.
        self.refused("listener 0 0.0.0.0\nprotocol websockets\n",
                     "without TLS")


if __name__ == "__main__":
    unittest.main()
