"""Black-box tests of the `moat pub` / `moat sub` command-line client.

Environment:
  MOAT_BIN            path of the moat binary (required)
  MOAT_TEST_HOST      broker address (default 127.0.0.1)
  MOAT_TEST_PORT      broker port; without it the tests start their own
                      moatd (MOATD_BIN) on an ephemeral loopback port
  MOAT_TEST_USER      optional credentials for every client
  MOAT_TEST_PASSWORD

Five groups:
  CliUsage    needs no broker: --help, --version, usage errors (exit 2).
  CliBroker   against the broker at MOAT_TEST_HOST:MOAT_TEST_PORT; the
              mosquitto_pub/mosquitto_sub interop cases are skipped when
              those tools are not installed.
  CliBroker5  MQTT 5 (-V 5) against a moatd of its own (MOATD_BIN) with
              `mqtt5 true`: properties shown by -F and --json, expiry,
              sessions, topic aliases, subscription options and
              identifiers, reason codes, mosquitto -V mqttv5 interop.
  CliHostile  against a scripted fake broker in this file (loopback,
              ephemeral port): refused connections, refused subscriptions,
              malformed packets, QoS 2 duplicates.
  CliHostile5 the same for MQTT 5: the packets moat sends, reason codes,
              and malformed properties from the server.

Only loopback traffic.  Every wait is bounded by a timeout; nothing
asserts on timing.  A subscriber is known to be ready once its -d output
shows the SUBACK.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moat_harness import free_port  # noqa: E402

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

    def test_help_lists_mqtt5_options(self):
        pub = moat("pub", "--help").stdout
        sub = moat("sub", "--help").stdout
        for text in (b"-V, --protocol-version", b"-D, --property",
                     b"-x, --session-expiry-interval", b"message-expiry-interval",
                     b"topic-alias"):
            self.assertIn(text, pub)
        for text in (b"-F, --format", b"--json", b"--nl", b"--rap",
                     b"--rh", b"subscription-identifier", b"%P user"):
            self.assertIn(text, sub)
        self.assertNotIn(b"subscription-identifier", pub)
        self.assertIn(b"MQTT 5", moat("--help").stdout)

    def test_mqtt5_usage_errors_exit_2(self):
        pub = ["pub", "-t", "a", "-m", "x"]
        sub = ["sub", "-t", "a"]
        v5 = ["-V", "5"]
        cases = [
            # -D, -x, --nl, --rap, --rh need -V 5
            pub + ["-D", "publish", "content-type", "x"],
            pub + ["-V", "311", "-D", "connect", "receive-maximum", "5"],
            pub + ["-x", "10"],
            sub + ["--nl"], sub + ["--rap"], sub + ["--rh", "1"],
            # bad commands, properties, values
            pub + v5 + ["-D", "frobnicate", "x", "y"],
            pub + v5 + ["-D", "subscribe", "user-property", "a", "b"],
            sub + v5 + ["-D", "publish", "content-type", "x"],
            pub + v5 + ["-D", "publish", "colour", "red"],
            pub + v5 + ["-D", "publish", "subscription-identifier", "1"],
            pub + v5 + ["-D", "connect", "topic-alias", "1"],
            pub + v5 + ["-D", "publish", "receive-maximum", "1"],
            pub + v5 + ["-D", "connect", "receive-maximum", "0"],
            pub + v5 + ["-D", "connect", "receive-maximum", "65536"],
            pub + v5 + ["-D", "connect", "maximum-packet-size", "0"],
            pub + v5 + ["-D", "connect", "session-expiry-interval", "-5"],
            pub + v5 + ["-D", "connect", "request-problem-information",
                        "2"],
            pub + v5 + ["-D", "publish", "payload-format-indicator", "2"],
            pub + v5 + ["-D", "publish", "message-expiry-interval", "x"],
            pub + v5 + ["-D", "publish", "message-expiry-interval",
                        "4294967296"],
            pub + v5 + ["-D", "publish", "topic-alias", "0"],
            pub + v5 + ["-D", "publish", "response-topic", "a/+"],
            pub + v5 + ["-D", "publish", "content-type", b"\xff"],
            pub + v5 + ["-D", "publish", "content-type", "a",
                        "-D", "publish", "content-type", "b"],
            pub + v5 + ["-D", "publish", "user-property", "k"],
            pub + v5 + ["-D", "publish", "content-type"],
            pub + v5 + ["--property=publish", "content-type", "x"],
            sub + v5 + ["-D", "subscribe", "subscription-identifier",
                        "268435456"],
            sub + v5 + ["-D", "subscribe", "subscription-identifier", "0"],
            pub + v5 + ["-D", "will", "content-type", "x"],  # no will
            pub + v5 + ["-D", "disconnect", "session-expiry-interval",
                        "10"],                    # CONNECT had 0
            pub + v5 + ["-x", "10", "-D", "connect",
                        "session-expiry-interval", "5"],
            pub + v5 + ["-x", "soon"],
            sub + v5 + ["--rh", "3"],
            # output formats
            sub + ["-F", "%k"], sub + ["-F", "%"], sub + ["-F", "\\q"],
            sub + ["-F", "@Y"], sub + ["-F", "%10P"], sub + ["-F", "%.3p"],
            sub + ["-F", "%J"], sub + ["-F", "%99999t"],
            sub + ["--json", "-F", "%p"],
            pub + ["--json"], pub + ["-F", "%p"],
        ]
        for args in cases:
            r = moat(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertTrue(r.stderr, args)
            self.assertEqual(r.stdout, b"", args)

    def test_mqtt5_accepted_options(self):
        # Valid v5 command lines get as far as connecting (exit 1: no
        # broker on that port).
        port = str(free_port())
        conn = ["-h", "127.0.0.1", "-p", port, "-V", "mqttv5"]
        for args in (
                ["pub", "-t", "a", "-m", "x", "-P", "pw-without-user"],
                ["pub", "-t", "a", "-m", "x", "-x", "-1", "-D", "disconnect",
                 "session-expiry-interval", "0"],
                ["pub", "-t", "a", "-m", "x", "-D", "PUBLISH",
                 "Content-Type", "x", "-D", "publish", "user-property", "k",
                 "v", "-D", "publish", "user-property", "k", "v"],
                ["sub", "-t", "a", "-c", "-i", "x", "--nl", "--rap", "--rh",
                 "2", "-F", "%-5t|%05l|%.2C|\\t%%@@\\n", "-D", "subscribe",
                 "subscription-identifier", "268435455"],
                ["sub", "-t", "a", "--json", "--will-topic", "w", "-D",
                 "will", "will-delay-interval", "5"]):
            r = moat(*args[:1], *conn, *args[1:])
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertIn(b"cannot connect", r.stderr)

    def test_missing_file_fails_before_connecting(self):
        r = moat("pub", "-h", "127.0.0.1", "-p", str(free_port()),
                 "-t", "a", "-f", "/nonexistent/moat-test-file")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"/nonexistent/moat-test-file", r.stderr)


class Clients(unittest.TestCase):
    """Helpers for the tests against a real broker (no tests here)."""

    def setUp(self):
        self.topic = "moat-test/%d/%s" % (os.getpid(), self._testMethodName)
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.kill()

    def where(self):
        """-h and -p (and credentials) of the broker, for any client."""
        return ["-h", HOST, "-p", PORT] + auth_args()

    def conn(self):
        """The options moat needs for this broker."""
        return self.where()

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
        b = Bg(["stdbuf", "-oL", "mosquitto_sub", *self.where(), "-d",
                *args])
        self.bg.append(b)
        b.wait_for(b"received SUBACK", stream="out")
        return b

    def payloads(self, out):
        """mosquitto_sub -d mixes debug lines into stdout: drop them."""
        return [ln for ln in out.split(b"\n")
                if ln and not ln.startswith((b"Client ", b"Subscribed "))]


class CliBroker(Clients):

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


HAVE_MOSQUITTO = bool(shutil.which("mosquitto_sub") and
                      shutil.which("mosquitto_pub") and shutil.which("stdbuf"))


def start_own_broker(config=""):
    """A moatd of our own (MOATD_BIN) on an ephemeral loopback port."""
    from moat_harness import Broker
    return Broker(config=config).start()


def stop_own_broker(b):
    rc = b.stop()
    log = b.read_log()
    b.dir.cleanup()
    if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
        raise AssertionError("moatd exit status %d; log:\n%s"
                             % (rc, log[-6000:]))


# The publish properties of several tests, as -D arguments.
PUBLISH_PROPS = [
    "-D", "publish", "user-property", "k1", "v1",
    "-D", "publish", "user-property", "k1", "v2",
    "-D", "publish", "user-property", "k2", "v3",
    "-D", "publish", "content-type", "text/plain",
    "-D", "publish", "response-topic", "reply/to",
    "-D", "publish", "correlation-data", "corr-1",
    "-D", "publish", "payload-format-indicator", "1",
    "-D", "publish", "message-expiry-interval", "300"]


class CliBroker5(Clients):
    """MQTT 5: moat pub/sub -V 5 against a moatd of our own with
    `mqtt5 true` (whatever MOAT_TEST_PORT says)."""

    @classmethod
    def setUpClass(cls):
        # The limits the tests rely on, whatever the defaults become.
        cls.broker = start_own_broker(
            "mqtt5 true\nmax_inflight_messages 20\nmax_packet_size 1m\n"
            "topic_alias_maximum 10\nmax_keepalive 300\n"
            "max_subscriptions 100\nmax_qos 2\nretain_available true\n"
            "subscription_identifiers true\n")
        cls.port = str(cls.broker.port)

    @classmethod
    def tearDownClass(cls):
        stop_own_broker(cls.broker)

    def where(self):
        return ["-h", "127.0.0.1", "-p", self.port]

    def conn(self):
        return self.where() + ["-V", "5"]

    def fails(self, tool, *args, stdin=None):
        """Run moat, expecting exit 1; returns stderr."""
        r = moat(tool, *self.conn(), *args, stdin=stdin)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        return r.stderr

    def test_properties_shown_by_format(self):
        s = self.sub_bg("-t", self.topic, "-q", "1", "-C", "1", "-F",
                        "%t|%p|%q|%r|%l|%P|%C|%R|%D|%F|%E")
        self.pub("-t", self.topic, "-q", "1", "-m", "hello", *PUBLISH_PROPS)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        fields = out.decode().split("|")
        self.assertEqual(fields[:10], [
            self.topic, "hello", "1", "0", "5", "k1:v1 k1:v2 k2:v3",
            "text/plain", "reply/to", "corr-1", "1"])
        self.assertRegex(fields[10], r"^\d+\n$")
        self.assertTrue(0 < int(fields[10]) <= 300, fields[10])

    def test_format_escapes_width_and_v311_messages(self):
        s = self.sub_bg("-t", self.topic, "-C", "2", "-N", "-F",
                        "[%-6t][%8l][%05l][%.3t][%P][%C]%%@@\\t\\n")
        self.pub("-t", self.topic, "-m", "abc",
                 "-D", "publish", "content-type", "x")
        # A 3.1.1 publisher: its message has no properties.
        r = moat("pub", *self.where(), "-t", self.topic, "-m", "xy")
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        t = self.topic
        self.assertEqual(out.decode(), (
            "[%s][       3][00003][%s][][x]%%@\t\n"
            "[%s][       2][00002][%s][][]%%@\t\n") % (t, t[:3], t, t[:3]))

    def test_json_output(self):
        t = self.topic
        s = self.sub_bg("-t", t + "/#", "-C", "3", "--json",
                        "-D", "subscribe", "subscription-identifier", "7")
        self.pub("-t", t + "/a", "-m", 'say "hi"\n\t\\',
                 "-D", "publish", "user-property", "k", "v",
                 "-D", "publish", "user-property", "k", "v",
                 "-D", "publish", "user-property", "k", "w",
                 "-D", "publish", "content-type", "application/x",
                 "-D", "publish", "response-topic", "r/t",
                 "-D", "publish", "correlation-data", b"\xff\xfe",
                 "-D", "publish", "message-expiry-interval", "60")
        self.pub("-t", t + "/b", "-q", "1", "-s", stdin=b"\x00\xff bin")
        self.pub("-t", t + "/c", "-n")
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 3, out)
        msgs = [json.loads(ln) for ln in lines]
        m = msgs[0]
        self.assertRegex(m["tst"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual((m["topic"], m["qos"], m["retain"],
                          m["payloadlen"], m["payload"]),
                         (t + "/a", 0, 0, 11, 'say "hi"\n\t\\'))
        p = m["properties"]
        self.assertEqual(p["user-properties"],
                         [["k", "v"], ["k", "v"], ["k", "w"]])
        self.assertEqual(p["content-type"], "application/x")
        self.assertEqual(p["response-topic"], "r/t")
        self.assertNotIn("correlation-data", p)
        self.assertEqual(p["correlation-data-base64"], "//4=")
        self.assertEqual(p["subscription-identifiers"], [7])
        self.assertTrue(0 < p["message-expiry-interval"] <= 60)
        m = msgs[1]
        self.assertNotIn("payload", m)
        self.assertEqual(base64.b64decode(m["payload_base64"]),
                         b"\x00\xff bin")
        self.assertEqual(m["properties"], {"subscription-identifiers": [7]})
        m = msgs[2]
        self.assertEqual((m["payload"], m["payloadlen"]), ("", 0))

    def test_message_expiry(self):
        t = self.topic
        self.pub("-t", t + "/short", "-r", "-m", "gone",
                 "-D", "publish", "message-expiry-interval", "1")
        self.pub("-t", t + "/long", "-r", "-m", "kept",
                 "-D", "publish", "message-expiry-interval", "100")
        try:
            time.sleep(2.5)  # past the first message's expiry
            r = moat("sub", *self.conn(), "-t", t + "/#", "-C", "2",
                     "-W", "3", "-F", "%t %E %p")
            self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
            topic, expiry, payload = r.stdout.decode().split()
            self.assertEqual((topic, payload), (t + "/long", "kept"))
            self.assertTrue(0 < int(expiry) < 100, expiry)
        finally:
            for sub in ("/short", "/long"):
                self.pub("-t", t + sub, "-r", "-n")

    def test_session_expiry(self):
        cid = "moat5-sess-%d" % os.getpid()
        t = self.topic

        def sub(*args):
            return moat("sub", *self.conn(), "-i", cid, "-t", t, "-q", "1",
                        "-d", *args)
        try:
            # -c: a session that never expires; QoS 1 messages queue.
            self.assertEqual(sub("-c", "-W", "1").returncode, EXIT_TIMEOUT)
            self.pub("-t", t, "-q", "1", "-m", "queued")
            r = sub("-c", "-C", "1", "-W", "10")
            self.assertEqual((r.returncode, r.stdout), (0, b"queued\n"),
                             r.stderr)
            self.assertIn(b"resumed the session", r.stderr)
            # -x 1: the session ends a second after the connection.
            self.assertEqual(sub("-c", "-x", "1", "-W", "1").returncode,
                             EXIT_TIMEOUT)
            self.pub("-t", t, "-q", "1", "-m", "lost")
            time.sleep(2.5)
            r = sub("-c", "-W", "1")
            self.assertEqual((r.returncode, r.stdout), (EXIT_TIMEOUT, b""))
            self.assertIn(b"started a new session", r.stderr)
            # DISCONNECT with session expiry 0 ends it at once.
            s = self.sub_bg("-i", cid, "-t", t, "-c", "-C", "1",
                            "-D", "disconnect", "session-expiry-interval",
                            "0")
            self.pub("-t", t, "-m", "bye")
            self.assertEqual(s.finish()[:2], (0, b"bye\n"))
            r = sub("-c", "-W", "1")
            self.assertIn(b"started a new session", r.stderr)
        finally:
            moat("sub", *self.conn(), "-i", cid, "-t", t, "-W", "1")

    def test_topic_alias_from_server(self):
        s = self.sub_bg("-t", self.topic, "-C", "3", "-F", "%A|%t|%p",
                        "-D", "connect", "topic-alias-maximum", "2")
        for m in ("a", "b", "c"):
            self.pub("-t", self.topic, "-m", m)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.decode().splitlines(),
                         ["1|%s|%s" % (self.topic, m) for m in "abc"])
        self.assertIn(b"(topic alias 1)", err)

    def test_topic_alias_to_server(self):
        s = self.sub_bg("-t", self.topic, "-C", "3", "-v")
        r = self.pub("-t", self.topic, "-q", "1", "-l", "-d",
                     "-D", "publish", "topic-alias", "1",
                     stdin=b"one\ntwo\nthree\n")
        self.assertEqual(r.stderr.count(b"by topic alias"), 2, r.stderr)
        rc, out, err = s.finish()
        self.assertEqual((rc, out.decode()), (0, "".join(
            "%s %s\n" % (self.topic, m) for m in ("one", "two", "three"))))
        # Above the server's Topic Alias Maximum (10): refused, not sent.
        err = self.fails("pub", "-t", self.topic, "-m", "x",
                         "-D", "publish", "topic-alias", "11")
        self.assertIn(b"Topic Alias Maximum (10)", err)

    def test_subscription_identifier(self):
        s = self.sub_bg("-t", self.topic, "-C", "1", "-F", "%S %p",
                        "-D", "subscribe", "subscription-identifier", "42",
                        "-D", "subscribe", "user-property", "a", "b")
        self.pub("-t", self.topic, "-m", "x")
        self.assertEqual(s.finish()[:2], (0, b"42 x\n"))

    def test_no_local(self):
        # The publisher resumes the session that holds the subscription:
        # without --nl it gets its own message back (before its PUBCOMP).
        cid = "moat5-nl-%d" % os.getpid()
        t = self.topic
        try:
            for nl, echoed in ((["--nl"], False), ([], True)):
                r = moat("sub", *self.conn(), "-c", "-i", cid, "-t", t,
                         "-q", "2", *nl, "-W", "1")
                self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
                r = self.pub("-c", "-i", cid, "-t", t, "-q", "2", "-m",
                             "self", "-d")
                self.assertEqual(b"received PUBLISH" in r.stderr, echoed,
                                 (nl, r.stderr))
        finally:
            moat("sub", *self.conn(), "-i", cid, "-t", t, "-W", "1")

    def test_retain_as_published(self):
        t = self.topic
        try:
            for rap, flag in ((["--rap"], "1"), ([], "0")):
                self.pub("-t", t, "-r", "-m", "stored")
                s = self.sub_bg("-t", t, "-C", "2", "-F", "%r %p", *rap)
                self.pub("-t", t, "-r", "-m", "live")
                rc, out, err = s.finish()
                self.assertEqual((rc, out.decode()),
                                 (0, "1 stored\n%s live\n" % flag))
        finally:
            self.pub("-t", t, "-r", "-n")

    def test_retain_handling(self):
        t = self.topic
        cid = "moat5-rh-%d" % os.getpid()
        self.pub("-t", t, "-r", "-m", "stored")
        try:
            # 2: never the retained messages
            s = self.sub_bg("-t", t, "-C", "1", "--rh", "2")
            self.pub("-t", t, "-m", "fresh")
            self.assertEqual(s.finish()[:2], (0, b"fresh\n"))
            # 1: only for a new subscription, not in a resumed session
            r = moat("sub", *self.conn(), "-c", "-i", cid, "-t", t,
                     "--rh", "1", "-C", "1", "-W", "10")
            self.assertEqual((r.returncode, r.stdout), (0, b"stored\n"))
            s = self.sub_bg("-c", "-i", cid, "-t", t, "--rh", "1", "-C",
                            "1")
            self.pub("-t", t, "-m", "fresh")
            self.assertEqual(s.finish()[:2], (0, b"fresh\n"))
            # 0 (the default): always
            r = moat("sub", *self.conn(), "-c", "-i", cid, "-t", t,
                     "--rh", "0", "-C", "1", "-W", "10")
            self.assertEqual((r.returncode, r.stdout), (0, b"stored\n"))
        finally:
            self.pub("-t", t, "-r", "-n")
            moat("sub", *self.conn(), "-i", cid, "-t", t, "-W", "1")

    def test_refused_connection_reason(self):
        for tool in (["pub", "-m", "x"], ["sub"]):
            err = self.fails(tool[0], "-t", self.topic, *tool[1:], "-D",
                             "connect", "authentication-method", "SCRAM")
            self.assertIn(b"connection refused: Bad authentication method "
                          b"(0x8C)", err)

    def test_v5_to_a_broker_without_mqtt5(self):
        b = start_own_broker("mqtt5 false\n")
        try:
            r = moat("pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "5",
                     "-t", self.topic, "-m", "x")
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"unacceptable protocol version", r.stderr)
            self.assertIn(b"does not support MQTT 5", r.stderr)
        finally:
            stop_own_broker(b)

    def test_publish_refused_by_reason_code(self):
        for qos in ("1", "2"):
            err = self.fails("pub", "-t", "$SYS/moat-test", "-q", qos,
                             "-m", "x")
            self.assertIn(b"publish refused by the server: Not authorized "
                          b"(0x87)", err)
        # Payload format 1 with a payload that is not UTF-8: 0x99.
        err = self.fails("pub", "-t", self.topic, "-q", "1", "-s",
                         "-D", "publish", "payload-format-indicator", "1",
                         stdin=b"\xff")
        self.assertIn(b"Payload format invalid (0x99)", err)

    def test_maximum_packet_size_of_the_server(self):
        err = self.fails("pub", "-t", self.topic, "-q", "1", "-s",
                         stdin=b"x" * (1024 * 1024 + 1))
        self.assertIn(b"Maximum Packet Size is 1048576 bytes", err)

    def test_server_disconnect_reason(self):
        cid = "moat5-takeover-%d" % os.getpid()
        first = self.sub_bg("-i", cid, "-t", self.topic)
        second = self.sub_bg("-i", cid, "-t", self.topic)
        rc, out, err = first.finish()
        self.assertEqual(rc, 1, err)
        self.assertIn(b"disconnected by the server: Session taken over "
                      b"(0x8E)", err)
        second.proc.send_signal(signal.SIGTERM)
        self.assertEqual(second.finish()[0], 0)

    def test_suback_reason_codes(self):
        # max_subscriptions is 100: the 101st filter is refused (0x97).
        filters = []
        for i in range(101):
            filters += ["-t", "%s/%d" % (self.topic, i)]
        err = self.fails("sub", *filters, "-W", "10")
        self.assertIn(("subscription to '%s/100' refused by the broker: "
                       "Quota exceeded (0x97)" % self.topic).encode(), err)

    def test_assigned_client_id(self):
        r = self.pub("-i", "", "-t", self.topic, "-m", "x", "-d")
        m = re.search(rb"the server assigned the client id (\S+)", r.stderr)
        self.assertTrue(m, r.stderr)
        self.assertIn(b"client " + m.group(1) + b" sending PUBLISH", r.stderr)

    def test_server_limits_in_debug(self):
        r = self.pub("-t", self.topic, "-m", "x", "-d", "-k", "0")
        self.assertIn(b"server limits: receive maximum 20, maximum packet "
                      b"size 1048576, topic alias maximum 10", r.stderr)
        # keep-alive 0 is above max_keepalive: the server says 300.
        self.assertIn(b"keep-alive 300", r.stderr)

    def test_will_properties(self):
        wt = self.topic + "/will"
        watch = self.sub_bg("-t", wt, "-C", "1", "-F", "%p|%C|%P|%R")
        dying = self.sub_bg("-t", self.topic + "/x", "--will-topic", wt,
                            "--will-payload", "gone",
                            "-D", "will", "content-type", "text/plain",
                            "-D", "will", "user-property", "who", "me",
                            "-D", "will", "response-topic", "r",
                            "-D", "will", "will-delay-interval", "0")
        dying.proc.kill()
        dying.finish()
        rc, out, err = watch.finish()
        self.assertEqual((rc, out), (0, b"gone|text/plain|who:me|r\n"))

    def test_qos_flows_in_debug_output(self):
        r = self.pub("-t", self.topic, "-q", "2", "-m", "x", "-d")
        for step in (b"sending PUBLISH (d0, q2", b"received PUBREC",
                     b"sending PUBREL", b"received PUBCOMP",
                     b"sending DISCONNECT"):
            self.assertIn(step, r.stderr)
        r = self.pub("-t", self.topic, "-q", "1", "-m", "x", "-d")
        self.assertIn(b"received PUBACK", r.stderr)

    @unittest.skipUnless(HAVE_MOSQUITTO,
                         "mosquitto clients (or stdbuf) not installed")
    def test_interop_mosquitto_v5(self):
        t = self.topic
        # moat pub -V 5 -> mosquitto_sub -V mqttv5
        s = self.mosquitto_sub_bg("-V", "mqttv5", "-t", t, "-q", "1", "-C",
                                  "1", "-F", "%t|%p|%P|%C|%R|%D|%F")
        self.pub("-t", t, "-q", "1", "-m", "to mosquitto", *PUBLISH_PROPS)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.payloads(out), [(
            "%s|to mosquitto|k1:v1 k1:v2 k2:v3|text/plain|reply/to|corr-1|1"
            % t).encode()])
        # mosquitto_pub -V mqttv5 -> moat sub -V 5
        s = self.sub_bg("-t", t, "-q", "1", "-C", "1", "--json")
        r = subprocess.run(
            ["mosquitto_pub", *self.where(), "-V", "mqttv5", "-t", t, "-q",
             "1", "-m", "from mosquitto",
             "-D", "publish", "user-property", "a", "1",
             "-D", "publish", "user-property", "a", "2",
             "-D", "publish", "content-type", "text/x",
             "-D", "publish", "response-topic", "back/here",
             "-D", "publish", "correlation-data", "c-9",
             "-D", "publish", "message-expiry-interval", "50"],
            capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, out, err = s.finish()
        self.assertEqual(rc, 0, err)
        m = json.loads(out)
        self.assertEqual((m["topic"], m["payload"], m["qos"]),
                         (t, "from mosquitto", 1))
        p = m["properties"]
        self.assertEqual(p["user-properties"], [["a", "1"], ["a", "2"]])
        self.assertEqual((p["content-type"], p["response-topic"],
                          p["correlation-data"]),
                         ("text/x", "back/here", "c-9"))
        self.assertTrue(0 < p["message-expiry-interval"] <= 50)


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


class FakeRunner(unittest.TestCase):
    """Runs moat against a FakeBroker script (no tests here)."""

    def run_against(self, script, *args, tool="sub"):
        fake = FakeBroker(script)
        extra = ["-t", "t"] if tool == "sub" else ["-t", "t", "-m", "x"]
        r = moat(tool, "-h", "127.0.0.1", "-p", fake.port, *extra, *args)
        fake.join()
        # Whatever the server did, moat must exit, not crash.
        self.assertGreaterEqual(r.returncode, 0, r.stderr)
        return r, fake


class CliHostile(FakeRunner):

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

    def test_timeout_disconnects_cleanly(self):
        # -W ends with DISCONNECT (so the broker discards the will).
        r, fake = self.run_against(["expect:1", CONNACK_OK, "expect:8",
                                    suback(0), "expect:14", "sleep"],
                                   "-W", "1", "--will-topic", "w")
        self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
        self.assertIsNone(fake.error)

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


# ---- MQTT 5 packets for the fake broker ---------------------------------

def prop_u8(pid, v):
    return bytes([pid, v])


def prop_u16(pid, v):
    return bytes([pid]) + v.to_bytes(2, "big")


def prop_u32(pid, v):
    return bytes([pid]) + v.to_bytes(4, "big")


def prop_varint(pid, v):
    return bytes([pid]) + varint(v)


def prop_str(pid, s):
    return bytes([pid]) + mqtt_str(s)


def prop_user(k, v):
    return b"\x26" + mqtt_str(k) + mqtt_str(v)


def props(*items):
    """A property block: its length, then the properties."""
    b = b"".join(items)
    return varint(len(b)) + b


def connack5(reason=0, *items, present=0):
    return packet(0x20, bytes([present, reason]) + props(*items))


CONNACK5_OK = connack5()


def suback5(*codes, block=props()):
    """A step: the v5 SUBACK for the last SUBSCRIBE received."""
    def step(got):
        body = [b for f, b in got if f >> 4 == SUBSCRIBE][-1]
        return packet(0x90, body[:2] + block + bytes(codes))
    return step


def publish5(topic, payload, qos=0, pid=0, block=props(), retain=False):
    body = mqtt_str(topic) + (pid.to_bytes(2, "big") if qos else b"")
    return packet(0x30 | (qos << 1) | int(retain), body + block + payload)


def ack5(first, reason, block=b""):
    """A step: PUBACK/PUBREC/PUBCOMP (first byte) with a reason code for
    the packet id of the last PUBLISH received (topic "t")."""
    def step(got):
        body = [b for f, b in got if f >> 4 == PUBLISH][-1]
        return packet(first, body[3:5] + bytes([reason]) + block)
    return step


def connect_props(body):
    """The property block of a v5 CONNECT body, and what follows it."""
    assert body[:7] == b"\x00\x04MQTT\x05", body
    pos, n, mult = 10, 0, 1
    while True:
        b = body[pos]
        pos += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return body[pos:pos + n], body[pos + n:]


class CliHostile5(FakeRunner):
    """MQTT 5 against the scripted fake broker: the packets moat sends, and
    what it does with refusals and hostile input."""

    def run5(self, script, *args, tool="sub"):
        return self.run_against(script, "-V", "5", *args, tool=tool)

    def test_connect_packet(self):
        r, fake = self.run5(["expect:1", connack5(0x87), "sleep"],
                            "-x", "30", "-D", "connect", "receive-maximum",
                            "10", "-D", "connect", "user-property", "a", "b",
                            "-u", "me", "-P", "pw", "--will-topic", "w",
                            "--will-payload", "bye",
                            "-D", "will", "will-delay-interval", "5",
                            "-i", "cid", "-k", "30")
        self.assertEqual(r.returncode, 1)
        body = fake.got[0][1]
        self.assertEqual(body[7:10], b"\xc6\x00\x1e")  # flags, keep-alive
        block, rest = connect_props(body)
        self.assertEqual(block, prop_u32(0x11, 30) + prop_u16(0x21, 10) +
                         prop_user(b"a", b"b"))
        self.assertEqual(rest, mqtt_str(b"cid") + props(prop_u32(0x18, 5)) +
                         mqtt_str(b"w") + mqtt_str(b"bye") +
                         mqtt_str(b"me") + mqtt_str(b"pw"))

    def test_persistent_session_never_expires(self):
        _, fake = self.run5(["expect:1", connack5(0x87), "sleep"],
                            "-c", "-i", "cid")
        body = fake.got[0][1]
        self.assertEqual(body[7] & 0x02, 0)  # Clean Start 0
        self.assertEqual(connect_props(body)[0],
                         prop_u32(0x11, 0xFFFFFFFF))
        _, fake = self.run5(["expect:1", connack5(0x87), "sleep"])
        body = fake.got[0][1]
        self.assertEqual((body[7] & 0x02, connect_props(body)[0]),
                         (2, b""))

    def test_subscribe_packet(self):
        script = ["expect:1", CONNACK5_OK, "expect:8", suback5(1, 1),
                  "expect:14", "sleep"]
        r, fake = self.run5(script, "-q", "1", "--nl", "--rap", "--rh", "2",
                            "-t", "u/#", "-W", "1",
                            "-D", "subscribe", "subscription-identifier",
                            "300", "-D", "subscribe", "user-property", "k",
                            "v")
        self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
        first, body = fake.got[1]
        self.assertEqual(first, 0x82)
        self.assertEqual(body[2:], props(prop_varint(0x0B, 300),
                                         prop_user(b"k", b"v")) +
                         mqtt_str(b"t") + b"\x2d" + mqtt_str(b"u/#") +
                         b"\x2d")

    def test_publish_and_disconnect_packets(self):
        script = ["expect:1", connack5(0, prop_u16(0x22, 5)), "expect:3",
                  "expect:3", "expect:14", "sleep"]
        fake = FakeBroker(script)
        r = moat("pub", "-h", "127.0.0.1", "-p", fake.port, "-V", "5",
                 "-t", "t/1", "-l", "-x", "60",
                 "-D", "publish", "topic-alias", "5",
                 "-D", "publish", "content-type", "c",
                 "-D", "disconnect", "session-expiry-interval", "0",
                 "-D", "disconnect", "reason-string", "done",
                 stdin=b"a\nb\n")
        fake.join()
        self.assertEqual(r.returncode, 0, r.stderr)
        block = props(prop_u16(0x23, 5), prop_str(0x03, b"c"))
        self.assertEqual(fake.got[1], (0x30, mqtt_str(b"t/1") + block + b"a"))
        self.assertEqual(fake.got[2], (0x30, mqtt_str(b"") + block + b"b"))
        self.assertEqual(fake.got[3], (0xE0, b"\x00" + props(
            prop_u32(0x11, 0), prop_str(0x1F, b"done"))))

    def test_connack_refusals_by_name(self):
        texts = {0x80: b"Unspecified error (0x80)",
                 0x84: b"Unsupported Protocol Version (0x84)",
                 0x86: b"Bad User Name or Password (0x86)",
                 0x87: b"Not authorized (0x87)",
                 0x8C: b"Bad authentication method (0x8C)",
                 0x97: b"Quota exceeded (0x97)",
                 0xFE: b"unknown reason code (0xFE)"}
        for code, text in texts.items():
            r, _ = self.run5(["expect:1", connack5(code), "sleep"])
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"connection refused: " + text, r.stderr)
        # The reason string and server reference are shown, escaped.
        r, _ = self.run5(["expect:1", connack5(
            0x9C, prop_str(0x1F, b"go \x1b[31maway"),
            prop_str(0x1C, b"other:1883")), "sleep"], tool="pub")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"connection refused: Use another server (0x9C): "
                      b"go \\x1b[31maway (server reference: other:1883)",
                      r.stderr)
        self.assertNotIn(b"\x1b", r.stderr)

    def test_connack_from_a_311_server(self):
        r, _ = self.run5(["expect:1", packet(0x20, b"\x00\x01"), "sleep"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"unacceptable protocol version (CONNACK code 1): "
                      b"the server does not support MQTT 5", r.stderr)

    def test_suback_reason_codes(self):
        r, _ = self.run5(["expect:1", CONNACK5_OK, "expect:8",
                          suback5(0x87, block=props(prop_str(0x1F, b"no"))),
                          "sleep"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"subscription to 't' refused by the broker: Not "
                      b"authorized (0x87): no", r.stderr)

    def test_ack_reason_codes(self):
        ok = {"PUBACK 0x10": (["expect:1", CONNACK5_OK, "expect:3",
                               ack5(0x40, 0x10), "expect:14", "sleep"],
                              "1"),
              "PUBACK long form": (["expect:1", CONNACK5_OK, "expect:3",
                                    ack5(0x40, 0, props()), "expect:14",
                                    "sleep"], "1")}
        for name, (script, qos) in ok.items():
            with self.subTest(name):
                r, fake = self.run5(script, "-q", qos, tool="pub")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIsNone(fake.error)
        r, fake = self.run5(["expect:1", CONNACK5_OK, "expect:3",
                             ack5(0x40, 0x97,
                                  props(prop_str(0x1F, b"slow down"))),
                             "expect:14", "sleep"], "-q", "1", tool="pub")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"publish refused by the server: Quota exceeded "
                      b"(0x97): slow down", r.stderr)
        self.assertIsNone(fake.error)  # and it still said DISCONNECT
        # A PUBREC error ends the exchange: no PUBREL.
        r, fake = self.run5(["expect:1", CONNACK5_OK, "expect:3",
                             ack5(0x50, 0x80), "expect:14", "sleep"],
                            "-q", "2", tool="pub")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"Unspecified error (0x80)", r.stderr)
        self.assertIsNone(fake.error)
        r, fake = self.run5(["expect:1", CONNACK5_OK, "expect:3",
                             ack5(0x50, 0), "expect:6", ack5(0x70, 0x92),
                             "expect:14", "sleep"], "-q", "2", tool="pub")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"Packet Identifier not found (0x92)", r.stderr)

    def test_server_disconnect(self):
        r, _ = self.run5(["expect:1", CONNACK5_OK, "expect:8", suback5(0),
                          packet(0xE0, b"\x8b" + props(
                              prop_str(0x1F, b"maintenance"))), "sleep"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"disconnected by the server: Server shutting down "
                      b"(0x8B): maintenance", r.stderr)
        r, _ = self.run5(["expect:1", CONNACK5_OK, "expect:8", suback5(0),
                          packet(0xE0), "sleep"])
        self.assertIn(b"disconnected by the server: Normal disconnection "
                      b"(0x00)", r.stderr)

    def test_server_keepalive_is_used(self):
        script = ["expect:1", connack5(0, prop_u16(0x13, 1)), "expect:8",
                  suback5(0), "expect:12", packet(0xD0), "expect:12",
                  "close"]
        r, fake = self.run5(script, "-k", "600", "-W", "15")
        self.assertIsNone(fake.error)
        self.assertEqual(r.returncode, 1)

    def test_topic_alias_and_subscription_ids(self):
        script = ["expect:1", CONNACK5_OK, "expect:8", suback5(0),
                  publish5(b"a/b", b"one", block=props(
                      prop_u16(0x23, 2), prop_varint(0x0B, 1),
                      prop_varint(0x0B, 268435455))),
                  publish5(b"", b"two", block=props(prop_u16(0x23, 2))),
                  publish5(b"c", b"three", block=props(prop_u16(0x23, 2))),
                  publish5(b"", b"four", block=props(prop_u16(0x23, 2))),
                  "expect:14", "sleep"]
        r, fake = self.run5(script, "-C", "4", "-F", "%t %p %S",
                            "-D", "connect", "topic-alias-maximum", "2")
        self.assertEqual((r.returncode, r.stdout),
                         (0, b"a/b one 1 268435455\na/b two \nc three \n"
                             b"c four \n"), r.stderr)
        r, fake = self.run5(script[:5] + ["expect:14", "sleep"], "-C", "1",
                            "--json", "-D", "connect", "topic-alias-maximum",
                            "2")
        self.assertEqual(json.loads(r.stdout)["properties"],
                         {"topic-alias": 2,
                          "subscription-identifiers": [1, 268435455]})

    def test_malformed_v5_server_input(self):
        after_sub = ["expect:1", CONNACK5_OK, "expect:8", suback5(0)]
        alias_ok = ("-D", "connect", "topic-alias-maximum", "5")
        # name: (script, extra args, DISCONNECT reason moat sends or None)
        cases = {
            "CONNACK props past the end": (
                ["expect:1", packet(0x20, b"\x00\x00\x05\x21\x00")], (),
                None),
            "CONNACK props varint too long": (
                ["expect:1", packet(0x20, b"\x00\x00\xff\xff\xff\xff\x01")],
                (), None),
            "CONNACK no property length": (
                ["expect:1", packet(0x20, b"\x00\x00")], (), None),
            "CONNACK unknown property": (
                ["expect:1", connack5(0, b"\x7f\x00")], (), None),
            "CONNACK property of PUBLISH": (
                ["expect:1", connack5(0, prop_u8(0x01, 1))], (), None),
            "CONNACK duplicate property": (
                ["expect:1", connack5(0, prop_u16(0x21, 5),
                                      prop_u16(0x21, 5))], (), None),
            "CONNACK receive maximum 0": (
                ["expect:1", connack5(0, prop_u16(0x21, 0))], (), None),
            "CONNACK maximum packet size 0": (
                ["expect:1", connack5(0, prop_u32(0x27, 0))], (), None),
            "CONNACK reason 0x05": (["expect:1", connack5(5)], (), None),
            "CONNACK refusal with session present": (
                ["expect:1", connack5(0x87, present=1)], (), None),
            "CONNACK bad flags": (
                ["expect:1", connack5(0, present=2)], (), None),
            "CONNACK trailing bytes": (
                ["expect:1", packet(0x20, b"\x00\x00\x00\x00")], (), None),
            "CONNACK reason string not UTF-8": (
                ["expect:1", connack5(0, prop_str(0x1F, b"\xc0\x80"))], (),
                None),
            "CONNACK truncated string": (
                ["expect:1", packet(0x20, b"\x00\x00\x05\x1f\x00\x09ab")],
                (), None),
            "AUTH": (["expect:1", packet(0xF0, b"\x18\x00")], (), None),
            "AUTH bad flags": (["expect:1", packet(0xF1, b"")], (), None),
            "SUBACK bad props": (
                ["expect:1", CONNACK5_OK, "expect:8",
                 suback5(0, block=props(b"\x26\x00"))], (), 0x81),
            "SUBACK reason 0x05": (
                ["expect:1", CONNACK5_OK, "expect:8", suback5(5)], (),
                0x82),
            "SUBACK without codes": (
                ["expect:1", CONNACK5_OK, "expect:8", suback5()], (), 0x81),
            "PUBLISH topic alias 0": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_u16(0x23, 0)))], alias_ok, 0x82),
            "PUBLISH topic alias not allowed": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_u16(0x23, 1)))], (), 0x94),
            "PUBLISH topic alias above ours": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_u16(0x23, 6)))], alias_ok, 0x94),
            "PUBLISH unknown topic alias": (
                after_sub + [publish5(b"", b"x", block=props(
                    prop_u16(0x23, 3)))], alias_ok, 0x82),
            "PUBLISH empty topic": (
                after_sub + [publish5(b"", b"x")], (), 0x82),
            "PUBLISH subscription id 0": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_varint(0x0B, 0)))], (), 0x82),
            "PUBLISH session expiry": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_u32(0x11, 0)))], (), 0x81),
            "PUBLISH user property not UTF-8": (
                after_sub + [publish5(b"t", b"x", block=props(
                    prop_user(b"k", b"\xed\xa0\x80")))], (), 0x81),
            "PUBLISH props past the end": (
                after_sub + [packet(0x30, mqtt_str(b"t") + b"\x64\x01")],
                (), 0x81),
            "PUBLISH props 5-byte varint": (
                after_sub + [packet(0x30, mqtt_str(b"t") +
                                    b"\xff\xff\xff\xff\x01")], (), 0x81),
            "PUBLISH wildcard topic": (
                after_sub + [publish5(b"t/+", b"x")], (), 0x82),
            "PUBLISH above our maximum packet size": (
                after_sub + [publish5(b"t", b"x" * 100)],
                ("-D", "connect", "maximum-packet-size", "64"), 0x95),
            "PUBREL bad props": (
                after_sub + [packet(0x62, b"\x00\x01\x00\x03\x1f\x00")],
                (), 0x81),
            "PUBACK unexpected with bad props": (
                after_sub + [packet(0x40, b"\x00\x01\x00\x02\x26\x00")],
                (), 0x81),
            "DISCONNECT bad props": (
                after_sub + [packet(0xE0, b"\x8b\x05\x1f")], (), 0x81),
            "DISCONNECT property of CONNECT": (
                after_sub + [packet(0xE0, b"\x00" + props(
                    prop_u16(0x21, 1)))], (), 0x81),
            "DISCONNECT before CONNACK": (
                ["expect:1", packet(0xE0, b"\x8b\x00")], (), None),
        }
        for name, (script, extra, reason) in cases.items():
            with self.subTest(name):
                tail = ["expect:14", "sleep"] if reason else ["sleep"]
                r, fake = self.run5(script + tail, "-W", "10", *extra)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr)
                self.assertEqual(r.stdout, b"")
                if reason:
                    self.assertIsNone(fake.error, r.stderr)
                    self.assertEqual(fake.got[-1],
                                     (0xE0, bytes([reason, 0])), r.stderr)

    def test_pub_malformed_acks(self):
        cases = {
            "PUBACK props past the end": packet(0x40, b"\x00\x01\x00\x09"),
            "PUBACK property of CONNACK": packet(0x40, b"\x00\x01\x00" +
                                                 props(prop_u16(0x21, 1))),
            "PUBACK trailing bytes": packet(0x40, b"\x00\x01\x00\x00\x00"),
            "PUBACK id 0": packet(0x40, b"\x00\x00"),
        }
        for name, bad in cases.items():
            with self.subTest(name):
                r, fake = self.run5(["expect:1", CONNACK5_OK, "expect:3",
                                     bad, "sleep"], "-q", "1", tool="pub")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr)

    def test_random_garbage_never_crashes(self):
        import random
        rng = random.Random(5)
        for i in range(40):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(
                1, 64)))
            if i % 2:  # a plausible packet type with a random body
                junk = packet(rng.choice([0x20, 0x30, 0x32, 0x40, 0x50,
                                          0x62, 0x70, 0x90, 0xB0, 0xE0]),
                              junk)
            with self.subTest(i=i):
                r, _ = self.run5(["expect:1", CONNACK5_OK, "expect:8",
                                  suback5(0), junk, "close"], "-W", "10",
                                 "-F", "%t %p %P %S %C %D %j")
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
