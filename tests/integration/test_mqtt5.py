"""MQTT 5.0 conformance of moatd ('mqtt5 true').

Drives the real moatd over loopback with hand-built MQTT 5.0 packets (for
exact bytes and error paths) and with Debian's paho-mqtt 1.6.1 (for
interoperability with a real client library).  Each case checks that the
broker keeps serving: a v5 "guard" subscriber connected before the case
must still get a QoS 1 publish afterwards (V5TestCase.tearDown).

Statement ids in comments ([MQTT-x.y.z-n]) refer to the OASIS MQTT 5.0
specification.  Only loopback traffic; every socket has a timeout, every
wait is bounded, and timing is only asserted with generous bounds.

Run with the system interpreter, which has Debian's paho:
    MOATD_BIN=.../moatd /usr/bin/python3 -m unittest -v test_mqtt5
"""
import os
import select
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    u16, as_bytes, PINGREQ,
    cid_on, read_until_close, send_quietly,
    HOST, BrokerTest, connect_packet, expect_closed, mqtt_str, packet,
    raw_connect, read_packet, varint, wait_for)

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover - depends on the host
    mqtt = None

WORKERS = 2
TIMEOUT = 5.0       # bound for one exchange
SETTLE = 0.5        # grace period before asserting that nothing arrived


# Property identifiers (MQTT 5.0 section 2.2.2.2)
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEPALIVE = 0x13
AUTH_METHOD = 0x15
WILL_DELAY = 0x18
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_AVAILABLE = 0x28
SUBID_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A

# value type of each property: b=byte, 2=u16, 4=u32, v=varint,
# s=UTF-8 string, x=binary data, p=string pair
PROP_TYPES = {
    0x01: "b", 0x02: "4", 0x03: "s", 0x08: "s", 0x09: "x", 0x0B: "v",
    0x11: "4", 0x12: "s", 0x13: "2", 0x15: "s", 0x16: "x", 0x17: "b",
    0x18: "4", 0x19: "b", 0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: "2",
    0x22: "2", 0x23: "2", 0x24: "b", 0x25: "b", 0x26: "p", 0x27: "4",
    0x28: "b", 0x29: "b", 0x2A: "b",
}


# ---- packet builders -----------------------------------------------------









def p_byte(pid, v):
    return bytes([pid, v])


def p_u16(pid, v):
    return bytes([pid]) + u16(v)


def p_u32(pid, v):
    return bytes([pid]) + v.to_bytes(4, "big")


def p_var(pid, v):
    return bytes([pid]) + varint(v)


def p_str(pid, s):
    return bytes([pid]) + mqtt_str(as_bytes(s))


def p_user(k, v):
    return bytes([USER_PROPERTY]) + mqtt_str(as_bytes(k)) + \
        mqtt_str(as_bytes(v))


def props(*items):
    """A property block: its length (variable byte integer), then the
    properties in order."""
    body = b"".join(items)
    return varint(len(body)) + body


NOPROPS = b"\x00"


def connect5(client_id, clean=True, keepalive=60, cprops=NOPROPS, will=None,
             will_props=NOPROPS, user=None, password=None):
    """A v5 CONNECT; will = (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = mqtt_str(as_bytes(client_id))
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += will_props + mqtt_str(as_bytes(topic)) + \
            mqtt_str(as_bytes(msg))
    if user is not None:
        flags |= 0x80
        payload += mqtt_str(as_bytes(user))
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(as_bytes(password))
    body = mqtt_str(b"MQTT") + bytes([5, flags]) + u16(keepalive) + \
        cprops + payload
    return packet(0x10, body)


def publish5(topic, payload=b"", qos=0, pid=1, retain=False,
             pprops=NOPROPS, dup=False):
    body = mqtt_str(as_bytes(topic))
    if qos:
        body += u16(pid)
    body += pprops + as_bytes(payload)
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(first, body)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (rh << 4)


def subscribe5(pid, filters, sprops=NOPROPS):
    """filters: [(filter, options byte)]"""
    body = u16(pid) + sprops
    for f, o in filters:
        body += mqtt_str(as_bytes(f)) + bytes([o])
    return packet(0x82, body)


def unsubscribe5(pid, filters, uprops=NOPROPS):
    body = u16(pid) + uprops
    for f in filters:
        body += mqtt_str(as_bytes(f))
    return packet(0xA2, body)


ACK_FIRST = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62,
             "pubcomp": 0x70}


def ack5(kind, pid, reason=None, aprops=None):
    body = u16(pid)
    if reason is not None:
        body += bytes([reason])
        if aprops is not None:
            body += aprops
    return packet(ACK_FIRST[kind], body)


def disconnect5(reason=None, dprops=None):
    body = b""
    if reason is not None:
        body += bytes([reason])
        if dprops is not None:
            body += dprops
    return packet(0xE0, body)


# ---- packet parsers --------------------------------------------------------

def read_varint(data, pos):
    value, mult = 0, 1
    for _ in range(4):
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, pos
    raise AssertionError("bad variable byte integer")


def parse_props(data, pos=0):
    """(list of (id, value) in wire order, position after the block)."""
    length, pos = read_varint(data, pos)
    end = pos + length
    assert end <= len(data), "property block longer than the packet"
    out = []
    while pos < end:
        pid, pos = read_varint(data, pos)
        t = PROP_TYPES.get(pid)
        assert t, "unknown property 0x%02x from the broker" % pid
        if t == "b":
            v = data[pos]
            pos += 1
        elif t == "2":
            v = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2
        elif t == "4":
            v = int.from_bytes(data[pos:pos + 4], "big")
            pos += 4
        elif t == "v":
            v, pos = read_varint(data, pos)
        elif t in "sx":
            n = int.from_bytes(data[pos:pos + 2], "big")
            v = data[pos + 2:pos + 2 + n]
            pos += 2 + n
        else:
            n = int.from_bytes(data[pos:pos + 2], "big")
            k = data[pos + 2:pos + 2 + n]
            pos += 2 + n
            n = int.from_bytes(data[pos:pos + 2], "big")
            v = (k, data[pos + 2:pos + 2 + n])
            pos += 2 + n
        out.append((pid, v))
    assert pos == end, "property overruns its block"
    return out, end


def pget(plist, pid, default=None):
    for i, v in plist:
        if i == pid:
            return v
    return default


def pall(plist, pid):
    return [v for i, v in plist if i == pid]


def parse_publish5(first, body):
    assert first >> 4 == 3, "not a PUBLISH: 0x%02x" % first
    qos = (first >> 1) & 3
    tlen = int.from_bytes(body[:2], "big")
    topic = body[2:2 + tlen]
    pos = 2 + tlen
    pid = None
    if qos:
        pid = int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
    plist, pos = parse_props(body, pos)
    return {"first": first, "topic": topic, "qos": qos, "pid": pid,
            "dup": bool(first & 0x08), "retain": bool(first & 0x01),
            "props": plist, "payload": body[pos:]}


def parse_publish3(first, body):
    assert first >> 4 == 3, "not a PUBLISH: 0x%02x" % first
    qos = (first >> 1) & 3
    tlen = int.from_bytes(body[:2], "big")
    pos = 2 + tlen
    pid = None
    if qos:
        pid = int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
    return {"first": first, "topic": body[2:2 + tlen], "qos": qos,
            "pid": pid, "dup": bool(first & 0x08),
            "retain": bool(first & 0x01), "props": [],
            "payload": body[pos:]}


def parse_reason(body):
    """DISCONNECT/PUBACK-style tail: (reason, props)."""
    if not body:
        return 0, []
    if len(body) == 1:
        return body[0], []
    plist, end = parse_props(body, 1)
    assert end == len(body), "trailing bytes after the properties"
    return body[0], plist


def parse_ack5(body):
    """PUBACK/PUBREC/PUBREL/PUBCOMP: (packet id, reason, props)."""
    pid = int.from_bytes(body[:2], "big")
    reason, plist = parse_reason(body[2:])
    return pid, reason, plist




def split_packets(data):
    """Whole packets in data as (first, body)."""
    out, pos = [], 0
    while pos < len(data):
        first = data[pos]
        n, p = read_varint(data, pos + 1)
        out.append((first, data[p:p + n]))
        pos = p + n
    return out




# ---- a raw client ----------------------------------------------------------

class Raw:
    """A connected raw client (v5, or v3.1.1 with v5=False)."""

    def __init__(self, test, s, v5=True):
        self.t = test
        self.s = s
        self.v5 = v5
        self.connack = None     # (flags, reason, props)
        self._pid = 0

    def pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def send(self, data):
        self.s.sendall(data)

    def read(self, timeout=TIMEOUT):
        self.s.settimeout(timeout)
        return read_packet(self.s)

    def parse(self, first, body):
        return parse_publish5(first, body) if self.v5 else \
            parse_publish3(first, body)

    def take(self, first, body, ack=True):
        p = self.parse(first, body)
        if ack and p["qos"] == 1:
            self.send(ack5("puback", p["pid"]))
        elif ack and p["qos"] == 2:
            self.send(ack5("pubrec", p["pid"]))
        return p

    def next_publish(self, ack=True, timeout=TIMEOUT):
        """The next PUBLISH (acknowledged unless ack=False), answering
        PUBRELs on the way."""
        deadline = time.monotonic() + timeout
        while True:
            first, body = self.read(max(0.05, deadline - time.monotonic()))
            if first == 0x62:
                self.send(ack5("pubcomp", int.from_bytes(body[:2], "big")))
                continue
            self.t.assertEqual(first >> 4, 3,
                               "expected PUBLISH, got 0x%02x %r"
                               % (first, body[:40]))
            return self.take(first, body, ack)

    def sync(self, ack=True):
        """PINGREQ and read up to the PINGRESP; the publishes before it."""
        self.send(PINGREQ)
        got = []
        while True:
            first, body = self.read()
            if first == 0xD0:
                return got
            if first == 0x62:
                self.send(ack5("pubcomp", int.from_bytes(body[:2], "big")))
                continue
            self.t.assertEqual(first >> 4, 3, "unexpected 0x%02x" % first)
            got.append(self.take(first, body, ack))

    def quiet(self, settle=SETTLE, ack=True):
        """Publishes that arrive within settle seconds, then up to a
        PINGRESP."""
        time.sleep(settle)
        return self.sync(ack)

    def subscribe(self, filters, sprops=NOPROPS):
        """filters: [(filter, options)]; returns the SUBACK codes."""
        pid = self.pid()
        if self.v5:
            self.send(subscribe5(pid, filters, sprops))
        else:
            body = u16(pid) + b"".join(mqtt_str(as_bytes(f)) + bytes([o])
                                       for f, o in filters)
            self.send(packet(0x82, body))
        first, body = self.read()
        self.t.assertEqual(first, 0x90, "expected SUBACK, got 0x%02x" % first)
        self.t.assertEqual(body[:2], u16(pid))
        if not self.v5:
            return list(body[2:])
        _, end = parse_props(body, 2)
        return list(body[end:])

    def unsubscribe(self, filters):
        pid = self.pid()
        self.send(unsubscribe5(pid, filters))
        first, body = self.read()
        self.t.assertEqual(first, 0xB0, "expected UNSUBACK, got 0x%02x"
                           % first)
        self.t.assertEqual(body[:2], u16(pid))
        _, end = parse_props(body, 2)
        return list(body[end:])

    def publish(self, topic, payload, qos=0, retain=False, pprops=NOPROPS):
        """Publish and finish the handshake; returns the reason code of
        the PUBACK/PUBREC (0 for QoS 0)."""
        pid = self.pid() if qos else 0
        if self.v5:
            self.send(publish5(topic, payload, qos, pid, retain, pprops))
        else:
            body = mqtt_str(as_bytes(topic)) + (u16(pid) if qos else b"") \
                + as_bytes(payload)
            self.send(packet(0x30 | (qos << 1) | (1 if retain else 0), body))
        if qos == 0:
            return 0
        first, body = self.read()
        self.t.assertEqual(first, 0x40 if qos == 1 else 0x50,
                           "expected PUBACK/PUBREC, got 0x%02x %r"
                           % (first, body))
        got, reason, _ = parse_ack5(body)
        self.t.assertEqual(got, pid)
        if qos == 2 and reason < 0x80:
            self.send(ack5("pubrel", pid))
            first, body = self.read()
            self.t.assertEqual(first, 0x70)
            self.t.assertEqual(parse_ack5(body)[:2], (pid, 0))
        return reason

    def disconnect(self, reason=None, dprops=None):
        self.send(disconnect5(reason, dprops) if self.v5 else b"\xe0\x00")
        self.t.assertTrue(expect_closed(self.s), "not closed after "
                          "DISCONNECT")
        self.s.close()

    def abort(self):
        """Drop the connection without DISCONNECT (RST)."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
        self.s.close()

    def expect_disconnect(self, reason):
        """The broker's next packet is DISCONNECT with reason (or one of
        a tuple of reasons), then it closes."""
        reasons = reason if isinstance(reason, tuple) else (reason,)
        reason = reasons[0]
        closed, data = read_until_close(self.s)
        self.t.assertTrue(data, "closed without a DISCONNECT (wanted 0x%02x)"
                          % reason)
        pkts = split_packets(data)
        first, body = pkts[-1]
        self.t.assertEqual(
            first, 0xE0, "expected DISCONNECT 0x%02x, got packets %r"
            % (reason, [(hex(f), b[:20]) for f, b in pkts]))
        got, plist = parse_reason(body)
        self.t.assertIn(got, reasons, "DISCONNECT reason 0x%02x, wanted "
                        "0x%02x (%r)" % (got, reason,
                                         pget(plist, REASON_STRING)))
        self.t.assertTrue(closed, "not closed after the DISCONNECT")
        return pkts


