"""Hostile clients against the real moatd (issue "Robustness").

A catalogue of misbehaving peers, each driven over loopback against a real
broker (workers 2).  Every case asserts

  (a) what the offender gets: the reason code moatd documents
      (docs/mqtt.md "Protocol violations" and "MQTT 5.0", docs/security.md
      "Limits"): an MQTT 5 CONNACK or DISCONNECT reason, a 3.1.1 CONNACK
      code, or a close without a word;
  (b) that the broker stays up;
  (c) that other clients keep being served: a "canary" subscriber,
      connected for the whole class, gets a fresh message published by a
      separate well-behaved client after every case
      (HostileCase.assert_canary, run by tearDown and in the middle of
      the long cases);
  (d) that the broker's resident memory stays under the group's stated
      bound: VmRSS after every case, VmRSS sampled every 20 ms for the
      whole class, and VmHWM at its end.  Each group prints the figures
      it observed to stderr ("[hostile] ...") so that they can be quoted.
      With a sanitizer build (ASan keeps freed memory in quarantine) the
      figures are printed but not asserted.

Groups, one broker (one class) each:
  1. MalformedCatalogueTests: a table (CASES, 223 entries) of malformed and
     forbidden packets, before CONNECT, in CONNECT, and after CONNECT for
     3.1.1 and MQTT 5, plus garbage; one generated test method per entry
     (test_pre_*, test_v311_*, test_v5_*).
  2. ConnectionFloodTests: 3 rounds of 300 connections, half of them
     sending CONNECT.
  3. SlowPeerTests (connect_timeout 2): slowloris sockets trickling a
     CONNECT, silent sockets, and clients that connect and then neither
     read nor send.
  4. SlowSubscriberTests: subscribers that never read while 30 MiB are
     published to them.
  5. ManySubscriptionsTests (max_subscriptions 5000): 5000 overlapping
     subscriptions, and 1 MiB SUBSCRIBE and UNSUBSCRIBE packets.
  6. DeepTopicDefaultTests and DeepTopicTests (max_topic_levels 1000).
  7. QoS2ExhaustionTests: QoS 2 packet ids never released.
  8. BigPropertiesTests: 10000 and more user properties, huge CONNECT
     properties.
  9. WebSocketHostileTests (a protocol websockets listener, connect_timeout
     2, and a second canary subscribed over WebSocket): bad Upgrade
     requests, 1 MiB of headers, slow headers, wrong or missing
     Sec-WebSocket-Key, unmasked frames, a 2^63 frame length, reserved
     opcodes and bits, endless continuation frames, control frames over
     125 bytes, text frames, ping floods, disallowed Origins.

Two cases were broker bugs this suite found, fixed since (see the comments
above test_pinging_subscribers_that_never_read_qos1 and
test_subscription_identifiers_of_5000_overlapping_subscriptions).

Only loopback traffic; every loop is bounded in count and in time; no
timing is asserted beyond generous deadlines.
"""
import os
import random
import re
import shutil
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    WsStream, ws_binary, ws_connect, ws_frame, ws_read_response,
    ws_request, MOATD, HOST, BrokerTest, CONNACK_OK, DISCONNECT, PINGREQ, PINGRESP,
    ack, as_bytes, cid_on, connect_packet, expect_closed, mqtt_str, packet,
    parse_publish, peer_closed, proc_status_kib, publish_packet,
    raw_connect, read_packet, read_until_close, recv_exact,
    split_stream, subscribe_packet, u16, varint)
from test_mqtt5 import (  # noqa: E402
    NOPROPS, AUTH_METHOD, CONTENT_TYPE, MAXIMUM_PACKET_SIZE,
    MESSAGE_EXPIRY, PAYLOAD_FORMAT, RECEIVE_MAXIMUM, SESSION_EXPIRY,
    SUBSCRIPTION_ID, TOPIC_ALIAS, USER_PROPERTY, WILL_DELAY, connect5,
    disconnect5, p_byte, p_str, p_u16, p_u32, p_user, p_var, parse_ack5,
    parse_props, parse_publish5, parse_reason, props, publish5,
    subscribe5, unsubscribe5)

WORKERS = 2
TIMEOUT = 5.0          # bound for one exchange
MiB = 1024 * 1024
KiB = 1024
SAMPLE_INTERVAL = 0.02  # RSS sampling period, seconds

# ---- memory bounds ---------------------------------------------------------
# moatd (workers 2, RelWithDebInfo, glibc) idles at about 6.4 MiB RSS.
# Each bound is the peak (VmHWM) observed on a 2-core machine, quoted in
# its comment, with generous headroom, so that allocator noise never trips
# it while a per-connection or per-packet leak, or a buffer not bounded by
# the documented limits, does.

# Malformed catalogue: every case is one small connection; observed
# VmHWM 6.8 MiB.
RSS_MALFORMED_MIB = 64
# 3 rounds of 300 connections (150 CONNECTed) all open at once: 7.0 MiB.
RSS_FLOOD_MIB = 64
# Slowloris, silent and half-open sockets (90 in all): 7.8 MiB.
RSS_SLOW_PEER_MIB = 64
# Two subscribers that never read while 30 MiB of 64 KiB messages (QoS 0
# and 1) are published to them: what moatd may hold for each is bounded
# by output_buffer_size (1m) + the in-flight window (20 x 64k) +
# max_queued_bytes (16m); the queued messages are shared by the two
# queues.  Worst case, with nothing shared, about 6.4 + 2 x 18.3 + 1 (the
# publisher's input buffer) = 44 MiB; observed 25-26 MiB.
RSS_SLOW_SUBSCRIBER_MIB = 64
# 5000 + 5001 subscriptions, and 1 MiB SUBSCRIBE / UNSUBSCRIBE packets:
# moatd lists every filter of a packet (64 bytes each, sized for the
# most a packet can hold) before acting on any, so a 1 MiB UNSUBSCRIBE of
# 2-byte empty filters briefly takes ~33 MiB on its worker, and glibc
# keeps a worker's arena at that peak afterwards.  Observed VmHWM 43-45
# MiB in this class (85 MiB after repeating it on both workers).
RSS_SUBSCRIPTIONS_MIB = 128
# Topics and retained messages of 1000 levels: 7.4 MiB.
RSS_DEEP_TOPIC_MIB = 64
# 65535 QoS 2 packet ids awaiting PUBREL on one 3.1.1 session (a bitmap of
# 8 KiB), and 1000 persistent sessions with one pending id each (9 KiB a
# session): observed VmHWM 15.1 MiB; the growth while the 65535 ids pile
# up stays under QOS2_GROWTH_MIB (observed 0-1.2 MiB), the cost of a
# session with a pending id under QOS2_SESSION_KIB.
RSS_QOS2_MIB = 64
QOS2_GROWTH_MIB = 8
QOS2_SESSION_KIB = 32
# PUBLISHes with 10000 and ~150000 user properties (up to 1 MiB each),
# delivered: observed VmHWM 9.8 MiB.
RSS_BIG_PROPS_MIB = 64
# WebSocket catalogue: small connections, 1 MiB of headers (refused at
# 8 KiB), a ping flood of 20000 pings: observed VmHWM 7.6 MiB.
RSS_WEBSOCKET_MIB = 64


def _is_sanitized(path):
    """True for an ASan/TSan build of moatd (RSS bounds do not apply)."""
    exe = shutil.which(path) or path
    try:
        with open(exe, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__tsan_init" in data


SANITIZED = _is_sanitized(MOATD)


def note(msg):
    sys.stderr.write("[hostile] %s\n" % msg)
    sys.stderr.flush()


def mib(kib):
    return (kib or 0) / 1024.0


# ---- small helpers ----------------------------------------------------------

def send_hostile(s, data):
    """Send what the broker may refuse half-way: it may close (reset) or
    stop reading first.  Returns the bytes that went out."""
    view = memoryview(as_bytes(data))
    sent = 0
    try:
        while sent < len(view):
            sent += s.send(view[sent:sent + 65536])
    except OSError:
        pass
    return sent


def close_with_reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def describe(pkts):
    return [(hex(f), b[:24]) for f, b in pkts]


def close_lines(log, cid):
    """The log lines saying client cid was disconnected."""
    pat = re.compile(r" client %s \(\S+\) disconnected: " % re.escape(cid))
    return [line for line in log.splitlines() if pat.search(line)]


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every SAMPLE_INTERVAL until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            v = proc_status_kib(self.pid, "VmRSS")
            if v is None:
                return
            self.peak_kib = max(self.peak_kib, v)
            self.halt.wait(SAMPLE_INTERVAL)

    def stop(self):
        self.halt.set()
        self.join(5)


# ---- base class -------------------------------------------------------------

class HostileCase(BrokerTest):
    """One broker per class, a canary subscriber for the whole class and
    an RSS sampler.  Subclasses set group and rss_bound_mib."""
    workers = WORKERS
    broker_config = "sys_interval 0\n"
    group = "?"
    rss_bound_mib = 64

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.pid = cls.broker.proc.pid
            cls.rss_start_kib = proc_status_kib(cls.pid, "VmRSS")
            cls.rss_case_max_kib = cls.rss_start_kib
            cls.sampler = RssSampler(cls.pid)
            cls.sampler.start()
            cls.canary_seq = 0
            cls.canary_topic = "canary/" + cls.__name__
            # keep-alive 300 (max_keepalive): idle for the whole class
            cls.canary = raw_connect(cls.port, TIMEOUT)
            cls.canary.sendall(connect_packet(
                cid_on("canary-" + cls.__name__, 0), keepalive=300))
            if recv_exact(cls.canary, 4) != CONNACK_OK:
                raise AssertionError("canary not connected")
            cls.canary.sendall(subscribe_packet(1, [(cls.canary_topic, 1)]))
            if read_packet(cls.canary) != (0x90, b"\x00\x01\x01"):
                raise AssertionError("canary not subscribed")
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        hwm = proc_status_kib(cls.pid, "VmHWM")
        rss = proc_status_kib(cls.pid, "VmRSS")
        cls.sampler.stop()
        peak = max(cls.sampler.peak_kib, rss or 0, cls.rss_case_max_kib or 0)
        note("%s: VmRSS at start %.1f MiB, peak %.1f MiB (sampled), at end "
             "%.1f MiB, VmHWM %.1f MiB; bound %d MiB%s"
             % (cls.group, mib(cls.rss_start_kib), mib(peak), mib(rss),
                mib(hwm), cls.rss_bound_mib,
                " (not asserted: sanitizer build)" if SANITIZED else ""))
        try:
            cls.canary.close()
        except OSError:
            pass
        error = None
        if not SANITIZED and hwm is not None and \
                hwm > cls.rss_bound_mib * 1024:
            error = ("%s: broker VmHWM %.1f MiB above the %d MiB bound"
                     % (cls.group, mib(hwm), cls.rss_bound_mib))
        super().tearDownClass()
        if error:
            raise AssertionError(error)

    def setUp(self):
        super().setUp()
        self._socks = []
        self._n = 0
        self.tag = self._testMethodName

    def tearDown(self):
        try:
            self.assert_canary()
            self.check_rss()
        finally:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        super().tearDown()

    # -- memory --

    def rss_kib(self):
        return proc_status_kib(self.pid, "VmRSS") or 0

    def check_rss(self, what=None):
        v = self.rss_kib()
        cls = type(self)
        cls.rss_case_max_kib = max(cls.rss_case_max_kib or 0, v)
        if not SANITIZED:
            self.assertLessEqual(
                v, self.rss_bound_mib * 1024,
                "%s: broker VmRSS %.1f MiB above the %d MiB bound"
                % (what or self.tag, mib(v), self.rss_bound_mib))
        return v

    # -- the canary --

    def assert_canary(self):
        """The broker is up and the canary gets a fresh QoS 1 message from
        a new well-behaved client (homed on alternating workers)."""
        self.assertTrue(self.broker.alive(),
                        "broker died:\n" + self.broker.read_log()[-4000:])
        cls = type(self)
        cls.canary_seq += 1
        seq = cls.canary_seq
        payload = ("canary-%d-%s" % (seq, self.tag)).encode()
        pub = self.connect3(cid_on("canary-pub-%s-%d" % (cls.__name__, seq),
                                   seq % 2))
        pub.sendall(publish_packet(self.canary_topic, payload, qos=1, pid=1))
        self.assertEqual(read_packet(pub), (0x40, u16(1)))
        pub.sendall(DISCONNECT)
        self.assertTrue(expect_closed(pub))
        deadline = time.monotonic() + TIMEOUT
        c = self.canary
        while True:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "the canary got nothing after %s"
                               % self.tag)
            c.settimeout(left)
            try:
                first, body = read_packet(c)
            except (OSError, ConnectionError) as e:
                self.fail("the canary lost its connection after %s: %s\n%s"
                          % (self.tag, e, self.broker.read_log()[-3000:]))
            if first >> 4 != 3:
                continue
            p = parse_publish(first, body)
            if p["qos"] == 1:
                c.sendall(ack("puback", p["pid"]))
            if p["payload"] == payload:
                return

    # -- connections --

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
            s.connect((HOST, self.port))
        self._socks.append(s)
        return s

    def connect3(self, cid=None, keepalive=60, rcvbuf=None, clean=True):
        """A connected 3.1.1 client."""
        s = self.sock(rcvbuf)
        s.sendall(connect_packet(cid if cid is not None else self.uid(),
                                 keepalive=keepalive, clean=clean))
        self.assertEqual(recv_exact(s, 4), CONNACK_OK)
        return s

    def connect5(self, cid=None, keepalive=60, cprops=NOPROPS, rcvbuf=None):
        """A connected MQTT 5 client; returns the socket."""
        s = self.sock(rcvbuf)
        s.sendall(connect5(cid if cid is not None else self.uid(),
                           keepalive=keepalive, cprops=cprops))
        first, body = read_packet(s)
        self.assertEqual(first, 0x20, "expected CONNACK, got 0x%02x" % first)
        self.assertEqual(body[1], 0, "CONNACK reason 0x%02x" % body[1])
        return s

    def connect(self, v, cid=None, **kw):
        return (self.connect5 if v == 5 else self.connect3)(cid, **kw)

    def subscribe(self, v, s, filters, pid=1):
        """SUBSCRIBE [(filter, options)]; returns the SUBACK codes."""
        s.sendall(sub_v(v, pid, filters))
        s.settimeout(TIMEOUT)
        first, body = read_packet(s)
        self.assertEqual(first, 0x90, "expected SUBACK, got 0x%02x" % first)
        self.assertEqual(body[:2], u16(pid))
        if v == 5:
            _, end = parse_props(body, 2)
            return list(body[end:])
        return list(body[2:])

    def unsubscribe(self, v, s, filters, pid=1):
        """UNSUBSCRIBE; returns the UNSUBACK codes (3.1.1: [])."""
        s.sendall(unsub_v(v, pid, filters))
        s.settimeout(TIMEOUT)
        first, body = read_packet(s)
        self.assertEqual(first, 0xB0, "expected UNSUBACK, got 0x%02x" % first)
        self.assertEqual(body[:2], u16(pid))
        if v == 5:
            _, end = parse_props(body, 2)
            return list(body[end:])
        return []

    def publish(self, topic, payload, qos=1, v=4, worker=1, pprops=NOPROPS):
        """Publish from a fresh well-behaved client; returns the PUBACK's
        reason (QoS 1) or None."""
        s = self.connect(v, cid_on(self.uid("pub"), worker))
        s.sendall(pub_v(v, topic, payload, qos=qos, pid=1, pprops=pprops))
        reason = None
        if qos == 1:
            first, body = read_packet(s)
            self.assertEqual(first, 0x40)
            reason = parse_ack5(body)[1] if v == 5 else 0
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        return reason

    def next_publish(self, v, s, timeout=TIMEOUT):
        """The next PUBLISH on s (acknowledged), skipping PINGRESPs."""
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            first, body = read_packet(s)
            if first >> 4 != 3:
                self.assertLess(time.monotonic(), deadline)
                continue
            p = parse_publish5(first, body) if v == 5 else \
                parse_publish(first, body)
            if p["qos"] == 1:
                s.sendall(ack("puback", p["pid"]))
            return p

    def sync(self, v, s, timeout=TIMEOUT):
        """PINGREQ; the publishes that arrive before the PINGRESP."""
        s.sendall(PINGREQ)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            first, body = read_packet(s)
            if first == 0xD0:
                return got
            self.assertEqual(first >> 4, 3, "unexpected 0x%02x" % first)
            p = parse_publish5(first, body) if v == 5 else \
                parse_publish(first, body)
            if p["qos"] == 1:
                s.sendall(ack("puback", p["pid"]))
            got.append(p)

    def expect_reason_close(self, v, s, reasons, timeout=TIMEOUT):
        """3.1.1: closed without a word.  MQTT 5: the last packet is a
        DISCONNECT with one of reasons, then the close."""
        closed, data = read_until_close(s, timeout)
        self.assertTrue(closed, "not closed within %ss" % timeout)
        pkts, _ = split_stream(data)
        if v != 5:
            self.assertEqual(data, b"", "unexpected bytes before the close")
            return
        self.assertTrue(pkts, "closed without a DISCONNECT")
        first, body = pkts[-1]
        self.assertEqual(first, 0xE0, "expected DISCONNECT, got %r"
                         % describe(pkts))
        self.assertIn(parse_reason(body)[0], reasons)

    def log(self):
        return self.broker.read_log()


