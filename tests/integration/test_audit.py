"""Black-box tests of `moat audit` (docs/audit.md).

Environment:
  MOAT_BIN   path of moat (required)
  MOATD_BIN  path of moatd (for the moatd init set-up)

Groups:
  AuditUsage       command-line errors exit 2 and contact nobody; --help;
                   --sample-payloads bounds.
  SamplePayloads   --sample-payloads against a mosquitto with credentials
                   in a retained message: AUD-LK-01, redacted.
  WeakMosquitto    Debian's mosquitto (/usr/sbin/mosquitto, a child on an
                   ephemeral loopback port, never the system service) with
                   a deliberately weak configuration: anonymous, $SYS
                   open, retained data, plaintext.  The exact finding ids,
                   the JSON and SARIF shapes, the text report, --fail-on,
                   test accounts and the intrusive checks.
  PasswordMosquitto  mosquitto with a password file holding admin/admin:
                   --try-default-creds finds it, and no login back-off.
  WeakTls          mosquitto over TLS 1.1 with weak ciphers and a weak,
                   self-signed certificate; client certificates asked for
                   but not enforced (a Python TLS server), and enforced
                   (mosquitto require_certificate).
  MoatdInit        moatd set up by `moatd init` (listeners moved to
                   ephemeral loopback ports, two device accounts added
                   with `moat passwd` as init's notes say): no high
                   finding; the exact ids of both listeners.
  Unexpected       a closed port, TLS on a plaintext port and back, an
                   HTTP-ish server, a server that accepts and never
                   answers: one clear error each, and
                   the good target among them is still audited.
  ConfigLint       --config gives the same findings as moatd --check.

Every subprocess has a timeout, every wait is bounded, only loopback
addresses are used, and no assertion is about timing.  Collection windows
are kept short with --wait.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moat_harness import (free_port, Broker, can_connect, connect_packet,  # noqa
                          mosquitto_pw_hash, publish_packet, raw_connect,
                          read_packet, stay_root)

MOAT = os.environ.get("MOAT_BIN", "moat")
MOATD = os.environ.get("MOATD_BIN", "moatd")
MOSQUITTO = "/usr/sbin/mosquitto"
HAVE_MOSQUITTO = os.access(MOSQUITTO, os.X_OK)
HAVE_OPENSSL = shutil.which("openssl") is not None
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT = 150
# Short windows and pacing for tests (the defaults are 3000/200/30).
FAST = ["-q", "--wait", "800", "--delay", "20", "--timeout", "4000"]
SEVERITIES = ["info", "low", "medium", "high", "critical"]
SECRET = "secret-payload-value-42"

# What the weak mosquitto shows: plaintext (low on loopback), anonymous
# access, $SYS, # harvesting, retained data, limits and idle sockets,
# and mosquitto 2.0.11's known issues.
WEAK_IDS = {"AUD-MQ-01", "AUD-MQ-02", "AUD-MQ-04", "AUD-MQ-05",
            "AUD-MQ-06", "AUD-MQ-12", "AUD-VER-01"}


def catalogue_ids():
    with open(os.path.join(ROOT, "src", "check", "findings.c")) as f:
        return set(re.findall(r'\{"(AUD-[A-Z]+-\d+[a-z]?)"', f.read()))


def check_sanitizers(text):
    for mark in ("Sanitizer", "runtime error:"):
        if mark in text:
            raise AssertionError("sanitizer report:\n" + text)


def audit(*args, timeout=TIMEOUT, env=None, cwd=None):
    r = subprocess.run([MOAT, "audit"] + list(args), capture_output=True,
                       timeout=timeout, universal_newlines=True, env=env,
                       cwd=cwd)
    check_sanitizers(r.stderr)
    return r


def audit_json(*args, **kw):
    r = audit("--format", "json", *args, **kw)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("not JSON (exit %d):\n%s\n%s"
                             % (r.returncode, r.stdout, r.stderr))
    validate_json(doc)
    return r, doc


def validate_json(doc):
    """The documented shape: {"targets": [{"target", "status", "error",
    "summary", "findings": [{id, severity, title, evidence,
    remediation}], "notes"}]}."""
    ids = catalogue_ids()
    assert doc["tool"] == "moat audit"
    assert doc["fail_on"] in SEVERITIES
    assert isinstance(doc["targets"], list) and doc["targets"]
    for t in doc["targets"]:
        assert isinstance(t["target"], str)
        assert t["status"] in ("audited", "error", "incomplete")
        assert (t["error"] is None) == (t["status"] == "audited")
        assert set(t["summary"]) == set(SEVERITIES)
        for f in t["findings"]:
            assert set(f) == {"id", "severity", "title", "evidence",
                              "remediation"}, f
            assert f["id"] in ids, f["id"]
            assert f["severity"] in SEVERITIES
            assert f["title"] and f["remediation"] and f["evidence"]
            assert f["evidence"].isprintable()
        for n in t["notes"]:
            assert isinstance(n, str) and n.isprintable()
        for s in SEVERITIES:
            assert t["summary"][s] == sum(f["severity"] == s
                                          for f in t["findings"])


def validate_sarif(doc):
    """The required structure of a SARIF 2.1.0 log (the parts the
    schema requires, and what moat promises on top: rules for every
    catalogue id, each result tied to a rule and a target)."""
    assert doc["version"] == "2.1.0"
    assert isinstance(doc["$schema"], str) and "sarif" in doc["$schema"]
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    rules = driver["rules"]
    rule_ids = [r["id"] for r in rules]
    assert len(rule_ids) == len(set(rule_ids))
    assert set(rule_ids) == catalogue_ids()
    for r in rules:
        assert isinstance(r["shortDescription"]["text"], str)
        assert isinstance(r["fullDescription"]["text"], str)
        assert isinstance(r["help"]["text"], str)
        assert r["defaultConfiguration"]["level"] in ("note", "warning",
                                                      "error")
        float(r["properties"]["security-severity"])
    assert isinstance(run["results"], list)
    for res in run["results"]:
        assert isinstance(res["message"]["text"], str)
        assert res["message"]["text"]
        assert res["ruleId"] in rule_ids
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("none", "note", "warning", "error")
        for loc in res["locations"]:
            uri = loc["physicalLocation"]["artifactLocation"]["uri"]
            assert isinstance(uri, str) and uri
    for inv in run["invocations"]:
        assert isinstance(inv["executionSuccessful"], bool)
        for n in inv["toolExecutionNotifications"]:
            assert n["level"] in ("none", "note", "warning", "error")
            assert isinstance(n["message"]["text"], str)
    return run


def ids_of(target):
    return {f["id"] for f in target["findings"]}


def finding(target, fid):
    hits = [f for f in target["findings"] if f["id"] == fid]
    if not hits:
        raise AssertionError("no %s in %r" % (fid, target))
    return hits


# ---- servers -----------------------------------------------------------

class Mosquitto:
    """/usr/sbin/mosquitto as a child with a generated config on a free
    loopback port ("@PORT@" and "@DIR@" in the config are replaced).  The
    directory is world-readable: started as root, mosquitto drops to its
    own user before it opens certificates."""

    def __init__(self, config, files=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-audit-mq-")
        self.dir = self.tmp.name
        os.chmod(self.dir, 0o755)
        for name, (data, mode) in (files or {}).items():
            p = os.path.join(self.dir, name)
            with open(p, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            os.chmod(p, mode)
        self.config = config
        self.proc = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        for _ in range(5):
            self.port = free_port()
            conf = self.config.replace("@PORT@", str(self.port)) \
                              .replace("@DIR@", self.dir)
            with open(self.path("mosquitto.conf"), "w") as f:
                f.write(conf)
            self.log = open(self.path("mosquitto.log"), "w")
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", self.path("mosquitto.conf")],
                stdout=self.log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if can_connect(self.port):
                    return self
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in self.read_log():
                raise RuntimeError("mosquitto did not start:\n" +
                                   self.read_log())
        raise RuntimeError("no free port for mosquitto")

    def read_log(self):
        with open(self.path("mosquitto.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()

    def url(self, scheme="mqtt"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)


def publish_retained(port, topic, payload):
    """A retained QoS 1 message, acknowledged before we return."""
    s = raw_connect(port)
    try:
        s.sendall(connect_packet("moat-audit-test-pub"))
        first, body = read_packet(s)
        assert first == 0x20 and body[1] == 0, (first, body)
        s.sendall(publish_packet(topic, payload, qos=1, pid=1, retain=True))
        first, body = read_packet(s)
        assert first == 0x40, first
        s.sendall(b"\xe0\x00")
    finally:
        s.close()


class FakeServer:
    """Loopback TCP servers that are not MQTT brokers: "http" answers
    anything with an HTTP error, "silent" accepts and never answers,
    "tls-optional" is TLS asking for (but not requiring) a client
    certificate, then answers the first record with a CONNACK and
    closes."""

    def __init__(self, kind, certfile=None, keyfile=None):
        self.kind = kind
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ctx = None
        if kind == "tls-optional":
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(certfile, keyfile)
            self.ctx.load_verify_locations(certfile)
            self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.done = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        try:
            if self.kind == "http":
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n"
                          b"Content-Length: 0\r\n\r\n")
            elif self.kind == "silent":
                self.done.wait(30)
            else:
                t = self.ctx.wrap_socket(c, server_side=True)
                try:
                    if t.recv(4096):
                        t.sendall(b"\x20\x02\x00\x00")
                finally:
                    t.close()
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def close(self):
        self.done.set()
        self.sock.close()
        self.thread.join(5)

    def url(self, scheme="mqtt"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)


def make_cert(d, name, bits=2048, days=30, cn="localhost",
              san="DNS:localhost,IP:127.0.0.1"):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:%d" % bits, "-nodes",
           "-keyout", key, "-out", crt, "-days", str(days), "-subj",
           "/CN=" + cn]
    if san:
        cmd += ["-addext", "subjectAltName=" + san]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)  # test-only key; mosquitto reads it as its user
    return crt, key


# ---- tests ---------------------------------------------------------------

class AuditUsage(unittest.TestCase):
    def assertUsage(self, r, needle):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(needle, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_help(self):
        r = audit("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("mqtt://HOST[:PORT]", "mqtts://HOST[:PORT]",
                     "--targets", "--cafile", "--insecure", "--as",
                     "--intrusive", "--try-default-creds", "--config",
                     "--format", "--fail-on", "--wait", "--max-time"):
            self.assertIn(word, r.stdout)
        self.assertIn("--sample-payloads", r.stdout)
        self.assertTrue(all(len(line) < 80
                            for line in r.stdout.splitlines()))
        r = subprocess.run([MOAT, "help", "audit"], capture_output=True,
                           universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertIn("Usage: moat audit", r.stdout)
        r = subprocess.run([MOAT, "--help"], capture_output=True,
                           universal_newlines=True, timeout=30)
        self.assertIn("audit", r.stdout)

    def test_no_target(self):
        self.assertUsage(audit(), "no target")

    def test_bad_targets(self):
        for bad, why in (("10.0.0.1", "expected mqtt://"),
                         ("http://127.0.0.1", "expected mqtt://"),
                         ("mqtt://", "invalid host"),
                         ("mqtt://10.0.0.0/24", "no path"),
                         ("mqtt://user@127.0.0.1", "no path, user name"),
                         ("mqtt://127.0.0.1:0", "invalid port"),
                         ("mqtt://127.0.0.1:65536", "invalid port"),
                         ("mqtt://127.0.0.1:1883/x", "no path"),
                         ("mqtt://127.0.0.*", "invalid host"),
                         ("mqtt://[::1", "invalid host"),
                         ("mqtt://a b", "invalid host")):
            self.assertUsage(audit(bad), why)

    def test_sample_payloads_bounds(self):
        self.assertUsage(audit("--sample-payloads", "0",
                               "mqtt://127.0.0.1:1"), "1 to 60")
        self.assertUsage(audit("--sample-payloads", "61",
                               "mqtt://127.0.0.1:1"), "1 to 60")

    def test_bad_options(self):
        url = "mqtt://127.0.0.1:1"
        self.assertUsage(audit("--as", "nopassword", url), "USER:PASS")
        self.assertUsage(audit("--as", ":pw", url), "USER:PASS")
        self.assertUsage(audit("--as", "a:1", "--as", "b:2", "--as", "c:3",
                               url), "at most 2")
        self.assertUsage(audit("--format", "xml", url), "text, json or sarif")
        self.assertUsage(audit("--fail-on", "severe", url), "--fail-on")
        self.assertUsage(audit("--wait", "99", url), "--wait")
        self.assertUsage(audit("--wait", "1e3", url), "--wait")
        self.assertUsage(audit("--timeout", "60001", url), "--timeout")
        self.assertUsage(audit("--max-time", "5", url), "--max-time")
        self.assertUsage(audit("--bogus", url), "unknown option")
        self.assertUsage(audit("--insecure=yes", url), "takes no value")
        self.assertUsage(audit("--cafile"), "needs FILE")
        self.assertUsage(audit("--test-topic", "a/#", url), "--test-topic")
        self.assertUsage(audit("--config", "x.conf", url), "no targets")

    def test_targets_file(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "targets")
            with open(p, "w") as f:
                f.write("# my brokers\n\nmqtt://127.0.0.1:1  # closed\n"
                        "mqtt://bad target\n")
            self.assertUsage(audit("--targets", p), p + ":4: ")
            with open(p, "w") as f:
                f.write("# nothing\n")
            self.assertUsage(audit("--targets", p), "names no target")
            self.assertUsage(audit("--targets", os.path.join(d, "none")),
                             "--targets")

    def test_accounts_from_environment(self):
        env = dict(os.environ, MOAT_AUDIT_AS="nocolon")
        self.assertUsage(audit("mqtt://127.0.0.1:1", env=env),
                         "MOAT_AUDIT_AS: expected USER:PASS")


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto not installed")
class WeakMosquitto(unittest.TestCase):
    CONFIG = ("listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
              "persistence false\n")

    @classmethod
    def setUpClass(cls):
        cls.mq = Mosquitto(cls.CONFIG).start()
        publish_retained(cls.mq.port, "home/door", SECRET)
        publish_retained(cls.mq.port, "office/temp", "21.5")
        # One JSON run shared by the tests that only read it.
        cls.r, cls.doc = audit_json(*FAST, "--idle-limit", "2",
                                    cls.mq.url())

    @classmethod
    def tearDownClass(cls):
        cls.mq.cleanup()

    def test_every_weakness_is_reported(self):
        self.assertEqual(self.r.returncode, 1, self.r.stderr)
        [t] = self.doc["targets"]
        self.assertEqual(t["target"], self.mq.url() + "")
        self.assertEqual(t["status"], "audited")
        self.assertEqual(ids_of(t), WEAK_IDS)

    def test_evidence(self):
        [t] = self.doc["targets"]
        sev = {f["id"]: f["severity"] for f in t["findings"]
               if f["id"] != "AUD-MQ-12"}
        self.assertEqual(sev, {"AUD-MQ-01": "low", "AUD-MQ-02": "medium",
                               "AUD-MQ-04": "medium", "AUD-MQ-05": "high",
                               "AUD-MQ-06": "high", "AUD-VER-01": "high"})
        self.assertIn("loopback", finding(t, "AUD-MQ-01")[0]["evidence"])
        self.assertIn("$SYS/broker/version = mosquitto version 2.0.11",
                      finding(t, "AUD-MQ-04")[0]["evidence"])
        self.assertIn("home/door", finding(t, "AUD-MQ-05")[0]["evidence"])
        retained = finding(t, "AUD-MQ-06")[0]["evidence"]
        self.assertIn("retained messages on 2 topics", retained)
        ver = finding(t, "AUD-VER-01")[0]["evidence"]
        self.assertIn("mosquitto 2.0.11", ver)
        self.assertIn("CVE-2023-28366", ver)
        self.assertIn("backported", ver)
        limits = " | ".join(f["evidence"]
                            for f in finding(t, "AUD-MQ-12"))
        self.assertIn("no Maximum Packet Size", limits)
        self.assertIn("keep-alive of 3600 s was accepted", limits)
        self.assertIn("no CONNECT) was still open after 2 s", limits)
        # Payloads are never reported.
        self.assertNotIn(SECRET, self.r.stdout)

    def test_text_report(self):
        r = audit(*FAST, "--idle-limit", "1", self.mq.url())
        self.assertEqual(r.returncode, 1, r.stderr)
        out = r.stdout
        self.assertIn("== %s ==" % self.mq.url(), out)
        for fid in WEAK_IDS:
            self.assertRegex(out, r"(?m)^  (LOW|MEDIUM|HIGH)\s+%s\s"
                             % re.escape(fid))
        for label in ("seen: ", "why:  ", "fix:  ", "notes:"):
            self.assertIn(label, out)
        self.assertRegex(out, r"\d+ findings: 0 critical, 3 high")
        self.assertNotIn(SECRET, out)
        self.assertTrue(all(len(line) < 80 for line in out.splitlines()))

    def test_sarif(self):
        r = audit(*FAST, "--idle-limit", "1", "--format", "sarif",
                  self.mq.url())
        self.assertEqual(r.returncode, 1, r.stderr)
        run = validate_sarif(json.loads(r.stdout))
        self.assertEqual({res["ruleId"] for res in run["results"]},
                         WEAK_IDS)
        for res in run["results"]:
            uri = res["locations"][0]["physicalLocation"][
                "artifactLocation"]["uri"]
            self.assertEqual(uri, self.mq.url())
        self.assertTrue(run["invocations"][0]["executionSuccessful"])
        self.assertNotIn(SECRET, r.stdout)

    def test_fail_on(self):
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--fail-on",
                            "critical", self.mq.url())
        self.assertEqual(r.returncode, 0)
        self.assertEqual(doc["fail_on"], "critical")
        r = audit(*FAST, "--idle-limit", "1", "--fail-on", "low",
                  "--format", "json", self.mq.url())
        self.assertEqual(r.returncode, 1)

    def test_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            r = audit(*FAST, "--idle-limit", "1", self.mq.url(), cwd=d)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(os.listdir(d), [])

    def test_accounts_and_intrusive(self):
        """mosquitto without a password file takes any user name and
        password: the two test accounts see everything, one takes the
        other's client id over, and a made-up login works."""
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--as", "alice:pw1",
                            "--as", "bob:pw2", "--intrusive",
                            "--try-default-creds", self.mq.url())
        self.assertEqual(r.returncode, 1, r.stderr)
        [t] = doc["targets"]
        self.assertEqual(ids_of(t), WEAK_IDS | {"AUD-MQ-08"})
        takeover = finding(t, "AUD-MQ-08")[0]["evidence"]
        self.assertIn('user "bob" logged in with user "alice"\'s client id',
                      takeover)
        anon = " | ".join(f["evidence"] for f in finding(t, "AUD-MQ-02"))
        self.assertIn("made-up user name and password were accepted", anon)
        self.assertIn("wrong password", anon)
        harvest = [f for f in finding(t, "AUD-MQ-05")
                   if "alice" in f["evidence"]]
        self.assertEqual(harvest[0]["severity"], "medium")
        notes = "\n".join(t["notes"])
        # Without an ACL the will check cannot tell anything...
        self.assertIn("will check inconclusive", notes)
        # ...mosquitto validates UTF-8 topics...
        self.assertIn("invalid UTF-8 topic from", notes)
        self.assertIn("not forwarded", notes)
        # ...and any login works, so default credentials mean nothing.
        self.assertIn("any login is accepted", notes)
        self.assertIn("$share bypass not tested", notes)
        self.assertNotIn("alice:pw1", r.stdout)
        self.assertNotIn("pw2", r.stdout)

    def test_accounts_from_environment(self):
        env = dict(os.environ, MOAT_AUDIT_AS="carol:secret-pw")
        r, doc = audit_json(*FAST, "--idle-limit", "1", self.mq.url(),
                            env=env)
        self.assertIn('user "carol"', "\n".join(doc["targets"][0]["notes"]))


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto not installed")
class SamplePayloads(unittest.TestCase):
    LEAK = ('{"site": "plant-3", "password": "hunter2-Xy9", '
            '"aws": "AKIAQ3EGRVOKXJ2WPL7M"}')

    def test_sampled_leak_is_reported_redacted(self):
        mq = Mosquitto(WeakMosquitto.CONFIG).start()
        try:
            publish_retained(mq.port, "plant/cfg", self.LEAK)
            publish_retained(mq.port, "plant/temp", "21.5")
            r, doc = audit_json(*FAST, "--idle-limit", "1",
                                "--sample-payloads", "1", mq.url())
            self.assertEqual(r.returncode, 1, r.stderr)
            [t] = doc["targets"]
            lk = finding(t, "AUD-LK-01")
            self.assertTrue(lk, t["findings"])
            ev = " | ".join(f["evidence"] for f in lk)
            self.assertIn("credential", ev)
            self.assertIn("plant/cfg", ev)
            self.assertIn("$.password", ev)
            for secret in ("hunter2-Xy9", "AKIAQ3EGRVOKXJ2WPL7M"):
                self.assertNotIn(secret, r.stdout)
            self.assertTrue(any("sampled" in n for n in t.get("notes", [])),
                            t)
        finally:
            mq.cleanup()


