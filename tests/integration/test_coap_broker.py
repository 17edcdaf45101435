"""CoAP in moatd (protocol coap): libcoap's coap-client-openssl and
coap-client-gnutls and `moat coap` against the broker, with mosquitto_pub
/ mosquitto_sub (MQTT 3.1.1 and 5) on the same topics; ACLs both ways;
block-wise 10 KiB both ways; Observe for 100 notifications;
notifications larger than one block (3 KB, 10 KB, exact and wildcard,
over DTLS too) received whole; hostile
datagrams, Size1 of 1 GiB, message-id replay, reassembly and observer
floods (each with a legitimate client checked alongside); the
amplification limit with spoofed sources (coap_spoof_check.py in a
network namespace); kill -9 with persistence."""
import os
import socket
import subprocess
import tempfile
import time
import unittest

from moat_harness import Broker, BrokerTest, proc_status_kib, wait_for
from test_hostile import SANITIZED  # RSS bounds do not apply under ASan
from test_coap_client import (ACK, CON, NON, RST, coap_build, coap_parse,
                              make_certs, opt, uint)

MOAT = os.environ.get("MOAT_BIN", "../../build/moat")
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ("coap-client-openssl", "coap-client-gnutls")
T = 30

PUT, POST, GET, DELETE = 3, 2, 1, 4
URI_PATH, OBSERVE, CONTENT_FORMAT, BLOCK1, SIZE1 = 11, 6, 12, 27, 60
ETAG, BLOCK2, SIZE2 = 4, 23, 28


def run(args, data=None, timeout=T):
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def path_opts(path):
    return [(URI_PATH, s.encode()) for s in path.strip("/").split("/")]


