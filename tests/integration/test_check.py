"""moatd --check: the configuration lint (docs/security-checks.md).

Each test writes a moatd.conf or mosquitto.conf (and the files it names)
into a private temporary directory and runs `moatd --check -c FILE`,
usually with --format json so that the finding ids can be compared.
Exit status: 0 = nothing high or critical, 1 = something is, 2 = usage
error or unreadable file.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import MOATD  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SEVERITIES = ("info", "low", "medium", "high", "critical")
HAVE_TOOLS = shutil.which("openssl") and shutil.which("mosquitto_passwd")


def run(args, timeout=30):
    r = subprocess.run([MOATD] + args, capture_output=True, timeout=timeout)
    # Sanitizer builds exit with 1 too: look for their reports.
    for sign in (b"Sanitizer", b"runtime error:"):
        if sign in r.stderr:
            raise AssertionError("sanitizer report:\n" +
                                 r.stderr.decode(errors="replace"))
    return r


class Case:
    """A temporary directory holding one configuration and its files."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-check-")
        self.dir = self.tmp.name

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o600):
        p = self.path(name)
        with open(p, "w" if isinstance(text, str) else "wb") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def check(self, conf, *extra):
        return run(["--check", "-c", self.path(conf)] + list(extra))

    def json(self, conf):
        """(exit status, parsed report)"""
        r = self.check(conf, "--format", "json")
        return r.returncode, json.loads(r.stdout.decode())

    def tls_files(self, days=365):
        """A throwaway EC key (0600) and self-signed certificate."""
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             self.path("key.pem"), "-out", self.path("cert.pem"),
             "-days", str(days), "-subj", "/CN=localhost"],
            check=True, capture_output=True, timeout=30)
        os.chmod(self.path("key.pem"), 0o600)

    def passwords(self, name="passwd"):
        # -b puts the password on argv: fine for a throwaway test file.
        subprocess.run(["mosquitto_passwd", "-c", "-b", self.path(name),
                        "alice", "Corr3ct-Horse-Battery"],
                       check=True, capture_output=True, timeout=30)
        os.chmod(self.path(name), 0o600)

    def cleanup(self):
        self.tmp.cleanup()


def ids(report):
    return [f["id"] for f in report["findings"]]


def find(report, fid):
    return [f for f in report["findings"] if f["id"] == fid]


HARDENED = """\
listener 8883
certfile cert.pem
keyfile key.pem
allow_anonymous false
password_file passwd
acl_file acl
"""

ACL = "user alice\ntopic readwrite sensors/alice/#\n"


class CheckBase(unittest.TestCase):
    def setUp(self):
        self.c = Case()

    def tearDown(self):
        self.c.cleanup()


