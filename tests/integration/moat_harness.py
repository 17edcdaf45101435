"""Shared helpers for moat's integration tests.

Starts the real moatd on an ephemeral loopback port and stops it with
SIGTERM, checking that it exits cleanly (status 0, no sanitizer report).
Only loopback traffic; every wait is bounded.
"""
import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

MOATD = os.environ.get("MOATD_BIN", "moatd")
MOAT = os.environ.get("MOAT_BIN", "moat")
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class Broker:
    """A running moatd.  Use as a context manager."""
    preexec_fn = None  # run in the child before moatd (resource limits)
    log_start = 0      # where the current run's log begins

    def __init__(self, config="", workers=2, args=(), files=None, port=0,
                 preexec_fn=None):
        """files: {name: data or (data, mode)} written (mode 0600 unless
        given) into the broker's temporary directory before it starts;
        "@DIR@" in config stands for that directory."""
        self.dir = tempfile.TemporaryDirectory(prefix="moat-test-")
        self.conf = os.path.join(self.dir.name, "moatd.conf")
        self.log_path = os.path.join(self.dir.name, "moatd.log")
        for name, data in (files or {}).items():
            mode = 0o600
            if isinstance(data, tuple):
                data, mode = data
            write_private(self.path(name), data, mode)
        config = config.replace("@DIR@", self.dir.name)
        text = "listener %d 127.0.0.1\n" % port
        self.preexec_fn = preexec_fn
        self.log_start = 0
        if workers is not None and "workers" not in config:
            text += "workers %d\n" % workers
        text += stay_root(config) + config
        with open(self.conf, "w") as f:
            f.write(text)
        self.args = list(args)
        self.proc = None
        self.port = None
        self.ports = []       # every listener's port, in config order
        self.tls_ports = []   # the TLS listeners' ports
        self.ws_ports = []    # protocol websockets, plain (ws://)
        self.wss_ports = []   # protocol websockets with TLS (wss://)

    def path(self, name):
        """A path in the broker's temporary directory."""
        return os.path.join(self.dir.name, name)

    def write(self, name, data, mode=0o600):
        """Replace a file in the broker's directory (atomically: a new
        file renamed over the old one), e.g. before reload()."""
        tmp = self.path(name + ".tmp")
        write_private(tmp, data, mode)
        os.replace(tmp, self.path(name))

    def reload(self, timeout=START_TIMEOUT):
        """SIGHUP; waits for moatd's verdict.  True after "configuration
        reloaded", False after "reload failed"."""
        def count():
            log = self.read_log()
            return (log.count("configuration reloaded"),
                    log.count("reload failed"))
        before = count()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = count()
            if now[0] > before[0]:
                return True
            if now[1] > before[1]:
                return False
            if self.proc.poll() is not None:
                raise RuntimeError("moatd exited on SIGHUP:\n" +
                                   self.read_log()[-4000:])
            time.sleep(0.02)
        raise RuntimeError("no reload verdict within %ss:\n%s"
                           % (timeout, self.read_log()[-4000:]))

    def start(self):
        """Start moatd (again, after stop() or kill9(): the log is kept,
        start() looks only at what this run wrote)."""
        self.log = open(self.log_path, "a")
        self.log_start = self.log.tell()
        self.proc = subprocess.Popen(
            [MOATD, "-c", self.conf, "-v"] + self.args,
            stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            log = self.run_log()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log)
            if m and "running with" in log:
                self.port = int(m.group(1))
                found = re.findall(
                    r"listening on (?:127\.0\.0\.1|\[::1\]):(\d+)"
                    r"(?: \(([^)]*)\))?", log)
                self.ports = [int(p) for p, _ in found]
                self.tls_ports = [int(p) for p, t in found if t == "TLS"]
                self.ws_ports = [int(p) for p, t in found
                                 if t == "WebSocket"]
                self.wss_ports = [int(p) for p, t in found
                                  if t == "WebSocket, TLS"]
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("moatd exited early:\n" + self.read_log())
            time.sleep(0.02)
        raise RuntimeError("moatd did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def run_log(self):
        """The log of the current (or last) run only."""
        with open(self.log_path, errors="replace") as f:
            f.seek(self.log_start)
            return f.read()

    def kill9(self):
        """SIGKILL, as a crash would; returns once it is gone."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status.  Raises if moatd hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("moatd did not stop on SIGTERM")
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        log = self.read_log()
        self.dir.cleanup()
        if exc[0] is None:
            if rc != 0 or "ERROR: AddressSanitizer" in log or "ThreadSanitizer" in log or \
                    "runtime error:" in log or "LeakSanitizer" in log:
                raise AssertionError("moatd exit status %d; log:\n%s"
                                     % (rc, log[-6000:]))
        return False


class BrokerTest(unittest.TestCase):
    """A test case with one broker for the whole class."""
    broker_config = ""
    workers = 2
    broker_files = None   # see Broker(files=...)

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(cls.broker_config, cls.workers,
                            files=cls.broker_files).start()
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls):
        b = cls.broker
        rc = b.stop()
        log = b.read_log()
        b.dir.cleanup()
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("moatd exit status %d; log:\n%s"
                                 % (rc, log[-6000:]))

    def setUp(self):
        self.assertTrue(self.broker.alive(), "broker died earlier")

    def tearDown(self):
        self.assertTrue(self.broker.alive(),
                        "broker died:\n" + self.broker.read_log()[-4000:])


def stay_root(config):
    """The line "user root" when the suite runs as root and config names no
    user, else "".  The suite's files are 0600 root-owned in 0700
    directories, read again at reload: its brokers keep root unless a
    test says otherwise (test_runas.py covers the drop)."""
    if os.geteuid() == 0 and not re.search(r"^user\s", config, re.M):
        return "user root\n"
    return ""


def free_port():
    """A loopback port with (very probably) nobody listening: for a broker
    that must keep its port across restarts, or a connection refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def can_connect(port):
    """Does something accept TCP connections on 127.0.0.1:port?"""
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def raw_connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return len(s).to_bytes(2, "big") + s


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


CONNACK_OK = b"\x20\x02\x00\x00"
CONNACK_OK_PRESENT = b"\x20\x02\x01\x00"
CONNACK_BAD_PROTOCOL = b"\x20\x02\x00\x01"
CONNACK_ID_REJECTED = b"\x20\x02\x00\x02"
CONNACK_UNAVAILABLE = b"\x20\x02\x00\x03"
CONNACK_NOT_AUTHORIZED = b"\x20\x02\x00\x05"
PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"
DISCONNECT = b"\xe0\x00"


def u16(n):
    return n.to_bytes(2, "big")


def as_bytes(s):
    return s.encode() if isinstance(s, str) else s


def publish_packet(topic, payload=b"", qos=0, pid=1, retain=False,
                   dup=False, first=None):
    body = mqtt_str(as_bytes(topic))
    if qos:
        body += u16(pid)
    body += as_bytes(payload)
    if first is None:
        first = 0x30 | (0x08 if dup else 0) | (qos << 1) | \
            (0x01 if retain else 0)
    return packet(first, body)


def subscribe_packet(pid, filters, first=0x82):
    body = u16(pid)
    for f, q in filters:
        body += mqtt_str(as_bytes(f)) + bytes([q])
    return packet(first, body)


def unsubscribe_packet(pid, filters, first=0xA2):
    body = u16(pid)
    for f in filters:
        body += mqtt_str(as_bytes(f))
    return packet(first, body)


def ack(kind, pid):
    first = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62,
             "pubcomp": 0x70, "unsuback": 0xB0}[kind]
    return bytes([first, 2]) + u16(pid)