# ---- paho ------------------------------------------------------------------

class Paho:
    """A paho client (v5 or v3.1.1) on its own network thread, with its
    callbacks recorded."""

    def __init__(self, port, cid, v5=True, cprops=None, clean=True):
        self.v5 = v5
        self.lock = threading.Lock()
        self.msgs = []
        self.connacks = []
        self.subacks = {}
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean,
                                 protocol=mqtt.MQTTv311)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.reconnect_delay_set(min_delay=120, max_delay=120)
        if v5:
            self.c.connect(HOST, port, 60, clean_start=clean,
                           properties=cprops)
        else:
            self.c.connect(HOST, port, 60)
        self.c.loop_start()
        if not wait_for(lambda: self.connacks, TIMEOUT):
            self.close()
            raise AssertionError("no CONNACK for %r" % cid)
        rc = self.connacks[0]
        if getattr(rc, "value", rc) != 0:
            self.close()
            raise AssertionError("CONNACK %r for %r" % (rc, cid))

    def _on_connect(self, c, u, flags, rc, *rest):
        with self.lock:
            self.connacks.append(rc)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def _on_subscribe(self, c, u, mid, granted, *rest):
        with self.lock:
            self.subacks[mid] = [getattr(g, "value", g) for g in granted]

    def subscribe(self, topic, qos, **opts):
        if self.v5:
            rc, mid = self.c.subscribe(
                topic, options=SubscribeOptions(qos=qos, **opts))
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == 0
        assert wait_for(lambda: mid in self.subacks, TIMEOUT), "no SUBACK"
        return self.subacks[mid]

    def publish(self, topic, payload, qos, pprops=None, retain=False):
        info = self.c.publish(topic, payload, qos, retain,
                              properties=pprops)
        assert wait_for(info.is_published, TIMEOUT), "publish not acked"

    def got(self):
        with self.lock:
            return list(self.msgs)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# ---- base class --------------------------------------------------------------

class V5TestCase(BrokerTest):
    workers = WORKERS
    broker_config = "mqtt5 true\n"
    guard_v5 = True

    def setUp(self):
        super().setUp()
        self._socks = []
        self._paho = []
        self._n = 0
        self.tag = self._testMethodName
        self.guard_topic = "guard/" + self.tag
        self.guard = self.client(cid_on("guard-" + self.tag, 0),
                                 v5=self.guard_v5)
        self.assertEqual(self.guard.subscribe([(self.guard_topic, 1)]), [1])

    def tearDown(self):
        try:
            self.assert_serving()
        finally:
            for p in self._paho:
                try:
                    p.close()
                except Exception:
                    pass
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        super().tearDown()

    def assert_serving(self):
        self.assertTrue(self.broker.alive(),
                        "broker died:\n" + self.broker.read_log()[-4000:])
        payload = ("still-serving-" + self.tag).encode()
        self.pub(self.guard_topic, payload, qos=1, v5=self.guard_v5)
        p = self.guard.next_publish()
        self.assertEqual((p["topic"], p["payload"], p["qos"]),
                         (self.guard_topic.encode(), payload, 1))

    # -- connections --

    def uid(self, what="c"):
        self._n += 1
        return "%s-%s-%d" % (what, self.tag, self._n)

    def sock(self):
        s = raw_connect(self.port, TIMEOUT)
        self._socks.append(s)
        return s

    def client(self, cid=None, worker=None, v5=True, clean=True,
               keepalive=60, cprops=NOPROPS, will=None, will_props=NOPROPS,
               present=False, reason=0):
        """A connected raw client; asserts the CONNACK's reason and
        session-present flag."""
        if cid is None:
            cid = self.uid() if worker is None else \
                cid_on(self.uid(), worker)
        s = self.sock()
        c = Raw(self, s, v5)
        if v5:
            s.sendall(connect5(cid, clean, keepalive, cprops, will,
                               will_props))
        else:
            s.sendall(connect_packet(cid, clean=clean, keepalive=keepalive,
                                     will=will))
        first, body = c.read()
        self.assertEqual(first, 0x20, "expected CONNACK, got 0x%02x" % first)
        if v5:
            plist, _ = parse_props(body, 2)
            c.connack = (body[0], body[1], plist)
            self.assertEqual(body[1], reason, "CONNACK reason 0x%02x (%r)"
                             % (body[1], pget(plist, REASON_STRING)))
        else:
            c.connack = (body[0], body[1], [])
            self.assertEqual(body[1], reason)
        self.assertEqual(body[0], 1 if present else 0,
                         "session present flag")
        return c

    def paho(self, cid, **kw):
        p = Paho(self.port, cid, **kw)
        self._paho.append(p)
        return p

    def pub(self, topic, payload, qos=0, retain=False, pprops=NOPROPS,
            worker=1, v5=True):
        """Publish from a fresh client homed on worker; returns the
        reason code of its PUBACK/PUBREC."""
        c = self.client(cid_on(self.uid("pub"), worker), v5=v5)
        rc = c.publish(topic, payload, qos, retain, pprops)
        c.disconnect()
        return rc

    def watcher(self, filters, worker=0, qos=1):
        c = self.client(cid_on(self.uid("watch"), worker))
        self.assertEqual(c.subscribe([(f, qos) for f in filters]),
                         [qos] * len(filters))
        c.sync()
        return c

    def until_marker(self, c, marker_topic):
        """Publish a marker and return every publish c gets before it."""
        marker = ("marker-" + self.uid()).encode()
        self.pub(marker_topic, marker, qos=1)
        seen = []
        while True:
            p = c.next_publish()
            if p["payload"] == marker:
                return seen
            seen.append(p)

    def assert_not_delivered(self, c, marker_topic, payload):
        seen = self.until_marker(c, marker_topic)
        self.assertNotIn(payload, [p["payload"] for p in seen],
                         "a refused message was delivered")

    def collect(self, clients, total, timeout=10.0):
        """Publishes (acknowledged) from several raw clients until total
        have arrived or timeout; {client index: [publish]}."""
        got = {i: [] for i in range(len(clients))}
        by_sock = {c.s: i for i, c in enumerate(clients)}
        deadline = time.monotonic() + timeout
        n = 0
        while n < total and time.monotonic() < deadline:
            r, _, _ = select.select(list(by_sock), [], [],
                                    max(0.0, deadline - time.monotonic()))
            for s in r:
                i = by_sock[s]
                got[i].append(clients[i].next_publish())
                n += 1
        return got


# ---- 1. v3.1.1 and v5 together -------------------------------------------

@unittest.skipIf(mqtt is None, "paho-mqtt is not installed")
class InteropTests(V5TestCase):
    def test_v3_and_v5_exchange_both_ways(self):
        user = [("k", "1"), ("k", "2"), ("a", "x"), ("k", "3"),
                ("\u00e9t\u00e9", "")]
        topic = "ix/" + self.tag
        s3 = self.paho(cid_on(self.uid("s3"), 0), v5=False)
        s5 = self.paho(cid_on(self.uid("s5"), 1))
        raw3 = self.client(worker=1, v5=False)
        self.assertEqual(s3.subscribe("ix/#", 2), [2])
        self.assertEqual(s5.subscribe("ix/#", 2), [2])
        self.assertEqual(raw3.subscribe([("ix/#", 2)]), [2])
        p3 = self.paho(cid_on(self.uid("p3"), 1), v5=False)
        p5 = self.paho(cid_on(self.uid("p5"), 0))
        sent = []
        for qos in (0, 1, 2):
            payload = ("from-v3-q%d" % qos).encode()
            p3.publish(topic, payload, qos)
            sent.append(("v3", payload, qos))
            pp = Properties(PacketTypes.PUBLISH)
            for kv in user:
                pp.UserProperty = kv
            payload = ("from-v5-q%d" % qos).encode()
            p5.publish(topic, payload, qos, pprops=pp)
            sent.append(("v5", payload, qos))
        for name, sub in (("v3", s3), ("v5", s5)):
            self.assertTrue(wait_for(lambda: len(sub.got()) >= 6, 10.0),
                            "%s subscriber got %r" % (name, sub.got()))
            got = sub.got()
            self.assertEqual(len(got), 6)
            for origin in ("v3", "v5"):
                want = [(p, q) for o, p, q in sent if o == origin]
                have = [(bytes(m.payload), m.qos) for m in got
                        if bytes(m.payload).startswith(
                            ("from-" + origin).encode())]
                # in order per publisher [MQTT-4.6.0-5]
                self.assertEqual(have, want, "%s receiver" % name)
            for m in got:
                self.assertEqual(m.topic, topic)
                if name != "v5":
                    continue
                up = getattr(m.properties, "UserProperty", None)
                if bytes(m.payload).startswith(b"from-v5"):
                    # unchanged and in order [MQTT-3.3.2-18]
                    self.assertEqual(up, user)
                else:
                    self.assertIsNone(up)
        # A 3.1.1 receiver gets exact 3.1.1 packets: no properties.
        got = [raw3.next_publish() for _ in range(6)]
        for p in got:
            self.assertEqual(p["topic"], topic.encode())
            self.assertIn(p["payload"], [s for _, s, _ in sent])
        self.assertEqual(sorted(p["payload"] for p in got),
                         sorted(s for _, s, _ in sent))
        self.assertEqual(raw3.quiet(), [])

    def test_paho_subscription_options(self):
        me = self.paho(cid_on(self.uid("me"), 0))
        other = self.paho(cid_on(self.uid("other"), 1))
        self.assertEqual(me.subscribe("po/t", 1, noLocal=True,
                                      retainAsPublished=True), [1])
        me.publish("po/t", b"mine", 1)             # No Local
        other.publish("po/t", b"theirs", 1, retain=True)
        other.publish("po/t", b"theirs-live", 1)
        self.assertTrue(wait_for(lambda: len(me.got()) >= 2, TIMEOUT))
        other.publish("po/t", b"", 0, retain=True)
        time.sleep(SETTLE)
        got = [(bytes(m.payload), m.retain) for m in me.got()]
        # Retain As Published keeps the flag on live delivery
        self.assertEqual(got[:2], [(b"theirs", 1), (b"theirs-live", 0)])
        self.assertNotIn(b"mine", [p for p, _ in got])

    def test_v5_publish_properties_stripped_for_raw_v3(self):
        raw3 = self.client(worker=0, v5=False)
        self.assertEqual(raw3.subscribe([("ix3/t", 0)]), [0])
        self.pub("ix3/t", b"hello", pprops=props(
            p_user("k", "v"), p_str(CONTENT_TYPE, "text/plain"),
            p_u32(MESSAGE_EXPIRY, 100), p_byte(PAYLOAD_FORMAT, 1)))
        first, body = raw3.read()
        self.assertEqual(bytes([first]) + varint(len(body)) + body,
                         b"\x30\x0c\x00\x05ix3/thello")


