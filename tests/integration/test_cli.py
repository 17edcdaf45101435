"""Black-box tests of the `moat pub` / `moat sub` command-line client.

Environment:
  MOAT_BIN            path of the moat binary (required)
  MOAT_TEST_HOST      broker address (default 127.0.0.1)
  MOAT_TEST_PORT      broker port; without it the tests start their own
                      moatd (MOATD_BIN) on an ephemeral loopback port
  MOAT_TEST_USER      optional credentials for every client
  MOAT_TEST_PASSWORD

Three groups:
  CliUsage    needs no broker: --help, --version, usage errors (exit 2).
  CliBroker   against the broker at MOAT_TEST_HOST:MOAT_TEST_PORT; the
              mosquitto_pub/mosquitto_sub interop cases are skipped when
              those tools are not installed.
  CliHostile  against a scripted fake broker in this file (loopback,
              ephemeral port): refused connections, refused subscriptions,
              malformed packets, QoS 2 duplicates.

Only loopback traffic.  Every wait is bounded by a timeout; nothing
asserts on timing.  A subscriber is known to be ready once its -d output
shows the SUBACK.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

MOAT = os.environ.get("MOAT_BIN", "moat")
HOST = os.environ.get("MOAT_TEST_HOST", "127.0.0.1")
PORT = os.environ.get("MOAT_TEST_PORT")
USER = os.environ.get("MOAT_TEST_USER")
PASSWORD = os.environ.get("MOAT_TEST_PASSWORD")
TIMEOUT = 20.0  # upper bound for any single wait
EXIT_TIMEOUT = 27


def auth_args():
    args = []
    if USER:
        args += ["-u", USER]
    if PASSWORD:
        args += ["-P", PASSWORD]
    return args


def check_sanitizers(stderr):
    """In ASan/UBSan builds a report means failure, whatever the exit."""
    for mark in (b"Sanitizer", b"runtime error:"):
        if mark in stderr:
            raise AssertionError("sanitizer report:\n" +
                                 stderr.decode(errors="replace"))


def moat(*args, stdin=None, timeout=TIMEOUT, env=None):
    """Run moat to completion; returns CompletedProcess (bytes output)."""
    r = subprocess.run([MOAT] + list(args), input=stdin,
                       capture_output=True, timeout=timeout, env=env)
    check_sanitizers(r.stderr)
    return r


class Bg:
    """A background process whose stdout/stderr are collected by threads,
    so that we can wait for a line without blocking forever."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = bytearray()
        self.err = bytearray()
        self.cond = threading.Condition()
        self.threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout,
                                                      self.out)),
            threading.Thread(target=self._pump, args=(self.proc.stderr,
                                                      self.err))]
        for t in self.threads:
            t.daemon = True
            t.start()

    def _pump(self, pipe, into):
        for chunk in iter(lambda: pipe.read1(65536), b""):
            with self.cond:
                into += chunk
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, needle, stream="err", timeout=TIMEOUT):
        """Wait until needle (bytes) appears in stderr/stdout."""
        buf = self.err if stream == "err" else self.out
        deadline = time.monotonic() + timeout
        with self.cond:
            while needle not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not any(t.is_alive()
                                         for t in self.threads)):
                    raise AssertionError(
                        "%r not seen; stdout=%r stderr=%r" %
                        (needle, bytes(self.out), bytes(self.err)))
                self.cond.wait(min(left, 0.2))

    def finish(self, timeout=TIMEOUT):
        """Wait for exit; returns (returncode, stdout, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._close()
        check_sanitizers(bytes(self.err))
        return self.proc.returncode, bytes(self.out), bytes(self.err)

    def _close(self):
        for t in self.threads:
            t.join(TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if not self.proc.stdout.closed:
            self._close()


def free_port():
    """A loopback port with (very probably) nobody listening."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CliUsage(unittest.TestCase):
    def test_version(self):
        r = moat("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^moat \d+\.\d+\.\d+\n$")

    def test_help(self):
        for args in (["--help"], ["help"], ["help", "pub"],
                     ["pub", "--help"], ["sub", "--help"]):
            r = moat(*args)
            self.assertEqual(r.returncode, 0, args)
            self.assertIn(b"Usage: moat", r.stdout)
        self.assertIn(b"-W, --timeout", moat("sub", "--help").stdout)
        self.assertIn(b"-l, --stdin-line", moat("pub", "--help").stdout)
        self.assertIn(b"27", moat("--help").stdout)

    def test_usage_errors_exit_2(self):
        cases = [
            [],
            ["frobnicate"],
            ["--frobnicate"],
            ["help", "frobnicate"],
            ["pub", "-m", "x"],                       # no topic
            ["pub", "-t", "a"],                       # no message
            ["pub", "-t", "a", "-m", "x", "-n"],      # two sources
            ["pub", "-t", "a/#", "-m", "x"],          # wildcard topic
            ["pub", "-t", "a", "-m", "x", "-q", "3"],
            ["pub", "-t", "a", "-m", "x", "-p", "0"],
            ["pub", "-t", "a", "-m", "x", "-p", "http"],
            ["pub", "-t", "a", "-m", "x", "-P", "secret"],  # no -u
            ["pub", "-t", "a", "-m", "x", "--will-qos", "1"],
            ["pub", "-t", "a", "-m", "x", "-i", "a", "-I", "b"],
            ["pub", "-t", "a", "-m", "x", "-V", "4"],
            ["pub", "-t", "a", "-m", "x", "-V", "31",
             "-i", "x" * 24],                         # 3.1: id <= 23
            ["pub", "-t", "a", "-m", "x", "-C", "1"],  # a sub option
            ["pub", "-t", "a", "-m", "x", "extra"],
            ["pub", "-t"],                            # missing argument
            ["pub", "-t", "a", "-m", "x", "--retain=yes"],
            ["sub"],                                  # no filter
            ["sub", "-t", "a/#/b"],
            ["sub", "-t", "a", "-T", "b+"],
            ["sub", "-t", "a", "-c"],                 # -c needs -i
            ["sub", "-t", "a", "-C", "0"],
            ["sub", "-t", "a", "-W", "-1"],
            ["sub", "-t", "a", "-R", "--retained-only"],
            ["sub", "-t", "a", "-r"],                 # a pub option
        ]
        for args in cases:
            r = moat(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertTrue(r.stderr, args)
            self.assertEqual(r.stdout, b"", args)

    def test_mqtt5_not_supported_yet(self):
        for v in ("5", "mqttv5"):
            r = moat("sub", "-t", "a", "-V", v)
            self.assertEqual(r.returncode, 2)
            self.assertIn(b"not supported yet", r.stderr)

    def test_missing_file_fails_before_connecting(self):
        r = moat("pub", "-h", "127.0.0.1", "-p", str(free_port()),
                 "-t", "a", "-f", "/nonexistent/moat-test-file")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"/nonexistent/moat-test-file", r.stderr)


