"""A full queue behind a full in-flight window (issue 14, point 4).

The queue of a subscriber that does not keep up no longer scans itself
for every message that arrives when it is full; these cases check that
what it does stayed the same: max_queued_messages keeps the oldest and
drops the newest, each drop is counted in $SYS, expired messages still
make room (and are never delivered), and what is delivered comes in
publish order.  Raw MQTT 5 clients (test_mqtt5.Raw) and mosquitto_sub for
$SYS.  No timing assertions: waits are for states, bounded.
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import cid_on  # noqa: E402
from moat_harness import password_file_text  # noqa: E402
from test_mqtt5 import (MESSAGE_EXPIRY, NOPROPS, V5TestCase,  # noqa: E402
                        p_u32, props, publish5)

ADMIN, ADMIN_PW = "sys-admin", "Sy5#Adm1n!Watch8"
WAIT = 15.0


class FullQueueTests(V5TestCase):
    # A window of 2 and a queue of 4: the 7th message waiting is dropped.
    broker_config = ("mqtt5 true\nmax_inflight_messages 2\n"
                     "max_queued_messages 4\nsys_interval 1\n"
                     "password_file @DIR@/passwd\nacl_file @DIR@/acl\n")
    broker_files = {
        "passwd": password_file_text({ADMIN: ADMIN_PW}),
        "acl": ("topic readwrite #\n"
                "user %s\n"
                "topic readwrite #\n"
                "topic read $SYS/#\n" % ADMIN),
    }

    def dropped(self):
        """$SYS/broker/publish/messages/dropped now (mosquitto_sub)."""
        r = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port),
             "-u", ADMIN, "-P", ADMIN_PW, "-C", "1", "-W", "10",
             "-t", "$SYS/broker/publish/messages/dropped"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return int(r.stdout.decode().strip())

    def settled_dropped(self):
        """The counter once no earlier drop is still to be published
        ($SYS is published every second): two equal readings."""
        deadline = time.monotonic() + WAIT
        last = self.dropped()
        while time.monotonic() < deadline:
            time.sleep(1.2)
            now = self.dropped()
            if now == last:
                break
            last = now
        return last

    def until_dropped(self, want):
        """Wait (bounded) until $SYS says want; return what it says."""
        deadline = time.monotonic() + WAIT
        got = self.dropped()
        while got != want and time.monotonic() < deadline:
            time.sleep(0.5)
            got = self.dropped()
        return got

    def slow_subscriber(self):
        """Subscribed to fq/TAG at QoS 1; reads nothing until told."""
        topic = "fq/" + self.tag
        sub = self.client(cid_on(self.uid("sub"), 0))
        self.assertEqual(sub.subscribe([(topic, 1)]), [1])
        return sub, topic

    def test_queue_limit_drops_newest_and_counts_them(self):
        base = self.settled_dropped()
        sub, topic = self.slow_subscriber()
        pubc = self.client(cid_on(self.uid("pub"), 1))
        for i in range(10):
            # Accepted from the publisher either way (the drop is the
            # subscriber's queue limit, not a refusal).
            self.assertEqual(pubc.publish(topic, b"m%d" % i, qos=1), 0)
        # 2 in flight + 4 queued; the other 4 dropped and counted.
        self.assertEqual(self.until_dropped(base + 4), base + 4)
        got = [sub.next_publish()["payload"] for _ in range(6)]
        self.assertEqual(got, [b"m%d" % i for i in range(6)])
        self.assertEqual(sub.quiet(), [])
        # With room again, new messages are queued and delivered.
        self.assertEqual(pubc.publish(topic, b"after", qos=1), 0)
        self.assertEqual(sub.next_publish()["payload"], b"after")
        self.assertEqual(self.dropped(), base + 4)

    def test_expired_messages_make_room_in_a_full_queue(self):
        base = self.settled_dropped()
        sub, topic = self.slow_subscriber()
        pubc = self.client(cid_on(self.uid("pub"), 1))
        short = props(p_u32(MESSAGE_EXPIRY, 1))
        # The window: m0, m1.  The queue, full: q0 and q2 expire.
        for name, pp in ((b"m0", None), (b"m1", None), (b"q0", short),
                         (b"q1", None), (b"q2", short), (b"q3", None)):
            self.assertEqual(pubc.publish(topic, name, qos=1,
                                          pprops=pp or NOPROPS), 0)
        time.sleep(2.0)  # q0 and q2 expire while they wait
        # n0 and n1 take their places; n2 finds the queue full again.
        for name in (b"n0", b"n1", b"n2"):
            self.assertEqual(pubc.publish(topic, name, qos=1), 0)
        self.assertEqual(self.until_dropped(base + 1), base + 1)
        got = [sub.next_publish()["payload"] for _ in range(6)]
        self.assertEqual(got, [b"m0", b"m1", b"q1", b"q3", b"n0", b"n1"])
        self.assertEqual(sub.quiet(), [])

    def test_expired_messages_are_not_delivered_after_a_full_queue(self):
        sub, topic = self.slow_subscriber()
        pubc = self.client(cid_on(self.uid("pub"), 1))
        short = props(p_u32(MESSAGE_EXPIRY, 1))
        for name in (b"m0", b"m1"):
            self.assertEqual(pubc.publish(topic, name, qos=1), 0)
        for i in range(6):  # 4 queued, 2 dropped; all of them expire
            self.assertEqual(pubc.publish(topic, b"x%d" % i, qos=1,
                                          pprops=short), 0)
        time.sleep(2.0)
        self.assertEqual(pubc.publish(topic, b"last", qos=1), 0)
        got = [sub.next_publish()["payload"] for _ in range(3)]
        self.assertEqual(got, [b"m0", b"m1", b"last"])
        self.assertEqual(sub.quiet(), [])


class StarvedSubscriberTests(V5TestCase):
    # A window of 2 and a queue that never fills: the subscriber's
    # acknowledgements are read between the publishers' events (worker.c,
    # visit_starved); nothing may be lost, duplicated or reordered.
    broker_config = ("mqtt5 true\nmax_inflight_messages 2\n"
                     "max_queued_messages 100000\n")

    def test_many_publishers_into_a_small_window(self):
        topic = "starve/" + self.tag
        sub = self.client(cid_on(self.uid("sub"), 0))
        self.assertEqual(sub.subscribe([(topic + "/#", 1)]), [1])
        npub, each = 40, 25
        pubs = [self.client(cid_on(self.uid("pub"), k % 2))
                for k in range(npub)]
        for k, p in enumerate(pubs):  # all at once, without waiting
            p.send(b"".join(publish5("%s/%d" % (topic, k), b"%d" % i, 1,
                                     i + 1) for i in range(each)))
        seen = {}
        for _ in range(npub * each):
            m = sub.next_publish()  # acknowledged as it comes
            k = int(m["topic"].rsplit(b"/", 1)[1])
            seen.setdefault(k, []).append(int(m["payload"]))
        self.assertEqual(sub.quiet(), [])
        self.assertEqual(seen, {k: list(range(each)) for k in range(npub)})
        for p in pubs:  # every one was accepted
            for i in range(each):
                first, body = p.read()
                self.assertEqual(first, 0x40)
                self.assertEqual(body[:2], (i + 1).to_bytes(2, "big"))


if __name__ == "__main__":
    unittest.main()