# ---- 2. property validation -------------------------------------------------

class PropertyValidationTests(V5TestCase):
    def bad_publish(self, pkt, reason, payload):
        w = self.watcher(["pv/#"])
        c = self.client(worker=1)
        send_quietly(c.s, pkt)
        c.expect_disconnect(reason)
        self.assert_not_delivered(w, "pv/x", payload)

    def test_duplicate_message_expiry_is_protocol_error(self):
        # A property that is not repeatable, twice: Protocol Error
        self.bad_publish(publish5("pv/x", b"dup-expiry", 1, 3, pprops=props(
            p_u32(MESSAGE_EXPIRY, 10), p_u32(MESSAGE_EXPIRY, 10))),
            0x82, b"dup-expiry")

    def test_duplicate_content_type_is_protocol_error(self):
        self.bad_publish(publish5("pv/x", b"dup-ct", 0, pprops=props(
            p_str(CONTENT_TYPE, "a"), p_str(CONTENT_TYPE, "b"))),
            0x82, b"dup-ct")

    def test_session_expiry_in_publish_is_malformed(self):
        # section 2.2.2.2: an identifier not valid for the packet type is a
        # Malformed Packet
        self.bad_publish(publish5("pv/x", b"sess-exp", 1, 3, pprops=props(
            p_u32(SESSION_EXPIRY, 10))), 0x81, b"sess-exp")

    def test_unknown_property_is_malformed(self):
        self.bad_publish(publish5("pv/x", b"unknown-prop", 1, 3,
                                  pprops=props(b"\x7f\x00")),
                         0x81, b"unknown-prop")

    def test_property_length_cuts_a_value_is_malformed(self):
        # the block says 3 bytes, the Message Expiry needs 5
        body = mqtt_str(b"pv/x") + u16(3) + b"\x03\x02\x00\x00" + \
            b"\x00\x10cut-value"
        self.bad_publish(packet(0x32, body), 0x81, b"cut-value")

    def test_property_length_beyond_packet_is_malformed(self):
        body = mqtt_str(b"pv/x") + u16(3) + varint(60) + \
            p_u32(MESSAGE_EXPIRY, 5) + b"beyond"
        self.bad_publish(packet(0x32, body), 0x81, b"beyond")

    def test_subscription_identifier_from_client_is_protocol_error(self):
        # [MQTT-3.3.4-6] a PUBLISH from a Client MUST NOT contain a
        # Subscription Identifier
        self.bad_publish(publish5("pv/x", b"subid", 1, 3, pprops=props(
            p_var(SUBSCRIPTION_ID, 5))), 0x82, b"subid")

    def test_payload_format_2_is_protocol_error(self):
        self.bad_publish(publish5("pv/x", b"format-2", 1, 3, pprops=props(
            p_byte(PAYLOAD_FORMAT, 2))), 0x82, b"format-2")

    def test_invalid_utf8_in_user_property_is_malformed(self):
        self.bad_publish(publish5("pv/x", b"bad-user", 1, 3, pprops=props(
            bytes([USER_PROPERTY]) + mqtt_str(b"k\xff") + mqtt_str(b"v"))),
            0x81, b"bad-user")

    def test_user_properties_accepted_everywhere(self):
        c = self.client(cprops=props(p_user("c", "1"), p_user("c", "2")))
        up = props(p_user("x", "y"))
        self.assertEqual(c.subscribe([("pv/u", 1)], up), [1])
        c.send(unsubscribe5(7, ["pv/u"], up))
        self.assertEqual(c.read(), (0xB0, u16(7) + b"\x00\x00"))
        c.send(PINGREQ)
        self.assertEqual(c.read(), (0xD0, b""))
        c.disconnect(0, up)

    def test_subscribe_without_filters_is_protocol_error(self):
        # [MQTT-3.8.3-2]
        c = self.client()
        c.send(packet(0x82, u16(1) + NOPROPS))
        c.expect_disconnect(0x82)

    def test_topic_alias_in_subscribe_is_malformed(self):
        c = self.client(worker=1)
        c.send(subscribe5(1, [("pv/a", 0)], props(p_u16(TOPIC_ALIAS, 1))))
        c.expect_disconnect(0x81)

    def test_bad_property_in_ack_and_disconnect(self):
        # Topic Alias is not allowed in a PUBACK, nor Will Delay in a
        # DISCONNECT.
        c = self.client(worker=1)
        c.send(ack5("puback", 7, 0, props(p_u16(TOPIC_ALIAS, 1))))
        c.expect_disconnect(0x81)
        c = self.client(worker=0)
        c.send(disconnect5(0, props(p_u32(WILL_DELAY, 1))))
        c.expect_disconnect(0x81)

    def test_wildcard_in_topic_name_is_refused(self):
        # [MQTT-3.3.2-2]; the spec names no code: Protocol Error or Topic
        # Name invalid
        self.bad_publish(publish5("pv/+", b"wild", 1, 3), (0x82, 0x90),
                         b"wild")


# ---- 3. CONNECT and CONNACK ---------------------------------------------------

class ConnectTests(V5TestCase):
    def refused(self, data):
        """(closed, packets) for a CONNECT that should be refused."""
        s = self.sock()
        send_quietly(s, data)
        closed, got = read_until_close(s)
        self.assertTrue(closed, "connection not closed")
        return split_packets(got)

    def test_unsupported_level_gets_311_connack_01(self):
        # [MQTT-3.1.2-2] CONNACK 0x01 in the 3.1.1 format, then close
        s = self.sock()
        s.sendall(connect_packet(self.uid(), level=6))
        closed, data = read_until_close(s)
        self.assertEqual(data, b"\x20\x02\x00\x01")
        self.assertTrue(closed)

    def test_authentication_method_gets_8c(self):
        pkts = self.refused(connect5(self.uid(), cprops=props(
            p_str(AUTH_METHOD, "SCRAM-SHA-1"))))
        self.assertEqual(len(pkts), 1, pkts)
        first, body = pkts[0]
        self.assertEqual(first, 0x20)
        self.assertEqual(body[:2], b"\x00\x8c")
        parse_props(body, 2)

    def assert_refused_with(self, data, reasons):
        pkts = self.refused(data)
        if pkts:   # CONNACK with the reason, or just the close
            self.assertEqual(len(pkts), 1, pkts)
            first, body = pkts[0]
            self.assertEqual(first, 0x20)
            self.assertEqual(body[0], 0)
            self.assertIn(body[1], reasons)

    def test_malformed_connect_properties(self):
        with self.subTest("topic alias in CONNECT"):
            self.assert_refused_with(connect5(self.uid(), cprops=props(
                p_u16(TOPIC_ALIAS, 1))), [0x81])
        with self.subTest("length beyond packet"):
            body = mqtt_str(b"MQTT") + b"\x05\x02" + u16(60) + \
                varint(40) + p_u32(SESSION_EXPIRY, 1)
            self.assert_refused_with(packet(0x10, body), [0x81])
        with self.subTest("length cuts a value"):
            body = mqtt_str(b"MQTT") + b"\x05\x02" + u16(60) + \
                varint(2) + p_u32(SESSION_EXPIRY, 1) + mqtt_str(b"x")
            self.assert_refused_with(packet(0x10, body), [0x81])
        with self.subTest("duplicate session expiry"):
            self.assert_refused_with(connect5(self.uid(), cprops=props(
                p_u32(SESSION_EXPIRY, 1), p_u32(SESSION_EXPIRY, 1))),
                [0x82])
        with self.subTest("receive maximum 0"):
            self.assert_refused_with(connect5(self.uid(), cprops=props(
                p_u16(RECEIVE_MAXIMUM, 0))), [0x82])
        with self.subTest("will property in CONNECT properties"):
            self.assert_refused_with(connect5(self.uid(), cprops=props(
                p_u32(WILL_DELAY, 1))), [0x81])
        with self.subTest("session expiry in will properties"):
            self.assert_refused_with(connect5(
                self.uid(), will=("w/x", b"w", 0, False),
                will_props=props(p_u32(SESSION_EXPIRY, 1))), [0x81])

    def test_auth_data_without_method_is_protocol_error(self):
        # section 3.1.2.11.10: "It is a Protocol Error to include
        # Authentication Data if there is no Authentication Method"
        self.assert_refused_with(connect5(self.uid(), cprops=props(
            bytes([0x16]) + mqtt_str(b"data"))), [0x82])

    def test_empty_client_id_is_assigned(self):
        # [MQTT-3.2.2-16] Assigned Client Identifier in CONNACK
        a = self.client("")
        b = self.client("")
        ida = pget(a.connack[2], ASSIGNED_CLIENT_ID)
        idb = pget(b.connack[2], ASSIGNED_CLIENT_ID)
        self.assertIsNotNone(ida, a.connack)
        self.assertTrue(ida.startswith(b"auto-"), ida)
        self.assertTrue(idb.startswith(b"auto-"), idb)
        self.assertNotEqual(ida, idb)
        # and the connection works
        self.assertEqual(a.subscribe([("as/t", 1)]), [1])
        self.pub("as/t", b"to-assigned", qos=1)
        self.assertEqual(a.next_publish()["payload"], b"to-assigned")

    def test_keepalive_0_or_too_long_gets_server_keepalive(self):
        # [MQTT-3.2.2-21]/[MQTT-3.2.2-22]: told with Server Keep Alive
        for ka in (0, 1000, 65535):
            with self.subTest(keepalive=ka):
                c = self.client(keepalive=ka)
                self.assertEqual(pget(c.connack[2], SERVER_KEEPALIVE), 300)
                c.sync()
        c = self.client(keepalive=60)
        self.assertIn(pget(c.connack[2], SERVER_KEEPALIVE), (None, 60))

    def test_connack_advertises_limits(self):
        c = self.client()
        plist = c.connack[2]
        self.assertEqual(pget(plist, RECEIVE_MAXIMUM), 20)
        self.assertEqual(pget(plist, MAXIMUM_PACKET_SIZE), 1048576)
        self.assertEqual(pget(plist, TOPIC_ALIAS_MAXIMUM), 10)
        # absent means "available" / QoS 2
        self.assertIn(pget(plist, MAXIMUM_QOS), (None,))
        for pid in (RETAIN_AVAILABLE, WILDCARD_AVAILABLE, SUBID_AVAILABLE,
                    SHARED_AVAILABLE):
            self.assertIn(pget(plist, pid), (None, 1), hex(pid))
        for pid, _ in plist:   # no property twice
            if pid != USER_PROPERTY:
                self.assertEqual(len(pall(plist, pid)), 1, hex(pid))

    def test_will_payload_not_utf8_gets_99(self):
        s = self.sock()
        s.sendall(connect5(self.uid(), will=("w/x", b"\xff\xfe", 0, False),
                           will_props=props(p_byte(PAYLOAD_FORMAT, 1))))
        closed, data = read_until_close(s)
        pkts = split_packets(data)
        self.assertEqual(len(pkts), 1, pkts)
        self.assertEqual(pkts[0][1][:2], b"\x00\x99")
        self.assertTrue(closed)

    def test_auth_without_enhanced_authentication_is_protocol_error(self):
        # section 4.12: AUTH when no authentication method was given
        c = self.client()
        c.send(packet(0xF0, b"\x18\x00"))
        c.expect_disconnect(0x82)

    def test_keepalive_timeout_gets_8d(self):
        # [MQTT-3.1.2-22] one and a half keep-alives without a packet
        c = self.client(keepalive=1)
        t0 = time.monotonic()
        closed, data = read_until_close(c.s, 6.0)
        pkts = split_packets(data)
        self.assertTrue(closed, "not closed after keep-alive")
        self.assertEqual([(f, parse_reason(b)[0]) for f, b in pkts],
                         [(0xE0, 0x8D)])
        self.assertGreater(time.monotonic() - t0, 1.0)

    def test_session_takeover_sends_disconnect_8e(self):
        cid = cid_on(self.uid("take"), 1)
        old = self.client(cid)
        self.client(cid)
        old.expect_disconnect(0x8E)

    def test_second_connect_is_protocol_error(self):
        c = self.client()
        c.send(connect5(self.uid()))
        c.expect_disconnect(0x82)


