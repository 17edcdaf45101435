"""`moat audit coap://` and `coaps://` against real servers started here.

- A deliberately open libcoap coap-server-openssl (anonymous, dynamic
  resources, a 4000-byte resource PUT before the audit).  So that it
  counts as exposed (AUD-CO-01 is about non-loopback addresses), the
  server and the audit run in a private network namespace (`unshare -rn`)
  where 10.77.0.1 is added to the namespace's own loopback device: a
  non-loopback address that no packet leaves the namespace from.
- moatd's secure CoAP set-up: coaps with a PSK file and an ACL, plain coap
  bound to 127.0.0.1 (Echo is moatd's default on plain network
  listeners; loopback ones are exempt), audited with its MQTT listener in
  one run: no high or critical finding.
- DTLS servers: coap-server-openssl and coap-server-gnutls with a PSK
  (and a hint) and with certificates: what AUD-CO-06/07 really find.
- Hostile servers (test_coap_client.HostileServer): silent, garbage,
  endless block-wise, a 1 GiB Size2, never-ending notifications, in one
  run with a working server after them.
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from moat_harness import Broker
from test_coap_client import (ACK, BLOCK2, CON, CONTENT, OBSERVE, SIZE2,
                              HostileServer, coap_build, free_udp_pair,
                              make_certs, opt, uint)

MOAT = os.environ.get("MOAT_BIN", "../../build/moat")
HERE = os.path.dirname(os.path.abspath(__file__))
T = 180
NS_ADDR = "10.77.0.1"
SECRET = "hunter2-Correct-Horse-9"


def audit(*args, timeout=T):
    p = subprocess.run([MOAT, "audit", "--format", "json", "--wait", "1000",
                        "--delay", "20"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def targets(out):
    return {t["target"]: t for t in json.loads(out)["targets"]}


def ids(t):
    return {f["id"] for f in t["findings"]}


def finding(t, fid):
    return [f for f in t["findings"] if f["id"] == fid]


def have_netns():
    try:
        return subprocess.run(["unshare", "-rn", "true"],
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NS_SCRIPT = r"""
set -e
ip link set lo up
ip addr add {addr}/32 dev lo
coap-server-openssl -A {addr} -p {port} -d 10 -v 0 >/dev/null 2>&1 &
S=$!
trap 'kill $S; wait $S 2>/dev/null || true' EXIT
for i in $(seq 50); do
  {moat} coap get -W 1 coap://{addr}:{port}/time >/dev/null 2>&1 && break
done
{moat} coap put -f {big} coap://{addr}:{port}/example_data >/dev/null
set +e
{moat} audit --format json --wait 1000 --delay 20 {args} \
  coap://{addr}:{port}