class Udp:
    """A raw CoAP peer on loopback."""

    def __init__(self, port, bind=("127.0.0.1", 0)):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(bind)
        self.s.settimeout(5)
        self.to = ("127.0.0.1", port)

    def send(self, data):
        self.s.sendto(data, self.to)

    def recv(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recvfrom(70000)[0]
        except socket.timeout:
            return None

    def request(self, typ, code, mid, path, opts=(), payload=b"",
                token=b"\x01\x02"):
        self.send(coap_build(typ, code, mid, token,
                             list(opts) + path_opts(path), payload))
        d = self.recv()
        return coap_parse(d) if d else None

    def close(self):
        self.s.close()


class CoapBrokerBase(BrokerTest):
    """A broker with an MQTT and a CoAP listener (BrokerTest's checks at
    teardown: exit status, sanitizer reports)."""
    config = ""
    files = None

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker("listener 0 127.0.0.1\nprotocol coap\n" +
                            cls.config, files=cls.files).start()
        cls.mport = cls.broker.ports[0]
        cls.cport = cls.broker.ports[1]

    def uri(self, path):
        return "coap://127.0.0.1:%d%s" % (self.cport, path)

    def coap(self, client, *args, data=None):
        return run([client] + list(args), data=data)

    def sub(self, topic, count, version="mqttv311", extra=()):
        p = subprocess.Popen(
            ["mosquitto_sub", "-p", str(self.mport), "-t", topic, "-C",
             str(count), "-W", "20", "-V", version, "-q", "1"] +
            list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)  # subscribed (mosquitto_sub has no ready signal)
        return p

    def pub(self, topic, msg, version="mqttv311", qos=1, extra=()):
        rc, out, err = run(["mosquitto_pub", "-p", str(self.mport), "-t",
                            topic, "-m", msg, "-V", version, "-q",
                            str(qos)] + list(extra))
        self.assertEqual(rc, 0, err)


class TestInterop(CoapBrokerBase):

    def test_put_get_delete_each_client(self):
        for cl in CLIENTS:
            rc, out, err = self.coap(cl, "-m", "put", "-e", "v-" + cl,
                                     self.uri("/ps/i/" + cl))
            self.assertEqual(rc, 0, err)
            rc, out, err = self.coap(cl, "-m", "get", self.uri("/ps/i/" + cl))
            self.assertEqual(out.strip(), ("v-" + cl).encode())
            rc, out, err = self.coap(cl, "-m", "delete",
                                     self.uri("/ps/i/" + cl))
            self.assertEqual(rc, 0, err)
            rc, out, err = self.coap(cl, "-m", "get", self.uri("/ps/i/" + cl))
            self.assertIn(b"4.04", out + err.encode())

    def test_coap_put_reaches_mqtt_v311_and_v5(self):
        for version in ("mqttv311", "mqttv5"):
            for cl in CLIENTS:
                topic = "c2m/%s/%s" % (version, cl)
                s = self.sub(topic, 1, version, ["-v"])
                rc, _, err = self.coap(cl, "-m", "post", "-e", "hi " + cl,
                                       self.uri("/ps/" + topic))
                self.assertEqual(rc, 0, err)
                out, _ = s.communicate(timeout=T)
                self.assertEqual(out.decode().strip(),
                                 "%s hi %s" % (topic, cl))

    def test_content_format_to_mqtt5_content_type(self):
        s = self.sub("cf/json", 1, "mqttv5", ["-F", "%t|%p|%C"])
        rc, _, err = self.coap(CLIENTS[0], "-m", "put", "-t", "json", "-e",
                               '{"a":1}', self.uri("/ps/cf/json"))
        self.assertEqual(rc, 0, err)
        out, _ = s.communicate(timeout=T)
        self.assertEqual(out.decode().strip(),
                         'cf/json|{"a":1}|application/json')

    def test_mqtt_reaches_coap_observer(self):
        for version in ("mqttv311", "mqttv5"):
            topic = "m2c/" + version
            o = subprocess.Popen([MOAT, "coap", "observe", "-C", "4",
                                  "-W", "20", self.uri("/ps/m2c/%2B")],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            time.sleep(0.5)
            for i in range(3):
                self.pub(topic, "n%d" % i, version)
            out, err = o.communicate(timeout=T)
            lines = out.decode().split()
            self.assertEqual(lines[-3:], ["n0", "n1", "n2"], err)

    def test_libcoap_observe(self):
        for cl in CLIENTS:
            o = subprocess.Popen([cl, "-s", "4", "-m", "get",
                                  self.uri("/ps/lobs/" + cl)],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            time.sleep(0.5)
            for i in range(5):
                self.pub("lobs/" + cl, "<%d>" % i)
            out, _ = o.communicate(timeout=T)
            self.assertIn(b"<0><1><2><3><4>", out.replace(b"\n", b""))

    def test_node_coap_observe(self):
        js = os.path.join(HERE, "..", "js")
        self.assertTrue(os.path.exists(os.path.join(
            js, "node_modules", "coap")), "run scripts/npm-deps.sh (node-coap)")
        o = subprocess.Popen(["node", os.path.join(js, "coap_observe.js"),
                              self.uri("/ps/js/obs"), "4"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        for i in range(3):
            self.pub("js/obs", "j%d" % i, "mqttv5")
        out, err = o.communicate(timeout=T)
        self.assertEqual(o.returncode, 0, err)
        self.assertEqual(out.split(), [b"j0", b"j1", b"j2"])

    def test_observe_100_notifications(self):
        o = subprocess.Popen([MOAT, "coap", "observe", "-C", "101", "-W",
                              "60", self.uri("/ps/hundred")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        data = "".join("m%d\n" % i for i in range(100))
        rc, _, err = run(["mosquitto_pub", "-p", str(self.mport), "-t",
                          "hundred", "-l", "-q", "1"], data=data.encode())
        self.assertEqual(rc, 0, err)
        out, err = o.communicate(timeout=90)
        got = out.decode().split()
        self.assertEqual(got[-100:], ["m%d" % i for i in range(100)], err)

    def test_libcoap_observe_100_notifications(self):
        for cl in CLIENTS:
            o = subprocess.Popen([cl, "-s", "10", "-m", "get",
                                  self.uri("/ps/hundred/" + cl)],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            time.sleep(1)  # registered (libcoap has no ready signal)
            data = "".join("<%d>\n" % i for i in range(100))
            rc, _, err = run(["mosquitto_pub", "-p", str(self.mport), "-t",
                              "hundred/" + cl, "-l", "-q", "1"],
                             data=data.encode())
            self.assertEqual(rc, 0, err)
            out, err = o.communicate(timeout=T)
            self.assertIn("".join("<%d>" % i for i in range(100)).encode(),
                          out.replace(b"\n", b""), err)

    def test_blockwise_10k_both_ways(self):
        body = os.urandom(7680).hex()[:10240].encode()
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            for cl in CLIENTS:
                s = self.sub("bw/" + cl, 1)
                rc, _, err = self.coap(cl, "-m", "put", "-b", "1024", "-f",
                                       f.name, self.uri("/ps/bw/" + cl))
                self.assertEqual(rc, 0, err)
                out, _ = s.communicate(timeout=T)
                self.assertEqual(out.strip(), body)
                rc, out, err = self.coap(cl, "-m", "get", "-b", "1024",
                                         self.uri("/ps/bw/" + cl))
                self.assertEqual(out.strip(), body)

    def test_accept_and_etag(self):
        u = Udp(self.cport)
        m = u.request(CON, PUT, 300, "/ps/acc", opts=[(CONTENT_FORMAT,
                                                      uint(50))],
                      payload=b'{"v":1}')
        self.assertEqual(m[1], 0x44)  # 2.04
        m = u.request(CON, GET, 301, "/ps/acc", opts=[(17, uint(0))])
        self.assertEqual(m[1], 0x86)  # 4.06: it is JSON
        m = u.request(CON, GET, 302, "/ps/acc", opts=[(17, uint(50))])
        self.assertEqual((m[1], m[5]), (0x45, b'{"v":1}'))
        self.assertEqual(opt(m[4], CONTENT_FORMAT), uint(50))
        etag = opt(m[4], 4)
        m = u.request(CON, GET, 303, "/ps/acc", opts=[(4, etag)])
        self.assertEqual((m[1], m[5]), (0x43, b""))  # 2.03 Valid
        u.close()

    def test_well_known_core_on_loopback(self):
        self.coap(CLIENTS[0], "-m", "put", "-e", "x", self.uri("/ps/wk/a b"))
        rc, out, err = self.coap(CLIENTS[0], "-m", "get",
                                 self.uri("/.well-known/core"))
        self.assertIn(b'</ps>;rt="core.ps"', out)
        self.assertIn(b"</ps/wk/a%20b>", out)

    def test_unknown_critical_option_and_proxy(self):
        u = Udp(self.cport)
        m = u.request(CON, GET, 100, "/ps/x", opts=[(9, b"z")])
        self.assertEqual((m[0], m[1], m[2]), (ACK, 0x82, 100))  # 4.02
        m = u.request(CON, GET, 101, "/ps/x",
                      opts=[(35, b"coap://example.org/")])
        self.assertEqual(m[1], 0xA5)  # 5.05
        m = u.request(CON, GET, 102, "/nowhere")
        self.assertEqual(m[1], 0x84)  # 4.04
        m = u.request(CON, 5, 103, "/ps/x")  # FETCH
        self.assertEqual(m[1], 0x85)  # 4.05
        u.send(coap_build(CON, 0, 104))  # ping
        self.assertEqual(coap_parse(u.recv())[:3], (RST, 0, 104))
        u.close()

    def test_no_response(self):
        """RFC 7967: only the classes the client names are suppressed; a
        CON request still gets its (Empty) ACK; errors it did not name
        are sent."""
        NR = 258
        s = self.sub("nr/#", 2, extra=["-v"])
        u = Udp(self.cport)
        u.send(coap_build(NON, POST, 600, b"n1", path_opts("/ps/nr/non") +
                          [(NR, uint(2))], b"quiet"))
        m = u.request(CON, POST, 601, "/ps/nr/con", opts=[(NR, uint(2))],
                      payload=b"acked")
        self.assertEqual(m[:4], (ACK, 0, 601, b""))  # Empty ACK only
        m = u.request(CON, POST, 602, "/ps/$SYS/x", opts=[(NR, uint(2))])
        self.assertEqual((m[0], m[1]), (ACK, 0x83))  # 4.03 still sent
        m = u.request(NON, GET, 603, "/ps/nr/none", opts=[(NR, uint(2))])
        self.assertEqual((m[0], m[1]), (NON, 0x84))  # 4.04: not named
        u.send(coap_build(NON, GET, 604, b"n4", path_opts("/ps/nr/none") +
                          [(NR, uint(8 | 16))]))
        self.assertIsNone(u.recv(1))  # 4.04 suppressed
        out, _ = s.communicate(timeout=T)
        self.assertEqual(sorted(out.decode().splitlines()),
                         ["nr/con acked", "nr/non quiet"])
        u.close()

    def test_wildcard_observe_gets_retained(self):
        """GET + Observe on a wildcard filter: the first response (2.05,
        Observe, no payload), then each matching retained value as a
        notification naming its topic (Location-Path), then live ones."""
        LOC = 8
        u = Udp(self.cport)
        for i, t in enumerate(("a", "b")):
            m = u.request(CON, PUT, 700 + i, "/ps/wr/" + t,
                          payload=t.upper().encode())
            self.assertEqual(m[1], 0x44)
        m = u.request(CON, GET, 710, "/ps/wr/%2B".replace("%2B", "+"),
                      opts=[(OBSERVE, b"")], token=b"wo")
        self.assertEqual((m[0], m[1], m[3], m[5]), (ACK, 0x45, b"wo", b""))
        self.assertIsNotNone(opt(m[4], OBSERVE))
        got = {}
        for _ in range(2):
            n = coap_parse(u.recv())
            self.assertEqual((n[1], n[3]), (0x45, b"wo"))
            loc = [v for k, v in n[4] if k == LOC]
            got[b"/".join(loc)] = n[5]
            if n[0] == CON:
                u.send(coap_build(ACK, 0, n[2]))
        self.assertEqual(got, {b"ps/wr/a": b"A", b"ps/wr/b": b"B"})
        self.pub("wr/c", "C")
        n = coap_parse(u.recv())
        self.assertEqual(([v for k, v in n[4] if k == LOC], n[5]),
                         ([b"ps", b"wr", b"c"], b"C"))
        if n[0] == CON:
            u.send(coap_build(ACK, 0, n[2]))
        # libcoap prints the retained values it is sent (wr/c was not
        # retained).
        o = subprocess.run(["coap-client-openssl", "-s", "2", "-m", "get",
                            self.uri("/ps/wr/%23")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=T)
        self.assertEqual(bytes(sorted(o.stdout.replace(b"\n", b""))), b"AB")
        u.close()

    def test_message_id_replay_publishes_once(self):
        s = self.sub("replay", 2, extra=["-W", "3"])
        u = Udp(self.cport)
        first = u.request(CON, POST, 7, "/ps/replay", payload=b"once")
        for _ in range(5):  # retransmissions and replays: same answer
            again = u.request(CON, POST, 7, "/ps/replay", payload=b"once")
            self.assertEqual(again, first)
        out, _ = s.communicate(timeout=T)
        self.assertEqual(out.split(), [b"once"])
        u.close()


def hexbody(n):
    """n bytes of text (hex digits: no whitespace for the clients to
    print)."""
    return os.urandom(n // 2 + 1).hex()[:n].encode()


def block2(num, szx=6):
    return (BLOCK2, uint(num << 4 | szx))


class TestLargeNotifications(CoapBrokerBase):
    """Notifications larger than one block (RFC 7959 §2.6, RFC 7641
    §3.4): the first block with Block2, Size2 and an ETag; the client
    fetches the rest with GET + Block2 (no Observe), served from the body
    moatd keeps per observation, on exact and wildcard paths."""
    OBSERVERS = [("libcoap-" + cl, [cl, "-s", "%d", "-m", "get"])
                 for cl in CLIENTS] + [("moat", [MOAT, "coap", "observe",
                                                 "-W", "%d"])]

    def observe(self, path, secs):
        procs = []
        for name, argv in self.OBSERVERS:
            args = [a % secs if a == "%d" else a for a in argv]
            procs.append((name, subprocess.Popen(
                args + [self.uri(path % name)], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)))
        return procs

    def publish(self, topic, body, retain=False):
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            rc, _, err = run(["mosquitto_pub", "-p", str(self.mport), "-t",
                              topic, "-f", f.name, "-q", "1"] +
                             (["-r"] if retain else []))
        self.assertEqual(rc, 0, err)

    def collect(self, procs, want):
        for name, o in procs:
            out, err = o.communicate(timeout=T)
            self.assertEqual(out.replace(b"\n", b""), want,
                             "%s: %s" % (name, err.decode(errors="replace")))

    def test_3k_and_10k_whole_exact_and_wildcard(self):
        bodies = [hexbody(3000), hexbody(10240), hexbody(3000),
                  hexbody(10240)]
        procs = (self.observe("/ps/big/%s/x", 9) +
                 self.observe("/ps/bigw/%s/%%2B", 9))
        time.sleep(1)  # registered (libcoap has no ready signal)
        # Non-retained, then retained; a second apart so that each is
        # fetched whole before the next supersedes it.
        for i, b in enumerate(bodies):
            for name, _ in self.OBSERVERS:
                self.publish("big/%s/x" % name, b, retain=i >= 2)
                self.publish("bigw/%s/x" % name, b, retain=i >= 2)
            time.sleep(1)
        self.collect(procs, b"".join(bodies))
        # New observers: the retained 10 KB value, block-wise, as the
        # registration's response (exact) or as a notification
        # (wildcard).
        procs = (self.observe("/ps/big/%s/x", 3) +
                 self.observe("/ps/bigw/%s/%%2B", 3))
        self.collect(procs, bodies[3])

    def test_superseded_between_blocks(self):
        """A newer notification between two blocks: the next block comes
        from it, with its ETag (the client restarts); the first body is
        not served any more."""
        u = Udp(self.cport)
        m = u.request(CON, GET, 1, "/ps/sup/x", opts=[(OBSERVE, b""),
                                                      block2(0, 5)],
                      token=b"ob")
        self.assertEqual(m[1], 0x45)
        first, second = hexbody(3000), hexbody(3000)
        etags = []
        for body in (first, second):
            self.publish("sup/x", body)
            n = coap_parse(u.recv())
            self.assertEqual((n[1], n[3], n[5]), (0x45, b"ob", body[:512]))
            self.assertEqual(opt(n[4], BLOCK2), uint(0x0D))  # 0, M, 512
            self.assertEqual(opt(n[4], SIZE2), uint(3000))
            etags.append(opt(n[4], ETAG))
            u.send(coap_build(ACK, 0, n[2]))
        self.assertNotEqual(etags[0], etags[1])
        # GET + Block2 without Observe, a new token: the newer body.
        m = u.request(CON, GET, 2, "/ps/sup/x", opts=[block2(1, 5)],
                      token=b"g1")
        self.assertEqual((m[1], m[5]), (0x45, second[512:1024]))
        self.assertEqual(opt(m[4], ETAG), etags[1])
        self.assertIsNone(opt(m[4], OBSERVE))
        last = u.request(CON, GET, 3, "/ps/sup/x", opts=[block2(5, 5)],
                         token=b"g2")
        self.assertEqual((last[1], last[5], opt(last[4], BLOCK2)),
                         (0x45, second[2560:], uint(5 << 4 | 5)))
        u.close()

    def test_coap_to_coap_notification(self):
        body = hexbody(5000)
        procs = self.observe("/ps/c2c/%s", 5)
        time.sleep(1)
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            for name, _ in self.OBSERVERS:
                rc, _, err = run([CLIENTS[0], "-m", "post", "-f", f.name,
                                  self.uri("/ps/c2c/" + name)])
                self.assertEqual(rc, 0, err)
        self.collect(procs, body)


class TestAcl(CoapBrokerBase):
    config = "acl_file @DIR@/acl\n"
    files = {"acl": "topic readwrite open/#\ntopic read ro/#\n"
                    "topic write wo/#\n"}

    def test_coap_publish_acl(self):
        s = self.sub("open/#", 1, extra=["-v"])
        rc, out, err = run([CLIENTS[0], "-m", "put", "-e", "no",
                            self.uri("/ps/ro/x")])
        self.assertIn(b"4.03", out + err.encode())
        rc, out, err = run([CLIENTS[0], "-m", "put", "-e", "yes",
                            self.uri("/ps/open/x")])
        out, _ = s.communicate(timeout=T)
        self.assertEqual(out.decode().strip(), "open/x yes")

    def test_coap_observe_acl(self):
        rc, out, err = run([CLIENTS[0], "-s", "1", "-m", "get",
                            self.uri("/ps/wo/x")])
        self.assertIn(b"4.03", out + err.encode())
        rc, out, err = run([CLIENTS[0], "-s", "1", "-m", "get",
                            self.uri("/ps/%23")])
        self.assertIn(b"4.03", out + err.encode())  # not the whole filter
        o = subprocess.Popen([MOAT, "coap", "observe", "-C", "2", "-W",
                              "20", self.uri("/ps/open/%2B")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        self.pub("ro/a", "r0")  # not writable by anonymous: dropped
        self.pub("wo/a", "r0")
        self.pub("open/a", "r1")
        out, err = o.communicate(timeout=T)
        self.assertEqual(out.split()[-1:], [b"r1"], err)


class TestHostile(CoapBrokerBase):
    config = "max_packet_size 65536\n"

    def rss(self):
        return proc_status_kib(self.broker.proc.pid)

    def legit(self):
        rc, out, err = run([CLIENTS[0], "-m", "put", "-e", "ok",
                            self.uri("/ps/legit")])
        self.assertEqual(rc, 0, err)
        rc, out, err = run([CLIENTS[0], "-m", "get", self.uri("/ps/legit")])
        self.assertEqual(out.strip(), b"ok")

    def test_malformed_catalogue(self):
        u = Udp(self.cport)
        before = self.rss()
        bad = [b"", b"\x40", b"\x40\x01\x00", b"\x80\x01\x00\x01",
               b"\x49\x01\x00\x01", b"\x41\x01\x00\x01",
               b"\x40\x01\x00\x01\xff", b"\x40\x01\x00\x01\xf0",
               b"\x40\x01\x00\x01\x0f", b"\x40\x01\x00\x01\xd1",
               b"\x40\x00\x00\x01\x01", b"\x40\x01\x00\x01\xb5abc",
               b"\x60\x45\x00\x09", b"\x40\x45\x00\x09"]
        for i in range(2000):
            u.send(bad[i % len(bad)] + os.urandom(i % 7))
        self.legit()
        wait_for(lambda: True)
        if not SANITIZED:
            self.assertLess(self.rss() - before, 8192)
        u.close()

    def test_size1_1gib_allocates_nothing(self):
        u = Udp(self.cport)
        before = self.rss()
        m = u.request(CON, PUT, 9, "/ps/huge",
                      opts=[(BLOCK1, uint(0x0E)), (SIZE1, uint(1 << 30))],
                      payload=b"x" * 1024)
        self.assertEqual(m[1], 0x8D)  # 4.13
        if not SANITIZED:
            self.assertLess(self.rss() - before, 4096)
        u.close()
        self.legit()

    def test_reassembly_flood(self):
        socks = [Udp(self.cport) for _ in range(50)]
        before = self.rss()
        for k in range(40):  # each peer: blocks up to max_packet_size
            for i, u in enumerate(socks):
                u.send(coap_build(CON, PUT, (k << 8) | i, b"\x01",
                                  path_opts("/ps/flood") +
                                  [(BLOCK1, uint(k << 4 | 0x0E))],
                                  b"y" * 1024))
            for u in socks:
                u.recv(timeout=2)
        last = socks[0].recv(timeout=0.2)
        self.legit()
        # 50 peers x 64 KiB at most, plus allocator slack
        if not SANITIZED:
            self.assertLess(self.rss() - before, 50 * 64 + 16384)
        for u in socks:
            u.close()

    def test_observer_flood_bounded(self):
        u = Udp(self.cport)
        codes = []
        for i in range(40):
            m = u.request(CON, GET, 1000 + i, "/ps/of/%d" % i,
                          opts=[(OBSERVE, b"")],
                          token=bytes([i, 1, 2, 3]))
            codes.append(opt(m[4], OBSERVE) is not None)
        self.assertEqual(sum(codes), 16)  # per peer; the rest plain GETs
        u.close()
        self.legit()

    def test_block_follow_ups_hostile(self):
        """Later-block GETs for a body never sent, block numbers out of
        range, and a flood of them from observers of a 60 KB
        notification: clear errors, memory bounded (one message, shared
        by all the observations that keep it)."""
        u = Udp(self.cport)
        for i, path in enumerate(("/ps/hb/none", "/ps/hb/+")):
            m = u.request(CON, GET, 10 + i, path, opts=[block2(1)])
            self.assertEqual(m[1], 0x84, path)  # 4.04
        socks = [Udp(self.cport) for _ in range(20)]
        for i, s in enumerate(socks):
            for j, path in enumerate(("/ps/hb/f", "/ps/hb/+")):
                m = s.request(CON, GET, 100 + j, path,
                              opts=[(OBSERVE, b"")], token=bytes([i, j]))
                self.assertIsNotNone(opt(m[4], OBSERVE))
        body = hexbody(60000)
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            rc, _, err = run(["mosquitto_pub", "-p", str(self.mport), "-t",
                              "hb/f", "-f", f.name])
            self.assertEqual(rc, 0, err)
        for s in socks:
            for _ in range(2):
                n = coap_parse(s.recv())
                self.assertEqual(opt(n[4], SIZE2), uint(60000))
                if n[0] == CON:
                    s.send(coap_build(ACK, 0, n[2]))
        before = self.rss()
        codes = {}
        for k in range(100):
            for i, s in enumerate(socks):
                num = (k * 7 + i) % 70 + 1  # 59 blocks: some beyond
                path = "/ps/hb/f" if k % 2 else "/ps/hb/+"
                s.send(coap_build(NON, GET, (k << 8) | i, bytes([k, i]),
                                  path_opts(path) + [block2(num)]))
            for s in socks:
                d = s.recv(timeout=2)
                if d:
                    m = coap_parse(d)
                    codes[m[1]] = codes.get(m[1], 0) + 1
        self.assertEqual(set(codes), {0x45, 0x80})  # 2.05, 4.00 beyond
        m = socks[0].request(CON, GET, 1, "/ps/hb/f",
                             opts=[(BLOCK2, uint(0xFFFFF << 4 | 6))])
        self.assertEqual(m[1], 0x80)
        m = socks[0].request(CON, GET, 2, "/ps/hb/f", opts=[block2(58)])
        self.assertEqual((m[1], m[5]), (0x45, body[58 * 1024:]))
        if not SANITIZED:
            self.assertLess(self.rss() - before, 8192)
        for s in socks:
            s.close()
        u.close()
        self.legit()

class TestLeak(CoapBrokerBase):
    config = ("leak_detection true\nleak_policy t/redact/# all redact\n"
              "leak_policy t/block/# credential block\n")
    SECRET = "hunter2"

    def test_redact_and_block(self):
        payload = '{"device": "pump-7", "password": "%s"}' % self.SECRET
        s = self.sub("t/#", 1, extra=["-v"])
        rc, out, err = run([CLIENTS[0], "-m", "put", "-e", payload,
                            self.uri("/ps/t/block/a")])
        self.assertIn(b"4.03", out + err.encode())
        rc, out, err = run([CLIENTS[0], "-m", "put", "-e", payload,
                            self.uri("/ps/t/redact/a")])
        self.assertEqual(rc, 0, err)
        out, _ = s.communicate(timeout=T)
        self.assertTrue(out.startswith(b"t/redact/a "), out)
        self.assertNotIn(self.SECRET.encode(), out)
        rc, out, err = run([CLIENTS[0], "-m", "get",
                            self.uri("/ps/t/redact/a")])
        self.assertNotIn(self.SECRET.encode(), out)
        log = self.broker.read_log()
        self.assertIn("leak: credential", log)
        self.assertIn("127.0.0.1:", log)  # the CoAP peer is named


class TestConfig(unittest.TestCase):

    def refused(self, config):
        b = Broker(config)
        with self.assertRaises(RuntimeError) as cm:
            b.start()
        b.dir.cleanup()
        return str(cm.exception)

    def test_plain_coap_on_network_refused(self):
        log = self.refused("listener 0 0.0.0.0\nprotocol coap\n")
        self.assertIn("plaintext CoAP", log)

    def test_anonymous_coap_on_network_refused(self):
        log = self.refused("listener 0 0.0.0.0\nprotocol coap\n"
                           "allow_insecure_listener true\n"
                           "allow_anonymous loopback\n")
        self.assertIn("plaintext CoAP has no credentials", log)

    def test_coaps_needs_credentials(self):
        log = self.refused("listener 0 127.0.0.1\nprotocol coaps\n")
        self.assertIn("protocol coaps needs psk_file", log)

    def test_network_coaps_needs_acl(self):
        log = self.refused("listener 0 0.0.0.0\nprotocol coaps\n"
                           "psk_file @DIR@/psk\n".replace(
                               "@DIR@", "/nonexistent"))
        self.assertIn("without an acl_file", log)


class TestSpoofedSource(unittest.TestCase):
    """A network listener (0.0.0.0, in a private network namespace that
    has only loopback) and spoofed 127.0.0.x sources."""

    def test_amplification_bounded(self):
        r = subprocess.run(
            ["unshare", "-rn", "/usr/bin/python3",
             os.path.join(HERE, "coap_spoof_check.py")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


PSK = "sesame-key-0001"


class TestDtls(CoapBrokerBase):
    """protocol coaps: PSK and certificates with both libcoap builds."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="moat-coaps-")
        d = cls.certs.name
        make_certs(d)
        cls.files = {
            "psk": "# devices\ndev1:%s\n" % PSK.encode().hex(),
            "acl": "topic read dev/#\ntopic read cert/#\n"
                   "user dev1\ntopic readwrite dev/#\n"
                   "user client\ntopic readwrite cert/#\n"}
        cls.config = ("psk_file @DIR@/psk\nacl_file @DIR@/acl\n"
                      "listener 0 127.0.0.1\nprotocol coaps\n"
                      "certfile {d}/server.crt\nkeyfile {d}/server.key\n"
                      "cafile {d}/ca.crt\nrequire_certificate true\n"
                      "use_identity_as_username true\n"
                      "listener 0 127.0.0.1\nprotocol http\n").format(d=d)
        cls.broker = Broker("listener 0 127.0.0.1\nprotocol coaps\n" +
                            cls.config, files=cls.files).start()
        cls.mport, cls.cport, cls.xport, cls.hport = cls.broker.ports[:4]

    def dtls_bytes(self):
        """OpenSSL's memory for DTLS, as moatd counts it (/metrics)."""
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics"
                                    % self.hport, timeout=T) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("moat_coap_dtls_bytes "):
                    return int(line.split()[1])
        self.fail("no moat_coap_dtls_bytes in /metrics")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.certs.cleanup()

    def suri(self, path, port=None):
        return "coaps://127.0.0.1:%d%s" % (port or self.cport, path)

    def cert_args(self):
        d = self.certs.name
        return ["-c", d + "/client.crt", "-j", d + "/client.key",
                "-C", d + "/ca.crt"]

    def test_psk_each_client_to_mqtt(self):
        for cl in CLIENTS:
            s = self.sub("dev/" + cl, 1)
            rc, out, err = run([cl, "-u", "dev1", "-k", PSK, "-m", "put",
                                "-e", "psk " + cl, self.suri("/ps/dev/" + cl)])
            self.assertEqual(rc, 0, err)
            out, _ = s.communicate(timeout=T)
            self.assertEqual(out.decode().strip(), "psk " + cl)
            rc, out, err = run([cl, "-u", "dev1", "-k", PSK, "-m", "get",
                                self.suri("/ps/dev/" + cl)])
            self.assertEqual(out.strip(), ("psk " + cl).encode())

    def test_psk_acl_and_observe(self):
        rc, out, err = run([CLIENTS[0], "-u", "dev1", "-k", PSK, "-m", "put",
                            "-e", "x", self.suri("/ps/cert/x")])
        self.assertIn(b"4.03", out + err.encode())
        o = subprocess.Popen([CLIENTS[1], "-u", "dev1", "-k", PSK, "-s", "4",
                              "-m", "get", self.suri("/ps/dev/obs")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        for i in range(3):
            run([CLIENTS[0], "-u", "dev1", "-k", PSK, "-m", "put", "-e",
                 "<%d>" % i, self.suri("/ps/dev/obs")])
        out, _ = o.communicate(timeout=T)
        self.assertIn(b"<0><1><2>", out.replace(b"\n", b""))

    def test_notifications_to_an_idle_session(self):
        """A session idle for more than a second gives its record buffers
        (and its handshake buffer's pages) back; the next notification
        must bring them back (a publish to an idle DTLS observer crashed
        moatd in SSL_write before)."""
        for cl in CLIENTS:
            o = subprocess.Popen([cl, "-u", "dev1", "-k", PSK, "-s", "8",
                                  "-m", "get", self.suri("/ps/dev/idle/" +
                                                         cl)],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            for i in range(2):
                time.sleep(2.5)  # idle for more than a second
                run([CLIENTS[0], "-u", "dev1", "-k", PSK, "-m", "put", "-e",
                     "<i%d>" % i, self.suri("/ps/dev/idle/" + cl)])
            out, _ = o.communicate(timeout=T)
            self.assertIn(b"<i0><i1>", out.replace(b"\n", b""))
            self.assertTrue(self.broker.alive())

    def test_large_notifications_over_dtls(self):
        """A 5 KB notification over DTLS-PSK: first block, then the
        later blocks by GET + Block2 (RFC 7959 §2.6), with both
        libcoap builds."""
        body = hexbody(5000)
        procs = [(cl, subprocess.Popen(
            [cl, "-u", "dev1", "-k", PSK, "-s", "5", "-m", "get",
             self.suri("/ps/dev/bigd/" + cl)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)) for cl in CLIENTS]
        time.sleep(1)
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            for cl in CLIENTS:
                rc, _, err = run([CLIENTS[0], "-u", "dev1", "-k", PSK, "-m",
                                  "post", "-f", f.name,
                                  self.suri("/ps/dev/bigd/" + cl)])
                self.assertEqual(rc, 0, err)
        for cl, o in procs:
            out, err = o.communicate(timeout=T)
            self.assertEqual(out.replace(b"\n", b""), body, cl + err.decode())

    def test_unknown_psk_identity(self):
        rc, out, err = run([CLIENTS[0], "-u", "intruder", "-k", PSK, "-m",
                            "get", self.suri("/ps/dev/x")])
        self.assertNotIn(b"2.05", out)
        self.assertTrue(wait_for(lambda: "PSK identity not in psk_file"
                                 in self.broker.read_log()))
        self.test_psk_each_client_to_mqtt()  # a legitimate client still works

    def test_certificates_each_client(self):
        for cl in CLIENTS:
            rc, out, err = run([cl] + self.cert_args() +
                               ["-m", "put", "-e", "cert " + cl,
                                self.suri("/ps/cert/" + cl, self.xport)])
            self.assertEqual(rc, 0, err)
            rc, out, err = run([cl] + self.cert_args() +
                               ["-m", "get",
                                self.suri("/ps/cert/" + cl, self.xport)])
            self.assertEqual(out.strip(), ("cert " + cl).encode(), err)
        # the certificate's user (CN "client") may not write dev/
        rc, out, err = run([CLIENTS[0]] + self.cert_args() +
                           ["-m", "put", "-e", "x",
                            self.suri("/ps/dev/x", self.xport)])
        self.assertIn(b"4.03", out + err.encode())

    def client_hello(self):
        """The first datagram coap-client-openssl sends: a ClientHello."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        p = subprocess.Popen([CLIENTS[0], "-u", "dev1", "-k", PSK, "-m",
                              "get", "coaps://127.0.0.1:%d/x"
                              % s.getsockname()[1]],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        hello = s.recv(4096)
        p.kill()
        p.wait()
        s.close()
        return hello

    def test_spoofed_client_hellos_allocate_nothing(self):
        hello = self.client_hello()
        self.assertEqual(hello[0], 22)  # a handshake record
        before = proc_status_kib(self.broker.proc.pid)
        counted = self.dtls_bytes()
        sent = 0
        for a in range(2, 202):  # 200 "victims" x 50 source ports
            socks = []
            for _ in range(50):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.%d" % a, 0))
                u.sendto(hello, ("127.0.0.1", self.cport))
                socks.append(u)
                sent += 1
            for u in socks:
                u.close()
        self.assertEqual(sent, 10000)
        # What OpenSSL allocated for DTLS, counted byte for byte: at most
        # the listening SSL of each worker's socket, nothing per hello (a
        # session is about 35 KB).
        grown = self.dtls_bytes() - counted
        self.assertLess(grown, 256 * 1024, "DTLS memory grew %d" % grown)
        self.test_psk_each_client_to_mqtt()  # a real client connects
        grown = proc_status_kib(self.broker.proc.pid) - before
        if not SANITIZED:
            self.assertLess(grown, 4096, "RSS grew %d KiB" % grown)
        self.assertNotIn("127.0.0.2:", self.broker.read_log())


class StoreHeld:
    """Stops moatd's store thread alone (ptrace, as a debugger does; the
    broker is our child), so that commits wait: a CON PUT's answer is then
    not ready in time and goes as a separate response.  A context
    manager; resume() lets the store go on earlier."""
    SEIZE, INTERRUPT, DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000

    def __init__(self, broker):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int,
                                     ctypes.c_void_p, ctypes.c_void_p]
        pid = broker.proc.pid
        self.tid = None
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                if f.read().strip() == "moat-store":
                    self.tid = int(t)
        assert self.tid, "no moat-store thread"

    def __enter__(self):
        if self.libc.ptrace(self.SEIZE, self.tid, None, None) or \
           self.libc.ptrace(self.INTERRUPT, self.tid, None, None):
            raise OSError("ptrace: errno %d" % __import__("ctypes").get_errno())
        os.waitpid(self.tid, self.WALL)
        self.held = True
        return self

    def resume(self):
        if self.held:
            self.libc.ptrace(self.DETACH, self.tid, None, None)
            self.held = False

    def __exit__(self, *exc):
        self.resume()


class TestSeparateResponse(BrokerTest):
    """RFC 7252 §5.2.2 with persistence: a CON PUT whose commit is held
    back gets an Empty ACK, then its 2.04 as a CON with the same token,
    retransmitted until acknowledged."""

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker("listener 0 127.0.0.1\nprotocol coap\n"
                            "persistence true\n"
                            "persistence_location @DIR@/db\n",
                            args=["-v"]).start()
        cls.mport, cls.cport = cls.broker.ports[0], cls.broker.ports[1]

    def uri(self, path):
        return "coap://127.0.0.1:%d%s" % (self.cport, path)

    def separated(self):
        return self.broker.read_log().count("Empty ACK sent")

    def test_raw_empty_ack_then_con_response(self):
        u = Udp(self.cport)
        put = coap_build(CON, PUT, 500, b"sp", path_opts("/ps/sep/raw"),
                         b"late")
        with StoreHeld(self.broker) as held:
            u.send(put)
            m = coap_parse(u.recv(10))
            self.assertEqual(m[:4], (ACK, 0, 500, b""))  # Empty ACK
            u.send(put)  # a retransmission gets it again, nothing twice
            self.assertEqual(coap_parse(u.recv(10))[:3], (ACK, 0, 500))
            held.resume()
            m = coap_parse(u.recv(10))
            self.assertEqual((m[0], m[1], m[3]), (CON, 0x44, b"sp"))
            self.assertNotEqual(m[2], 500)
            # Not acknowledged: it comes again, with the same id.
            again = coap_parse(u.recv(10))
            self.assertEqual(again[:4], m[:4])
            u.send(coap_build(ACK, 0, m[2]))
        rc, out, err = run(["coap-client-openssl", "-m", "get",
                            self.uri("/ps/sep/raw")])
        self.assertEqual(out.strip(), b"late", err)
        u.close()

    def each_client(self, name, argv):
        before = self.separated()
        with StoreHeld(self.broker) as held:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            self.assertTrue(wait_for(lambda: self.separated() > before,
                                     timeout=20), "no Empty ACK")
            held.resume()
            out, err = p.communicate(timeout=T * 2)
        self.assertEqual(p.returncode, 0, err)
        rc, got, err = run(["coap-client-openssl", "-m", "get",
                            self.uri("/ps/sep/" + name)])
        self.assertEqual(got.strip(), name.encode(), err)
        return out

    def test_libcoap_node_coap_and_moat_coap(self):
        for cl in CLIENTS:
            self.each_client(cl, [cl, "-m", "put", "-e", cl,
                                  self.uri("/ps/sep/" + cl)])
        self.each_client("moat", [MOAT, "coap", "put", "-m", "moat",
                                  self.uri("/ps/sep/moat")])
        js = os.path.join(HERE, "..", "js")
        out = self.each_client("node", [
            "node", os.path.join(js, "coap_put.js"),
            self.uri("/ps/sep/node"), "node"])
        self.assertEqual(out.strip(), b"2.04")


class TestPersistence(unittest.TestCase):

    def test_acked_con_put_survives_kill9(self):
        b = Broker("listener 0 127.0.0.1\nprotocol coap\n"
                   "persistence true\npersistence_location @DIR@/db\n")
        b.start()
        mport, cport = b.ports[0], b.ports[1]
        # A persistent MQTT session subscribed at QoS 1, offline.
        rc, _, err = run(["mosquitto_sub", "-p", str(mport), "-t", "kept",
                          "-q", "1", "-c", "-i", "keeper", "-W", "1"])
        rc, _, err = run([CLIENTS[0], "-m", "put", "-e", "durable",
                          "coap://127.0.0.1:%d/ps/kept" % cport])
        self.assertEqual(rc, 0, err)
        b.kill9()
        b.start()
        mport, cport = b.ports[0], b.ports[1]
        rc, out, err = run(["mosquitto_sub", "-p", str(mport), "-t", "kept",
                            "-q", "1", "-c", "-i", "keeper", "-C", "1",
                            "-W", "10"])
        self.assertEqual(out.strip(), b"durable", err)
        rc, out, err = run([CLIENTS[0], "-m", "get",
                            "coap://127.0.0.1:%d/ps/kept" % cport])
        self.assertEqual(out.strip(), b"durable")
        b.stop()
        b.dir.cleanup()


if __name__ == "__main__":
    unittest.main()