class Permissive(CheckBase):
    CONF = "listener 1883\nallow_anonymous true\n"

    def test_mosquitto_permissive_is_high(self):
        self.c.write("mosquitto.conf", self.CONF)
        rc, rep = self.c.json("mosquitto.conf")
        self.assertEqual(rc, 1)
        self.assertEqual(rep["dialect"], "mosquitto")
        for fid in ("AUD-MQ-01", "AUD-CFG-01", "AUD-CFG-02"):
            self.assertIn(fid, ids(rep))
        plain = find(rep, "AUD-MQ-01")[0]
        self.assertEqual(plain["severity"], "high")
        self.assertIn("listener 1883 on all addresses", plain["evidence"])
        self.assertIn("mosquitto.conf:1", plain["evidence"])
        # anonymous + plaintext + no ACL: anyone reads everything
        self.assertEqual(find(rep, "AUD-CFG-01")[0]["severity"], "critical")
        # mosquitto publishes $SYS by default, and nothing limits it
        self.assertIn("AUD-MQ-04", ids(rep))
        self.assertIn("AUD-MQ-12", ids(rep))

    def test_text_output(self):
        self.c.write("mosquitto.conf", self.CONF)
        r = self.c.check("mosquitto.conf")
        self.assertEqual(r.returncode, 1)
        out = r.stdout.decode()
        self.assertRegex(out, r"(?m)^HIGH +AUD-MQ-01 +Plaintext MQTT")
        self.assertRegex(out, r"(?m)^  what: listener 1883 on all "
                              r"addresses has no TLS \(mosquitto\.conf:1\)$")
        self.assertRegex(out, r"(?m)^  fix: +\S")
        self.assertRegex(out, r"(?m)^\d+ findings: 1 critical, \d+ high, "
                              r"\d+ medium, \d+ low, \d+ info$")

    def test_moatd_reports_why_it_refuses(self):
        self.c.write("moatd.conf", self.CONF)
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        self.assertEqual(rep["dialect"], "moatd")
        for fid in ("AUD-MQ-01", "AUD-CFG-01", "AUD-CFG-02", "AUD-CFG-03"):
            self.assertIn(fid, ids(rep))
        refused = [f for f in find(rep, "AUD-CFG-03")
                   if "moatd refuses to start" in f["evidence"]]
        self.assertEqual(len(refused), 1)

    def test_insecure_interlock(self):
        self.c.write("moatd.conf", self.CONF + "allow_insecure_listener true\n")
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        self.assertEqual(find(rep, "AUD-CFG-07")[0]["severity"], "medium")
        self.assertNotIn("AUD-CFG-03", ids(rep))  # moatd would start

    def test_loopback_anonymous_is_fine(self):
        self.c.write("moatd.conf", "listener 1883 127.0.0.1\n"
                                   "allow_anonymous true\n")
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 0, rep)
        self.assertEqual(rep["findings"], [])

    def test_mosquitto_without_listener_is_local_only(self):
        self.c.write("mosquitto.conf", "persistence false\n"
                                       "max_packet_size 1000000\n"
                                       "max_keepalive 120\n"
                                       "max_queued_bytes 1000000\n"
                                       "memory_limit 100000000\n")
        rc, rep = self.c.json("mosquitto.conf")
        self.assertEqual(rc, 0, rep)
        self.assertEqual(rep["findings"], [])


