"""Black-box tests of `moatd init DIR`, the one-command production set-up.

Environment:
  MOATD_BIN  path of moatd (required)
  MOAT_BIN   path of moat (InitBroker)

Groups:
  InitUsage      command-line errors exit 2 and write nothing; --help.
  InitFiles      one set-up: file modes, certificates (checked with the
                 openssl tool), the password and its hash, the printed
                 commands, and moatd -t accepting the configuration.
  InitReplace    an existing set-up is never replaced without --force;
                 --force replaces all of it; a directory other users can
                 write to is refused; failures leave nothing behind.
  InitBroker     moatd started on the set-up (its listener moved to an
                 ephemeral loopback port) serves moat pub/sub over TLS with
                 the admin password (moat's own clients only, as printed by
                 init), has no plaintext port, and refuses a wrong
                 password, an untrusted certificate and anonymous clients.

Every subprocess has a timeout; only loopback addresses are used.
"""
import datetime
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moat_harness import (Broker,  # noqa
                          connect_packet, raw_connect, read_packet,
                          stay_root)

MOATD = os.environ.get("MOATD_BIN", "moatd")
MOAT = os.environ.get("MOAT_BIN", "moat")
TIMEOUT = 60.0
FILES = {"ca.key": 0o600, "ca.crt": 0o644, "server.key": 0o600,
         "server.crt": 0o644, "passwd": 0o600, "acl": 0o600,
         "leak.key": 0o600, "moatd.conf": 0o600}
SECRET_FILES = [n for n, m in FILES.items() if m == 0o600]
PASSWORD_LINE = re.compile(r"^Admin password: (\S+)$", re.M)
ARGON_LINE = re.compile(r"^admin:\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$"
                        r"[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+\n$")


def check_sanitizers(text):
    for mark in ("Sanitizer", "runtime error:"):
        if mark in text:
            raise AssertionError("sanitizer report:\n" + text)


def init(*args, stdout=subprocess.PIPE):
    r = subprocess.run([MOATD, "init"] + list(args), stdout=stdout,
                       stderr=subprocess.PIPE, timeout=TIMEOUT,
                       universal_newlines=True)
    check_sanitizers(r.stderr)
    return r


def run(*cmd, timeout=TIMEOUT):
    return subprocess.run(list(cmd), capture_output=True, timeout=timeout,
                          universal_newlines=True)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def snapshot(d):
    """Name -> (bytes, mtime) of every file in d."""
    out = {}
    for name in os.listdir(d):
        p = os.path.join(d, name)
        with open(p, "rb") as f:
            out[name] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def password_of(r):
    m = PASSWORD_LINE.search(r.stdout)
    if not m:
        raise AssertionError("no password printed:\n" + r.stdout)
    return m.group(1)


class TmpDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-init-")
        self.dir = os.path.join(self.tmp.name, "setup")

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertInitOk(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")

    def assertNoSetup(self, d=None):
        """None of the set-up's files, nor a temporary, is in d."""
        d = d or self.dir
        left = os.listdir(d) if os.path.isdir(d) else []
        self.assertEqual([n for n in left if n in FILES or
                          n.endswith(".init-tmp")], [])


class InitUsage(TmpDirTest):
    def test_help(self):
        for arg in ("-h", "--help"):
            r = init(arg)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("Usage: moatd init DIR [--san NAME]... [--force]",
                          r.stdout)
            self.assertIn("--force", r.stdout)
        r = run(MOATD, "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("moatd init DIR", r.stdout)

    def assertUsage(self, r, needle):
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(needle, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(self.dir))

    def test_no_directory(self):
        self.assertUsage(init(), "which directory?")
        self.assertUsage(init("--force"), "which directory?")
        self.assertUsage(init(""), "which directory?")

    def test_two_directories(self):
        self.assertUsage(init(self.dir, self.dir + "2"), "one directory")

    def test_unknown_option(self):
        self.assertUsage(init(self.dir, "--bogus"), "moatd init --help")
        self.assertUsage(init(self.dir, "--san"), "moatd init --help")

    def test_bad_san(self):
        # A comma would add names if SANs were built from a config string.
        for bad in ("a.example,IP:10.0.0.1", "two words", "a..b", "-a.b",
                    "a-.b", "x" * 64 + ".example", "fe80::1%eth0", "a/b",
                    "", "."):
            self.assertUsage(init(self.dir, "--san", bad),
                             "neither an IP address nor a DNS name")

    def test_too_many_sans(self):
        args = []
        for i in range(33):
            args += ["--san", "h%d.example" % i]
        self.assertUsage(init(self.dir, *args), "at most 32")


class InitFiles(unittest.TestCase):
    """One set-up for the whole class: key generation and argon2id are
    not free, and nothing here changes the files."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="moat-init-")
        cls.dir = os.path.join(cls.tmp.name, "setup")
        cls.r = init(cls.dir, "--san", "example.internal",
                     "--san", "192.0.2.7", "--san", "2001:db8::7")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def x509(self, name, *opts):
        r = run("openssl", "x509", "-in", self.path(name), "-noout", *opts)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_exit_status(self):
        self.assertEqual(self.r.returncode, 0, self.r.stderr)
        self.assertEqual(self.r.stderr, "")

    def test_modes(self):
        self.assertEqual(mode_of(self.dir), 0o700)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(FILES))
        for name, mode in FILES.items():
            self.assertEqual(mode_of(self.path(name)), mode, name)

    def test_server_certificate(self):
        text = self.x509("server.crt", "-text")
        for san in ("DNS:example.internal", "DNS:localhost",
                    "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1",
                    "IP Address:192.0.2.7", "IP Address:2001:DB8:0:0:0:0:0:7"):
            self.assertIn(san, text)
        self.assertRegex(text, r"Basic Constraints: critical\s+CA:FALSE")
        self.assertRegex(text, r"Key Usage: critical\s+Digital Signature\n")
        self.assertRegex(text, r"Extended Key Usage:\s*\n\s*TLS Web Server "
                               r"Authentication\n")
        self.assertIn("Authority Key Identifier", text)
        self.assertIn("ASN1 OID: prime256v1", text)
        self.assertIn("ecdsa-with-SHA256", text)

    def test_ca_certificate(self):
        text = self.x509("ca.crt", "-text")
        self.assertRegex(text, r"Subject: CN ?= ?moat CA \S+")
        self.assertRegex(text, r"Basic Constraints: critical\s+CA:TRUE")
        self.assertRegex(text, r"Key Usage: critical\s+Certificate Sign, "
                               r"CRL Sign\n")
        self.assertIn("Subject Key Identifier", text)
        self.assertIn("ASN1 OID: prime256v1", text)

    def validity_days(self, name):
        dates = dict(line.split("=", 1) for line in
                     self.x509(name, "-dates").splitlines())
        fmt = "%b %d %H:%M:%S %Y GMT"
        nb = datetime.datetime.strptime(" ".join(dates["notBefore"].split()),
                                        fmt)
        na = datetime.datetime.strptime(" ".join(dates["notAfter"].split()),
                                        fmt)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLessEqual(nb, now.replace(tzinfo=None))
        return (na - nb).total_seconds() / 86400

    def test_validity(self):
        # Clients that cap server certificates at 825 days count from
        # notBefore, backdated or not.
        self.assertEqual(self.validity_days("server.crt"), 825)
        self.assertEqual(self.validity_days("ca.crt"), 3650)

    def test_serials_are_random_128_bit(self):
        serials = set()
        for name in ("ca.crt", "server.crt"):
            s = self.x509(name, "-serial").strip().split("=")[1]
            self.assertGreaterEqual(len(s.lstrip("0")), 26, s)
            self.assertLessEqual(len(s.lstrip("0")), 32, s)
            serials.add(s)
        self.assertEqual(len(serials), 2)

    def test_verify(self):
        r = run("openssl", "verify", "-CAfile", self.path("ca.crt"),
                "-purpose", "sslserver", self.path("server.crt"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("server.crt: OK", r.stdout)
        for check in (("-verify_hostname", "localhost"),
                      ("-verify_hostname", "example.internal"),
                      ("-verify_ip", "127.0.0.1"),
                      ("-verify_ip", "192.0.2.7")):
            r = run("openssl", "verify", "-CAfile", self.path("ca.crt"),
                    *check, self.path("server.crt"))
            self.assertEqual(r.returncode, 0, (check, r.stdout, r.stderr))
        r = run("openssl", "verify", "-CAfile", self.path("ca.crt"),
                "-verify_hostname", "other.example", self.path("server.crt"))
        self.assertNotEqual(r.returncode, 0)

    def test_keys_match_certificates(self):
        for key, crt in (("ca.key", "ca.crt"), ("server.key", "server.crt")):
            a = run("openssl", "pkey", "-in", self.path(key), "-pubout")
            b = run("openssl", "x509", "-in", self.path(crt), "-noout",
                    "-pubkey")
            self.assertEqual(a.returncode, 0, a.stderr)
            self.assertEqual(a.stdout, b.stdout)
            with open(self.path(key)) as f:
                self.assertIn("-----BEGIN PRIVATE KEY-----", f.read())

    def test_password(self):
        pw = password_of(self.r)
        self.assertRegex(pw, r"^[A-Za-z0-9_][A-Za-z0-9_-]{23}$")
        self.assertIn("shown only once", self.r.stdout)
        with open(self.path("passwd")) as f:
            line = f.read()
        self.assertRegex(line, ARGON_LINE)
        self.assertNotIn(pw, line)
        for name in FILES:
            with open(self.path(name), "rb") as f:
                self.assertNotIn(pw.encode(), f.read(), name)

    def test_printed_commands(self):
        d = os.path.realpath(self.dir)
        pw = password_of(self.r)
        out = self.r.stdout
        self.assertIn("moatd -c %s/moatd.conf\n" % d, out)
        self.assertIn("moat sub --cafile %s/ca.crt -h localhost -p 8883 "
                      "-u admin -P '%s' -t '#' -v\n" % (d, pw), out)
        self.assertIn("moat pub --cafile %s/ca.crt -h localhost -p 8883 "
                      "-u admin -P '%s' -t test -m hello\n" % (d, pw), out)
        self.assertNotIn("mosquitto", out)
        self.assertNotIn("1883", out)
        for name in FILES:
            self.assertIn(name, out)

    def test_config(self):
        with open(self.path("moatd.conf")) as f:
            conf = f.read()
        lines = [ln for ln in conf.splitlines() if ln and ln[0] != "#"]
        self.assertEqual(lines[:3], ["listener 8883", "certfile server.crt",
                                     "keyfile server.key"])
        for want in ("password_file passwd", "acl_file acl",
                     "allow_anonymous false", "max_publish_rate 1000"):
            self.assertIn(want, lines)
        # one listener, the TLS one: no plaintext port
        self.assertEqual([ln for ln in lines if ln.startswith("listener")],
                         ["listener 8883"])
        self.assertFalse([ln for ln in lines if "insecure" in ln])
        r = run(MOATD, "-t", "-c", self.path("moatd.conf"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stdout)

    def test_acl(self):
        with open(self.path("acl")) as f:
            lines = [ln for ln in f.read().splitlines()
                     if ln and ln[0] != "#"]
        self.assertEqual(lines, ["user admin", "topic readwrite #",
                                 "topic read $SYS/#"])


class InitReplace(TmpDirTest):
    def test_symlinked_directory_refused(self):
        # a link could aim the set-up, and --force's overwrites, anywhere
        victim = os.path.join(self.tmp.name, "victim")
        os.mkdir(victim, 0o700)
        with open(os.path.join(victim, "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\n")
        os.symlink(victim, self.dir)
        for args in ((), ("--force",)):
            r = init(self.dir, *args)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("symbolic link", r.stderr)
        with open(os.path.join(victim, "passwd")) as f:
            self.assertEqual(f.read(), "root:x:0:0::/root:/bin/sh\n")

    def test_force_only_replaces_a_setup(self):
        # files of the same names in a directory that is not a set-up
        # (no moatd.conf) are never overwritten, even with --force
        os.mkdir(self.dir, 0o700)
        with open(self.path("passwd"), "w") as f:
            f.write("keep me\n")
        r = init(self.dir, "--force")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("does not look like a moat set-up", r.stderr)
        with open(self.path("passwd")) as f:
            self.assertEqual(f.read(), "keep me\n")

    def test_refuses_without_force(self):
        self.assertInitOk(init(self.dir))
        before = snapshot(self.dir)
        r = init(self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds a set-up", r.stderr)
        self.assertIn("--force", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(snapshot(self.dir), before)

    def test_force_replaces_everything(self):
        r1 = init(self.dir)
        self.assertInitOk(r1)
        before = snapshot(self.dir)
        r2 = init(self.dir, "--force")
        self.assertInitOk(r2)
        after = snapshot(self.dir)
        self.assertEqual(sorted(after), sorted(FILES))
        for name in ("ca.key", "ca.crt", "server.key", "server.crt",
                     "passwd"):
            self.assertNotEqual(after[name][0], before[name][0], name)
        self.assertNotEqual(password_of(r1), password_of(r2))
        for name, mode in FILES.items():
            self.assertEqual(mode_of(self.path(name)), mode, name)

    def test_any_key_stops_it(self):
        """Not only moatd.conf: a key left on its own is not replaced
        either."""
        os.mkdir(self.dir, 0o700)
        with open(self.path("ca.key"), "w") as f:
            f.write("precious\n")
        r = init(self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ca.key", r.stderr)
        self.assertEqual(os.listdir(self.dir), ["ca.key"])

    def test_existing_directory_kept(self):
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o750)
        with open(self.path("README"), "w") as f:
            f.write("mine\n")
        self.assertInitOk(init(self.dir))
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(list(FILES) + ["README"]))
        self.assertEqual(mode_of(self.dir), 0o750)

    def test_directory_writable_by_others(self):
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o777)
        r = init(self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("writable by other users", r.stderr)
        self.assertEqual(os.listdir(self.dir), [])

    def test_missing_parent(self):
        r = init(os.path.join(self.dir, "a", "b"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("parent must exist", r.stderr)
        self.assertFalse(os.path.exists(self.dir))

    def test_write_failure_leaves_nothing(self):
        """A temporary name that cannot be written (here: a directory in
        its place) fails the run before anything is renamed."""
        os.mkdir(self.dir, 0o700)
        blocker = self.path(".moatd.conf.init-tmp")
        os.mkdir(blocker)
        with open(os.path.join(blocker, "x"), "w") as f:
            f.write("x")
        r = init(self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn(".moatd.conf.init-tmp", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(os.listdir(self.dir), [".moatd.conf.init-tmp"])

    def test_write_failure_keeps_old_setup(self):
        self.assertInitOk(init(self.dir))
        before = snapshot(self.dir)
        os.mkdir(self.path(".moatd.conf.init-tmp"))
        with open(self.path(".moatd.conf.init-tmp/x"), "w") as f:
            f.write("x")
        r = init(self.dir, "--force")
        self.assertEqual(r.returncode, 1)
        shutil.rmtree(self.path(".moatd.conf.init-tmp"))
        self.assertEqual(snapshot(self.dir), before)

    def test_rename_failure_removes_half_replaced_setup(self):
        """When moatd.conf (renamed last) cannot be put in place, the
        files already renamed go too: no mix of old and new is left."""
        self.assertInitOk(init(self.dir))
        os.remove(self.path("moatd.conf"))
        os.mkdir(self.path("moatd.conf"))  # a rename onto it fails
        with open(self.path("moatd.conf/x"), "w") as f:
            f.write("x")
        r = init(self.dir, "--force")
        self.assertEqual(r.returncode, 1)
        self.assertIn("half-replaced set-up is removed", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(os.listdir(self.dir), ["moatd.conf"])

    def test_unprintable_password_removes_setup(self):
        """The password exists nowhere else: when it cannot be shown, the
        set-up is useless and must not stay behind."""
        with open("/dev/full", "w") as full:
            r = init(self.dir, stdout=full)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot print the admin password", r.stderr)
        self.assertFalse(os.path.exists(self.dir))


class SetupBroker(Broker):
    """moatd on an init set-up, its listener moved to an ephemeral loopback
    port (tests must not listen on every address, nor on fixed ports)."""

    def __init__(self, setup_dir, edit=None):
        self.dir = tempfile.TemporaryDirectory(prefix="moat-init-log-")
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
        self.listeners = re.findall(r"listening on (\S+)", log)
        return self


class InitBroker(TmpDirTest):
    """The set-up with moat's own clients, as init prints them."""

    def setUp(self):
        super().setUp()
        r = init(self.dir)
        self.assertInitOk(r)
        self.pw = password_of(r)

    def client(self, tool, port, *args, pw=None, cafile=True):
        cmd = [MOAT, tool, "-h", "localhost", "-p", str(port), "-u", "admin",
               "-P", pw or self.pw]
        if cafile:
            cmd += ["--cafile", self.path("ca.crt")]
        return cmd + list(args)

    def pub(self, port, *args, **kw):
        return run(*self.client("pub", port, "-t", "test", "-m", "hello",
                                "-q", "1", *args, **kw), timeout=20)

    def test_pub_sub_over_tls(self):
        with SetupBroker(self.dir) as b:
            self.assertEqual(b.listeners, ["127.0.0.1:%d" % b.tls_port])
            r = self.pub(b.tls_port, "-r")
            self.assertEqual(r.returncode, 0, r.stderr)
            # the retained message: the subscriber cannot miss it
            r = run(*self.client("sub", b.tls_port, "-t", "#", "-v",
                                 "-C", "1", "-W", "10"), timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "test hello\n")
            self.assertIn("over TLS", b.read_log())
            r = run(*self.client("pub", b.tls_port, "-t", "test", "-r",
                                 "-n", "-q", "1"), timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_wrong_password_refused(self):
        with SetupBroker(self.dir) as b:
            r = self.pub(b.tls_port, pw="not-the-password-0123456")
            self.assertEqual(r.returncode, 1)
            self.assertIn("bad user name or password", r.stderr)

    def test_anonymous_refused(self):
        with SetupBroker(self.dir) as b:
            r = run(MOAT, "pub", "-h", "localhost", "-p", str(b.tls_port),
                    "--cafile", self.path("ca.crt"), "-t", "t", "-m", "x",
                    timeout=20)
            self.assertEqual(r.returncode, 1)
            self.assertIn("not authorised", r.stderr)

    def test_untrusted_certificate_refused(self):
        other = os.path.join(self.tmp.name, "other")
        self.assertInitOk(init(other))
        with SetupBroker(self.dir) as b:
            # The system's CAs do not know ours...
            r = self.pub(b.tls_port, "--tls-version", "tlsv1.2",
                         cafile=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("certificate verify failed", r.stderr)
            # ...nor does another set-up's CA vouch for this server.
            r = self.pub(b.tls_port, "--cafile",
                         os.path.join(other, "ca.crt"), cafile=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("certificate verify failed", r.stderr)
            # Plain MQTT on the TLS port gets nowhere either.
            r = self.pub(b.tls_port, cafile=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("unknown ca", b.read_log())

    def connack(self, port, **kw):
        s = raw_connect(port)
        try:
            s.sendall(connect_packet("init-test", **kw))
            first, body = read_packet(s)
            return bytes([first, len(body)]) + body
        except ConnectionError:
            return b""
        finally:
            s.close()

    def test_no_plaintext_mqtt(self):
        with SetupBroker(self.dir) as b:
            self.assertEqual(self.connack(b.tls_port, user="admin",
                                          password=self.pw), b"")

    def test_acl_examples_are_valid(self):
        """Uncommenting the ACL's examples gives a file moatd loads."""
        with open(self.path("acl")) as f:
            text = f.read()
        text = re.sub(r"^#((user|clientid|pattern|topic) )", r"\1", text,
                      flags=re.M)
        self.assertIn("\nuser sensor-1\n", text)
        with open(self.path("acl"), "w") as f:
            f.write(text)
        with SetupBroker(self.dir) as b:
            r = self.pub(b.tls_port)
            self.assertEqual(r.returncode, 0, r.stderr)


def setUpModule():
    if not os.path.exists(MOATD) and not shutil.which(MOATD):
        raise RuntimeError("moatd binary not found: set MOATD_BIN")


if __name__ == "__main__":
    unittest.main()
