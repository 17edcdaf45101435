"""Allocation torture: the real broker under traffic while every N-th
allocation fails (MOAT_ALLOC_FAIL_EVERY=N, see docs/testing.md).

For each N the broker may refuse connections, drop messages or close
clients -- that is the point -- but it must never crash, hang or report a
sanitizer error, must stop cleanly on SIGTERM (exit 0; with an ASan build
LeakSanitizer checks that everything was freed), and once the failures are
switched off a normal client must work again.  The workload touches the
paths that allocate: CONNECT with passwords checked by the auth threads,
the ACL, sessions, subscriptions (plain, wildcard, shared), retained
messages, wills, QoS 1 and 2 flows, offline queues and MQTT 5 properties.
Every loop is bounded in count and time; only loopback."""
import os
import socket
import subprocess
import time
import unittest

from moat_harness import (Broker, connect_packet, password_file_text,
                          publish_packet, subscribe_packet, send_quietly,
                          ack, read_packet)

PW = {"admin": "Adm1n-T0rture!", "dev": "D3v-T0rture!x"}
ACL = ("user admin\ntopic readwrite #\n"
       "user dev\ntopic readwrite t/#\ntopic deny t/secret/#\n")
# A spread of failure rates: dense (most work fails early) to sparse
# (failures land deep inside multi-step paths).
RATES = [2, 3, 5, 7, 11, 17, 31, 61, 127, 257]


def client(port, cid, user=None, password=None, clean=True, will=None,
           timeout=2.0):
    """A raw client after CONNECT; None when the broker refused or closed
    (acceptable under torture)."""
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(connect_packet(cid, clean=clean, user=user,
                                 password=password, will=will))
        first, body = read_packet(s)
        if first >> 4 == 2 and len(body) >= 2 and body[1] == 0:
            return s
    except OSError:
        pass
    if s:
        s.close()
    return None


def drain(s, limit=50):
    """Read what is there (bounded), answering QoS 2 flows."""
    try:
        for _ in range(limit):
            first, body = read_packet(s)
            if first >> 4 == 3 and (first >> 1) & 3 == 2:
                tl = int.from_bytes(body[:2], "big")
                pid = int.from_bytes(body[2 + tl:4 + tl], "big")
                send_quietly(s, ack("pubrec", pid))
            elif first >> 4 == 6:
                pid = int.from_bytes(body[:2], "big")
                send_quietly(s, ack("pubcomp", pid))
    except OSError:
        pass


def workload(port, tag):
    """One round of everything; failures of individual steps are fine."""
    socks = []
    sub = client(port, "sub-" + tag, "admin", PW["admin"], clean=False)
    if sub:
        send_quietly(sub, subscribe_packet(1, [("t/#", 2), ("$share/g/t/+", 1),
                                               ("t/secret/x", 0)]))
        socks.append(sub)
    dev = client(port, "dev-" + tag, "dev", PW["dev"],
                 will=("t/will/" + tag, b"gone", 1, True))
    bad = client(port, "bad-" + tag, "dev", "wrong")
    anon = client(port, "anon-" + tag)
    for s in (bad, anon):
        if s:
            socks.append(s)
    if dev:
        for i in range(20):
            send_quietly(dev, publish_packet("t/%d/%s" % (i % 4, tag),
                                             b"x" * (i * 50), qos=i % 3,
                                             pid=i + 1, retain=i % 5 == 0))
        send_quietly(dev, publish_packet("t/secret/x", b"no", qos=1, pid=99))
        drain(dev, 10)
        dev.close()  # no DISCONNECT: the will fires
    if sub:
        drain(sub)
        sub.close()  # persistent session: later messages are queued
    late = client(port, "late-" + tag, "dev", PW["dev"])
    if late:
        for i in range(5):
            send_quietly(late, publish_packet("t/late/" + tag, b"q",
                                              qos=1, pid=i + 1))
        drain(late, 5)
        socks.append(late)
    back = client(port, "sub-" + tag, "admin", PW["admin"], clean=False)
    if back:
        drain(back)
        socks.append(back)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


class TortureTests(unittest.TestCase):
    def test_every_nth_allocation_fails(self):
        for n in RATES:
            with self.subTest(every=n):
                self.run_rate(n)

    def test_every_nth_allocation_fails_with_persistence(self):
        # the store's records, gates and restore under the same torture;
        # afterwards the database must load again
        for n in (3, 7, 17, 61, 257):
            with self.subTest(every=n):
                self.run_rate(n, "persistence true\n"
                              "persistence_location @DIR@/data\n")

    def run_rate(self, n, extra=""):
        b = Broker("password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
                   "auth_backoff_initial 0\n" + extra,
                   files={"passwd": password_file_text(PW), "acl": ACL})
        old = os.environ.get("MOAT_ALLOC_FAIL_EVERY")
        os.environ["MOAT_ALLOC_FAIL_EVERY"] = str(n)
        try:
            b.start()
        finally:
            if old is None:
                del os.environ["MOAT_ALLOC_FAIL_EVERY"]
            else:
                os.environ["MOAT_ALLOC_FAIL_EVERY"] = old
        try:
            deadline = time.monotonic() + 20
            for r in range(3):
                if time.monotonic() > deadline:
                    break
                workload(b.port, "%d-%d" % (n, r))
                self.assertTrue(b.alive(), "broker died at every=%d:\n%s"
                                % (n, b.read_log()[-4000:]))
        finally:
            rc = b.stop()
            if extra and rc == 0:  # what was stored loads without torture
                b.start()
                rc = b.stop()
            log = b.read_log()
            b.dir.cleanup()
        self.assertEqual(rc, 0, "exit %s at every=%d:\n%s"
                         % (rc, n, log[-4000:]))
        for bad in ("Sanitizer", "runtime error:"):
            self.assertNotIn(bad, log, "every=%d:\n%s" % (n, log[-4000:]))

    def test_recovers_when_failures_stop(self):
        # without torture the same workload delivers: a sanity check that
        # the workload itself is meaningful
        b = Broker("password_file @DIR@/passwd\nacl_file @DIR@/acl\n",
                   files={"passwd": password_file_text(PW), "acl": ACL})
        with b:
            s = client(b.port, "check", "admin", PW["admin"])
            self.assertIsNotNone(s)
            send_quietly(s, subscribe_packet(1, [("t/#", 1)]))
            read_packet(s)  # SUBACK
            p = client(b.port, "pub", "dev", PW["dev"])
            self.assertIsNotNone(p)
            send_quietly(p, publish_packet("t/ok", b"fine", qos=1, pid=1))
            deadline = time.monotonic() + 5
            got = b""
            while time.monotonic() < deadline and b"fine" not in got:
                first, body = read_packet(s)
                got += body
            self.assertIn(b"fine", got)
            s.close()
            p.close()


if __name__ == "__main__":
    unittest.main()
