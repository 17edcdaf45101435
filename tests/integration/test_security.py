"""Attacks on moatd's authentication, authorisation and limits.

Each case plays an attacker from /work/shared/THREATS.md section 3.2 (the
T-xx ids in the comments) against the real moatd and checks both that the
attack is refused (exact CONNACK, SUBACK, PUBACK or DISCONNECT codes, no
delivery, a "security: " log line) and that a legitimate client of the
same broker keeps working (SecCase.tearDown: a guard subscriber connected
before the case still gets a message afterwards).

Raw sockets give the exact codes; paho-mqtt (v3.1.1 and v5) and the
mosquitto_pub/_sub command-line clients check what real clients see.
Password files are written with "$7$" hashes (as mosquitto_passwd makes
them), and in AuthTests also with mosquitto_passwd and `moat passwd`.

Only loopback traffic (127.0.0.2 and .3 stand in for other addresses);
every socket has a timeout, every subprocess a timeout, every loop a
bound.  Timing is only asserted as lower bounds (login back-off), never as
an upper bound on speed.

Wills are checked again when they fire (T-07) and retained messages
against their publisher's current rights (T-06); a reload with nothing
changed warns about nothing.

Run with the system interpreter, which has Debian's paho:
    MOATD_BIN=.../moatd MOAT_BIN=.../moat /usr/bin/python3 -m unittest \
        -v test_security
"""
import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moat_harness import (  # noqa: E402
    MOAT, MOATD, HOST, PINGREQ, BrokerTest, as_bytes, cid_on,
    connack_of, connect_packet, mqtt_str, packet, password_file_text,
    raw_connect, read_packet, read_until_close, send_quietly, u16, varint,
    wait_for, write_private)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - depends on the host
    mqtt = None

TIMEOUT = 5.0
CLI_TIMEOUT = 20

# Passwords strong enough for `moat passwd` (it refuses weak ones).
PW = {
    "admin": "Adm1n#Strong!pw7",
    "low": "L0w#Priv!Secret3",
    "bob": "B0b#Other!Secret5",
    "alice": "Al1ce#Secret!9xQ",
}

# v3.1.1 CONNACK return codes and v5 reason codes used below
V3_BAD_CREDENTIALS, V3_NOT_AUTHORIZED, V3_ID_REJECTED = 0x04, 0x05, 0x02
V5_BAD_USER_PASS, V5_NOT_AUTHORIZED, V5_ID_INVALID = 0x86, 0x87, 0x85
V5_RATE_TOO_HIGH = 0x96


def have(tool):
    return shutil.which(tool) is not None


# ---- raw packets ------------------------------------------------------------

def connect5(client_id, clean=True, keepalive=60, will=None, user=None,
             password=None, session_expiry=None):
    flags = 0x02 if clean else 0
    cprops = b""
    if session_expiry is not None:
        cprops += bytes([0x11]) + session_expiry.to_bytes(4, "big")
    payload = mqtt_str(as_bytes(client_id))
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += b"\x00" + mqtt_str(as_bytes(topic)) + \
            mqtt_str(as_bytes(msg))
    if user is not None:
        flags |= 0x80
        payload += mqtt_str(as_bytes(user))
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(as_bytes(password))
    body = mqtt_str(b"MQTT") + bytes([5, flags]) + u16(keepalive) + \
        varint(len(cprops)) + cprops + payload
    return packet(0x10, body)


def read_vbi(data, pos):
    value, mult = 0, 1
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, pos


