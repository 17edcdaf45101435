"""`moat pub` / `moat sub` over TLS, against moatd and against mosquitto.

The throw-away PKI of test_tls (a CA, a server certificate for
DNS:localhost and IP:127.0.0.1, client certificates, a second CA the
brokers do not trust) plus one server certificate issued for another name
only (DNS:other.example), for the host name checks.

  MoatdTls       moatd with a TLS listener: --cafile with both names of
                 the certificate, -L mqtts:// URLs with a password file,
                 --capath, --tls-version, wrong CA and wrong name refused
                 with a clear message, --insecure (name check off, chain
                 still checked), usage errors of the TLS options.
  MoatdMutualTls moatd with require_certificate: refused without a client
                 certificate, accepted with --cert/--key.
  MosquittoTls   /usr/sbin/mosquitto (a child with its own config on a
                 free loopback port) with a password file and client
                 certificates required: the same clients work there.
  MosquittoServerTls  mosquitto with server authentication only.

Real clients only; every wait is bounded; nothing asserts on timing.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moat_harness import password_file_text  # noqa: E402
import test_tls as T  # noqa: E402
from test_audit import MOSQUITTO, Mosquitto  # noqa: E402

MOAT = os.environ.get("MOAT_BIN", "moat")
TIMEOUT = 20
USERS = {"alice": "correct horse battery"}


def setUpModule():
    T.setUpModule()
    T.make_cert("othername", "ca", "/CN=other.example", "0x1003",
                "serverAuth", "DNS:other.example")
    # --capath: a directory of certificates named by subject hash
    capath = T.pki("capath")
    os.mkdir(capath)
    h = T.openssl("x509", "-hash", "-noout", "-in", "ca.crt")
    shutil.copy(T.pki("ca.crt"), os.path.join(capath,
                                              h.decode().strip() + ".0"))


def tearDownModule():
    T.tearDownModule()


def moat(*args, stdin=None, env=None):
    return subprocess.run([MOAT] + [str(a) for a in args], input=stdin,
                          capture_output=True, timeout=TIMEOUT, env=env)


def pub_sub(test, port, pub_args, sub_args=None, host="127.0.0.1",
            topic=None):
    """A retained message published with pub_args is read back by
    `moat sub -C 1` with sub_args (default: the same); then cleared."""
    topic = topic or "tls/" + test.id().rsplit(".", 1)[-1]
    sub_args = pub_args if sub_args is None else sub_args
    conn = ["-h", host, "-p", str(port)]
    r = moat("pub", *conn, *pub_args, "-t", topic, "-m", "hello-tls",
             "-q", "1", "-r")
    test.assertEqual(r.returncode, 0, r.stderr.decode())
    s = moat("sub", *conn, *sub_args, "-t", topic, "-C", "1", "-W", "10")
    test.assertEqual(s.returncode, 0, s.stderr.decode())
    test.assertEqual(s.stdout, b"hello-tls\n")
    moat("pub", *conn, *pub_args, "-t", topic, "-n", "-r", "-q", "1")


class MoatdTls(T.TlsCase):
    broker_config = T.LISTENER + \
        "listener 0 127.0.0.1\ncertfile @DIR@/othername.crt\n" \
        "keyfile @DIR@/othername.key\n" \
        "sys_interval 0\npassword_file @DIR@/passwd\n"
    files = ("server.crt", "server.key", "ca.crt", "othername.crt",
             "othername.key")

    @classmethod
    def setUpClass(cls):
        cls.broker_files = T.tls_files(*cls.files)
        cls.broker_files["passwd"] = password_file_text(USERS)
        T.BrokerTest.setUpClass.__func__(cls)
        cls.tls_port, cls.other_port = cls.broker.tls_ports[:2]

    def ca(self, name="ca.crt"):
        return ["--cafile", T.pki(name)]

    def test_cafile_roundtrip_both_names(self):
        for host in ("127.0.0.1", "localhost"):
            with self.subTest(host=host):
                pub_sub(self, self.tls_port, self.ca(), host=host)

    def test_capath_and_tls13(self):
        pub_sub(self, self.tls_port,
                ["--capath", T.pki("capath"), "--tls-version", "tlsv1.3"])

    def test_url_with_password_file(self):
        topic = "tls/url"
        url = "mqtts://alice:%s@localhost:%d/%s" % (
            USERS["alice"], self.tls_port, topic)
        r = moat("pub", "-L", url, *self.ca(), "-m", "by-url", "-r",
                 "-q", "1", "-d")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotIn(USERS["alice"].encode(), r.stdout + r.stderr)
        # user in the URL, password from the environment
        env = dict(os.environ, MOAT_PASSWORD=USERS["alice"])
        s = moat("sub", "-L", "mqtts://alice@localhost:%d/%s"
                 % (self.tls_port, topic), *self.ca(), "-C", "1",
                 "-W", "10", env=env)
        self.assertEqual(s.returncode, 0, s.stderr.decode())
        self.assertEqual(s.stdout, b"by-url\n")
        # a wrong password is refused by the broker, and not printed
        r = moat("pub", "-L", "mqtts://alice:wrong-secret@localhost:%d/x"
                 % self.tls_port, *self.ca(), "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"refused", r.stderr)
        self.assertNotIn(b"wrong-secret", r.stderr)
        moat("pub", "-L", url, *self.ca(), "-n", "-r", "-q", "1")

    def test_url_default_port_and_plain_scheme(self):
        # mqtt:// on the plain listener (the harness's, on loopback)
        r = moat("pub", "-L", "mqtt://127.0.0.1:%d/t" % self.port,
                 "-m", "x", "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        # mqtts:// without a port means 8883: nobody listens there
        r = moat("pub", "-L", "mqtts://127.0.0.1/t", *self.ca(), "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"port 8883", r.stderr)

    def test_wrong_ca_refused(self):
        r = moat("pub", "-h", "localhost", "-p", self.tls_port,
                 *self.ca("evil.crt"), "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        self.assertIn("certificate verify failed", err)
        self.assertIn("--cafile", err)
        self.assertNotIn("CONNACK", err)

    def test_system_ca_refuses_private_ca(self):
        # no CA option: the system's trust store, which lacks our CA
        r = moat("sub", "-h", "localhost", "-p", self.tls_port,
                 "--tls-version", "tlsv1.2", "-t", "x", "-W", "5")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"certificate verify failed", r.stderr)

    def test_hostname_mismatch_refused(self):
        for host in ("localhost", "127.0.0.1"):
            with self.subTest(host=host):
                r = moat("pub", "-h", host, "-p", self.other_port,
                         *self.ca(), "-t", "x", "-m", "x")
                self.assertEqual(r.returncode, 1)
                err = r.stderr.decode()
                self.assertIn("certificate verify failed", err)
                self.assertRegex(err, "(?i)mismatch")

    def test_insecure_skips_the_name_check_only(self):
        pub_sub(self, self.other_port, self.ca() + ["--insecure"],
                host="localhost")
        # the chain is still checked
        r = moat("pub", "-h", "localhost", "-p", self.other_port,
                 "--insecure", *self.ca("evil.crt"), "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"certificate verify failed", r.stderr)

    def test_plaintext_client_on_tls_port_fails_cleanly(self):
        r = moat("pub", "-p", self.tls_port, "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr)

    def test_tls_usage_errors(self):
        cases = [
            (["--cert", T.pki("device1.crt")], "--cert needs --key"),
            (["--key", T.pki("device1.key")], "--key needs --cert"),
            (["--tls-version", "tlsv1.1"], "unsupported TLS version"),
            (["-L", "http://localhost/t"], "unsupported -L URL scheme"),
            (["-L", "ws://localhost/t", "--cafile", "x"],
             "TLS options with a ws:// URL"),
            (["-L", "mqtt://localhost:1883/t", "--cafile", "x"],
             "use mqtts://"),
            (["-L", "mqtts://localhost"], "no topic"),
            (["-L", "mqtts://localhost:0/t"], "port must be"),
            (["-L", "mqtts://localhost/t", "-h", "x"], "drop -h"),
            (["-L", "mqtts://u:pw@localhost/t", "-P", "x", "-u", "u"],
             "drop -u"),
            (["-L", "mqtts://localhost/t", "-t", "t2"], "drop -t"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = moat("pub", *args, "-m", "x")
                self.assertEqual(r.returncode, 2, r.stderr.decode())
                self.assertIn(msg, r.stderr.decode())
        r = moat("pub", "-L", "mqtts://u:hunter2secret@/t", "-m", "x")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn(b"hunter2secret", r.stderr)

    def test_missing_ca_file(self):
        r = moat("pub", "-p", self.tls_port, "--cafile",
                 T.pki("no-such.crt"), "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no-such.crt", r.stderr)


class MoatdMutualTls(T.TlsCase):
    broker_config = T.LISTENER + T.MTLS + "sys_interval 0\n"

    def test_client_certificate_required(self):
        ca = ["--cafile", T.pki("ca.crt")]
        r = moat("pub", "-h", "localhost", "-p", self.tls_port, *ca,
                 "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"client certificate", r.stderr)
        cert = ["--cert", T.pki("device1.crt"), "--key",
                T.pki("device1.key")]
        pub_sub(self, self.tls_port, ca + cert, host="localhost")
        # a certificate from a CA the broker does not trust
        r = moat("pub", "-h", "localhost", "-p", self.tls_port, *ca,
                 "--cert", T.pki("forged.crt"), "--key", T.pki("forged.key"),
                 "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)

    def test_mismatched_key_refused_before_connecting(self):
        r = moat("pub", "-p", self.tls_port, "--cafile", T.pki("ca.crt"),
                 "--cert", T.pki("device1.crt"), "--key",
                 T.pki("nosan.key"), "-t", "x", "-m", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"does not match", r.stderr)


@unittest.skipUnless(os.path.exists(MOSQUITTO), "no /usr/sbin/mosquitto")
class MosquittoTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        files = {n: (T.read(n), 0o644) for n in
                 ("ca.crt", "server.crt", "server.key")}
        files["passwd"] = (password_file_text(USERS), 0o644)
        conf = ("per_listener_settings false\nallow_anonymous false\n"
                "password_file @DIR@/passwd\n"
                "listener @PORT@ 127.0.0.1\n"
                "cafile @DIR@/ca.crt\ncertfile @DIR@/server.crt\n"
                "keyfile @DIR@/server.key\nrequire_certificate true\n")
        cls.mq = Mosquitto(conf, files).start()

    @classmethod
    def tearDownClass(cls):
        cls.mq.cleanup()

    def test_client_certificate_and_password(self):
        tls = ["--cafile", T.pki("ca.crt"), "--cert", T.pki("device1.crt"),
               "--key", T.pki("device1.key"), "-u", "alice", "-P",
               USERS["alice"]]
        pub_sub(self, self.mq.port, tls, host="localhost")
        pub_sub(self, self.mq.port, tls + ["-V", "5"], host="127.0.0.1")

    def test_url(self):
        url = "mqtts://alice:%s@localhost:%d/tls/mq-url" % (
            USERS["alice"], self.mq.port)
        tls = ["--cafile", T.pki("ca.crt"), "--cert", T.pki("device1.crt"),
               "--key", T.pki("device1.key")]
        r = moat("pub", "-L", url, *tls, "-m", "via-url", "-r", "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        s = moat("sub", "-L", url, *tls, "-C", "1", "-W", "10")
        self.assertEqual(s.returncode, 0, s.stderr.decode())
        self.assertEqual(s.stdout, b"via-url\n")
        moat("pub", "-L", url, *tls, "-n", "-r", "-q", "1")

    def test_refusals(self):
        base = ["-h", "localhost", "-p", self.mq.port, "-u", "alice", "-P",
                USERS["alice"], "-t", "x", "-m", "x"]
        r = moat("pub", *base, "--cafile", T.pki("ca.crt"))
        self.assertEqual(r.returncode, 1, "no client certificate")
        r = moat("pub", *base, "--cafile", T.pki("evil.crt"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"certificate verify failed", r.stderr)


@unittest.skipUnless(os.path.exists(MOSQUITTO), "no /usr/sbin/mosquitto")
class MosquittoServerTls(unittest.TestCase):
    """mosquitto with a TLS listener and no client certificates: the
    server is verified, the client logs in with a password."""

    @classmethod
    def setUpClass(cls):
        files = {n: (T.read(n), 0o644) for n in ("server.crt", "server.key")}
        files["passwd"] = (password_file_text(USERS), 0o644)
        conf = ("per_listener_settings false\nallow_anonymous false\n"
                "password_file @DIR@/passwd\n"
                "listener @PORT@ 127.0.0.1\n"
                "certfile @DIR@/server.crt\nkeyfile @DIR@/server.key\n")
        cls.mq = Mosquitto(conf, files).start()

    @classmethod
    def tearDownClass(cls):
        cls.mq.cleanup()

    def test_without_client_certificate(self):
        login = ["-u", "alice", "-P", USERS["alice"]]
        pub_sub(self, self.mq.port, ["--cafile", T.pki("ca.crt")] + login,
                host="localhost")
        pub_sub(self, self.mq.port, ["--capath", T.pki("capath"), "-V", "5",
                                     "--tls-version", "tlsv1.3"] + login)

    def test_wrong_ca_and_name_refused(self):
        base = ["-p", self.mq.port, "-u", "alice", "-P", USERS["alice"],
                "-t", "x", "-m", "x"]
        r = moat("pub", "-h", "localhost", *base, "--cafile",
                 T.pki("evil.crt"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"certificate verify failed", r.stderr)
