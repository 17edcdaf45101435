"""The leak detector inside moatd (docs/leaks.md, "In moatd").

Real clients (mosquitto_pub/_sub, paho-mqtt) publish private data; the
tests check what subscribers receive (unchanged, redacted, nothing), the
events on $SYS/moat/leaks/CATEGORY (for an admin only, never the secret),
the log lines (never the secret), the MQTT 5 reason code of a blocked
message, wills, user properties, topics, counters, configuration errors,
and the sweep of the retained store at start."""
import json
import os
import subprocess
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from moat_harness import (Broker, BrokerTest, MOAT, MOATD,
                          password_file_text, raw_connect, read_packet,
                          wait_for)
from test_mqtt5 import connect5, publish5

PW = {"admin": "Adm1n-Leak-T3st!", "dev": "D3v-Leak-T3st!x"}
ACL = ("user admin\ntopic readwrite #\ntopic read $SYS/#\n"
       "user dev\ntopic readwrite t/#\n")
POLICIES = ("leak_policy t/redact/# all redact\n"
            "leak_policy t/block/# credential block\n"
            "leak_policy t/log/# all log\n")
SECRET = "hunter2"
CRED = '{"device": "pump-7", "password": "%s"}' % SECRET


class Client:
    """A paho client (v3 or v5) that records messages."""

    def __init__(self, port, cid, user, v5=False):
        self.c = mqtt.Client(cid, protocol=mqtt.MQTTv5 if v5 else
                             mqtt.MQTTv311)
        self.c.username_pw_set(user, PW[user])
        self.msgs = []
        self.acks = {}
        self.lock = threading.Lock()
        self.c.on_message = self._msg
        self.c.on_publish = lambda c, u, mid, *a: None
        self.v5 = v5
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert wait_for(self.c.is_connected, 10)

    def _msg(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def sub(self, topic, qos=1):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos)
        assert done.wait(10)

    def payloads(self, topic=None):
        with self.lock:
            return [bytes(m.payload) for m in self.msgs
                    if topic is None or m.topic == topic]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def mosq_pub(port, topic, payload, *extra):
    return subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic,
                           "-m", payload, "-u", "dev", "-P", PW["dev"]]
                          + list(extra), capture_output=True, text=True,
                          timeout=20)


