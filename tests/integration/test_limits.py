"""moatd's configured limits and the behaviour at them, over raw MQTT.

Each case drives the real moatd over loopback with hand-built packets and
checks what docs/configuration.md ("Limits and what happens at them") and
docs/mqtt.md promise.  Every case also checks that the broker keeps
serving others: a "guard" subscriber connected before the case (or, where
the case itself counts sessions or descriptors, one connected after it)
must still receive a publish from another client afterwards.

Only loopback traffic; every socket has a timeout and every wait is
bounded.  No timing is asserted beyond generous upper bounds.
"""
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    u16, publish_packet, subscribe_packet, unsubscribe_packet, ack,
    parse_publish, CONNACK_OK, CONNACK_OK_PRESENT, CONNACK_ID_REJECTED,
    CONNACK_UNAVAILABLE, CONNACK_NOT_AUTHORIZED, PINGREQ, PINGRESP,
    DISCONNECT, cid_on, read_until_close, send_quietly, MOATD, START_TIMEOUT,
    Broker, BrokerTest, connect_packet, expect_closed, password_file_text,
    raw_connect, read_packet, recv_exact, wait_for)

WORKERS = 2
TIMEOUT = 5.0



# ---- helpers -------------------------------------------------------------























class PacketStream:
    """Splits a byte stream read in arbitrary pieces into MQTT packets."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if len(self.buf) < 2:
                return out
            mult, value, i = 1, 0, 1
            while True:
                if i >= len(self.buf):
                    return out
                b = self.buf[i]
                value += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(self.buf) < i + value:
                return out
            out.append((self.buf[0], bytes(self.buf[i:i + value])))
            del self.buf[:i + value]


def log_lines_with(log, needle):
    return [line for line in log.splitlines() if needle in line]


def close_lines(log, cid):
    """The log lines saying client cid was disconnected."""
    pat = re.compile(r" client %s \(\S+\) disconnected: " % re.escape(cid))
    return [line for line in log.splitlines() if pat.search(line)]


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- base class ----------------------------------------------------------

class Clients:
    """Raw-client helpers for a test case with self.port."""
    workers = WORKERS

    def init_clients(self):
        self._socks = []
        self._n = 0
        self.tag = self._testMethodName

    def close_clients(self):
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        self._socks = []

    def uid(self, what="c"):
        self._n += 1
        return "%s-%s-%d" % (what, self.tag, self._n)

    def sock(self, rcvbuf=None):
        if rcvbuf is None:
            s = raw_connect(self.port, TIMEOUT)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", self.port))
        self._socks.append(s)
        return s

    def client(self, cid=None, clean=True, keepalive=60, will=None,
               present=False, rcvbuf=None):
        """A connected client; asserts the exact CONNACK."""
        s = self.sock(rcvbuf)
        s.sendall(connect_packet(cid if cid is not None else self.uid(),
                                 clean=clean, keepalive=keepalive,
                                 will=will))
        self.assertEqual(recv_exact(s, 4),
                         CONNACK_OK_PRESENT if present else CONNACK_OK)
        return s

    def connack(self, cid, clean=True, keepalive=60, will=None):
        """Send a CONNECT on a new connection; returns (socket, CONNACK
        bytes, or b"" when closed without one)."""
        s = self.sock()
        send_quietly(s, connect_packet(cid, clean=clean,
                                       keepalive=keepalive, will=will))
        s.settimeout(TIMEOUT)
        data = b""
        try:
            while len(data) < 4:
                chunk = s.recv(4 - len(data))
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return s, data

    def disconnect(self, s):
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s), "not closed after DISCONNECT")
        s.close()

    def expect(self, s, data):
        self.assertEqual(recv_exact(s, len(data)), data)

    def subscribe(self, s, filters, pid=1):
        """SUBSCRIBE and return the SUBACK return codes."""
        s.sendall(subscribe_packet(pid, filters))
        first, body = read_packet(s)
        self.assertEqual(first, 0x90)
        self.assertEqual(body[:2], u16(pid))
        return list(body[2:])

    def take_publish(self, s, first, body):
        p = parse_publish(first, body)
        if p["qos"] == 1:
            s.sendall(ack("puback", p["pid"]))
        elif p["qos"] == 2:
            s.sendall(ack("pubrec", p["pid"]))
        return p

    def sync(self, s):
        """PINGREQ and read up to the PINGRESP; returns the publishes
        received before it (the broker answers packets in order)."""
        s.sendall(PINGREQ)
        got = []
        while True:
            first, body = read_packet(s)
            if first == 0xD0:
                self.assertEqual(body, b"")
                return got
            if first == 0x62:
                s.sendall(ack("pubcomp", int.from_bytes(body, "big")))
                continue
            got.append(self.take_publish(s, first, body))

    def next_publish(self, s, timeout=TIMEOUT):
        s.settimeout(timeout)
        while True:
            first, body = read_packet(s)
            if first == 0x62:
                s.sendall(ack("pubcomp", int.from_bytes(body, "big")))
                continue
            return self.take_publish(s, first, body)

    def watcher(self, filters, worker=0):
        """A subscriber (QoS 0) whose retained backlog has been drained."""
        s = self.client(cid_on(self.uid("watch"), worker, self.workers))
        self.assertEqual(self.subscribe(s, [(f, 0) for f in filters]),
                         [0] * len(filters))
        self.sync(s)
        return s

    def publish(self, topic, payload, qos=0, retain=False, worker=0):
        """Publish from a fresh well-behaved client homed on worker.  On
        the subscribers' worker (0), a QoS 1 message has been delivered
        to their output by the time the PUBACK comes, so a sync() after
        it sees the message; across workers it may still be in transit
        (use next_publish then)."""
        s = self.client(cid_on(self.uid("pub"), worker % self.workers,
                               self.workers))
        s.sendall(publish_packet(topic, payload, qos=qos, pid=1,
                                 retain=retain))
        if qos == 1:
            self.expect(s, ack("puback", 1))
        self.disconnect(s)

    def until_marker(self, s, marker_topic):
        """Publish a marker and return every publish s gets before it."""
        marker = ("marker-" + self.uid()).encode()
        self.publish(marker_topic, marker)
        seen = []
        while True:
            p = self.next_publish(s)
            if p["payload"] == marker:
                return seen
            seen.append(p)

    def assert_closed_silently(self, s, timeout=TIMEOUT):
        closed, data = read_until_close(s, timeout)
        self.assertTrue(closed, "connection not closed within %ss" % timeout)
        self.assertEqual(data, b"", "unexpected response before the close")

    def assert_refused(self, s, data, connack):
        """A CONNECT answered with this CONNACK, then a close."""
        self.assertEqual(data, connack)
        self.assert_closed_silently(s)

    # -- proving the broker still serves others --

    def start_guard(self):
        self.guard_topic = "guard/" + self.tag
        self.guard = self.client(cid_on("guard-" + self.tag, 0,
                                        self.workers))
        self.assertEqual(self.subscribe(self.guard, [(self.guard_topic, 1)]),
                         [1])

    def assert_serving(self, broker):
        self.assertTrue(broker.alive(),
                        "broker died:\n" + broker.read_log()[-4000:])
        if getattr(self, "guard", None) is None:
            self.start_guard()
        payload = ("still-serving-" + self.tag).encode()
        self.publish(self.guard_topic, payload, qos=1, worker=1)
        p = self.next_publish(self.guard)
        self.assertEqual((p["topic"], p["payload"], p["qos"]),
                         (self.guard_topic.encode(), payload, 1))
        self.disconnect(self.guard)
        self.guard = None
        self.assertTrue(broker.alive())


class LimitCase(Clients, BrokerTest):
    """One broker per class; a guard subscriber connected before each
    case (unless guard_first is False, for cases that count sessions)
    must still get a publish after it."""
    workers = WORKERS
    broker_config = ""
    guard_first = True

    def setUp(self):
        super().setUp()
        self.init_clients()
        self.guard = None
        if self.guard_first:
            self.start_guard()

    def tearDown(self):
        try:
            self.assert_serving(self.broker)
        finally:
            self.close_clients()
        super().tearDown()

    def log(self):
        return self.broker.read_log()


# ---- max_subscriptions ---------------------------------------------------

class SubscriptionLimitTests(LimitCase):
    broker_config = "max_subscriptions 3\nsys_interval 0\n"

    def test_filters_beyond_max_subscriptions_in_one_packet(self):
        # max_subscriptions 3: the first three filters of one SUBSCRIBE
        # are granted, the rest get 0x80; only the granted ones deliver.
        topic = "ms/" + self.tag
        s = self.client(cid_on(self.uid("ms"), 0))
        codes = self.subscribe(s, [(topic + "/a", 0), (topic + "/b", 1),
                                   (topic + "/c", 2), (topic + "/d", 1),
                                   (topic + "/e", 0)])
        self.assertEqual(codes, [0, 1, 2, 0x80, 0x80])
        for leaf in "abcde":
            self.publish(topic + "/" + leaf, b"to-" + leaf.encode(), qos=1)
        got = [p["payload"] for p in self.sync(s)]
        # messages from different publishers: compare as a set
        self.assertEqual(sorted(got), [b"to-a", b"to-b", b"to-c"])
        self.disconnect(s)

    def test_repeated_filter_sends_retained_once(self):
        # A filter repeated in one SUBSCRIBE is one subscription (the
        # last QoS wins) and its retained messages are sent once.
        prefix = "r/" + self.tag
        self.publish(prefix + "/1", b"ret-1", qos=1, retain=True)
        self.publish(prefix + "/2", b"ret-2", qos=1, retain=True)
        s = self.client(cid_on(self.uid("rep"), 0))
        self.assertEqual(self.subscribe(s, [(prefix + "/#", 0),
                                            (prefix + "/#", 1)]), [0, 1])
        got = self.sync(s)
        self.assertEqual(sorted(p["payload"] for p in got),
                         [b"ret-1", b"ret-2"], "retained sent %d times"
                         % len(got))
        self.assertTrue(all(p["retain"] for p in got))
        self.assertEqual({p["qos"] for p in got}, {1})  # last QoS wins
        # one subscription: a live message arrives once
        self.publish(prefix + "/3", b"live", qos=1)
        got = self.sync(s)
        self.assertEqual([p["payload"] for p in got], [b"live"])
        self.disconnect(s)
        # clear the retained messages
        self.publish(prefix + "/1", b"", retain=True)
        self.publish(prefix + "/2", b"", retain=True)


# ---- output_buffer_size: slow and stopped readers -------------------------

class Streamer(threading.Thread):
    """Publishes 1 KB QoS 0 messages (numbered) on a connected socket
    until stopped, for at most `seconds` and `limit` messages."""

    def __init__(self, sock, topic, seconds, limit, batch=10):
        super().__init__(daemon=True)
        self.sock, self.topic = sock, topic
        self.seconds, self.limit, self.batch = seconds, limit, batch
        self.stop = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        end = time.monotonic() + self.seconds
        try:
            while (not self.stop.is_set() and time.monotonic() < end and
                   self.sent < self.limit):
                batch = b"".join(
                    publish_packet(self.topic, b"%08d" % (self.sent + i) +
                                   b"." * 1016)
                    for i in range(self.batch))
                self.sock.sendall(batch)
                self.sent += self.batch
                time.sleep(0.01)  # about batch * 100 KB/s
        except OSError as e:
            self.error = e


class BackPressureTests(LimitCase):
    broker_config = "output_buffer_size 4k\nsys_interval 0\n"

    def stream(self, topic, seconds, limit, batch=10):
        p = self.client(cid_on(self.uid("stream"), 1))
        t = Streamer(p, topic, seconds, limit, batch)
        t.start()
        self.addCleanup(t.join, 10)
        self.addCleanup(t.stop.set)
        return t

    def test_live_slow_subscriber_is_not_disconnected(self):
        # A subscriber that reads slowly but steadily (4 KB every 50 ms)
        # and pings every second: back-pressure stops reading it while
        # its output is full, its silence then is not held against it,
        # and since it keeps taking bytes it is not closed: it is still
        # connected at the end and answers a PINGREQ.
        topic = "slow/" + self.tag
        cid = cid_on(self.uid("slow"), 0)
        sub = self.client(cid, keepalive=2)
        self.assertEqual(self.subscribe(sub, [(topic, 0)]), [0])
        # about 3 MB/s: loopback send buffers (up to 4 MB) fill within
        # ~2 s, so back-pressure holds for most of the stream
        streamer = self.stream(topic, seconds=6.0, limit=20000, batch=30)
        ps = PacketStream()
        seqs, pings, pongs = [], 0, 0
        start = time.monotonic()

        def take(data):
            nonlocal pongs
            if not data:
                raise ConnectionError("EOF")
            for first, body in ps.feed(data):
                if first == 0xD0:
                    pongs += 1
                else:
                    seqs.append(int(parse_publish(first, body)
                                    ["payload"][:8]))

        def dropped(e, when):
            self.fail("the live slow subscriber was disconnected (%s) %s, "
                      "%.1f s after the stream started; broker log: %s"
                      % (e, when, time.monotonic() - start,
                         close_lines(self.log(), cid)))

        next_ping = start + 1.0
        sub.settimeout(0.2)
        try:
            while time.monotonic() < start + 6.0:
                try:
                    take(sub.recv(4096))
                except socket.timeout:
                    pass
                if time.monotonic() >= next_ping:
                    sub.sendall(PINGREQ)
                    pings += 1
                    next_ping += 1.0
                time.sleep(0.05)
        except ConnectionError as e:
            dropped(e, "while reading slowly")
        streamer.stop.set()
        streamer.join(10)
        self.assertIsNone(streamer.error)
        self.assertGreater(streamer.sent, 3000, "the publisher was slowed")
        # a final PINGREQ: every PINGREQ is answered once the backlog
        # (bounded by max_queued_messages and the socket buffers) is read
        deadline = time.monotonic() + 15.0
        sub.settimeout(1.0)
        try:
            sub.sendall(PINGREQ)
            pings += 1
            while pongs < pings and time.monotonic() < deadline:
                try:
                    take(sub.recv(65536))
                except socket.timeout:
                    pass
        except ConnectionError as e:
            dropped(e, "while draining")
        self.assertEqual(pongs, pings, "PINGREQs left unanswered")
        self.assertTrue(seqs, "the slow subscriber got nothing")
        self.assertEqual(seqs, sorted(set(seqs)), "out of order")
        self.assertEqual(close_lines(self.log(), cid), [],
                         "the live slow subscriber was disconnected")
        self.disconnect(sub)

    def test_subscriber_that_stops_reading_is_closed(self):
        # Two subscribers (keep-alive 2) that never read what they are
        # sent, while a publisher streams to them: both are closed within
        # 15 s (1.5 x keep-alive without taking bytes), and the broker
        # keeps serving.  "silent" also sends nothing, so it may be closed
        # for its keep-alive; "pinger" keeps pinging, so only the
        # stopped-reading rule can close it.
        topic = "stop/" + self.tag
        silent_id = cid_on(self.uid("silent"), 0)
        pinger_id = cid_on(self.uid("pinger"), 0)
        silent = self.client(silent_id, keepalive=2, rcvbuf=4096)
        pinger = self.client(pinger_id, keepalive=2, rcvbuf=4096)
        self.assertEqual(self.subscribe(silent, [(topic, 0)]), [0])
        self.assertEqual(self.subscribe(pinger, [(topic, 0)]), [0])
        streamer = self.stream(topic, seconds=15.0, limit=20000)

        def closed_line(cid):
            return close_lines(self.log(), cid)

        deadline = time.monotonic() + 15.0
        next_ping = time.monotonic() + 0.5
        while time.monotonic() < deadline and not (
                closed_line(silent_id) and closed_line(pinger_id)):
            if time.monotonic() >= next_ping:
                send_quietly(pinger, PINGREQ)
                next_ping += 1.0
            time.sleep(0.05)
        streamer.stop.set()
        streamer.join(10)
        self.assertTrue(closed_line(silent_id),
                        "silent non-reader not closed within 15 s")
        self.assertTrue(closed_line(pinger_id),
                        "pinging non-reader not closed within 15 s; "
                        "silent one: %s" % closed_line(silent_id))
        self.assertIn("client stopped reading", closed_line(pinger_id)[0])
        self.assertRegex(closed_line(silent_id)[0],
                         "client stopped reading|keep-alive timeout")
        self.assertTrue(self.broker.alive())


# ---- out of file descriptors ----------------------------------------------

class FdLimitedBroker(Broker):
    """moatd started with RLIMIT_NOFILE soft = hard = nofile."""

    def __init__(self, nofile, *args, **kw):
        super().__init__(*args, **kw)
        self.nofile = nofile

    def start(self):
        nofile = self.nofile

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MOATD, "-c", self.conf, "-v"] + self.args,
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            log = self.read_log()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log)
            if m and "running with" in log:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("moatd exited early:\n" + log)
            time.sleep(0.02)
        raise RuntimeError("moatd did not start:\n" + log)


class FdLimitTests(Clients, unittest.TestCase):
    def setUp(self):
        self.init_clients()
        self.guard = None

    def tearDown(self):
        self.close_clients()

    def flood(self, b, n, hold):
        """Open n connections, keep them hold seconds, close them.
        Returns (CPU seconds moatd used meanwhile, wall seconds, new
        "refusing connections" warnings)."""
        warned = len(log_lines_with(b.read_log(), "refusing connections"))
        cpu0 = cpu_seconds(b.proc.pid)
        t0 = time.monotonic()
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection(
                    ("127.0.0.1", b.port), timeout=TIMEOUT))
            time.sleep(hold)
            cpu = cpu_seconds(b.proc.pid) - cpu0
            elapsed = time.monotonic() - t0
            self.assertTrue(b.alive(), b.read_log()[-4000:])
            # clients connected before are served meanwhile
            payload = ("during-" + self.uid()).encode()
            self.pub.sendall(publish_packet(self.guard_topic, payload,
                                            qos=1, pid=1))
            self.expect(self.pub, ack("puback", 1))
            self.assertEqual(self.next_publish(self.guard)["payload"],
                             payload)
        finally:
            for s in socks:
                s.close()
        warnings = len(log_lines_with(b.read_log(),
                                      "refusing connections")) - warned
        return cpu, elapsed, warnings

    def assert_connects(self):
        """A new client gets CONNACK 0 (the broker may still be closing
        the flood: retried, bounded)."""
        got = []

        def connects():
            s, data = self.connack(self.uid("after"))
            got.append(data)
            if data == CONNACK_OK:
                self.disconnect(s)
            s.close()
            return data == CONNACK_OK

        self.assertTrue(wait_for(connects, timeout=5.0, interval=0.1),
                        "no CONNACK after the flood: %r" % got[-3:])

    def test_out_of_file_descriptors(self):
        # With 64 descriptors, 100 connections run moatd out of them:
        # the ones it cannot take are closed at once, the warning comes
        # at most once a second per worker, moatd does not spin, and once
        # the connections are gone it serves new clients.  Four times:
        # running out must not use up whatever lets it shed connections.
        with FdLimitedBroker(64, "sys_interval 0\n", WORKERS) as b:
            self.port = b.port
            self.start_guard()
            self.pub = self.client(cid_on(self.uid("pub"), 1))
            for rnd, hold in ((1, 2.0), (2, 1.0), (3, 1.0), (4, 1.0)):
                with self.subTest(round=rnd):
                    cpu, elapsed, warnings = self.flood(b, 100, hold)
                    self.assertGreaterEqual(
                        warnings, 1, "descriptors never ran out: the test "
                        "proves nothing")
                    # a spinning worker uses ~100% of a CPU; accepting
                    # and shedding 100 connections takes milliseconds
                    self.assertLess(cpu, 0.5 * elapsed,
                                    "moatd used %.2f s of CPU in %.2f s "
                                    "out of descriptors" % (cpu, elapsed))
                    self.assertLessEqual(warnings, 5 if rnd == 1 else 4,
                                         "warning not rate-limited")
                    self.assert_connects()
            self.disconnect(self.pub)
            self.assert_serving(b)


# ---- the default broker ----------------------------------------------------

class DefaultLimitTests(LimitCase):
    """Default configuration ($SYS on, max_connect_packet_size 16k)."""

    def test_max_connect_packet_size(self):
        # A CONNECT over max_connect_packet_size (16k by default, will
        # included) is closed without CONNACK; under it is accepted; once
        # connected, max_packet_size (1m) applies instead.
        big_will = ("will/" + self.tag, b"W" * 20 * 1024, 0, False)
        s = self.sock()
        send_quietly(s, connect_packet(self.uid(), will=big_will))
        self.assert_closed_silently(s)
        self.assertIn("exceeds max_connect_packet_size", self.log())
        s = self.client(will=("will/" + self.tag, b"w" * 15 * 1024, 0,
                              False))
        topic = "big/" + self.tag
        w = self.watcher([topic])
        s.sendall(publish_packet(topic, b"P" * 20 * 1024, qos=1, pid=1))
        self.expect(s, ack("puback", 1))
        self.assertEqual(self.next_publish(w)["payload"], b"P" * 20 * 1024)
        self.disconnect(s)
        # with max_connect_packet_size 64k the same CONNECT is accepted
        with Broker("max_connect_packet_size 64k\nsys_interval 0\n",
                    WORKERS) as other:
            c = raw_connect(other.port, TIMEOUT)
            try:
                c.sendall(connect_packet(self.uid(), will=big_will))
                self.assertEqual(recv_exact(c, 4), CONNACK_OK)
                c.sendall(PINGREQ)
                self.assertEqual(recv_exact(c, 2), PINGRESP)
                c.sendall(DISCONNECT)
                self.assertTrue(expect_closed(c))
            finally:
                c.close()

    def test_unsubscribe_invalid_filter_closes(self):
        # An invalid topic filter in UNSUBSCRIBE is a protocol violation
        # [MQTT-4.7.3-1] [MQTT-4.7.1-1]: closed, no UNSUBACK.
        for f in ("a/#/b", "a+", "", "#/a", "a/b#"):
            with self.subTest(filter=f):
                s = self.client()
                self.assertEqual(self.subscribe(s, [("u/" + self.tag, 0)]),
                                 [0])
                send_quietly(s, unsubscribe_packet(2, ["u/" + self.tag, f]))
                self.assert_closed_silently(s)
        # a valid one still works
        s = self.client()
        s.sendall(unsubscribe_packet(3, ["u/" + self.tag, "a/+/b"]))
        self.expect(s, ack("unsuback", 3))

    def test_pubrec_for_qos1_message_is_a_protocol_violation(self):
        # A PUBREC for a message the broker sent at QoS 1 closes the
        # connection (docs/mqtt.md); the will is published.
        topic = "pubrec/" + self.tag
        will_topic = "pubrec-will/" + self.tag
        w = self.watcher([will_topic])
        s = self.client(cid_on(self.uid("rec"), 0),
                        will=(will_topic, b"violated", 0, False))
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.publish(topic, b"q1", qos=1)
        s.settimeout(TIMEOUT)
        first, body = read_packet(s)
        p = parse_publish(first, body)
        self.assertEqual((p["qos"], p["payload"]), (1, b"q1"))
        s.sendall(ack("pubrec", p["pid"]))
        closed, data = read_until_close(s)
        self.assertTrue(closed, "PUBREC for a QoS 1 message accepted")
        self.assertNotIn(b"\x62\x02", data, "answered with PUBREL")
        self.assertEqual(self.next_publish(w)["payload"], b"violated")

    def test_keepalive_zero_accepted(self):
        # Keep-alive 0 (none) is legal in 3.1.1 [MQTT-3.1.2-10]: accepted
        # (TCP keep-alive probes watch the peer instead).
        for clean in (True, False):
            with self.subTest(clean=clean):
                s, data = self.connack(self.uid(), clean=clean, keepalive=0)
                self.assertEqual(data, CONNACK_OK)
                s.sendall(PINGREQ)
                self.assertEqual(recv_exact(s, 2), PINGRESP)
                s.sendall(DISCONNECT)
                s.close()

    def test_client_id_escaped_in_log(self):
        # Control bytes in a client id are escaped in the log (\xNN), so
        # a client cannot forge log lines or send terminal escapes.
        raw_id = "esc\nforged: line\x1b[31m-" + self.tag
        s = self.client(raw_id)
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)
        self.disconnect(s)
        escaped = "esc\\x0aforged: line\\x1b[31m-" + self.tag

        def lines():
            return [line for line in self.log().splitlines()
                    if escaped in line]

        self.assertTrue(wait_for(lambda: len(lines()) >= 2),
                        "no escaped log lines:\n" + self.log()[-3000:])
        connected = [line for line in lines() if " connected from " in line]
        self.assertEqual(len(connected), 1, lines())
        self.assertRegex(connected[0], r"^\d{4}-\d\d-\d\dT.* info: client "
                         + re.escape(escaped) + r" connected from "
                         r"127\.0\.0\.1:\d+ \(")
        self.assertTrue(any("client sent DISCONNECT" in line
                            for line in lines()), lines())
        log = self.log()
        self.assertNotIn("\x1b", log)
        # the text after the newline never starts a line of its own
        self.assertEqual([line for line in log.splitlines()
                          if line.startswith("forged: line")], [])


# ---- $SYS and wills (needs an admin) ------------------------------------

# $SYS is readable only by an authenticated user with an ACL grant, so the
# watcher of the next case logs in as one; everyone may use other topics.
SYS_ADMIN, SYS_ADMIN_PW = "sys-admin", "Sy5#Adm1n!Watch8"


class SysWillTests(LimitCase):
    broker_config = "password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
    broker_files = {
        "passwd": password_file_text({SYS_ADMIN: SYS_ADMIN_PW}),
        "acl": ("topic readwrite #\n"
                "topic readwrite $SYSTEM/#\n"
                "user %s\n"
                "topic readwrite #\n"
                "topic readwrite $SYS/#\n" % SYS_ADMIN),
    }

    def admin(self, cid=None):
        s = self.sock()
        s.sendall(connect_packet(cid or self.uid("admin"), user=SYS_ADMIN,
                                 password=SYS_ADMIN_PW))
        self.expect(s, CONNACK_OK)
        return s

    def admin_connack(self, cid, will):
        s = self.sock()
        send_quietly(s, connect_packet(cid, will=will, user=SYS_ADMIN,
                                       password=SYS_ADMIN_PW))
        closed, data = read_until_close(s, TIMEOUT)
        return closed, data

    def test_will_topic_in_sys_refused(self):
        # A will on a $SYS topic is refused with CONNACK 0x05 and a close,
        # so no client can forge broker statistics with a will, not even
        # one the ACL lets read and write $SYS/#.
        marker_topic = "sysmark/" + self.tag
        s = self.admin(cid_on(self.uid("sys"), 0))
        self.assertEqual(self.subscribe(s, [("$SYS/broker/version", 0),
                                            (marker_topic, 0)]), [0, 0])
        # the broker's own value (retained, or the first publish)
        p = self.next_publish(s)
        self.assertEqual(p["topic"], b"$SYS/broker/version")
        self.assertTrue(p["payload"].startswith(b"moat "), p["payload"])
        for topic in ("$SYS/broker/version", "$SYS", "$SYS/x/y"):
            with self.subTest(will_topic=topic):
                for retain in (False, True):
                    c, data = self.connack(
                        self.uid(), will=(topic, b"forged", 0, retain))
                    self.assert_refused(c, data, CONNACK_NOT_AUTHORIZED)
                    closed, data = self.admin_connack(
                        self.uid(), will=(topic, b"forged", 0, retain))
                    self.assertEqual(data, CONNACK_NOT_AUTHORIZED)
                    self.assertTrue(closed)
        # a will on a topic that merely starts with "$SYS" is allowed
        c, data = self.connack(self.uid(),
                               will=("$SYSTEM/x", b"ok", 0, False))
        self.assertEqual(data, CONNACK_OK)
        self.disconnect(c)
        # nor can a client publish there (acknowledged, not delivered)
        for c in (self.client(), self.admin()):
            c.sendall(publish_packet("$SYS/broker/version", b"forged",
                                     qos=1, retain=True))
            self.expect(c, ack("puback", 1))
            self.disconnect(c)
        seen = self.until_marker(s, marker_topic)
        self.assertNotIn(b"forged", [q["payload"] for q in seen])
        late = self.admin()
        self.assertEqual(self.subscribe(late, [("$SYS/broker/version", 0)]),
                         [0])
        got = self.sync(late)
        self.assertTrue(got, "no retained $SYS/broker/version")
        for q in got:
            self.assertTrue(q["payload"].startswith(b"moat "), q["payload"])


# ---- max_sessions --------------------------------------------------------

class SessionLimitTests(LimitCase):
    broker_config = "max_sessions 3\nsys_interval 0\n"
    guard_first = False  # the guard would take a session

    def connect_ok(self, cid, clean, present=False):
        """CONNECT expected to succeed.  A clean session is ended just
        after its connection closes, so a session freed a moment ago may
        still count: retry on 0x03 for up to 5 s."""
        got = []

        def attempt():
            s, data = self.connack(cid, clean=clean)
            got.append((s, data))
            if data == (CONNACK_OK_PRESENT if present else CONNACK_OK):
                return True
            s.close()
            return False

        self.assertTrue(wait_for(attempt, timeout=5.0, interval=0.05),
                        "CONNACK %r for %s" % (got[-1][1], cid))
        return got[-1][0]

    def test_max_sessions(self):
        # max_sessions 3 counts sessions connected or not: a CONNECT that
        # needs a new one gets CONNACK 0x03; existing sessions resume.
        persistent = [self.uid("p") for _ in range(3)]
        for cid in persistent:
            s = self.client(cid, clean=False)
            self.assertEqual(self.subscribe(s, [("sess/" + cid, 1)]), [1])
            self.disconnect(s)
        # a fourth session, persistent or clean, or with an assigned id
        for cid, clean in ((self.uid("new"), False), (self.uid("new"), True),
                           ("", True)):
            with self.subTest(cid=cid, clean=clean):
                s, data = self.connack(cid, clean=clean)
                self.assert_refused(s, data, CONNACK_UNAVAILABLE)
        self.assertIn("max_sessions reached", self.log())
        # existing sessions resume, with their subscriptions (publishing
        # needs a session too: p1 publishes to p0)
        s = self.client(persistent[0], clean=False, present=True)
        p = self.client(persistent[1], clean=False, present=True)
        p.sendall(publish_packet("sess/" + persistent[0], b"to-p0", qos=1))
        self.expect(p, ack("puback", 1))
        self.assertEqual(self.next_publish(s)["payload"], b"to-p0")
        self.disconnect(p)
        self.disconnect(s)
        # a clean session with an existing id replaces that session...
        s = self.client(persistent[1], clean=True, present=False)
        # ... and counts while connected
        c, data = self.connack(self.uid("new"), clean=True)
        self.assert_refused(c, data, CONNACK_UNAVAILABLE)
        self.disconnect(s)
        # it ended with its connection: room for one new session
        s = self.connect_ok(self.uid("new"), clean=True)
        c, data = self.connack(self.uid("new"), clean=True)
        self.assert_refused(c, data, CONNACK_UNAVAILABLE)
        self.disconnect(s)
        # the others are unaffected
        s = self.connect_ok(persistent[2], clean=False, present=True)
        self.disconnect(s)
        # clean up, leaving room for the serving check's two clients
        for cid in (persistent[0], persistent[2]):
            s = self.connect_ok(cid, clean=True)
            self.disconnect(s)
        self.assertTrue(wait_for(lambda: self.connack_probe(), 5.0, 0.05))

    def connack_probe(self):
        """Two clean clients can connect at once (the serving check)."""
        a, da = self.connack(self.uid("probe"))
        b, db = self.connack(self.uid("probe"))
        ok = da == CONNACK_OK and db == CONNACK_OK
        for s, d in ((a, da), (b, db)):
            if d == CONNACK_OK:
                s.sendall(DISCONNECT)
                expect_closed(s)
            s.close()
        return ok


# ---- persistent_client_expiration ----------------------------------------

class ExpirationTests(LimitCase):
    broker_config = "persistent_client_expiration 1\nsys_interval 0\n"

    def test_disconnected_session_expires(self):
        # A clean-session-0 session disconnected for longer than
        # persistent_client_expiration (checked every second) is
        # discarded: the next CONNECT gets session present 0.
        topic = "exp/" + self.tag
        cid = cid_on(self.uid("exp"), 0)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.disconnect(s)
        # a persistent client that stays connected is not expired
        kept_id = cid_on(self.uid("kept"), 1)
        kept = self.client(kept_id, clean=False)
        self.assertEqual(self.subscribe(kept, [(topic, 1)]), [1])
        time.sleep(3.5)  # no reconnect: that would renew the session
        self.assertTrue(wait_for(
            lambda: "client %s: session expired" % cid in self.log(),
            timeout=2.5), "no 'session expired' within 6 s")
        s = self.client(cid, clean=False, present=False)
        self.publish(topic, b"after-expiry", qos=1)
        self.assertEqual(self.next_publish(kept)["payload"],
                         b"after-expiry")
        self.assertEqual(self.sync(s), [], "the expired subscription "
                         "survived")
        self.assertNotIn("client %s: session expired" % kept_id, self.log())
        self.disconnect(kept)
        kept = self.client(kept_id, clean=False, present=True)
        self.disconnect(kept)
        self.disconnect(s)
        for c in (cid, kept_id):
            self.disconnect(self.client(c, clean=True))


# ---- retained limits -------------------------------------------------------

class RetainedCountTests(LimitCase):
    # sys_interval 0: the broker's own retained $SYS topics would count
    broker_config = "max_retained_messages 2\nsys_interval 0\n"

    def retained(self, flt):
        s = self.client()
        self.assertEqual(self.subscribe(s, [(flt, 0)]), [0])
        got = self.sync(s)
        self.assertTrue(all(p["retain"] for p in got))
        self.disconnect(s)
        return sorted((p["topic"].decode(), p["payload"]) for p in got)

    def test_max_retained_messages(self):
        t = "t/" + self.tag
        live = self.watcher([t + "/#"])
        for n in (1, 2, 3):
            self.publish("%s/%d" % (t, n), b"v%d" % n, qos=1, retain=True)
        got = [(p["topic"].decode(), p["payload"], p["retain"])
               for p in self.sync(live)]
        self.assertEqual(sorted(got), [(t + "/1", b"v1", False),
                                       (t + "/2", b"v2", False),
                                       (t + "/3", b"v3", False)])
        self.assertEqual(self.retained(t + "/#"),
                         [(t + "/1", b"v1"), (t + "/2", b"v2")])
        # replacing a kept one still works when full
        self.publish(t + "/1", b"v1-new", qos=1, retain=True)
        self.assertEqual(self.retained(t + "/#"),
                         [(t + "/1", b"v1-new"), (t + "/2", b"v2")])
        # deleting one makes room
        self.publish(t + "/2", b"", qos=1, retain=True)
        self.publish(t + "/3", b"v3-again", qos=1, retain=True)
        self.publish(t + "/4", b"v4", qos=1, retain=True)  # full again
        self.assertEqual(self.retained(t + "/#"),
                         [(t + "/1", b"v1-new"), (t + "/3", b"v3-again")])
        self.assertEqual(len(log_lines_with(self.log(),
                                            "retained store full")), 1)
        self.sync(live)
        for n in (1, 3):
            self.publish("%s/%d" % (t, n), b"", retain=True)


class RetainedBytesTests(LimitCase):
    broker_config = "max_retained_bytes 1k\nsys_interval 0\n"

    def test_max_retained_bytes(self):
        t = "tb/" + self.tag
        live = self.watcher([t + "/#"])
        self.publish(t + "/big", b"B" * 2048, qos=1, retain=True)
        self.assertEqual(self.next_publish(live)["payload"], b"B" * 2048)
        self.publish(t + "/small", b"s" * 100, qos=1, retain=True)
        self.assertEqual(self.next_publish(live)["payload"], b"s" * 100)
        s = self.client()
        self.assertEqual(self.subscribe(s, [(t + "/#", 0)]), [0])
        got = [(p["topic"].decode(), p["payload"]) for p in self.sync(s)]
        self.assertEqual(got, [(t + "/small", b"s" * 100)])
        self.assertEqual(len(log_lines_with(self.log(),
                                            "retained store full")), 1)
        self.publish(t + "/small", b"", retain=True)


# ---- assigned client ids ---------------------------------------------------

class AssignedIdTests(LimitCase):
    workers = 1
    broker_config = "sys_interval 0\n"

    def test_assigned_id_never_takes_an_existing_session(self):
        # A client may itself pick an id like the ones moatd assigns; an
        # empty-id client then gets another one, and the persistent
        # session is not replaced.  (The first assigned id would be
        # auto-0000000000000000.)
        cid = "auto-0000000000000000"
        topic = "auto/" + self.tag
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.disconnect(s)
        anon = [self.client("", clean=True) for _ in range(3)]
        s = self.client(cid, clean=False, present=True)
        self.publish(topic, b"still-mine", qos=1, worker=0)
        self.assertEqual(self.next_publish(s)["payload"], b"still-mine")
        for a in anon:  # none was taken over
            a.sendall(PINGREQ)
            self.expect(a, PINGRESP)
        ids = re.findall(r"client (auto-[0-9a-f]{16}) connected from",
                         self.log())
        self.assertEqual(ids.count(cid), 2, ids)  # the persistent one
        assigned = [i for i in ids if i != cid]
        self.assertEqual(len(assigned), 3, ids)
        self.assertEqual(len(set(assigned)), 3, ids)
        for a in anon:
            self.disconnect(a)
        self.disconnect(s)
        self.disconnect(self.client(cid, clean=True))


if __name__ == "__main__":
    unittest.main()