# ---- packet builders for both versions --------------------------------------

V3, V5 = 4, 5


def pub_v(v, topic, payload=b"x", qos=0, pid=1, first=None, pprops=NOPROPS,
          body_qos=None):
    """A PUBLISH for protocol v (4 or 5); first overrides the fixed-header
    byte, body_qos says whether a packet id is in the body."""
    body_qos = qos if body_qos is None else body_qos
    body = mqtt_str(as_bytes(topic))
    if body_qos:
        body += u16(pid)
    if v == 5:
        body += pprops
    body += as_bytes(payload)
    return packet(0x30 | (qos << 1) if first is None else first, body)


def sub_v(v, pid, filters, first=0x82, sprops=NOPROPS):
    """A SUBSCRIBE; filters are [(filter, options byte)]."""
    body = u16(pid) + (sprops if v == 5 else b"")
    for f, o in filters:
        body += mqtt_str(as_bytes(f)) + bytes([o])
    return packet(first, body)


def unsub_v(v, pid, filters, first=0xA2, uprops=NOPROPS):
    body = u16(pid) + (uprops if v == 5 else b"")
    for f in filters:
        body += mqtt_str(as_bytes(f))
    return packet(first, body)


def connect_raw(v, flags, payload, cprops=NOPROPS, keepalive=60,
                name=b"MQTT"):
    """A CONNECT with explicit flags and payload bytes."""
    body = mqtt_str(name) + bytes([v, flags]) + u16(keepalive)
    if v == 5:
        body += cprops
    return packet(0x10, body + payload)


def connect_with_id(v, cid):
    """A clean CONNECT whose client id is the raw bytes cid."""
    return connect_raw(v, 0x02, mqtt_str(cid))


# ---- 1. the malformed-packet catalogue --------------------------------------
# Expected outcomes:
CLOSE = ("close",)             # closed without a word
CLOSED_ANY = ("closed-any",)   # closed; whatever it was sent first
GONE = ("gone",)               # we reset it: only (b)-(d) are checked


def CONNACK(code):
    """CONNACK with this return code / reason (3.1.1 format before the
    protocol is known); 0: accepted and the connection works."""
    return ("connack", code)


def DISC(*reasons):
    """MQTT 5 DISCONNECT with one of reasons, then the close."""
    return ("disconnect", reasons)


def REPLY(*pkts):
    """These packets, in order, and the connection stays usable (a
    PINGREQ sent after the case is answered).  Each is (first, body) or
    (first, predicate on the body)."""
    return ("reply", pkts)


ALIVE = REPLY()   # nothing sent back, the connection stays usable


def pingresps_in(expect):
    """PINGRESPs an expectation's open alternative includes."""
    if expect[0] == "either":
        return pingresps_in(expect[1])
    if expect[0] == "reply":
        return sum(1 for f, _ in expect[1] if f == 0xD0)
    return 0


def EITHER(a, b):
    """a when the connection stays open, b when it is closed."""
    return ("either", a, b)


def ack5_is(pid, reason):
    return lambda body: parse_ack5(body)[:2] == (pid, reason)


def codes5_are(pid, codes):
    def pred(body):
        if body[:2] != u16(pid):
            return False
        _, end = parse_props(body, 2)
        return list(body[end:]) == codes
    return pred


class Case:
    def __init__(self, name, data, expect, v=None, connect=None, shut=False,
                 probe=True):
        """v: 4 (3.1.1) or 5, None for bytes sent before any CONNECT;
        connect: CONNECT (protocol v) first, default when v is set;
        shut: close our write side after data (a truncated packet then
        ends in EOF); probe: send a PINGREQ after data for REPLY/EITHER."""
        self.name = name
        self.data = as_bytes(data)
        self.expect = expect
        self.v = v
        self.connect = v is not None if connect is None else connect
        self.shut = shut
        self.probe = probe


def both(name, build, e3, e5, **kw):
    """The case for 3.1.1 and for MQTT 5; build(v) makes the bytes."""
    return [Case("v311_" + name, build(V3), e3, v=V3, **kw),
            Case("v5_" + name, build(V5), e5, v=V5, **kw)]


def connect_both(name, build, e3, e5, **kw):
    """A CONNECT case (the data is the CONNECT itself) for both."""
    return [Case("v311_" + name, build(V3), e3, v=V3, connect=False, **kw),
            Case("v5_" + name, build(V5), e5, v=V5, connect=False, **kw)]


_rng = random.Random(0x4D4F4154)   # "MOAT": fixed seed, same bytes each run
RANDOM_64K = bytes(_rng.getrandbits(8) for _ in range(64 * KiB))
RANDOM_64K_B = bytes(_rng.getrandbits(8) for _ in range(64 * KiB))
# The start of a real TLS 1.2/1.3 ClientHello record (type 22, version
# 3.1, length 512; handshake type 1), padded to its declared length.
TLS_CLIENT_HELLO = (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" +
                    bytes(range(32)) + b"\x20" + bytes(range(32)) +
                    b"\x00\x08\x13\x02\x13\x03\x13\x01\x00\xff\x01\x00")
TLS_CLIENT_HELLO += b"\x00" * (5 + 512 - len(TLS_CLIENT_HELLO))
HTTP_GET = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hostile/1.0"
            b"\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
BIG_WILL = ("w/big", b"W" * (20 * KiB), 0, False)
MAX_PACKET = 1 * MiB      # max_packet_size default
MAX_CONNECT = 16 * KiB    # max_connect_packet_size default

M = (0x81,)   # MQTT 5 Malformed Packet
P = (0x82,)   # MQTT 5 Protocol Error

CASES = []

# -- before CONNECT (no protocol version known: never a DISCONNECT) --
CASES += [
    # a fixed header cut short, then EOF
    Case("pre_truncated_fixed_header", b"\x10", CLOSE, shut=True),
    Case("pre_truncated_length", b"\x10\xff\xff", CLOSE, shut=True),
    Case("pre_truncated_connect_body", connect_packet("trunc")[:12], CLOSE,
         shut=True),
    # declares 200 bytes, sends 30, then EOF (and one reset by us)
    Case("pre_length_past_end", b"\x10" + varint(200) +
         connect_packet("past-end")[2:32], CLOSE, shut=True),
    Case("pre_length_past_end_reset", b"\x10" + varint(200) +
         connect_packet("past-end")[2:32], GONE),
    # remaining length of 5 bytes [MQTT-2.2.3]: closed at once, no EOF
    Case("pre_length_5_bytes", b"\x10\x80\x80\x80\x80\x01", CLOSE),
    Case("pre_length_5_bytes_max", b"\x10\xff\xff\xff\xff\x7f", CLOSE),
    # a length far above max_connect_packet_size: closed on the header
    Case("pre_length_256mib", b"\x10\xff\xff\xff\x7f", CLOSE),
    # [MQTT-3.1.0-1] the first packet must be CONNECT
    Case("pre_first_publish", publish_packet("h/x", b"first"), CLOSE),
    Case("pre_first_publish_qos1", publish_packet("h/x", b"f", 1, 1), CLOSE),
    Case("pre_first_pingreq", PINGREQ, CLOSE),
    Case("pre_first_subscribe", subscribe_packet(1, [("h/#", 0)]), CLOSE),
    Case("pre_first_disconnect", DISCONNECT, CLOSE),
    Case("pre_first_connack", CONNACK_OK, CLOSE),
    Case("pre_first_pingresp", PINGRESP, CLOSE),
    Case("pre_first_auth", b"\xf0\x00", CLOSE),
    Case("pre_first_reserved_type_0", b"\x00\x00", CLOSE),
    # [MQTT-2.2.2-2] CONNECT's fixed-header flags must be 0
    Case("pre_connect_header_flags", b"\x12" + connect_packet("f")[1:], CLOSE),
    # [MQTT-3.1.2-1] not MQTT: no CONNACK
    Case("pre_protocol_name_mqtx", connect_packet("n", name="MQTX"), CLOSE),
    Case("pre_protocol_name_empty", connect_packet("n", name=""), CLOSE),
    # [MQTT-3.1.2-2] unsupported level: CONNACK 0x01 (3.1.1 format)
    Case("pre_protocol_level_6", connect_packet("l", level=6), CONNACK(1)),
    Case("pre_protocol_level_3_named_mqtt", connect_packet("l", level=3),
         CONNACK(1)),
    Case("pre_protocol_mqisdp_level_4",
         connect_packet("l", name="MQIsdp", level=4), CONNACK(1)),
    # CONNECT above max_connect_packet_size (16k): closed on its header,
    # before the protocol version is read (docs/security.md, "Limits")
    Case("pre_v311_connect_above_max_connect_packet_size",
         connect_packet("big", will=BIG_WILL), CLOSE),
    Case("pre_v5_connect_above_max_connect_packet_size",
         connect5("big", cprops=props(p_user("k", "v" * (20 * KiB)))), CLOSE),
    Case("pre_v5_will_properties_above_max_connect_packet_size",
         connect5("big", will=("w/x", b"w", 0, False),
                  will_props=props(*[p_user("k%d" % i, "v" * 100)
                                     for i in range(200)])), CLOSE),
    # not MQTT at all
    Case("pre_garbage_http_request", HTTP_GET, CLOSE),
    Case("pre_garbage_tls_client_hello", TLS_CLIENT_HELLO, CLOSE),
    Case("pre_garbage_zeros_64k", b"\x00" * (64 * KiB), CLOSE),
    Case("pre_garbage_random_64k", RANDOM_64K, CLOSED_ANY, shut=True),
]