class LeakInlineTest(BrokerTest):
    broker_config = ("password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
                     "allow_anonymous false\nsys_interval 1\n" + POLICIES)
    broker_files = {"passwd": password_file_text(PW), "acl": ACL}

    def setUp(self):
        super().setUp()
        self.sub = Client(self.port, "sub-%s" % self._testMethodName,
                          "dev")
        self.sub.sub("t/#")
        self.admin = Client(self.port, "adm-%s" % self._testMethodName,
                            "admin")
        self.admin.sub("$SYS/moat/leaks/+", 0)

    def tearDown(self):
        self.sub.close()
        self.admin.close()
        super().tearDown()

    def events(self):
        return [json.loads(p) for p in self.admin.payloads()]

    def test_alert_by_default(self):
        mosq_pub(self.port, "t/alert", CRED, "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/alert"), 10))
        self.assertEqual(self.sub.payloads("t/alert"), [CRED.encode()])
        self.assertTrue(wait_for(self.events, 10))
        ev = self.events()[0]
        self.assertEqual(self.admin.msgs[0].topic,
                         "$SYS/moat/leaks/credential")
        self.assertEqual((ev["category"], ev["action"], ev["topic"],
                          ev["user"], ev["path"], ev["part"]),
                         ("credential", "alert", "t/alert", "dev",
                          "$.password", "payload"))
        for k in ("severity", "confidence", "client_id", "start", "end",
                  "preview", "hmac"):
            self.assertIn(k, ev)
        self.assertEqual(CRED[ev["start"]:ev["end"]], SECRET)
        self.assertNotIn(SECRET, json.dumps(ev))
        log = self.broker.read_log()
        self.assertIn("leak: credential", log)
        self.assertNotIn(SECRET, log)

    def test_redact(self):
        payload = ('{"ip": "10.1.2.3", "password": "%s", "temp": 21.5}'
                   % SECRET)
        mosq_pub(self.port, "t/redact/a", payload, "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/redact/a"),
                                 10))
        got = self.sub.payloads("t/redact/a")[0]
        self.assertEqual(len(got), len(payload))
        doc = json.loads(got)  # still valid JSON
        self.assertEqual(doc["temp"], 21.5)
        self.assertEqual(set(doc["password"]), {"*"})
        self.assertEqual(set(doc["ip"]), {"*"})
        self.assertNotIn(SECRET.encode(), got)
        self.assertTrue(wait_for(lambda: any(e["action"] == "redact"
                                             for e in self.events()), 10))

    def test_redact_retained(self):
        mosq_pub(self.port, "t/redact/ret", CRED, "-q", "1", "-r")
        late = Client(self.port, "late-ret", "dev")
        late.sub("t/redact/ret")
        self.assertTrue(wait_for(late.payloads, 10))
        self.assertNotIn(SECRET.encode(), late.payloads()[0])
        late.close()
        mosq_pub(self.port, "t/redact/ret", "", "-r", "-n")

    def test_block_v5_reason_code(self):
        sk = raw_connect(self.port)
        sk.sendall(connect5("v5blk", user="dev", password=PW["dev"]))
        self.assertEqual(read_packet(sk)[0], 0x20)
        sk.sendall(publish5("t/block/x", CRED, qos=1, pid=3))
        first, body = read_packet(sk)
        self.assertEqual(first, 0x40)
        self.assertEqual(body[:3], b"\x00\x03\x83")  # 0x83
        sk.close()
        # nothing reached the subscriber; a clean message on the same
        # topic does
        mosq_pub(self.port, "t/block/x", '{"temp": 20}', "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/block/x"),
                                 10))
        self.assertEqual(self.sub.payloads("t/block/x"), [b'{"temp": 20}'])
        self.assertTrue(any(e["action"] == "block" for e in self.events()))

    def test_block_v3_acknowledged_and_dropped(self):
        r = mosq_pub(self.port, "t/block/v3", CRED, "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        mosq_pub(self.port, "t/block/v3", "fine", "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/block/v3"),
                                 10))
        self.assertEqual(self.sub.payloads("t/block/v3"), [b"fine"])
        self.assertIn("blocked", self.broker.read_log())

    def test_log_only(self):
        mosq_pub(self.port, "t/log/x", CRED, "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/log/x"), 10))
        self.assertEqual(self.sub.payloads("t/log/x"), [CRED.encode()])
        time.sleep(0.3)
        self.assertFalse([e for e in self.events()
                          if e["topic"] == "t/log/x"])
        self.assertIn("on t/log/x", self.broker.read_log())

    def test_topic_leak_redact_means_block(self):
        topic = "t/redact/alice.smith@example.com/state"
        mosq_pub(self.port, topic, "on", "-q", "1")
        mosq_pub(self.port, "t/redact/marker", "after", "-q", "1")
        self.assertTrue(wait_for(
            lambda: self.sub.payloads("t/redact/marker"), 10))
        self.assertEqual(self.sub.payloads(topic), [])
        # the event may come after the marker (events are published from
        # the worker's log budget, not in line with the message)
        self.assertTrue(wait_for(
            lambda: [e for e in self.events() if e["part"] == "topic"], 10))
        ev = [e for e in self.events() if e["part"] == "topic"]
        self.assertNotIn("alice.smith", ev[0]["topic"])

    def v5_subscriber(self, cid, topic):
        """A paho MQTT 5 client of user dev subscribed to topic (QoS 1):
        (client, the list its messages go to)."""
        sub5 = mqtt.Client(cid, protocol=mqtt.MQTTv5)
        sub5.username_pw_set("dev", PW["dev"])
        got = []
        sub5.on_message = lambda cl, u, m: got.append(m)
        sub5.connect("127.0.0.1", self.port, 30)
        sub5.loop_start()
        done = threading.Event()
        sub5.on_subscribe = lambda *a: done.set()
        sub5.subscribe(topic, 1)
        self.assertTrue(done.wait(10))
        return sub5, got

    def test_user_property_redacted(self):
        c = mqtt.Client("v5up", protocol=mqtt.MQTTv5)
        c.username_pw_set("dev", PW["dev"])
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        p = Properties(PacketTypes.PUBLISH)
        p.UserProperty = [("password", SECRET), ("site", "plant-3")]
        sub5, got = self.v5_subscriber("v5sub", "t/redact/up")
        c.publish("t/redact/up", b"ok", qos=1, properties=p).wait_for_publish(10)
        self.assertTrue(wait_for(lambda: got, 10))
        props = dict(got[0].properties.UserProperty)
        self.assertEqual(props["site"], "plant-3")
        self.assertNotIn(SECRET, props["password"])
        for x in (c, sub5):
            x.disconnect()
            x.loop_stop()

    def test_response_topic_content_type_correlation_scanned(self):
        # MQTT 5 Response Topic, Content Type and Correlation Data are
        # scanned too (issue 20): each finding gets its event, and a
        # redact policy rewrites the correlation data in place.
        c = mqtt.Client("v5rt", protocol=mqtt.MQTTv5)
        c.username_pw_set("dev", PW["dev"])
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        sub5, got = self.v5_subscriber("v5rtsub", "t/redact/rt")
        p = Properties(PacketTypes.PUBLISH)
        p.ResponseTopic = "t/replies/jane.doe@example.com"
        p.ContentType = "application/json; charset=utf-8"
        p.CorrelationData = b"\x01\x02req-7 password=Zq8!vR2mXx\x00\xff"
        c.publish("t/redact/rt", b"ok", qos=1,
                  properties=p).wait_for_publish(10)
        self.assertTrue(wait_for(lambda: got, 10))
        self.assertNotIn(b"Zq8!vR2mXx", got[0].properties.CorrelationData)
        self.assertEqual(len(got[0].properties.CorrelationData),
                         len(p.CorrelationData))
        self.assertTrue(wait_for(lambda: {"email", "credential"} <= {
            e["category"] for e in self.events()}, 10))
        parts = {e["category"]: e["part"] for e in self.events()}
        self.assertEqual(parts["credential"], "correlation data")
        self.assertEqual(parts["email"], "user properties")
        for x in (c, sub5):
            x.disconnect()
            x.loop_stop()

    def test_will_blocked(self):
        c = mqtt.Client("willer")
        c.username_pw_set("dev", PW["dev"])
        c.will_set("t/block/will", CRED, qos=1)
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        self.assertTrue(wait_for(c.is_connected, 10))
        c.loop_stop()
        c.socket().close()  # lost without DISCONNECT: the will would fire
        mosq_pub(self.port, "t/block/marker", "after", "-q", "1")
        self.assertTrue(wait_for(
            lambda: self.sub.payloads("t/block/marker"), 10))
        time.sleep(0.5)
        self.assertEqual(self.sub.payloads("t/block/will"), [])
        self.assertIn("will dropped by leak_policy", self.broker.read_log())

    def test_counters(self):
        mosq_pub(self.port, "t/count", CRED, "-q", "1")
        cnt = Client(self.port, "counter", "admin")
        cnt.sub("$SYS/moat/leaks/count/credential", 0)
        self.assertTrue(wait_for(
            lambda: any(int(p) >= 1 for p in cnt.payloads()), 10))
        cnt.sub("$SYS/moat/leaks/policy/#", 0)
        self.assertTrue(wait_for(lambda: any(
            m.topic == "$SYS/moat/leaks/policy/2" for m in cnt.msgs), 10))
        cnt.close()


    def test_tracks(self):
        # Issue 20.6: a client publishing precise positions again and
        # again is a location track; health on one topic and a person on
        # another from one client are linked.  Each is its own kind of
        # finding, with an event and a counter, reported once.
        # (events are limited to 50 a second per worker: let a previous
        # test's burst pass)
        time.sleep(1.2)
        c = Client(self.port, "tracker-7", "dev")
        for i in range(6):
            c.c.publish("t/fleet/7/pos", json.dumps(
                {"lat": 48.858370 + i / 1e4, "lon": 2.294481}),
                qos=1).wait_for_publish(10)
        c.c.publish("t/ward/3/vitals", '{"heart_rate": 88, "spo2": 97}',
                    qos=1).wait_for_publish(10)
        c.c.publish("t/ward/3/patient", '{"patient": "Maria Rossi"}',
                    qos=1).wait_for_publish(10)
        self.assertTrue(wait_for(lambda: {"location_track",
                                          "linked_health"} <= {
            e["category"] for e in self.events()}, 10))
        evs = self.events()
        tr = [e for e in evs if e["category"] == "location_track"]
        self.assertEqual(len(tr), 1)  # once per window
        self.assertEqual(tr[0]["client_id"], "tracker-7")
        self.assertEqual(tr[0]["part"], "messages")
        self.assertEqual(tr[0]["action"], "alert")
        lk = [e for e in evs if e["category"] == "linked_health"]
        self.assertEqual(len(lk), 1)
        self.assertNotIn("Rossi", json.dumps(evs))
        cnt = Client(self.port, "track-counter", "admin")
        cnt.sub("$SYS/moat/leaks/count/+", 0)
        self.assertTrue(wait_for(lambda: any(
            m.topic == "$SYS/moat/leaks/count/location_track" and
            int(m.payload) >= 1 for m in cnt.msgs), 10))
        self.assertTrue(any(m.topic == "$SYS/moat/leaks/count/linked_health"
                            for m in cnt.msgs))
        cnt.close()
        c.close()

    # ---- cases a review found --------------------------------------------

    IPS70 = " ".join("10.0.%d.%d" % (i // 200, i % 200 + 1)
                     for i in range(70))

    def marker(self, topic):
        """Publish a marker after the case and wait for it: what the case
        published before has been routed (or not) by then."""
        mosq_pub(self.port, topic, "marker", "-q", "1")
        self.assertTrue(wait_for(lambda: b"marker" in self.sub.payloads(
            topic), 10))

    def test_too_many_findings_fail_closed(self):
        payload = self.IPS70 + " password=" + SECRET
        for topic in ("t/block/many", "t/redact/many"):
            mosq_pub(self.port, topic, payload, "-q", "1")
            self.marker(topic)
            self.assertEqual(self.sub.payloads(topic), [b"marker"], topic)
        self.assertIn("could not be scanned to its end",
                      self.broker.read_log())

    def test_over_the_budget_fails_closed(self):
        payload = "x" * 70000 + " password=" + SECRET
        mosq_pub(self.port, "t/block/big", payload, "-q", "1")
        self.marker("t/block/big")
        self.assertEqual(self.sub.payloads("t/block/big"), [b"marker"])
        # where no policy redacts or blocks, it is delivered
        mosq_pub(self.port, "t/alert/big", payload, "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/alert/big"),
                                 10))

    def test_json_path_does_not_leak(self):
        mail = "alice.smith@example.com"
        payload = '{"devices": {"%s": {"ip": "10.1.2.3"}}}' % mail
        mosq_pub(self.port, "t/redact/map", payload, "-q", "1")
        self.assertTrue(wait_for(lambda: self.sub.payloads("t/redact/map"),
                                 10))
        self.assertTrue(wait_for(lambda: len(self.events()) >= 2, 10))
        self.assertNotIn(mail, json.dumps(self.events()))
        self.assertNotIn(mail, self.broker.read_log())

    def test_one_line_per_category_and_message(self):
        mosq_pub(self.port, "t/alert/ips", self.IPS70, "-q", "1")
        mosq_pub(self.port, "t/alert/victim", CRED, "-q", "1")
        self.assertTrue(wait_for(
            lambda: "on t/alert/victim" in self.broker.read_log(), 10))
        ips = [l for l in self.broker.read_log().splitlines()
               if "on t/alert/ips" in l and "private_ipv4" in l]
        self.assertEqual(len(ips), 1)

    def test_blocked_topic_not_logged(self):
        topic = "t/redact/bob.jones@example.com/state"
        sk = raw_connect(self.port)
        sk.sendall(connect5("v5tb", user="dev", password=PW["dev"]))
        self.assertEqual(read_packet(sk)[0], 0x20)
        sk.sendall(publish5(topic, "on", qos=1, pid=3))
        first, body = read_packet(sk)
        sk.close()
        self.assertEqual((first, body[:3]), (0x40, b"\x00\x03\x83"))
        self.marker("t/redact/marker")
        self.assertNotIn("bob.jones", self.broker.read_log())
        self.assertNotIn("bob.jones", json.dumps(self.events()))

    def test_events_are_utf8(self):
        topic = "t/x" + "\u00e9" * 300
        mosq_pub(self.port, topic, CRED, "-q", "1")
        self.assertTrue(wait_for(self.admin.payloads, 10))
        for p in self.admin.payloads():
            json.loads(p.decode("utf-8"))

    def test_not_for_dev(self):
        spy = Client(self.port, "spy", "dev")
        done = threading.Event()
        granted = []
        spy.c.on_subscribe = lambda c, u, mid, q, *a: (granted.extend(q),
                                                       done.set())
        spy.c.subscribe("$SYS/moat/leaks/+", 0)
        self.assertTrue(done.wait(10))
        self.assertEqual(granted, [128])  # refused
        spy.close()