class Conn:
    """One raw MQTT connection (3.1.1 or 5.0) of a test case."""

    def __init__(self, sock, v5):
        self.s = sock
        self.v5 = v5
        self.pid = 0
        self.pending = []   # publishes read while waiting for an ack

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def send(self, data):
        self.s.sendall(data)

    def read(self, timeout=TIMEOUT):
        self.s.settimeout(timeout)
        return read_packet(self.s)

    def subscribe(self, filters, qos=0):
        """SUBSCRIBE filters (strings) at qos; the SUBACK codes."""
        pid = self.next_pid()
        body = u16(pid) + (b"\x00" if self.v5 else b"")
        for f in filters:
            body += mqtt_str(as_bytes(f)) + bytes([qos])
        self.send(packet(0x82, body))
        while True:
            first, body = self.read()
            if first >> 4 == 3:      # a retained message may come first
                self.pending.append(self.take(first, body))
                continue
            assert first == 0x90, "not a SUBACK: 0x%02x" % first
            assert body[:2] == u16(pid)
            pos = 2
            if self.v5:
                n, pos = read_vbi(body, pos)
                pos += n
            return list(body[pos:])

    def publish(self, topic, payload, qos=0, retain=False):
        """PUBLISH; for QoS 1 and 2 the reason code the broker answered
        (3.1.1: always 0), after finishing the QoS 2 flow."""
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        body = mqtt_str(as_bytes(topic))
        pid = None
        if qos:
            pid = self.next_pid()
            body += u16(pid)
        if self.v5:
            body += b"\x00"
        self.send(packet(first, body + as_bytes(payload)))
        if not qos:
            return None
        want = 0x40 if qos == 1 else 0x50
        while True:
            f, b = self.read()
            if f >> 4 == 3:
                self.pending.append(self.take(f, b))
                continue
            assert f == want and b[:2] == u16(pid), (hex(f), b)
            rc = b[2] if len(b) > 2 else 0
            break
        if qos == 2 and rc < 0x80:
            self.send(bytes([0x62, 2]) + u16(pid))
            while True:
                f, b = self.read()
                if f >> 4 == 3:
                    self.pending.append(self.take(f, b))
                    continue
                assert f == 0x70 and b[:2] == u16(pid), (hex(f), b)
                break
        return rc

    def take(self, first, body):
        """Parse (and acknowledge) a PUBLISH."""
        qos = (first >> 1) & 3
        tlen = int.from_bytes(body[:2], "big")
        topic = body[2:2 + tlen].decode()
        pos = 2 + tlen
        pid = None
        if qos:
            pid = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
            self.send(bytes([0x40 if qos == 1 else 0x50, 2]) + u16(pid))
        if self.v5:
            n, pos = read_vbi(body, pos)
            pos += n
        return {"topic": topic, "payload": body[pos:], "qos": qos,
                "retain": bool(first & 1)}

    def next_publish(self, timeout=TIMEOUT):
        if self.pending:
            return self.pending.pop(0)
        while True:
            first, body = self.read(timeout)
            if first == 0x62:   # PUBREL of a QoS 2 delivery
                self.send(bytes([0x70, 2]) + body[:2])
                continue
            assert first >> 4 == 3, "not a PUBLISH: 0x%02x" % first
            return self.take(first, body)

    def sync(self):
        """PINGREQ; the publishes that arrive before the PINGRESP."""
        self.send(PINGREQ)
        got, self.pending = self.pending, []
        while True:
            first, body = self.read()
            if first == 0xD0:
                return got
            if first == 0x62:
                self.send(bytes([0x70, 2]) + body[:2])
                continue
            assert first >> 4 == 3, "unexpected packet 0x%02x" % first
            got.append(self.take(first, body))

    def until(self, payload, timeout=TIMEOUT):
        """Every publish before the one with this payload (which must
        come)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            p = self.next_publish(max(0.1, deadline - time.monotonic()))
            if p["payload"] == as_bytes(payload):
                return seen
            seen.append(p)

    def alive(self):
        """Answers a PINGREQ (skipping publishes)."""
        try:
            self.sync()
            return True
        except (ConnectionError, OSError, AssertionError):
            return False

    def closed(self, timeout=TIMEOUT):
        return read_until_close(self.s, timeout)

    def disconnect(self):
        send_quietly(self.s, b"\xe0\x00")
        read_until_close(self.s, TIMEOUT)
        self.s.close()


def parse_connack(data):
    """(session present, return/reason code) of CONNACK bytes."""
    assert data[:1] == b"\x20", "not a CONNACK: %r" % data
    _, pos = read_vbi(data, 1)
    return data[pos] & 1, data[pos + 1]


# ---- base class -------------------------------------------------------------

class SecCase(BrokerTest):
    """One broker per class, with a password file of `users` ("$7$"
    hashes) and, when `acl` is set, an ACL file.  A guard subscriber (user
    guard_user, or anonymous when None) connected before each case must
    still get a message from another client after it."""
    workers = 2
    users = PW
    acl = None
    extra_config = ""
    backoff = "0"          # auth_backoff_initial (None: the default)
    guard_user = "admin"
    guard = True

    @classmethod
    def setUpClass(cls):
        files = dict(cls.extra_files())
        cfg = ""
        if cls.users is not None:
            files.setdefault("passwd", password_file_text(cls.users))
            cfg += "password_file @DIR@/passwd\n"
        if cls.acl is not None:
            files["acl"] = cls.acl
            cfg += "acl_file @DIR@/acl\n"
        if cls.backoff is not None:
            cfg += "auth_backoff_initial %s\n" % cls.backoff
        cls.broker_files = files
        cls.broker_config = cfg + cls.extra_config
        super().setUpClass()

    @classmethod
    def extra_files(cls):
        return {}

    def setUp(self):
        super().setUp()
        self._socks = []
        self._n = 0
        self.tag = self._testMethodName.replace("_", "-")
        self.log_mark = len(self.broker.read_log())
        self.guard_conn = None
        if self.guard:
            self.guard_topic = "guard/" + self.tag
            self.guard_conn = self.login(self.guard_user,
                                         cid_on("guard-" + self.tag, 0))
            self.assertEqual(self.guard_conn.subscribe([self.guard_topic],
                                                       1), [1])

    def tearDown(self):
        try:
            if self.guard_conn is not None:
                self.assert_serving()
        finally:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        super().tearDown()

    def assert_serving(self):
        self.assertTrue(self.broker.alive(), "broker died:\n" +
                        self.broker.read_log()[-4000:])
        p = self.login(self.guard_user, cid_on("gpub-" + self.tag, 1))
        payload = "still-serving-" + self.tag
        self.assertEqual(p.publish(self.guard_topic, payload, 1), 0)
        got = self.guard_conn.next_publish()
        self.assertEqual((got["topic"], got["payload"]),
                         (self.guard_topic, payload.encode()),
                         "the guard subscriber lost service")
        p.disconnect()

    # -- connections --

    def uid(self, what="c"):
        self._n += 1
        return "%s-%s-%d" % (what, self.tag, self._n)

    def sock(self, port=None, src=None):
        if src:
            s = socket.create_connection((HOST, port or self.port), TIMEOUT,
                                         source_address=(src, 0))
            s.settimeout(TIMEOUT)
        else:
            s = raw_connect(port or self.port, TIMEOUT)
        self._socks.append(s)
        return s

    def attempt(self, user=None, password=None, cid=None, v5=False,
                clean=True, will=None, session_expiry=None, port=None,
                src=None):
        """CONNECT on a new connection: (Conn, CONNACK bytes or b"")."""
        s = self.sock(port, src)
        cid = cid if cid is not None else self.uid()
        if v5:
            data = connect5(cid, clean=clean, will=will, user=user,
                            password=password,
                            session_expiry=session_expiry)
        else:
            data = connect_packet(cid, clean=clean, will=will, user=user,
                                  password=password)
        send_quietly(s, data)
        return Conn(s, v5), connack_of(s)

    def login(self, user, cid=None, v5=False, clean=True, will=None,
              password=None, present=False, session_expiry=None):
        """A connected client of user (None = anonymous)."""
        if user is not None and password is None:
            password = self.users[user]
        c, data = self.attempt(user, password, cid, v5, clean, will,
                               session_expiry)
        self.assertTrue(data, "closed without CONNACK for user %r" % user)
        sp, rc = parse_connack(data)
        self.assertEqual(rc, 0, "CONNACK 0x%02x for user %r" % (rc, user))
        self.assertEqual(sp, 1 if present else 0, "session present")
        return c

    def assert_refused(self, attempt, code):
        """attempt = (Conn, CONNACK): refused with code, then closed."""
        c, data = attempt
        self.assertTrue(data, "closed without a CONNACK (wanted 0x%02x)"
                        % code)
        self.assertEqual(parse_connack(data)[1], code,
                         "CONNACK 0x%02x, wanted 0x%02x"
                         % (parse_connack(data)[1], code))
        closed, _ = c.closed()
        self.assertTrue(closed, "not closed after a refused CONNECT")

    # -- the log --

    def new_log(self):
        return self.broker.read_log()[self.log_mark:]

    def wait_log(self, needle, count=1, timeout=TIMEOUT):
        return wait_for(lambda: self.new_log().count(needle) >= count,
                        timeout)

    def assert_logged(self, needle, count=1):
        self.assertTrue(self.wait_log(needle, count),
                        "%r not logged %d time(s); log:\n%s"
                        % (needle, count, self.new_log()[-3000:]))


# ---- T-01, T-03: authentication ---------------------------------------------

class AuthTests(SecCase):
    """allow_anonymous false; $7$ users, a mosquitto_passwd user and an
    argon2id user from `moat passwd`."""
    extra_config = "allow_anonymous false\nsys_interval 0\n"
    guard_user = "alice"
    MOSQ_USER, MOSQ_PW = "mosq", "Mq7#pLx2!vR9zT"
    ARGON_USER, ARGON_PW = "argon", "Kx9#vLq2!mW4"
    SHA_USER, SHA_PW = "legacy", "Lg6#Old!Sha512x"

    @classmethod
    def extra_files(cls):
        with tempfile.TemporaryDirectory(prefix="moat-sec-") as d:
            path = os.path.join(d, "passwd")
            cls.tools = []
            if have("mosquitto_passwd"):
                r = subprocess.run(["mosquitto_passwd", "-c", "-b", path,
                                    cls.MOSQ_USER, cls.MOSQ_PW],
                                   capture_output=True, timeout=CLI_TIMEOUT)
                assert r.returncode == 0, r.stderr
                cls.tools.append("mosquitto_passwd")
            with open(path, "a") as f:
                f.write(password_file_text(PW))
                # mosquitto 1.x "$6$": SHA-512(password || salt)
                salt = os.urandom(12)
                digest = hashlib.sha512(cls.SHA_PW.encode() + salt).digest()
                f.write("%s:$6$%s$%s\n" % (cls.SHA_USER,
                                           base64.b64encode(salt).decode(),
                                           base64.b64encode(digest).decode()))
            os.chmod(path, 0o600)
            r = subprocess.run([MOAT, "passwd", "--stdin", path,
                                cls.ARGON_USER],
                               input=(cls.ARGON_PW + "\n").encode(),
                               capture_output=True, timeout=CLI_TIMEOUT)
            assert r.returncode == 0, r.stderr
            cls.tools.append("moat passwd")
            with open(path) as f:
                cls.passwd_text = f.read()
        return {"passwd": cls.passwd_text}

    def test_anonymous_refused(self):
        # T-01 / AUD-MQ-02: no user name -> v3 0x05, v5 0x87, then close
        self.assert_refused(self.attempt(), V3_NOT_AUTHORIZED)
        self.assert_refused(self.attempt(v5=True), V5_NOT_AUTHORIZED)
        # an empty client id changes nothing
        self.assert_refused(self.attempt(cid=""), V3_NOT_AUTHORIZED)
        self.assert_logged("security: auth failure", 3)
        self.assert_logged("anonymous access refused")
        # a legitimate user on the same listener is served
        c = self.login("alice")
        self.assertTrue(c.alive())

    def test_bad_credentials(self):
        # T-03: every kind of bad login gets the same answer
        cases = {
            "wrong password": ("alice", "wrong-" + PW["alice"]),
            "other user's password": ("alice", PW["bob"]),
            "unknown user": ("mallory", PW["alice"]),
            "no password": ("alice", None),
            "empty password": ("alice", ""),
            "empty user": ("", PW["alice"]),
            "case differs": ("Alice", PW["alice"]),
        }
        n = 0
        for what, (user, pw) in cases.items():
            for v5, code in ((False, V3_BAD_CREDENTIALS),
                             (True, V5_BAD_USER_PASS)):
                with self.subTest(what, v5=v5):
                    self.assert_refused(self.attempt(user, pw, v5=v5), code)
                    n += 1
        self.assert_logged("security: auth failure", n)
        # a NUL in the user name (U+0000 is malformed in MQTT) never
        # matches "alice": refused (0x04, v5 0x86 or 0x81 malformed) or
        # closed without a CONNACK
        for v5 in (False, True):
            c, data = self.attempt("alice\x00x", PW["alice"], v5=v5)
            if data:
                self.assertIn(parse_connack(data)[1],
                              (V3_BAD_CREDENTIALS, V5_BAD_USER_PASS, 0x81))
            self.assertTrue(c.closed()[0])
        # the right password works, in both versions
        for v5 in (False, True):
            c = self.login("alice", v5=v5)
            self.assertTrue(c.alive())
        self.assertIn("user alice", self.new_log())

    def test_user_name_cannot_forge_log_lines(self):
        # T-29: control characters in a user name are escaped in the log
        self.assert_refused(self.attempt(
            "evil\n2026-01-01T00:00:00.000Z notice: forged: line\r\x1b[2J",
            "x"), V3_BAD_CREDENTIALS)
        self.assert_logged("security: auth failure")
        log = self.broker.read_log()
        # the injected text stays inside the security line
        # (spaces in names are escaped too, so the text reads "forged:\x20")
        lines = [ln for ln in log.splitlines()
                 if "forged:\\x20line" in ln]
        self.assertTrue(lines)
        for ln in lines:
            self.assertIn("security: auth failure", ln)
        self.assertNotIn("\x1b", log)
        self.assertNotIn("\r", log)

    def test_password_not_logged(self):
        # a failed login logs the user name, never the password tried
        secret = "Tr0ub4dor&3-not-logged"
        self.assert_refused(self.attempt("alice", secret),
                            V3_BAD_CREDENTIALS)
        self.assert_logged("security: auth failure")
        self.assertNotIn(secret, self.broker.read_log())
        self.assertNotIn(PW["alice"], self.broker.read_log())

    def test_argon2id_from_moat_passwd(self):
        line = [ln for ln in self.passwd_text.splitlines()
                if ln.startswith(self.ARGON_USER + ":")]
        self.assertEqual(len(line), 1)
        self.assertIn(":$argon2id$", line[0])
        c = self.login(self.ARGON_USER, password=self.ARGON_PW)
        self.assertTrue(c.alive())
        c = self.login(self.ARGON_USER, password=self.ARGON_PW, v5=True)
        self.assertTrue(c.alive())
        self.assert_refused(self.attempt(self.ARGON_USER, "Kx9#vLq2!mW5"),
                            V3_BAD_CREDENTIALS)

    def test_mosquitto_1x_sha512_hash(self):
        c = self.login(self.SHA_USER, password=self.SHA_PW, v5=True)
        self.assertTrue(c.alive())
        self.assert_refused(self.attempt(self.SHA_USER, self.SHA_PW + "x"),
                            V3_BAD_CREDENTIALS)

    @unittest.skipUnless(have("mosquitto_passwd"), "no mosquitto_passwd")
    def test_mosquitto_passwd_hash(self):
        line = [ln for ln in self.passwd_text.splitlines()
                if ln.startswith(self.MOSQ_USER + ":")]
        self.assertEqual(len(line), 1)
        self.assertIn(":$7$", line[0])
        c = self.login(self.MOSQ_USER, password=self.MOSQ_PW)
        self.assertTrue(c.alive())
        self.assert_refused(self.attempt(self.MOSQ_USER, self.MOSQ_PW[:-1]),
                            V3_BAD_CREDENTIALS)

    @unittest.skipUnless(have("mosquitto_pub") and have("mosquitto_sub"),
                         "no mosquitto clients")
    def test_mosquitto_clients(self):
        # mosquitto_sub/_pub with -u/-P: a mosquitto_passwd user receives
        # what an argon2id user published (retained, so no race with the
        # subscription); without -u, or with a wrong password, refused.
        topic = "cli/" + self.tag
        base = ["-h", HOST, "-p", str(self.port)]
        argon = ["-u", self.ARGON_USER, "-P", self.ARGON_PW]
        r = subprocess.run(["mosquitto_pub"] + base + argon +
                           ["-q", "1", "-r", "-t", topic, "-m", "hello-cli"],
                           capture_output=True, timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            r = subprocess.run(
                ["mosquitto_sub"] + base +
                ["-u", self.MOSQ_USER, "-P", self.MOSQ_PW, "-q", "1",
                 "-t", topic, "-C", "1", "-W", "10"],
                capture_output=True, timeout=CLI_TIMEOUT)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), b"hello-cli")
        finally:
            subprocess.run(["mosquitto_pub"] + base + argon +
                           ["-q", "1", "-r", "-n", "-t", topic],
                           capture_output=True, timeout=CLI_TIMEOUT)
        self.assertIn("user " + self.MOSQ_USER, self.new_log())
        # no user name, or a wrong password: mosquitto_pub fails
        for extra in ([], ["-u", self.MOSQ_USER, "-P", "nope-nope"]):
            with self.subTest(args=extra):
                r = subprocess.run(
                    ["mosquitto_pub", "-h", HOST, "-p", str(self.port),
                     "-t", topic, "-m", "x"] + extra,
                    capture_output=True, timeout=CLI_TIMEOUT)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stderr.decode(),
                                 "not authori[sz]ed|[Bb]ad user name or "
                                 "password|[Cc]onnection [Rr]efused")

    @unittest.skipIf(mqtt is None, "python3-paho-mqtt is not installed")
    def test_paho_codes(self):
        # what a real client library reports
        cases = [(mqtt.MQTTv311, None, None, V3_NOT_AUTHORIZED),
                 (mqtt.MQTTv311, "alice", "bad", V3_BAD_CREDENTIALS),
                 (mqtt.MQTTv311, "alice", PW["alice"], 0),
                 (mqtt.MQTTv5, None, None, V5_NOT_AUTHORIZED),
                 (mqtt.MQTTv5, "alice", "bad", V5_BAD_USER_PASS),
                 (mqtt.MQTTv5, "alice", PW["alice"], 0)]
        for proto, user, pw, want in cases:
            with self.subTest(proto=proto, user=user, pw=pw):
                self.assertEqual(paho_connack(self.port, self.uid("paho"),
                                              proto, user, pw), want)


def paho_connack(port, cid, proto, user=None, pw=None, tls=None):
    """Connect with paho, return the CONNACK code (int), None if none."""
    c = mqtt.Client(client_id=cid, protocol=proto)
    got = []
    c.on_connect = lambda cl, u, flags, rc, props=None: got.append(
        rc.value if hasattr(rc, "value") else rc)
    if user is not None:
        c.username_pw_set(user, pw)
    if tls:
        tls(c)
    try:
        c.connect(HOST, port, 30)
        deadline = time.monotonic() + TIMEOUT
        while not got and time.monotonic() < deadline:
            if c.loop(timeout=0.1) not in (mqtt.MQTT_ERR_SUCCESS,):
                break
        if got and got[0] == 0:
            c.disconnect()
    finally:
        sock = c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
    return got[0] if got else None


class AnonymousLoopbackTests(SecCase):
    """Default allow_anonymous (loopback): anonymous clients are accepted
    on this 127.0.0.1 listener, but a user name given is still checked."""
    extra_config = "sys_interval 0\n"
    guard_user = None

    def test_anonymous_allowed_on_loopback(self):
        for v5 in (False, True):
            c = self.login(None, v5=v5)
            self.assertEqual(c.subscribe(["anon/" + self.tag], 1), [1])
            self.assertEqual(c.publish("anon/" + self.tag, "x", 1), 0)
            self.assertEqual(c.next_publish()["payload"], b"x")
        self.assertIn("user (anonymous)", self.new_log())

    def test_connack_tells_no_version(self):
        # T-05: nothing in a CONNACK (accepted or refused, v5 properties
        # and reason strings included) names the broker or its version
        version = subprocess.run([MOATD, "--version"], capture_output=True,
                                 timeout=CLI_TIMEOUT).stdout.split()[-1]
        for user, pw in ((None, None), ("alice", PW["alice"]),
                         ("alice", "wrong"), ("nobody", "x")):
            for v5 in (False, True):
                with self.subTest(user=user, v5=v5):
                    _, data = self.attempt(user, pw, v5=v5)
                    self.assertTrue(data)
                    self.assertNotIn(b"moat", data.lower())
                    self.assertNotIn(version, data)

    def test_named_user_still_verified(self):
        # an anonymous-friendly listener does not turn a bad password
        # into an anonymous login
        self.assert_refused(self.attempt("alice", "wrong"),
                            V3_BAD_CREDENTIALS)
        self.assert_refused(self.attempt("mallory", "x", v5=True),
                            V5_BAD_USER_PASS)
        self.assertTrue(self.login("alice").alive())


# ---- T-03: brute force ------------------------------------------------------

class BackoffTests(SecCase):
    """auth_backoff_initial 300ms: after a failure the next attempt waits
    300 ms, then 600 ms, ...; a success resets it.  (Only lower bounds are
    asserted: a slow machine makes every delay longer, never shorter.)"""
    backoff = "300ms"
    extra_config = "auth_backoff_max 10s\nsys_interval 0\n"
    guard_user = None        # anonymous logins are not held back
    INITIAL = 0.3
    SLACK = 0.05

    def timed(self, user, pw, src=None):
        """(seconds from CONNECT to CONNACK, return code)."""
        if src:
            s = socket.create_connection((HOST, self.port), TIMEOUT,
                                         source_address=(src, 0))
            self._socks.append(s)
        else:
            s = self.sock()
        t0 = time.monotonic()
        send_quietly(s, connect_packet(self.uid(), user=user, password=pw))
        data = connack_of(s, timeout=15.0)
        elapsed = time.monotonic() - t0
        self.assertTrue(data, "no CONNACK within 15 s")
        return elapsed, parse_connack(data)[1]

    def test_backoff_grows_and_resets(self):
        # a client connected before the attack keeps working during it
        legit = self.login(None, cid=self.uid("legit"))
        self.assertEqual(legit.subscribe(["legit/" + self.tag], 1), [1])
        # failure 1 (not held: nothing on record yet)
        _, rc = self.timed("alice", "wrong-1")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        # the next attempt waits at least the initial delay
        t2, rc = self.timed("alice", "wrong-2")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        self.assertGreaterEqual(t2, self.INITIAL - self.SLACK,
                                "attempt after 1 failure not held back")
        # after 2 failures, twice that
        t3, rc = self.timed("alice", "wrong-3")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        self.assertGreaterEqual(t3, 2 * self.INITIAL - self.SLACK,
                                "attempt after 2 failures: %.3f s" % t3)
        # another user from the same address is not held back: the
        # back-off is per (address, user name) and per user name, so a
        # neighbour behind the same NAT address logs in
        _, rc = self.timed("bob", PW["bob"])
        self.assertEqual(rc, 0)
        # alice's own delay is still there (4 x initial after 3 failures)
        t5, rc = self.timed("alice", PW["alice"])
        self.assertGreaterEqual(t5, self.INITIAL - self.SLACK,
                                "alice after 3 failures: %.3f s" % t5)
        self.assertEqual(rc, 0)
        # the success reset alice's count: the next failure is number 1
        _, rc = self.timed("alice", "wrong-after-reset")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        self.assert_logged("(failure 1 in a row for it)", 2)
        log = self.new_log()
        self.assertEqual(log.count("security: auth failure"), 4, log)
        for n in (1, 2, 3):
            self.assertIn("(failure %d in a row for it)" % n, log)
        _, rc = self.timed("alice", PW["alice"])  # leave nothing on record
        self.assertEqual(rc, 0)
        # the legitimate client was never disturbed
        self.assertTrue(legit.alive())
        p = self.login(None)
        self.assertEqual(p.publish("legit/" + self.tag, "ok", 1), 0)
        self.assertEqual(legit.next_publish()["payload"], b"ok")

    def test_backoff_per_user_across_addresses(self):
        # a distributed guess (another source address) for the same user
        # is held back too: 127.0.0.2 and 127.0.0.3 are other loopback
        # addresses of this host
        _, rc = self.timed("admin", "wrong-a1")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        t, rc = self.timed("admin", "wrong-a2", src="127.0.0.2")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        self.assertGreaterEqual(t, self.INITIAL - self.SLACK,
                                "same user from another address not held")
        t, rc = self.timed("admin", PW["admin"], src="127.0.0.3")
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(t, 2 * self.INITIAL - self.SLACK)
        self.assertIn("from 127.0.0.2:", self.new_log())
        # the success reset the user: the next failure is number 1 again
        _, rc = self.timed("admin", "wrong-a3")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        self.assert_logged('user "admin" (failure 1 in a row for it)', 2)
        _, rc = self.timed("admin", PW["admin"])
        self.assertEqual(rc, 0)

    def test_parallel_attempts_gain_nothing(self):
        # after a failure, attempts sent in parallel are answered one per
        # back-off slot, not all at once
        _, rc = self.timed("bob", "wrong-p0")
        self.assertEqual(rc, V3_BAD_CREDENTIALS)
        socks = [self.sock() for _ in range(3)]
        t0 = time.monotonic()
        for i, s in enumerate(socks):
            send_quietly(s, connect_packet(self.uid(), user="bob",
                                           password="wrong-p%d" % (i + 1)))
        times = []
        for s in socks:
            data = connack_of(s, timeout=20.0)
            self.assertTrue(data)
            self.assertEqual(parse_connack(data)[1], V3_BAD_CREDENTIALS)
            times.append(time.monotonic() - t0)
        # 300 ms, then 600 and 1200 more: the last one >= 2.1 s
        self.assertGreaterEqual(max(times),
                                7 * self.INITIAL - 3 * self.SLACK, times)
        # reset for the other case (order of cases is not guaranteed)
        t, rc = self.timed("bob", PW["bob"])
        self.assertEqual(rc, 0)


class DefaultBackoffTests(SecCase):
    """The default auth_backoff_initial is 1 s (lower bound only)."""
    backoff = None
    extra_config = "sys_interval 0\n"
    guard_user = None

    def test_default_backoff(self):
        self.assert_refused(self.attempt("bob", "wrong"), V3_BAD_CREDENTIALS)
        s = self.sock()
        t0 = time.monotonic()
        send_quietly(s, connect_packet(self.uid(), user="bob",
                                       password=PW["bob"]))
        data = connack_of(s, timeout=15.0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.95)
        self.assertEqual(parse_connack(data)[1], 0)


# ---- T-04..T-11: authorisation ----------------------------------------------

ACL = """\
# anonymous clients
topic readwrite public/#

