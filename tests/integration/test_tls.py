"""moatd's TLS listeners, attacked and used by real clients.

setUpModule makes a throw-away PKI with the openssl command-line tool
(EC P-256): a CA, a server certificate for DNS:localhost and IP:127.0.0.1,
client certificates (one revoked in a CRL made with `openssl ca -gencrl`,
one with two CNs, one without a subjectAltName) and a second CA that the
broker does not trust.  Threats from /work/shared/THREATS.md: T-02
(plaintext, old TLS versions), T-27 (client-certificate enforcement and
identity), T-21/T-12 (unsafe key files refuse start), and reload.

Clients: Python's ssl module (exact handshake outcomes), paho-mqtt with
tls_set, mosquitto_pub/_sub with --cafile, and `openssl s_client`.

Only loopback traffic; every socket and subprocess has a timeout.

    MOATD_BIN=.../moatd MOAT_BIN=.../moat /usr/bin/python3 -m unittest \
        -v test_tls
"""
import gc
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moat_harness import (  # noqa: E402
    HOST, MOATD, PINGREQ, BrokerTest, connect_packet,
    read_packet, read_until_close, wait_for, write_private)
from test_security import (  # noqa: E402
    Conn, connect5, parse_connack, paho_connack, V3_NOT_AUTHORIZED,
    V5_NOT_AUTHORIZED)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - depends on the host
    mqtt = None

TIMEOUT = 5.0
CLI_TIMEOUT = 20
PKI = None   # the module's temporary directory


def have(tool):
    return shutil.which(tool) is not None


# ---- the throw-away PKI -----------------------------------------------------

def openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd or PKI,
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s"
                           % (" ".join(args), r.stderr.decode()))
    return r.stdout


def pki(name):
    return os.path.join(PKI, name)


def make_key(name):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", name + ".key")
    os.chmod(pki(name + ".key"), 0o600)


