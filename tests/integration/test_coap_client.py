"""`moat coap`: interop with libcoap's coap-server-openssl and
coap-server-gnutls (Debian libcoap3-bin) on loopback, and hostile servers.

Interop: GET/PUT/POST/DELETE, -v, --json read back by `moat scan --jsonl`,
block-wise transfers of 10 KiB both ways, Observe, DTLS with a PSK and
with certificates (made here with openssl), exit codes.

Hostile servers (a small CoAP server in this file, on a thread): silent
(timeout, exit 2), garbage datagrams (ignored), endless block-wise (bounded
by --max-body), a 1 GiB Size2 (nothing preallocated), 4.01 + Echo (the
request is repeated with the Echo value), notifications then a
deregistration on -C.
"""
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

MOAT = os.environ.get("MOAT_BIN", "../../build/moat")
TIMEOUT = 60


def moat(args, data=None, timeout=TIMEOUT):
    p = subprocess.run([MOAT, "coap"] + args, input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def free_udp_pair():
    """A port P with P and P+1 free on UDP (libcoap uses P+1 for DTLS)."""
    for _ in range(100):
        p = random.randint(20000, 60000)
        socks = []
        try:
            for q in (p, p + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port pair")


# ---- a minimal CoAP codec for the hostile servers ------------------------

def coap_parse(d):
    """(type, code, mid, token, [(num, value)], payload) or None."""
    if len(d) < 4 or d[0] >> 6 != 1:
        return None
    tkl = d[0] & 15
    typ, code, mid = (d[0] >> 4) & 3, d[1], struct.unpack(">H", d[2:4])[0]
    token, i, num, opts = d[4:4 + tkl], 4 + tkl, 0, []
    while i < len(d) and d[i] != 0xFF:
        delta, length = d[i] >> 4, d[i] & 15
        i += 1
        vals = []
        for v in (delta, length):
            if v == 13:
                v = 13 + d[i]
                i += 1
            elif v == 14:
                v = 269 + struct.unpack(">H", d[i:i + 2])[0]
                i += 2
            vals.append(v)
        num += vals[0]
        opts.append((num, d[i:i + vals[1]]))
        i += vals[1]
    payload = d[i + 1:] if i < len(d) else b""
    return typ, code, mid, token, opts, payload


def uint(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""


def coap_build(typ, code, mid, token=b"", opts=(), payload=b""):
    out = bytearray([0x40 | typ << 4 | len(token), code])
    out += struct.pack(">H", mid) + token
    last = 0
    for num, val in sorted(opts, key=lambda o: o[0]):
        delta, length, ext = num - last, len(val), b""
        last = num
        nib = []
        for v in (delta, length):
            if v < 13:
                nib.append(v)
            elif v < 269:
                nib.append(13)
                ext += bytes([v - 13])
            else:
                nib.append(14)
                ext += struct.pack(">H", v - 269)
        out += bytes([nib[0] << 4 | nib[1]]) + ext + val
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def opt(opts, num):
    for n, v in opts:
        if n == num:
            return v
    return None


CON, NON, ACK, RST = range(4)
CONTENT, UNAUTHORIZED = 0x45, 0x81
ETAG, OBSERVE, MAX_AGE, BLOCK2, SIZE2, ECHO = 4, 6, 14, 23, 28, 252


class HostileServer:
    """A UDP server on a thread; handler(server, addr, msg) -> replies."""

    def __init__(self, handler, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.host = "127.0.0.1" if family == socket.AF_INET else "[::1]"
        self.sock.bind((self.host.strip("[]"), 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.received = []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop:
            try:
                d, addr = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            m = coap_parse(d)
            self.received.append(m)
            if m is None:
                continue
            for reply in self.handler(self, addr, m) or []:
                self.sock.sendto(reply, addr)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.t.join(5)
        self.sock.close()

    def uri(self, path="/x"):
        return "coap://%s:%d%s" % (self.host, self.port, path)


def piggyback(m, code=CONTENT, opts=(), payload=b""):
    return coap_build(ACK, code, m[2], m[3], opts, payload)


# ---- libcoap interop --------------------------------------------------------

KEY = "moat-test-psk"


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client one."""
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=TIMEOUT)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
         "-subj", "/CN=moat test CA", "-days", "2")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        ossl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=" + name)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".crt",
             "-days", "2", "-extfile", "ext")
        os.chmod(os.path.join(d, name + ".key"), 0o600)
    # a second CA that signed nothing of ours
    ossl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.crt",
         "-subj", "/CN=other CA", "-days", "2")


class LibcoapInterop:
    """Mixed into one TestCase per libcoap server build."""
    SERVER = None

    @classmethod
    def setUpClass(cls):
        if not shutil.which(cls.SERVER):
            raise unittest.SkipTest(cls.SERVER + " is not installed")
        cls.dir = tempfile.mkdtemp(prefix="moat-coap-")
        make_certs(cls.dir)
        cls.psk_file = os.path.join(cls.dir, "psk")
        with open(cls.psk_file, "w") as f:
            f.write(KEY + "\n")
        os.chmod(cls.psk_file, 0o600)
        cls.procs = []
        cls.port = cls.start(["-k", KEY, "-h", "moat"])
        cls.cert_port = cls.start(["-c", cls.f("server.crt"),
                                   "-j", cls.f("server.key"),
                                   "-C", cls.f("ca.crt")])

    @classmethod
    def f(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def start(cls, extra):
        port = free_udp_pair()
        p = subprocess.Popen([cls.SERVER, "-A", "127.0.0.1", "-p", str(port),
                              "-d", "50", "-v", "0"] + extra,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        cls.procs.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rc, _, _ = moat(["get", "-W", "1",
                             "coap://127.0.0.1:%d/time" % port])
            if rc == 0:
                return port
        raise RuntimeError(cls.SERVER + " did not start")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def uri(self, path, secure=False, port=None):
        port = port or self.port
        return "coap%s://127.0.0.1:%d%s" % ("s" if secure else "",
                                            port + (1 if secure else 0),
                                            path)

    def test_get(self):
        rc, out, err = moat(["get", self.uri("/time")])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.strip())
        rc, out, err = moat(["get", "-v", self.uri("/.well-known/core")])
        self.assertEqual(rc, 0, err)
        self.assertIn(b"t:ACK c:2.05", out)
        self.assertIn(b"Content-Format:40", out)
        self.assertIn(b"</time>", out)

    def test_put_get_delete(self):
        path = "/moat-%d" % random.randint(0, 1 << 30)
        rc, _, err = moat(["put", "-m", "hello coap", "--content-format",
                           "text", self.uri(path)])
        self.assertEqual(rc, 0, err)
        rc, out, err = moat(["get", self.uri(path)])
        self.assertEqual((rc, out), (0, b"hello coap\n"), err)
        rc, out, err = moat(["post", "-m", "more", self.uri(path)])
        self.assertEqual(rc, 0, err)
        rc, _, err = moat(["delete", self.uri(path)])
        self.assertEqual(rc, 0, err)
        rc, out, err = moat(["get", self.uri(path)])
        self.assertEqual(rc, 1)
        self.assertIn("4.04", err)

    def test_json_for_scan(self):
        path = "/moat-json-%d" % random.randint(0, 1 << 30)
        secret = "AKIAIOSFODNN7EXAMPLE"  # the AWS documentation key id
        rc, _, err = moat(["put", "-m", "key=" + secret, self.uri(path)])
        self.assertEqual(rc, 0, err)
        rc, out, err = moat(["get", "--json", self.uri(path)])
        self.assertEqual(rc, 0, err)
        obj = json.loads(out)
        self.assertEqual(obj["code"], "2.05")
        self.assertEqual(obj["type"], "ACK")
        self.assertEqual(obj["payload"], "key=" + secret)
        self.assertEqual(len(obj["token"]), 16)
        p = subprocess.run([MOAT, "scan", "--jsonl"], input=out,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 1, p.stderr)  # a finding
        self.assertNotIn(secret.encode(), p.stdout)

    def test_blockwise_10k_both_ways(self):
        body = os.urandom(7680).hex().encode()[:10240]
        src = self.f("body-%s" % self.SERVER)
        with open(src, "wb") as fh:
            fh.write(body)
        for size in ("1024", "64"):
            path = "/big-%s" % size
            rc, _, err = moat(["put", "-b", size, "-f", src, self.uri(path)])
            self.assertEqual(rc, 0, err)
            rc, out, err = moat(["get", "-b", size, self.uri(path)])
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, body + b"\n")
        # the same through stdin, and a body over --max-body is refused
        rc, _, err = moat(["put", "-s", self.uri("/big-stdin")], data=body)
        self.assertEqual(rc, 0, err)
        rc, _, err = moat(["get", "--max-body", "4096",
                           self.uri("/big-stdin")])
        self.assertEqual(rc, 2)
        self.assertIn("limit", err)

    def test_observe(self):
        rc, out, err = moat(["observe", "-C", "3", self.uri("/time")],
                            timeout=30)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 3)
        rc, out, err = moat(["observe", "-W", "2", "--json",
                             self.uri("/time")], timeout=30)
        self.assertEqual(rc, 0, err)
        objs = [json.loads(x) for x in out.splitlines()]
        self.assertGreaterEqual(len(objs), 2)
        self.assertTrue(any(o["name"] == "Observe"
                            for o in objs[0]["options"]))

    def test_dtls_psk(self):
        args = ["--psk-identity", "moat-client", "--psk-file", self.psk_file]
        rc, out, err = moat(["get"] + args + [self.uri("/time", True)])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.strip())
        path = "/psk-%d" % random.randint(0, 1 << 30)
        src = self.f("psk-body")
        with open(src, "wb") as fh:
            fh.write(b"p" * 3000)
        rc, _, err = moat(["put", "-f", src] + args +
                          [self.uri(path, True)])
        self.assertEqual(rc, 0, err)
        rc, out, err = moat(["get"] + args + [self.uri(path, True)])
        self.assertEqual((rc, out), (0, b"p" * 3000 + b"\n"), err)
        rc, out, err = moat(["observe", "-C", "2"] + args +
                            [self.uri("/time", True)], timeout=30)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 2)
        # the key in hex
        hexfile = self.f("psk-hex")
        with open(hexfile, "w") as fh:
            fh.write("hex:" + KEY.encode().hex() + "\n")
        os.chmod(hexfile, 0o600)
        rc, _, err = moat(["get", "--psk-identity", "x", "--psk-file",
                           hexfile, self.uri("/time", True)])
        self.assertEqual(rc, 0, err)
        # a wrong key fails the handshake: exit 2
        bad = self.f("psk-bad")
        with open(bad, "w") as fh:
            fh.write("not the key\n")
        os.chmod(bad, 0o600)
        rc, _, err = moat(["get", "-W", "5", "--psk-identity", "x",
                           "--psk-file", bad, self.uri("/time", True)])
        self.assertEqual(rc, 2)
        self.assertIn("DTLS", err)

    def test_dtls_certificates(self):
        args = ["--cafile", self.f("ca.crt"), "--cert", self.f("client.crt"),
                "--key", self.f("client.key")]
        u = self.uri("/time", True, self.cert_port)
        rc, out, err = moat(["get"] + args + [u])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.strip())
        # a CA that did not sign the server's certificate: refused
        rc, _, err = moat(["get", "-W", "5", "--cafile", self.f("other.crt"),
                           "--cert", self.f("client.crt"), "--key",
                           self.f("client.key"), u])
        self.assertEqual(rc, 2)
        self.assertIn("certificate", err)


class InteropOpenSSL(LibcoapInterop, unittest.TestCase):
    SERVER = "coap-server-openssl"


class InteropGnuTLS(LibcoapInterop, unittest.TestCase):
    SERVER = "coap-server-gnutls"


# ---- hostile servers ------------------------------------------------------------

class Hostile(unittest.TestCase):
    def test_silent_server_times_out(self):
        with HostileServer(lambda s, a, m: []) as srv:
            t0 = time.monotonic()
            rc, _, err = moat(["get", "-W", "3", srv.uri()])
            self.assertEqual(rc, 2)
            self.assertIn("no ", err)
            self.assertLess(time.monotonic() - t0, 30)
            # CON: sent, then retransmitted (2..3 s initial timeout)
            self.assertGreaterEqual(len(srv.received), 1)
            rc, _, err = moat(["get", "--non", "-W", "2", srv.uri()])
            self.assertEqual(rc, 2)

    def test_ipv6_uri_options(self):
        def handler(srv, addr, m):
            path = b"/".join(v for n, v in m[4] if n == 11)
            query = b"&".join(v for n, v in m[4] if n == 15)
            host = opt(m[4], 3)
            return [piggyback(m, payload=b"%s|%s|%s" % (path, query,
                                                          host or b"-"))]
        try:
            srv = HostileServer(handler, socket.AF_INET6)
        except OSError:
            self.skipTest("no IPv6 loopback")
        with srv:
            rc, out, err = moat(["get", "-W", "10",
                                 srv.uri("/a%2Fb/%7E/c?x=1&y=%26")])
            self.assertEqual((rc, out), (0, b"a/b/~/c|x=1&y=&|-\n"), err)

    def test_nothing_listening(self):
        port = free_udp_pair()
        rc, _, err = moat(["get", "-W", "5",
                           "coap://127.0.0.1:%d/x" % port])
        self.assertEqual(rc, 2)

    def test_garbage_ignored(self):
        def handler(srv, addr, m):
            junk = [b"", b"\x40", b"\x00\x01\x02\x03", b"\xff" * 50,
                    os.urandom(300), b"\x40\x01\x00\x01\xf0",
                    coap_build(ACK, CONTENT, m[2] ^ 1, m[3], (), b"wrong"),
                    coap_build(ACK, CONTENT, m[2], b"\x00" * 8, (), b"bad")]
            return junk + [piggyback(m, payload=b"fine")]
        with HostileServer(handler) as srv:
            rc, out, err = moat(["get", "-W", "10", srv.uri()])
            self.assertEqual((rc, out), (0, b"fine\n"), err)

    def test_endless_blockwise_bounded(self):
        def handler(srv, addr, m):
            b2 = opt(m[4], BLOCK2)
            num = int.from_bytes(b2, "big") >> 4 if b2 else 0
            return [piggyback(m, opts=[(BLOCK2, uint(num << 4 | 8 | 6))],
                              payload=b"z" * 1024)]
        with HostileServer(handler) as srv:
            rc, _, err = moat(["get", "-W", "30", "--max-body", "65536",
                               srv.uri()])
            self.assertEqual(rc, 2)
            self.assertIn("limit", err)
            self.assertLessEqual(len(srv.received), 70)

    def test_huge_size2_not_preallocated(self):
        body = b"s" * 2048

        def handler(srv, addr, m):
            b2 = opt(m[4], BLOCK2)
            num = int.from_bytes(b2, "big") >> 4 if b2 else 0
            more = 8 if num == 0 else 0
            return [piggyback(m, opts=[(BLOCK2, uint(num << 4 | more | 6)),
                                       (SIZE2, uint(1 << 30))],
                              payload=body[num * 1024:(num + 1) * 1024])]
        with HostileServer(handler) as srv:
            # above --max-body: refused at the first block
            rc, _, err = moat(["get", "-W", "10", srv.uri()])
            self.assertEqual(rc, 2)
            self.assertIn("announces", err)
            # allowed up to 1 GiB: the 2 KiB that came, no 1 GiB buffer
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rc, out, err = moat(["get", "-W", "10", "--max-body",
                                 str(1 << 30), srv.uri()])
            self.assertEqual((rc, out), (0, body + b"\n"), err)
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            self.assertLess(max(rss, before), 64 * 1024)  # KiB

    def test_echo_answered(self):
        echo = os.urandom(12)

        def handler(srv, addr, m):
            if opt(m[4], ECHO) == echo:
                return [piggyback(m, payload=b"validated")]
            return [piggyback(m, UNAUTHORIZED, [(ECHO, echo)])]
        with HostileServer(handler) as srv:
            rc, out, err = moat(["get", "-W", "10", srv.uri()])
            self.assertEqual((rc, out), (0, b"validated\n"), err)
            self.assertEqual(len(srv.received), 2)
            self.assertNotEqual(srv.received[0][3], srv.received[1][3])

    def test_echo_loop_bounded(self):
        def handler(srv, addr, m):
            return [piggyback(m, UNAUTHORIZED, [(ECHO, os.urandom(8))])]
        with HostileServer(handler) as srv:
            rc, _, err = moat(["get", "-W", "10", srv.uri()])
            self.assertEqual(rc, 1)
            self.assertIn("4.01", err)
            self.assertEqual(len(srv.received), 3)

    def test_observe_deregisters(self):
        state = {"seq": 10}

        def handler(srv, addr, m):
            obs = opt(m[4], OBSERVE)
            if obs is None or obs == b"\x01":
                return [piggyback(m, payload=b"bye")]
            out = [piggyback(m, opts=[(OBSERVE, uint(state["seq"]))],
                             payload=b"n0")]
            for i in range(1, 6):
                state["seq"] += 1
                out.append(coap_build(NON, CONTENT, 100 + i, m[3],
                                      [(OBSERVE, uint(state["seq"]))],
                                      b"n%d" % i))
            # a stale (older) notification is not shown
            out.append(coap_build(NON, CONTENT, 200, m[3],
                                  [(OBSERVE, uint(1))], b"stale"))
            return out
        with HostileServer(handler) as srv:
            rc, out, err = moat(["observe", "-C", "4", "-W", "10",
                                 srv.uri()])
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.split(), [b"n0", b"n1", b"n2", b"n3"])
            dereg = [m for m in srv.received
                     if m and m[1] == 1 and opt(m[4], OBSERVE) == b"\x01"]
            self.assertEqual(len(dereg), 1)
            self.assertEqual(dereg[0][3], srv.received[0][3])

    def test_observe_block_notification_superseded(self):
        """A notification with Block2: the rest fetched with GET + Block2
        (RFC 7959 §2.6); when a newer notification supersedes it between
        blocks (the next block has its ETag), observe starts over with
        the newer one and prints it whole; also when the newer one fits
        one block and the later block is answered 4.04."""
        for small in (False, True):
            self.superseded_case(small)

    def superseded_case(self, small):
        a = b"A" * 600
        b = b"small" if small else bytes(range(97, 123)) * 23
        st = {"superseded": False}

        def block(body, num):
            return ([(BLOCK2, uint(num << 4 | (8 if (num + 1) * 256 <
                                               len(body) else 0) | 4))],
                    body[num * 256:(num + 1) * 256])

        def handler(srv, addr, m):
            obs = opt(m[4], OBSERVE)
            if obs == b"\x01":
                return [piggyback(m, payload=b"bye")]
            if obs is not None:
                st["token"] = m[3]
                o, pl = block(a, 0)
                return [piggyback(m, opts=[(OBSERVE, uint(2))],
                                  payload=b"r0"),
                        coap_build(NON, CONTENT, 300, m[3],
                                   [(OBSERVE, uint(3)), (ETAG, b"A")] + o +
                                   [(SIZE2, uint(len(a)))], pl)]
            num = opt(m[4], BLOCK2)[0] >> 4
            out = []
            if not st["superseded"]:
                st["superseded"] = True
                o, pl = ([], b) if small else block(b, 0)
                out.append(coap_build(NON, CONTENT, 301, st["token"],
                                      [(OBSERVE, uint(4)), (ETAG, b"B")] +
                                      o, pl))
            if small:
                return out + [piggyback(m, 0x84, payload=b"gone")]
            o, pl = block(b, num)
            return out + [piggyback(m, opts=[(ETAG, b"B")] + o,
                                    payload=pl)]
        with HostileServer(handler) as srv:
            rc, out, err = moat(["observe", "-C", "2", "-W", "10",
                                 srv.uri()])
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.split(), [b"r0", b])
            gets = [m for m in srv.received if m and m[1] == 1 and
                    opt(m[4], OBSERVE) is None]
            self.assertEqual([opt(g[4], BLOCK2)[0] >> 4 for g in gets],
                             [1] if small else [1, 1, 2])

    def test_observe_reregisters_after_max_age(self):
        state = {"seq": 0}

        def handler(srv, addr, m):
            if opt(m[4], OBSERVE) == b"\x01":
                return [piggyback(m, payload=b"bye")]
            state["seq"] += 1  # a fresh registration each time, no
            return [piggyback(m, opts=[(OBSERVE, uint(state["seq"])),
                                       (MAX_AGE, uint(1))],
                              payload=b"r%d" % state["seq"])]
        with HostileServer(handler) as srv:
            rc, out, err = moat(["observe", "-C", "3", "-W", "30",
                                 srv.uri()])
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.split(), [b"r1", b"r2", b"r3"])
            regs = [m for m in srv.received
                    if m and opt(m[4], OBSERVE) == b""]
            self.assertEqual(len(regs), 3)
            self.assertEqual(len({m[3] for m in regs}), 1)  # one token

    def test_observe_server_gone(self):
        def handler(srv, addr, m):
            if srv.received and len(srv.received) > 1:
                return []  # answers the registration, then nothing
            return [piggyback(m, opts=[(OBSERVE, uint(1)),
                                       (MAX_AGE, uint(1))], payload=b"r")]
        with HostileServer(handler) as srv:
            rc, out, err = moat(["observe", "-W", "4", srv.uri()])
            self.assertEqual((rc, out), (0, b"r\n"), err)  # -W ends it

    def test_ctrl_c_ends_observation(self):
        def handler(srv, addr, m):
            if opt(m[4], OBSERVE) == b"\x01":
                return [piggyback(m, payload=b"bye")]
            return [piggyback(m, opts=[(OBSERVE, uint(5))], payload=b"n0")]
        with HostileServer(handler) as srv:
            p = subprocess.Popen([MOAT, "coap", "observe", srv.uri()],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            deadline = time.monotonic() + 10
            while not srv.received and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=TIMEOUT)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(out, b"n0\n")
            dereg = [m for m in srv.received
                     if m and opt(m[4], OBSERVE) == b"\x01"]
            self.assertEqual(len(dereg), 1)


class Usage(unittest.TestCase):
    def test_usage_errors(self):
        for args in (["get"], ["fetch", "coap://h/"],
                     ["get", "http://h/"],
                     ["get", "coap://user:pw@h/"],
                     ["get", "-m", "x", "coap://h/"],
                     ["get", "--psk-identity", "a", "coap://h/"],
                     ["get", "--psk", "k", "coaps://h/"],
                     ["get", "-C", "2", "coap://h/"],
                     ["get", "--con", "--non", "coap://h/"],
                     ["get", "-b", "100", "coap://h/"],
                     ["put", "--content-format", "nope", "coap://h/"]):
            rc, _, err = moat(args)
            self.assertEqual(rc, 2, args)
            self.assertIn("moat coap", err)

    def test_help(self):
        rc, out, _ = moat(["--help"])
        self.assertEqual(rc, 0)
        for o in (b"--psk-identity", b"--psk-file", b"--cafile", b"--json",
                  b"--content-format", b"--non", b"observe"):
            self.assertIn(o, out)
        p = subprocess.run([MOAT, "--help"], stdout=subprocess.PIPE,
                           timeout=TIMEOUT)
        self.assertIn(b"coap", p.stdout)

    def test_psk_file_must_be_private(self):
        d = tempfile.mkdtemp(prefix="moat-coap-")
        try:
            path = os.path.join(d, "psk")
            with open(path, "w") as f:
                f.write("key\n")
            os.chmod(path, 0o644)
            rc, _, err = moat(["get", "--psk-identity", "a", "--psk-file",
                               path, "coaps://127.0.0.1:9/"])
            self.assertEqual(rc, 2)
            self.assertIn(path, err)
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main()