class RestrictedTests(V5TestCase):
    broker_config = ("mqtt5 true\nmax_qos 1\nretain_available false\n"
                     "wildcard_subscriptions false\n"
                     "shared_subscriptions false\n"
                     "subscription_identifiers false\n"
                     "max_packet_size 1k\n"
                     "persistent_client_expiration 100\n")

    def test_connack_advertises_restrictions(self):
        plist = self.client().connack[2]
        self.assertEqual(pget(plist, MAXIMUM_QOS), 1)
        self.assertEqual(pget(plist, RETAIN_AVAILABLE), 0)
        self.assertEqual(pget(plist, WILDCARD_AVAILABLE), 0)
        self.assertEqual(pget(plist, SHARED_AVAILABLE), 0)
        self.assertEqual(pget(plist, SUBID_AVAILABLE), 0)

    def test_qos2_publish_gets_9b(self):
        w = self.watcher(["rs/t"])
        c = self.client(worker=1)
        c.send(publish5("rs/t", b"qos2-refused", 2, 1))
        c.expect_disconnect(0x9B)
        self.assert_not_delivered(w, "rs/t", b"qos2-refused")

    def test_retained_publish_gets_9a(self):
        w = self.watcher(["rs/r"])
        c = self.client(worker=1)
        c.send(publish5("rs/r", b"retain-refused", 1, 1, retain=True))
        c.expect_disconnect(0x9A)
        self.assert_not_delivered(w, "rs/r", b"retain-refused")
        # and nothing was retained
        late = self.client(worker=0)
        self.assertEqual(late.subscribe([("rs/r", 1)]), [1])
        self.assertEqual(late.quiet(), [])

    def test_subscription_refusals(self):
        c = self.client()
        self.assertEqual(c.subscribe([("rs/#", 1), ("rs/+/x", 0),
                                      ("$share/g/rs/a", 1), ("rs/a", 2),
                                      ("rs/b", 1)]),
                         [0xA2, 0xA2, 0x9E, 0x01, 0x01])
        # granted at most max_qos; delivered at that QoS
        self.pub("rs/a", b"granted-one", qos=1)
        p = c.next_publish()
        self.assertEqual((p["payload"], p["qos"]), (b"granted-one", 1))

    def test_will_beyond_limits_refused(self):
        # [MQTT-3.2.2-12] will QoS above Maximum QoS: refused, SHOULD 0x9B
        # [MQTT-3.2.2-13] retained will without Retain Available: SHOULD 0x9A
        for will, reason in ((("rs/w", b"w", 2, False), 0x9B),
                             (("rs/w", b"w", 1, True), 0x9A)):
            with self.subTest(will=will):
                s = self.sock()
                s.sendall(connect5(self.uid(), will=will))
                closed, data = read_until_close(s)
                pkts = split_packets(data)
                self.assertEqual(len(pkts), 1, pkts)
                self.assertEqual(pkts[0][0], 0x20)
                self.assertEqual(pkts[0][1][:2], bytes([0, reason]))
                self.assertTrue(closed)

    def test_packet_size_and_session_expiry_limits(self):
        c = self.client(cprops=props(p_u32(SESSION_EXPIRY, 3600)))
        plist = c.connack[2]
        self.assertEqual(pget(plist, MAXIMUM_PACKET_SIZE), 1024)
        # the server's cap on the session is told in CONNACK
        self.assertEqual(pget(plist, SESSION_EXPIRY), 100)
        w = self.watcher(["rs/big"])
        c.send(publish5("rs/big", b"x" * 2000, 1, 1))
        # section 3.2.2.3.6: larger than Maximum Packet Size -> 0x95
        c.expect_disconnect(0x95)
        self.assert_not_delivered(w, "rs/big", b"x" * 2000)
        c2 = self.client(cprops=props(p_u32(SESSION_EXPIRY, 50)))
        self.assertIsNone(pget(c2.connack[2], SESSION_EXPIRY))

    def test_subscription_identifier_gets_a1(self):
        c = self.client()
        c.send(subscribe5(1, [("rs/s", 1)], props(p_var(SUBSCRIPTION_ID, 3))))
        c.expect_disconnect(0xA1)


# ---- 4. session expiry ---------------------------------------------------------

class SessionExpiryTests(V5TestCase):
    def test_session_kept_and_queued_messages_delivered(self):
        cid = cid_on(self.uid("keep"), 0)
        sp = props(p_u32(SESSION_EXPIRY, 60))
        c = self.client(cid, clean=False, cprops=sp)
        self.assertEqual(c.subscribe([("se/keep", 1)]), [1])
        c.disconnect()
        for i in range(3):
            self.pub("se/keep", b"queued-%d" % i, qos=1)
        c = self.client(cid, clean=False, cprops=sp, present=True)
        got = [c.next_publish()["payload"] for _ in range(3)]
        self.assertEqual(got, [b"queued-0", b"queued-1", b"queued-2"])
        # DISCONNECT may lower the expiry: 0 ends the session now
        c.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))
        c = self.client(cid, clean=False, cprops=sp, present=False)
        c.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))

    def test_expiry_0_ends_session_at_disconnect(self):
        cid = cid_on(self.uid("zero"), 1)
        c = self.client(cid, clean=False)   # no property: expiry 0
        self.assertEqual(c.subscribe([("se/zero", 1)]), [1])
        c.disconnect()
        self.pub("se/zero", b"lost", qos=1)
        c = self.client(cid, clean=False, present=False)
        self.assertEqual(c.quiet(), [])
        # abrupt close too
        self.assertEqual(c.subscribe([("se/zero", 1)]), [1])
        c.abort()
        time.sleep(0.2)
        c = self.client(cid, clean=False, present=False)

    def test_expiry_interval_elapses_and_disconnect_extends(self):
        short = cid_on(self.uid("short"), 0)
        longer = cid_on(self.uid("longer"), 1)
        sp = props(p_u32(SESSION_EXPIRY, 2))
        a = self.client(short, clean=False, cprops=sp)
        self.assertEqual(a.subscribe([("se/short", 1)]), [1])
        a.disconnect()
        b = self.client(longer, clean=False, cprops=sp)
        self.assertEqual(b.subscribe([("se/longer", 1)]), [1])
        # DISCONNECT may set a new expiry (section 3.14.2.2.2)
        b.disconnect(0, props(p_u32(SESSION_EXPIRY, 600)))
        self.pub("se/longer", b"still-here", qos=1)
        time.sleep(4.5)
        a = self.client(short, clean=False, cprops=sp, present=False)
        b = self.client(longer, clean=False, cprops=sp, present=True)
        self.assertEqual(b.next_publish()["payload"], b"still-here")
        a.disconnect()
        b.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))

    def test_disconnect_cannot_raise_zero_expiry(self):
        # [MQTT-3.14.2-2]: a Protocol Error; it is not a valid DISCONNECT,
        # so the will is published [MQTT-3.1.2-8]
        w = self.watcher(["se/will0"])
        cid = cid_on(self.uid("raise"), 1)
        c = self.client(cid, clean=False,
                        will=("se/will0", b"will-after-bad-disconnect", 0,
                              False))
        c.send(disconnect5(0, props(p_u32(SESSION_EXPIRY, 60))))
        c.expect_disconnect(0x82)
        p = w.next_publish()
        self.assertEqual(p["payload"], b"will-after-bad-disconnect")
        self.client(cid, clean=False, present=False)


# ---- 5. message expiry -----------------------------------------------------------

