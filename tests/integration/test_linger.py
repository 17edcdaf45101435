"""Lingering close (docs/mqtt.md, "Closing a connection").

When moatd ends a connection after sending a reason code (a refusal
CONNACK, a server DISCONNECT), it writes the rest of its output, shuts
down its write side and reads and discards input for a bounded time and
byte count before closing, so a client that is still sending reads the
reason instead of a connection reset.  Lingering sockets count against the
connection limits; 1000 of them at once stay within a memory bound.
"""
import os
import resource
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    BrokerTest, connect_packet, packet, proc_status_kib, publish_packet,
    raw_connect, split_stream, u16, varint, mqtt_str, wait_for)


def connect5(cid, receive_max=None):
    props = b""
    if receive_max is not None:
        props = b"\x21" + u16(receive_max)
    body = (mqtt_str(b"MQTT") + bytes([5, 0x02]) + u16(60) +
            varint(len(props)) + props + mqtt_str(cid.encode()))
    return packet(0x10, body)


def publish5(topic, payload, qos, pid):
    body = mqtt_str(topic.encode()) + (u16(pid) if qos else b"") + b"\x00" + \
        payload
    return packet(0x30 | (qos << 1), body)


def packets(data):
    return split_stream(data)[0]


def read_all(s, timeout=10.0):
    """Everything the peer sends until it closes; raises on a reset."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


class LingerTests(BrokerTest):
    broker_config = "max_inflight_messages 2\n"

    def test_disconnect_0x93_reaches_a_client_still_sending(self):
        # Receive Maximum + 1 QoS 2 PUBLISHes unread, then more: the
        # client reads only at the end and must find DISCONNECT 0x93.
        for attempt in range(5):
            s = raw_connect(self.port)
            s.sendall(connect5("rm93-%d" % attempt))
            burst = b"".join(publish5("rm/t", b"x" * 200, 2, pid)
                             for pid in range(1, 200))
            s.sendall(burst)
            time.sleep(0.2)  # the broker has answered and closed by now
            # Still sending after the close: without a lingering close
            # this write (or the read below) fails with a reset, and a
            # client library gives up before reading the DISCONNECT.
            s.sendall(burst[:8192])
            time.sleep(0.1)
            s.sendall(burst[:8192])
            data = read_all(s)
            got = packets(data)
            self.assertEqual(got[0][0], 0x20, "no CONNACK")
            self.assertEqual([p for p in got if p[0] == 0x50][:2],
                             [(0x50, u16(1)), (0x50, u16(2))])
            self.assertEqual(got[-1][0], 0xE0, got[-3:])
            self.assertEqual(got[-1][1][0], 0x93)
            s.close()

    def test_refusal_connack_read_by_a_client_that_keeps_sending(self):
        # 3.1.1: an empty client id without clean session is refused
        # (0x02); v5: an authentication method is refused (0x8C).
        v3 = (b"\x00\x04MQTT\x04\x00\x00\x3c\x00\x00")
        v5 = (mqtt_str(b"MQTT") + bytes([5, 0x02]) + u16(60) +
              b"\x05\x15\x00\x02xx" + mqtt_str(b"auth-m"))
        junk = publish_packet("a/b", b"y" * 1000) * 30
        for name, body, want in (("v3", v3, b"\x20\x02\x00\x02"),
                                 ("v5", v5, None)):
            with self.subTest(name):
                s = raw_connect(self.port)
                s.sendall(packet(0x10, body) + junk)
                time.sleep(0.2)
                s.sendall(junk)  # no reset: see the test above
                time.sleep(0.1)
                s.sendall(junk[:4096])
                data = read_all(s)
                got = packets(data)
                self.assertEqual(len(got), 1, data[:64])
                self.assertEqual(got[0][0], 0x20)
                if want:
                    self.assertEqual(data, want)
                else:
                    self.assertEqual(got[0][1][1], 0x8C)
                s.close()

    def test_a_thousand_lingering_stay_bounded(self):
        # 1000 refused clients that neither read nor close: each lingers
        # (bounded time); memory stays bounded and they all go away.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096),
                                                        hard))
        pid = self.broker.proc.pid

        def nfds():
            return len(os.listdir("/proc/%d/fd" % pid))

        base_fds = nfds()
        base_rss = proc_status_kib(pid)
        refused = packet(0x10, b"\x00\x04MQTT\x04\x00\x00\x3c\x00\x00")
        socks = []
        try:
            for _ in range(1000):
                s = socket.create_connection(("127.0.0.1", self.port))
                s.sendall(refused + publish_packet("x", b"z" * 100))
                socks.append(s)
            peak_rss = proc_status_kib(pid)
            print("descriptors in moatd: %d at rest, %d after 1000 refusals"
                  % (base_fds, nfds()))
            # each got its CONNACK; all of them end within the linger
            # time (plus the tick), while the clients still hold theirs
            self.assertTrue(wait_for(lambda: nfds() <= base_fds + 5,
                                     timeout=30), nfds())
            for s in socks[:50]:
                s.settimeout(5)
                self.assertEqual(s.recv(16), b"\x20\x02\x00\x02")
            grew = peak_rss - base_rss
            print("1000 lingering: RSS %d -> %d KiB (+%d KiB)"
                  % (base_rss, peak_rss, grew))
            self.assertLess(grew, 16 * 1024)
        finally:
            for s in socks:
                s.close()
        # the broker still serves
        c = raw_connect(self.port)
        c.sendall(connect_packet("after-linger"))
        c.settimeout(5)
        self.assertEqual(c.recv(4), b"\x20\x02\x00\x00")
        c.close()


if __name__ == "__main__":
    unittest.main()