def make_ca(name, cn):
    make_key(name)
    openssl("req", "-x509", "-new", "-key", name + ".key", "-sha256",
            "-days", "30", "-subj", "/CN=" + cn, "-out", name + ".crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(name, ca, subj, serial, usage, san=None):
    make_key(name)
    openssl("req", "-new", "-key", name + ".key", "-subj", subj,
            "-out", name + ".csr")
    ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=%s\n" % usage)
    if san:
        ext += "subjectAltName=%s\n" % san
    with open(pki(name + ".ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
            "-CAkey", ca + ".key", "-set_serial", serial, "-days", "30",
            "-sha256", "-extfile", name + ".ext", "-out", name + ".crt")


def make_crl(ca, revoked):
    with open(pki("index.txt"), "w"):
        pass
    with open(pki("crlnumber"), "w") as f:
        f.write("01\n")
    with open(pki("ca.cnf"), "w") as f:
        f.write("[ ca ]\ndefault_ca = CA_default\n"
                "[ CA_default ]\n"
                "dir = %s\n"
                "database = $dir/index.txt\n"
                "certificate = $dir/%s.crt\n"
                "private_key = $dir/%s.key\n"
                "crlnumber = $dir/crlnumber\n"
                "new_certs_dir = $dir\n"
                "default_md = sha256\n"
                "default_crl_days = 30\n"
                "policy = policy_any\n"
                "[ policy_any ]\ncommonName = supplied\n" % (PKI, ca, ca))
    for name in revoked:
        openssl("ca", "-config", "ca.cnf", "-revoke", name + ".crt")
    openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem")


TMP = None


def make_crl_more(revoked):
    """Revoke more certificates in the CA database; a new crl.pem."""
    for name in revoked:
        openssl("ca", "-config", "ca.cnf", "-revoke", name + ".crt")
    openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem")


def setUpModule():
    global PKI, TMP
    # TLS 1.0/1.1 are deprecated in Python's ssl: used here on purpose
    warnings.filterwarnings("ignore", category=DeprecationWarning,
                            message=".*TLSv1.*|.*PROTOCOL_TLS.*")
    if not have("openssl"):
        raise unittest.SkipTest("no openssl command")
    TMP = tempfile.TemporaryDirectory(prefix="moat-tls-")
    PKI = TMP.name
    make_ca("ca", "moat test CA")
    make_ca("evil", "moat test CA")      # same name, other key
    srv_san = "DNS:localhost,IP:127.0.0.1"
    make_cert("server", "ca", "/CN=localhost", "0x1001", "serverAuth",
              srv_san)
    make_cert("server2", "ca", "/CN=localhost", "0x1002", "serverAuth",
              srv_san)
    make_cert("device1", "ca", "/CN=device1", "0x2001", "clientAuth",
              "DNS:san-device1,DNS:device1")
    make_cert("revoked", "ca", "/CN=revoked1", "0x2002", "clientAuth",
              "DNS:revoked1")
    make_cert("twocn", "ca", "/CN=device1/CN=admin", "0x2003",
              "clientAuth")
    make_cert("nosan", "ca", "/CN=nosan", "0x2004", "clientAuth")
    make_cert("forged", "evil", "/CN=device1", "0x2005", "clientAuth",
              "DNS:san-device1")
    make_cert("pluscn", "ca", "/CN=dev\\+1", "0x2006", "clientAuth",
              "DNS:dev+1")
    make_crl("ca", ["revoked"])
    # a later CRL that also revokes device1 (for the reload case)
    os.rename(pki("crl.pem"), pki("crl1.pem"))
    make_crl_more(["device1"])
    os.rename(pki("crl.pem"), pki("crl2.pem"))
    os.rename(pki("crl1.pem"), pki("crl.pem"))


def tearDownModule():
    if TMP is not None:
        TMP.cleanup()


def read(name):
    with open(pki(name), "rb") as f:
        return f.read()


def tls_files(*names):
    """Broker files: certificates world-readable, keys 0600."""
    out = {}
    for n in names:
        out[n] = (read(n), 0o600 if n.endswith(".key") else 0o644)
    return out


LISTENER = "listener 0 127.0.0.1\ncertfile @DIR@/server.crt\n" \
    "keyfile @DIR@/server.key\n"
MTLS = "cafile @DIR@/ca.crt\nrequire_certificate true\n"


# ---- clients ----------------------------------------------------------------

def client_ctx(ca="ca.crt", cert=None, version=None, system_ca=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if system_ca:
        ctx.load_default_certs()
    elif ca:
        ctx.load_verify_locations(pki(ca))
    if cert:
        ctx.load_cert_chain(pki(cert + ".crt"), pki(cert + ".key"))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_connect(port, ctx, hostname="127.0.0.1"):
    raw = socket.create_connection((HOST, port), TIMEOUT)
    raw.settimeout(TIMEOUT)
    try:
        return ctx.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise


def mqtt_tls(port, ctx, cid, user=None, password=None, v5=False):
    """CONNECT over TLS.  (Conn or None, CONNACK bytes or b"", error):
    a handshake or read failure gives (None, b"", "the error")."""
    try:
        s = tls_connect(port, ctx)
    except (ssl.SSLError, OSError) as e:
        return None, b"", "handshake: %s" % e
    try:
        pkt = connect5(cid, user=user, password=password) if v5 else \
            connect_packet(cid, user=user, password=password)
        s.sendall(pkt)
        first, body = read_packet(s)
        data = bytes([first, len(body)]) + body
        return Conn(s, v5), data, None
    except (ssl.SSLError, OSError, ConnectionError) as e:
        s.close()
        return None, b"", "after handshake: %s" % e


def client_can_offer(version):
    """Can the local OpenSSL (as Python uses it) even send a ClientHello
    for this version?  Checked in memory, no network."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = version
    except (ValueError, ssl.SSLError):
        return False
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        return True
    except ssl.SSLError:
        return False
    return False


def old_tls_ctx(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki("ca.crt"))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def s_client(port, *args):
    """openssl s_client; (exit status, output)."""
    r = subprocess.run(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % port, "-CAfile", pki("ca.crt")] +
                       list(args), input=b"", capture_output=True,
                       timeout=CLI_TIMEOUT)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def mosquitto(tool, port, *args):
    return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port)] +
                          list(args), capture_output=True,
                          timeout=CLI_TIMEOUT)


# ---- base class -------------------------------------------------------------

class TlsCase(BrokerTest):
    """A broker with the harness's plain 127.0.0.1 listener first and the
    TLS listener(s) of broker_config after it."""
    broker_config = LISTENER + "sys_interval 0\n"
    files = ("server.crt", "server.key", "ca.crt")
    acl = None

    @classmethod
    def setUpClass(cls):
        cls.broker_files = tls_files(*cls.files)
        if cls.acl is not None:
            cls.broker_files["acl"] = cls.acl
        super().setUpClass()
        cls.tls_port = cls.broker.tls_ports[0]

    def setUp(self):
        super().setUp()
        self._n = 0
        self.tag = self._testMethodName.replace("_", "-")
        self.mark = len(self.broker.read_log())

    def uid(self, what="c"):
        self._n += 1
        return "%s-%s-%d" % (what, self.tag, self._n)

    def new_log(self):
        return self.broker.read_log()[self.mark:]

    def connect_ok(self, ctx, cid=None, port=None, **kw):
        c, data, err = mqtt_tls(port or self.tls_port, ctx,
                                cid or self.uid(), **kw)
        self.assertIsNone(err, err)
        self.assertEqual(parse_connack(data)[1], 0)
        self.addCleanup(c.s.close)
        return c

    def assert_tls_refused(self, ctx, port=None, **kw):
        c, data, err = mqtt_tls(port or self.tls_port, ctx, self.uid(),
                                **kw)
        if c is not None:
            c.s.close()
        self.assertIsNotNone(err, "TLS client accepted: CONNACK %r" % data)
        return err

    def roundtrip(self, pub, sub, topic):
        """sub (subscribed to topic) gets what pub publishes."""
        payload = "rt-" + self.uid()
        self.assertEqual(pub.publish(topic, payload, 1), 0)
        self.assertEqual(sub.next_publish()["payload"], payload.encode())

    def plain_serving(self):
        """A plaintext client on the plain listener still works."""
        s = socket.create_connection((HOST, self.port), TIMEOUT)
        try:
            s.sendall(connect_packet(self.uid("plain")))
            s.settimeout(TIMEOUT)
            self.assertEqual(s.recv(4), b"\x20\x02\x00\x00")
            s.sendall(PINGREQ)
            self.assertEqual(s.recv(2), b"\xd0\x00")
        finally:
            s.close()


# ---- server-authenticated TLS -----------------------------------------------

class TlsListenerTests(TlsCase):
    def test_python_roundtrip_and_log(self):
        ctx = client_ctx()
        sub = self.connect_ok(ctx, v5=True)
        self.assertEqual(sub.subscribe(["tls/" + self.tag], 1), [1])
        pub = self.connect_ok(ctx)
        self.roundtrip(pub, sub, "tls/" + self.tag)
        self.assertIn(" over TLS", self.new_log())
        ver = pub.s.version()
        self.assertIn(ver, ("TLSv1.3", "TLSv1.2"))
        self.assertEqual(ver, "TLSv1.3", "TLS 1.3 is preferred")
        cert = pub.s.getpeercert()
        self.assertEqual(cert["serialNumber"], "1001")

    @unittest.skipUnless(have("mosquitto_pub") and have("mosquitto_sub"),
                         "no mosquitto clients")
    def test_mosquitto_cafile_roundtrip(self):
        # retained, so that the subscriber cannot miss it; both host
        # names of the certificate's subjectAltName verify
        topic = "cli/" + self.tag
        tls = ["-p", str(self.tls_port), "--cafile", pki("ca.crt")]
        try:
            for host in ("127.0.0.1", "localhost"):
                with self.subTest(host=host):
                    r = subprocess.run(
                        ["mosquitto_pub", "-h", host] + tls +
                        ["-t", topic, "-q", "1", "-r", "-m",
                         "over-tls-" + host],
                        capture_output=True, timeout=CLI_TIMEOUT)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    r = subprocess.run(
                        ["mosquitto_sub", "-h", host] + tls +
                        ["-t", topic, "-q", "1", "-C", "1", "-W", "10"],
                        capture_output=True, timeout=CLI_TIMEOUT)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout.strip(),
                                     b"over-tls-" + host.encode())
        finally:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1"] + tls +
                           ["-t", topic, "-q", "1", "-r", "-n"],
                           capture_output=True, timeout=CLI_TIMEOUT)
        self.assertIn(" over TLS", self.new_log())

    @unittest.skipIf(mqtt is None, "python3-paho-mqtt is not installed")
    def test_paho_tls_set(self):
        def tls(c):
            c.tls_set(ca_certs=pki("ca.crt"))
        for proto in (mqtt.MQTTv311, mqtt.MQTTv5):
            with self.subTest(proto=proto):
                self.assertEqual(paho_connack(self.tls_port, self.uid("p"),
                                              proto, tls=tls), 0)

        def untrusted(c):
            c.tls_set(ca_certs=pki("evil.crt"))
        # (paho drops its half-open socket on this error: no warning)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            with self.assertRaises(ssl.SSLError):
                paho_connack(self.tls_port, self.uid("p"), mqtt.MQTTv311,
                             tls=untrusted)
            gc.collect()

    def test_plaintext_to_tls_port_closed(self):
        s = socket.create_connection((HOST, self.tls_port), TIMEOUT)
        try:
            s.sendall(connect_packet(self.uid()))
            closed, data = read_until_close(s, TIMEOUT)
        finally:
            s.close()
        self.assertTrue(closed, "plaintext MQTT kept open on a TLS port")
        self.assertFalse(data.startswith(b"\x20"), "got a CONNACK: %r" % data)
        self.assertTrue(wait_for(lambda: "security: tls failure" in
                                 self.new_log(), TIMEOUT))
        # the TLS and plain listeners still serve
        self.connect_ok(client_ctx())
        self.plain_serving()

    def test_untrusted_server_certificate_refused_by_clients(self):
        # a client without our CA cannot verify the broker: the system CA
        # store and a foreign CA with the same name both fail
        for ctx in (client_ctx(system_ca=True), client_ctx("evil.crt")):
            err = self.assert_tls_refused(ctx)
            self.assertIn("CERTIFICATE_VERIFY_FAILED", err)
        if have("mosquitto_pub"):
            r = mosquitto("mosquitto_pub", self.tls_port, "--capath",
                          "/etc/ssl/certs", "-t", "x", "-m", "y")
            self.assertNotEqual(r.returncode, 0)
            r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                          pki("evil.crt"), "-t", "x", "-m", "y")
            self.assertNotEqual(r.returncode, 0)
        self.connect_ok(client_ctx())

    def test_old_tls_versions_refused(self):
        # T-02 / AUD-TLS-01: TLS 1.0 and 1.1 never complete
        tried = 0
        for v, flag in ((ssl.TLSVersion.TLSv1, "-tls1"),
                        (ssl.TLSVersion.TLSv1_1, "-tls1_1")):
            if not client_can_offer(v):
                continue   # this OpenSSL cannot even send such a hello
            tried += 1
            with self.subTest(version=v):
                self.assert_tls_refused(old_tls_ctx(v))
                rc, out = s_client(self.tls_port, flag, "-cipher",
                                   "DEFAULT@SECLEVEL=0")
                self.assertNotEqual(rc, 0, out)
                self.assertIn("alert protocol version", out)
                self.assertIn("no peer certificate available", out)
        if not tried:
            self.skipTest("the local OpenSSL cannot offer TLS 1.0/1.1")
        # the default listener (tls_version tlsv1.2) takes 1.2 and 1.3
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            c = self.connect_ok(client_ctx(version=v))
            self.assertEqual(c.s.version(), v.name.replace("_", "."))
        rc, out = s_client(self.tls_port, "-tls1_2")
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        if have("mosquitto_pub"):
            for v in ("tlsv1.2", "tlsv1.3"):
                r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                              pki("ca.crt"), "--tls-version", v, "-t",
                              "x", "-m", "y")
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_weak_ciphers_refused(self):
        # AUD-TLS-02: no non-forward-secret, CBC or NULL suites in 1.2
        for ciphers in ("AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA",
                        "NULL:@SECLEVEL=0"):
            with self.subTest(ciphers=ciphers):
                ctx = client_ctx(version=ssl.TLSVersion.TLSv1_2)
                try:
                    ctx.set_ciphers(ciphers)
                except ssl.SSLError:
                    continue  # not even available locally
                self.assert_tls_refused(ctx)
        ctx = client_ctx(version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        self.connect_ok(ctx)


class Tls13OnlyTests(TlsCase):
    broker_config = LISTENER + "tls_version tlsv1.3\nsys_interval 0\n"

    def test_tls12_client_refused(self):
        err = self.assert_tls_refused(
            client_ctx(version=ssl.TLSVersion.TLSv1_2))
        self.assertRegex(err, "(?i)protocol.version|unsupported")
        rc, out = s_client(self.tls_port, "-tls1_2")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("alert protocol version", out)
        c = self.connect_ok(client_ctx())
        self.assertEqual(c.s.version(), "TLSv1.3")
        rc, out = s_client(self.tls_port, "-tls1_3")
        self.assertEqual(rc, 0, out)
        if have("mosquitto_pub"):
            # note: mosquitto 2.0's "--tls-version tlsv1.2" only sets the
            # minimum (it still negotiates 1.3), so it cannot force 1.2
            r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                          pki("ca.crt"), "--tls-version", "tlsv1.3", "-t",
                          "x", "-m", "y")
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("security: tls failure", self.new_log())


# ---- mutual TLS (T-27) ------------------------------------------------------

class MutualTlsTests(TlsCase):
    broker_config = LISTENER + MTLS + "crlfile @DIR@/crl.pem\n" + \
        "sys_interval 0\n"
    files = ("server.crt", "server.key", "ca.crt", "crl.pem")

    def test_no_client_certificate_refused(self):
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=v):
                self.assert_tls_refused(client_ctx(version=v))
        if have("mosquitto_pub"):
            r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                          pki("ca.crt"), "-t", "x", "-m", "y")
            self.assertNotEqual(r.returncode, 0)
        self.assertTrue(wait_for(lambda: "security: tls failure" in
                                 self.new_log(), TIMEOUT))
        self.connect_ok(client_ctx(cert="device1"))

    def test_valid_client_certificate(self):
        ctx = client_ctx(cert="device1")
        sub = self.connect_ok(ctx)
        self.assertEqual(sub.subscribe(["m/" + self.tag], 1), [1])
        self.roundtrip(self.connect_ok(ctx, v5=True), sub, "m/" + self.tag)
        if have("mosquitto_pub"):
            r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                          pki("ca.crt"), "--cert", pki("device1.crt"),
                          "--key", pki("device1.key"), "-t",
                          "m/" + self.tag, "-m", "from-cli", "-q", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sub.next_publish()["payload"], b"from-cli")

    def test_revoked_and_foreign_certificates_refused(self):
        # the TLS 1.2 handshake tells why (in 1.3 the alert comes after
        # the client's Finished, and a client that sent CONNECT at once
        # may only see the close)
        for cert, alert in (("revoked", "CERTIFICATE_REVOKED"),
                            ("forged", "UNKNOWN_CA")):
            for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                with self.subTest(cert=cert, version=v):
                    err = self.assert_tls_refused(client_ctx(cert=cert,
                                                             version=v))
                    if v == ssl.TLSVersion.TLSv1_2:
                        self.assertIn(alert, err)
        if have("mosquitto_pub"):
            r = mosquitto("mosquitto_pub", self.tls_port, "--cafile",
                          pki("ca.crt"), "--cert", pki("revoked.crt"),
                          "--key", pki("revoked.key"), "-t", "x", "-m", "y")
            self.assertNotEqual(r.returncode, 0)
        self.assertIn("security: tls failure", self.new_log())
        self.connect_ok(client_ctx(cert="device1"))


IDENTITY_ACL = """\
user device1
topic readwrite devices/device1/#

user san-device1
topic readwrite devices/san-device1/#

user admin
topic readwrite #

pattern readwrite devices/%u/#
"""


class IdentityTests(TlsCase):
    """Two mTLS listeners: the user name is the certificate's CN on the
    first and its first subjectAltName on the second."""
    broker_config = (LISTENER + MTLS + "use_identity_as_username true\n" +
                     LISTENER + MTLS + "use_identity_as_username san\n" +
                     "acl_file @DIR@/acl\nsys_interval 0\n")
    acl = IDENTITY_ACL

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cn_port, cls.san_port = cls.broker.tls_ports

    def check_confined(self, port, user, own):
        ctx = client_ctx(cert="device1")
        for v5, denied in ((False, 0x80), (True, 0x87)):
            # a user name and password in CONNECT are ignored: the
            # certificate decides (no escalation to "admin")
            for cred in ((None, None), ("admin", "whatever")):
                with self.subTest(port=port, v5=v5, cred=cred):
                    c = self.connect_ok(ctx, port=port, v5=v5,
                                        user=cred[0], password=cred[1])
                    self.assertEqual(c.subscribe([own + "/#", "#",
                                                  "devices/other/#",
                                                  "devices/+/x"]),
                                     [0, denied, denied, denied])
                    self.assertEqual(c.publish("devices/other/x", "no", 1),
                                     0x87 if v5 else 0)
                    self.assertEqual(c.publish(own + "/x", "yes", 1), 0)
                    self.assertEqual(c.next_publish()["payload"], b"yes")
        self.assertIn("user %s" % user, self.new_log())

    def test_cn_identity(self):
        self.check_confined(self.cn_port, "device1", "devices/device1")

    def test_san_identity(self):
        self.check_confined(self.san_port, "san-device1",
                            "devices/san-device1")

    def test_ambiguous_or_missing_identity_refused(self):
        # two CNs: refused rather than picking one (which could be admin)
        c, data, err = mqtt_tls(self.cn_port, client_ctx(cert="twocn"),
                                self.uid())
        self.assertIsNone(err, err)
        self.assertEqual(parse_connack(data)[1], V3_NOT_AUTHORIZED)
        c.s.close()
        # no subjectAltName on the san listener
        c, data, err = mqtt_tls(self.san_port, client_ctx(cert="nosan"),
                                self.uid(), v5=True)
        self.assertIsNone(err, err)
        self.assertEqual(parse_connack(data)[1], V5_NOT_AUTHORIZED)
        c.s.close()
        self.assertIn("no usable identity", self.new_log())
        # an identity with + (or # or /) is refused where the ACL
        # substitutes %u (CVE-2017-7650 via a certificate)
        for port in (self.cn_port, self.san_port):
            c, data, err = mqtt_tls(port, client_ctx(cert="pluscn"),
                                    self.uid())
            self.assertIsNone(err, err)
            self.assertEqual(parse_connack(data)[1], V3_NOT_AUTHORIZED)
            c.s.close()
        self.assertIn("user name contains +, # or /", self.new_log())
        # a certificate from another CA with the same CN never gets in
        for port in (self.cn_port, self.san_port):
            self.assert_tls_refused(client_ctx(cert="forged"), port=port)
        self.connect_ok(client_ctx(cert="device1"), port=self.cn_port)


# ---- unsafe key files refuse start ------------------------------------------

class KeyFileTests(unittest.TestCase):
    """Unsafe or incomplete TLS files stop moatd at start (exit 1)."""
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-tls-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        for n in ("server.crt", "ca.crt"):
            write_private(os.path.join(self.dir, n), read(n), 0o644)

    def refuses(self, keypath):
        conf = os.path.join(self.dir, "moatd.conf")
        with open(conf, "w") as f:
            f.write("listener 0 127.0.0.1\ncertfile %s/server.crt\n"
                    "keyfile %s\n" % (self.dir, keypath))
        try:
            r = subprocess.run([MOATD, "-c", conf], capture_output=True,
                               timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("moatd started with keyfile %s" % keypath)
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 1, out)
        self.assertIn(keypath, out)
        self.assertNotIn("running with", out)
        return out

    def test_world_readable_keyfile(self):
        key = os.path.join(self.dir, "server.key")
        write_private(key, read("server.key"), 0o644)
        out = self.refuses(key)
        self.assertIn("other users", out)

    def test_symlinked_keyfile(self):
        real = os.path.join(self.dir, "real.key")
        write_private(real, read("server.key"), 0o600)
        key = os.path.join(self.dir, "server.key")
        os.symlink(real, key)
        out = self.refuses(key)
        self.assertIn("symbolic link", out)

    def test_mismatched_keyfile(self):
        key = os.path.join(self.dir, "server.key")
        write_private(key, read("server2.key"), 0o600)
        self.refuses(key)

    def test_incomplete_tls_configuration_refused(self):
        # fail closed (T-20/T-27: never a silent downgrade such as
        # Mosquitto 2.0.9's empty CA file)
        d = self.dir
        key = os.path.join(d, "server.key")
        write_private(key, read("server.key"), 0o600)
        write_private(os.path.join(d, "empty.pem"), b"", 0o644)
        head = "listener 0 127.0.0.1\ncertfile %s/server.crt\n" % d
        cases = {
            "certfile without keyfile": (head, "keyfile"),
            "require_certificate without cafile":
                (head + "keyfile %s\nrequire_certificate true\n" % key,
                 "cafile"),
            "identity without require_certificate":
                (head + "keyfile %s\ncafile %s/ca.crt\n"
                 "use_identity_as_username true\n" % (key, d),
                 "require_certificate"),
            "missing cafile":
                (head + "keyfile %s\ncafile %s/nope.crt\n"
                 "require_certificate true\n" % (key, d), "nope.crt"),
            "empty cafile":
                (head + "keyfile %s\ncafile %s/empty.pem\n"
                 "require_certificate true\n" % (key, d), "empty.pem"),
            "empty crlfile":
                (head + "keyfile %s\ncafile %s/ca.crt\n"
                 "require_certificate true\ncrlfile %s/empty.pem\n"
                 % (key, d, d), "empty.pem"),
        }
        conf = os.path.join(d, "moatd.conf")
        for what, (text, needle) in cases.items():
            with self.subTest(what):
                with open(conf, "w") as f:
                    f.write(text)
                try:
                    r = subprocess.run([MOATD, "-c", conf],
                                       capture_output=True, timeout=15)
                except subprocess.TimeoutExpired:
                    self.fail("moatd started: %s" % what)
                out = (r.stdout + r.stderr).decode(errors="replace")
                self.assertEqual(r.returncode, 1, out)
                self.assertIn(needle, out)
                self.assertNotIn("running with", out)


# ---- reload -----------------------------------------------------------------

class CrlReloadTests(TlsCase):
    broker_config = LISTENER + MTLS + "crlfile @DIR@/crl.pem\n" + \
        "sys_interval 0\n"
    files = ("server.crt", "server.key", "ca.crt", "crl.pem")

    def test_new_crl_on_sighup(self):
        # T-11 for certificates: a CRL that revokes device1, loaded by
        # SIGHUP, keeps device1 out of new connections
        ctx = client_ctx(cert="device1", version=ssl.TLSVersion.TLSv1_2)
        old = self.connect_ok(ctx)
        self.broker.write("crl.pem", read("crl2.pem"), 0o644)
        self.addCleanup(self.broker.reload)
        self.addCleanup(self.broker.write, "crl.pem", read("crl.pem"),
                        0o644)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        err = self.assert_tls_refused(ctx)
        self.assertIn("CERTIFICATE_REVOKED", err)
        # a reload does not drop connections
        self.assertTrue(old.alive())

class TlsReloadTests(TlsCase):
    def test_new_certificate_on_sighup(self):
        ctx = client_ctx()
        old = self.connect_ok(ctx)
        self.assertEqual(old.s.getpeercert()["serialNumber"], "1001")
        self.assertEqual(old.subscribe(["r/" + self.tag], 1), [1])
        self.broker.write("server.crt", read("server2.crt"), 0o644)
        self.broker.write("server.key", read("server2.key"), 0o600)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        new = self.connect_ok(ctx)
        self.assertEqual(new.s.getpeercert()["serialNumber"], "1002")
        rc, out = s_client(self.tls_port, "-showcerts")
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        # the connection made before the reload keeps working
        self.assertTrue(old.alive())
        self.roundtrip(new, old, "r/" + self.tag)
        # a world-readable key is refused at reload; the current one stays
        self.broker.write("server.key", read("server2.key"), 0o644)
        self.assertFalse(self.broker.reload())
        self.assertIn(self.broker.path("server.key"), self.new_log())
        self.assertEqual(self.connect_ok(ctx).s.getpeercert()
                         ["serialNumber"], "1002")
        self.broker.write("server.key", read("server2.key"), 0o600)


if __name__ == "__main__":
    unittest.main()