class LeakConfigTest(unittest.TestCase):
    def check_bad(self, line, needle):
        b = Broker(line)
        r = subprocess.run([MOATD, "-t", "-c", b.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(needle, r.stderr + r.stdout)
        b.dir.cleanup()

    def test_bad_policies(self):
        self.check_bad("leak_policy t/# nosuch block\n", "unknown category")
        self.check_bad("leak_policy t/# email shred\n", "unknown action")
        self.check_bad("leak_policy t/#/x email log\n",
                       "not a valid topic filter")
        self.check_bad("leak_policy t/# email\n", "expected")
        self.check_bad("leak_key_file @DIR@/missing\n", "leak_key_file")

    def test_off(self):
        with Broker("leak_detection false\n" + POLICIES) as b:
            sub = subprocess.Popen(["mosquitto_sub", "-p", str(b.port),
                                    "-t", "t/#", "-C", "1", "-W", "10"],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(0.3)
            subprocess.run(["mosquitto_pub", "-p", str(b.port), "-t",
                            "t/redact/x", "-m", CRED], timeout=10)
            out, _ = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), CRED)
            self.assertNotIn("leak:", b.read_log())

    def test_key_file_gives_stable_hmacs(self):
        key = os.urandom(32)
        hm = []
        for _ in range(2):
            b = Broker("leak_key_file @DIR@/leak.key\n",
                       files={"leak.key": key})
            with b:
                subprocess.run(["mosquitto_pub", "-p", str(b.port), "-t",
                                "t/k", "-m", CRED], timeout=10)
                wait_for(lambda: "hmac " in b.read_log(), 10)
                log = b.read_log()
            hm.append(log.split("hmac ")[1][:32])
        self.assertEqual(hm[0], hm[1])
        # and moat scan with the same key agrees
        b = Broker("")
        with open(b.path("k"), "wb") as f:
            f.write(key)
        os.chmod(b.path("k"), 0o600)
        r = subprocess.run([MOAT, "scan", "--key-file", b.path("k"),
                            "--format", "json"], input=CRED + "\n",
                           capture_output=True, text=True, timeout=20)
        b.dir.cleanup()
        self.assertIn(hm[0], r.stdout)


class DollarTopicTest(unittest.TestCase):
    def test_hash_policy_covers_dollar_topics(self):
        """'leak_policy # ...' means every topic, $-topics too."""
        with Broker("leak_policy # credential block\n") as b:
            sub = subprocess.Popen(["mosquitto_sub", "-p", str(b.port), "-t",
                                    "$dev/#", "-C", "1", "-W", "10"],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            for payload in (CRED, "marker"):
                subprocess.run(["mosquitto_pub", "-p", str(b.port), "-t",
                                "$dev/cfg", "-m", payload, "-q", "1"],
                               timeout=10)
            out, _ = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), "marker")