# -- CONNECT itself: 3.1.1 closes; MQTT 5 answers CONNACK 0x81/0x82 --
CASES += connect_both(
    "connect_reserved_flag",        # [MQTT-3.1.2-3]
    lambda v: connect_raw(v, 0x03, mqtt_str("rsv")), CLOSE, CONNACK(0x81))
CASES += connect_both(
    "connect_will_qos_without_will",  # [MQTT-3.1.2-13]
    lambda v: connect_raw(v, 0x0A, mqtt_str("wq")), CLOSE, CONNACK(0x81))
CASES += connect_both(
    "connect_will_retain_without_will",  # [MQTT-3.1.2-15]
    lambda v: connect_raw(v, 0x22, mqtt_str("wr")), CLOSE, CONNACK(0x81))
CASES += connect_both(
    "connect_will_qos_3",           # [MQTT-3.1.2-14]
    lambda v: connect_raw(v, 0x1E, mqtt_str("w3") + (b"\x00" if v == 5
                                                     else b"") +
                          mqtt_str("w/t") + mqtt_str("m")),
    CLOSE, CONNACK(0x81))
CASES += connect_both(
    # [MQTT-3.1.2-22] 3.1.1 only; MQTT 5 allows a password alone
    "connect_password_without_user_name",
    lambda v: connect_raw(v, 0x42, mqtt_str("pw") + mqtt_str("secret")),
    CLOSE, CONNACK(0))
for _name, _id in (("invalid_utf8", b"id\xff"), ("u0000", b"id\x00x"),
                   ("surrogate", b"id\xed\xa0\x80"),
                   ("overlong", b"id\xc0\xaf"),
                   ("truncated_sequence", b"id\xe2\x82")):
    # [MQTT-1.5.3-1] [MQTT-1.5.3-2]: a malformed string
    CASES += connect_both("connect_client_id_" + _name,
                          lambda v, i=_id: connect_with_id(v, i),
                          CLOSE, CONNACK(0x81))
CASES += connect_both(
    "connect_trailing_bytes",
    lambda v: connect_raw(v, 0x02, mqtt_str("tb") + b"\x00"), CLOSE,
    CONNACK(0x81))
CASES += connect_both(
    "connect_client_id_past_end",
    lambda v: connect_raw(v, 0x02, b"\x00\x40abc"), CLOSE, CONNACK(0x81))
CASES += connect_both(
    # A will topic with a wildcard [MQTT-3.1.2-?]: refused; moatd closes
    # without a CONNACK for both versions.
    "connect_will_topic_wildcard",
    lambda v: connect_raw(v, 0x06, mqtt_str("wt") + (b"\x00" if v == 5
                                                     else b"") +
                          mqtt_str("w/+") + mqtt_str("m")),
    CLOSE, CLOSE)
# MQTT 5 CONNECT properties (docs/mqtt.md "properties")
CASES += [
    Case("v5_connect_duplicate_session_expiry",
         connect5("dup", cprops=props(p_u32(SESSION_EXPIRY, 1),
                                      p_u32(SESSION_EXPIRY, 2))),
         CONNACK(0x82), v=V5, connect=False),
    Case("v5_connect_topic_alias_not_allowed",
         connect5("ta", cprops=props(p_u16(TOPIC_ALIAS, 1))),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_will_delay_not_allowed",
         connect5("wd", cprops=props(p_u32(WILL_DELAY, 1))),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_unknown_property",
         connect5("up", cprops=props(b"\x7f\x00")),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_property_length_cuts_value",
         connect_raw(5, 0x02, mqtt_str("cut"),
                     cprops=varint(3) + p_u32(SESSION_EXPIRY, 1)[:3]),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_property_length_past_end",
         connect_raw(5, 0x02, b"", cprops=varint(200) +
                     p_u32(SESSION_EXPIRY, 1)),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_receive_maximum_0",
         connect5("rm0", cprops=props(p_u16(RECEIVE_MAXIMUM, 0))),
         CONNACK(0x82), v=V5, connect=False),
    Case("v5_connect_maximum_packet_size_0",
         connect5("mps0", cprops=props(p_u32(MAXIMUM_PACKET_SIZE, 0))),
         CONNACK(0x82), v=V5, connect=False),
    Case("v5_connect_request_problem_information_2",
         connect5("rpi2", cprops=props(p_byte(0x17, 2))),
         CONNACK(0x82), v=V5, connect=False),
    Case("v5_connect_user_property_invalid_utf8",
         connect5("upu", cprops=props(bytes([USER_PROPERTY]) +
                                      mqtt_str(b"k") + mqtt_str(b"v\xff"))),
         CONNACK(0x81), v=V5, connect=False),
    Case("v5_connect_authentication_method",
         connect5("am", cprops=props(p_str(AUTH_METHOD, "SCRAM-SHA-256"))),
         CONNACK(0x8C), v=V5, connect=False),
    Case("v5_connect_will_payload_format_invalid",
         connect5("wpf", will=("w/x", b"\xff\xfe", 0, False),
                  will_props=props(p_byte(PAYLOAD_FORMAT, 1))),
         CONNACK(0x99), v=V5, connect=False),
]

# -- after CONNECT: 3.1.1 closes without a word; MQTT 5 says why --
CASES += both("length_5_bytes",
              lambda v: b"\x30\x80\x80\x80\x80\x01", CLOSE, DISC(*M))
CASES += both("truncated_fixed_header", lambda v: b"\x30", CLOSE, CLOSE,
              shut=True)
CASES += both("truncated_length", lambda v: b"\x30\x80", CLOSE, CLOSE,
              shut=True)
CASES += both("length_past_end",
              lambda v: b"\x32" + varint(100) + pub_v(v, "h/x", qos=1)[2:],
              CLOSE, CLOSE, shut=True)
CASES += both("length_past_end_reset",
              lambda v: b"\x32" + varint(100) + pub_v(v, "h/x", qos=1)[2:],
              GONE, GONE)
# Non-minimal remaining lengths (0x80 0x00 for 0): 3.1.1 does not forbid
# them, MQTT 5 [MQTT-1.5.5-1] binds the sender.  moatd's codec
# (moat_mqtt_fixed_header) accepts them; what matters is that framing
# stays in step: the packet is answered and the next one too.  A close
# as malformed would be acceptable as well.
CASES += both("length_non_minimal_pingreq", lambda v: b"\xc0\x80\x00",
              EITHER(REPLY((0xD0, b"")), CLOSE),
              EITHER(REPLY((0xD0, b"")), DISC(*M)))
CASES += both("length_non_minimal_publish",
              lambda v: (lambda p: b"\x32" + bytes([0x80 | (len(p) - 2),
                                                    0x80, 0x00]) + p[2:])(
                  pub_v(v, "h/nm", b"nm", qos=1, pid=9)),
              EITHER(REPLY((0x40, u16(9))), CLOSE),
              EITHER(REPLY((0x40, lambda b: b[:2] == u16(9))), DISC(*M)))
# wrong fixed-header flags [MQTT-2.2.2-2]
for _name, _bytes in (
        ("subscribe_flags_0", b"\x80" + sub_v(4, 1, [("h/x", 0)])[1:]),
        ("subscribe_flags_3", b"\x83" + sub_v(4, 1, [("h/x", 0)])[1:]),
        ("unsubscribe_flags_0", b"\xa0" + unsub_v(4, 1, ["h/x"])[1:]),
        ("pubrel_flags_0", b"\x60\x02\x00\x01"),
        ("puback_flags_1", b"\x41\x02\x00\x01"),
        ("pubrec_flags_2", b"\x52\x02\x00\x01"),
        ("pubcomp_flags_8", b"\x78\x02\x00\x01"),
        ("pingreq_flags_1", b"\xc1\x00"),
        ("disconnect_flags_2", b"\xe2\x00")):
    CASES += both(_name, lambda v, b=_bytes: b, CLOSE, DISC(*M))
# SUBSCRIBE/UNSUBSCRIBE flags differ by version only through the body
CASES += both("publish_qos_3", lambda v: pub_v(v, "h/x", qos=1, first=0x36),
              CLOSE, DISC(*M))
CASES += both("publish_dup_qos_0", lambda v: pub_v(v, "h/x", first=0x38),
              CLOSE, DISC(*M))
CASES += both("second_connect",
              lambda v: connect5("second") if v == 5 else
              connect_packet("second"), CLOSE, DISC(*P))
# topics [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-3.3.2-2] [MQTT-4.7.3-1]
CASES += both("topic_invalid_utf8", lambda v: pub_v(v, b"h/\xff", qos=1),
              CLOSE, DISC(*M))
CASES += both("topic_u0000", lambda v: pub_v(v, b"h/\x00x"), CLOSE, DISC(*M))
CASES += both("topic_surrogate", lambda v: pub_v(v, b"h/\xed\xbf\xbf"),
              CLOSE, DISC(*M))
# docs/mqtt.md names no code for a wildcard in a topic name: 0x82 or 0x90
CASES += both("topic_wildcard_plus", lambda v: pub_v(v, "h/+", qos=1),
              CLOSE, DISC(0x82, 0x90))
CASES += both("topic_wildcard_hash", lambda v: pub_v(v, "h/#"),
              CLOSE, DISC(0x82, 0x90))
CASES += both("topic_empty_without_alias", lambda v: pub_v(v, "", qos=1),
              CLOSE, DISC(*P))
# packet id 0 [MQTT-2.3.1-1]
CASES += both("publish_qos1_packet_id_0",
              lambda v: pub_v(v, "h/x", qos=1, pid=0), CLOSE, DISC(*M))
CASES += both("publish_qos2_packet_id_0",
              lambda v: pub_v(v, "h/x", qos=2, pid=0), CLOSE, DISC(*M))
CASES += both("subscribe_packet_id_0",
              lambda v: sub_v(v, 0, [("h/x", 0)]), CLOSE, DISC(*M))
CASES += both("unsubscribe_packet_id_0",
              lambda v: unsub_v(v, 0, ["h/x"]), CLOSE, DISC(*M))
CASES += both("pubrel_packet_id_0", lambda v: b"\x62\x02\x00\x00",
              CLOSE, DISC(*M))
# [MQTT-3.8.3-3] [MQTT-3.10.3-2] at least one filter
CASES += both("subscribe_without_filters", lambda v: sub_v(v, 1, []),
              CLOSE, DISC(*P))
CASES += both("unsubscribe_without_filters", lambda v: unsub_v(v, 1, []),
              CLOSE, DISC(*P))
# subscription options [MQTT-3.8.3-4] [MQTT-3.8.3-5]
CASES += both("subscribe_options_reserved_bits",
              lambda v: sub_v(v, 1, [("h/x", 0xC0)]), CLOSE, DISC(*M))