class MessageExpiryTests(V5TestCase):
    def test_message_and_retained_expiry(self):
        cid = cid_on(self.uid("me"), 0)
        sp = props(p_u32(SESSION_EXPIRY, 60))
        c = self.client(cid, clean=False, cprops=sp)
        self.assertEqual(c.subscribe([("me/q", 1)]), [1])
        # live delivery carries the interval, not above what was sent
        self.pub("me/q", b"live", qos=1,
                 pprops=props(p_u32(MESSAGE_EXPIRY, 30)))
        p = c.next_publish()
        self.assertEqual(p["payload"], b"live")
        self.assertTrue(1 <= pget(p["props"], MESSAGE_EXPIRY, 0) <= 30,
                        p["props"])
        c.disconnect()
        self.pub("me/q", b"short", qos=1,
                 pprops=props(p_u32(MESSAGE_EXPIRY, 2)))
        self.pub("me/q", b"long", qos=1,
                 pprops=props(p_u32(MESSAGE_EXPIRY, 60)))
        self.pub("me/q", b"forever", qos=1)
        self.pub("me/r/exp", b"retained-short", qos=1, retain=True,
                 pprops=props(p_u32(MESSAGE_EXPIRY, 2)))
        self.pub("me/r/keep", b"retained-keep", qos=1, retain=True)
        time.sleep(4.2)
        c = self.client(cid, clean=False, cprops=sp, present=True)
        got = c.quiet()
        # [MQTT-3.3.2-5] expired: not delivered
        self.assertEqual([p["payload"] for p in got], [b"long", b"forever"])
        # [MQTT-3.3.2-6] the remaining interval
        left = pget(got[0]["props"], MESSAGE_EXPIRY)
        self.assertIsNotNone(left, got[0]["props"])
        self.assertTrue(1 <= left <= 57, left)
        self.assertIsNone(pget(got[1]["props"], MESSAGE_EXPIRY))
        c.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))
        late = self.client(worker=1)
        self.assertEqual(late.subscribe([("me/r/#", 1)]), [1])
        got = late.quiet()
        self.assertEqual([p["payload"] for p in got], [b"retained-keep"])
        self.assertTrue(got[0]["retain"])
        self.pub("me/r/keep", b"", retain=True)


# ---- 6. will delay ------------------------------------------------------------------

class WillTests(V5TestCase):
    def test_will_delay(self):
        w = self.watcher(["wd/#"])
        sp = props(p_u32(SESSION_EXPIRY, 60))
        wp = props(p_u32(WILL_DELAY, 3))
        back = cid_on(self.uid("back"), 1)
        away = cid_on(self.uid("away"), 0)
        a = self.client(back, clean=False, cprops=sp, will_props=wp,
                        will=("wd/back", b"will-back", 1, False))
        b = self.client(away, clean=False, cprops=sp, will_props=wp,
                        will=("wd/away", b"will-away", 1, False))
        a.abort()
        b.abort()
        t0 = time.monotonic()
        time.sleep(0.3)
        # back within the delay: the will is never sent [MQTT-3.1.3-9]
        a = self.client(back, clean=False, cprops=sp, present=True)
        # not before its delay (checked only while well within it)
        early = w.quiet(0.5)
        if time.monotonic() - t0 < 2.5:
            self.assertEqual(early, [], "will sent before its delay")
        got = early or [w.next_publish(timeout=8.0)]
        got += w.quiet(1.0)
        self.assertEqual([p["payload"] for p in got], [b"will-away"])
        a.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))
        self.client(away, present=False).disconnect()
        self.assertEqual(w.quiet(0.3), [])

    def test_will_delay_beyond_session_expiry(self):
        # section 3.1.3.2.2: sent when the delay passes or the session
        # ends, whichever is first
        w = self.watcher(["wx/#"])
        c = self.client(worker=1, clean=False,
                        cprops=props(p_u32(SESSION_EXPIRY, 1)),
                        will_props=props(p_u32(WILL_DELAY, 600)),
                        will=("wx/t", b"will-session-end", 1, False))
        c.abort()
        p = w.next_publish(timeout=8.0)
        self.assertEqual(p["payload"], b"will-session-end")

    def test_disconnect_with_will_04_publishes_it(self):
        # [MQTT-3.14.4-3]: 0x04 keeps the will
        w = self.watcher(["wl/#"])
        c = self.client(worker=1, will=("wl/04", b"will-04", 1, False))
        c.disconnect(0x04)
        self.assertEqual(w.next_publish()["payload"], b"will-04")

    def test_disconnect_with_error_reason_publishes_will(self):
        # [MQTT-3.1.2-8]: only DISCONNECT 0x00 deletes the will
        # [MQTT-3.14.4-3]; any other reason leaves it to be published
        w = self.watcher(["wl/#"])
        c = self.client(worker=1, will=("wl/80", b"will-80", 1, False))
        c.disconnect(0x80, props(p_str(REASON_STRING, "client failed")))
        seen = self.until_marker(w, "wl/marker")
        self.assertEqual([p["payload"] for p in seen], [b"will-80"])

    def test_session_takeover_publishes_old_will(self):
        # section 3.1.4: the existing client's will is published
        w = self.watcher(["wl/#"])
        cid = cid_on(self.uid("tk"), 1)
        old = self.client(cid, will=("wl/tk", b"will-taken-over", 1, False))
        self.client(cid)
        old.expect_disconnect(0x8E)
        self.assertEqual(w.next_publish()["payload"], b"will-taken-over")

    def test_normal_disconnect_discards_will(self):
        w = self.watcher(["wl/#"])
        c = self.client(worker=1, will=("wl/00", b"will-00", 1, False))
        c.disconnect(0x00)
        c = self.client(worker=0, will=("wl/00", b"will-00b", 1, False))
        c.disconnect()   # no reason byte at all: 0x00
        self.assertEqual(self.until_marker(w, "wl/marker"), [])

    def test_abrupt_close_without_delay_publishes_will(self):
        w = self.watcher(["wl/#"])
        c = self.client(worker=1, will=("wl/now", b"will-now", 0, False),
                        will_props=props(p_user("why", "gone"),
                                         p_str(CONTENT_TYPE, "text/plain")))
        c.abort()
        p = w.next_publish()
        self.assertEqual(p["payload"], b"will-now")
        self.assertEqual(pall(p["props"], USER_PROPERTY),
                         [(b"why", b"gone")])
        self.assertEqual(pget(p["props"], CONTENT_TYPE), b"text/plain")


# ---- 7. topic aliases ---------------------------------------------------------------

class TopicAliasTests(V5TestCase):
    def test_client_to_server_alias(self):
        w = self.watcher(["ta/#"])
        c = self.client(worker=1)
        c.send(publish5("ta/x", b"set-1", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 1))))
        c.send(publish5("", b"use-1", 1, 5, pprops=props(
            p_u16(TOPIC_ALIAS, 1))))
        self.assertEqual(c.read(), (0x40, u16(5)))
        c.send(publish5("ta/y", b"remap-1", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 1))))
        c.send(publish5("", b"use-1-again", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 1))))
        c.send(publish5("ta/z", b"set-10", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 10))))
        c.send(publish5("", b"use-10", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 10))))
        got = [w.next_publish() for _ in range(6)]
        self.assertEqual([(p["topic"], p["payload"]) for p in got],
                         [(b"ta/x", b"set-1"), (b"ta/x", b"use-1"),
                          (b"ta/y", b"remap-1"), (b"ta/y", b"use-1-again"),
                          (b"ta/z", b"set-10"), (b"ta/z", b"use-10")])
        # the watcher asked for no aliases: it gets none
        for p in got:
            self.assertIsNone(pget(p["props"], TOPIC_ALIAS))

    def test_alias_out_of_range_gets_94(self):
        # [MQTT-3.3.2-9]: above the Topic Alias Maximum -> 0x94 (Topic
        # Alias invalid).  [MQTT-3.3.2-8] forbids 0 without naming a code:
        # 0x94 or Protocol Error.
        for alias, reasons in ((0, (0x94, 0x82)), (11, 0x94),
                               (65535, 0x94)):
            with self.subTest(alias=alias):
                c = self.client(worker=alias % 2)
                c.send(publish5("ta/bad", b"bad", 0, pprops=props(
                    p_u16(TOPIC_ALIAS, alias))))
                c.expect_disconnect(reasons)

    def test_unknown_alias_is_protocol_error(self):
        w = self.watcher(["ta/#"])
        c = self.client(worker=1)
        c.send(publish5("", b"unmapped", 1, 2, pprops=props(
            p_u16(TOPIC_ALIAS, 2))))
        c.expect_disconnect(0x82)
        # and aliases do not outlive the connection [MQTT-3.3.2-7]
        cid = cid_on(self.uid("alias"), 0)
        c = self.client(cid)
        c.send(publish5("ta/k", b"k1", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 3))))
        c.disconnect()
        c = self.client(cid)
        c.send(publish5("", b"stale-alias", 0, pprops=props(
            p_u16(TOPIC_ALIAS, 3))))
        c.expect_disconnect(0x82)
        self.assertEqual([p["payload"] for p in self.until_marker(w, "ta/m")],
                         [b"k1"])

    def test_empty_topic_without_alias_is_protocol_error(self):
        c = self.client()
        c.send(publish5("", b"no-topic", 0))
        c.expect_disconnect(0x82)

    def test_server_to_client_alias(self):
        s = self.client(worker=0, cprops=props(p_u16(TOPIC_ALIAS_MAXIMUM, 5)))
        self.assertEqual(s.subscribe([("tb/#", 1)]), [1])
        seq = ["tb/a", "tb/a", "tb/b", "tb/a", "tb/b", "tb/a"]
        pubc = self.client(worker=1)
        for i, t in enumerate(seq):
            pubc.publish(t, b"m%d" % i, qos=1)
        got = [s.next_publish() for _ in seq]
        aliases = {}
        for i, (t, p) in enumerate(zip(seq, got)):
            self.assertEqual(p["payload"], b"m%d" % i)
            alias = pget(p["props"], TOPIC_ALIAS)
            self.assertIsNotNone(alias, "no alias on %r" % p)
            self.assertTrue(1 <= alias <= 5, alias)
            if t not in aliases:
                # first use: topic and alias; then the alias alone
                self.assertEqual(p["topic"], t.encode())
                self.assertNotIn(alias, aliases.values())
                aliases[t] = alias
            else:
                self.assertEqual(p["topic"], b"")
                self.assertEqual(alias, aliases[t])
        self.assertEqual(s.quiet(), [])

    def test_server_aliases_limited_to_client_maximum(self):
        s = self.client(worker=1, cprops=props(p_u16(TOPIC_ALIAS_MAXIMUM, 2)))
        self.assertEqual(s.subscribe([("tc/#", 0)]), [0])
        topics = ["tc/%d" % i for i in range(5)] * 2
        pubc = self.client(worker=0)
        for i, t in enumerate(topics):
            pubc.publish(t, b"n%d" % i, qos=1)
        got = [s.next_publish() for _ in topics]
        mapping = {}
        for t, p in zip(topics, got):
            alias = pget(p["props"], TOPIC_ALIAS)
            if alias is None:
                self.assertEqual(p["topic"], t.encode())
                continue
            self.assertIn(alias, (1, 2))
            if p["topic"]:
                mapping[alias] = p["topic"]
            self.assertEqual(mapping.get(alias), t.encode())

    @unittest.skipIf(mqtt is None, "paho-mqtt is not installed")
    def test_paho_with_topic_alias_maximum(self):
        # paho 1.6.1 does not resolve incoming aliases itself: the test
        # keeps the map from the properties paho hands over.
        cp = Properties(PacketTypes.CONNECT)
        cp.TopicAliasMaximum = 5
        sub = self.paho(cid_on(self.uid("psub"), 0), cprops=cp)
        self.assertEqual(sub.subscribe("tp/#", 1), [1])
        pubp = self.paho(cid_on(self.uid("ppub"), 1))
        seq = ["tp/a", "tp/b", "tp/a", "tp/a", "tp/b", "tp/c/d", "tp/a"]
        for i, t in enumerate(seq):
            pubp.publish(t, b"p%d" % i, 1)
        self.assertTrue(wait_for(lambda: len(sub.got()) >= len(seq), 10.0))
        amap, resolved = {}, []
        for m in sub.got():
            alias = getattr(m.properties, "TopicAlias", None)
            topic = m.topic
            if alias is not None and topic:
                amap[alias] = topic
            elif alias is not None:
                topic = amap.get(alias)
            resolved.append((topic, bytes(m.payload)))
        self.assertEqual(resolved, [(t, b"p%d" % i)
                                    for i, t in enumerate(seq)])
        self.assertTrue(amap, "no alias was used")