class RetainedSweepTest(unittest.TestCase):
    def test_retained_store_swept_at_start(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        base = "persistence true\npersistence_location @DIR@/data\n"
        b = Broker(base + "leak_detection false\n", port=port)
        b.start()
        subprocess.run(["mosquitto_pub", "-p", str(port), "-t", "r/cfg",
                        "-m", CRED, "-r", "-q", "1"], timeout=10)
        subprocess.run(["mosquitto_pub", "-p", str(port), "-t", "r/ok",
                        "-m", "fine", "-r", "-q", "1"], timeout=10)
        # a '$' topic is swept too ("#" alone would leave it out)
        pub = subprocess.run(["mosquitto_pub", "-p", str(port), "-t",
                              "$dev/r/cfg", "-m", CRED, "-r", "-q", "1"],
                             timeout=10, capture_output=True)
        dollar = pub.returncode == 0
        self.assertEqual(b.stop(), 0)
        with open(b.conf, "a") as f:
            f.write("leak_detection true\nleak_policy r/# all redact\n"
                    "leak_policy $dev/# all block\n")
        b.start()
        try:
            self.assertIn("retained store swept: %d messages scanned, %d"
                          % ((3, 2) if dollar else (2, 1)), b.run_log())
            out = subprocess.run(["mosquitto_sub", "-p", str(port), "-t",
                                  "r/#", "-C", "2", "-W", "10", "-v"],
                                 capture_output=True, text=True, timeout=20)
            self.assertIn("r/ok fine", out.stdout)
            self.assertNotIn(SECRET, out.stdout)
            self.assertIn("r/cfg", out.stdout)
        finally:
            self.assertEqual(b.stop(), 0)
            b.dir.cleanup()


class QueuedSweepTest(unittest.TestCase):
    def test_restored_queues_swept_at_start(self):
        """Messages queued for offline persistent sessions, restored from
        the store after a crash (kill -9), are scanned before anyone is
        served: redacted in memory and in the store, or blocked (their
        deliveries dropped), and reported like any finding."""
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        base = ("persistence true\npersistence_location @DIR@/data\n"
                "password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
                "allow_anonymous false\nsys_interval 1\n")
        b = Broker(base + "leak_detection false\n", port=port,
                   files={"passwd": password_file_text(PW), "acl": ACL})
        b.start()
        auth = ["-u", "admin", "-P", PW["admin"]]

        def sub(cid, topic, *extra):
            return subprocess.run(
                ["mosquitto_sub", "-p", str(port), "-c", "-i", cid, "-q",
                 "1", "-t", topic, "-v"] + auth + list(extra),
                capture_output=True, text=True, timeout=20)

        try:
            # an offline session with messages waiting
            self.assertEqual(sub("q-dev", "q/#", "-E").returncode, 0)
            for topic, payload in (("q/cfg", CRED), ("q/ok", "fine"),
                                   ("q/blk", CRED.replace(SECRET,
                                                          "s3cr3t-X9"))):
                subprocess.run(["mosquitto_pub", "-p", str(port), "-t",
                                topic, "-m", payload, "-q", "1"] + auth,
                               timeout=10, check=True)
            b.kill9()
            with open(b.conf, "a") as f:
                f.write("leak_detection true\nleak_policy q/cfg all "
                        "redact\nleak_policy q/blk all block\n")
            b.start()
            self.assertIn("restored queues swept: 3 messages scanned, 1 "
                          "redacted, 1 blocked", b.run_log())
            # reported as any finding: log lines, counters (the events
            # go out once the sessions are whole, to whoever is there)
            log = b.run_log()
            self.assertIn("in the payload of a queued by client", log)
            self.assertIn("policy redact, message redacted", log)
            self.assertIn("policy block, message blocked", log)
            cnt = sub("q-ops", "$SYS/moat/leaks/messages/+", "-C", "2",
                      "-W", "10").stdout
            self.assertIn("$SYS/moat/leaks/messages/blocked 1", cnt)
            self.assertIn("$SYS/moat/leaks/messages/redacted 1", cnt)
            # the store holds the redacted message: found clean next time
            b.kill9()
            b.start()
            self.assertIn("restored queues swept: 2 messages scanned, 0 "
                          "redacted, 0 blocked", b.run_log())
            out = sub("q-dev", "q/#", "-C", "2", "-W", "10").stdout
            self.assertIn("q/ok fine", out)
            self.assertIn("q/cfg", out)
            self.assertNotIn(SECRET, out)
            self.assertNotIn("s3cr3t", out)
        finally:
            b.stop()
            b.dir.cleanup()


if __name__ == "__main__":
    unittest.main()