class PasswordMosquitto(unittest.TestCase):
    """A password file with admin/admin: the first default pair logs in;
    mosquitto has no login back-off."""

    @classmethod
    def setUpClass(cls):
        pw = "admin:%s\n" % mosquitto_pw_hash("admin")
        cls.mq = Mosquitto("listener @PORT@ 127.0.0.1\n"
                           "allow_anonymous false\n"
                           "password_file @DIR@/passwd\n"
                           "persistence false\n",
                           files={"passwd": (pw, 0o644)}).start()

    @classmethod
    def tearDownClass(cls):
        cls.mq.cleanup()

    def test_default_credentials(self):
        r, doc = audit_json(*FAST, "--idle-limit", "1",
                            "--try-default-creds", self.mq.url())
        self.assertEqual(r.returncode, 1, r.stderr)
        [t] = doc["targets"]
        self.assertEqual(ids_of(t), {"AUD-MQ-01", "AUD-MQ-12", "AUD-MQ-03",
                                     "AUD-MQ-03b"})
        self.assertIn('user "admin" with the password "admin" was accepted',
                      finding(t, "AUD-MQ-03")[0]["evidence"])
        self.assertIn("5 failed logins in a row",
                      finding(t, "AUD-MQ-03b")[0]["evidence"])
        notes = "\n".join(t["notes"])
        self.assertIn("anonymous CONNECT refused", notes)
        self.assertIn("--broker-version", notes)

    def test_broker_version_given(self):
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--broker-version",
                            "mosquitto 1.4.10", self.mq.url())
        [t] = doc["targets"]
        self.assertEqual(ids_of(t), {"AUD-MQ-01", "AUD-MQ-12",
                                     "AUD-VER-01"})
        ver = finding(t, "AUD-VER-01")[0]
        self.assertIn("CVE-2017-7650", ver["evidence"])
        self.assertIn("--broker-version", ver["evidence"])
        self.assertEqual(ver["severity"], "high")
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--broker-version",
                            "mosquitto 2.0.20", self.mq.url())
        self.assertNotIn("AUD-VER-01", ids_of(doc["targets"][0]))
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--broker-version",
                            "somebroker 1.0", self.mq.url())
        self.assertIn("not in moat's vulnerability table",
                      "\n".join(doc["targets"][0]["notes"]))


