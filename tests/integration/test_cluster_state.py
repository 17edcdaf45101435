"""Cluster mode, state shared by the nodes (issue 21, docs/cluster.md):
retained messages in the JetStream key-value bucket MOAT_RETAINED; client
ids unique across the nodes (a connection on another node takes over, and
the session's subscriptions and waiting messages move with it).

The same 3 x nats-server + 3 x moatd loopback cluster as test_cluster.py
(scripts/cluster.sh in a temporary directory).  Retained messages become
visible on the other nodes once the bucket has them: the checks subscribe
again until they see the expected set (bounded), and assert on content,
never on timing.
"""
import os
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))

import test_cluster as tc  # noqa: E402
from moat_harness import HOST, wait_for  # noqa: E402

mqtt = tc.mqtt
WAIT = tc.WAIT


def retained(port, filt, v5=False, settle=1.0):
    """{topic: payload} of the retained messages a new subscriber to filt
    on port gets (those flagged retained, within settle seconds)."""
    got = {}
    lock = threading.Lock()
    done = threading.Event()
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    c = mqtt.Client(protocol=proto)

    def on_message(client, userdata, msg):
        if msg.retain:
            with lock:
                got[msg.topic] = msg.payload.decode()

    c.on_message = on_message
    c.on_subscribe = lambda *a: done.set()
    c.connect(HOST, port, 30)
    c.loop_start()
    try:
        c.subscribe(filt, 1)
        if not done.wait(WAIT):
            raise AssertionError("no SUBACK from port %d" % port)
        threading.Event().wait(settle)
        with lock:
            return dict(got)
    finally:
        c.disconnect()
        c.loop_stop()


def publish(port, topic, payload, qos=1, v5=False, retain=True):
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    c = mqtt.Client(protocol=proto)
    c.connect(HOST, port, 30)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos, retain=retain)
        info.wait_for_publish(WAIT)
        if qos:
            assert info.is_published(), "not acknowledged"
    finally:
        c.disconnect()
        c.loop_stop()


def raw_mqtt(port, cid, v5):
    """A raw MQTT connection (clean start) to port, CONNACK read:
    (socket, return code)."""
    sock = socket.create_connection((HOST, port), WAIT)
    sock.settimeout(WAIT)
    var = b"\x00\x04MQTT" + (b"\x05" if v5 else b"\x04") + \
        b"\x02\x00\x3c" + (b"\x00" if v5 else b"")
    body = var + struct.pack(">H", len(cid)) + cid.encode()
    sock.sendall(b"\x10" + bytes([len(body)]) + body)
    head = sock.recv(2)
    assert head[:1] == b"\x20", "no CONNACK"
    rest = b""
    while len(rest) < head[1]:
        rest += sock.recv(head[1] - len(rest))
    assert rest[1] == 0, "CONNACK refused"
    return sock