# ---- 8. flow control ------------------------------------------------------------------

class FlowControlTests(V5TestCase):
    def test_client_receive_maximum(self):
        s = self.client(worker=0, cprops=props(p_u16(RECEIVE_MAXIMUM, 2)))
        self.assertEqual(s.subscribe([("fc/rm", 1)]), [1])
        pubc = self.client(worker=1)
        for i in range(5):
            pubc.publish("fc/rm", b"r%d" % i, qos=1)
        first = [s.next_publish(ack=False) for _ in range(2)]
        # [MQTT-3.3.4-9] no more than Receive Maximum unacknowledged
        self.assertEqual(s.quiet(ack=False), [])
        s.send(ack5("puback", first[0]["pid"]))
        third = s.next_publish(ack=False)
        self.assertEqual(s.quiet(ack=False), [])
        s.send(ack5("puback", first[1]["pid"]))
        s.send(ack5("puback", third["pid"]))
        rest = [s.next_publish() for _ in range(2)]
        self.assertEqual([p["payload"] for p in first + [third] + rest],
                         [b"r%d" % i for i in range(5)])
        self.assertEqual(s.quiet(), [])

    def test_client_receive_maximum_counts_qos2_until_pubcomp(self):
        s = self.client(worker=1, cprops=props(p_u16(RECEIVE_MAXIMUM, 1)))
        self.assertEqual(s.subscribe([("fc/q2", 2)]), [2])
        pubc = self.client(worker=0)
        pubc.publish("fc/q2", b"q2-a", qos=2)
        pubc.publish("fc/q2", b"q2-b", qos=2)
        a = s.next_publish(ack=False)
        self.assertEqual(a["payload"], b"q2-a")
        s.send(ack5("pubrec", a["pid"]))
        self.assertEqual(s.read(), (0x62, u16(a["pid"])))
        # PUBREC does not free the quota; PUBCOMP does [MQTT-3.3.4-9]
        self.assertEqual(s.quiet(ack=False), [])
        s.send(ack5("pubcomp", a["pid"]))
        self.assertEqual(s.next_publish()["payload"], b"q2-b")

    def test_client_maximum_packet_size(self):
        # [MQTT-3.1.2-24] not sent when larger than the client's maximum
        s = self.client(worker=0,
                        cprops=props(p_u32(MAXIMUM_PACKET_SIZE, 200)))
        self.assertEqual(s.subscribe([("fc/mp", 1)]), [1])
        pubc = self.client(worker=1)
        pubc.publish("fc/mp", b"small-1", qos=1)
        pubc.publish("fc/mp", b"B" * 1000, qos=1)
        pubc.publish("fc/mp", b"s" * 150, qos=0)
        pubc.publish("fc/mp", b"small-2", qos=1)
        got = [s.next_publish()["payload"] for _ in range(3)]
        self.assertEqual(got, [b"small-1", b"s" * 150, b"small-2"])
        self.assertEqual(s.quiet(), [])


    def test_resumed_inflight_larger_than_new_maximum_is_discarded(self):
        # An unacknowledged message too large for the Maximum Packet Size
        # of the new connection is discarded as if sent [MQTT-3.1.2-25];
        # the connection stays up.
        cid = cid_on(self.uid("mpr"), 0)
        sp = props(p_u32(SESSION_EXPIRY, 60))
        s = self.client(cid, clean=False, cprops=sp)
        self.assertEqual(s.subscribe([("fc/mpr", 1)]), [1])
        self.pub("fc/mpr", b"L" * 500, qos=1)
        self.assertEqual(s.next_publish(ack=False)["payload"], b"L" * 500)
        s.abort()
        time.sleep(0.2)
        s = self.client(cid, clean=False, present=True, cprops=props(
            p_u32(SESSION_EXPIRY, 60), p_u32(MAXIMUM_PACKET_SIZE, 200)))
        try:
            self.assertEqual(s.quiet(), [])
        except ConnectionError:
            self.fail("the broker closed the resumed connection")
        self.pub("fc/mpr", b"small-after", qos=1)
        self.assertEqual(s.next_publish()["payload"], b"small-after")
        s.disconnect(0, props(p_u32(SESSION_EXPIRY, 0)))

    # [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet
    # Size; a Reason String that would not fit is left out [MQTT-3.4.2-2]
    # [MQTT-3.14.2-3]
    def test_client_maximum_packet_size_bounds_puback(self):
        c = self.client(worker=1, cprops=props(p_u32(MAXIMUM_PACKET_SIZE,
                                                     24)))
        c.send(publish5("fc/u", b"bad\xff", 1, 1,
                        pprops=props(p_byte(PAYLOAD_FORMAT, 1))))
        first, body = c.read()
        size = 1 + len(varint(len(body))) + len(body)
        self.assertEqual((first, parse_ack5(body)[:2]), (0x40, (1, 0x99)))
        self.assertLessEqual(size, 24, "PUBACK of %d bytes" % size)

    def test_client_maximum_packet_size_bounds_disconnect(self):
        c = self.client(worker=0, cprops=props(p_u32(MAXIMUM_PACKET_SIZE,
                                                     24)))
        c.send(publish5("fc/u", b"x", 0, pprops=props(
            p_u32(MESSAGE_EXPIRY, 1), p_u32(MESSAGE_EXPIRY, 1))))
        pkts = c.expect_disconnect(0x82)
        first, body = pkts[-1]
        size = 1 + len(varint(len(body))) + len(body)
        self.assertLessEqual(size, 24, "DISCONNECT of %d bytes" % size)


class ServerReceiveMaximumTests(V5TestCase):
    broker_config = "mqtt5 true\nmax_inflight_messages 2\n"

    def test_qos2_beyond_receive_maximum_gets_93(self):
        c = self.client(worker=1)
        self.assertEqual(pget(c.connack[2], RECEIVE_MAXIMUM), 2)
        for pid in (1, 2):
            c.send(publish5("rm/t", b"q2-%d" % pid, 2, pid))
            self.assertEqual(c.read(), (0x50, u16(pid)))
        c.send(publish5("rm/t", b"q2-3", 2, 3))
        # section 3.3.4: more than Receive Maximum unacknowledged -> 0x93
        c.expect_disconnect(0x93)

    def test_completed_qos2_frees_the_quota(self):
        c = self.client(worker=0)
        for pid in range(1, 6):
            self.assertEqual(c.publish("rm/ok", b"ok", qos=2), 0)
        for pid in (1, 2):
            c.send(publish5("rm/ok", b"q", 2, pid))
            self.assertEqual(c.read(), (0x50, u16(pid)))
        # a retransmission of a pending id is not a new message
        c.send(publish5("rm/ok", b"q", 2, 2, dup=True))
        self.assertEqual(c.read(), (0x50, u16(2)))
        c.send(ack5("pubrel", 1))
        self.assertEqual(c.read(), (0x70, u16(1)))
        c.send(publish5("rm/ok", b"q", 2, 3))
        self.assertEqual(c.read(), (0x50, u16(3)))
        c.sync()


# ---- 9. request/response --------------------------------------------------------------

class RequestResponseTests(V5TestCase):
    def test_properties_passed_through(self):
        s = self.client(worker=0)
        self.assertEqual(s.subscribe([("rr/req", 1)]), [1])
        corr = b"\x00\x01\xff\xfecorr"
        sent = [p_byte(PAYLOAD_FORMAT, 1),
                p_str(RESPONSE_TOPIC, "rr/reply/\u00fc"),
                p_str(CORRELATION_DATA, corr),
                p_str(CONTENT_TYPE, "application/json; charset=utf-8"),
                p_user("a", "1"), p_user("a", "2")]
        self.pub("rr/req", '{"q": "\u00e9"}'.encode(), qos=1,
                 pprops=props(*sent))
        p = s.next_publish()
        self.assertEqual(p["payload"], '{"q": "\u00e9"}'.encode())
        self.assertEqual(pget(p["props"], PAYLOAD_FORMAT), 1)
        self.assertEqual(pget(p["props"], RESPONSE_TOPIC),
                         "rr/reply/\u00fc".encode())
        self.assertEqual(pget(p["props"], CORRELATION_DATA), corr)
        self.assertEqual(pget(p["props"], CONTENT_TYPE),
                         b"application/json; charset=utf-8")
        self.assertEqual(pall(p["props"], USER_PROPERTY),
                         [(b"a", b"1"), (b"a", b"2")])

    def test_request_problem_information_0(self):
        # [MQTT-3.1.2-29] no Reason String except on PUBLISH, CONNACK or
        # DISCONNECT
        c = self.client(cprops=props(p_byte(0x17, 0)))
        c.send(publish5("rr/p", b"\xff", 1, 1,
                        pprops=props(p_byte(PAYLOAD_FORMAT, 1))))
        first, body = c.read()
        pid, reason, plist = parse_ack5(body)
        self.assertEqual((first, pid, reason), (0x40, 1, 0x99))
        self.assertEqual(plist, [])

    def test_invalid_utf8_with_format_1_gets_99(self):
        w = self.watcher(["rr/#"])
        c = self.client(worker=1)
        fmt = props(p_byte(PAYLOAD_FORMAT, 1))
        # section 3.3.2.3.2: PUBACK/PUBREC 0x99 Payload format invalid
        self.assertEqual(c.publish("rr/bad", b"bad\xff\xfe", 1, pprops=fmt),
                         0x99)
        self.assertEqual(c.publish("rr/bad", b"bad\xc0\x80", 2, pprops=fmt),
                         0x99)
        # format 0 (binary): anything goes
        self.assertEqual(c.publish("rr/bad", b"bin\xff", 1, pprops=props(
            p_byte(PAYLOAD_FORMAT, 0))), 0)
        seen = self.until_marker(w, "rr/m")
        self.assertEqual([p["payload"] for p in seen], [b"bin\xff"])


# ---- 10. subscription options -----------------------------------------------------------