def parse_publish(first, body):
    assert first >> 4 == 3, "not a PUBLISH: 0x%02x" % first
    qos = (first >> 1) & 3
    tlen = int.from_bytes(body[:2], "big")
    topic = body[2:2 + tlen]
    pos = 2 + tlen
    pid = None
    if qos:
        pid = int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
    return {"first": first, "topic": topic, "qos": qos, "pid": pid,
            "dup": bool(first & 0x08), "retain": bool(first & 0x01),
            "payload": body[pos:]}


def connect_packet(client_id="raw", clean=True, keepalive=60, level=4,
                   name="MQTT", will=None, user=None, password=None,
                   flags_extra=0):
    flags = (0x02 if clean else 0) | flags_extra
    payload = mqtt_str(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += mqtt_str(topic) + mqtt_str(msg)
    if user is not None:
        flags |= 0x80
        payload += mqtt_str(user)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    body = mqtt_str(name) + bytes([level, flags]) + \
        keepalive.to_bytes(2, "big") + payload
    return packet(0x10, body)


def split_stream(data):
    """(the whole packets at the start of data as (first, body), the
    number of bytes they take)."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            return out, pos
        value, mult, i = 0, 1, pos + 1
        while True:
            if i >= len(data) or i > pos + 4:
                return out, pos
            b = data[i]
            value += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if i + value > len(data):
            return out, pos
        out.append((data[pos], bytes(data[i:i + value])))
        pos = i + value
    return out, pos


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes"
                                  % (len(data), n))
        data += chunk
    return data


def read_packet(s):
    """Returns (first_byte, body); raises ConnectionError on close."""
    first = recv_exact(s, 1)[0]
    mult, value = 1, 0
    for _ in range(4):
        b = recv_exact(s, 1)[0]
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, recv_exact(s, value)


def expect_closed(s, timeout=5.0):
    """True when the peer closes (EOF or reset) within timeout, reading and
    discarding anything it sends first."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def fnv1a64(data):
    h = 1469598103934665603
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def cid_on(prefix, worker, nworkers=2):
    """A client id whose session lives on the given worker (moatd homes a
    session by FNV-1a of the client id modulo the worker count), so that
    a test can force cross-worker delivery."""
    i = 0
    while True:
        cid = "%s-%d" % (prefix, i)
        if fnv1a64(cid.encode()) % nworkers == worker:
            return cid
        i += 1


def read_until_close(s, timeout=5.0):
    """(closed, data): whether the peer closed (EOF or reset) within
    timeout, and every byte it sent first."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, data
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, data
        except socket.timeout:
            return False, data
        if not chunk:
            return True, data
        data += chunk


def send_quietly(s, data):
    """Send what the broker may refuse half-way (it may close first)."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def wait_for(pred, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# ---- security fixtures -----------------------------------------------------

def write_private(path, data, mode=0o600):
    """Write data (str or bytes) to path with exactly this mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(as_bytes(data))
    os.chmod(path, mode)


def mosquitto_pw_hash(password, salt=None, iterations=101):
    """A mosquitto "$7$" hash (PBKDF2-SHA512, 12-byte salt, 64-byte key),
    as mosquitto_passwd 2.0 writes it."""
    salt = os.urandom(12) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", as_bytes(password), salt,
                              iterations, 64)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(),
                            base64.b64encode(key).decode())


def password_file_text(users):
    """Password file lines for {user: password} ("$7$" hashes)."""
    return "".join("%s:%s\n" % (u, mosquitto_pw_hash(p))
                   for u, p in users.items())


def connack_of(s, timeout=5.0):
    """The first packet's bytes after a CONNECT, or b"" when the peer
    closes first (EOF, reset or timeout)."""
    s.settimeout(timeout)
    try:
        first, body = read_packet(s)
    except (ConnectionError, OSError):
        return b""
    return bytes([first]) + varint(len(body)) + body


# ---- process and socket probes (robustness tests) -------------------------

def proc_status_kib(pid, field="VmRSS"):
    """A memory field of /proc/PID/status (VmRSS, VmHWM, ...) in KiB, or
    None when the process or the field is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


TCP_STATE_CLOSE = 7        # include/net/tcp_states.h
TCP_STATE_CLOSE_WAIT = 8


def peer_closed(s):
    """True when the peer of TCP socket s has closed its side (FIN: our
    side is in CLOSE_WAIT) or reset it, found without reading from s
    (Linux TCP_INFO: the first byte is tcpi_state)."""
    try:
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return True
    return info[0] in (TCP_STATE_CLOSE, TCP_STATE_CLOSE_WAIT)


# ---- WebSocket (RFC 6455) client side, for raw tests ----------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_request(path="/mqtt", protocol="mqtt", origin=None, key=None,
               extra=b"", host="127.0.0.1"):
    """The bytes of an opening handshake request."""
    key = key if key is not None else base64.b64encode(os.urandom(16))
    req = (b"GET " + as_bytes(path) + b" HTTP/1.1\r\nHost: " +
           as_bytes(host) + b"\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
    if key:
        req += b"Sec-WebSocket-Key: " + as_bytes(key) + b"\r\n"
    if protocol:
        req += b"Sec-WebSocket-Protocol: " + as_bytes(protocol) + b"\r\n"
    if origin:
        req += b"Origin: " + as_bytes(origin) + b"\r\n"
    return req + extra + b"\r\n"


def ws_read_response(s):
    """(status, {lowercase header: value}, leftover bytes) of the answer
    to a handshake; status 0 when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = s.recv(4096)
        except (ConnectionError, OSError):
            chunk = b""
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def ws_accept_of(key):
    return base64.b64encode(hashlib.sha1(as_bytes(key) + WS_GUID).digest())


def ws_connect(port, timeout=5.0, wrap=None, **kw):
    """A WsStream past a successful handshake (raises otherwise);
    wrap(sock) may add TLS first."""
    s = raw_connect(port, timeout)
    if wrap:
        s = wrap(s)
    key = base64.b64encode(os.urandom(16))
    s.sendall(ws_request(key=key, **kw))
    status, headers, rest = ws_read_response(s)
    if status != 101:
        raise ConnectionError("handshake answered %d" % status)
    if headers.get("sec-websocket-accept", "").encode() != ws_accept_of(key):
        raise ConnectionError("wrong Sec-WebSocket-Accept")
    ws = WsStream(s)
    ws.raw = rest  # frame bytes that came with the answer
    return ws


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One client frame (masked unless told otherwise); length overrides
    the length field."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_binary(payload, **kw):
    return ws_frame(0x2, payload, **kw)


def ws_close_frame(code=1000, reason=b""):
    return ws_frame(0x8, code.to_bytes(2, "big") + reason)


def ws_read_frame(s):
    """(fin, opcode, payload) of the next server frame (never masked)."""
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(s, 8), "big")
    if b1 & 0x80:
        raise ConnectionError("masked frame from the server")
    return bool(b0 & 0x80), b0 & 0x0F, recv_exact(s, n)


class WsStream:
    """MQTT packets out of the binary frames of a WebSocket; control
    frames are kept in .control."""

    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.raw = b""
        self.control = []

    def send(self, data):
        self.s.sendall(data)

    def frame(self):
        """The next frame, (fin, opcode, payload)."""
        if self.raw:  # rare: frames that came with the 101 answer
            class Pre:
                def __init__(self, data, s):
                    self.data, self.s = data, s
                def recv(self, n):
                    if self.data:
                        out, self.data = self.data[:n], self.data[n:]
                        return out
                    return self.s.recv(n)
            pre = Pre(self.raw, self.s)
            self.raw = b""
            r = ws_read_frame(pre)
            self.raw = pre.data
            return r
        return ws_read_frame(self.s)

    def _more(self):
        fin, op, payload = self.frame()
        if op in (0x0, 0x2):
            self.buf += payload
        else:
            self.control.append((op, payload))
            if op == 0x8:
                raise ConnectionError("close frame")

    def read_packet(self):
        """(first byte, body) of the next MQTT packet."""
        while True:
            if len(self.buf) >= 2:
                value, mult, i = 0, 1, 1
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    value += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        if len(self.buf) >= i + value:
                            first, body = self.buf[0], self.buf[i:i + value]
                            self.buf = self.buf[i + value:]
                            return first, body
                        break
            self._more()

    def close_code(self, timeout=5.0):
        """The status of the server's close frame (None: closed without
        one), reading past anything else."""
        self.s.settimeout(timeout)
        try:
            while True:
                fin, op, payload = self.frame()
                if op == 0x8:
                    return int.from_bytes(payload[:2], "big") if payload \
                        else 1005
        except (ConnectionError, OSError):
            return None
