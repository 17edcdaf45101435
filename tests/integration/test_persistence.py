"""Persistence: what moatd acknowledged survives kill -9.

Each test runs its own moatd with `persistence true` on a fixed loopback
port (so that clients can reconnect after a restart), kills or stops it,
starts it again on the same database and checks what came back.  Damaged
databases, bad directories and a full disk must give a clear error and no
crash.  All waits are bounded; nothing asserts on timing."""
import os
import random
import resource
import socket
import sqlite3
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from moat_harness import (free_port, Broker, ack, connect_packet, parse_publish,
                          publish_packet, raw_connect, read_packet,
                          subscribe_packet, wait_for)
from test_mqtt5 import connect5, publish5



def small_disk():
    """A file-size limit for moatd: it stands in for a full disk."""
    limit = 512 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def fill_store(test, b):
    """Queue 8 KiB messages for a stored session until the store fails."""
    s = Collector(b.port, "filler").connect()
    s.subscribe("f/#", 1)
    s.stop()
    pub = mqtt.Client("fpub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", b.port, 30)
    pub.loop_start()
    for i in range(400):
        pub.publish("f/t", b"z" * 8192, qos=1)
        if i % 20 == 19:
            time.sleep(0.05)
        if "commit failed" in b.run_log():
            break
    test.assertTrue(wait_for(lambda: "commit failed" in b.run_log(), 20),
                    b.run_log()[-3000:])
    pub.disconnect()
    pub.loop_stop()


def pbroker(extra="", sync="full", **kw):
    port = free_port()
    conf = ("persistence true\npersistence_location @DIR@/data\n"
            "persistence_sync %s\n%s" % (sync, extra))
    return Broker(conf, port=port, **kw)


def finish(test, b):
    rc = b.stop()
    log = b.read_log()
    b.dir.cleanup()
    test.assertEqual(rc, 0, log[-4000:])
    test.assertNotIn("Sanitizer", log)
    test.assertNotIn("runtime error:", log)


class Collector:
    """A paho client that records what it receives."""

    def __init__(self, port, cid, v5=False, clean=False, expiry=None):
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            self.c = mqtt.Client(cid, protocol=proto)
        else:
            self.c = mqtt.Client(cid, clean_session=clean, protocol=proto)
        self.v5 = v5
        self.port = port
        self.expiry = expiry
        self.lock = threading.Lock()
        self.msgs = []
        self.connacks = []
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)

    def _on_message(self, c, u, m):
        props = getattr(m, "properties", None)
        ids = getattr(props, "SubscriptionIdentifier", None) if props else None
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), m.qos, m.retain, ids))

    def _on_connect(self, c, u, flags, rc, props=None):
        with self.lock:
            self.connacks.append((flags.get("session present"), rc))

    def connect(self, clean_start=False):
        if self.v5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = self.expiry or 3600
            self.c.connect("127.0.0.1", self.port, 30, clean_start=clean_start,
                           properties=p)
        else:
            self.c.connect("127.0.0.1", self.port, 30)
        self.c.loop_start()
        assert wait_for(lambda: self.connacks, 10), "no CONNACK"
        return self

    def subscribe(self, topic, qos, **kw):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos, **kw)
        assert done.wait(10), "no SUBACK"

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()

    def payloads(self, topic=None):
        with self.lock:
            return [p for t, p, *_ in self.msgs if topic is None or t == topic]