@unittest.skipUnless(HAVE_TOOLS, "openssl or mosquitto_passwd missing")
class Hardened(CheckBase):
    def setUp(self):
        super().setUp()
        self.c.tls_files()
        self.c.passwords()
        self.c.write("acl", ACL)
        self.c.write("moatd.conf", HARDENED)

    def test_hardened_moatd_config_passes(self):
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 0, rep)
        self.assertEqual(rep["dialect"], "moatd")
        bad = [f for f in rep["findings"]
               if f["severity"] in ("high", "critical")]
        self.assertEqual(bad, [])
        # moatd itself accepts what the lint passes
        r = run(["-c", self.c.path("moatd.conf"), "--test-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        # mosquitto_passwd's 101-iteration PBKDF2: a low finding only
        low = find(rep, "AUD-CFG-08")
        self.assertEqual([f["severity"] for f in low], ["low"])
        self.assertIn("alice", low[0]["evidence"])

    def test_world_readable_keyfile(self):
        os.chmod(self.c.path("key.pem"), 0o644)
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        hits = [f for f in find(rep, "AUD-CFG-04")
                if "keyfile" in f["evidence"]]
        self.assertEqual(len(hits), 1, rep)
        self.assertEqual(hits[0]["severity"], "high")
        self.assertIn("0644", hits[0]["evidence"])
        self.assertIn("moatd.conf:3", hits[0]["evidence"])

    def test_world_readable_password_file(self):
        os.chmod(self.c.path("passwd"), 0o604)
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        hits = [f for f in find(rep, "AUD-CFG-04")
                if "password_file" in f["evidence"]]
        self.assertEqual([f["severity"] for f in hits], ["high"])

    def test_group_writable_acl(self):
        # a group member could grant itself topics; moatd refuses it too
        os.chmod(self.c.path("acl"), 0o660)
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        hits = [f for f in find(rep, "AUD-CFG-04")
                if "writable by its group" in f["evidence"]]
        self.assertEqual(len(hits), 1, rep)

    def test_symlinked_acl(self):
        os.symlink(self.c.path("acl"), self.c.path("acl-link"))
        self.c.write("moatd.conf", HARDENED.replace("acl_file acl",
                                                    "acl_file acl-link"))
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        hits = [f for f in find(rep, "AUD-CFG-04")
                if "symbolic link" in f["evidence"]]
        self.assertEqual(len(hits), 1, rep)
        self.assertEqual(hits[0]["severity"], "high")

    def test_wildcard_acl_for_anonymous(self):
        self.c.write("acl", "topic read #\n" + ACL)
        rc, rep = self.c.json("moatd.conf")
        hits = find(rep, "AUD-MQ-05")
        self.assertEqual(len(hits), 1, rep)
        self.assertIn("acl:1", hits[0]["evidence"])
        # nobody is anonymous here: dormant, so medium
        self.assertEqual(hits[0]["severity"], "medium")

    def test_wildcard_acl_pattern(self):
        self.c.write("acl", ACL + "pattern read +/#\n")
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        self.assertEqual([f["severity"] for f in find(rep, "AUD-MQ-05")],
                         ["high"])

    def test_empty_acl(self):
        self.c.write("acl", "# nothing yet\n")
        rc, rep = self.c.json("moatd.conf")
        hits = find(rep, "AUD-CFG-02")
        self.assertEqual(len(hits), 1, rep)
        self.assertIn("no rules", hits[0]["evidence"])

    def test_legacy_sha512_hash(self):
        with open(self.c.path("passwd"), "a") as f:
            f.write("bob:$6$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==\n")
        rc, rep = self.c.json("moatd.conf")
        hits = [f for f in find(rep, "AUD-CFG-08") if "$6$" in f["evidence"]]
        self.assertEqual(len(hits), 1, rep)
        self.assertEqual(hits[0]["severity"], "medium")
        self.assertIn("bob", hits[0]["evidence"])

    def test_missing_referenced_file(self):
        os.unlink(self.c.path("acl"))
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        self.assertTrue(any("acl_file" in f["evidence"]
                            for f in find(rep, "AUD-CFG-03")), rep)

    def test_mosquitto_hardened(self):
        self.c.write("mosquitto.conf",
                     "per_listener_settings false\n"
                     "listener 8883\ncertfile cert.pem\nkeyfile key.pem\n"
                     "tls_version tlsv1.2\n"
                     "allow_anonymous false\npassword_file passwd\n"
                     "acl_file acl\nsys_interval 0\n"
                     "max_packet_size 1048576\nmax_keepalive 300\n"
                     "max_queued_bytes 16777216\nmemory_limit 1073741824\n")
        rc, rep = self.c.json("mosquitto.conf")
        self.assertEqual(rc, 0, rep)
        self.assertEqual(rep["dialect"], "mosquitto")
        self.assertFalse([f for f in rep["findings"]
                          if f["severity"] in ("high", "critical")])


class MosquittoDirectives(CheckBase):
    def lint(self, text):
        self.c.write("mosquitto.conf", text)
        return self.c.json("mosquitto.conf")

    def test_port_written_with_leading_zero(self):
        # mosquitto reads ports with atoi: "01883" is 1883 on all addresses
        rc, rep = self.lint("listener 01883\nallow_anonymous true\n")
        self.assertEqual(rc, 1)
        self.assertTrue(find(rep, "AUD-CFG-01"), rep)

    def test_fifo_in_place_of_a_file_does_not_hang(self):
        fifo = self.c.path("passwd.fifo")
        os.mkfifo(fifo, 0o600)
        self.c.write("mosquitto.conf", "listener 8883\npassword_file %s\n"
                     % fifo)
        r = self.c.check("mosquitto.conf")  # bounded by run()'s timeout
        self.assertIn(b"not a regular file", r.stdout)

    def test_old_tls_version(self):
        rc, rep = self.lint("listener 8883\ncertfile c.pem\nkeyfile k.pem\n"
                            "tls_version tlsv1\n")
        self.assertEqual(rc, 1)
        hit = find(rep, "AUD-TLS-01")
        self.assertEqual(len(hit), 1, rep)
        self.assertIn("mosquitto.conf:4", hit[0]["evidence"])

    def test_weak_ciphers(self):
        rc, rep = self.lint("listener 8883\ncertfile c.pem\nkeyfile k.pem\n"
                            "ciphers ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA:"
                            "!aNULL:NULL-MD5\n")
        hit = find(rep, "AUD-TLS-02")
        self.assertEqual(len(hit), 1, rep)
        self.assertIn("RC4-SHA", hit[0]["evidence"])
        self.assertIn("NULL-MD5", hit[0]["evidence"])
        self.assertNotIn("aNULL", hit[0]["evidence"])  # an exclusion
        self.assertNotIn("ECDHE", hit[0]["evidence"])

    def test_unknown_directive_has_line_number(self):
        rc, rep = self.lint("# comment\nlistener 1883 127.0.0.1\n"
                            "alow_anonymous false\n")
        self.assertEqual(rc, 1)
        hit = find(rep, "AUD-CFG-03")
        self.assertEqual(len(hit), 1, rep)
        self.assertIn("mosquitto.conf:3", hit[0]["evidence"])
        self.assertIn("alow_anonymous", hit[0]["evidence"])

    def test_bad_boolean(self):
        rc, rep = self.lint("listener 1883 127.0.0.1\nallow_anonymous yes\n")
        self.assertIn("AUD-CFG-03", ids(rep))

    def test_user_root(self):
        rc, rep = self.lint("user root\n")
        self.assertEqual(rc, 1)
        self.assertEqual([f["severity"] for f in find(rep, "AUD-CFG-05")],
                         ["high"])

    def test_debug_logging(self):
        rc, rep = self.lint("log_type all\n")
        self.assertEqual([f["severity"] for f in find(rep, "AUD-CFG-06")],
                         ["low"])

    def test_identity_without_required_certificate(self):
        rc, rep = self.lint("listener 8883 127.0.0.1\ncertfile c.pem\n"
                            "keyfile k.pem\nuse_identity_as_username true\n")
        self.assertIn("AUD-TLS-04", ids(rep))

    def test_websockets_without_origin(self):
        rc, rep = self.lint("listener 9001\nprotocol websockets\n")
        self.assertIn("AUD-WS-01", ids(rep))
        self.assertIn("AUD-MQ-01", ids(rep))

    def test_bridge_without_tls(self):
        rc, rep = self.lint("connection up\naddress broker.example:1883\n"
                            "topic # out 0\n")
        self.assertIn("AUD-BR-01", ids(rep))

    def test_per_listener_settings(self):
        # the plaintext listener is anonymous, the TLS one is not
        rc, rep = self.lint("per_listener_settings true\n"
                            "listener 1883\nallow_anonymous true\n"
                            "listener 8883\ncertfile c.pem\nkeyfile k.pem\n"
                            "allow_anonymous false\n")
        anon = find(rep, "AUD-CFG-01")
        self.assertEqual(len(anon), 1, rep)
        self.assertIn("listener 1883", anon[0]["evidence"])

    def test_include_dir(self):
        os.mkdir(self.c.path("conf.d"))
        self.c.write("conf.d/10-net.conf", "listener 1883\n"
                                           "allow_anonymous true\n")
        self.c.write("conf.d/ignored.txt", "user root\n")
        rc, rep = self.lint("include_dir conf.d\n")
        self.assertIn("AUD-CFG-01", ids(rep))
        self.assertIn("10-net.conf:1", find(rep, "AUD-MQ-01")[0]["evidence"])
        self.assertNotIn("AUD-CFG-05", ids(rep))

    def test_sys_readable_by_pattern(self):
        self.c.write("acl", "pattern read $SYS/#\nuser a\ntopic a/#\n")
        rc, rep = self.lint("listener 8883\ncertfile c.pem\nkeyfile k.pem\n"
                            "password_file p\nacl_file acl\n")
        self.assertTrue(any("acl:1" in f["evidence"]
                            for f in find(rep, "AUD-MQ-04")), rep)


class MoatdDirectives(CheckBase):
    def test_unknown_directive_has_line_number(self):
        self.c.write("moatd.conf", "workers 1\n# comment\nbogus_directive 3\n")
        rc, rep = self.c.json("moatd.conf")
        self.assertEqual(rc, 1)
        self.assertEqual(rep["dialect"], "moatd")
        hit = find(rep, "AUD-CFG-03")
        self.assertEqual(len(hit), 1, rep)
        self.assertIn("moatd.conf:3: bogus_directive: unknown directive",
                      hit[0]["evidence"])

    def test_every_bad_line_is_reported(self):
        self.c.write("moatd.conf", "workers many\nlistener 1883 127.0.0.1\n"
                                   "max_packet_size 10\n")
        rc, rep = self.c.json("moatd.conf")
        where = [f["evidence"].split(":")[1] for f in find(rep, "AUD-CFG-03")]
        self.assertEqual(sorted(where), ["1", "3"])

    def test_raised_limits(self):
        self.c.write("moatd.conf", "max_packet_size 200m\nmax_keepalive 3600\n"
                                   "auth_backoff_initial 0\n")
        rc, rep = self.c.json("moatd.conf")
        lim = {f["evidence"].split()[0]: f["severity"]
               for f in find(rep, "AUD-MQ-12")}
        self.assertEqual(lim, {"max_packet_size": "medium",
                               "max_keepalive": "low"})
        self.assertIn("AUD-MQ-03b", ids(rep))
        self.assertEqual(rc, 0)  # nothing high

    def test_debug_log_level(self):
        self.c.write("moatd.conf", "log_level debug\n")
        rc, rep = self.c.json("moatd.conf")
        self.assertIn("AUD-CFG-06", ids(rep))


class Output(CheckBase):
    def test_missing_file(self):
        r = run(["--check", "-c", self.c.path("nope.conf")])
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"nope.conf: cannot open: No such file", r.stderr)

    def test_directory_is_not_a_config(self):
        r = run(["--check", "-c", self.c.dir])
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"not a regular file", r.stderr)

    def test_usage_errors(self):
        self.c.write("moatd.conf", "")
        for args in (["--check"],
                     ["--check", "-c", self.c.path("moatd.conf"),
                      "--format", "xml"],
                     ["-c", self.c.path("moatd.conf"), "--format", "json"],
                     ["--check", "-c", self.c.path("moatd.conf"), "-p",
                      "1884"]):
            r = run(args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, b"", args)

    def test_help_mentions_check(self):
        r = run(["--help"])
        self.assertIn(b"--check", r.stdout)
        self.assertIn(b"--format", r.stdout)

    def test_json_fields(self):
        self.c.write("mosquitto.conf", "listener 1883\nuser root\n")
        r = self.c.check("mosquitto.conf", "--format", "json")
        rep = json.loads(r.stdout.decode())
        self.assertEqual(set(rep), {"file", "dialect", "summary",
                                    "findings"})
        self.assertEqual(rep["file"], self.c.path("mosquitto.conf"))
        self.assertTrue(rep["findings"])
        for f in rep["findings"]:
            self.assertEqual(set(f), {"id", "severity", "title", "evidence",
                                      "remediation"})
            self.assertRegex(f["id"], r"^AUD-[A-Z]+-\d+[a-z]?$")
            self.assertIn(f["severity"], SEVERITIES)
            self.assertTrue(f["title"] and f["remediation"])
        order = [SEVERITIES.index(f["severity"]) for f in rep["findings"]]
        self.assertEqual(order, sorted(order, reverse=True))
        self.assertEqual(sum(rep["summary"].values()), len(rep["findings"]))

    def test_control_characters_are_escaped(self):
        evil = b"listener 1883 127.0.0.1\n\x1b[2J\x1b]0;pwned\x07 1\n" \
               b"caf\xc3\xa9_directive 1\n"
        self.c.write("mosquitto.conf", evil)
        r = self.c.check("mosquitto.conf")
        self.assertEqual(r.returncode, 1)
        self.assertNotIn(b"\x1b", r.stdout)
        self.assertNotIn(b"\x07", r.stdout)
        self.assertIn(b"\\x1b[2J", r.stdout)
        r = self.c.check("mosquitto.conf", "--format", "json")
        rep = json.loads(r.stdout.decode("ascii"))
        self.assertTrue(all(f["evidence"].isprintable()
                            for f in rep["findings"]))

    def test_every_id_is_documented(self):
        with open(os.path.join(ROOT, "src", "check", "findings.c")) as f:
            catalogue = set(re.findall(r'\{"(AUD-[A-Z]+-\d+[a-z]?)"',
                                       f.read()))
        with open(os.path.join(ROOT, "docs", "security-checks.md")) as f:
            doc = f.read()
        self.assertGreaterEqual(len(catalogue), 15)
        for fid in sorted(catalogue):
            self.assertRegex(doc, r"(?m)^### " + re.escape(fid) + r" ",
                             fid + " is not in docs/security-checks.md")


if __name__ == "__main__":
    unittest.main()