class SubscriptionOptionsTests(V5TestCase):
    def test_no_local(self):
        # [MQTT-3.8.3-3]
        a = self.client(worker=0)
        b = self.client(worker=1)
        self.assertEqual(a.subscribe([("nl/t", sub_opts(1, no_local=True))]),
                         [1])
        self.assertEqual(b.subscribe([("nl/t", 1)]), [1])
        a.publish("nl/t", b"from-a", qos=1)
        self.assertEqual(b.next_publish()["payload"], b"from-a")
        self.assertEqual(self.until_marker(a, "nl/t"), [])

    def test_no_local_on_shared_is_protocol_error(self):
        # [MQTT-3.8.3-4]
        c = self.client()
        c.send(subscribe5(1, [("$share/g/nl/s", sub_opts(1, no_local=True))]))
        c.expect_disconnect(0x82)

    def test_retain_as_published(self):
        rap = self.client(worker=0)
        plain = self.client(worker=1)
        self.assertEqual(rap.subscribe([("rap/t", sub_opts(1, rap=True))]),
                         [1])
        self.assertEqual(plain.subscribe([("rap/t", 1)]), [1])
        self.pub("rap/t", b"live-retained", qos=1, retain=True)
        p = rap.next_publish()
        q = plain.next_publish()
        self.assertEqual((p["payload"], p["retain"]), (b"live-retained", True))
        self.assertEqual((q["payload"], q["retain"]),
                         (b"live-retained", False))
        # a retained message sent for a new subscription has RETAIN 1
        # whatever RAP says (section 3.3.1.3)
        late = self.client()
        self.assertEqual(late.subscribe([("rap/t", 1)]), [1])
        p = late.next_publish()
        self.assertEqual((p["payload"], p["retain"]), (b"live-retained", True))
        # a retained message keeps its properties
        self.pub("rap/t", b"with-props", qos=1, retain=True, pprops=props(
            p_user("u", "1"), p_str(CONTENT_TYPE, "c/t")))
        later = self.client()
        self.assertEqual(later.subscribe([("rap/t", 1)]), [1])
        p = later.next_publish()
        self.assertEqual(p["payload"], b"with-props")
        self.assertEqual(pall(p["props"], USER_PROPERTY), [(b"u", b"1")])
        self.assertEqual(pget(p["props"], CONTENT_TYPE), b"c/t")
        self.pub("rap/t", b"", retain=True)

    def test_retain_handling(self):
        self.pub("rh/t", b"kept", qos=1, retain=True)
        c = self.client()
        # 1: only when the subscription is new [MQTT-3.3.1-10]
        self.assertEqual(c.subscribe([("rh/t", sub_opts(1, rh=1))]), [1])
        self.assertEqual([p["payload"] for p in c.quiet()], [b"kept"])
        self.assertEqual(c.subscribe([("rh/t", sub_opts(1, rh=1))]), [1])
        self.assertEqual(c.quiet(), [])
        # 0: at every subscribe [MQTT-3.3.1-9]
        self.assertEqual(c.subscribe([("rh/t", sub_opts(1, rh=0))]), [1])
        self.assertEqual([p["payload"] for p in c.quiet()], [b"kept"])
        # 2: never [MQTT-3.3.1-11]
        d = self.client()
        self.assertEqual(d.subscribe([("rh/t", sub_opts(1, rh=2))]), [1])
        self.assertEqual(d.quiet(), [])
        self.assertEqual(d.subscribe([("rh/#", sub_opts(1, rh=2))]), [1])
        self.assertEqual(d.quiet(), [])
        self.pub("rh/t", b"", retain=True)

    def test_retain_handling_3_is_protocol_error(self):
        # "It is a Protocol Error to send a Retain Handling value of 3"
        # (section 3.8.3.1); reserved bits 6-7 make it Malformed
        # [MQTT-3.8.3-5]
        e = self.client()
        e.send(subscribe5(1, [("rh/t", 0x41)]))
        e.expect_disconnect(0x81)
        e = self.client()
        e.send(subscribe5(1, [("rh/t", sub_opts(1, rh=3))]))
        e.expect_disconnect(0x82)

    def test_subscription_identifiers(self):
        c = self.client(worker=0)
        self.assertEqual(c.subscribe([("sid/#", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 5))), [1])
        self.assertEqual(c.subscribe([("sid/+/x", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 9))), [1])
        self.assertEqual(c.subscribe([("sid/+/y", 1)]), [1])
        self.assertEqual(c.subscribe([("sid/big", 1)],
                                     props(p_var(SUBSCRIPTION_ID,
                                                 268435455))), [1])
        self.pub("sid/a/x", b"both", qos=1)
        p = c.next_publish()
        self.assertEqual(p["payload"], b"both")
        # one copy carrying both ids, any order [MQTT-3.3.4-4]
        self.assertEqual(sorted(pall(p["props"], SUBSCRIPTION_ID)), [5, 9])
        self.pub("sid/a/z", b"five", qos=1)
        p = c.next_publish()
        self.assertEqual(pall(p["props"], SUBSCRIPTION_ID), [5])
        self.pub("sid/a/y", b"no-id-too", qos=1)
        p = c.next_publish()
        self.assertEqual(p["payload"], b"no-id-too")
        self.assertEqual(pall(p["props"], SUBSCRIPTION_ID), [5])
        self.pub("sid/big", b"big", qos=1)
        p = c.next_publish()
        self.assertEqual(sorted(pall(p["props"], SUBSCRIPTION_ID)),
                         [5, 268435455])
        self.assertEqual(c.quiet(), [])
        # subscription id 0 is a Protocol Error
        d = self.client()
        d.send(subscribe5(1, [("sid/z", 0)], props(p_var(SUBSCRIPTION_ID,
                                                         0))))
        d.expect_disconnect(0x82)

    def test_subscription_identifiers_per_copy(self):
        # A shared and a non-shared subscription of one session give two
        # copies (section 4.8.2); each carries the identifier of its own
        # subscription [MQTT-3.3.4-5].
        c = self.client(worker=0)
        self.assertEqual(c.subscribe([("sidc/#", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 3))), [1])
        self.assertEqual(c.subscribe([("$share/g/sidc/#", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 4))), [1])
        self.pub("sidc/a", b"two-copies", qos=1)
        got = [c.next_publish() for _ in range(2)]
        self.assertEqual([p["payload"] for p in got], [b"two-copies"] * 2)
        self.assertEqual(sorted(tuple(pall(p["props"], SUBSCRIPTION_ID))
                                for p in got), [(3,), (4,)])
        self.assertEqual(c.quiet(), [])

    def test_subscription_identifier_replaced_on_resubscribe(self):
        c = self.client(worker=1)
        self.assertEqual(c.subscribe([("sidr/t", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 7))), [1])
        self.assertEqual(c.subscribe([("sidr/t", 1)],
                                     props(p_var(SUBSCRIPTION_ID, 8))), [1])
        self.pub("sidr/t", b"x", qos=1)
        self.assertEqual(pall(c.next_publish()["props"], SUBSCRIPTION_ID),
                         [8])
        self.assertEqual(c.subscribe([("sidr/t", 1)]), [1])
        self.pub("sidr/t", b"y", qos=1)
        self.assertEqual(pall(c.next_publish()["props"], SUBSCRIPTION_ID),
                         [])


# ---- 11. shared subscriptions ---------------------------------------------------------------

class SharedSubscriptionTests(V5TestCase):
    def test_round_robin_without_duplicates(self):
        members = [self.client(worker=i % 2) for i in range(3)]
        for m in members:
            self.assertEqual(m.subscribe([("$share/grp/jobs/#", 1)]), [1])
        normal = self.client(worker=1)
        self.assertEqual(normal.subscribe([("jobs/#", 1)]), [1])
        pubc = self.client(worker=0)
        want = [b"job-%02d" % i for i in range(30)]
        for i, payload in enumerate(want):
            pubc.publish("jobs/%d" % (i % 4), payload, qos=1)
        got = self.collect(members, 30)
        payloads = [p["payload"] for v in got.values() for p in v]
        self.assertEqual(sorted(payloads), want, "lost or duplicated")
        for i, v in got.items():
            self.assertTrue(v, "member %d got nothing" % i)
        for m in members:
            self.assertEqual(m.quiet(0.2), [])
        self.assertEqual([normal.next_publish()["payload"]
                          for _ in range(30)], want)
        self.assertEqual(normal.quiet(0.1), [])

    def test_new_shared_subscriber_gets_no_retained(self):
        self.pub("jobs/ret", b"retained-job", qos=1, retain=True)
        m = self.client()
        self.assertEqual(m.subscribe([("$share/grp2/jobs/#", 1)]), [1])
        self.assertEqual(m.quiet(), [])
        self.pub("jobs/ret", b"", retain=True)

    def test_shared_filter_validation(self):
        c = self.client()
        self.assertEqual(c.subscribe([("$share/g+/x", 0), ("$share/g", 0),
                                      ("$share//x", 0), ("$share/g/x", 0)]),
                         [0x8F, 0x8F, 0x8F, 0])
        self.assertEqual(c.unsubscribe(["$share/g/x", "x"]), [0, 0x11])


class SharedRedeliveryTests(V5TestCase):
    broker_config = "mqtt5 true\nmax_inflight_messages 1\n"

    def test_leaving_member_hands_its_queue_to_another(self):
        slow = self.client(worker=0)   # never acknowledges
        good = self.client(worker=1)
        self.assertEqual(slow.subscribe([("$share/q/work/#", 1)]), [1])
        self.assertEqual(good.subscribe([("$share/q/work/#", 1)]), [1])
        pubc = self.client(worker=1)
        want = [b"w%d" % i for i in range(8)]
        for payload in want:
            pubc.publish("work/a", payload, qos=1)
        held = slow.next_publish(ack=False)
        # one in flight (max_inflight_messages 1), the rest queued
        self.assertEqual(slow.quiet(ack=False), [])
        seen = self.collect([good], 1, timeout=TIMEOUT)[0]
        seen += good.quiet()
        self.assertLess(len(seen), 8, "the slow member got only one?")
        slow.disconnect()   # clean start, expiry 0: the session ends
        deadline = time.monotonic() + 10.0
        while len(seen) < 8 and time.monotonic() < deadline:
            try:
                seen.append(good.next_publish(
                    timeout=max(0.1, deadline - time.monotonic())))
            except socket.timeout:
                break
        seen += good.quiet()
        payloads = [p["payload"] for p in seen]
        self.assertEqual(len(payloads), len(set(payloads)), payloads)
        # every message the slow member had queued reaches the other
        # member; the in-flight QoS 1 one SHOULD too (section 4.8.2)
        self.assertEqual(sorted(set(payloads) | {held["payload"]}), want)
        self.assertIn(held["payload"], payloads,
                      "the unacknowledged QoS 1 message was not resent to "
                      "another member")


# ---- 12 and 13. acknowledgements -----------------------------------------------------------

