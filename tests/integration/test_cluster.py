"""Cluster mode (issue 21, docs/cluster.md): three nats-server in one
JetStream cluster (stream R3) and three moatd nodes on loopback, started
by scripts/cluster.sh in a temporary directory.

A publisher on node 1, subscribers on nodes 2 and 3, at QoS 0/1/2, MQTT
3.1.1 and 5 (paho-mqtt and mosquitto_pub/_sub): no loss, no QoS 2
duplicates, the publisher's order; shared subscriptions spread over the
nodes, each message to one member; kill -9 of one nats-server: every
message acknowledged to the publisher reaches the subscriber.

Every wait is bounded; nothing asserts on timing.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))

from moat_harness import HOST, wait_for  # noqa: E402

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - depends on the host
    mqtt = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "cluster.sh")
MOATD = os.environ.get("MOATD_BIN", os.path.join(ROOT, "build", "moatd"))
WAIT = 30.0
N = 100  # messages per run


def ports_free(base):
    """Are the ports scripts/cluster.sh uses with this base free?"""
    for off in (1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33, 41, 42, 43):
        s = socket.socket()
        try:
            s.bind((HOST, base + off))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pick_base():
    seed = os.getpid() % 200
    for i in range(200):
        base = 20000 + ((seed + i) % 200) * 50
        if ports_free(base):
            return base
    raise unittest.SkipTest("no free port range for the cluster")


class Sub:
    """A paho subscriber collecting payloads (in order of arrival)."""

    def __init__(self, port, topic, qos, v5, cid, clean=True):
        self.got = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=proto,
                                 clean_session=clean)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        if v5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            if not clean:
                props.SessionExpiryInterval = 300
            self.c.connect(HOST, port, 30, clean_start=clean,
                           properties=props)
        else:
            self.c.connect(HOST, port, 30)
        self.c.loop_start()
        self.c.subscribe(topic, qos)
        if not self.subscribed.wait(WAIT):
            raise AssertionError("no SUBACK from port %d" % port)

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.got.append(msg.payload.decode())

    def payloads(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Pub:
    """A paho publisher remembering which messages were acknowledged."""

    def __init__(self, port, v5, cid):
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=cid, protocol=proto)
        self.c.max_inflight_messages_set(20)
        self.c.max_queued_messages_set(0)
        self.acked = set()
        self.mids = {}
        self.early = set()  # acknowledged before publish() returned
        self.lock = threading.Lock()
        self.c.on_publish = self._on_publish
        self.c.connect(HOST, port, 30)
        self.c.loop_start()

    def _on_publish(self, client, userdata, mid, *rest):
        with self.lock:
            if mid in self.mids:
                self.acked.add(self.mids.pop(mid))
            else:
                self.early.add(mid)

    def publish(self, topic, payload, qos):
        # Not under self.lock: paho may run on_publish in its own thread
        # while holding its locks, which publish() needs too.
        info = self.c.publish(topic, payload, qos)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                if qos:
                    self.acked.add(payload)
            elif qos:
                self.mids[info.mid] = payload
        return info

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@unittest.skipIf(mqtt is None, "python3-paho-mqtt is missing")
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nats-server", "curl", "mosquitto_pub"):
            if subprocess.run(["sh", "-c", "command -v " + tool],
                              capture_output=True).returncode:
                raise unittest.SkipTest(tool + " is missing")
        cls.tmp = tempfile.TemporaryDirectory(prefix="moat-cluster-")
        cls.base = pick_base()
        cls.env = dict(os.environ, MOATD_BIN=MOATD,
                       MOAT_CLUSTER_DIR=os.path.join(cls.tmp.name, "c"),
                       MOAT_CLUSTER_BASE=str(cls.base))
        r = cls.cluster("start", timeout=180)
        if r.returncode:
            cls.cluster("stop")
            raise AssertionError("cluster start failed:\n" + r.stdout +
                                 r.stderr)
        cls.mqtt = [cls.base + 31, cls.base + 32, cls.base + 33]
        cls.http = [cls.base + 41, cls.base + 42, cls.base + 43]
        for i in range(3):
            if not wait_for(lambda: cls.metric(i, "moat_cluster_stream_"
                                               "ready") == 1, WAIT):
                cls.cluster("stop")
                raise AssertionError("node %d: stream not ready" % (i + 1))

    @classmethod
    def tearDownClass(cls):
        logs = os.path.join(cls.tmp.name, "c", "log")
        cls.cluster("stop")
        bad = []
        for name in sorted(os.listdir(logs)):
            if name.startswith("moatd"):
                with open(os.path.join(logs, name)) as f:
                    text = f.read()
                if ("runtime error" in text or "AddressSanitizer" in text
                        or "LeakSanitizer" in text
                        or "ThreadSanitizer" in text):
                    bad.append(name)
        cls.tmp.cleanup()
        assert not bad, "sanitizer reports in " + ", ".join(bad)

    @classmethod
    def cluster(cls, *args, timeout=60):
        return subprocess.run(["sh", SCRIPT] + list(args), env=cls.env,
                              capture_output=True, text=True,
                              timeout=timeout)

    @classmethod
    def metric(cls, node, name):
        try:
            with urllib.request.urlopen("http://%s:%d/metrics" %
                                        (HOST, cls.http[node]),
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
        return int(m.group(1)) if m else None

    # ---- helpers ------------------------------------------------------

    def warm_up(self, pub, subs, topic):
        """QoS 0 reaches a node once its subscription's interest reached
        NATS: publish probes until every subscriber saw one."""
        def seen():
            pub.publish(topic, "probe", 0)
            return all("probe" in s.payloads() for s in subs)
        self.assertTrue(wait_for(seen, WAIT, 0.1),
                        "interest did not reach the other nodes")

    def check_run(self, qos, v5, tag):
        pfx = "cl/%s/%d" % (tag, qos)
        subs = [Sub(self.mqtt[1], pfx + "/#", qos, v5, "s2-%s-%d" % (tag, qos)),
                Sub(self.mqtt[2], pfx + "/+", qos, v5, "s3-%s-%d" % (tag, qos))]
        pub = Pub(self.mqtt[0], v5, "p1-%s-%d" % (tag, qos))
        try:
            self.warm_up(pub, subs, pfx + "/x")
            want = ["%s-%d" % (tag, i) for i in range(N)]
            for p in want:
                pub.publish(pfx + "/x", p, qos)
            for s in subs:
                self.assertTrue(wait_for(
                    lambda: set(want) <= set(s.payloads()), WAIT),
                    "QoS %d: lost %s" % (qos, sorted(set(want) -
                                                     set(s.payloads()))[:5]))
            if qos:
                self.assertTrue(wait_for(lambda: len(pub.acked) == N, WAIT))
            time.sleep(0.3)
            for s in subs:
                got = [p for p in s.payloads() if p != "probe"]
                firsts = list(dict.fromkeys(got))
                self.assertEqual(firsts, want, "publisher's order")
                if qos == 2:
                    self.assertEqual(got, want, "QoS 2 duplicates")
        finally:
            pub.close()
            for s in subs:
                s.close()

    # ---- tests ----------------------------------------------------------

    def test_fanout_v311(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                self.check_run(qos, False, "v3")

    def test_fanout_v5(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                self.check_run(qos, True, "v5")

    def test_mosquitto_clients(self):
        """mosquitto_sub on nodes 2 and 3, mosquitto_pub on node 1, QoS 1
        and 2, both protocol versions."""
        for qos, ver in ((1, "mqttv311"), (2, "mqttv5")):
            with self.subTest(qos=qos, version=ver):
                topic = "cl/mosq/%d" % qos
                subs = [subprocess.Popen(
                    ["mosquitto_sub", "-h", HOST, "-p", str(port), "-V", ver,
                     "-t", topic, "-q", str(qos), "-C", str(N), "-W", "60"],
                    stdout=subprocess.PIPE, text=True)
                    for port in self.mqtt[1:]]
                # QoS 1/2 come through the stream, consumed from start:
                # no interest to wait for, only the SUBACKs.
                time.sleep(1.0)
                lines = "".join("m%d\n" % i for i in range(N))
                r = subprocess.run(
                    ["mosquitto_pub", "-h", HOST, "-p", str(self.mqtt[0]),
                     "-V", ver, "-t", topic, "-q", str(qos), "-l"],
                    input=lines, text=True, capture_output=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                for p in subs:
                    out, _ = p.communicate(timeout=70)
                    self.assertEqual(out.split(), ["m%d" % i for i in range(N)])

    def test_shared_spread(self):
        """$share/g/...: every message to exactly one member, members on
        all three nodes, and more than one node takes some."""
        for qos in (0, 1):
            with self.subTest(qos=qos):
                f = "$share/g%d/cl/share/%d/#" % (qos, qos)
                subs = [Sub(self.mqtt[i], f, qos, True, "sh%d-%d" % (i, qos))
                        for i in range(3)]
                probe = Sub(self.mqtt[2], "cl/share/%d/#" % qos, 0, True,
                            "shp-%d" % qos)
                pub = Pub(self.mqtt[0], True, "shpub-%d" % qos)
                try:
                    self.warm_up(pub, [probe], "cl/share/%d/p" % qos)
                    # The groups' interest is made with the probe's.
                    time.sleep(1.0)
                    want = ["s%d" % i for i in range(N)]
                    for p in want:
                        pub.publish("cl/share/%d/x" % qos, p, qos)

                    def total():
                        return [p for s in subs for p in s.payloads()
                                if p != "probe"]
                    self.assertTrue(wait_for(
                        lambda: set(want) <= set(total()), WAIT),
                        "shared: lost %d" % len(set(want) - set(total())))
                    time.sleep(0.5)
                    got = total()
                    self.assertEqual(sorted(got), sorted(want),
                                     "each message to exactly one member")
                    busy = [s for s in subs
                            if any(p != "probe" for p in s.payloads())]
                    self.assertGreaterEqual(len(busy), 2,
                                            "spread over the nodes")
                finally:
                    pub.close()
                    probe.close()
                    for s in subs:
                        s.close()

    def test_small_payloads(self):
        """Empty and one-byte payloads cross nodes at every QoS (the
        envelope is then at its smallest)."""
        sub = Sub(self.mqtt[1], "cl/small/#", 2, True, "small-sub")
        pub = Pub(self.mqtt[0], True, "small-pub")
        try:
            self.warm_up(pub, [sub], "cl/small/p")
            for qos in (0, 1, 2):
                for p in ("", "x"):
                    pub.publish("cl/small/%d" % qos, p, qos)
            self.assertTrue(wait_for(lambda: sorted(sub.payloads()).count(
                "") == 3 and sub.payloads().count("x") == 3, WAIT),
                sub.payloads())
        finally:
            pub.close()
            sub.close()

    def connected_server(self, node):
        """The nats-server (1..3) node is connected to now."""
        with open(os.path.join(self.tmp.name, "c", "log",
                               "moatd-n%d.log" % node)) as f:
            ports = re.findall(r"connected to NATS nats://[^:]+:(\d+)",
                               f.read())
        return str(int(ports[-1]) - self.base)

    def kill9_run(self, victim_of, tag):
        """QoS 1 messages flow from node 1 to a persistent session on node
        3 while the nats-server node victim_of is connected to is killed
        (kill -9): every message acknowledged to the publisher reaches the
        subscriber."""
        sub = Sub(self.mqtt[2], "cl/%s/#" % tag, 1, False, tag + "-sub",
                  clean=False)
        pub = Pub(self.mqtt[0], False, tag + "-pub")
        victim = self.connected_server(victim_of)
        try:
            sent = []
            for i in range(3 * N):
                if i == N:
                    r = self.cluster("kill", "nats", victim, "KILL")
                    self.assertEqual(r.returncode, 0, r.stderr)
                p = "k%d" % i
                pub.publish("cl/%s/x" % tag, p, 1)
                sent.append(p)
                time.sleep(0.005)
            # Acknowledgements of the messages in flight at the kill come
            # once the node reconnected and JetStream stored them.
            wait_for(lambda: len(pub.acked) == len(sent), 60)
            acked = set(pub.acked)
            self.assertGreater(len(acked), N, "nothing acknowledged after "
                               "the kill")
            self.assertTrue(wait_for(lambda: acked <= set(sub.payloads()),
                                     60),
                            "acknowledged and lost: %s" %
                            sorted(acked - set(sub.payloads()))[:10])
        finally:
            pub.close()
            sub.close()
            r = self.cluster("up", "nats", victim, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_z_outage(self):
        """Every nats-server gone (kill -9): node 1 keeps serving its own
        clients (QoS 0 and 1 delivered locally at once), acknowledges no
        QoS 1 message JetStream has not stored, and when NATS is back the
        acknowledgements come and node 2's persistent subscriber gets
        every message it missed."""
        local = Sub(self.mqtt[0], "cl/out/#", 1, False, "out-local")
        remote = Sub(self.mqtt[1], "cl/out/#", 1, False, "out-remote",
                     clean=False)
        pub = Pub(self.mqtt[0], False, "out-pub")
        q1 = ["o1-%d" % i for i in range(20)]
        q0 = ["o0-%d" % i for i in range(20)]
        try:
            for n in ("1", "2", "3"):
                self.cluster("kill", "nats", n, "KILL")
            self.assertTrue(wait_for(
                lambda: self.metric(0, "moat_cluster_connected") == 0, WAIT))
            for p in q1:
                pub.publish("cl/out/x", p, 1)
            for p in q0:
                pub.publish("cl/out/y", p, 0)
            self.assertTrue(wait_for(
                lambda: set(q1 + q0) <= set(local.payloads()), WAIT),
                "local traffic stopped without NATS")
            self.assertEqual(pub.acked, set(),
                             "PUBACK before JetStream stored the message")
        finally:
            # All three at once: JetStream needs a quorum to be healthy.
            ups = [subprocess.Popen(["sh", SCRIPT, "up", "nats", n],
                                    env=self.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for n in ("1", "2", "3")]
            for u in ups:
                u.wait(timeout=120)
        try:
            self.assertTrue(wait_for(lambda: pub.acked == set(q1), 90),
                            "acknowledged %d of %d after NATS came back"
                            % (len(pub.acked), len(q1)))
            self.assertTrue(wait_for(
                lambda: set(q1) <= set(remote.payloads()), 60),
                "node 2 missed %s" % sorted(set(q1) -
                                            set(remote.payloads()))[:5])
            got = [p for p in remote.payloads() if p in q1]
            self.assertEqual(list(dict.fromkeys(got)), q1, "order")
        finally:
            pub.close()
            local.close()
            remote.close()

    def test_z_kill9_nats_publisher_side(self):
        self.kill9_run(1, "killpub")

    def test_z_kill9_nats_subscriber_side(self):
        self.kill9_run(3, "killsub")

if __name__ == "__main__":
    unittest.main()