CASES += both("subscribe_options_bit_2_or_6",
              lambda v: sub_v(v, 1, [("h/x", 0x04 if v == 4 else 0x40)]),
              CLOSE, DISC(*M))
CASES += both("subscribe_qos_3", lambda v: sub_v(v, 1, [("h/x", 3)]),
              CLOSE, DISC(*P))
CASES += [Case("v5_subscribe_retain_handling_3",
               sub_v(5, 1, [("h/x", 0x30)]), DISC(*P), v=V5)]
CASES += both("subscribe_option_missing",
              lambda v: packet(0x82, u16(1) + (b"\x00" if v == 5 else b"") +
                               mqtt_str("h/x")), CLOSE, DISC(*M))
# invalid filters [MQTT-4.7.1-2] [MQTT-4.7.1-3]: 3.1.1 closes, MQTT 5
# answers 0x8F in the SUBACK / UNSUBACK (docs/mqtt.md)
for _name, _f in (("hash_not_last", "a/#/b"), ("plus_in_level", "a+"),
                  ("hash_in_level", "a/b#"), ("empty", "")):
    CASES += both("subscribe_filter_" + _name,
                  lambda v, f=_f: sub_v(v, 1, [(f, 0)]),
                  CLOSE, REPLY((0x90, codes5_are(1, [0x8F]))))
# shared subscriptions [MQTT-4.8.2-1] [MQTT-4.8.2-2]
for _name, _f in (("no_filter", "$share/g"), ("empty_filter", "$share/g/"),
                  ("empty_group", "$share//x"),
                  ("wildcard_group", "$share/g+/x")):
    CASES += both("subscribe_shared_" + _name,
                  lambda v, f=_f: sub_v(v, 1, [(f, 0)]),
                  CLOSE, REPLY((0x90, codes5_are(1, [0x8F]))))
# [MQTT-3.8.3-4] No Local on a shared subscription
CASES += [Case("v5_subscribe_shared_no_local",
               sub_v(5, 1, [("$share/g/x", 0x04)]), DISC(*P), v=V5)]
CASES += both("unsubscribe_filter_hash_not_last",
              lambda v: unsub_v(v, 1, ["a/#/b"]),
              CLOSE, REPLY((0xB0, codes5_are(1, [0x8F]))))
# acknowledgements for packet ids nobody used
CASES += both("pubrel_unknown_id", lambda v: ack("pubrel", 4242),
              REPLY((0x70, u16(4242))),       # [MQTT-4.3.3-11]
              REPLY((0x70, ack5_is(4242, 0x92))))  # docs/mqtt.md
CASES += both("pubrec_unknown_id", lambda v: ack("pubrec", 4243),
              REPLY((0x62, u16(4243))),
              REPLY((0x62, ack5_is(4243, 0x92))))  # docs/mqtt.md
CASES += both("pubcomp_unknown_id", lambda v: ack("pubcomp", 4244),
              ALIVE, ALIVE)
CASES += both("puback_unknown_id", lambda v: ack("puback", 4245),
              ALIVE, ALIVE)
CASES += both("puback_too_short", lambda v: b"\x40\x01\x00", CLOSE, DISC(*M))
CASES += both("pingreq_with_body", lambda v: b"\xc0\x01\x00", CLOSE,
              DISC(*M))
CASES += [Case("v311_disconnect_with_body", b"\xe0\x01\x00", CLOSE, v=V3)]
# packets only a server sends (4.8): 3.1.1 closes, MQTT 5 0x82
for _name, _bytes in (("connack", CONNACK_OK),
                      ("suback", b"\x90\x03\x00\x01\x00"),
                      ("unsuback", b"\xb0\x02\x00\x01"),
                      ("pingresp", PINGRESP)):
    CASES += both("server_only_" + _name, lambda v, b=_bytes: b, CLOSE,
                  DISC(*P))
CASES += both("reserved_type_0", lambda v: b"\x00\x00", CLOSE, DISC(*M))
# AUTH (type 15): reserved in 3.1.1; in MQTT 5 without an Authentication
# Method in CONNECT a Protocol Error (section 4.12)
CASES += both("auth_without_method", lambda v: b"\xf0\x02\x18\x00",
              CLOSE, DISC(*P))
CASES += [Case("v5_auth_flags_1", b"\xf1\x00", DISC(*M), v=V5)]
# above max_packet_size (1m): judged on the fixed header; MQTT 5 0x95
CASES += both("packet_above_max_packet_size",
              lambda v: b"\x30" + varint(MAX_PACKET) + b"\x00\x03h/x" +
              b"P" * 4000, CLOSE, DISC(0x95))
CASES += both("length_256mib", lambda v: b"\x30\xff\xff\xff\x7f",
              CLOSE, DISC(0x95))
CASES += both("garbage_random_64k", lambda v: RANDOM_64K_B, CLOSED_ANY,
              CLOSED_ANY, shut=True)
CASES += both("garbage_http_request", lambda v: HTTP_GET, CLOSE,
              DISC(*M))

# -- MQTT 5 properties after CONNECT --
CASES += [
    # section 2.2.2.2 / docs/mqtt.md: duplicate -> 0x82, not allowed, bad
    # length or unknown -> 0x81
    Case("v5_publish_duplicate_message_expiry",
         publish5("h/x", b"d", 1, 3, pprops=props(
             p_u32(MESSAGE_EXPIRY, 9), p_u32(MESSAGE_EXPIRY, 9))),
         DISC(*P), v=V5),
    Case("v5_publish_duplicate_content_type",
         publish5("h/x", b"d", 0, pprops=props(
             p_str(CONTENT_TYPE, "a"), p_str(CONTENT_TYPE, "b"))),
         DISC(*P), v=V5),
    Case("v5_publish_session_expiry_not_allowed",
         publish5("h/x", b"n", 1, 3, pprops=props(p_u32(SESSION_EXPIRY, 9))),
         DISC(*M), v=V5),
    Case("v5_publish_receive_maximum_not_allowed",
         publish5("h/x", b"n", 0, pprops=props(p_u16(RECEIVE_MAXIMUM, 9))),
         DISC(*M), v=V5),
    Case("v5_subscribe_topic_alias_not_allowed",
         subscribe5(1, [("h/x", 0)], props(p_u16(TOPIC_ALIAS, 1))),
         DISC(*M), v=V5),
    Case("v5_puback_topic_alias_not_allowed",
         packet(0x40, u16(7) + b"\x00" + props(p_u16(TOPIC_ALIAS, 1))),
         DISC(*M), v=V5),
    Case("v5_disconnect_will_delay_not_allowed",
         disconnect5(0, props(p_u32(WILL_DELAY, 1))), DISC(*M), v=V5),
    Case("v5_publish_property_length_cuts_value",
         packet(0x32, mqtt_str("h/x") + u16(3) + b"\x03\x02\x00\x00" +
                b"\x00\x10cut"), DISC(*M), v=V5),
    Case("v5_publish_property_length_past_end",
         packet(0x32, mqtt_str("h/x") + u16(3) + varint(60) +
                p_u32(MESSAGE_EXPIRY, 5) + b"beyond"), DISC(*M), v=V5),
    Case("v5_publish_string_property_past_end",
         packet(0x30, mqtt_str("h/x") + b"\x05\x03\x00\x40ab"), DISC(*M),
         v=V5),
    Case("v5_publish_unknown_property",
         publish5("h/x", b"u", 1, 3, pprops=props(b"\x7f\x00")),
         DISC(*M), v=V5),
    Case("v5_publish_property_id_5_byte_varint",
         publish5("h/x", b"u", 0, pprops=props(b"\x80\x80\x80\x80\x01\x00")),
         DISC(*M), v=V5),
    Case("v5_publish_user_property_invalid_utf8",
         publish5("h/x", b"b", 1, 3, pprops=props(
             bytes([USER_PROPERTY]) + mqtt_str(b"k\xff") + mqtt_str(b"v"))),
         DISC(*M), v=V5),
    Case("v5_publish_user_property_value_u0000",
         publish5("h/x", b"b", 0, pprops=props(
             bytes([USER_PROPERTY]) + mqtt_str(b"k") + mqtt_str(b"v\x00"))),
         DISC(*M), v=V5),
    Case("v5_publish_payload_format_2",
         publish5("h/x", b"f", 1, 3, pprops=props(p_byte(PAYLOAD_FORMAT, 2))),
         DISC(*P), v=V5),
    # [MQTT-3.3.2-4] / docs/mqtt.md: PUBACK 0x99, not delivered, not a
    # close
    Case("v5_publish_payload_format_1_invalid_utf8",
         publish5("h/x", b"\xff\xfe", 1, 5, pprops=props(
             p_byte(PAYLOAD_FORMAT, 1))),
         REPLY((0x40, ack5_is(5, 0x99))), v=V5),
    Case("v5_publish_payload_format_1_invalid_utf8_qos2",
         publish5("h/x", b"\xc0\xaf", 2, 6, pprops=props(
             p_byte(PAYLOAD_FORMAT, 1))),
         REPLY((0x50, ack5_is(6, 0x99))), v=V5),
    # topic aliases: 0 or above topic_alias_maximum (10) -> 0x94 (0: or
    # Protocol Error, [MQTT-3.3.2-8] names no code); unknown -> 0x82
    Case("v5_topic_alias_0",
         publish5("h/x", b"a", 0, pprops=props(p_u16(TOPIC_ALIAS, 0))),
         DISC(0x94, 0x82), v=V5),
    Case("v5_topic_alias_above_maximum",
         publish5("h/x", b"a", 0, pprops=props(p_u16(TOPIC_ALIAS, 11))),
         DISC(0x94), v=V5),
    Case("v5_topic_alias_65535",
         publish5("", b"a", 0, pprops=props(p_u16(TOPIC_ALIAS, 65535))),
         DISC(0x94), v=V5),
    Case("v5_topic_alias_unknown",
         publish5("", b"a", 1, 2, pprops=props(p_u16(TOPIC_ALIAS, 5))),
         DISC(*P), v=V5),
    # [MQTT-3.3.4-6] a client never sends a Subscription Identifier; in a
    # SUBSCRIBE it must not be 0 (section 3.8.2.1.2)
    Case("v5_publish_subscription_identifier",
         publish5("h/x", b"s", 0, pprops=props(p_var(SUBSCRIPTION_ID, 5))),
         DISC(*P), v=V5),
    Case("v5_subscribe_subscription_identifier_0",
         subscribe5(1, [("h/x", 0)], props(p_var(SUBSCRIPTION_ID, 0))),
         DISC(*P), v=V5),
    Case("v5_subscribe_duplicate_subscription_identifier",
         subscribe5(1, [("h/x", 0)], props(p_var(SUBSCRIPTION_ID, 1),
                                           p_var(SUBSCRIPTION_ID, 2))),
         DISC(*P), v=V5),
    Case("v5_subscribe_subscription_identifier_5_byte_varint",
         subscribe5(1, [("h/x", 0)], props(
             bytes([SUBSCRIPTION_ID]) + b"\xff\xff\xff\xff\x7f")),
         DISC(*M), v=V5),
    Case("v5_unsubscribe_subscription_identifier_not_allowed",
         unsubscribe5(1, ["h/x"], props(p_var(SUBSCRIPTION_ID, 1))),
         DISC(*M), v=V5),
    # [MQTT-3.14.2-2] DISCONNECT cannot raise a Session Expiry of 0
    Case("v5_disconnect_raises_session_expiry_from_0",
         disconnect5(0, props(p_u32(SESSION_EXPIRY, 60))), DISC(*P), v=V5),
    Case("v5_disconnect_property_length_past_end",
         packet(0xE0, b"\x00\x20"), DISC(*M), v=V5),
    Case("v5_pubrel_reason_property_past_end",
         packet(0x62, u16(4) + b"\x00\x10"), DISC(*M), v=V5),
]


