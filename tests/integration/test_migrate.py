"""moatd migrate: real-world-style mosquitto configurations carried over to
moatd.  Each set-up is served by Debian's mosquitto (/usr/sbin/mosquitto)
and then by moatd on the migrated configuration, on the same loopback
ports, and the same mosquitto_pub/_sub checks must give the same answers.
The report (MIGRATION.md) must name what was not carried over.  And
moatd migrate --retained copies a running mosquitto's retained messages
into a running moatd."""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from moat_harness import (MOATD, Broker, free_port, password_file_text,
                          raw_connect)

MOSQUITTO = "/usr/sbin/mosquitto"
HAVE = os.path.exists(MOSQUITTO) and os.path.exists("/usr/bin/mosquitto_sub")
USERS = {"alice": "Alice-Pass-1", "bob": "Bob-Pass-22"}
ACL = ("user alice\ntopic readwrite sensors/#\n"
       "user bob\ntopic read sensors/#\n")


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            raw_connect(port, 1.0).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """mosquitto or moatd as a child, stopped with SIGTERM."""

    def __init__(self, argv, ports, log):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for p in ports:
            if not wait_port(p, self.proc):
                self.stop()
                with open(log) as f:
                    raise RuntimeError("%s did not start:\n%s"
                                       % (argv[0], f.read()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def client(tool, port, *args, user=None, tls=()):
    argv = [tool, "-h", "127.0.0.1", "-p", str(port)] + list(tls)
    if user:
        argv += ["-u", user, "-P", USERS.get(user, "wrong")]
    return subprocess.run(argv + list(args), capture_output=True, text=True,
                          timeout=30)


def behaviour(port, tls=(), cert_user=False):
    """What a broker on port lets alice, bob, a wrong password and an
    anonymous client do (retained messages, so no race)."""
    alice = None if cert_user else "alice"
    bob = None if cert_user else "bob"
    out = {}
    out["alice publishes"] = client(
        "mosquitto_pub", port, "-t", "sensors/a", "-m", "from-alice", "-r",
        "-q", "1", user=alice, tls=tls).returncode == 0
    r = client("mosquitto_sub", port, "-t", "sensors/a", "-C", "1", "-W",
               "5", user=alice, tls=tls)
    out["alice reads"] = r.stdout.strip()
    if not cert_user:
        client("mosquitto_pub", port, "-t", "sensors/b", "-m", "from-bob",
               "-r", "-q", "1", user=bob, tls=tls)
        r = client("mosquitto_sub", port, "-t", "sensors/#", "-C", "1",
                   "-W", "5", "-v", user=bob, tls=tls)
        out["bob reads"] = r.stdout.strip()
        # bob may only read: his retained message must not be there.
        r = client("mosquitto_sub", port, "-t", "sensors/b", "-C", "1",
                   "-W", "2", user=alice, tls=tls)
        out["bob's write kept"] = r.stdout.strip()
        out["wrong password"] = client(
            "mosquitto_pub", port, "-t", "sensors/a", "-m", "x", "-u",
            "alice", "-P", "not-it", tls=tls).returncode == 0
    out["anonymous"] = client("mosquitto_pub", port, "-t", "sensors/a",
                              "-m", "x", "-q", "1",
                              tls=tls if not cert_user else tls[:2]
                              ).returncode == 0
    return out


@unittest.skipUnless(HAVE, "mosquitto and mosquitto clients not installed")
class Migrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-migrate-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def write(self, name, text, mode=0o600):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def migrate(self, conf="mosquitto.conf", *extra):
        r = subprocess.run([MOATD, "migrate"] + list(extra) +
                           [self.path(conf), self.path("out")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(self.path("out", "MIGRATION.md")) as f:
            self.report = f.read()
        with open(self.path("out", "moatd.conf")) as f:
            self.conf = f.read()
        return r

    def compare(self, ports, conf_text, tls=(), cert_user=False):
        """The same checks against mosquitto and the migrated moatd."""
        self.write("mosquitto.conf", conf_text, 0o644)
        mq = Server([MOSQUITTO, "-c", self.path("mosquitto.conf")], ports,
                    self.path("mosquitto.log"))
        try:
            before = behaviour(ports[0], tls, cert_user)
        finally:
            mq.stop()
        self.migrate()
        self.assertNotIn("would not start", self.report)
        md = Server([MOATD, "-c", self.path("out", "moatd.conf"), "-v"],
                    ports, self.path("moatd.log"))
        try:
            after = behaviour(ports[0], tls, cert_user)
        finally:
            self.assertEqual(md.stop(), 0)
        self.assertEqual(before, after)
        return after

    def users(self, name="pw", users=USERS):
        return self.write(name, password_file_text(users))

    def test_global_settings_plain_loopback(self):
        p, ws = free_port(), free_port()
        pw, acl = self.users(), self.write("acl", ACL)
        self.write("conf.d/limits.conf",
                   "max_packet_size 65536\nsys_interval 30\n", 0o644)
        seen = self.compare([p], (
            "user root\nper_listener_settings false\n"
            "persistence false\nautosave_interval 1800\n"
            "log_type error\nlog_type information\n"
            "max_queued_messages 500\npersistent_client_expiration 2d\n"
            "listener %d 127.0.0.1\nallow_anonymous false\n"
            "password_file %s\nacl_file %s\n"
            "listener %d 127.0.0.1\nprotocol websockets\n"
            "include_dir %s\n"
            "connection cloud\naddress 127.0.0.1:%d\n"
            "topic sensors/# out 1\nremote_username edge\n"
            "remote_password Bridge-Secret-9\nrestart_timeout 30\n")
            % (p, pw, acl, ws, self.path("conf.d"), free_port()))
        self.assertEqual(seen, {
            "alice publishes": True, "alice reads": "from-alice",
            "bob reads": "sensors/a from-alice", "bob's write kept": "",
            "wrong password": False, "anonymous": False})
        for line in ("max_queued_messages 500",
                     "persistent_client_expiration 172800",
                     "max_packet_size 65536", "sys_interval 30",
                     "log_level info", "password_file passwd",
                     "acl_file acl", "allow_anonymous false"):
            self.assertIn("\n" + line + "\n", self.conf)
        self.assertRegex(self.report, r"protocol websockets`: its listener "
                         r"is not carried over: moatd has no WebSockets")
        self.assertIn("autosave_interval 1800`: moatd commits", self.report)
        self.assertIn("include_dir %s`: folded in" % self.path("conf.d"),
                      self.report)
        self.assertIn("`limits.conf:1` `max_packet_size 65536`", self.report)
        self.assertIn("## Bridges (1)", self.report)
        self.assertIn("\nconnection cloud\n", self.conf)
        self.assertIn("\nremote_password_file bridge-cloud.pw\n", self.conf)
        for text in (self.conf, self.report):
            self.assertNotIn("Bridge-Secret-9", text)
        self.assertIn("## moatd --check %s (mosquitto)"
                      % self.path("mosquitto.conf"), self.report)
        self.assertEqual(os.stat(self.path("out")).st_mode & 0o777, 0o700)
        for f in ("moatd.conf", "passwd", "acl", "MIGRATION.md"):
            self.assertEqual(os.stat(self.path("out", f)).st_mode & 0o777,
                             0o600)

    def test_per_listener_settings_true_merges(self):
        p1, p2 = free_port(), free_port()
        pw1 = self.users("pw1", {"alice": USERS["alice"]})
        pw2 = self.users("pw2", {"bob": USERS["bob"]})
        acl1 = self.write("acl1", "user alice\ntopic readwrite sensors/#\n")
        acl2 = self.write("acl2", "topic read public/#\n"
                          "user bob\ntopic read sensors/#\n")
        conf = ("user root\nper_listener_settings true\n"
                "listener %d 127.0.0.1\nallow_anonymous false\n"
                "password_file %s\nacl_file %s\n"
                "listener %d 127.0.0.1\nallow_anonymous false\n"
                "password_file %s\nacl_file %s\n") % (p1, pw1, acl1, p2,
                                                      pw2, acl2)
        self.write("mosquitto.conf", conf, 0o644)
        results = []
        for argv in ([MOSQUITTO, "-c", self.path("mosquitto.conf")],
                     None):
            if argv is None:
                self.migrate()
                argv = [MOATD, "-c", self.path("out", "moatd.conf")]
            s = Server(argv, [p1, p2], self.path("log"))
            try:
                results.append((
                    client("mosquitto_pub", p1, "-t", "sensors/a", "-m",
                           "A", "-r", "-q", "1", user="alice").returncode,
                    client("mosquitto_sub", p2, "-t", "sensors/a", "-C",
                           "1", "-W", "5", user="bob").stdout.strip()))
            finally:
                s.stop()
        self.assertEqual(results, [(0, "A"), (0, "A")])
        with open(self.path("out", "acl")) as f:
            acl = f.read()
        # acl2's anonymous rule stays anonymous: before every user block.
        self.assertLess(acl.index("topic read public/#"),
                        acl.index("user alice"))
        self.assertIn("merged from them", self.report)

    def test_tls_client_certificates(self):
        p = free_port()
        d = self.dir
        def ssl(*args):
            subprocess.run(["openssl"] + list(args), check=True,
                           capture_output=True, timeout=60, cwd=d)
        ssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "30", "-subj", "/CN=test CA")
        for name, cn, ext in (("server", "localhost",
                               "subjectAltName=IP:127.0.0.1"),
                              ("alice", "alice", "basicConstraints=CA:FALSE")):
            ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn)
            self.write(name + ".ext", ext + "\n")
            ssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
                "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".crt",
                "-days", "30", "-extfile", name + ".ext")
            os.chmod(self.path(name + ".key"), 0o600)
        acl = self.write("acl", "user alice\ntopic readwrite sensors/#\n")
        tls = ["--cafile", self.path("ca.crt"), "--cert",
               self.path("alice.crt"), "--key", self.path("alice.key")]
        seen = self.compare([p], (
            "user root\nlistener %d 127.0.0.1\n"
            "certfile %s\nkeyfile %s\ncafile %s\n"
            "require_certificate true\nuse_identity_as_username true\n"
            "tls_version tlsv1.2\nacl_file %s\n") % (
                p, self.path("server.crt"), self.path("server.key"),
                self.path("ca.crt"), acl), tls=tls, cert_user=True)
        self.assertEqual(seen, {"alice publishes": True,
                                "alice reads": "from-alice",
                                "anonymous": False})
        for line in ("certfile", "keyfile", "cafile",
                     "require_certificate true",
                     "use_identity_as_username true",
                     "tls_version tlsv1.2"):
            self.assertIn("\n" + line, self.conf)

    def test_psk_and_unix_listeners_dropped_dynsec_named(self):
        p, q = free_port(), free_port()
        pw = self.users()
        self.write("mosquitto.conf", (
            "per_listener_settings false\npassword_file %s\n"
            "listener %d 127.0.0.1\npsk_hint hint\npsk_file %s\n"
            "listener %d 127.0.0.1\n"
            "listener 0 %s\n"
            "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
            "plugin_opt_config_file %s\n") % (
                pw, p, self.path("psk"), q, self.path("mq.sock"),
                self.path("dynamic-security.json")), 0o644)
        self.migrate()
        self.assertIn("not carried over: moatd has no TLS-PSK", self.report)
        self.assertIn("not carried over: moatd has no Unix-socket",
                      self.report)
        self.assertIn("the dynamic-security plugin's clients, groups and "
                      "roles are not converted", self.report)
        self.assertIn("psk_file %s`: moatd has no TLS-PSK" % self.path("psk"),
                      self.report)
        self.assertNotIn("listener %d" % p, self.conf)
        s = Server([MOATD, "-c", self.path("out", "moatd.conf")], [q],
                   self.path("moatd.log"))
        try:
            self.assertEqual(client("mosquitto_pub", q, "-t", "t", "-m",
                                    "x", user="alice").returncode, 0)
        finally:
            self.assertEqual(s.stop(), 0)

    def test_network_listener_without_tls_moved_to_loopback(self):
        p = free_port()
        pw = self.users()
        self.write("mosquitto.conf", "listener %d\npassword_file %s\n"
                   % (p, pw), 0o644)
        self.migrate()
        self.assertIn("\nlistener %d 127.0.0.1\n" % p, self.conf)
        self.assertRegex(self.report, r"would be reachable from the network "
                         r"without TLS.*moved to 127\.0\.0\.1")
        self.assertIn("AUD-MQ-01", self.report)  # in the old config only
        self.assertEqual(self.report.split("(moatd)")[1].count("AUD-MQ-01"),
                         0)

    def test_refuses_to_overwrite_and_usage(self):
        self.write("mosquitto.conf", "listener %d 127.0.0.1\n" % free_port(),
                   0o644)
        self.migrate()
        r = subprocess.run([MOATD, "migrate", self.path("mosquitto.conf"),
                            self.path("out")], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--force", r.stderr)
        self.migrate("mosquitto.conf", "--force")
        r = subprocess.run([MOATD, "migrate", self.path("mosquitto.conf")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([MOATD, "migrate", self.path("nope.conf"),
                            self.path("out2")], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(self.path("out2", "moatd.conf")))


@unittest.skipUnless(HAVE, "mosquitto and mosquitto clients not installed")
class Retained(unittest.TestCase):
    def test_copy_retained_bounded(self):
        tmp = tempfile.TemporaryDirectory(prefix="moat-migrate-ret-")
        p = free_port()
        conf = os.path.join(tmp.name, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % p)
        mq = Server([MOSQUITTO, "-c", conf], [p],
                    os.path.join(tmp.name, "mq.log"))
        try:
            for i, qos in enumerate((0, 1, 2)):
                client("mosquitto_pub", p, "-t", "old/%d" % i, "-m",
                       "value %d" % i, "-r", "-q", str(qos))
            with Broker("") as b:
                r = subprocess.run(
                    [MOATD, "migrate", "--retained", "127.0.0.1:%d" % p,
                     "--to", "127.0.0.1:%d" % b.port, "--idle-ms", "500"],
                    capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("copied 3 retained messages", r.stdout)
                got = client("mosquitto_sub", b.port, "-t", "old/#", "-C",
                             "3", "-W", "10", "-v").stdout.split("\n")
                self.assertEqual(sorted(filter(None, got)),
                                 ["old/0 value 0", "old/1 value 1",
                                  "old/2 value 2"])
            with Broker("") as b:
                r = subprocess.run(
                    [MOATD, "migrate", "--retained", "127.0.0.1:%d" % p,
                     "--to", "127.0.0.1:%d" % b.port, "--max-messages",
                     "2", "--idle-ms", "500"],
                    capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"copied 2 .* 1 left out")
        finally:
            mq.stop()
            tmp.cleanup()

    def test_usage_and_unreachable(self):
        for args in ([], ["--retained", "nohost"], ["--retained", "a:1"],
                     ["--retained", "a:1", "--to", "b:2", "--idle-ms",
                      "5"]):
            r = subprocess.run([MOATD, "migrate"] + args,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)
        r = subprocess.run([MOATD, "migrate", "--retained",
                            "127.0.0.1:%d" % free_port(), "--to",
                            "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(re.search(r"127\.0\.0\.1:\d+: ", r.stderr))


if __name__ == "__main__":
    unittest.main()