@unittest.skipUnless(HAVE_MOSQUITTO and HAVE_OPENSSL,
                     "mosquitto or openssl not installed")
class WeakTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="moat-audit-tls-")
        os.chmod(cls.tmp.name, 0o755)
        # 1024-bit RSA, self-signed, a name that is not 127.0.0.1, soon
        # expiring; TLS 1.1 and every cipher OpenSSL has.
        cls.crt, cls.key = make_cert(cls.tmp.name, "weak", bits=1024, days=5,
                                     cn="broker.example", san=None)
        cls.mq = Mosquitto(
            "listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
            "persistence false\ncertfile %s\nkeyfile %s\n"
            "tls_version tlsv1.1\nciphers ALL:@SECLEVEL=0\n"
            % (cls.crt, cls.key)).start()

    @classmethod
    def tearDownClass(cls):
        cls.mq.cleanup()
        cls.tmp.cleanup()

    def test_tls_findings(self):
        r, doc = audit_json(*FAST, self.mq.url("mqtts"))
        self.assertEqual(r.returncode, 1, r.stderr)
        [t] = doc["targets"]
        self.assertEqual(t["status"], "audited")
        self.assertEqual(ids_of(t), {"AUD-TLS-01", "AUD-TLS-02",
                                     "AUD-TLS-03"})
        self.assertIn("TLS 1.1", finding(t, "AUD-TLS-01")[0]["evidence"])
        cert = " | ".join(f["evidence"] for f in finding(t, "AUD-TLS-03"))
        for what in ("weak RSA key of 1024 bits", "does not name 127.0.0.1",
                     "self-signed", "cannot be verified", "expires in"):
            self.assertIn(what, cert)
        # Not verified, no --insecure: no MQTT checks over it.
        self.assertIn("MQTT checks not run", "\n".join(t["notes"]))

    def test_insecure_goes_on(self):
        r, doc = audit_json(*FAST, "--idle-limit", "1", "--insecure",
                            self.mq.url("mqtts"))
        [t] = doc["targets"]
        ids = ids_of(t)
        # (No retained data here: # is granted but brings nothing.)
        self.assertEqual({"AUD-TLS-01", "AUD-TLS-02", "AUD-TLS-03",
                          "AUD-MQ-02", "AUD-MQ-04", "AUD-MQ-12",
                          "AUD-VER-01"}, ids)
        self.assertNotIn("AUD-MQ-01", ids)  # it is TLS
        self.assertIn("--insecure", " ".join(
            f["evidence"] for f in finding(t, "AUD-TLS-03")))

    def test_client_certificate_not_enforced(self):
        crt, key = make_cert(self.tmp.name, "opt")
        fake = FakeServer("tls-optional", crt, key)
        try:
            r, doc = audit_json(*FAST, "--idle-limit", "1", "--cafile", crt,
                                fake.url("mqtts"))
        finally:
            fake.close()
        [t] = doc["targets"]
        self.assertIn("AUD-TLS-04", ids_of(t))
        self.assertIn("asks for a client certificate",
                      finding(t, "AUD-TLS-04")[0]["evidence"])

    def test_client_certificate_enforced(self):
        crt, key = make_cert(self.tmp.name, "mtls")
        mq = Mosquitto("listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
                       "persistence false\ncertfile %s\nkeyfile %s\n"
                       "cafile %s\nrequire_certificate true\n"
                       % (crt, key, crt)).start()
        try:
            r, doc = audit_json(*FAST, "--cafile", crt, mq.url("mqtts"))
        finally:
            mq.cleanup()
        [t] = doc["targets"]
        self.assertEqual(t["status"], "audited", t)
        self.assertNotIn("AUD-TLS-04", ids_of(t))
        notes = "\n".join(t["notes"])
        self.assertIn("client certificates are required (enforced", notes)
        self.assertIn("TLS versions accepted: TLS 1.2, TLS 1.3", notes)


