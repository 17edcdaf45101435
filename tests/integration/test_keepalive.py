"""MQTT 3.1.1 keep-alive as mosquitto handles it (docs/mqtt.md).

Keep-alive 0 ("turned off", MQTT 3.1.1 section 3.1.2.10) and keep-alives
above max_keepalive are legal and accepted; moatd watches such a peer with
TCP keep-alive probes instead, so one that vanishes without a FIN is still
dropped within 1.5 x max_keepalive.  strict_keepalive true brings back the
refusal (CONNACK 0x02).  MQTT 5 clients are told Server Keep Alive.

The vanishing peer lives in a network namespace this test creates (root
and iproute2 needed; skipped otherwise): its link is taken down after
CONNECT, so nothing it sends or answers reaches moatd any more.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    CONNACK_OK, CONNACK_ID_REJECTED, PINGREQ, PINGRESP, Broker, BrokerTest,
    connect_packet, read_packet, raw_connect, recv_exact, subscribe_packet,
    expect_closed, wait_for)

MAX_KEEPALIVE = 10  # the smallest max_keepalive: a 15 s bound


def server_timers(port):
    """The timer column of moatd's established sockets on port (ss -o)."""
    r = subprocess.run(["ss", "-tnoH", "state", "established",
                        "( sport = :%d )" % port],
                       capture_output=True, text=True, timeout=10)
    return r.stdout


def connect(port, keepalive, level=4, cid=None):
    s = raw_connect(port)
    s.sendall(connect_packet(cid or "ka-%d-%d" % (keepalive, level),
                             keepalive=keepalive, level=level,
                             name="MQTT" if level == 4 else "MQIsdp"))
    return s


@unittest.skipUnless(shutil.which("ss"), "needs ss (iproute2)")
class DefaultKeepAliveTests(BrokerTest):
    broker_config = "max_keepalive %d\n" % MAX_KEEPALIVE

    def test_zero_and_long_keepalives_accepted(self):
        for level in (3, 4):
            for ka in (0, MAX_KEEPALIVE + 1, 3600, 65535):
                with self.subTest(level=level, keepalive=ka):
                    s = connect(self.port, ka, level, "ka-%d-%d" % (ka, level))
                    self.assertEqual(recv_exact(s, 4), CONNACK_OK)
                    s.sendall(PINGREQ)
                    self.assertEqual(recv_exact(s, 2), PINGRESP)
                    # the server side of this connection has TCP
                    # keep-alive probes armed
                    port = s.getsockname()[1]
                    self.assertTrue(wait_for(
                        lambda: "keepalive" in server_timers(self.port)),
                        server_timers(self.port))
                    self.assertIn(":%d" % port, server_timers(self.port))
                    s.close()

    def test_keepalive_within_max_uses_mqtt_keepalive_only(self):
        s = connect(self.port, MAX_KEEPALIVE, 4, "ka-within")
        self.assertEqual(recv_exact(s, 4), CONNACK_OK)
        s.sendall(PINGREQ)
        self.assertEqual(recv_exact(s, 2), PINGRESP)
        port = s.getsockname()[1]
        line = [ln for ln in server_timers(self.port).splitlines()
                if ":%d " % port in ln + " "]
        self.assertEqual(len(line), 1, server_timers(self.port))
        self.assertNotIn("keepalive", line[0])
        s.close()


class StrictKeepAliveTests(BrokerTest):
    broker_config = "max_keepalive 60\nstrict_keepalive true\n"

    def test_refused_as_before(self):
        for ka in (0, 61, 65535):
            with self.subTest(keepalive=ka):
                s = connect(self.port, ka)
                self.assertEqual(recv_exact(s, 4), CONNACK_ID_REJECTED)
                self.assertTrue(expect_closed(s))
                s.close()
        s = connect(self.port, 60)
        self.assertEqual(recv_exact(s, 4), CONNACK_OK)
        s.close()

    def test_v5_still_told_server_keepalive(self):
        # CONNECT v5, keep-alive 0, no properties
        body = (b"\x00\x04MQTT\x05\x02\x00\x00\x00" + b"\x00\x04ka5z")
        s = raw_connect(self.port)
        s.sendall(bytes([0x10, len(body)]) + body)
        first, connack = read_packet(s)
        self.assertEqual(first, 0x20)
        self.assertEqual(connack[1], 0)  # success
        # Server Keep Alive (0x13) = 60
        self.assertIn(b"\x13\x00\x3c", connack)
        s.close()