class CliBroker(unittest.TestCase):
    def setUp(self):
        self.topic = "moat-test/%d/%s" % (os.getpid(), self._testMethodName)
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.kill()

    def conn(self):
        return ["-h", HOST, "-p", PORT] + auth_args()

    def pub(self, *args, stdin=None):
        r = moat("pub", *self.conn(), *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def sub_bg(self, *args):
        """Start moat sub and wait until its subscription is acknowledged."""
        b = Bg([MOAT, "sub", *self.conn(), "-d", *args])
        self.bg.append(b)
        b.wait_for(b"received SUBACK")
        return b

    def mosquitto_sub_bg(self, *args):
        # mosquitto_sub prints its debug lines on stdout, block-buffered
        # into a pipe: stdbuf makes them line-buffered.
        conn = ["-h", HOST, "-p", PORT] + auth_args()
        b = Bg(["stdbuf", "-oL", "mosquitto_sub", *conn, "-d", *args])
        self.bg.append(b)
        b.wait_for(b"received SUBACK", stream="out")
        return b

    def payloads(self, out):
        """mosquitto_sub -d mixes debug lines into stdout: drop them."""
        return [ln for ln in out.split(b"\n")
                if ln and not ln.startswith((b"Client ", b"Subscribed "))]

    def test_pub_sub_each_qos(self):
        for qos in ("0", "1", "2"):
            t = "%s/%s" % (self.topic, qos)
            s = self.sub_bg("-t", t, "-q", qos, "-C", "1", "-v")
            self.pub("-t", t, "-q", qos, "-m", "hello " + qos)
            rc, out, err = s.finish()
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, ("%s hello %s\n" % (t, qos)).encode())

    def test_qos_flows_in_debug_output(self):
        r = self.pub("-t", self.topic, "-q", "2", "-m", "x", "-d")
        for step in (b"sending PUBLISH (d0, q2", b"received PUBREC",
                     b"sending PUBREL", b"received PUBCOMP",
                     b"sending DISCONNECT"):
            self.assertIn(step, r.stderr)
        r = self.pub("-t", self.topic, "-q", "1", "-m", "x", "-d")
        self.assertIn(b"received PUBACK", r.stderr)

    def test_retained(self):
        t = self.topic
        self.pub("-t", t, "-r", "-q", "1", "-m", "kept")
        try:
            r = moat("sub", *self.conn(), "-t", t, "-C", "1", "-W", "10")
            self.assertEqual((r.returncode, r.stdout), (0, b"kept\n"))
            # -R skips stale messages: nothing arrives before -W.
            r = moat("sub", *self.conn(), "-t", t, "-R", "-W", "1")
            self.assertEqual((r.returncode, r.stdout), (EXIT_TIMEOUT, b""))
            # --retained-only: print the retained one, end at a new one.
            s = self.sub_bg("-t", t, "--retained-only", "-v")
            self.pub("-t", t, "-m", "fresh")
            rc, out, err = s.finish()
            self.assertEqual((rc, out), (0, ("%s kept\n" % t).encode()))
        finally:
            self.pub("-t", t, "-r", "-n")  # an empty retained clears
        r = moat("sub", *self.conn(), "-t", t, "-W", "1")
        self.assertEqual((r.returncode, r.stdout), (EXIT_TIMEOUT, b""))

    def test_line_mode(self):
        for qos in ("0", "1", "2"):
            t = "%s/%s" % (self.topic, qos)
            s = self.sub_bg("-t", t, "-q", qos, "-C", "4")
            self.pub("-t", t, "-q", qos, "-l", stdin=b"a\n\nb\r\nlast")
            rc, out, err = s.finish()
            self.assertEqual(rc, 0, err)
            # Every line is a message, empty ones too; only '\n' is cut.
            self.assertEqual(out, b"a\n\nb\r\nlast\n")

    def test_line_mode_empty_input(self):
        r = self.pub("-t", self.topic, "-l", "-q", "1", "-d", stdin=b"")
        self.assertNotIn(b"sending PUBLISH", r.stderr)

    def test_count(self):
        s = self.sub_bg("-t", self.topic, "-C", "2")
        self.pub("-t", self.topic, "-q", "1", "-l", stdin=b"1\n2\n3\n")
        rc, out, err = s.finish()
        self.assertEqual((rc, out), (0, b"1\n2\n"))

    def test_timeout_exit_27(self):
        r = moat("sub", *self.conn(), "-t", self.topic, "-W", "1")
        self.assertEqual(r.returncode, EXIT_TIMEOUT)
        self.assertEqual(r.stdout, b"")
        # -C not reached before -W: also 27, with what did arrive.
        s = self.sub_bg("-t", self.topic, "-C", "5", "-W", "3")
        self.pub("-t", self.topic, "-q", "1", "-m", "only one")
        rc, out, err = s.finish()
        self.assertEqual((rc, out), (EXIT_TIMEOUT, b"only one\n"))

    def test_verbose_no_eol_filter_out_multiple_filters(self):
        a, b = self.topic + "/a", self.topic + "/b"
        s = self.sub_bg("-t", a, "-t", self.topic + "/skip/#", "-t", b,
                        "-T", self.topic + "/skip/#", "-v", "-N", "-C", "2")
        for t in (self.topic + "/skip/1", a, self.topic + "/skip", b):
            self.pub("-t", t, "-q", "1", "-m", "[%s]" % t.rsplit("/")[-1])
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, ("%s [a]%s [b]" % (a, b)).encode())

    def test_file_stdin_binary_payloads(self):
        data = bytes(range(256)) * 700 + b"\n\x00end"
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            s = self.sub_bg("-t", self.topic, "-q", "1", "-C", "3", "-N")
            self.pub("-t", self.topic, "-q", "1", "-f", f.name)
            self.pub("-t", self.topic, "-q", "2", "-s", stdin=data)
            self.pub("-t", self.topic, "-n")
            rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, data + data)

    def test_persistent_session_queues_offline_messages(self):
        cid = "moat-test-%d-persist" % os.getpid()
        args = ("-t", self.topic, "-q", "1", "-c", "-i", cid)
        r = moat("sub", *self.conn(), *args, "-W", "1")  # create session
        self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
        try:
            self.pub("-t", self.topic, "-q", "1", "-l",
                     stdin=b"one\ntwo\nthree\n")
            r = moat("sub", *self.conn(), *args, "-C", "3", "-W", "10",
                     "-d")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"one\ntwo\nthree\n")
            self.assertIn(b"resumed the session", r.stderr)
        finally:
            # A clean-session connection discards the session.
            moat("sub", *self.conn(), "-t", self.topic, "-i", cid, "-W", "1")

    def test_will_on_abnormal_exit_only(self):
        wt = self.topic + "/will"
        watch = self.sub_bg("-t", wt, "-C", "1", "-v")
        dying = self.sub_bg("-t", self.topic + "/x", "--will-topic", wt,
                            "--will-payload", "gone", "--will-qos", "1")
        dying.proc.kill()  # SIGKILL: no DISCONNECT, so the will goes out
        dying.finish()
        rc, out, err = watch.finish()
        self.assertEqual((rc, out), (0, ("%s gone\n" % wt).encode()))
        # SIGTERM: moat sub disconnects cleanly, exit 0, no will.  The
        # broker has seen DISCONNECT before the process exits, so a will
        # would arrive before the marker published afterwards.
        watch = self.sub_bg("-t", wt, "-C", "1")
        polite = self.sub_bg("-t", self.topic + "/x", "--will-topic", wt,
                             "--will-payload", "gone")
        polite.proc.send_signal(signal.SIGTERM)
        self.assertEqual(polite.finish()[0], 0)
        self.pub("-t", wt, "-m", "marker")
        rc, out, err = watch.finish()
        self.assertEqual((rc, out), (0, b"marker\n"))

    def test_sigint_exits_0(self):
        s = self.sub_bg("-t", self.topic)
        s.proc.send_signal(signal.SIGINT)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        self.assertIn(b"sending DISCONNECT", err)

    def test_keepalive_pings(self):
        # -k 1: PINGREQ after a second idle; wait for two answers.
        s = self.sub_bg("-t", self.topic, "-k", "1")
        s.wait_for(b"received PINGRESP")
        with s.cond:
            s.err[:] = b""
        s.wait_for(b"received PINGRESP")
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.finish()[0], 0)

    def test_client_id_options(self):
        r = self.pub("-t", self.topic, "-m", "x", "-d")
        self.assertIn(b"client moat-pub-", r.stderr)
        r = self.pub("-t", self.topic, "-m", "x", "-d", "-I", "pfx-")
        self.assertIn(b"client pfx-", r.stderr)
        r = self.pub("-t", self.topic, "-m", "x", "-d", "-i", "given-id")
        self.assertIn(b"client given-id sending", r.stderr)

    def test_protocol_31(self):
        s = self.sub_bg("-t", self.topic, "-C", "1", "-V", "mqttv31")
        self.pub("-t", self.topic, "-q", "1", "-m", "old", "-V", "31")
        rc, out, err = s.finish()
        self.assertEqual((rc, out), (0, b"old\n"))

    def test_wrong_port(self):
        port = str(free_port())
        for tool in (["pub", "-m", "x"], ["sub"]):
            r = moat(tool[0], "-h", "127.0.0.1", "-p", port, "-t", "a",
                     *tool[1:])
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"cannot connect", r.stderr)
            r = moat(tool[0], "-h", "127.0.0.1", "-p", port, "-t", "a",
                     "--quiet", *tool[1:])
            self.assertEqual((r.returncode, r.stderr), (1, b""))

    @unittest.skipUnless(shutil.which("mosquitto_sub") and
                         shutil.which("mosquitto_pub") and
                         shutil.which("stdbuf"),
                         "mosquitto clients (or stdbuf) not installed")
    def test_interop_mosquitto(self):
        conn = ["-h", HOST, "-p", PORT] + auth_args()
        for qos in ("0", "1", "2"):
            t = "%s/m%s" % (self.topic, qos)
            # moat pub -> mosquitto_sub
            s = self.mosquitto_sub_bg("-t", t, "-q", qos, "-C", "2")
            self.pub("-t", t, "-q", qos, "-m", "to mosquitto")
            self.pub("-t", t, "-q", qos, "-l", stdin=b"line\n")
            rc, out, err = s.finish()
            self.assertEqual(rc, 0, err)
            self.assertEqual(self.payloads(out), [b"to mosquitto", b"line"])
            # mosquitto_pub -> moat sub
            s = self.sub_bg("-t", t, "-q", qos, "-C", "2")
            for m in ("from mosquitto", "again"):
                r = subprocess.run(["mosquitto_pub", *conn, "-t", t, "-q",
                                    qos, "-m", m], capture_output=True,
                                   timeout=TIMEOUT)
                self.assertEqual(r.returncode, 0, r.stderr)
            rc, out, err = s.finish()
            self.assertEqual((rc, out), (0, b"from mosquitto\nagain\n"))
        # retained: moat pub -r -> mosquitto_sub; then cleared.
        t = self.topic + "/mret"
        self.pub("-t", t, "-r", "-m", "retained")
        r = subprocess.run(["mosquitto_sub", *conn, "-t", t, "-C", "1",
                            "-W", "10"], capture_output=True,
                           timeout=TIMEOUT)
        self.pub("-t", t, "-r", "-n")
        self.assertEqual((r.returncode, r.stdout), (0, b"retained\n"))