echo "rc=$?" >&2
"""


class OpenLibcoapExposed(unittest.TestCase):
    """An open coap-server on a non-loopback address (network namespace)."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("coap-server-openssl"):
            raise unittest.SkipTest("coap-server-openssl is not installed")
        if not have_netns():
            raise unittest.SkipTest("no unprivileged network namespaces")
        cls.dir = tempfile.mkdtemp(prefix="moat-auditcoap-")
        big = os.path.join(cls.dir, "big")
        with open(big, "w") as f:
            f.write(("x" * 3968) + '{"password":"%s"}' % SECRET)
        script = NS_SCRIPT.format(addr=NS_ADDR, port=25683,
                                  moat=os.path.abspath(MOAT), big=big,
                                  args="--intrusive --sample-payloads 2")
        p = subprocess.run(["unshare", "-rn", "sh", "-c", script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T)
        cls.err = p.stderr.decode()
        cls.out = p.stdout.decode()
        m = re.search(r"rc=(\d+)", cls.err)
        cls.rc = int(m.group(1)) if m else None
        cls.t = targets(cls.out)["coap://%s:25683" % NS_ADDR]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_exit_status_and_audited(self):
        self.assertEqual(self.rc, 1, self.err)
        self.assertEqual(self.t["status"], "audited")

    def test_co01_plaintext_exposed(self):
        f = finding(self.t, "AUD-CO-01")
        self.assertEqual(len(f), 1, self.t)
        self.assertEqual(f[0]["severity"], "high")
        self.assertIn(NS_ADDR, f[0]["evidence"])

    def test_co02_measured_factor(self):
        f = finding(self.t, "AUD-CO-02")
        self.assertEqual(len(f), 1, self.t)
        ev = f[0]["evidence"]
        # /.well-known/core and the largest resource, with the factor
        self.assertIn("GET /.well-known/core", ev)
        self.assertIn("GET /example_data", ev)
        worst = float(re.search(r"up to (\d+\.\d)x", ev).group(1))
        self.assertGreater(worst, 3.0)
        for m in re.finditer(r"a (\d+)-byte request got \d+ datagrams?, "
                             r"(\d+) bytes \(factor (\d+\.\d)", ev):
            req, resp, fac = int(m.group(1)), int(m.group(2)), m.group(3)
            self.assertEqual(fac, "%.1f" % (resp / req))

    def test_co03_no_echo(self):
        self.assertIn("AUD-CO-03", ids(self.t))

    def test_co05_observe(self):
        f = finding(self.t, "AUD-CO-05")
        self.assertEqual(len(f), 1, self.t)
        self.assertIn("/time", f[0]["evidence"])

    def test_disclosure_read_write(self):
        f = finding(self.t, "AUD-CO-08")
        self.assertIn("/example_data", f[0]["evidence"])
        evs = " ".join(x["evidence"] for x in finding(self.t, "AUD-CO-09"))
        self.assertRegex(evs, r"/example_data \(4006 bytes\)")
        self.assertRegex(evs, r"created /moat-audit-\d+-[0-9a-f]{8} with "
                              r"PUT \(2\.01\); the audit deleted it again")

    def test_leak_redacted(self):
        f = finding(self.t, "AUD-LK-01")
        self.assertTrue(f, self.t)
        self.assertIn("/example_data", f[0]["evidence"])
        self.assertNotIn(SECRET, self.out)

    def test_traffic_reported(self):
        tr = self.t["traffic"]
        self.assertGreater(tr["datagrams_sent"], 0)
        self.assertGreater(tr["bytes_sent"], 0)
        self.assertTrue(any("the audit sent %d datagrams (%d bytes)"
                            % (tr["datagrams_sent"], tr["bytes_sent"]) in n
                            for n in self.t["notes"]), self.t["notes"])


MOATD_NS_SCRIPT = r"""
ip link set lo up
ip addr add {addr}/32 dev lo
{moatd} -c {conf} >{log} 2>&1 &
S=$!
trap 'kill $S; wait $S 2>/dev/null || true' EXIT
for i in $(seq 100); do
  {moat} coap get -W 1 coap://{addr}:{port}/.well-known/core >/dev/null 2>&1 \
    && break
  sleep 0.1
done
{moat} audit --format json --wait 1000 --delay 20 coap://{addr}:{port}
echo "rc=$?" >&2
"""


class MoatdEchoExposed(unittest.TestCase):
    """moatd's plain CoAP listener on a network address (10.77.0.1 in a
    network namespace, allow_insecure_listener true): exposed, but Echo
    keeps every answer to an unvalidated address within 3x."""

    def test_echo_bounds_amplification(self):
        if not have_netns():
            self.skipTest("no unprivileged network namespaces")
        moatd = os.path.abspath(os.environ.get("MOATD_BIN",
                                               "../../build/moatd"))
        d = tempfile.mkdtemp(prefix="moat-auditcoap-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "acl"), "w") as f:
            f.write("topic read pub/#\n")
        os.chmod(os.path.join(d, "acl"), 0o600)
        conf = os.path.join(d, "moatd.conf")
        with open(conf, "w") as f:
            f.write("listener 25683 %s\nprotocol coap\n"
                    "allow_insecure_listener true\nallow_anonymous true\n"
                    "acl_file %s/acl\nuser root\n" % (NS_ADDR, d))
        script = MOATD_NS_SCRIPT.format(addr=NS_ADDR, port=25683,
                                        moat=os.path.abspath(MOAT),
                                        moatd=moatd, conf=conf,
                                        log=os.path.join(d, "log"))
        p = subprocess.run(["unshare", "-rn", "sh", "-c", script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T)
        with open(os.path.join(d, "log")) as f:
            log = f.read()
        t = targets(p.stdout.decode())["coap://%s:25683" % NS_ADDR]
        self.assertEqual(t["status"], "audited", (t, log))
        if os.environ.get("SHOW"):
            print(json.dumps(t, indent=1))
        self.assertIn("AUD-CO-01", ids(t))        # plaintext on a network
        self.assertNotIn("AUD-CO-02", ids(t), t)  # Echo: within 3x
        self.assertNotIn("AUD-CO-03", ids(t), t)
        self.assertNotIn("AUD-CO-05", ids(t), t)  # nothing to observe
        self.assertTrue(any("4.01 with an Echo option" in n
                            for n in t["notes"]), t["notes"])
        self.assertTrue(any(n.startswith("amplification within 3x")
                            for n in t["notes"]), t["notes"])


class LibcoapLoopback(unittest.TestCase):
    """The same open server on 127.0.0.1: not exposed (AUD-CO-01 is a
    note), the rest reported at the loopback severities; text and SARIF."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("coap-server-openssl"):
            raise unittest.SkipTest("coap-server-openssl is not installed")
        cls.port = free_udp_pair()
        cls.p = subprocess.Popen(["coap-server-openssl", "-A", "127.0.0.1",
                                  "-p", str(cls.port), "-v", "0"],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        cls.p.terminate()
        cls.p.wait(10)

    def test_loopback_not_exposed(self):
        rc, out, err = audit("coap://127.0.0.1:%d" % self.port)
        t = targets(out)["coap://127.0.0.1:%d" % self.port]
        self.assertNotIn("AUD-CO-01", ids(t))
        self.assertTrue(any("loopback" in n for n in t["notes"]))
        for f in t["findings"]:
            self.assertNotIn(f["severity"], ("high", "critical"), f)
        self.assertEqual(rc, 0, out)

    def test_sarif_uri(self):
        rc, out, err = audit("--format", "sarif", "--fail-on", "low",
                             "coap://127.0.0.1:%d" % self.port)
        run = json.loads(out)["runs"][0]
        self.assertTrue(run["results"])
        uri = run["results"][0]["locations"][0]["physicalLocation"][
            "artifactLocation"]["uri"]
        self.assertEqual(uri, "coap://127.0.0.1:%d" % self.port)
        props = run["invocations"][0]["properties"]
        self.assertGreater(props["coap_datagrams_sent"], 0)
        self.assertGreater(props["coap_bytes_sent"], 0)
        self.assertEqual(rc, 1)

    def test_text_totals(self):
        r = subprocess.run([MOAT, "audit", "--wait", "500", "--delay", "20",
                            "coap://127.0.0.1:%d" % self.port],
                           stdout=subprocess.PIPE, timeout=T)
        self.assertRegex(r.stdout.decode(), r"CoAP: the audit sent \d+ "
                                            r"datagrams \(\d+ bytes\) in all")


class MoatdSecure(unittest.TestCase):
    """moatd: coaps with a PSK file and an ACL, plain CoAP on loopback; the
    MQTT listener in the same run."""

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(
            "psk_file @DIR@/psk\nacl_file @DIR@/acl\n"
            "listener 0 127.0.0.1\nprotocol coap\n"
            "listener 0 127.0.0.1\nprotocol coaps\n",
            files={"psk": "dev1:%s\n" % b"sesame-key-0001".hex(),
                   "acl": "user dev1\ntopic readwrite dev/#\n"}).start()
        cls.mport, cls.cport, cls.sport = cls.broker.ports[:3]

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def test_no_high_finding(self):
        specs = ["mqtt://127.0.0.1:%d" % self.mport,
                 "coap://127.0.0.1:%d" % self.cport,
                 "coaps://127.0.0.1:%d" % self.sport]
        rc, out, err = audit("--intrusive", *specs)
        ts = targets(out)
        self.assertEqual(sorted(ts), sorted(specs))
        for spec in specs:
            t = ts[spec]
            self.assertEqual(t["status"], "audited", t)
            for f in t["findings"]:
                self.assertNotIn(f["severity"], ("high", "critical"), f)
        co, cs = ts[specs[1]], ts[specs[2]]
        self.assertNotIn("AUD-CO-05", ids(co))
        self.assertNotIn("AUD-CO-02", ids(co))
        self.assertNotIn("AUD-CO-04", ids(co))
        self.assertNotIn("AUD-CO-06", ids(cs))
        self.assertNotIn("AUD-CO-07", ids(cs))
        self.assertTrue(any("HelloVerifyRequest with a cookie" in n
                            for n in cs["notes"]), cs["notes"])
        self.assertEqual(rc, 0, out)


class DtlsServers(unittest.TestCase):
    """libcoap's DTLS servers (OpenSSL and GnuTLS builds)."""

    def run_server(self, server, extra):
        if not shutil.which(server):
            self.skipTest(server + " is not installed")
        port = free_udp_pair()
        p = subprocess.Popen([server, "-A", "127.0.0.1", "-p", str(port),
                              "-v", "0"] + extra,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.terminate(), p.wait(10)))
        time.sleep(0.5)
        spec = "coaps://127.0.0.1:%d" % (port + 1)
        rc, out, err = audit(spec)
        return rc, targets(out)[spec]

    def check_psk(self, server, dtls10):
        rc, t = self.run_server(server, ["-k", "sesame", "-h", "gw-hint"])
        self.assertEqual(t["status"], "audited", t)
        self.assertNotIn("AUD-CO-06", ids(t))
        self.assertTrue(any("HelloVerifyRequest with a cookie" in n
                            for n in t["notes"]), t["notes"])
        co07 = finding(t, "AUD-CO-07")
        hint = [f for f in co07 if "hint" in f["evidence"]]
        self.assertEqual(len(hint), 1, t)
        self.assertIn('"gw-hint"', hint[0]["evidence"])
        self.assertEqual(hint[0]["severity"], "low")
        # Debian 12's libcoap: the GnuTLS build still negotiates DTLS 1.0
        # when a client offers only that, the OpenSSL build refuses it
        old = [f for f in co07 if "DTLS 1.0" in f["evidence"]]
        self.assertEqual(len(old), 1 if dtls10 else 0, t)
        if dtls10:
            self.assertEqual(old[0]["severity"], "high")
            self.assertIn("ServerHello: DTLS 1.0", old[0]["evidence"])
        self.assertTrue(any(n.startswith("DTLS versions accepted: " +
                                         ("DTLS 1.0, " if dtls10 else "") +
                                         "DTLS 1.2")
                            for n in t["notes"]), t["notes"])
        self.assertEqual(rc, 1 if dtls10 else 0)

    def check_certs(self, server):
        d = tempfile.mkdtemp(prefix="moat-auditcoap-")
        self.addCleanup(shutil.rmtree, d, True)
        make_certs(d)
        rc, t = self.run_server(server, ["-c", d + "/server.crt", "-j",
                                         d + "/server.key", "-C",
                                         d + "/ca.crt", "-n"])
        self.assertEqual(t["status"], "audited", t)
        self.assertNotIn("AUD-CO-06", ids(t))
        # no PSK: no hint; the CoAP checks ran over anonymous DTLS
        self.assertFalse([f for f in finding(t, "AUD-CO-07")
                          if "hint" in f["evidence"]], t)
        self.assertTrue(any("over DTLS as an anonymous client" in n
                            for n in t["notes"]), t["notes"])
        self.assertIn("AUD-CO-05", ids(t))

    def test_openssl_psk(self):
        self.check_psk("coap-server-openssl", dtls10=False)

    def test_gnutls_psk(self):
        self.check_psk("coap-server-gnutls", dtls10=True)

    def test_openssl_certificates(self):
        self.check_certs("coap-server-openssl")

    def test_gnutls_certificates(self):
        self.check_certs("coap-server-gnutls")


# ---- hostile servers ---------------------------------------------------------

WKC = b"</endless>;obs,</huge>,</notify>;obs"


def path_of(m):
    return "/" + "/".join(v.decode(errors="replace")
                          for n, v in m[4] if n == 11)


def hostile(srv, addr, m):
    """/.well-known/core lists three bad resources."""
    p = path_of(m)
    if m[0] != CON and m[1] != 1:
        return []
    if p == "/.well-known/core":
        return [coap_build(ACK, CONTENT, m[2], m[3], [(12, uint(40))], WKC)]
    if p == "/endless":  # block after block, always "more"
        b2 = opt(m[4], BLOCK2)
        num = int.from_bytes(b2, "big") >> 4 if b2 else 0
        return [coap_build(ACK, CONTENT, m[2], m[3],
                           [(BLOCK2, uint(num << 4 | 8 | 6))],
                           b"e" * 1024)]
    if p == "/huge":  # a 1 GiB Size2
        return [coap_build(ACK, CONTENT, m[2], m[3],
                           [(BLOCK2, uint(8 | 6)), (SIZE2, uint(1 << 30))],
                           b"h" * 1024)]
    if p == "/notify":  # notifications that never stop
        out = [coap_build(ACK, CONTENT, m[2], m[3], [(OBSERVE, uint(1))],
                          b"n")]
        if opt(m[4], OBSERVE) == b"":
            for i in range(2, 500):
                out.append(coap_build(1, CONTENT, 0x1000 + i, m[3],
                                      [(OBSERVE, uint(i))], b"n%d" % i))
        return out
    return [coap_build(ACK, 0x84, m[2], m[3])]


class Hostile(unittest.TestCase):

    def test_each_probe_bounded_and_the_rest_runs(self):
        if not shutil.which("coap-server-openssl"):
            self.skipTest("coap-server-openssl is not installed")
        port = free_udp_pair()
        good = subprocess.Popen(["coap-server-openssl", "-A", "127.0.0.1",
                                 "-p", str(port), "-v", "0"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (good.terminate(), good.wait(10)))
        silent = HostileServer(lambda s, a, m: [])
        garbage = HostileServer(lambda s, a, m: [b"\xff\x00garbage" * 20,
                                                 b"\x00"])
        bad = HostileServer(hostile)
        with silent, garbage, bad:
            specs = ["coap://127.0.0.1:%d" % s.port
                     for s in (silent, garbage, bad)]
            specs.append("coap://127.0.0.1:%d" % port)
            start = time.monotonic()
            rc, out, err = audit("--timeout", "2000", *specs)
            took = time.monotonic() - start
        ts = targets(out)
        self.assertIn("no answer", ts[specs[0]]["error"])
        self.assertIn("not CoAP", ts[specs[1]]["error"])
        b = ts[specs[2]]
        self.assertEqual(b["status"], "audited", b)
        notes = " ".join(b["notes"])
        self.assertIn("/endless: response body above the limit", notes)
        self.assertIn("/huge: the server announces 1073741824 bytes", notes)
        self.assertIn("/notify", " ".join(f["evidence"]
                                          for f in b["findings"]))
        self.assertEqual(ts[specs[3]]["status"], "audited")
        self.assertIn("AUD-CO-05", ids(ts[specs[3]]))
        self.assertEqual(rc, 2)
        print("hostile run: %.1f s" % took)


def sequential_mids(srv, addr, m):
    """Piggybacked answers, and NON answers numbered 1, 2, 3..."""
    if path_of(m) != "/.well-known/core":
        return [coap_build(ACK, 0x84, m[2], m[3])]
    if m[0] == CON:
        return [coap_build(ACK, CONTENT, m[2], m[3], [], b"</x>")]
    srv.mid = getattr(srv, "mid", 0x4000) + 1
    return [coap_build(1, CONTENT, srv.mid, m[3], [], b"</x>")]


def dtls_record(seq, body, epoch=0):
    return (struct.pack(">BHH", 22, 0xFEFD, epoch) + seq.to_bytes(6, "big") +
            struct.pack(">H", len(body)) + body)


def dtls_handshake(typ, mseq, body):
    n = len(body).to_bytes(3, "big")
    return bytes([typ]) + n + struct.pack(">H", mseq) + b"\0\0\0" + n + body


def no_cookie_server(sock, der, stop):
    """Answers every ClientHello with ServerHello (ECDHE-ECDSA-AES128-GCM-
    SHA256) and Certificate at once: no HelloVerifyRequest."""
    sock.settimeout(0.1)
    hello = (b"\xfe\xfd" + os.urandom(32) + b"\x00" + b"\xc0\x2b" +
             b"\x00" + b"\x00\x05" + b"\xff\x01\x00\x01\x00")
    cert = len(der).to_bytes(3, "big") + der
    cert = len(cert).to_bytes(3, "big") + cert
    while not stop:
        try:
            d, addr = sock.recvfrom(70000)
        except socket.timeout:
            continue
        if len(d) > 25 and d[0] == 22 and d[13] == 1:
            sock.sendto(dtls_record(0, dtls_handshake(2, 0, hello)), addr)
            sock.sendto(dtls_record(1, dtls_handshake(11, 1, cert)), addr)


class Positives(unittest.TestCase):
    """Servers made to show AUD-CO-04 and AUD-CO-06."""

    def test_sequential_message_ids(self):
        with HostileServer(sequential_mids) as srv:
            rc, out, err = audit("coap://127.0.0.1:%d" % srv.port)
        t = targets(out)["coap://127.0.0.1:%d" % srv.port]
        f = finding(t, "AUD-CO-04")
        self.assertEqual(len(f), 1, t)
        self.assertIn("4001 4002 4003", f[0]["evidence"])

    def test_certificate_flight_without_cookie(self):
        d = tempfile.mkdtemp(prefix="moat-auditcoap-")
        self.addCleanup(shutil.rmtree, d, True)
        make_certs(d)
        der = subprocess.run(["openssl", "x509", "-in", d + "/server.crt",
                              "-outform", "DER"], stdout=subprocess.PIPE,
                             check=True).stdout
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        stop = []
        th = threading.Thread(target=no_cookie_server,
                              args=(sock, der, stop), daemon=True)
        th.start()
        try:
            spec = "coaps://127.0.0.1:%d" % sock.getsockname()[1]
            rc, out, err = audit("--timeout", "1000", spec)
        finally:
            stop.append(1)
            th.join(5)
            sock.close()
        t = targets(out)[spec]
        f = finding(t, "AUD-CO-06")
        self.assertEqual(len(f), 1, t)
        self.assertIn("Certificate flight", f[0]["evidence"])
        # a suite we did not offer is not "accepted"; nothing else invented
        self.assertNotIn("AUD-CO-07", ids(t))
        self.assertTrue(any(n.startswith("DTLS versions accepted: DTLS 1.2")
                            for n in t["notes"]), t["notes"])
        self.assertEqual(rc, 1)


class Usage(unittest.TestCase):

    def test_targets(self):
        for bad in ("coap://h/path", "coaps://user@h", "coap+tcp://h",
                    "coap://h:0"):
            rc, out, err = audit(bad)
            self.assertEqual(rc, 2, bad)
        r = subprocess.run([MOAT, "audit", "--help"], stdout=subprocess.PIPE)
        self.assertIn(b"coaps://HOST[:PORT]", r.stdout)


if __name__ == "__main__":
    unittest.main()