@unittest.skipIf(mqtt is None, "python3-paho-mqtt is missing")
class ClusterState(unittest.TestCase):
    # The cluster of test_cluster.py, without its tests (session
    # recovery on: the default in cluster mode).
    @classmethod
    def setUpClass(cls):
        tc.ClusterTest.setUpClass.__func__(cls)
        cls.announcements_cross()

    @classmethod
    def announcements_cross(cls):
        """Client-id announcements are core NATS: one sent before the
        other nodes' subscriptions crossed the NATS routes is lost.  Ready
        when a takeover from every node reached every other one."""
        for old in range(3):
            for new in range(3):
                if new == old:
                    continue
                cid = "probe-%d-%d" % (old, new)
                name = "moat_cluster_sessions_ended_total"

                def crossed():
                    before = cls.metric(old, name)
                    a = raw_mqtt(cls.mqtt[old], cid, True)
                    b = raw_mqtt(cls.mqtt[new], cid, True)
                    try:
                        return wait_for(lambda: cls.metric(old, name) !=
                                        before, 2.0)
                    finally:
                        a.close()
                        b.close()
                if not wait_for(crossed, WAIT, 0.1):
                    cls.tearDownClass()
                    raise AssertionError("announcements from node %d do "
                                         "not reach node %d" %
                                         (new + 1, old + 1))

    @classmethod
    def tearDownClass(cls):
        tc.ClusterTest.tearDownClass.__func__(cls)

    cluster = classmethod(tc.ClusterTest.cluster.__func__)
    metric = classmethod(tc.ClusterTest.metric.__func__)

    def assert_retained(self, node, filt, want, v5=False):
        """Node sees exactly want (eventually, within WAIT)."""
        last = {}

        def same():
            last.clear()
            last.update(retained(self.mqtt[node], filt, v5))
            return last == want
        self.assertTrue(wait_for(same, WAIT, 0.2),
                        "node %d, %s: %r, not %r" % (node + 1, filt, last,
                                                     want))

    def test_retained_wildcard_on_another_node(self):
        """Retained on node 1 (QoS 0 and 1, 3.1.1 and 5, topics the
        subject mapping must escape), read by wildcard subscribers on
        node 3 and node 2."""
        want = {
            "rt/a/temp": "21.5",
            "rt/b/temp": "19",
            "rt/c.d/temp": "dots",
            "rt/sp ace/temp": "space",
            "rt/caf\u00e9/temp": "utf8",
            "rt//temp": "empty level",
        }
        for i, (topic, payload) in enumerate(sorted(want.items())):
            publish(self.mqtt[0], topic, payload, qos=i % 2, v5=i % 3 == 0)
        self.assert_retained(2, "rt/+/temp", want)
        self.assert_retained(1, "rt/#", want, v5=True)
        self.assert_retained(2, "rt/a/temp", {"rt/a/temp": "21.5"})

    def test_retained_replaced_and_cleared_anywhere(self):
        """The last write wins on every node, whichever node wrote it; an
        empty retained message clears it everywhere."""
        publish(self.mqtt[0], "rc/x", "one")
        self.assert_retained(2, "rc/#", {"rc/x": "one"})
        publish(self.mqtt[1], "rc/x", "two")
        publish(self.mqtt[2], "rc/y", "three")
        for node in range(3):
            self.assert_retained(node, "rc/#", {"rc/x": "two",
                                                "rc/y": "three"})
        publish(self.mqtt[2], "rc/x", "")
        for node in range(3):
            self.assert_retained(node, "rc/#", {"rc/y": "three"})

    def connect(self, node, cid, v5=True, clean=True, on_message=None):
        """A paho client on node; (client, events): "connack" holds the
        session present flag, "disconnect" the reason code (v5) or rc."""
        ev = {"connack": threading.Event(), "gone": threading.Event()}
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            c = mqtt.Client(client_id=cid, protocol=proto,
                            clean_session=clean)

        def on_connect(client, userdata, flags, rc, *props):
            ev["present"] = flags.get("session present")
            ev["connack"].set()

        def on_disconnect(client, userdata, rc, *props):
            ev["reason"] = int(getattr(rc, "value", rc))
            ev["gone"].set()
        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        if on_message:
            c.on_message = on_message
        c.reconnect_delay_set(60, 120)  # a closed one stays closed
        if v5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            if not clean:
                props.SessionExpiryInterval = 300
            c.connect(HOST, self.mqtt[node], 30, clean_start=clean,
                      properties=props)
        else:
            c.connect(HOST, self.mqtt[node], 30)
        c.loop_start()
        self.assertTrue(ev["connack"].wait(WAIT), "no CONNACK")
        return c, ev

    def raw_connect(self, node, cid, v5):
        """A raw MQTT connection (clean start) on node, CONNACK read."""
        return raw_mqtt(self.mqtt[node], cid, v5)

    def test_client_id_taken_over_across_nodes(self):
        """The same client id on node 2 takes over from node 1: the
        connection on node 1 gets DISCONNECT 0x8E (MQTT 5) or is closed
        (3.1.1); the one on node 2 stays."""
        for v5 in (True, False):
            with self.subTest(v5=v5):
                cid = "takeover-%d" % v5
                old = self.raw_connect(0, cid, v5)
                new = self.raw_connect(1, cid, v5)
                try:
                    data = b""
                    while True:  # until the server closes (bounded)
                        more = old.recv(64)
                        if not more:
                            break
                        data += more
                    if v5:  # DISCONNECT, reason 0x8E
                        self.assertEqual(data[:1], b"\xe0", data)
                        self.assertEqual(data[2], 0x8E, data)
                    else:
                        self.assertEqual(data, b"")
                    new.settimeout(1.0)
                    with self.assertRaises(socket.timeout,
                                           msg="the new connection ended"):
                        new.recv(1)
                finally:
                    old.close()
                    new.close()

    def ended(self, node, before):
        """Wait until node ended a session for a connection elsewhere
        (its counter passed before)."""
        name = "moat_cluster_sessions_ended_total"
        self.assertTrue(wait_for(lambda: self.metric(node, name) > before,
                                 WAIT), "node %d kept the session" %
                        (node + 1))

    def test_taken_over_session_ends_on_the_old_node(self):
        """A persistent session on node 1 ends there when its client id
        connects to node 2 with a clean start: coming back to node 1
        finds no session.  (The test waits for node 1 to have ended it:
        a client back at node 1 before the announcement reached it would
        find the old session, docs/cluster.md.)"""
        name = "moat_cluster_sessions_ended_total"
        c, ev = self.connect(0, "moved-1", v5=False, clean=False)
        c.subscribe("moved/x", 1)
        c.disconnect()
        c.loop_stop()
        before = self.metric(0, name)
        c, ev = self.connect(1, "moved-1", v5=False, clean=True)
        c.disconnect()
        c.loop_stop()
        self.ended(0, before)
        c, ev = self.connect(0, "moved-1", v5=False, clean=False)
        c.disconnect()
        c.loop_stop()
        self.assertFalse(ev["present"], "the old session is still there")

    def test_session_moves_back_and_forth(self):
        """Without a clean start the session follows its client: node 1
        -> node 2 -> node 1, its subscription still delivers on node 1
        without a new SUBSCRIBE."""
        got = []
        c, ev = self.connect(0, "bf-1", v5=True, clean=False,
                             on_message=lambda cl, u, m: got.append(
                                 m.payload.decode()))
        done = threading.Event()
        c.on_subscribe = lambda *a: done.set()
        c.subscribe("bf/x", 1)
        self.assertTrue(done.wait(WAIT))
        c.disconnect()
        c.loop_stop()
        for old, new in ((0, 1), (1, 0)):
            before = self.metric(old, "moat_cluster_sessions_ended_total")
            c, ev = self.connect(new, "bf-1", v5=True, clean=False,
                                 on_message=lambda cl, u, m: got.append(
                                     m.payload.decode()))
            self.ended(old, before)
            if new == 1:
                c.disconnect()
                c.loop_stop()

        def delivered():
            publish(self.mqtt[2], "bf/x", "back", qos=1, retain=False)
            return "back" in got
        try:
            self.assertTrue(wait_for(delivered, WAIT, 0.5),
                            "the subscription did not come back: %r" % got)
        finally:
            c.disconnect()
            c.loop_stop()

    def test_session_moves_with_its_client(self):
        """A persistent session on node 1 with queued QoS 1 messages: its
        client connects to node 2 and gets them, and its subscription
        goes on there without a new SUBSCRIBE."""
        for v5 in (False, True):
            with self.subTest(v5=v5):
                cid, topic = "mover-%d" % v5, "mv%d/x" % v5
                c, ev = self.connect(0, cid, v5=v5, clean=False)
                done = threading.Event()
                c.on_subscribe = lambda *a: done.set()
                c.subscribe(topic.split("/")[0] + "/#", 1)
                self.assertTrue(done.wait(WAIT))
                c.disconnect()
                c.loop_stop()
                want = ["q%d" % i for i in range(10)]
                for p in want:  # queued on node 1
                    publish(self.mqtt[0], topic, p, qos=1, v5=v5,
                            retain=False)
                got = []
                lock = threading.Lock()

                def on_message(client, userdata, msg):
                    with lock:
                        got.append(msg.payload.decode())
                c, ev = self.connect(1, cid, v5=v5, clean=False,
                                     on_message=on_message)
                try:
                    self.assertTrue(wait_for(lambda: set(want) <= set(got),
                                             WAIT),
                                    "queued messages: %r" % got)
                    publish(self.mqtt[2], topic, "later", qos=1, v5=v5,
                            retain=False)
                    self.assertTrue(wait_for(lambda: "later" in got, WAIT),
                                    "the subscription did not move")
                    with lock:
                        firsts = list(dict.fromkeys(got))
                    self.assertEqual(firsts, want + ["later"])
                finally:
                    c.disconnect()
                    c.loop_stop()

    # ---- wills across nodes -------------------------------------------
    def raw_will(self, node, cid, v5, topic, payload, delay=None,
                 expiry=0, clean=True):
        """A raw MQTT connection on node with a QoS 1 will (MQTT 5: Will
        Delay Interval delay, Session Expiry Interval expiry), CONNACK
        read; the caller ends it (close: no DISCONNECT, the will is due).
        """
        def varint(n):
            out = b""
            while True:
                n, d = n >> 7, n & 0x7F
                out += bytes([d | (0x80 if n else 0)])
                if not n:
                    return out

        def utf8(b):
            return struct.pack(">H", len(b)) + b
        flags = (0x02 if clean else 0) | 0x04 | 0x08  # will, QoS 1
        var = utf8(b"MQTT") + (b"\x05" if v5 else b"\x04") + \
            bytes([flags]) + b"\x00\x3c"
        if v5:
            props = b"\x11" + struct.pack(">I", expiry) if expiry else b""
            var += varint(len(props)) + props
        body = var + utf8(cid.encode())
        if v5:
            wp = b"\x18" + struct.pack(">I", delay) if delay else b""
            body += varint(len(wp)) + wp
        body += utf8(topic.encode()) + utf8(payload.encode())
        sock = socket.create_connection((HOST, self.mqtt[node]), WAIT)
        sock.settimeout(WAIT)
        sock.sendall(b"\x10" + varint(len(body)) + body)
        head = sock.recv(2)
        self.assertEqual(head[:1], b"\x20", "no CONNACK")
        rest = b""
        while len(rest) < head[1]:
            rest += sock.recv(head[1] - len(rest))
        self.assertEqual(rest[1], 0, "CONNACK refused")
        return sock

    def will_watchers(self, topic):
        """A subscriber to topic on each node; (clients, got): got[node]
        lists the payloads each received."""
        got = {n: [] for n in range(3)}
        lock = threading.Lock()
        clients = []
        for node in range(3):
            def on_message(client, userdata, msg, node=node):
                with lock:
                    got[node].append(msg.payload.decode())
            c = mqtt.Client(protocol=mqtt.MQTTv311)
            c.on_message = on_message
            done = threading.Event()
            c.on_subscribe = lambda *a, d=done: d.set()
            c.connect(HOST, self.mqtt[node], 30)
            c.loop_start()
            c.subscribe(topic, 1)
            self.assertTrue(done.wait(WAIT), "no SUBACK on node %d" %
                            (node + 1))
            clients.append(c)
        # interest reaches the other nodes' NATS servers a little later
        time.sleep(1.0)
        return clients, got

    def close_watchers(self, clients):
        for c in clients:
            c.disconnect()
            c.loop_stop()

    def assert_wills(self, got, want, what):
        """Every node's subscriber got exactly want (a list), waiting
        for them, then a little longer for duplicates."""
        if want:
            self.assertTrue(wait_for(lambda: all(len(got[n]) >= len(want)
                                                 for n in range(3)), WAIT),
                            "%s: %r" % (what, got))
        time.sleep(2.0)  # room for a second copy to show up
        for n in range(3):  # two publishers: no order between them
            self.assertEqual(sorted(got[n]), want, "%s, node %d: %r" %
                             (what, n + 1, got))

    def test_will_once_across_nodes(self):
        """A client on node 1 whose connection ends without DISCONNECT
        (3.1.1 and 5): its will reaches the subscribers on all three
        nodes exactly once."""
        clients, got = self.will_watchers("wl/once/#")
        try:
            for v5 in (False, True):
                sock = self.raw_will(0, "wl-once-%d" % v5, v5,
                                     "wl/once/%d" % v5, "gone-%d" % v5)
                sock.close()
            self.assert_wills(got, ["gone-0", "gone-1"], "lost connection")
        finally:
            self.close_watchers(clients)

    def test_will_on_takeover_across_nodes(self):
        """MQTT 5 takeover by a connection on another node: a will
        without delay goes out once (the old connection ended,
        [MQTT-3.1.4-3]); a delayed will is cancelled when the session
        moves on (the client is back), and goes out once when the new
        connection asked for a clean start (the session ends)."""
        clients, got = self.will_watchers("wl/to/#")
        socks = []
        try:
            for cid, delay in (("wl-now", None), ("wl-moved", 60),
                               ("wl-clean", 60)):
                socks.append(self.raw_will(0, cid, True, "wl/to/" + cid,
                                           cid, delay=delay, expiry=300,
                                           clean=True))
            # the new connections: on node 2 (and then node 3), no will
            for cid, clean in (("wl-now", False), ("wl-moved", False),
                               ("wl-clean", True)):
                sock = self.raw_connect(1, cid, True) if clean else \
                    self.raw_persistent(1, cid)
                socks.append(sock)
            want = ["wl-now", "wl-clean"]
            self.assertTrue(wait_for(lambda: all(
                sorted(got[n]) == sorted(want) for n in range(3)), WAIT),
                "takeover: %r" % got)
            time.sleep(2.0)  # room for a second copy, or a wrong will
            for n in range(3):
                self.assertEqual(sorted(got[n]), sorted(want),
                                 "node %d: %r" % (n + 1, got))
        finally:
            for s in socks:
                s.close()
            self.close_watchers(clients)

    def raw_persistent(self, node, cid):
        """A raw MQTT 5 connection on node resuming cid's session (Clean
        Start 0, Session Expiry 300), without a will; CONNACK read."""
        sock = socket.create_connection((HOST, self.mqtt[node]), WAIT)
        sock.settimeout(WAIT)
        props = b"\x11" + struct.pack(">I", 300)
        var = b"\x00\x04MQTT\x05\x00\x00\x3c" + bytes([len(props)]) + props
        body = var + struct.pack(">H", len(cid)) + cid.encode()
        sock.sendall(b"\x10" + bytes([len(body)]) + body)
        head = sock.recv(2)
        self.assertEqual(head[:1], b"\x20", "no CONNACK")
        rest = b""
        while len(rest) < head[1]:
            rest += sock.recv(head[1] - len(rest))
        self.assertEqual(rest[1], 0, "CONNACK refused")
        return sock

    def test_z_moatd_kill9_persistent_clients(self):
        """kill -9 of the node of persistent clients (one connected, one
        offline, 3.1.1 and 5): they reconnect to another node, without
        subscribing again, and receive every QoS 1 message acknowledged to
        the publisher (before and after the kill)."""
        clients = [("kl-on", True, True), ("kl-off", False, False)]
        got = {cid: [] for cid, _, _ in clients}
        lock = threading.Lock()

        def collector(cid):
            def on_message(client, userdata, msg):
                with lock:
                    got[cid].append(msg.payload.decode())
            return on_message
        live = []
        for cid, v5, stay in clients:
            c, ev = self.connect(0, cid, v5=v5, clean=False,
                                 on_message=collector(cid))
            done = threading.Event()
            c.on_subscribe = lambda *a, d=done: d.set()
            c.subscribe("kl/%s/#" % cid, 1)
            self.assertTrue(done.wait(WAIT))
            if stay:
                live.append(c)
            else:
                c.disconnect()
                c.loop_stop()
        # The session records are written within 2 s (cluster_sreg.c).
        time.sleep(5)
        pub = tc.Pub(self.mqtt[2], False, "kl-pub")
        try:
            for i in range(60):
                if i == 30:
                    r = self.cluster("kill", "moatd", "1", "KILL")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    for c in live:
                        c.loop_stop()
                for cid, _, _ in clients:
                    pub.publish("kl/%s/x" % cid, "%s-%d" % (cid, i), 1)
                time.sleep(0.01)
            self.assertTrue(wait_for(lambda: len(pub.acked) == 120, WAIT))
            news = []
            for cid, v5, _ in clients:
                c, ev = self.connect(1, cid, v5=v5, clean=False,
                                     on_message=collector(cid))
                news.append(c)
            for cid, _, _ in clients:
                want = {p for p in pub.acked if p.startswith(cid + "-")}
                self.assertTrue(
                    wait_for(lambda: want <= set(got[cid]), WAIT),
                    "%s: acknowledged and lost: %s" %
                    (cid, sorted(want - set(got[cid]))[:10]))
            for c in news:
                c.disconnect()
                c.loop_stop()
        finally:
            pub.close()
            r = self.cluster("up", "moatd", "1", timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_z_node_back_after_kill9(self):
        """A node killed with kill -9 comes back with the bucket's
        retained messages: those set and cleared while it was away."""
        publish(self.mqtt[0], "rk/old", "stays")
        publish(self.mqtt[0], "rk/gone", "cleared while away")
        self.assert_retained(2, "rk/#", {"rk/old": "stays",
                                         "rk/gone": "cleared while away"})
        r = self.cluster("kill", "moatd", "3", "KILL")
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            publish(self.mqtt[0], "rk/gone", "")
            publish(self.mqtt[1], "rk/new", "set while away")
        finally:
            r = self.cluster("up", "moatd", "3", timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_retained(2, "rk/#", {"rk/old": "stays",
                                         "rk/new": "set while away"})


if __name__ == "__main__":
    unittest.main()