# ---- a scripted fake broker for hostile and edge-case server behaviour --

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body=b""):
    return bytes([first]) + varint(len(body)) + body


def mqtt_str(s):
    return len(s).to_bytes(2, "big") + s


def publish(topic, payload, qos=0, pid=0, dup=False, retain=False):
    body = mqtt_str(topic) + (pid.to_bytes(2, "big") if qos else b"")
    return packet(0x30 | (8 if dup else 0) | (qos << 1) | int(retain),
                  body + payload)


CONNACK_OK = packet(0x20, b"\x00\x00")


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_packet(sock):
    first = read_exact(sock, 1)[0]
    mult, length = 1, 0
    while True:
        b = read_exact(sock, 1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, read_exact(sock, length)


class FakeBroker:
    """Accept one client on an ephemeral loopback port and run a script:
    a list of bytes (sent), "expect:N" (read a packet of type N, kept in
    self.got as (first byte, body)), a function of self.got returning
    bytes to send, "close", "sleep" (wait for the client to go away)."""

    def __init__(self, script):
        self.script = script
        self.got = []
        self.error = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.port = str(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.error = e
            return
        conn.settimeout(TIMEOUT)
        try:
            for step in self.script:
                self._step(conn, step)
        except (OSError, EOFError) as e:
            if str(e) != "closed by the script":
                self.error = e
        finally:
            conn.close()
            self.sock.close()

    def _step(self, conn, step):
        if isinstance(step, bytes):
            conn.sendall(step)
        elif callable(step):
            conn.sendall(step(self.got))
        elif step.startswith("expect:"):
            first, body = read_packet(conn)
            self.got.append((first, body))
            if first >> 4 != int(step[7:]):
                raise EOFError("expected type %s, got 0x%02x" %
                               (step[7:], first))
        elif step == "close":
            conn.shutdown(socket.SHUT_RDWR)
            raise EOFError("closed by the script")
        elif step == "sleep":
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def join(self):
        self.thread.join(TIMEOUT)
        return self.got


def suback(*codes):
    """A step: the SUBACK for the last SUBSCRIBE received."""
    def step(got):
        body = [b for f, b in got if f >> 4 == SUBSCRIBE][-1]
        return packet(0x90, body[:2] + bytes(codes))
    return step


CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 3, 4, 5, 6, 7
SUBSCRIBE, DISCONNECT = 8, 14


class CliHostile(unittest.TestCase):
    def run_against(self, script, *args, tool="sub"):
        fake = FakeBroker(script)
        extra = ["-t", "t"] if tool == "sub" else ["-t", "t", "-m", "x"]
        r = moat(tool, "-h", "127.0.0.1", "-p", fake.port, *extra, *args)
        fake.join()
        # Whatever the server did, moat must exit, not crash.
        self.assertGreaterEqual(r.returncode, 0, r.stderr)
        return r, fake

    def test_connack_refusals(self):
        texts = {1: b"unacceptable protocol version",
                 2: b"identifier rejected", 3: b"server unavailable",
                 4: b"bad user name or password", 5: b"not authorised"}
        for code, text in texts.items():
            r, _ = self.run_against(["expect:1",
                                     packet(0x20, bytes([0, code])),
                                     "sleep"])
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"connection refused: " + text, r.stderr)

    def test_suback_failure(self):
        r, _ = self.run_against(["expect:1", CONNACK_OK, "expect:8",
                                 suback(0x80), "sleep"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"refused", r.stderr)

    def test_malformed_server_input(self):
        after_sub = ["expect:1", CONNACK_OK, "expect:8", suback(0)]
        cases = {
            "5-byte varint": ["expect:1", b"\x20\xff\xff\xff\xff\x7f"],
            "CONNACK too long": ["expect:1", packet(0x20, b"\0\0\0")],
            "CONNACK bad flags": ["expect:1", packet(0x20, b"\x02\x00")],
            "PUBLISH before CONNACK": ["expect:1", publish(b"t", b"x")],
            "reserved type 0": ["expect:1", CONNACK_OK, b"\x00\x00"],
            "server sends CONNECT": ["expect:1", CONNACK_OK, b"\x10\x00"],
            "server sends PINGREQ": ["expect:1", CONNACK_OK, b"\xc0\x00"],
            "PINGRESP with body": ["expect:1", CONNACK_OK, "expect:8",
                                   suback(0), b"\xd0\x01\x00"],
            "SUBACK code 3": ["expect:1", CONNACK_OK, "expect:8",
                              suback(3)],
            "SUBACK count": ["expect:1", CONNACK_OK, "expect:8",
                             suback(0, 0)],
            "SUBACK empty": ["expect:1", CONNACK_OK, "expect:8",
                             lambda got: packet(0x90, got[-1][1][:2])],
            "PUBLISH qos 3": after_sub + [b"\x36\x05\x00\x01tab"],
            "PUBLISH dup qos 0": after_sub + [b"\x38\x03\x00\x01t"],
            "PUBLISH bad utf-8": after_sub + [publish(b"\xff", b"x")],
            "PUBLISH wildcard": after_sub + [publish(b"a/#", b"x")],
            "PUBLISH short": after_sub + [b"\x30\x01\x00"],
            "PUBLISH id 0": after_sub + [publish(b"t", b"x", 1, 0)],
            "PUBACK short": after_sub + [b"\x40\x01\x00"],
            "PUBREL bad flags": after_sub + [b"\x60\x02\x00\x01"],
            "truncated then close": after_sub + [b"\x30\x10\x00\x01t",
                                                 "close"],
            "closed after CONNECT": ["expect:1", "close"],
        }
        for name, script in cases.items():
            with self.subTest(name):
                r, _ = self.run_against(script + ["sleep"], "-W", "10")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr)
                self.assertEqual(r.stdout, b"")

    def test_silent_server_times_out(self):
        r, _ = self.run_against(["expect:1", "sleep"], "-W", "1")
        self.assertEqual(r.returncode, EXIT_TIMEOUT)

    def test_qos2_duplicate_delivered_once(self):
        script = [
            "expect:1", CONNACK_OK, "expect:8", suback(2),
            publish(b"t", b"first", 2, 7), "expect:5",
            publish(b"t", b"first", 2, 7, dup=True), "expect:5",
            packet(0x62, b"\x00\x07"), "expect:7",
            publish(b"t", b"second", 2, 7), "expect:5",  # id reused
            "expect:14", "sleep"]
        r, fake = self.run_against(script, "-q", "2", "-C", "2")
        self.assertIsNone(fake.error)
        self.assertEqual((r.returncode, r.stdout), (0, b"first\nsecond\n"))
        acks = [(f, b) for f, b in fake.got if f >> 4 in (PUBREC, PUBCOMP)]
        self.assertEqual(acks, [(0x50, b"\0\7"), (0x50, b"\0\7"),
                                (0x70, b"\0\7"), (0x50, b"\0\7")])

    def test_qos1_redelivery_is_acknowledged(self):
        script = [
            "expect:1", CONNACK_OK, "expect:8", suback(1),
            publish(b"t", b"m", 1, 3), "expect:4",
            publish(b"t", b"m", 1, 3, dup=True), "expect:4",
            "expect:14", "sleep"]
        r, fake = self.run_against(script, "-q", "1", "-C", "2", "-v")
        self.assertIsNone(fake.error)
        self.assertEqual((r.returncode, r.stdout), (0, b"t m\nt m\n"))

    def test_unknown_pubrel_answered(self):
        # A PUBREL for an id we never saw (an earlier connection of the
        # session) still gets its PUBCOMP.
        script = ["expect:1", CONNACK_OK, "expect:8", suback(0),
                  packet(0x62, b"\x01\x00"), "expect:7",
                  publish(b"t", b"done"), "expect:14", "sleep"]
        r, fake = self.run_against(script, "-C", "1")
        self.assertIsNone(fake.error)
        self.assertEqual((r.returncode, r.stdout), (0, b"done\n"))

    def test_queued_messages_before_suback(self):
        # A resumed session may deliver before the SUBACK.
        script = ["expect:1", packet(0x20, b"\x01\x00"),
                  publish(b"t", b"early", 1, 1), "expect:8", "expect:4",
                  suback(1), "expect:14", "sleep"]
        r, fake = self.run_against(script, "-q", "1", "-C", "1", "-c",
                                   "-i", "persist")
        self.assertIsNone(fake.error)
        self.assertEqual((r.returncode, r.stdout), (0, b"early\n"))

    def test_pub_waits_for_its_acks(self):
        # Unrelated acks and a PUBLISH arrive first; pub finishes only
        # with the PUBCOMP for its own packet id.
        script = ["expect:1", CONNACK_OK, "expect:3",
                  packet(0x50, b"\x12\x34"),   # PUBREC, wrong id: ignored
                  lambda got: packet(0x50, got[1][1][3:5]), "expect:6",
                  publish(b"other", b"x", 1, 9), "expect:4",
                  lambda got: packet(0x70, got[2][1]), "expect:14",
                  "sleep"]
        r, fake = self.run_against(script, "-q", "2", tool="pub")
        self.assertIsNone(fake.error)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_pub_connection_lost_before_ack(self):
        r, _ = self.run_against(["expect:1", CONNACK_OK, "expect:3",
                                 "close"], "-q", "1", tool="pub")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"closed", r.stderr)

    def test_random_garbage_never_crashes(self):
        import random
        rng = random.Random(1234)
        for i in range(40):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(
                1, 64)))
            with self.subTest(i=i):
                r, _ = self.run_against(["expect:1", CONNACK_OK,
                                         "expect:8", suback(0), junk,
                                         "close"], "-W", "10")
                self.assertIn(r.returncode, (0, 1, EXIT_TIMEOUT),
                              r.stderr)


OWN_BROKER = None


def setUpModule():
    global PORT, OWN_BROKER
    if not os.path.exists(MOAT) and not shutil.which(MOAT):
        raise RuntimeError("moat binary not found: set MOAT_BIN")
    if PORT is None:
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from moat_harness import Broker
        OWN_BROKER = Broker().start()
        PORT = str(OWN_BROKER.port)


def tearDownModule():
    if OWN_BROKER is not None:
        rc = OWN_BROKER.stop()
        log = OWN_BROKER.read_log()
        OWN_BROKER.dir.cleanup()
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("moatd exit status %d; log:\n%s"
                                 % (rc, log[-6000:]))


if __name__ == "__main__":
    unittest.main()