NS = "moatka%d" % os.getpid()
HOST_IF, NS_IF = "mka%dh" % (os.getpid() % 10000), "mka%dn" % (
    os.getpid() % 10000)
HOST_IP, NS_IP = "10.254.%d.1" % (os.getpid() % 250), \
    "10.254.%d.2" % (os.getpid() % 250)


def ip(*args, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                          check=check)


def can_make_netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    r = subprocess.run(["ip", "netns", "add", NS + "probe"],
                       capture_output=True, timeout=10)
    subprocess.run(["ip", "netns", "del", NS + "probe"],
                   capture_output=True, timeout=10)
    return r.returncode == 0


CLIENT = textwrap.dedent("""
    import socket, sys, time
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((host, port), timeout=10)
    cid = b"vanishing"
    will_t, will_m = b"ka/will", b"gone"
    pl = (len(cid).to_bytes(2, "big") + cid +
          len(will_t).to_bytes(2, "big") + will_t +
          len(will_m).to_bytes(2, "big") + will_m)
    body = b"\\x00\\x04MQTT\\x04\\x06\\x00\\x00" + pl  # keep-alive 0, will
    s.sendall(bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\\x20\\x02\\x00\\x00"
    print("connected", flush=True)
    time.sleep(120)
""")


@unittest.skipUnless(can_make_netns(), "needs root and ip netns")
class VanishingPeerTests(unittest.TestCase):
    def setUp(self):
        ip("netns", "add", NS)
        self.addCleanup(ip, "netns", "del", NS, check=False)
        ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        self.addCleanup(ip, "link", "del", HOST_IF, check=False)
        ip("link", "set", NS_IF, "netns", NS)
        ip("addr", "add", HOST_IP + "/30", "dev", HOST_IF)
        ip("link", "set", HOST_IF, "up")
        ip("addr", "add", NS_IP + "/30", "dev", NS_IF, ns=NS)
        ip("link", "set", NS_IF, "up", ns=NS)
        ip("link", "set", "lo", "up", ns=NS)

    def test_keepalive_zero_peer_that_vanishes_is_dropped(self):
        cfg = ("max_keepalive %d\nlistener 0 %s\nallow_insecure_listener "
               "true\nallow_anonymous true\n" % (MAX_KEEPALIVE, HOST_IP))
        with Broker(cfg) as b:
            m = re.search(r"listening on %s:(\d+)" % re.escape(HOST_IP),
                          b.run_log())
            self.assertIsNotNone(m, b.run_log())
            port = int(m.group(1))
            watcher = raw_connect(b.port)
            self.addCleanup(watcher.close)
            watcher.sendall(connect_packet("watcher"))
            self.assertEqual(recv_exact(watcher, 4), CONNACK_OK)
            watcher.sendall(subscribe_packet(1, [("ka/will", 0)]))
            self.assertEqual(read_packet(watcher)[0], 0x90)
            client = subprocess.Popen(
                ["ip", "netns", "exec", NS, sys.executable, "-c", CLIENT,
                 HOST_IP, str(port)], stdout=subprocess.PIPE, text=True)
            self.addCleanup(client.stdout.close)
            self.addCleanup(client.wait)
            self.addCleanup(client.kill)
            self.assertEqual(client.stdout.readline().strip(), "connected")
            # the peer vanishes: no FIN, no RST, no answers
            ip("link", "set", NS_IF, "down", ns=NS)
            gone_at = time.monotonic()
            # documented bound: 1.5 x max_keepalive (15 s) after the last
            # exchange, plus the broker's half-second tick; the wait
            # allows that with room to spare.
            watcher.settimeout(1.5 * MAX_KEEPALIVE + 20)
            first, body = read_packet(watcher)
            self.assertEqual(first & 0xF0, 0x30)
            self.assertIn(b"gone", body)
            took = time.monotonic() - gone_at
            log = b.read_log()
            self.assertIn("vanishing", log)
            print("vanished peer dropped after %.1f s" % took)


if __name__ == "__main__":
    unittest.main()