class MalformedCatalogueTests(HostileCase):
    """Group 1: one generated test per CASES entry (test_<name>)."""
    group = "malformed catalogue"
    rss_bound_mib = RSS_MALFORMED_MIB
    broker_config = "sys_interval 0\n"

    def run_case(self, c):
        s = self.sock()
        if c.connect:
            self.connect_on(s, c.v, cid_on(self.uid("off"), self._n % 2))
        kind = c.expect[0]
        send_hostile(s, c.data)
        if c.shut:
            s.shutdown(socket.SHUT_WR)
        if kind == "gone":
            close_with_reset(s)
            self._socks.remove(s)
            return
        open_mode = kind in ("reply", "either") or \
            (kind == "connack" and c.expect[1] == 0)
        if open_mode:
            if c.probe and not c.shut:
                send_hostile(s, PINGREQ)
            pkts, closed = self.collect(s, 1 + pingresps_in(c.expect))
        else:
            closed, data = read_until_close(s, TIMEOUT)
            pkts, _ = split_stream(data)
            if not closed:
                self.fail("%s: not closed within %ss (got %r)"
                          % (c.name, TIMEOUT, describe(pkts)))
        self.judge(c, c.expect, pkts, closed)

    def connect_on(self, s, v, cid):
        if v == 5:
            s.sendall(connect5(cid))
            first, body = read_packet(s)
            self.assertEqual((first, body[1]), (0x20, 0))
        else:
            s.sendall(connect_packet(cid))
            self.assertEqual(recv_exact(s, 4), CONNACK_OK)

    def collect(self, s, pingresps):
        """Packets until the probe's PINGRESP (the pingresps-th one) or a
        close; (packets, closed)."""
        deadline = time.monotonic() + TIMEOUT
        data = b""
        while True:
            pkts, _ = split_stream(data)
            if sum(1 for p in pkts if p == (0xD0, b"")) >= pingresps:
                return pkts, False
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("neither an answer nor a close within %ss: %r"
                          % (TIMEOUT, describe(pkts)))
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return pkts, True
            except socket.timeout:
                continue
            if not chunk:
                return split_stream(data)[0], True
            data += chunk

    def judge(self, c, expect, pkts, closed):
        kind = expect[0]
        got = describe(pkts)
        if kind == "either":
            return self.judge(c, expect[2] if closed else expect[1], pkts,
                              closed)
        if kind == "close":
            self.assertTrue(closed, "not closed")
            self.assertEqual(pkts, [], "sent %r before the close" % got)
        elif kind == "closed-any":
            self.assertTrue(closed, "not closed")
        elif kind == "connack":
            code = expect[1]
            self.assertTrue(pkts, "no CONNACK (closed: %s)" % closed)
            first, body = pkts[0]
            self.assertEqual(first, 0x20, "expected CONNACK, got %r" % got)
            if c.v == 5:
                self.assertEqual(body[0], 0, "session present")
                self.assertEqual(body[1], code, "CONNACK reason 0x%02x, "
                                 "wanted 0x%02x" % (body[1], code))
                parse_props(body, 2)
            else:
                self.assertEqual(body, bytes([0, code]))
            if code == 0:
                self.assertFalse(closed, "closed after CONNACK 0")
                self.assertEqual(pkts[1:], [(0xD0, b"")])
            else:
                self.assertTrue(closed, "not closed after the refusal")
                self.assertEqual(len(pkts), 1, got)
        elif kind == "disconnect":
            reasons = expect[1]
            self.assertTrue(closed, "not closed")
            self.assertTrue(pkts, "closed without a DISCONNECT (wanted "
                            "0x%02x)" % reasons[0])
            first, body = pkts[-1]
            self.assertEqual(first, 0xE0, "expected DISCONNECT, got %r" % got)
            reason = parse_reason(body)[0]
            self.assertIn(reason, reasons, "DISCONNECT 0x%02x, wanted %s"
                          % (reason, [hex(r) for r in reasons]))
        elif kind == "reply":
            self.assertFalse(closed, "closed; got %r" % got)
            want = list(expect[1])
            self.assertEqual(pkts[-1], (0xD0, b""))
            self.assertEqual(len(pkts) - 1, len(want),
                             "got %r, wanted %d packets" % (got, len(want)))
            for (first, body), (wfirst, wbody) in zip(pkts, want):
                self.assertEqual(first, wfirst, "got %r" % got)
                if callable(wbody):
                    self.assertTrue(wbody(body), "unexpected %r" % got)
                else:
                    self.assertEqual(body, wbody)
        else:
            raise AssertionError("unknown expectation %r" % (expect,))


def _add_catalogue(cls, cases):
    names = set()
    for case in cases:
        name = "test_" + case.name
        if name in names:
            raise AssertionError("duplicate case " + case.name)
        names.add(name)

        def run(self, case=case):
            self.run_case(case)
        run.__name__ = name
        setattr(cls, name, run)


_add_catalogue(MalformedCatalogueTests, CASES)


# ---- 2. connection flood ----------------------------------------------------

class ConnectionFloodTests(HostileCase):
    group = "connection flood"
    rss_bound_mib = RSS_FLOOD_MIB
    FLOOD = 300
    ROUNDS = 3

    def test_connection_flood(self):
        # 300 connections opened as fast as possible, every other one
        # sending a CONNECT (answered), all open at once; then all closed
        # (half with a reset).  Three rounds: RSS after each is printed,
        # the canary is checked while all are open, and a normal client
        # is accepted afterwards.
        figures = []
        for rnd in range(self.ROUNDS):
            socks = []
            deadline = time.monotonic() + 30.0
            try:
                for i in range(self.FLOOD):
                    self.assertLess(time.monotonic(), deadline,
                                    "flood took over 30 s")
                    socks.append(socket.create_connection(
                        (HOST, self.port), timeout=TIMEOUT))
                conns = socks[::2]
                for i, s in enumerate(conns):
                    s.sendall(connect_packet(
                        cid_on("flood-%d-%d" % (rnd, i), i % 2)))
                for s in conns:
                    self.assertEqual(recv_exact(s, 4), CONNACK_OK)
                open_rss = self.check_rss("flood round %d, all open" % rnd)
                self.assert_canary()
            finally:
                for i, s in enumerate(socks):
                    if i % 4 < 2:
                        close_with_reset(s)
                    else:
                        s.close()
            # the broker notices every close; a normal client still works
            s = self.connect3(cid_on(self.uid("after"), rnd % 2))
            self.assertEqual(self.subscribe(V3, s, [("flood/after", 1)]), [1])
            s.sendall(publish_packet("flood/after", b"self", qos=1, pid=2))
            got = {}
            for _ in range(2):
                first, body = read_packet(s)
                got[first >> 4] = body
            self.assertEqual(got[4], u16(2))
            self.assertEqual(parse_publish(0x32, got[3])["payload"], b"self")
            s.sendall(DISCONNECT)
            self.assertTrue(expect_closed(s))
            figures.append((mib(open_rss), mib(self.rss_kib())))
        note("connection flood: %d rounds of %d connections (%d CONNECTed); "
             "VmRSS all open / after close, per round: %s"
             % (self.ROUNDS, self.FLOOD, self.FLOOD // 2,
                ", ".join("%.1f/%.1f MiB" % f for f in figures)))


# ---- 3. slowloris and half-open sockets -------------------------------------

class SlowPeerTests(HostileCase):
    group = "slowloris and half-open sockets"
    rss_bound_mib = RSS_SLOW_PEER_MIB
    broker_config = "sys_interval 0\nconnect_timeout 2\n"
    DEADLINE = 10.0   # generous: connect_timeout 2 s + the 0.5 s tick

    def wait_closed(self, socks, deadline, step=None):
        """Poll (without reading) until the broker closed every socket;
        step(i, s) runs for the open ones each round.  {index: seconds}."""
        start = time.monotonic()
        closed = {}
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                if peer_closed(s):
                    closed[i] = time.monotonic() - start
                elif step:
                    step(i, s)
            time.sleep(0.5 if step else 0.05)
        return closed

    def test_slowloris_connect(self):
        # 20 sockets each trickling a CONNECT one byte every 0.5 s (it
        # would take ~25 s to complete): each is closed around
        # connect_timeout (2 s), without a CONNACK.
        n = 20
        socks = [self.sock() for _ in range(n)]
        data = [connect_packet("slowloris-%02d-%s" % (i, "x" * 20))
                for i in range(n)]
        pos = [0] * n
        for s in socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def trickle(i, s):
            if pos[i] < len(data[i]):
                send_hostile(s, data[i][pos[i]:pos[i] + 1])
                pos[i] += 1

        start = time.monotonic()
        closed = self.wait_closed(socks, start + self.DEADLINE, trickle)
        self.assertEqual(sorted(closed), list(range(n)),
                         "slowloris sockets still open after %ss: %s"
                         % (self.DEADLINE,
                            sorted(set(range(n)) - set(closed))))
        self.assertTrue(all(p < len(d) for p, d in zip(pos, data)))
        for s in socks:
            done, got = read_until_close(s, TIMEOUT)
            self.assertTrue(done)
            self.assertEqual(got, b"", "a slowloris got an answer")
        self.assertGreaterEqual(
            len(re.findall("no CONNECT within connect_timeout", self.log())),
            n)
        note("slowloris: %d sockets closed %.1f-%.1f s after they opened "
             "(connect_timeout 2 s), after %d-%d bytes each"
             % (n, min(closed.values()), max(closed.values()), min(pos),
                max(pos)))

    def test_half_open_sockets(self):
        # 50 sockets that never send, and 20 clients (10 3.1.1, 10 MQTT 5,
        # keep-alive 2) that send CONNECT and then neither read nor send:
        # the former are closed at connect_timeout, the latter after 1.5 x
        # their keep-alive (MQTT 5: DISCONNECT 0x8D first).
        silent = [self.sock() for _ in range(50)]
        clients = []
        for i in range(20):
            s = self.sock()
            v = V5 if i % 2 else V3
            cid = cid_on("halfopen-%d" % i, i % 2)
            s.sendall(connect5(cid, keepalive=2) if v == V5 else
                      connect_packet(cid, keepalive=2))
            clients.append((v, s))
        start = time.monotonic()
        everything = silent + [s for _, s in clients]
        closed = self.wait_closed(everything, start + 15.0)
        self.assertEqual(len(closed), len(everything),
                         "%d of %d half-open sockets still open after 15 s"
                         % (len(everything) - len(closed), len(everything)))
        for s in silent:
            done, got = read_until_close(s, TIMEOUT)
            self.assertEqual((done, got), (True, b""))
        for v, s in clients:
            done, got = read_until_close(s, TIMEOUT)
            self.assertTrue(done)
            pkts, _ = split_stream(got)
            self.assertEqual(pkts[0][0], 0x20, describe(pkts))
            if v == V5:
                self.assertEqual(len(pkts), 2, describe(pkts))
                self.assertEqual(pkts[1][0], 0xE0)
                self.assertEqual(parse_reason(pkts[1][1])[0], 0x8D)
            else:
                self.assertEqual(got, CONNACK_OK)
        t_silent = [closed[i] for i in range(50)]
        t_clients = [closed[i] for i in range(50, 70)]
        note("half-open: 50 silent sockets closed after %.1f-%.1f s "
             "(connect_timeout 2 s); 20 connected non-readers after "
             "%.1f-%.1f s (keep-alive 2 s)"
             % (min(t_silent), max(t_silent), min(t_clients),
                max(t_clients)))


# ---- 4. subscribers that never read -----------------------------------------