user admin
topic readwrite #
topic read $SYS/#

user low
topic readwrite allowed/#
topic readwrite wide/#
topic deny wide/secret/#
topic read ro/#
topic read sensors/+/temp
topic write wo/#

user bob
topic readwrite bob/#
topic readwrite allowed/#

user alice
clientid alice-*
topic readwrite alice/#

user x/#
topic readwrite allowed/#

pattern readwrite devices/%u/#
pattern readwrite clients/%c/#
"""


# users whose names would widen a %u pattern (T-09)
WEIRD = {"x/#": "Xh4sh#Weird!99", "a+b": "Ap1us#Weird!77"}


class AclTests(SecCase):
    acl = ACL
    extra_config = "sys_interval 1\n"
    users = dict(PW, **WEIRD)

    @classmethod
    def extra_files(cls):
        """PW as "$7$" lines, the WEIRD users added by mosquitto_passwd
        (which accepts such names) when it is installed."""
        if not have("mosquitto_passwd"):
            return {"passwd": password_file_text(cls.users)}
        with tempfile.TemporaryDirectory(prefix="moat-sec-") as d:
            path = os.path.join(d, "passwd")
            write_private(path, password_file_text(PW))
            for user, pw in WEIRD.items():
                r = subprocess.run(["mosquitto_passwd", "-b", path, user, pw],
                                   capture_output=True, timeout=CLI_TIMEOUT)
                assert r.returncode == 0, r.stderr
            with open(path) as f:
                return {"passwd": f.read()}

    # T-04 wildcard harvesting
    def test_low_priv_wildcards_refused(self):
        for v5, denied in ((False, 0x80), (True, 0x87)):
            with self.subTest(v5=v5):
                c = self.login("low", v5=v5)
                for f in ("#", "+/#", "+/+", "$SYS/#", "$SYS/broker/version",
                          "$SYS/+", "+/broker/#", "wide/secret/#",
                          "wide/secret/x", "bob/#", "wo/#", "public/#",
                          "devices/#", "clients/#"):
                    self.assertEqual(c.subscribe([f]), [denied], f)
                # several in one SUBSCRIBE: each gets its own code
                self.assertEqual(c.subscribe(["#", "allowed/#", "ro/+",
                                              "wo/#", "wide/#"], 1),
                                 [denied, 1, 1, denied, 1])
                self.assertTrue(c.alive())
        self.assert_logged("security: acl denial")

    def test_harvest_gets_nothing(self):
        # low's granted subscriptions see only low's topics, whatever is
        # published elsewhere
        c = self.login("low")
        self.assertEqual(c.subscribe(["allowed/#", "wide/#", "ro/#"]),
                         [0, 0, 0])
        adm = self.login("admin")
        for t in ("bob/x", "alice/x", "public/x", "wo/x", "wide/secret/a",
                  "wide/secret", "devices/bob/x", "allowedx/y"):
            adm.publish(t, "leak-" + t, 1)
        adm.publish("allowed/end", "end-marker", 1)
        seen = c.until("end-marker")
        self.assertEqual([p["topic"] for p in seen], [])

    def test_security_events_capped_per_connection(self):
        # a client hammering denied topics fills the log with at most 10
        # lines, then one saying the rest are only counted
        c = self.login("low", self.uid("noisy"))
        for i in range(30):
            self.assertEqual(c.subscribe(["bob/%d" % i]), [0x80])
        self.assertTrue(c.alive())
        self.assert_logged("are counted, not logged")
        log = self.new_log()
        mine = [ln for ln in log.splitlines()
                if "security: " in ln and "noisy" in ln]
        self.assertEqual(len(mine), 10, "\n".join(mine))
        self.assertEqual(log.count("are counted, not logged"), 1)

    @unittest.skipIf(mqtt is None, "python3-paho-mqtt is not installed")
    def test_paho_v5_subscribe_refused(self):
        c = mqtt.Client(client_id=self.uid("paho"), protocol=mqtt.MQTTv5)
        c.username_pw_set("low", PW["low"])
        subacks, conn = {}, []
        c.on_connect = lambda cl, u, f, rc, p=None: conn.append(rc.value)
        c.on_subscribe = lambda cl, u, mid, rcs, p=None: subacks.__setitem__(
            mid, [r.value for r in rcs])
        c.connect(HOST, self.port, 30)
        c.loop_start()
        try:
            self.assertTrue(wait_for(lambda: conn, TIMEOUT))
            self.assertEqual(conn, [0])
            _, mid = c.subscribe([("#", 0), ("allowed/+", 1)])
            self.assertTrue(wait_for(lambda: mid in subacks, TIMEOUT))
            self.assertEqual(subacks[mid], [0x87, 1])
        finally:
            c.disconnect()
            c.loop_stop()

    @unittest.skipUnless(have("mosquitto_sub"), "no mosquitto_sub")
    def test_mosquitto_sub_hash_refused(self):
        r = subprocess.run(
            ["mosquitto_sub", "-h", HOST, "-p", str(self.port), "-t", "#",
             "-u", "low", "-P", PW["low"], "-W", "3", "-i", self.uid("ms")],
            capture_output=True, timeout=CLI_TIMEOUT)
        self.assertEqual(r.stdout, b"")
        # mosquitto_sub 2.0 reports it (and exits 0)
        self.assertIn(b"All subscription requests were denied", r.stderr)

    def test_forbidden_publish(self):
        # T-04/T-07: publishing where low may not write: v5 PUBACK and
        # PUBREC 0x87, v3 acknowledged; nobody receives it
        w = self.login("admin", cid_on(self.uid("w"), 0))
        self.assertEqual(w.subscribe(["#"]), [0])
        for v5 in (False, True):
            with self.subTest(v5=v5):
                c = self.login("low", cid_on(self.uid("p"), 1), v5=v5)
                want = V5_NOT_AUTHORIZED if v5 else 0
                for t in ("bob/x", "ro/x", "public/x", "wide/secret/x"):
                    self.assertEqual(c.publish(t, "forged-1", 1), want, t)
                    self.assertEqual(c.publish(t, "forged-2", 2), want, t)
                    c.publish(t, "forged-0", 0)
                    c.publish(t, "forged-r", 1, retain=True)
                self.assertEqual(c.publish("wo/x", "written", 1), 0)
                self.assertEqual(c.publish("allowed/m", "mark-%d" % v5, 1), 0)
                seen = w.until("mark-%d" % v5)
                self.assertEqual([p["payload"] for p in seen], [b"written"])
                self.assertTrue(c.alive())
        # nothing was retained either
        late = self.login("admin")
        self.assertEqual(late.subscribe(["bob/#", "ro/#", "public/#",
                                         "wide/#"]), [0, 0, 0, 0])
        self.assertEqual(late.sync(), [])
        self.assert_logged("security: acl denial")
        self.assertIn("publish to bob/x", self.new_log())

    # T-10 shared subscriptions
    def test_shared_subscription_filter_checked(self):
        for v5, denied in ((False, 0x80), (True, 0x87)):
            with self.subTest(v5=v5):
                c = self.login("low", v5=v5)
                for f in ("$share/g/forbidden/#", "$share/g/#",
                          "$share/g/+/#", "$share/g/bob/x",
                          "$share/g/$SYS/#", "$share/allowed/#"):
                    self.assertEqual(c.subscribe([f]), [denied], f)
                self.assertEqual(c.subscribe(["$share/g%d/allowed/#" % v5],
                                             1), [1])
                adm = self.login("admin")
                adm.publish("bob/shared", "forbidden", 1)
                adm.publish("allowed/shared", "fine-%d" % v5, 1)
                self.assertEqual(c.next_publish()["payload"],
                                 b"fine-%d" % v5)
        # a shared subscription is checked at delivery like any other:
        # the deny rule inside low's wide/# grant still applies
        c = self.login("low", cid_on(self.uid("sh"), 0))
        self.assertEqual(c.subscribe(["$share/g/wide/#"], 1), [1])
        adm = self.login("admin", cid_on(self.uid("p"), 1))
        adm.publish("wide/secret/x", "shared-secret", 1)
        adm.publish("wide/open/x", "shared-open", 1)
        self.assertEqual(c.until("shared-open"), [])

    def test_single_level_wildcard_grant(self):
        # "topic read sensors/+/temp" covers exactly what it says
        c = self.login("low")
        self.assertEqual(c.subscribe(["sensors/+/temp", "sensors/a/temp",
                                      "sensors/#", "sensors/+/+",
                                      "sensors/a/+", "+/a/temp"]),
                         [0, 0, 0x80, 0x80, 0x80, 0x80])
        self.assertEqual(c.publish("sensors/a/temp", "ro", 1), 0)
        adm = self.login("admin")
        adm.publish("sensors/a/humidity", "other", 1)
        adm.publish("sensors/b/temp", "temp-b", 1)
        self.assertEqual([(p["topic"], p["payload"])
                          for p in c.until("temp-b")], [])

    def test_topic_alias_cannot_smuggle(self):
        # MQTT 5 topic aliases: a PUBLISH that only names an alias is
        # checked against the topic the alias stands for
        w = self.login("admin")
        self.assertEqual(w.subscribe(["#"]), [0])
        c = self.login("low", v5=True)

        def publish(topic, alias, payload, pid):
            body = mqtt_str(topic.encode()) + u16(pid) + \
                bytes([3, 0x23]) + u16(alias) + payload
            c.send(packet(0x32, body))
            first, body = c.read()
            self.assertEqual((first, body[:2]), (0x40, u16(pid)))
            return body[2] if len(body) > 2 else 0
        self.assertEqual(publish("bob/x", 1, b"alias-forged-1", 1),
                         V5_NOT_AUTHORIZED)
        self.assertEqual(publish("", 1, b"alias-forged-2", 2),
                         V5_NOT_AUTHORIZED)
        self.assertEqual(publish("allowed/alias", 2, b"alias-ok-1", 3), 0)
        self.assertEqual(publish("", 2, b"alias-ok-2", 4), 0)
        # redefining an allowed alias to a forbidden topic: refused; the
        # alias then means bob/y (refused) or still allowed/alias
        self.assertEqual(publish("bob/y", 2, b"alias-forged-3", 5),
                         V5_NOT_AUTHORIZED)
        self.assertIn(publish("", 2, b"alias-4", 6), (V5_NOT_AUTHORIZED, 0))
        adm = self.login("admin")
        adm.publish("allowed/m", "alias-mark", 1)
        seen = [(p["topic"], p["payload"]) for p in w.until("alias-mark")]
        self.assertEqual([t for t, _ in seen if not t.startswith("allowed/")],
                         [], seen)
        self.assertEqual(seen[:2], [("allowed/alias", b"alias-ok-1"),
                                    ("allowed/alias", b"alias-ok-2")])
        self.assertTrue(c.alive())

    # T-04/T-11: the deny rule inside a granted wildcard, at delivery
    def test_deny_inside_granted_wildcard(self):
        c = self.login("low", cid_on(self.uid("s"), 0))
        self.assertEqual(c.subscribe(["wide/#"], 1), [1])
        adm = self.login("admin", cid_on(self.uid("p"), 1))
        for t in ("wide/secret/x", "wide/secret", "wide/secret/a/b"):
            adm.publish(t, "secret:" + t, 1)
        adm.publish("wide/open/x", "open-1", 1)
        adm.publish("wide/secret/x", "secret-again", 0)
        adm.publish("wide/open/y", "open-2", 1)
        seen = c.until("open-2")
        self.assertEqual([(p["topic"], p["payload"]) for p in seen],
                         [("wide/open/x", b"open-1")])
        self.assertTrue(c.alive())

    # T-06 retained messages
    def test_retained_not_readable_not_delivered(self):
        adm = self.login("admin")
        topics = {"wide/secret/r": b"retained-secret",
                  "wide/open/r": b"retained-open",
                  "bob/r": b"retained-bob"}
        for t, p in topics.items():
            self.assertEqual(adm.publish(t, p, 1, retain=True), 0)
        try:
            c = self.login("low")
            self.assertEqual(c.subscribe(["wide/#", "wide/secret/r"]),
                             [0, 0x80])
            got = c.sync()
            self.assertEqual([(p["topic"], p["payload"], p["retain"])
                              for p in got],
                             [("wide/open/r", b"retained-open", True)])
            # the admin sees all three, so they were retained
            a2 = self.login("admin")
            self.assertEqual(a2.subscribe(["wide/#", "bob/#"]), [0, 0])
            self.assertEqual(sorted(p["topic"] for p in a2.sync()),
                             sorted(topics))
        finally:
            for t in topics:
                adm.publish(t, b"", 1, retain=True)

    # T-07 wills
    def test_will_to_forbidden_topic_refused(self):
        w = self.login("admin")
        self.assertEqual(w.subscribe(["#"]), [0])
        for v5, code in ((False, V3_NOT_AUTHORIZED),
                         (True, V5_NOT_AUTHORIZED)):
            for t in ("bob/will", "ro/will", "wide/secret/will",
                      "$SYS/broker/version"):
                with self.subTest(v5=v5, topic=t):
                    self.assert_refused(self.attempt(
                        "low", PW["low"], v5=v5,
                        will=(t, b"forged-will", 1, False)), code)
        self.assert_logged("will topic")
        # a will on an allowed topic is published on an abnormal close
        c = self.login("low", will=("allowed/will/" + self.tag,
                                    b"real-will", 1, False))
        c.s.close()
        got = w.next_publish()
        self.assertEqual((got["topic"], got["payload"]),
                         ("allowed/will/" + self.tag, b"real-will"))
        adm = self.login("admin")
        adm.publish("allowed/m", "mark", 1)
        self.assertEqual(w.until("mark"), [])

    # T-08 session takeover and deletion
    def test_session_takeover_by_other_user_refused(self):
        # the session on either worker (the attacker's connection may
        # start on the other one and be handed over)
        for worker in (0, 1):
            with self.subTest(worker=worker):
                self.takeover_case(cid_on(self.uid("sess"), worker))

    def takeover_case(self, cid):
        owner = self.login("low", cid, clean=False)
        self.assertEqual(owner.subscribe(["allowed/" + self.tag], 1), [1])
        for who, v5, code in (("bob", False, V3_NOT_AUTHORIZED),
                              ("bob", True, V5_NOT_AUTHORIZED),
                              ("admin", False, V3_NOT_AUTHORIZED),
                              (None, False, V3_NOT_AUTHORIZED),
                              (None, True, V5_NOT_AUTHORIZED)):
            for clean in (True, False):
                with self.subTest(who=who, v5=v5, clean=clean):
                    self.assert_refused(self.attempt(
                        who, PW.get(who), cid, v5=v5, clean=clean), code)
        self.assert_logged("another user")
        # the owner's own user name with a wrong password changes nothing
        self.assert_refused(self.attempt("low", "wrong", cid, clean=True),
                            V3_BAD_CREDENTIALS)
        # the owner is still connected and served
        self.assertTrue(owner.alive())
        adm = self.login("admin")
        adm.publish("allowed/" + self.tag, "still-mine", 1)
        self.assertEqual(owner.next_publish()["payload"], b"still-mine")
        self.assertTrue(owner.alive())  # its PUBACK has been processed
        # the same user may take its session over
        again = self.login("low", cid, clean=False, present=True)
        closed, _ = owner.closed()
        self.assertTrue(closed, "old connection not closed on takeover")
        adm.publish("allowed/" + self.tag, "after-takeover", 1)
        self.assertEqual(again.next_publish()["payload"], b"after-takeover")
        again.disconnect()
        self.login("low", cid).disconnect()   # discard the session

    def test_session_deletion_by_other_user_refused(self):
        cid = self.uid("keep")
        c = self.login("low", cid, clean=False)
        self.assertEqual(c.subscribe(["allowed/" + self.tag], 1), [1])
        c.disconnect()
        adm = self.login("admin")
        self.assertEqual(adm.publish("allowed/" + self.tag, "queued-1", 1), 0)
        # clean session / clean start with someone else's id: refused,
        # and the queued message survives
        self.assert_refused(self.attempt("bob", PW["bob"], cid, clean=True),
                            V3_NOT_AUTHORIZED)
        self.assert_refused(self.attempt("bob", PW["bob"], cid, v5=True,
                                         clean=True), V5_NOT_AUTHORIZED)
        self.assert_refused(self.attempt(None, None, cid, clean=True),
                            V3_NOT_AUTHORIZED)
        # a failed login with the owner's name does not delete it either
        self.assert_refused(self.attempt("low", "wrong", cid, clean=True),
                            V3_BAD_CREDENTIALS)
        self.assertEqual(adm.publish("allowed/" + self.tag, "queued-2", 1), 0)
        c = self.login("low", cid, clean=False, present=True)
        got = [c.next_publish()["payload"] for _ in range(2)]
        self.assertEqual(got, [b"queued-1", b"queued-2"])
        c.disconnect()
        self.login("low", cid, clean=True).disconnect()

    # T-08 client id bound to a user
    def test_client_id_binding(self):
        self.assertTrue(self.login("alice", "alice-1").alive())
        self.assertTrue(self.login("alice", "alice-", v5=True).alive())
        for user, cid in (("alice", "bob-1"), ("alice", "xalice-1"),
                          ("alice", "Alice-1"), ("bob", "alice-1"),
                          ("admin", "alice-2"), (None, "alice-3")):
            for v5, code in ((False, V3_NOT_AUTHORIZED),
                             (True, V5_NOT_AUTHORIZED)):
                with self.subTest(user=user, cid=cid, v5=v5):
                    self.assert_refused(self.attempt(user, PW.get(user),
                                                     cid, v5=v5), code)
        self.assert_logged("client id not bound to this user")
        # alice with her id works and is confined to her topics
        a = self.login("alice", "alice-9")
        self.assertEqual(a.subscribe(["alice/#", "bob/#"]), [0, 0x80])

    # T-09 special characters in identities used by ACL patterns
    def test_special_characters_in_user_name(self):
        for v5, code in ((False, V3_NOT_AUTHORIZED),
                         (True, V5_NOT_AUTHORIZED)):
            for user in ("x/#", "a+b"):
                with self.subTest(user=user, v5=v5):
                    self.assert_refused(self.attempt(
                        user, self.users[user], v5=v5), code)
        self.assert_logged("user name contains +, # or /")
        # an anonymous client has no %u: the pattern grants it nothing
        # (not "devices//#" either)
        anon = self.login(None)
        self.assertEqual(anon.subscribe(["devices/+/#", "devices//#",
                                         "devices/#", "clients/+/#"]),
                         [0x80] * 4)
        # the pattern works for an ordinary user, and only for its own
        c = self.login("low")
        self.assertEqual(c.subscribe(["devices/low/#", "devices/+/#",
                                      "devices/bob/#", "devices/#"]),
                         [0, 0x80, 0x80, 0x80])
        self.assertEqual(c.publish("devices/low/t", "own", 1), 0)
        self.assertEqual(c.next_publish()["payload"], b"own")

    def test_special_characters_in_client_id(self):
        for v5, code in ((False, V3_ID_REJECTED), (True, V5_ID_INVALID)):
            for cid in ("a+b", "a/b", "a#", "+", "#", "/"):
                with self.subTest(cid=cid, v5=v5):
                    self.assert_refused(self.attempt("low", PW["low"], cid,
                                                     v5=v5), code)
        self.assert_logged("client id contains +, # or /")
        cid = self.uid("dev")
        c = self.login("low", cid)
        self.assertEqual(c.subscribe(["clients/%s/#" % cid, "clients/+/#"]),
                         [0, 0x80])

    # T-05 $SYS
    def test_sys_admin_only(self):
        for user in (None, "low", "bob"):
            for v5, denied in ((False, 0x80), (True, 0x87)):
                with self.subTest(user=user, v5=v5):
                    c = self.login(user, v5=v5)
                    self.assertEqual(c.subscribe(["$SYS/#"]), [denied])
                    self.assertEqual(c.subscribe(["$SYS/broker/version"]),
                                     [denied])
        adm = self.login("admin")
        self.assertEqual(adm.subscribe(["$SYS/broker/version"]), [0])
        p = adm.next_publish()
        self.assertEqual(p["topic"], "$SYS/broker/version")
        self.assertTrue(p["payload"].startswith(b"moat "), p["payload"])
        # "#" (granted to admin) still never matches $SYS topics
        a2 = self.login("admin")
        self.assertEqual(a2.subscribe(["#"]), [0])
        time.sleep(1.5)  # more than one sys_interval
        self.assertEqual([m["topic"] for m in a2.sync()
                          if m["topic"].startswith("$")], [])


class NoAclSysTests(SecCase):
    """No acl_file: every topic for everyone, except $SYS for nobody."""
    extra_config = "sys_interval 1\n"

    def test_sys_refused_without_acl(self):
        for user in (None, "admin"):
            for v5, denied in ((False, 0x80), (True, 0x87)):
                with self.subTest(user=user, v5=v5):
                    c = self.login(user, v5=v5)
                    self.assertEqual(c.subscribe(["$SYS/#",
                                                  "$SYS/broker/version",
                                                  "#", "x/" + self.tag]),
                                     [denied, denied, 0, 0])
                    self.assertEqual(c.publish("x/" + self.tag, "m", 1),
                                     0)
                    got = c.until("m")
                    self.assertEqual([p["topic"] for p in got
                                      if p["topic"].startswith("$")], [])


class EmptyAclTests(SecCase):
    """T-12: an empty ACL denies everything (it is not "no ACL")."""
    acl = "# nothing granted\n"
    guard = False
    extra_config = "sys_interval 0\n"

    def test_empty_acl_denies_all(self):
        for user in (None, "admin"):
            for v5 in (False, True):
                with self.subTest(user=user, v5=v5):
                    c = self.login(user, v5=v5)
                    self.assertEqual(c.subscribe(["#", "a/b"]),
                                     [0x87 if v5 else 0x80] * 2)
                    self.assertEqual(c.publish("a/b", "x", 1),
                                     V5_NOT_AUTHORIZED if v5 else 0)
                    self.assertTrue(c.alive())


# ---- T-11, T-12: reload -----------------------------------------------------

RELOAD_ACL = """\
user admin
topic readwrite #