class AckTests(V5TestCase):
    def test_client_acks_with_reason_codes_and_properties(self):
        s = self.client(worker=0)
        self.assertEqual(s.subscribe([("ack/#", 2)]), [2])
        pubc = self.client(worker=1)
        pubc.publish("ack/1", b"one", qos=1)
        p = s.next_publish(ack=False)
        s.send(ack5("puback", p["pid"], 0x10,
                    props(p_str(REASON_STRING, "nobody"), p_user("k", "v"))))
        pubc.publish("ack/2", b"two", qos=2)
        p = s.next_publish(ack=False)
        s.send(ack5("pubrec", p["pid"], 0x00, props(p_user("k", "v"))))
        first, body = s.read()
        self.assertEqual(first, 0x62)
        self.assertEqual(parse_ack5(body)[:2], (p["pid"], 0))
        s.send(ack5("pubcomp", p["pid"], 0x00, NOPROPS))
        # a PUBREC with an error code ends the QoS 2 flow [MQTT-4.3.3-4]
        pubc.publish("ack/3", b"three", qos=2)
        p = s.next_publish(ack=False)
        s.send(ack5("pubrec", p["pid"], 0x80))
        # the window is free again: more messages flow
        for i in range(25):
            pubc.publish("ack/4", b"more-%d" % i, qos=1)
        got = [s.next_publish()["payload"] for _ in range(25)]
        self.assertEqual(got, [b"more-%d" % i for i in range(25)])
        self.assertEqual(s.quiet(), [])

    def test_client_pubrel_with_reason_and_properties(self):
        c = self.client()
        c.send(publish5("ack/in", b"x", 2, 9))
        self.assertEqual(c.read(), (0x50, u16(9)))
        c.send(ack5("pubrel", 9, 0x00, props(p_str(REASON_STRING, "ok"))))
        first, body = c.read()
        self.assertEqual(first, 0x70)
        self.assertEqual(parse_ack5(body)[:2], (9, 0))

    def test_pubrel_unknown_id_gets_pubcomp_92(self):
        c = self.client()
        c.send(ack5("pubrel", 4242))
        first, body = c.read()
        self.assertEqual(first, 0x70)
        self.assertEqual(parse_ack5(body)[:2], (4242, 0x92))
        c.sync()

    def test_unsuback_reason_codes(self):
        c = self.client()
        self.assertEqual(c.subscribe([("un/a", 1), ("un/b/#", 0)]), [1, 0])
        self.assertEqual(c.unsubscribe(["un/a", "un/none", "un/b/#",
                                        "un/+/+"]),
                         [0x00, 0x11, 0x00, 0x11])
        self.assertEqual(c.unsubscribe(["un/a"]), [0x11])
        self.assertEqual(c.unsubscribe(["un/#/x"]), [0x8F])
        self.pub("un/a", b"after-unsubscribe", qos=1)
        self.assertEqual(c.quiet(), [])


# ---- 14. mqtt5 off -------------------------------------------------------------------------

class Mqtt5DisabledTests(V5TestCase):
    broker_config = "mqtt5 false\n"
    guard_v5 = False

    def test_v5_connect_refused_with_311_connack_01(self):
        s = self.sock()
        s.sendall(connect5(self.uid()))
        closed, data = read_until_close(s)
        self.assertEqual(data, b"\x20\x02\x00\x01")
        self.assertTrue(closed)

    def test_v311_still_works(self):
        c = self.client(worker=0, v5=False)
        self.assertEqual(c.subscribe([("off/t", 1)]), [1])
        self.pub("off/t", b"v3", qos=1, v5=False)
        p = c.next_publish()
        self.assertEqual((p["payload"], p["qos"]), (b"v3", 1))


# ---- 15. regressions from review ------------------------------------------------------

class ReviewRegressionTests(V5TestCase):
    def test_will_message_expiry_counts_from_publication(self):
        # section 3.1.3.2.4: the will's Message Expiry Interval starts when
        # the will is published, not when the CONNECT arrived
        w = self.watcher(["rw/#"], worker=0)
        c = self.client(worker=1, will=("rw/x", b"will-expiry", 1, False),
                        will_props=props(p_u32(MESSAGE_EXPIRY, 2)))
        time.sleep(3.5)
        c.abort()
        p = w.next_publish(timeout=TIMEOUT)
        self.assertEqual((p["topic"], p["payload"]), (b"rw/x", b"will-expiry"))
        self.assertIn(pget(p["props"], MESSAGE_EXPIRY), (1, 2))

    def test_receive_maximum_applies_on_session_resume(self):
        # [MQTT-3.3.4-9] also for messages resent on a resumed session
        cid = cid_on(self.uid("rm"), 0)
        cprops = props(p_u32(SESSION_EXPIRY, 60), p_u16(RECEIVE_MAXIMUM, 10))
        s = self.client(cid, cprops=cprops)
        self.assertEqual(s.subscribe([("rrm/t", 1)]), [1])
        pubc = self.client(worker=1)
        for i in range(10):
            pubc.publish("rrm/t", b"x%d" % i, qos=1)
        first = [s.next_publish(ack=False) for _ in range(10)]
        self.assertEqual([p["payload"] for p in first],
                         [b"x%d" % i for i in range(10)])
        s.abort()
        s = self.client(cid, clean=False, present=True,
                        cprops=props(p_u32(SESSION_EXPIRY, 60),
                                     p_u16(RECEIVE_MAXIMUM, 2)))
        resent = [s.next_publish(ack=False) for _ in range(2)]
        self.assertTrue(all(p["dup"] for p in resent), resent)
        self.assertEqual(s.quiet(ack=False), [])
        s.send(ack5("puback", resent[0]["pid"]))
        third = s.next_publish(ack=False)
        self.assertEqual(s.quiet(ack=False), [])
        self.assertEqual(len({p["payload"] for p in resent + [third]}), 3)

    def test_shared_group_skips_offline_member(self):
        b = self.client(cid_on(self.uid("shB"), 1),
                        cprops=props(p_u32(SESSION_EXPIRY, 3600)))
        self.assertEqual(b.subscribe([("$share/g/so/#", 1)]), [1])
        b.disconnect()
        a = self.client(worker=0)
        self.assertEqual(a.subscribe([("$share/g/so/#", 1)]), [1])
        pubc = self.client(worker=1)
        for i in range(12):
            pubc.publish("so/t", b"m%d" % i, qos=1)
        got = [a.next_publish()["payload"] for _ in range(12)]
        self.assertEqual(sorted(got), sorted(b"m%d" % i for i in range(12)))
        self.assertEqual(a.quiet(), [])


class QueuedExpiryRegressionTests(V5TestCase):
    broker_config = "mqtt5 true\nmax_queued_messages 5\n"

    def test_expired_messages_do_not_fill_offline_queue(self):
        cid = cid_on(self.uid("qA"), 0)
        cprops = props(p_u32(SESSION_EXPIRY, 60))
        a = self.client(cid, cprops=cprops)
        self.assertEqual(a.subscribe([("rq/t", 1)]), [1])
        a.disconnect()
        pubc = self.client(worker=1)
        for i in range(5):
            pubc.publish("rq/t", b"old%d" % i, qos=1,
                         pprops=props(p_u32(MESSAGE_EXPIRY, 1)))
        time.sleep(2.0)
        pubc.publish("rq/t", b"IMPORTANT", qos=1)
        a = self.client(cid, clean=False, present=True, cprops=cprops)
        p = a.next_publish()
        self.assertEqual(p["payload"], b"IMPORTANT")
        self.assertEqual(a.quiet(), [])


class RetainedBytesRegressionTests(V5TestCase):
    broker_config = "mqtt5 true\nmax_retained_bytes 1k\n"

    def test_retained_properties_count_against_max_retained_bytes(self):
        w = self.watcher(["rp/#"])
        big = props(*[p_user("k%d" % i, "v" * 500) for i in range(4)])
        pubc = self.client(worker=1)
        pubc.publish("rp/t", b"x", qos=1, retain=True, pprops=big)
        p = w.next_publish()
        self.assertEqual((p["topic"], p["payload"]), (b"rp/t", b"x"))
        late = self.client(worker=0)
        self.assertEqual(late.subscribe([("rp/#", 1)]), [1])
        self.assertEqual(late.quiet(), [])


class ClientMaximumPacketSizeTests(V5TestCase):
    """Packets other than PUBLISH within the client's Maximum Packet Size
    [MQTT-3.1.2-24]: a refusal CONNACK drops its Reason String, a SUBACK
    or UNSUBACK that cannot fit (nothing in it may be left out) ends the
    connection with DISCONNECT 0x95 instead of being sent."""
    broker_config = "mqtt5 true\n"

    def test_refusal_connack_without_reason_string(self):
        s = self.sock()
        # an authentication method is refused (0x8C) with a reason
        # string, unless the client allows only small packets
        cprops = props(p_u32(MAXIMUM_PACKET_SIZE, 16),
                       p_str(0x15, "no-such-method"))
        s.sendall(connect5(self.uid(), cprops=cprops))
        closed, data = read_until_close(s)
        self.assertTrue(closed)
        self.assertLessEqual(len(data), 16)
        first, body = split_packets(data)[0]
        self.assertEqual((first, body[1]), (0x20, 0x8C))
        plist, _ = parse_props(body, 2)
        self.assertIsNone(pget(plist, REASON_STRING))
        # with room for it, the reason string is there
        s = self.sock()
        s.sendall(connect5(self.uid(), cprops=props(
            p_str(0x15, "no-such-method"))))
        closed, data = read_until_close(s)
        first, body = split_packets(data)[0]
        plist, _ = parse_props(body, 2)
        self.assertIsNotNone(pget(plist, REASON_STRING))

    def test_suback_too_large_for_the_client(self):
        c = self.client(cprops=props(p_u32(MAXIMUM_PACKET_SIZE, 20)))
        # 10 filters: a 15-byte SUBACK fits
        self.assertEqual(c.subscribe([("mp/%d" % i, 0) for i in range(10)]),
                         [0] * 10)
        self.assertEqual(c.unsubscribe(["mp/%d" % i for i in range(10)]),
                         [0] * 10)
        # 30 filters: 35 bytes, more than 20
        c.send(subscribe5(c.pid(), [("mp/%d" % i, 0) for i in range(30)]))
        c.expect_disconnect(0x95)
        c = self.client(cprops=props(p_u32(MAXIMUM_PACKET_SIZE, 20)))
        c.send(unsubscribe5(c.pid(), ["mp/%d" % i for i in range(30)]))
        c.expect_disconnect(0x95)


class RetainedExpiryTests(V5TestCase):
    # sys_interval 0: the broker's own retained $SYS topics would count
    broker_config = "mqtt5 true\nmax_retained_messages 1\nsys_interval 0\n"

    def test_expired_retained_message_is_removed(self):
        # An expired retained message leaves the store by itself, not only
        # when replaced: its place under max_retained_messages is free.
        t = "rx/" + self.tag
        c = self.client()
        self.assertEqual(c.publish(t + "/old", b"short-lived", qos=1,
                                   retain=True,
                                   pprops=props(p_u32(MESSAGE_EXPIRY, 1))),
                         0)
        # the store is full now: another topic is not kept
        self.assertEqual(c.publish(t + "/new", b"x", qos=1, retain=True), 0)
        r = self.client()
        self.assertEqual(r.subscribe([(t + "/#", 0)]), [0])
        self.assertEqual([p["topic"] for p in r.sync()], [
            (t + "/old").encode()])
        r.disconnect()

        def kept():
            c.publish(t + "/new", b"kept", qos=1, retain=True)
            r = self.client()
            r.subscribe([(t + "/#", 0)])
            got = [(p["topic"], p["payload"]) for p in r.sync()]
            r.disconnect()
            return got == [((t + "/new").encode(), b"kept")]

        self.assertTrue(wait_for(kept, timeout=10, interval=0.5))
        c.publish(t + "/new", b"", qos=1, retain=True)


if __name__ == "__main__":
    unittest.main()