class SlowSubscriberTests(HostileCase):
    group = "slow subscriber"
    rss_bound_mib = RSS_SLOW_SUBSCRIBER_MIB
    TOTAL = 30 * MiB
    SIZE = 64 * KiB
    KEEPALIVE = 4
    WAIT = 15.0   # generous: 1.5 x keep-alive = 6 s, plus the 0.5 s tick

    def non_readers(self, topic, sub_qos, ping):
        """A 3.1.1 and an MQTT 5 subscriber (keep-alive 4, 4 KiB receive
        buffers) that never read; with ping, each sends a PINGREQ every
        second.  Returns their client ids."""
        ids = [cid_on(self.uid("nonreader3"), 0),
               cid_on(self.uid("nonreader5"), 1)]
        for v, cid in zip((V3, V5), ids):
            s = self.connect(v, cid, keepalive=self.KEEPALIVE, rcvbuf=4096)
            self.assertEqual(self.subscribe(v, s, [(topic, sub_qos)]),
                             [sub_qos])
            if ping:
                pinger = Pinger(s, 1.0)
                pinger.start()
                self.addCleanup(pinger.stop)
        return ids

    def flood(self, topic):
        """Publish TOTAL bytes in SIZE messages alternating QoS 0 and 1
        from a well-behaved client that reads its PUBACKs; the canary is
        checked right after, while the non-readers' queues are full.
        Returns (messages, QoS 1 messages, VmRSS right after)."""
        pub = self.connect3(cid_on(self.uid("flooder"), 1))
        acks = Drain(pub)
        acks.start()
        count = self.TOTAL // self.SIZE
        payload = b"S" * (self.SIZE - 64)
        qos1 = 0
        deadline = time.monotonic() + 30.0
        try:
            for i in range(count):
                self.assertLess(time.monotonic(), deadline,
                                "publishing 30 MiB took over 30 s")
                qos = i % 2
                qos1 += qos
                pub.sendall(publish_packet(topic, payload, qos=qos,
                                           pid=i % 65535 + 1))
            flood_rss = self.check_rss("after the 30 MiB flood")
            self.assert_canary()
            self.assertTrue(wait_for_count(lambda: acks.count(0x40) >= qos1,
                                           15.0),
                            "%d of %d PUBACKs" % (acks.count(0x40), qos1))
        finally:
            acks.stop()
        pub.sendall(DISCONNECT)
        self.assertTrue(expect_closed(pub, 10.0))
        return count, qos1, flood_rss

    def wait_closed(self, ids):
        """({cid: its close lines}, {cid: whether it logged dropping}),
        after waiting up to WAIT for every cid to be disconnected."""
        end = time.monotonic() + self.WAIT
        while time.monotonic() < end and not all(
                close_lines(self.log(), cid) for cid in ids):
            time.sleep(0.2)
        log = self.log()
        closes = {cid: close_lines(log, cid) for cid in ids}
        drops = {cid: any(" client %s: " % cid in line and "dropping" in line
                          for line in log.splitlines()) for cid in ids}
        return closes, drops

    def report(self, what, count, qos1, flood_rss, ids, closes, drops):
        note("slow subscriber, %s: published %d x 64 KiB (%d MiB, %d at QoS "
             "1); VmRSS right after the flood %.1f MiB, %.1f MiB after; %s"
             % (what, count, self.TOTAL // MiB, qos1, mib(flood_rss),
                mib(self.rss_kib()),
                "; ".join("%s: %s%s" % (
                    v, closes[cid][0].split(" disconnected: ")[-1]
                    if closes[cid] else "NOT disconnected within %gs"
                    % self.WAIT,
                    ", dropped messages" if drops[cid] else "")
                    for v, cid in zip(("3.1.1", "MQTT 5"), ids))))

    def test_subscribers_that_never_read(self):
        # Two subscribers (3.1.1 and MQTT 5, QoS 1 subscriptions) that
        # never read nor send, while a publisher sends 30 MiB in 64 KiB
        # messages alternating QoS 0 and QoS 1: the broker's memory stays
        # bounded by its output buffer and queue limits, the canary keeps
        # receiving meanwhile, and the non-readers are disconnected: "client
        # stopped reading", or, being silent as well, "keep-alive timeout"
        # (docs/mqtt.md "keep-alive"), whichever comes first.
        topic = "slow/" + self.tag
        ids = self.non_readers(topic, 1, ping=False)
        count, qos1, flood_rss = self.flood(topic)
        closes, drops = self.wait_closed(ids)
        self.report("silent, QoS 1 subscriptions", count, qos1, flood_rss,
                    ids, closes, drops)
        for cid in ids:
            self.assertTrue(closes[cid], "non-reader %s not disconnected "
                            "within %gs of the flood" % (cid, self.WAIT))
            self.assertRegex(closes[cid][0],
                             "client stopped reading|keep-alive timeout")

    def test_pinging_subscribers_that_never_read_qos0(self):
        # The same with subscribers that keep sending PINGREQs (so only
        # the "client stopped reading" rule can close them) and QoS 0
        # subscriptions: disconnected within 1.5 x keep-alive of taking
        # nothing ("Whether it pings or not ...", docs/mqtt.md).
        topic = "slow/" + self.tag
        ids = self.non_readers(topic, 0, ping=True)
        count, qos1, flood_rss = self.flood(topic)
        closes, drops = self.wait_closed(ids)
        self.report("pinging, QoS 0 subscriptions", count, qos1, flood_rss,
                    ids, closes, drops)
        for cid in ids:
            self.assertTrue(closes[cid], "pinging non-reader %s not "
                            "disconnected within %gs" % (cid, self.WAIT))
            self.assertIn("client stopped reading", closes[cid][0])

    # Found by this suite (fixed): a QoS 1 subscriber that never reads but
    # pings was never disconnected, because the kernel taking each
    # PINGRESP counted as write progress; progress is now what the peer
    # acknowledged (bytes written minus SIOCOUTQ).
    def test_pinging_subscribers_that_never_read_qos1(self):
        # As above with QoS 1 subscriptions: the subscribers never
        # acknowledge, so the in-flight window fills too.
        topic = "slow/" + self.tag
        ids = self.non_readers(topic, 1, ping=True)
        count, qos1, flood_rss = self.flood(topic)
        closes, drops = self.wait_closed(ids)
        self.report("pinging, QoS 1 subscriptions", count, qos1, flood_rss,
                    ids, closes, drops)
        for cid in ids:
            self.assertTrue(closes[cid], "pinging non-reader %s not "
                            "disconnected within %gs" % (cid, self.WAIT))
            self.assertIn("client stopped reading", closes[cid][0])