def pub_many(port, topic, payloads, qos=1, retain=False, props=None,
             v5=False):
    c = mqtt.Client("pub-%d" % time.monotonic_ns(),
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    for p in payloads:
        kw = {"properties": props} if props else {}
        i = c.publish(topic, p, qos=qos, retain=retain, **kw)
        i.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def raw_session(port, cid, clean=False):
    s = raw_connect(port)
    s.sendall(connect_packet(cid, clean=clean))
    first, body = read_packet(s)
    assert first == 0x20, first
    return s, body[0] & 1  # socket, session present


class RestoreTest(unittest.TestCase):
    """A clean stop and a kill -9 give back the same state."""

    def check_restore(self, crash):
        b = pbroker().start()
        try:
            # v5 subscriber with options and an identifier, then offline
            sub = Collector(b.port, "sub5", v5=True).connect(True)
            p = Properties(PacketTypes.SUBSCRIBE)
            p.SubscriptionIdentifier = 7
            sub.subscribe("r/#", 2, properties=p)
            sub.stop()
            # 3.1.1 subscriber, offline
            s3 = Collector(b.port, "sub3").connect()
            s3.subscribe("r/+", 1)
            s3.stop()
            pub = mqtt.Client("pub-r", protocol=mqtt.MQTTv311)
            pub.connect("127.0.0.1", b.port, 30)
            pub.loop_start()
            infos = [pub.publish("r/a", b"one", qos=1),
                     pub.publish("r/b", b"two", qos=2),
                     pub.publish("r/ret", b"kept", qos=1, retain=True)]
            for i in infos:
                i.wait_for_publish(10)
                self.assertTrue(i.is_published())
            pub.disconnect()
            pub.loop_stop()
            if crash:
                b.kill9()
            else:
                self.assertEqual(b.stop(), 0)
            b.start()
            self.assertIn("restored 2 sessions, 2 subscriptions, 6 queued",
                          b.run_log())
            sub = Collector(b.port, "sub5", v5=True).connect(False)
            self.assertEqual(sub.connacks[0][0], 1)  # session present
            self.assertTrue(wait_for(lambda: len(sub.msgs) >= 3, 10),
                            sub.msgs)
            got = sorted((t, p, q, ids) for t, p, q, _, ids in sub.msgs)
            self.assertEqual(got, [("r/a", b"one", 1, [7]),
                                   ("r/b", b"two", 2, [7]),
                                   ("r/ret", b"kept", 1, [7])])
            s3 = Collector(b.port, "sub3").connect()
            self.assertEqual(s3.connacks[0][0], 1)
            self.assertTrue(wait_for(lambda: len(s3.msgs) >= 3, 10))
            self.assertEqual(sorted(s3.payloads()), [b"kept", b"one", b"two"])
            # the subscription itself came back: a new message arrives
            pub = mqtt.Client("pub-r2")
            pub.connect("127.0.0.1", b.port, 30)
            pub.loop_start()
            pub.publish("r/c", b"three", qos=1).wait_for_publish(10)
            self.assertTrue(wait_for(lambda: b"three" in s3.payloads(), 10))
            self.assertTrue(wait_for(lambda: b"three" in sub.payloads(), 10))
            pub.disconnect()
            pub.loop_stop()
            # retained message for a new subscriber
            n = Collector(b.port, "new", clean=True).connect()
            n.subscribe("r/ret", 0)
            self.assertTrue(wait_for(lambda: n.msgs, 10))
            self.assertEqual(n.msgs[0][1:4], (b"kept", 0, True))
            for c in (sub, s3, n):
                c.stop()
        finally:
            finish(self, b)

    def test_kill9(self):
        self.check_restore(crash=True)

    def test_clean_stop(self):
        self.check_restore(crash=False)

    def test_database_mode_and_schema(self):
        b = pbroker().start()
        try:
            db = b.path("data/moat.db")
            self.assertEqual(os.stat(db).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(b.path("data")).st_mode & 0o777, 0o700)
        finally:
            finish(self, b)

    def test_clean_session_not_stored(self):
        b = pbroker().start()
        try:
            c = Collector(b.port, "clean1", clean=True).connect()
            c.subscribe("x/#", 1)
            c.stop()
            b.kill9()
            b.start()
            self.assertIn("restored 0 sessions", b.run_log())
        finally:
            finish(self, b)


class QoS2StateTest(unittest.TestCase):
    """QoS 2 in both directions keeps its packet ids across a crash."""

    def test_incoming_id_not_routed_twice(self):
        b = pbroker().start()
        try:
            sub = Collector(b.port, "q2sub").connect()
            sub.subscribe("q2/#", 2)
            s, _ = raw_session(b.port, "q2pub")
            s.sendall(publish_packet("q2/t", b"once", qos=2, pid=9))
            self.assertEqual(read_packet(s), (0x50, b"\x00\x09"))  # PUBREC
            self.assertTrue(wait_for(lambda: sub.msgs, 10))
            b.kill9()
            s.close()
            b.start()
            s, present = raw_session(b.port, "q2pub")
            self.assertEqual(present, 1)
            # the DUP re-send is recognised: acknowledged, not routed
            s.sendall(publish_packet("q2/t", b"once", qos=2, pid=9,
                                     dup=True))
            self.assertEqual(read_packet(s), (0x50, b"\x00\x09"))
            s.sendall(ack("pubrel", 9))
            self.assertEqual(read_packet(s), (0x70, b"\x00\x09"))  # PUBCOMP
            # a later message shows the subscriber is live again
            s.sendall(publish_packet("q2/t", b"after", qos=1, pid=10))
            self.assertEqual(read_packet(s), (0x40, b"\x00\x0a"))
            self.assertTrue(wait_for(lambda: b"after" in sub.payloads(), 10))
            self.assertEqual(sub.payloads().count(b"once"), 1)
            s.close()
            sub.stop()
        finally:
            finish(self, b)

    def _subscriber(self, b):
        s, _ = raw_session(b.port, "q2out")
        s.sendall(subscribe_packet(1, [("o/#", 2)]))
        self.assertEqual(read_packet(s)[0], 0x90)
        return s

    def _publish(self, b, payload):
        pub = mqtt.Client("q2outpub")
        pub.connect("127.0.0.1", b.port, 30)
        pub.loop_start()
        pub.publish("o/t", payload, qos=2).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()

    def test_outgoing_publish_resent_with_same_id(self):
        b = pbroker().start()
        try:
            s = self._subscriber(b)
            self._publish(b, b"x1")
            p = parse_publish(*read_packet(s))
            self.assertEqual(p["qos"], 2)
            pid = p["pid"]
            b.kill9()
            s.close()
            b.start()
            s, present = raw_session(b.port, "q2out")
            self.assertEqual(present, 1)
            p = parse_publish(*read_packet(s))
            self.assertEqual((p["dup"], p["qos"], p["pid"], p["payload"]),
                             (True, 2, pid, b"x1"))
            s.sendall(ack("pubrec", pid))
            self.assertEqual(read_packet(s), (0x62, bytes([pid >> 8, pid & 255])))
            s.sendall(ack("pubcomp", pid))
            s.close()
        finally:
            finish(self, b)

    def test_outgoing_pubrel_not_publish_after_pubrec(self):
        b = pbroker().start()
        try:
            s = self._subscriber(b)
            self._publish(b, b"x2")
            pid = parse_publish(*read_packet(s))["pid"]
            s.sendall(ack("pubrec", pid))
            self.assertEqual(read_packet(s)[0], 0x62)  # PUBREL
            b.kill9()  # before our PUBCOMP
            s.close()
            b.start()
            s, present = raw_session(b.port, "q2out")
            self.assertEqual(present, 1)
            # only the PUBREL comes again: the message is not re-sent
            self.assertEqual(read_packet(s), (0x62, bytes([pid >> 8, pid & 255])))
            s.sendall(ack("pubcomp", pid))
            s.sendall(b"\xc0\x00")  # PINGREQ: nothing else was queued
            self.assertEqual(read_packet(s), (0xD0, b""))
            s.close()
        finally:
            finish(self, b)


class ExpiryTest(unittest.TestCase):
    """Expiry counts the time moatd was down."""

    def test_message_and_session_expiry(self):
        b = pbroker().start()
        try:
            keep = Collector(b.port, "keep", v5=True, expiry=3600).connect(True)
            keep.subscribe("e/#", 1)
            keep.stop()
            short = Collector(b.port, "short", v5=True, expiry=1).connect(True)
            short.subscribe("e/#", 1)
            short.stop()
            pub = mqtt.Client("epub", protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", b.port, 30)
            pub.loop_start()
            p = Properties(PacketTypes.PUBLISH)
            p.MessageExpiryInterval = 1
            pub.publish("e/t", b"soon", qos=1, properties=p).wait_for_publish(10)
            p = Properties(PacketTypes.PUBLISH)
            p.MessageExpiryInterval = 3600
            pub.publish("e/t", b"later", qos=1, properties=p).wait_for_publish(10)
            pub.disconnect()
            pub.loop_stop()
            b.kill9()
            time.sleep(2.2)  # down longer than both 1 s expiries
            b.start()
            self.assertIn("restored 1 sessions", b.run_log())
            keep = Collector(b.port, "keep", v5=True, expiry=3600).connect(False)
            self.assertTrue(wait_for(lambda: keep.msgs, 10))
            time.sleep(0.3)
            self.assertEqual(keep.payloads(), [b"later"])
            short = Collector(b.port, "short", v5=True, expiry=1).connect(False)
            self.assertEqual(short.connacks[0][0], 0)  # session gone
            keep.stop()
            short.stop()
        finally:
            finish(self, b)

    def test_will_of_a_crashed_connection(self):
        b = pbroker().start()
        try:
            w = Collector(b.port, "wsub").connect()
            w.subscribe("will/#", 1)
            w.stop()
            c = mqtt.Client("dying", protocol=mqtt.MQTTv5)
            c.will_set("will/dying", b"gone", qos=1)
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = 60
            c.connect("127.0.0.1", b.port, 30, properties=p)
            c.loop_start()
            assert wait_for(c.is_connected, 10)
            b.kill9()
            c.loop_stop()
            b.start()
            w = Collector(b.port, "wsub").connect()
            self.assertTrue(wait_for(lambda: w.msgs, 10), b.run_log())
            self.assertEqual(w.payloads(), [b"gone"])
            w.stop()
        finally:
            finish(self, b)


class SpecQoS2Publisher(threading.Thread):
    """A QoS 2 publisher that follows the spec across reconnects: a
    PUBLISH not yet PUBREC'd is re-sent with DUP, after a PUBREC only the
    PUBREL [MQTT-4.3.3], with a persistent session (clean session 0).

    Why not paho: paho-mqtt 1.6.1 re-sends the PUBLISH (DUP 0) of a
    message whose PUBREL it already sent when a reconnect attempt fails
    while the broker is down (its reconnect reset turns "resend PUBREL"
    into "publish" on the second attempt), which makes the broker see a
    new message.  See docs/testing.md."""

    WINDOW = 20

    def __init__(self, port, cid, topic, count, deadline):
        super().__init__(daemon=True)
        self.port, self.cid, self.topic = port, cid, topic
        self.count, self.deadline = count, deadline
        self.next = 0
        self.pending = {}   # pid -> [payload, "rec" | "comp"]
        self.acked = []     # payloads the broker PUBREC'd
        self.completed = 0
        self.pid = 0

    def _new_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def _session(self):
        s = raw_connect(self.port, timeout=2)
        s.sendall(connect_packet(self.cid, clean=False))
        first, _ = read_packet(s)
        assert first == 0x20
        for pid, (payload, st) in sorted(self.pending.items()):
            if st == "rec":
                s.sendall(publish_packet(self.topic, payload, qos=2, pid=pid,
                                         dup=True))
            else:
                s.sendall(ack("pubrel", pid))
        return s

    def _pump(self, s):
        while True:
            while (len(self.pending) < self.WINDOW and self.next < self.count):
                payload = b"q2-%06d" % self.next
                self.next += 1
                pid = self._new_pid()
                self.pending[pid] = [payload, "rec"]
                s.sendall(publish_packet(self.topic, payload, qos=2, pid=pid))
                time.sleep(0.002)
            if not self.pending:
                return
            first, body = read_packet(s)
            pid = int.from_bytes(body[:2], "big")
            if first == 0x50 and pid in self.pending:  # PUBREC
                if self.pending[pid][1] == "rec":
                    self.acked.append(self.pending[pid][0])
                self.pending[pid][1] = "comp"
                s.sendall(ack("pubrel", pid))
            elif first == 0x70 and pid in self.pending:  # PUBCOMP
                del self.pending[pid]
                self.completed += 1

    def run(self):
        while time.monotonic() < self.deadline:
            try:
                s = self._session()
                s.settimeout(5)
                self._pump(s)
                s.close()
                return
            except (OSError, ConnectionError, AssertionError):
                time.sleep(0.05)


class Kill9Test(unittest.TestCase):
    """QoS 1 and 2 publishers into persistent subscribers, one online and
    one offline, with moatd killed at random points: every acknowledged
    message is delivered (QoS 1 at least once, QoS 2 exactly once), the
    retained message and the subscriptions come back."""

    ROUNDS = 4
    PER_TOPIC = 1500  # messages per publisher in all

    def test_random_kills(self):
        seed = int(os.environ.get("MOAT_SEED", "0")) or random.randrange(1 << 30)
        rnd = random.Random(seed)
        # the offline session queues everything (max_queued_messages
        # would otherwise drop, as documented, past 1000)
        b = pbroker("max_queued_messages 10000\nmax_queued_bytes 64m\n")
        b.start()
        try:
            online = Collector(b.port, "k-online").connect()
            online.subscribe("k/#", 2)
            offline = Collector(b.port, "k-offline").connect()
            offline.subscribe("k/#", 2)
            offline.stop()
            ret = mqtt.Client("k-ret")
            ret.connect("127.0.0.1", b.port, 30)
            ret.loop_start()
            ret.publish("kr/state", b"retained-1", qos=1,
                        retain=True).wait_for_publish(10)
            ret.disconnect()
            ret.loop_stop()

            # QoS 1: paho (at least once is all it promises); QoS 2: a
            # publisher that keeps to the spec (see SpecQoS2Publisher)
            acks = []  # mids PUBACK'd; no lock: paho calls on_publish
            infos = []  # holding its own mutex
            p1 = mqtt.Client("k-pub1", clean_session=False)
            p1.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
            p1.on_publish = lambda cl, u, mid: acks.append(mid)
            p1.connect("127.0.0.1", b.port, 30)
            p1.loop_start()
            p2 = SpecQoS2Publisher(b.port, "k-pub2", "k/q2", self.PER_TOPIC,
                                   time.monotonic() + 120)
            p2.start()
            stop = threading.Event()

            def publish_q1():
                for i in range(self.PER_TOPIC):
                    if stop.is_set():
                        return
                    payload = b"q1-%06d" % i
                    infos.append((payload, p1.publish("k/q1", payload,
                                                      qos=1).mid))
                    time.sleep(0.002)

            t = threading.Thread(target=publish_q1)
            t.start()
            for r in range(self.ROUNDS):
                time.sleep(rnd.uniform(0.2, 1.0))
                b.kill9()
                time.sleep(rnd.uniform(0.0, 0.3))
                b.start()
            t.join(timeout=60)
            stop.set()
            # both finish what they have in flight (bounded): it is all
            # re-sent after reconnecting, so all of it gets acknowledged
            wait_for(lambda: len(acks) >= len(infos), 60)
            p2.join(timeout=60)
            mids = set(acks)
            acked = {1: [p for p, mid in infos if mid in mids],
                     2: list(p2.acked)}
            offline = Collector(b.port, "k-offline").connect()
            want = set(acked[1]) | set(acked[2])
            problems = []
            for c in (online, offline):
                ok = wait_for(lambda: want <= set(c.payloads()), 60)
                missing = sorted(want - set(c.payloads()))
                if not ok:
                    problems.append("%s missing %d acknowledged messages, "
                                    "e.g. %r" % (c.c._client_id,
                                                 len(missing), missing[:5]))
                q2 = [p for p in c.payloads() if p.startswith(b"q2-")]
                dups = sorted({p for p in q2 if q2.count(p) > 1})
                if dups:
                    problems.append("QoS 2 delivered twice to %s: %r"
                                    % (c.c._client_id, dups))
            self.assertEqual(problems, [], "MOAT_SEED=%d" % seed)
            n = Collector(b.port, "k-new", clean=True).connect()
            n.subscribe("kr/#", 1)
            self.assertTrue(wait_for(lambda: n.msgs, 10))
            self.assertEqual(n.payloads(), [b"retained-1"])
            for c in (online, offline, n):
                c.stop()
            p1.disconnect()
            p1.loop_stop()
            print("kill9 (MOAT_SEED=%d): %d restarts, acknowledged %d QoS 1 and %d QoS 2 "
                  "messages, online got %d, offline got %d"
                  % (seed, self.ROUNDS, len(acked[1]), len(acked[2]),
                     len(online.msgs), len(offline.msgs)))
        finally:
            finish(self, b)


class ReviewRegressionTest(unittest.TestCase):
    """Cases a review of the first version found."""

    def test_shutdown_duplicates_shared_queue(self):
        """A clean stop does not hand a shared-group member's queue to
        another member (its own rows stay): each message once."""
        b = pbroker(workers=1).start()
        try:
            for cid in ("shA", "shB"):
                c = Collector(b.port, cid).connect()
                c.subscribe("$share/g/sh/#", 1)
                c.stop()
            pub_many(b.port, "sh/t", [b"m%d" % i for i in range(10)])
            self.assertEqual(b.stop(), 0)
            b.start()
            got = []
            for cid in ("shA", "shB"):
                c = Collector(b.port, cid).connect()
                time.sleep(2)
                got += c.payloads()
                c.stop()
            self.assertEqual(sorted(got), sorted(b"m%d" % i
                                                 for i in range(10)))
        finally:
            finish(self, b)

    def test_idle_then_crash_expires_connected_session(self):
        """A session connected until the crash counts as offline from
        about the crash (the store writes last_alive while idle), not
        from its last message."""
        b = pbroker().start()
        try:
            c = Collector(b.port, "idle5", v5=True, expiry=4).connect(True)
            c.subscribe("idle/#", 1)
            time.sleep(6)  # idle: nothing is committed
            b.kill9()
            c.c.loop_stop()
            b.start()
            c2 = Collector(b.port, "idle5", v5=True, expiry=4).connect(False)
            self.assertEqual(c2.connacks[0][0], 1, "session lost")
            c2.stop()
        finally:
            finish(self, b)

    def test_expired_retained_rows_stay(self):
        """Retained messages that expired are deleted from the database
        at the next start."""
        b = pbroker().start()
        try:
            p = Properties(PacketTypes.PUBLISH)
            p.MessageExpiryInterval = 1
            for i in range(5):
                pub_many(b.port, "ret/%d" % i, [b"x"], retain=True, props=p,
                         v5=True)
            time.sleep(2)
            self.assertEqual(b.stop(), 0)
            b.start()
            self.assertEqual(b.stop(), 0)
            con = sqlite3.connect(b.path("data/moat.db"))
            n = con.execute("SELECT count(*) FROM retained").fetchone()[0]
            con.close()
            b.start()
            self.assertEqual(n, 0, "expired retained rows kept")
        finally:
            finish(self, b)

    def test_clean_start_acknowledged_only_when_stored(self):
        """CONNECT with clean session 1 over a stored session: the CONNACK
        waits until the session's end is stored; while the store fails it
        does not come, and after a crash the session is still there."""
        b = pbroker(preexec_fn=small_disk).start()
        try:
            w = Collector(b.port, "wipe").connect()
            w.subscribe("wipe/#", 1)
            w.stop()
            fill_store(self, b)
            # the client wipes its session: CONNACK session present 0
            sock = raw_connect(b.port)
            sock.sendall(connect_packet("wipe", clean=True))
            sock.settimeout(2)
            with self.assertRaises(OSError):  # no CONNACK while failing
                read_packet(sock)
            sock.close()
            b.kill9()
            b.preexec_fn = None
            b.start()
            w = Collector(b.port, "wipe").connect()
            self.assertEqual(w.connacks[0][0], 1,
                             "a wipe that was never acknowledged")
            w.stop()
        finally:
            finish(self, b)

    def test_restore_keeps_one_copy_per_message(self):
        """One 256 KB message queued for 40 sessions is one copy in memory
        after a restart too."""
        b = pbroker(workers=1).start()
        try:
            for i in range(40):
                c = Collector(b.port, "fan%d" % i).connect()
                c.subscribe("fan/#", 1)
                c.stop()

            def rss():
                time.sleep(0.5)
                with open("/proc/%d/status" % b.proc.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])

            pub_many(b.port, "fan/t", [os.urandom(256 * 1024)])
            r1 = rss()
            self.assertEqual(b.stop(), 0)
            b.start()
            r2 = rss()
            self.assertLess(r2, r1 + 4096)
        finally:
            finish(self, b)


    def test_v311_unsubscribe_while_failing(self):
        """Store failing: a 3.1.1 UNSUBSCRIBE of a stored session cannot
        be kept and 3.1.1's UNSUBACK cannot say so: the client is
        disconnected (it sends it again later)."""
        from moat_harness import (expect_closed, subscribe_packet,
                                  unsubscribe_packet)
        b = pbroker(preexec_fn=small_disk).start()
        try:
            sk = raw_connect(b.port)
            sk.sendall(connect_packet("u311", clean=False))
            self.assertEqual(read_packet(sk)[0], 0x20)
            sk.sendall(subscribe_packet(1, [("u/t", 0)]))
            self.assertEqual(read_packet(sk)[0], 0x90)
            fill_store(self, b)
            sk.sendall(unsubscribe_packet(2, ["u/t"]))
            self.assertTrue(expect_closed(sk), "UNSUBACK for an "
                            "unsubscription that is not kept")
        finally:
            finish(self, b)


    def test_one_moatd_per_database(self):
        b = pbroker().start()
        try:
            other = Broker("persistence true\npersistence_location %s\n"
                           % b.path("data"))
            with self.assertRaises(RuntimeError) as cm:
                other.start()
            self.assertIn("is another moatd using it?", str(cm.exception))
            other.dir.cleanup()
        finally:
            finish(self, b)


class BadStorageTest(unittest.TestCase):
    """Damaged or unusable storage: a clear error, no crash."""

    def start_fails(self, b, needle):
        with self.assertRaises(RuntimeError) as cm:
            b.start()
        self.assertEqual(b.proc.wait(10), 1)
        self.assertIn(needle, str(cm.exception))
        self.assertNotIn("Sanitizer", b.read_log())

    def test_not_a_database(self):
        b = pbroker()
        os.mkdir(b.path("data"), 0o700)
        with open(b.path("data/moat.db"), "wb") as f:
            f.write(b"this is not sqlite" * 100)
        os.chmod(b.path("data/moat.db"), 0o600)
        self.start_fails(b, "move it away")
        b.dir.cleanup()

    def test_damaged_pages(self):
        b = pbroker().start()
        c = Collector(b.port, "dmg").connect()
        c.subscribe("d/#", 1)
        c.stop()
        for i in range(50):
            pub = mqtt.Client("dpub")
            pub.connect("127.0.0.1", b.port, 30)
            pub.loop_start()
            pub.publish("d/t", b"x" * 3000, qos=1).wait_for_publish(10)
            pub.disconnect()
            pub.loop_stop()
        self.assertEqual(b.stop(), 0)
        path = b.path("data/moat.db")
        con = sqlite3.connect(path)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        size = os.path.getsize(path)
        self.assertGreater(size, 8 * 4096)
        with open(path, "r+b") as f:  # scribble over interior pages
            for off in range(2 * 4096, size - 4096, 4096):
                f.seek(off + 8)
                f.write(os.urandom(64))
        self.start_fails(b, "damaged")
        b.dir.cleanup()

    def test_open_to_others(self):
        b = pbroker()
        os.mkdir(b.path("data"), 0o700)
        with open(b.path("data/moat.db"), "wb"):
            pass
        os.chmod(b.path("data/moat.db"), 0o644)
        self.start_fails(b, "open to other users")
        b.dir.cleanup()

    def test_symlinked_database(self):
        b = pbroker()
        os.mkdir(b.path("data"), 0o700)
        os.symlink(b.path("elsewhere.db"), b.path("data/moat.db"))
        self.start_fails(b, "symbolic link")
        b.dir.cleanup()

    def test_unusable_directory(self):
        b = Broker("persistence true\npersistence_location /proc/1\n")
        self.start_fails(b, "persistence: ")
        b.dir.cleanup()
        b = pbroker()
        with open(b.path("data"), "w") as f:
            f.write("a file, not a directory")
        self.start_fails(b, "not a directory")
        b.dir.cleanup()

    @unittest.skipIf(os.geteuid() == 0, "root ignores directory modes")
    def test_read_only_directory(self):
        b = pbroker()
        os.mkdir(b.path("data"), 0o500)
        self.start_fails(b, "persistence: ")
        b.dir.cleanup()

    def test_newer_schema(self):
        b = pbroker()
        os.mkdir(b.path("data"), 0o700)
        con = sqlite3.connect(b.path("data/moat.db"))
        con.execute("PRAGMA user_version = 99")
        con.commit()
        con.close()
        os.chmod(b.path("data/moat.db"), 0o600)
        self.start_fails(b, "newer than this moatd")
        b.dir.cleanup()

    def test_disk_full(self):
        """A file-size limit stands in for a full disk: commits fail,
        nothing is acknowledged that is not stored, moatd stays up and
        stops cleanly; with room again, what was acknowledged is there."""
        b = pbroker(preexec_fn=small_disk).start()
        try:
            c = Collector(b.port, "full-sub").connect()
            c.subscribe("f/#", 1)
            c.stop()
            pub = mqtt.Client("full-pub", protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", b.port, 30)
            pub.loop_start()
            acked, refused = [], []
            lock = threading.Lock()

            def on_publish(cl, u, mid):
                with lock:
                    acked.append(mid)

            pub.on_publish = on_publish
            infos = []
            for i in range(400):  # 400 x 8 KiB: far past 512 KiB
                infos.append(pub.publish("f/t", b"%04d" % i + b"z" * 8192,
                                         qos=1))
                if i % 20 == 19:
                    time.sleep(0.05)
                if "commit failed" in b.run_log():
                    break
            self.assertTrue(wait_for(lambda: "commit failed" in
                                     b.run_log(), 20), b.run_log()[-3000:])
            self.assertTrue(b.alive())
            # a new QoS 1 message is refused (0x80), not acknowledged
            p5 = raw_connect(b.port)
            p5.sendall(connect5("full-raw"))
            self.assertEqual(read_packet(p5)[0], 0x20)
            p5.sendall(publish5("f/t", b"late", qos=1, pid=5))
            first, body = read_packet(p5)
            self.assertEqual(first, 0x40)
            self.assertEqual(body[:3], b"\x00\x05\x80")
            p5.close()
            pub.disconnect()
            pub.loop_stop()
            done = [p for p, i in zip(range(len(infos)), infos)
                    if i.is_published()]
            self.assertEqual(b.stop(), 0)
            self.assertIn("could not be written before shutdown",
                          b.read_log())
            b.preexec_fn = None
            b.start()
            c = Collector(b.port, "full-sub").connect()
            self.assertTrue(wait_for(lambda: len(c.msgs) >= len(done), 20))
            got = {p[:4] for p in c.payloads()}
            for i in done:
                self.assertIn(b"%04d" % i, got)
            c.stop()
        finally:
            finish(self, b)


if __name__ == "__main__":
    unittest.main()