def moat_passwd(path, user, password):
    r = subprocess.run([MOAT, "passwd", "--stdin", path, user],
                       input=password + "\n", capture_output=True,
                       universal_newlines=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("moat passwd failed: " + r.stderr)


def strong_passwd(path, user):
    """A random password that `moat passwd` accepts, set for user: the
    password-quality check may (rightly) refuse a random draw that
    happens to hold a dictionary word or a long run of one class."""
    for _ in range(10):
        pw = "Dev-" + secrets.token_urlsafe(18)
        try:
            moat_passwd(path, user, pw)
            return pw
        except RuntimeError as e:
            if "weak password" not in str(e):
                raise
    raise RuntimeError("moat passwd refused 10 random passwords")


class InitBroker(Broker):
    """moatd on a `moatd init` set-up, its TLS listener (the only one)
    moved to an ephemeral loopback port (as test_init.py does)."""

    def __init__(self, setup_dir):
        self.dir = tempfile.TemporaryDirectory(prefix="moat-audit-log-")
        self.log_path = os.path.join(self.dir.name, "moatd.log")
        self.conf = os.path.join(setup_dir, "moatd-test.conf")
        with open(os.path.join(setup_dir, "moatd.conf")) as f:
            text = f.read()
        text = re.sub(r"^listener 8883$", "listener 0 127.0.0.1", text,
                      flags=re.M)
        text += "workers 2\n" + stay_root(text)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.args = []
        self.proc = None
        self.port = None

    def start(self):
        super().start()
        log = self.read_log()
        self.tls_port = int(re.search(
            r"listening on 127\.0\.0\.1:(\d+) \(TLS\)", log).group(1))
        return self


class MoatdInit(unittest.TestCase):
    """`moatd init`, then two device accounts as init's ACL suggests
    (`clientid %u-*`, write devices/%u/#, read commands/%u/#)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-audit-init-")
        self.dir = os.path.join(self.tmp.name, "setup")
        r = subprocess.run([MOATD, "init", self.dir], capture_output=True,
                           universal_newlines=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.pw = {}
        for user in ("sensor-1", "sensor-2"):
            self.pw[user] = strong_passwd(os.path.join(self.dir, "passwd"),
                                          user)
        with open(os.path.join(self.dir, "acl"), "a") as f:
            f.write("\nuser sensor-1\nclientid %u-*\n"
                    "user sensor-2\nclientid %u-*\n"
                    "pattern write devices/%u/#\n"
                    "pattern read commands/%u/#\n")

    def tearDown(self):
        self.tmp.cleanup()

    def test_no_high_finding(self):
        with InitBroker(self.dir) as b:
            r, doc = audit_json(
                *FAST, "--cafile", os.path.join(self.dir, "ca.crt"),
                "--as", "sensor-1:" + self.pw["sensor-1"],
                "--as", "sensor-2:" + self.pw["sensor-2"],
                "--intrusive", "--test-topic", "commands/sensor-2/audit",
                "mqtts://127.0.0.1:%d" % b.tls_port)
            self.assertTrue(b.alive())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        [tls] = doc["targets"]
        self.assertEqual(tls["status"], "audited", tls)
        # The TLS listener, the only one: nothing at all.
        self.assertEqual(ids_of(tls), set(), tls)
        notes = "\n".join(tls["notes"])
        for what in ("TLS versions accepted: TLS 1.2, TLS 1.3",
                     "anonymous CONNECT refused",
                     "Maximum Packet Size 1048576, Server Keep Alive 300",
                     "was closed after",
                     "SUBACK # Not authorized",
                     "$share/moat-audit/# refused as well",
                     'client id "+": refused',
                     "refused at CONNECT",
                     "with user \"sensor-1\"'s client id: refused",
                     "a refused login did not touch"):
            self.assertIn(what, notes)
        self.assertNotIn(self.pw["sensor-1"], r.stdout)

    def test_untrusted_without_cafile(self):
        with InitBroker(self.dir) as b:
            r, doc = audit_json(*FAST,
                                "mqtts://127.0.0.1:%d" % b.tls_port)
        self.assertEqual(r.returncode, 1)
        [t] = doc["targets"]
        self.assertEqual(ids_of(t), {"AUD-TLS-03"})
        self.assertIn("cannot be verified with the system's CAs",
                      finding(t, "AUD-TLS-03")[0]["evidence"])
        self.assertIn("MQTT checks not run", "\n".join(t["notes"]))


@unittest.skipUnless(HAVE_MOSQUITTO and HAVE_OPENSSL,
                     "mosquitto or openssl not installed")
class Unexpected(unittest.TestCase):
    """Servers the audit did not expect: a clear error each, and the
    others are still audited."""

    def test_errors_per_target(self):
        tmp = tempfile.TemporaryDirectory(prefix="moat-audit-x-")
        self.addCleanup(tmp.cleanup)
        os.chmod(tmp.name, 0o755)
        crt, key = make_cert(tmp.name, "srv")
        good = Mosquitto("listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
                         "persistence false\n").start()
        self.addCleanup(good.cleanup)
        tls = Mosquitto("listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\ncertfile %s\nkeyfile %s\n"
                        % (crt, key)).start()
        self.addCleanup(tls.cleanup)
        http, silent = FakeServer("http"), FakeServer("silent")
        self.addCleanup(http.close)
        self.addCleanup(silent.close)
        closed = free_port()
        targets = ["mqtt://127.0.0.1:%d" % closed, tls.url("mqtt"),
                   good.url("mqtts"), http.url(), silent.url(),
                   silent.url("mqtts"), good.url()]
        r, doc = audit_json(*FAST, "--timeout", "1500", "--idle-limit", "1",
                            *targets)
        self.assertEqual(r.returncode, 2, r.stderr)
        got = {t["target"]: t for t in doc["targets"]}
        expect = {
            targets[0]: "cannot connect: Connection refused",
            targets[1]: "this port speaks TLS",
            targets[2]: "TLS handshake failed",
            targets[3]: 'not an MQTT server: it answered CONNECT with '
                        '"HTTP/1.1 400 Bad Request"',
            targets[4]: "did not answer CONNECT within 1500 ms",
            targets[5]: "TLS handshake failed: no answer within the timeout",
        }
        for url, msg in expect.items():
            self.assertEqual(got[url]["status"], "error", got[url])
            self.assertIn(msg, got[url]["error"])
            self.assertEqual(got[url]["findings"], [])
        self.assertIn("use mqtt://", got[targets[2]]["error"])
        self.assertIn("audit it as mqtts://", got[targets[1]]["error"])
        # The good one among them was audited in full.
        self.assertEqual(got[good.url()]["status"], "audited")
        self.assertTrue({"AUD-MQ-01", "AUD-MQ-02", "AUD-MQ-04"} <=
                        ids_of(got[good.url()]))
        # The same in SARIF: errors are tool notifications.
        r = audit(*FAST, "--timeout", "1500", "--idle-limit", "1",
                  "--format", "sarif", targets[0], targets[3])
        self.assertEqual(r.returncode, 2)
        run = validate_sarif(json.loads(r.stdout))
        inv = run["invocations"][0]
        self.assertFalse(inv["executionSuccessful"])
        self.assertEqual(len(inv["toolExecutionNotifications"]), 2)
        # And in text.
        r = audit(*FAST, "--timeout", "1500", targets[0])
        self.assertEqual(r.returncode, 2)
        self.assertIn("ERROR: cannot connect", r.stdout)


class ConfigLint(unittest.TestCase):
    CONF = ("listener 1883\nallow_anonymous true\n")

    def test_same_as_moatd_check(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "mosquitto.conf")
            with open(p, "w") as f:
                f.write(self.CONF)
            r, doc = audit_json("--config", p)
            self.assertEqual(r.returncode, 1, r.stderr)
            [t] = doc["targets"]
            self.assertEqual(t["target"], p)
            self.assertIn("read as a mosquitto configuration", t["notes"])
            c = subprocess.run([MOATD, "--check", "-c", p, "--format",
                                "json"], capture_output=True,
                               universal_newlines=True, timeout=60)
            check = json.loads(c.stdout)
            self.assertEqual(sorted((f["id"], f["evidence"])
                                    for f in t["findings"]),
                             sorted((f["id"], f["evidence"])
                                    for f in check["findings"]))
            self.assertIn("AUD-CFG-01", ids_of(t))
            r = audit("--config", p, "--format", "sarif")
            run = validate_sarif(json.loads(r.stdout))
            uri = run["results"][0]["locations"][0]["physicalLocation"][
                "artifactLocation"]["uri"]
            self.assertTrue(uri.startswith("file:///"), uri)
            r = audit("--config", p, "--fail-on", "critical")
            self.assertEqual(r.returncode,
                             1 if any(f["severity"] == "critical"
                                      for f in t["findings"]) else 0)
            r = audit("--config", os.path.join(d, "missing.conf"))
            self.assertEqual(r.returncode, 2)

    def test_every_probe_id_is_documented(self):
        with open(os.path.join(ROOT, "docs", "audit.md")) as f:
            doc = f.read()
        probe = {i for i in catalogue_ids() if not i.startswith("AUD-CFG")
                 and i not in ("AUD-WS-01", "AUD-BR-01")}
        for fid in sorted(probe):
            self.assertRegex(doc, r"(?m)^### " + re.escape(fid) + r" ",
                             fid + " is not in docs/audit.md")


def setUpModule():
    if not os.path.exists(MOAT) and not shutil.which(MOAT):
        raise RuntimeError("moat binary not found: set MOAT_BIN")


if __name__ == "__main__":
    unittest.main()