class Pinger(threading.Thread):
    """Sends a PINGREQ every period seconds (never reading) until stopped
    or the connection fails."""

    def __init__(self, s, period):
        super().__init__(daemon=True)
        self.s, self.period = s, period
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(self.period):
            try:
                self.s.send(PINGREQ, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                return

    def stop(self):
        self.halt.set()
        self.join(5)


def wait_for_count(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class Drain(threading.Thread):
    """Reads a socket on its own thread until stopped or closed, counting
    the packets by type (first byte & 0xF0), acknowledging nothing."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s = s
        self.counts = {}
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        buf = b""
        self.s.settimeout(0.2)
        while not self.halt.is_set():
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            pkts, used = split_stream(buf)
            buf = buf[used:]
            with self.lock:
                for f, _ in pkts:
                    self.counts[f & 0xF0] = self.counts.get(f & 0xF0, 0) + 1

    def count(self, kind):
        with self.lock:
            return self.counts.get(kind, 0)

    def stop(self):
        self.halt.set()
        self.join(5)


# ---- 5. thousands of subscriptions ------------------------------------------

class ManySubscriptionsTests(HostileCase):
    group = "many subscriptions"
    rss_bound_mib = RSS_SUBSCRIPTIONS_MIB
    broker_config = "sys_interval 0\nmax_subscriptions 5000\n"
    LIMIT = 5000
    BATCH = 500

    LEVELS = 13   # 2**13 = 8192 >= LIMIT filters matching one topic

    def overlapping(self, prefix):
        """LIMIT distinct filters that all match one topic: level i is
        either its word or '+'.  Returns (topic, filters)."""
        words = ["w%d" % i for i in range(self.LEVELS)]
        filters = ["/".join([prefix] + ["+" if mask >> i & 1 else words[i]
                                        for i in range(self.LEVELS)])
                   for mask in range(self.LIMIT)]
        return "/".join([prefix] + words), filters

    def subscribe_all(self, v, s, filters, qos=1):
        codes = []
        deadline = time.monotonic() + 30.0
        for k in range(0, len(filters), self.BATCH):
            self.assertLess(time.monotonic(), deadline)
            codes += self.subscribe(v, s, [(f, qos) for f in
                                           filters[k:k + self.BATCH]],
                                    pid=k // self.BATCH + 1)
        return codes

    def test_5000_subscriptions(self):
        # An MQTT 5 client takes 5000 distinct filters (in SUBSCRIBEs of
        # 500) that all match one 14-level topic: a publish there arrives
        # once (overlapping subscriptions, docs/mqtt.md); a 5001st filter
        # gets 0x97; all are unsubscribed (0x00 each) and nothing arrives
        # any more.  A second (3.1.1) client takes 5000 too and gets 0x80
        # for the 5001st.
        v = V5
        topic, filters = self.overlapping("ms")
        a = self.connect5(cid_on(self.uid("many"), 0))
        t0 = time.monotonic()
        self.assertEqual(self.subscribe_all(v, a, filters), [1] * self.LIMIT)
        t_sub = time.monotonic() - t0
        self.assertEqual(self.subscribe(v, a, [("ms/extra", 1)], pid=99),
                         [0x97])
        subscribed_rss = self.check_rss("5000 subscriptions")
        t0 = time.monotonic()
        self.publish(topic, b"matches-5000", qos=1)
        p = self.next_publish(v, a)
        t_match = time.monotonic() - t0
        self.assertEqual((p["topic"], p["payload"], p["qos"]),
                         (topic.encode(), b"matches-5000", 1))
        self.assertEqual(self.sync(v, a), [], "a second copy arrived")
        # the 3.1.1 client: 5000 granted, the 5001st refused with 0x80
        b = self.connect3(cid_on(self.uid("many3"), 1))
        filters_b = ["mb/%d" % i for i in range(self.LIMIT)] + ["mb/more"]
        codes = self.subscribe_all(V3, b, filters_b)
        self.assertEqual(codes, [1] * self.LIMIT + [0x80])
        both_rss = self.check_rss("10000 subscriptions")
        # unsubscribe everything
        t0 = time.monotonic()
        codes = []
        for k in range(0, len(filters), self.BATCH):
            codes += self.unsubscribe(v, a, filters[k:k + self.BATCH],
                                      pid=k // self.BATCH + 1)
        t_unsub = time.monotonic() - t0
        self.assertEqual(codes, [0] * self.LIMIT)
        self.publish(topic, b"after-unsubscribe", qos=1)
        self.assertEqual(self.subscribe(v, a, [("ms/marker", 1)]), [1])
        self.publish("ms/marker", b"marker", qos=1)
        p = self.next_publish(v, a)
        self.assertEqual(p["payload"], b"marker",
                         "a message arrived after UNSUBSCRIBE")
        b.sendall(DISCONNECT)
        a.sendall(disconnect5(0))
        self.assertTrue(expect_closed(a) and expect_closed(b))
        note("many subscriptions: 5000 overlapping filters SUBSCRIBEd in "
             "%.2f s, a matching publish delivered (once) in %.3f s, "
             "UNSUBSCRIBEd in %.2f s; VmRSS with 5000 %.1f MiB, with 10000 "
             "%.1f MiB, after %.1f MiB"
             % (t_sub, t_match, t_unsub, mib(subscribed_rss), mib(both_rss),
                mib(self.rss_kib())))

    # Found by this suite (fixed): Subscription Identifiers beyond a fixed
    # 512-byte property buffer were silently left out [MQTT-3.3.4-3].
    def test_subscription_identifiers_of_5000_overlapping_subscriptions(
            self):
        # 5000 overlapping subscriptions in 10 SUBSCRIBEs of 500, each
        # SUBSCRIBE with its own Subscription Identifier (1..10): the one
        # copy of a matching message carries every identifier.
        topic, filters = self.overlapping("si")
        a = self.connect5(cid_on(self.uid("subid"), 0))
        for k in range(0, self.LIMIT, self.BATCH):
            n = k // self.BATCH + 1
            a.sendall(sub_v(V5, n, [(f, 0) for f in
                                    filters[k:k + self.BATCH]],
                            sprops=props(p_var(SUBSCRIPTION_ID, n))))
            first, body = read_packet(a)
            self.assertEqual(first, 0x90)
            _, end = parse_props(body, 2)
            self.assertEqual(set(body[end:]), {0})
        t0 = time.monotonic()
        self.publish(topic, b"with-ids", qos=0)
        p = self.next_publish(V5, a)
        note("many subscriptions: a message matching 5000 subscriptions "
             "with identifiers delivered in %.3f s"
             % (time.monotonic() - t0))
        self.assertEqual(p["payload"], b"with-ids")
        ids = [v for i, v in p["props"] if i == SUBSCRIPTION_ID]
        self.assertEqual(self.sync(V5, a), [], "a second copy arrived")
        a.sendall(disconnect5(0))
        self.assertTrue(expect_closed(a))
        self.assertEqual(sorted(set(ids)), list(range(1, 11)),
                         "%d identifiers sent, distinct: %s"
                         % (len(ids), sorted(set(ids))))

    def test_one_mib_subscribe_and_unsubscribe(self):
        # One SUBSCRIBE of ~1 MiB with ~150000 filters (65536 distinct;
        # the first 5000 granted, the rest 0x97 / 0x80), and one MQTT 5
        # UNSUBSCRIBE of ~1 MiB with ~500000 empty (invalid) filters
        # (0x8F each).  moatd lists every filter before acting on any;
        # memory must stay bounded and be given back.
        before = self.rss_kib()
        figures = []
        for v in (V5, V3):
            s = self.connect(v, cid_on(self.uid("huge"), v % 2))
            n = (MAX_PACKET - 64) // 7
            s.sendall(sub_v(v, 1, [("%04x" % (i % 65536), 0)
                                   for i in range(n)]))
            s.settimeout(15.0)
            first, body = read_packet(s)
            self.assertEqual(first, 0x90)
            if v == V5:
                _, end = parse_props(body, 2)
                codes = body[end:]
            else:
                codes = body[2:]
            self.assertEqual(len(codes), n)
            self.assertEqual(set(codes[:self.LIMIT]), {0})
            self.assertEqual(set(codes[self.LIMIT:]),
                             {0x97 if v == V5 else 0x80})
            figures.append("SUBSCRIBE of %d filters (v%d): %.1f MiB"
                           % (n, v, mib(self.check_rss("1 MiB SUBSCRIBE"))))
            if v == V5:
                n = (MAX_PACKET - 64) // 2
                s.sendall(packet(0xA2, u16(2) + b"\x00" + b"\x00\x00" * n))
                first, body = read_packet(s)
                self.assertEqual(first, 0xB0)
                _, end = parse_props(body, 2)
                self.assertEqual(len(body) - end, n)
                self.assertEqual(set(body[end:]), {0x8F})
                figures.append("UNSUBSCRIBE of %d empty filters: %.1f MiB"
                               % (n, mib(self.check_rss("1 MiB UNSUBSCRIBE"))))
            s.sendall(DISCONNECT)
            self.assertTrue(expect_closed(s, 10.0))
        note("many subscriptions: VmRSS %.1f MiB before; after a 1 MiB %s; "
             "%.1f MiB at the end" % (mib(before), "; ".join(figures),
                                      mib(self.rss_kib())))


# ---- 6. deep topic levels ---------------------------------------------------

def levels(n, word="l"):
    return "/".join([word] * n)


class DeepTopicDefaultTests(HostileCase):
    group = "deep topics (max_topic_levels 32)"
    rss_bound_mib = RSS_DEEP_TOPIC_MIB

    def test_33_levels_refused(self):
        # max_topic_levels 32 (default): a 32-level topic and filter work;
        # 33 levels: the PUBLISH closes the connection (MQTT 5: a
        # DISCONNECT; docs/security.md "Topic refused" names no code,
        # moatd sends 0x97), the filter gets 0x80 / 0x8F.
        t32 = levels(31, "d") + "/" + self.tag
        t33 = "x/" + t32
        for v in (V3, V5):
            w = self.connect(v, cid_on(self.uid("deepw"), 0))
            self.assertEqual(self.subscribe(v, w, [(t32, 1), ("x/#", 1)]),
                             [1, 1])
            self.assertEqual(self.subscribe(v, w, [("+/" + t32, 1)], pid=2),
                             [0x80 if v == V3 else 0x8F])
            self.publish(t32, b"32-levels", qos=1, v=v)
            self.assertEqual(self.next_publish(v, w)["payload"], b"32-levels")
            s = self.connect(v, cid_on(self.uid("deep"), 1))
            s.sendall(pub_v(v, t33, b"33-levels", qos=1))
            self.expect_reason_close(v, s, (0x97, 0x90))
            self.assertEqual(self.sync(v, w), [], "33 levels delivered")


class DeepTopicTests(HostileCase):
    group = "deep topics (max_topic_levels 1000)"
    rss_bound_mib = RSS_DEEP_TOPIC_MIB
    broker_config = ("sys_interval 0\nmax_topic_levels 1000\n"
                     "max_topic_length 4k\n")

    def test_1000_levels(self):
        # max_topic_levels 1000: a 1000-level topic is delivered through
        # an exact filter, an all-'+' filter, a '#' filter and a 999 '+' +
        # '#' filter (one copy: overlapping subscriptions); 1001 levels are
        # refused.
        topic = levels(999) + "/" + "e"
        self.assertEqual(topic.count("/") + 1, 1000)
        filters = [topic, "/".join(["+"] * 1000), "#",
                   "/".join(["+"] * 999) + "/#", levels(500) + "/#"]
        for v in (V3, V5):
            w = self.connect(v, cid_on(self.uid("deepw"), v % 2))
            self.assertEqual(self.subscribe(v, w, [(f, 1) for f in filters]),
                             [1] * len(filters))
            self.assertEqual(self.subscribe(v, w, [("+/" + topic, 1)], pid=2),
                             [0x80 if v == V3 else 0x8F])
            self.publish(topic, b"1000-levels", qos=1, v=v)
            p = self.next_publish(v, w)
            self.assertEqual((p["topic"], p["payload"]),
                             (topic.encode(), b"1000-levels"))
            s = self.connect(v, cid_on(self.uid("deep"), 1))
            s.sendall(pub_v(v, "x/" + topic, b"1001-levels", qos=1))
            self.expect_reason_close(v, s, (0x97, 0x90))
            got = self.sync(v, w)
            self.assertEqual(got, [], "a second copy or 1001 levels arrived")
            w.sendall(DISCONNECT)
            self.assertTrue(expect_closed(w))

    def test_1000_level_retained_message(self):
        # A retained message on a 1000-level topic is found by the
        # retained-message walk for '#', an all-'+' filter and the exact
        # topic, then deleted by an empty retained payload.
        topic = levels(999, "r") + "/" + "e"
        s = self.connect3(cid_on(self.uid("ret"), 1))
        s.sendall(publish_packet(topic, b"deep-retained", qos=1, pid=1,
                                 retain=True))
        self.assertEqual(read_packet(s), (0x40, u16(1)))
        for f in ("#", "/".join(["+"] * 1000), topic):
            w = self.connect3(cid_on(self.uid("retw"), 0))
            self.assertEqual(self.subscribe(V3, w, [(f, 1)]), [1])
            got = self.sync(V3, w)
            self.assertEqual([(p["topic"], p["payload"], p["retain"])
                              for p in got],
                             [(topic.encode(), b"deep-retained", True)])
            w.sendall(DISCONNECT)
        s.sendall(publish_packet(topic, b"", qos=1, pid=2, retain=True))
        self.assertEqual(read_packet(s), (0x40, u16(2)))
        w = self.connect3(cid_on(self.uid("retw"), 0))
        self.assertEqual(self.subscribe(V3, w, [("#", 1)]), [1])
        self.assertEqual(self.sync(V3, w), [], "retained message not deleted")


# ---- 7. QoS 2 packet-id exhaustion ------------------------------------------

class QoS2ExhaustionTests(HostileCase):
    group = "QoS 2 packet-id exhaustion"
    rss_bound_mib = RSS_QOS2_MIB

    def test_v5_beyond_receive_maximum_gets_93(self):
        # Receive Maximum = max_inflight_messages (20): 20 QoS 2 PUBLISHes
        # awaiting PUBREL are acknowledged, the 21st gets DISCONNECT 0x93.
        s = self.connect5(cid_on(self.uid("q2"), 1))
        s.sendall(b"".join(publish5("q2/x", b"q", 2, pid)
                           for pid in range(1, 22)))
        closed, data = read_until_close(s, TIMEOUT)
        self.assertTrue(closed)
        pkts, _ = split_stream(data)
        self.assertEqual([(f, b[:2]) for f, b in pkts[:20]],
                         [(0x50, u16(pid)) for pid in range(1, 21)])
        self.assertEqual(len(pkts), 21, describe(pkts))
        self.assertEqual(pkts[20][0], 0xE0)
        self.assertEqual(parse_reason(pkts[20][1])[0], 0x93)

    def test_v311_every_packet_id_pending(self):
        # 3.1.1 has no Receive Maximum to enforce: a client may leave all
        # 65535 packet ids awaiting PUBREL.  moatd keeps that state as a
        # bitmap, so memory does not grow with it; each message is
        # delivered once, on arrival, and the ids still work (a repeat is
        # acknowledged but not delivered again, PUBREL completes).
        # Bounded by count and by a 30 s deadline.
        topic = "q2/" + self.tag
        w = self.connect3(cid_on(self.uid("q2w"), 0))
        self.assertEqual(self.subscribe(V3, w, [(topic, 0)]), [0])
        counter = Drain(w)
        counter.start()
        s = self.connect3(cid_on(self.uid("q2"), 1))
        before = self.rss_kib()
        deadline = time.monotonic() + 30.0
        batch = 4096
        sent = 0
        try:
            while sent < 65535 and time.monotonic() < deadline:
                ids = range(sent + 1, min(sent + batch, 65535) + 1)
                s.sendall(b"".join(publish_packet(topic, b"", qos=2, pid=i)
                                   for i in ids))
                want = b"".join(b"\x50\x02" + u16(i) for i in ids)
                s.settimeout(TIMEOUT)
                self.assertEqual(recv_exact(s, len(want)), want)
                sent = ids[-1]
            self.assertEqual(sent, 65535, "only %d ids within 30 s" % sent)
            after = self.rss_kib()
            self.assertTrue(wait_for_count(
                lambda: counter.count(0x30) >= 65535, 15.0),
                "the subscriber got %d of 65535" % counter.count(0x30))
        finally:
            counter.stop()
        self.assertEqual(counter.count(0x30), 65535)
        # a repeat of a pending id: acknowledged, not delivered again
        s.sendall(publish_packet(topic, b"again", qos=2, pid=777, dup=True))
        self.assertEqual(read_packet(s), (0x50, u16(777)))
        s.sendall(ack("pubrel", 777) + ack("pubrel", 65535))
        self.assertEqual(recv_exact(s, 8), ack("pubcomp", 777) +
                         ack("pubcomp", 65535))
        w.settimeout(TIMEOUT)
        self.assertEqual(self.sync(V3, w), [], "a repeat was delivered")
        self.check_rss("65535 pending QoS 2 ids")
        if not SANITIZED:
            self.assertLess(after - before, QOS2_GROWTH_MIB * 1024,
                            "VmRSS grew %.1f MiB with 65535 pending ids"
                            % mib(after - before))
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        note("QoS 2: 65535 ids pending on one 3.1.1 session: VmRSS %.1f MiB "
             "before, %.1f MiB after (growth %.2f MiB, bound %d MiB)"
             % (mib(before), mib(after), mib(after - before),
                QOS2_GROWTH_MIB))


    def test_pending_qos2_on_many_persistent_sessions(self):
        # 1000 persistent (clean session 0) 3.1.1 sessions, each left with
        # one QoS 2 packet id awaiting PUBREL: the per-session cost stays
        # bounded (each such session holds an 8 KiB bitmap of the 65536
        # ids: observed ~9 KiB per session in all).
        before = self.rss_kib()
        n = 1000
        deadline = time.monotonic() + 30.0
        for i in range(n):
            self.assertLess(time.monotonic(), deadline)
            s = raw_connect(self.port, TIMEOUT)
            try:
                s.sendall(connect_packet(cid_on("q2s-%d" % i, i % 2),
                                         clean=False) +
                          publish_packet("q2s/x", b"", qos=2, pid=1) +
                          DISCONNECT)
                closed, data = read_until_close(s, TIMEOUT)
                self.assertEqual((closed, data),
                                 (True, CONNACK_OK + b"\x50\x02\x00\x01"))
            finally:
                s.close()
        after = self.check_rss("%d sessions with a pending QoS 2 id" % n)
        per_session = (after - before) / n
        if not SANITIZED:
            self.assertLess(per_session, QOS2_SESSION_KIB,
                            "%.1f KiB per session" % per_session)
        # clean up: clean session 1 discards each session
        for i in range(n):
            s = raw_connect(self.port, TIMEOUT)
            try:
                s.sendall(connect_packet(cid_on("q2s-%d" % i, i % 2)) +
                          DISCONNECT)
                self.assertEqual(read_until_close(s, TIMEOUT),
                                 (True, CONNACK_OK))
            finally:
                s.close()
        note("QoS 2: %d persistent sessions each with one pending id: VmRSS "
             "+%.1f MiB (%.1f KiB per session, bound %d KiB); %.1f MiB "
             "after they were discarded"
             % (n, mib(after - before), per_session, QOS2_SESSION_KIB,
                mib(self.rss_kib())))


# ---- 8. many and big properties (MQTT 5) ------------------------------------

class BigPropertiesTests(HostileCase):
    group = "big properties"
    rss_bound_mib = RSS_BIG_PROPS_MIB

    def test_10000_user_properties(self):
        # A PUBLISH with 10000 user properties (~90 KiB, within
        # max_packet_size) is delivered to an MQTT 5 subscriber with all
        # of them, in order, and to a 3.1.1 subscriber without them
        # (docs/mqtt.md "forwarded properties").
        topic = "bp/" + self.tag
        w5 = self.connect5(cid_on(self.uid("w5"), 0))
        w3 = self.connect3(cid_on(self.uid("w3"), 1))
        self.assertEqual(self.subscribe(V5, w5, [(topic, 1)]), [1])
        self.assertEqual(self.subscribe(V3, w3, [(topic, 1)]), [1])
        user = [("k%d" % i, "v%d" % i) for i in range(10000)]
        pp = props(*[p_user(k, v) for k, v in user])
        self.assertEqual(self.publish(topic, b"many-props", v=V5, pprops=pp),
                         0)
        p = self.next_publish(V5, w5)
        self.assertEqual(p["payload"], b"many-props")
        self.assertEqual([v for i, v in p["props"] if i == USER_PROPERTY],
                         [(k.encode(), v.encode()) for k, v in user])
        p = self.next_publish(V3, w3)
        self.assertEqual(p["payload"], b"many-props")
        self.check_rss("10000 user properties")

    def test_properties_up_to_max_packet_size(self):
        # ~1 MiB of user properties: delivered when the packet fits
        # max_packet_size (1m), DISCONNECT 0x95 when it does not.
        topic = "bp/" + self.tag
        w5 = self.connect5(cid_on(self.uid("w5"), 0))
        self.assertEqual(self.subscribe(V5, w5, [(topic, 0)]), [0])
        one = p_user("k", "v")   # 7 bytes
        n_fit = (MAX_PACKET - 200) // len(one)
        pkt = publish5(topic, b"fits", 0, pprops=props(*[one] * n_fit))
        self.assertLessEqual(len(pkt), MAX_PACKET)
        s = self.connect5(cid_on(self.uid("bigp"), 1))
        s.sendall(pkt)
        s.sendall(PINGREQ)
        self.assertEqual(read_packet(s), (0xD0, b""))
        w5.settimeout(10.0)
        p = self.next_publish(V5, w5, timeout=10.0)
        self.assertEqual(p["payload"], b"fits")
        self.assertEqual(len(p["props"]), n_fit)
        fit_rss = self.check_rss("~1 MiB of properties")
        n_over = MAX_PACKET // len(one) + 1
        pkt = publish5(topic, b"too-big", 0, pprops=props(*[one] * n_over))
        self.assertGreater(len(pkt), MAX_PACKET)
        s = self.connect5(cid_on(self.uid("bigp"), 1))
        send_hostile(s, pkt[:64 * KiB])
        closed, data = read_until_close(s, TIMEOUT)
        self.assertTrue(closed)
        pkts, _ = split_stream(data)
        self.assertEqual([f for f, _ in pkts], [0xE0], describe(pkts))
        self.assertEqual(parse_reason(pkts[0][1])[0], 0x95)
        self.assertEqual(self.sync(V5, w5), [])
        note("big properties: PUBLISH with %d user properties (%.2f MiB) "
             "delivered; VmRSS %.1f MiB after it" %
             (n_fit, n_fit * len(one) / MiB, mib(fit_rss)))

    def test_huge_connect_properties(self):
        # CONNECT properties push the packet above max_connect_packet_size
        # (16k): closed on its header, without CONNACK (docs/security.md:
        # "Bigger packet before CONNECT is accepted: closed").  Just under
        # it, the same kind of CONNECT is accepted.
        for n_user, ok in ((3000, False), (100000, False), (2000, True)):
            with self.subTest(n_user=n_user):
                pkt = connect5(self.uid("bigc"), cprops=props(
                    *[p_user("k", "v")] * n_user))
                self.assertEqual(len(pkt) <= MAX_CONNECT, ok, len(pkt))
                s = self.sock()
                send_hostile(s, pkt)
                if ok:
                    first, body = read_packet(s)
                    self.assertEqual((first, body[1]), (0x20, 0))
                    s.sendall(disconnect5(0))
                    self.assertTrue(expect_closed(s))
                else:
                    closed, data = read_until_close(s, TIMEOUT)
                    self.assertEqual((closed, data), (True, b""))
        self.assertIn("exceeds max_connect_packet_size", self.log())



# ---- 9. WebSockets ------------------------------------------------------------

class WebSocketHostileTests(HostileCase):
    group = "websocket"
    rss_bound_mib = RSS_WEBSOCKET_MIB
    broker_config = ("sys_interval 0\nconnect_timeout 2\n"
                     "listener 0 127.0.0.1\nprotocol websockets\n")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.wsport = cls.broker.ws_ports[0]
            ws = cls.ws_canary = ws_connect(cls.wsport, TIMEOUT)
            ws.send(ws_binary(connect_packet(
                cid_on("ws-canary", 1), keepalive=300)))
            if ws.read_packet() != (0x20, b"\x00\x00"):
                raise AssertionError("WebSocket canary not connected")
            ws.send(ws_binary(subscribe_packet(1, [(cls.canary_topic, 0)])))
            if ws.read_packet()[0] != 0x90:
                raise AssertionError("WebSocket canary not subscribed")
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ws_canary.s.close()
        super().tearDownClass()

    def assert_canary(self):
        """Both canaries, over TCP and over WebSocket, get the message."""
        super().assert_canary()
        payload = ("canary-%d-%s" % (type(self).canary_seq,
                                     self.tag)).encode()
        ws = self.ws_canary
        ws.s.settimeout(TIMEOUT)
        for _ in range(100):
            first, body = ws.read_packet()
            if first >> 4 == 3 and parse_publish(first, body)["payload"] \
                    == payload:
                return
        self.fail("the WebSocket canary missed " + self.tag)

    def wsock(self):
        s = raw_connect(self.wsport, TIMEOUT)
        self._socks.append(s)
        return s

    def refused(self, request):
        """The HTTP status the broker answers request with (0: closed
        without one); the connection must end."""
        s = self.wsock()
        send_hostile(s, request)
        status, _, _ = ws_read_response(s)
        self.assertTrue(expect_closed(s, TIMEOUT))
        return status

    def session(self):
        ws = ws_connect(self.wsport, TIMEOUT)
        self._socks.append(ws.s)
        ws.send(ws_binary(connect_packet(self.uid("ws"))))
        self.assertEqual(ws.read_packet(), (0x20, b"\x00\x00"))
        return ws

    def close_code(self, data):
        ws = self.session()
        send_hostile(ws.s, data)
        return ws.close_code(TIMEOUT)

    def test_bad_upgrade_requests(self):
        good = ws_request()
        cases = [
            (b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            (good.replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400),
            (good.replace(b"Upgrade: websocket\r\n", b""), 400),
            (good.replace(b"Connection: Upgrade", b"Connection: close"),
             400),
            (good.replace(b"Host: 127.0.0.1\r\n", b""), 400),
            (good.replace(b"Host:", b"Host :"), 400),
            (good.replace(b"\r\nUpgrade", b"\r\n Upgrade"), 400),
            (good.replace(b"Host: 127.0.0.1", b"Host: a\x00b"), 400),
            (good.replace(b"GET /mqtt", b"GET mqtt"), 400),
            (connect_packet("not-http"), 405),
            (b"\x16\x03\x01\x02\x00" + b"\x00" * 100, 405),
            (good.replace(b"\r\n\r\n", b"\r\nHost: twice\r\n\r\n"), 400),
        ]
        for req, status in cases:
            with self.subTest(req=req[:40]):
                self.assertEqual(self.refused(req), status)
        self.assertIn("security: websocket refused", self.log())

    def test_one_mib_of_headers(self):
        pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000)
                       for i in range(1024))
        self.assertEqual(self.refused(ws_request(extra=pad)), 431)
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(100))
        self.assertEqual(self.refused(ws_request(extra=many)), 431)
        # Without the blank line: refused once 8 KiB have come.
        self.assertEqual(self.refused(b"GET /mqtt HTTP/1.1\r\n" +
                                      b"X: " + b"y" * MiB), 431)

    def test_slow_headers(self):
        # 20 sockets trickling a request one byte every 0.5 s: closed by
        # connect_timeout (2 s), which covers the handshake and CONNECT.
        n = 20
        socks = [self.wsock() for _ in range(n)]
        req = ws_request()
        pos = [0] * n
        start = time.monotonic()
        closed = set()
        while len(closed) < n and time.monotonic() < start + 10.0:
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                if peer_closed(s):
                    closed.add(i)
                elif pos[i] < len(req):
                    send_hostile(s, req[pos[i]:pos[i] + 1])
                    pos[i] += 1
            time.sleep(0.5)
        self.assertEqual(len(closed), n)
        self.assertTrue(all(p < len(req) for p in pos))
        note("websocket slow headers: %d sockets closed within %.1f s "
             "after %d-%d bytes" % (n, time.monotonic() - start, min(pos),
                                    max(pos)))

    def test_wrong_or_missing_key(self):
        for key in (b"", b"c2hvcnQ=", b"!!!!!!!!!!!!!!!!!!!!!!==",
                    b"dGhlIHNhbXBsZSBub25jZQ=", b"x" * 300):
            with self.subTest(key=key):
                self.assertEqual(self.refused(ws_request(key=key)), 400)
        two = ws_request().replace(
            b"\r\n\r\n",
            b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        self.assertEqual(self.refused(two), 400)

    def test_unmasked_client_frames(self):
        self.assertEqual(self.close_code(ws_frame(0x2, PINGREQ, mask=False)),
                         1002)
        self.assertEqual(self.close_code(ws_frame(0x9, b"p", mask=False)),
                         1002)

    def test_frame_length_2_63(self):
        self.assertEqual(self.close_code(ws_frame(0x2, length=1 << 63)),
                         1002)
        # Legal lengths beyond max_packet_size: refused on the header,
        # nothing allocated.
        for n in ((1 << 63) - 1, 1 << 40, 300 * MiB):
            self.assertEqual(self.close_code(ws_frame(0x2, length=n)), 1009)

    def test_reserved_opcodes_and_bits(self):
        for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            with self.subTest(opcode=op):
                self.assertEqual(self.close_code(ws_frame(op, b"x")), 1002)
        for rsv in (1, 2, 4, 7):
            with self.subTest(rsv=rsv):
                self.assertEqual(
                    self.close_code(ws_frame(0x2, PINGREQ, rsv=rsv)), 1002)

    def test_endless_continuation_frames(self):
        # Empty continuations: refused (1008) after 64.
        data = ws_frame(0x2, b"", fin=False) + \
            ws_frame(0x0, b"", fin=False) * 10000
        self.assertEqual(self.close_code(data), 1008)
        # A message that never ends, carrying a PUBLISH that claims 200
        # MiB: the MQTT layer refuses its header (max_packet_size).
        ws = self.session()
        head = b"\x30" + varint(200 * MiB)
        sent = send_hostile(ws.s, ws_frame(0x2, head, fin=False) + b"".join(
            ws_frame(0x0, b"z" * 1000, fin=False) for _ in range(2000)))
        self.assertGreater(sent, 0)
        self.assertIn(ws.close_code(TIMEOUT), (1000, None))
        self.assertIn("exceeds max_packet_size", self.log())

    def test_control_frames_over_125_bytes(self):
        for op in (0x8, 0x9, 0xA):
            for n in (126, 1000, 70000):
                with self.subTest(opcode=op, n=n):
                    self.assertEqual(
                        self.close_code(ws_frame(op, b"c" * n)), 1002)

    def test_text_frames(self):
        self.assertEqual(self.close_code(ws_frame(0x1, b"{}")), 1003)
        # A text frame continuing a binary message is a protocol error.
        self.assertEqual(self.close_code(
            ws_frame(0x2, b"\xc0", fin=False) + ws_frame(0x1, b"\x00")),
            1002)

    def test_ping_flood(self):
        # 20000 pings of 125 bytes without reading: the broker keeps one
        # pong pending, its memory stays flat, and MQTT still works.
        ws = self.session()
        flood = ws_frame(0x9, b"f" * 125) * 1000
        for _ in range(20):
            self.assertEqual(send_hostile(ws.s, flood), len(flood))
        self.check_rss("after the ping flood")
        ws.send(ws_binary(PINGREQ))
        ws.s.settimeout(TIMEOUT)
        self.assertEqual(ws.read_packet(), (0xD0, b""))
        pongs = [c for c in ws.control if c[0] == 0xA]
        self.assertTrue(all(p == b"f" * 125 for _, p in pongs))
        note("websocket ping flood: 20000 pings, %d pongs back (a ping "
             "that comes while a pong waits replaces it)" % len(pongs))

    def test_disallowed_origin(self):
        for i in range(50):
            self.assertEqual(self.refused(ws_request(
                origin="https://evil-%d.example" % i)), 403)
        self.assertGreaterEqual(self.log().count("Origin not allowed"), 50)


if __name__ == "__main__":
    unittest.main()