user low
topic readwrite allowed/#
topic readwrite queue/#
topic readwrite live/#
topic readwrite status/#
"""

# low keeps allowed/# and may still read status/#, but no longer write it
REVOKED_ACL = """\
user admin
topic readwrite #

user low
topic readwrite allowed/#
topic read status/#
"""


class ReloadTests(SecCase):
    acl = RELOAD_ACL
    extra_config = "sys_interval 0\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(cls.broker.conf) as f:
            cls.conf_text = f.read()

    def restore(self):
        self.broker.write("moatd.conf", self.conf_text, 0o644)
        self.broker.write("passwd", password_file_text(PW))
        self.broker.write("acl", RELOAD_ACL)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])

    def test_limits_and_anonymous_reload(self):
        # allow_anonymous and max_publish_rate change on SIGHUP; clients
        # already connected stay
        self.addCleanup(self.restore)
        anon = self.login(None)
        self.broker.write("moatd.conf", self.conf_text +
                          "allow_anonymous false\nmax_publish_rate 5\n",
                          0o644)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        self.assertTrue(anon.alive())
        self.assert_refused(self.attempt(), V3_NOT_AUTHORIZED)
        c = self.login("low", v5=True)
        c.send(b"".join(packet(0x30, mqtt_str(b"allowed/f") + b"\x00" +
                               b"%d" % i) for i in range(50)))
        closed, data = c.closed()
        self.assertTrue(closed, "flooder not disconnected after reload")
        self.assertEqual(data[:1] + data[2:3], b"\xe0\x96", data[:40])

    def test_new_user_after_reload(self):
        self.addCleanup(self.restore)
        old = self.login("low", cid_on(self.uid("old"), 0))
        self.assertEqual(old.subscribe(["allowed/" + self.tag], 1), [1])
        carol = "Car0l#New!User42"
        self.assert_refused(self.attempt("carol", carol), V3_BAD_CREDENTIALS)
        users = dict(PW, carol=carol)
        del users["bob"]
        self.broker.write("passwd", password_file_text(users))
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        c = self.login("carol", password=carol)
        self.assertTrue(c.alive())
        # a removed user cannot log in any more
        self.assert_refused(self.attempt("bob", PW["bob"]),
                            V3_BAD_CREDENTIALS)
        # the existing connection was not dropped
        adm = self.login("admin", cid_on(self.uid("adm"), 1))
        adm.publish("allowed/" + self.tag, "after-reload", 1)
        self.assertEqual(old.next_publish()["payload"], b"after-reload")

    def test_removed_user_disconnected_on_reload(self):
        # a user deleted from the password file loses its connections at
        # the reload (MQTT 5: DISCONNECT 0x87); other users stay
        self.addCleanup(self.restore)
        bob = self.login("bob", v5=True)
        low = self.login("low")
        users = dict(PW)
        del users["bob"]
        self.broker.write("passwd", password_file_text(users))
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        closed, data = bob.closed()
        self.assertTrue(closed, "removed user still connected")
        self.assertEqual(data[:1] + data[2:3], b"\xe0\x87", data[:40])
        self.assertTrue(low.alive())
        self.assert_logged("security: auth revoked")

    def test_broken_acl_keeps_old_rules(self):
        self.addCleanup(self.restore)
        low = self.login("low")
        for broken in (RELOAD_ACL + "topic readwrite\n",
                       RELOAD_ACL + "frobnicate everything\n",
                       RELOAD_ACL + "topic readwrite a/#/b\n",
                       "topic grant #\n" + RELOAD_ACL):
            with self.subTest(broken=broken.splitlines()[-1]):
                mark = self.broker.read_log().count("reload failed")
                self.broker.write("acl", broken)
                self.assertFalse(self.broker.reload(),
                                 "a broken ACL was accepted")
                log = self.broker.read_log()
                self.assertEqual(log.count("reload failed"), mark + 1)
                self.assertIn("keeping the current configuration", log)
                # the old rules still apply, for old and new connections
                for c in (low, self.login("low")):
                    self.assertEqual(c.subscribe(["#", "allowed/#", "x/y"]),
                                     [0x80, 0, 0x80])
        self.assertTrue(self.login("admin").alive())

    def test_world_readable_password_file_on_reload(self):
        self.addCleanup(self.restore)
        users = dict(PW, carol="Car0l#New!User42")
        self.broker.write("passwd", password_file_text(users), mode=0o644)
        self.assertFalse(self.broker.reload())
        self.assertIn(self.broker.path("passwd"), self.new_log())
        self.assert_refused(self.attempt("carol", users["carol"]),
                            V3_BAD_CREDENTIALS)
        self.assertTrue(self.login("low").alive())

    def test_revocation_rechecks_queued_and_live(self):
        # T-11: grants revoked by a reload stop deliveries that were
        # queued for an offline session, and to live subscriptions
        self.addCleanup(self.restore)
        cid = cid_on(self.uid("q"), 0)
        c = self.login("low", cid, clean=False)
        self.assertEqual(c.subscribe(["queue/#", "allowed/q"], 1), [1, 1])
        c.disconnect()
        live = self.login("low", cid_on(self.uid("live"), 0))
        self.assertEqual(live.subscribe(["live/#", "allowed/live"], 1),
                         [1, 1])
        adm = self.login("admin", cid_on(self.uid("adm"), 1))
        self.assertEqual(adm.publish("queue/a", "queued-before", 1), 0)
        self.assertEqual(adm.publish("allowed/q", "allowed-before", 1), 0)
        self.broker.write("acl", REVOKED_ACL)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        self.assertEqual(adm.publish("queue/b", "queued-after", 1), 0)
        self.assertEqual(adm.publish("allowed/q", "allowed-after", 1), 0)
        c = self.login("low", cid, clean=False, present=True)
        got = []
        for _ in range(10):
            p = c.next_publish()
            got.append(p["payload"])
            if p["payload"] == b"allowed-after":
                break
        self.assertEqual(got, [b"allowed-before", b"allowed-after"])
        self.assertEqual(c.sync(), [])
        # live subscription: revoked topics stop, others still arrive
        adm.publish("live/x", "live-revoked", 1)
        adm.publish("allowed/live", "live-marker", 1)
        self.assertEqual([p["payload"] for p in live.until("live-marker")],
                         [])
        # and the revoked filter cannot be subscribed again
        self.assertEqual(live.subscribe(["live/#"]), [0x80])
        c.disconnect()
        self.login("low", cid).disconnect()

    def test_unchanged_reload_warns_nothing(self):
        # a SIGHUP with nothing changed must not claim that restart-only
        # settings changed (operators learn to ignore such warnings)
        if "open files limit" not in self.broker.read_log():
            self.skipTest("max_connections was not lowered at start here")
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        self.assertNotIn("takes effect at the next restart", self.new_log())

    def test_will_rechecked_when_fired(self):
        # T-07 ("authorise the will topic at CONNECT and re-check at
        # publish time"), section 8 ("will ... checked at fire time"): a
        # will accepted while low could write status/# must not be
        # published once a reload took that right away.
        self.addCleanup(self.restore)
        w = self.login("admin", cid_on(self.uid("w"), 0))
        self.assertEqual(w.subscribe(["status/#", "allowed/#"]), [0, 0])
        cid = cid_on(self.uid("will"), 1)
        c = self.login("low", cid,
                       will=("status/low", b"stale-will", 1, False))
        self.broker.write("acl", REVOKED_ACL)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        self.assertTrue(c.alive())    # the worker has seen the new ACL
        c.s.close()                   # abnormal close: the will fires
        self.assertTrue(wait_for(lambda: any(
            cid in line and "disconnected" in line
            for line in self.new_log().splitlines()), TIMEOUT),
            self.new_log())
        adm = self.login("admin", cid_on(self.uid("adm"), 1))
        adm.publish("allowed/m", "will-mark", 1)
        self.assertEqual([(p["topic"], p["payload"])
                          for p in w.until("will-mark")], [],
                         "a will was published on a topic its client may "
                         "no longer write")

    def test_retained_rechecks_publisher_rights(self):
        # T-06 ("retained delivery re-checks *current* publisher rights",
        # Mosquitto's check_retain_source): what low retained on status/
        # while it could is not served once low lost the right to write
        # there.
        self.addCleanup(self.restore)
        adm = self.login("admin")
        self.addCleanup(lambda: self.login("admin").publish(
            "status/low", b"", 1, retain=True))
        c = self.login("low")
        self.assertEqual(c.publish("status/low", "low-retained", 1,
                                   retain=True), 0)
        self.assertEqual(adm.publish("status/adm", "adm-retained", 1,
                                     retain=True), 0)
        self.addCleanup(lambda: self.login("admin").publish(
            "status/adm", b"", 1, retain=True))
        sub = self.login("admin")
        self.assertEqual(sub.subscribe(["status/#"]), [0])
        self.assertEqual(sorted(p["payload"] for p in sub.sync()),
                         [b"adm-retained", b"low-retained"])
        self.broker.write("acl", REVOKED_ACL)
        self.assertTrue(self.broker.reload(), self.new_log()[-2000:])
        for user in ("admin", "low"):
            sub = self.login(user)
            self.assertEqual(sub.subscribe(["status/#"]), [0])
            self.assertEqual([p["payload"] for p in sub.sync()],
                             [b"adm-retained"],
                             "a retained message was served after its "
                             "publisher lost the right to write it")


# ---- T-12: refusing to start ------------------------------------------------

class StartRefusalTests(unittest.TestCase):
    """Unsafe files or configurations stop moatd at start (exit 1, the
    file named), before it listens."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-sec-")
        self.dir = self.tmp.name
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, config, test_only=False):
        conf = self.path("moatd.conf")
        with open(conf, "w") as f:
            f.write(config.replace("@DIR@", self.dir))
        args = [MOATD, "-c", conf] + (["--test-config"] if test_only else [])
        try:
            r = subprocess.run(args, capture_output=True, timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("moatd started with %r" % config)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def assert_refuses(self, config, *needles, test_only=False):
        rc, out = self.start("listener 0 127.0.0.1\n" + config, test_only)
        self.assertEqual(rc, 1, out)
        self.assertNotIn("running with", out)
        for n in needles:
            self.assertIn(n, out)
        return out

    def test_world_readable_password_file(self):
        pw = self.path("passwd")
        write_private(pw, password_file_text(PW), 0o644)
        self.assert_refuses("password_file %s\n" % pw, pw)
        write_private(pw, password_file_text(PW), 0o604)
        self.assert_refuses("password_file %s\n" % pw, pw)
        # writable by its group: any member could add a user
        for mode in (0o660, 0o620):
            write_private(pw, password_file_text(PW), mode)
            self.assert_refuses("password_file %s\n" % pw, pw,
                                "writable by its group")
        # group-readable but not world-readable is the documented limit:
        # 0600 works
        write_private(pw, password_file_text(PW), 0o600)
        rc, out = self.start("listener 0 127.0.0.1\npassword_file %s\n"
                             % pw, test_only=True)
        self.assertEqual(rc, 0, out)

    def test_symlinked_password_file(self):
        real = self.path("passwd.real")
        write_private(real, password_file_text(PW))
        link = self.path("passwd")
        os.symlink(real, link)
        self.assert_refuses("password_file %s\n" % link, link)

    def test_world_readable_or_symlinked_acl(self):
        acl = self.path("acl")
        write_private(acl, ACL, 0o644)
        self.assert_refuses("acl_file %s\n" % acl, acl)
        os.unlink(acl)
        write_private(acl + ".real", ACL)
        os.symlink(acl + ".real", acl)
        self.assert_refuses("acl_file %s\n" % acl, acl)

    def test_malformed_files(self):
        acl = self.path("acl")
        write_private(acl, ACL + "topic sometimes x/y\n")
        self.assert_refuses("acl_file %s\n" % acl, acl)
        pw = self.path("passwd")
        # CVE-2018-12551: a malformed line must not become an empty user
        write_private(pw, password_file_text(PW) + "broken-line-no-hash\n")
        self.assert_refuses("password_file %s\n" % pw, pw)
        write_private(pw, password_file_text(PW) + ":$7$101$AAAA$BBBB\n")
        self.assert_refuses("password_file %s\n" % pw, pw)

    def test_missing_files(self):
        self.assert_refuses("password_file %s\n" % self.path("nope"),
                            self.path("nope"))
        self.assert_refuses("acl_file %s\n" % self.path("nope"),
                            self.path("nope"))

    def test_insecure_network_listener(self):
        # T-01/T-02: checked with --test-config only, so that nothing is
        # ever bound to a non-loopback address, even if the check broke
        pw = self.path("passwd")
        write_private(pw, password_file_text(PW))
        for cfg in ("allow_anonymous true\n",
                    "allow_anonymous false\npassword_file %s\n" % pw):
            with self.subTest(cfg=cfg):
                out = self.assert_refuses("listener 0 0.0.0.0\n" + cfg,
                                          test_only=True)
                self.assertIn("allow_insecure_listener", out)
                self.assertIn("without TLS", out)
        # the operator may accept the risk explicitly
        rc, out = self.start("listener 0 0.0.0.0\nallow_anonymous true\n"
                             "allow_insecure_listener true\n",
                             test_only=True)
        self.assertEqual(rc, 0, out)


# ---- T-13, T-17: limits -----------------------------------------------------

class PublishRateTests(SecCase):
    extra_config = "max_publish_rate 5\nsys_interval 0\n"
    users = None
    guard_user = None

    def flood(self, v5):
        c = self.login(None, cid_on(self.uid("flood"), 1), v5=v5)
        data = b""
        for i in range(50):
            body = mqtt_str(b"flood/" + self.tag.encode()) + \
                (b"\x00" if v5 else b"") + b"f%d" % i
            data += packet(0x30, body)
        send_quietly(c.s, data)
        return c.closed()

    def test_flood_disconnected_slow_client_fine(self):
        w = self.login(None, cid_on(self.uid("w"), 0))
        self.assertEqual(w.subscribe(["slow/" + self.tag], 1), [1])
        slow = self.login(None, cid_on(self.uid("slow"), 1), v5=True)
        for i in range(3):
            self.assertEqual(slow.publish("slow/" + self.tag, "s%d" % i, 1), 0)
        closed, data = self.flood(v5=True)
        self.assertTrue(closed, "a v5 flooder was not disconnected")
        # QoS 0 gets no acks: all it is sent is a DISCONNECT 0x96
        self.assertEqual(data[:1], b"\xe0", data[:40])
        self.assertEqual(data[2], V5_RATE_TOO_HIGH, data[:40])
        self.assertEqual(len(data), 2 + data[1], data[:40])
        closed, data = self.flood(v5=False)
        self.assertTrue(closed, "a v3 flooder was not disconnected")
        self.assertEqual(data, b"", "3.1.1 has no DISCONNECT from a server")
        # the slow client keeps publishing at 4/s
        for i in range(3, 9):
            self.assertEqual(slow.publish("slow/" + self.tag, "s%d" % i, 1), 0)
            time.sleep(0.25)
        got = [w.next_publish()["payload"] for _ in range(9)]
        self.assertEqual(got, [b"s%d" % i for i in range(9)])
        self.assert_logged("security: limit", 2)
        self.assertIn("max_publish_rate", self.new_log())
        n = self.new_log().count("security: ")
        self.assertLessEqual(n, 6, "limit events spammed:\n" + self.new_log())


class ConnectionLimitTests(SecCase):
    extra_config = ("limit_loopback true\nmax_connections_per_ip 3\n"
                    "max_accept_rate_per_ip 0\nsys_interval 0\n")
    users = None
    guard = False

    def test_connections_per_ip(self):
        conns = [self.login(None) for _ in range(3)]
        for _ in range(3):
            c, data = self.attempt()
            self.assertEqual(data, b"", "4th connection got a CONNACK")
            self.assertTrue(c.closed()[0])
        self.assertTrue(all(c.alive() for c in conns))
        # the limit is per address: another loopback address gets in
        c, data = self.attempt(src="127.0.0.2")
        self.assertEqual(parse_connack(data)[1], 0)
        c.disconnect()
        conns[0].disconnect()

        def accepted():
            c, data = self.attempt()
            if data:
                self.assertEqual(parse_connack(data)[1], 0)
                conns[0] = c
                return True
            return False
        self.assertTrue(wait_for(accepted, TIMEOUT, 0.2),
                        "no new connection after closing one")
        self.assertTrue(all(c.alive() for c in conns))
        self.assert_logged("max_connections_per_ip")
        self.assertLessEqual(self.new_log().count("security: limit"), 4,
                             self.new_log())


class AcceptRateTests(SecCase):
    extra_config = ("limit_loopback true\nmax_accept_rate_per_ip 2\n"
                    "max_connections_per_ip 0\nsys_interval 0\n")
    users = None
    guard = False

    def test_accept_rate(self):
        results = []
        for _ in range(10):
            c, data = self.attempt()
            results.append(bool(data))
        self.assertIn(False, results, "no connection of a burst refused")
        self.assertIn(True, results, "the first ones must be accepted")
        self.assert_logged("max_accept_rate_per_ip")
        self.assertLessEqual(self.new_log().count("security: limit"), 4,
                             self.new_log())

        ok = []

        def accepted():
            c, data = self.attempt()
            ok.append(bool(data))
            return bool(data)
        self.assertTrue(wait_for(accepted, 5.0, 0.6),
                        "never accepted again after the burst")


class MemoryLimitTests(SecCase):
    extra_config = "memory_limit 1\nsys_interval 0\n"
    users = None
    guard = False

    def test_memory_limit_refuses_new_connections(self):
        for _ in range(3):
            c, data = self.attempt()
            self.assertEqual(data, b"")
            self.assertTrue(c.closed()[0])
        self.assert_logged("memory_limit reached")
        self.assertLessEqual(self.new_log().count("security: limit"), 2)


if __name__ == "__main__":
    unittest.main()
