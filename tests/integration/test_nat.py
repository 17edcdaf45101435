"""Fleets behind one NAT address (docs/security.md, "Devices behind NAT").

Per-address limits bound what an address holds *before* authentication;
authenticated connections count against per-user and global limits.  The
login back-off is per (address, user name) and per user name, and the
password checks wait in a fair queue per (address, user name), with an
address that has many failures paced, never refused.  So:

- 2,000 authenticated clients from one address all connect with the
  default per-address limits (limit_loopback true makes loopback count),
  while unauthenticated connections from it are still bounded;
- beyond max_accept_rate_per_ip a connection waits for a token instead of
  being refused;
- a device with a correct password it has never used logs in while 16
  threads from its own address send wrong passwords for other user names.

Loopback only; every loop is bounded in count and time.
"""
import os
import resource
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moat_harness import (  # noqa: E402
    PINGREQ, PINGRESP, connack_of, connect_packet, peer_closed,
    raw_connect, recv_exact, send_quietly, wait_for)
from test_security import PW, SecCase, parse_connack  # noqa: E402

FLEET_PW = "Fl33t#Device!pw42"
NEW_PW = "N3w#Device!pw77x"
CONNECT_TIMEOUT = 10  # moatd's default connect_timeout


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


class FleetTests(SecCase):
    # the default per-address limits (32 connections, 20/s), applied to
    # loopback as to any address
    users = dict(PW, fleet=FLEET_PW, newdev=NEW_PW)
    extra_config = "limit_loopback true\nsys_interval 0\n"
    backoff = None  # the default back-off (1 s)

    def connect_as(self, user, password, cid):
        s = raw_connect(self.port, CONNECT_TIMEOUT + 5)
        send_quietly(s, connect_packet(cid, user=user, password=password))
        return s, connack_of(s, timeout=CONNECT_TIMEOUT + 5)

    def test_two_thousand_authenticated_clients_from_one_address(self):
        raise_fd_limit(4600)
        socks = []
        try:
            for i in range(2000):
                s, data = self.connect_as("fleet", FLEET_PW,
                                          "dev-%s-%d" % (self.tag, i))
                self.assertTrue(data, "device %d: closed without CONNACK"
                                % i)
                self.assertEqual(parse_connack(data)[1], 0,
                                 "device %d refused" % i)
                socks.append(s)
            for s in socks[::100]:
                s.sendall(PINGREQ)
                self.assertEqual(recv_exact(s, 2), PINGRESP)
            # What an address holds before authentication is still
            # bounded: of 40 silent connections, at most 32 stay.
            silent = [socket.create_connection(("127.0.0.1", self.port),
                                               5) for _ in range(40)]
            socks.extend(silent)
            self.assertTrue(wait_for(
                lambda: sum(peer_closed(s) for s in silent) >= 8, 5.0),
                "more than 32 unauthenticated connections kept")
            self.assert_logged("max_connections_per_ip reached")
        finally:
            for s in socks:
                s.close()
        # the silent ones are gone once moatd has seen them close
        self.assertTrue(wait_for(self.can_login, 10.0, 0.2))

    def can_login(self):
        s, data = self.connect_as("fleet", FLEET_PW, "probe-" + self.tag)
        s.close()
        return bool(data) and parse_connack(data)[1] == 0

    def test_correct_login_during_a_wrong_password_flood(self):
        stop = threading.Event()
        codes, lock = [], threading.Lock()

        def flood(k):
            n = 0
            deadline = time.monotonic() + 20
            while not stop.is_set() and n < 400 and \
                    time.monotonic() < deadline:
                n += 1
                try:
                    s = raw_connect(self.port, CONNECT_TIMEOUT + 5)
                except OSError:
                    continue
                send_quietly(s, connect_packet(
                    "ghost-%d-%d" % (k, n), user="ghost-%d-%d" % (k, n),
                    password="wrong-%d" % n))
                data = connack_of(s, timeout=CONNECT_TIMEOUT + 5)
                s.close()
                with lock:
                    codes.append(parse_connack(data)[1] if data else None)

        threads = [threading.Thread(target=flood, args=(k,))
                   for k in range(16)]
        for t in threads:
            t.start()
        try:
            # the flood has failures on record before the device comes
            self.assertTrue(wait_for(lambda: len(codes) >= 40, 15.0),
                            "the flood made no attempts")
            t0 = time.monotonic()
            s, data = self.connect_as("newdev", NEW_PW, "newdev-" + self.tag)
            took = time.monotonic() - t0
            s.close()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertTrue(data, "the device got no CONNACK")
        self.assertEqual(parse_connack(data)[1], 0, "the device was refused")
        # docs/security.md: a correct login from a busy address waits at
        # most connect_timeout (about 3 s with the defaults)
        self.assertLess(took, CONNECT_TIMEOUT)
        print("correct login during the flood: %.2f s; flood: %d attempts, "
              "codes %s" % (took, len(codes), sorted(set(
                  c for c in codes if c is not None))))
        self.assertIn(4, codes)  # the flood was answered: bad password


class AcceptHoldTests(SecCase):
    """Beyond max_accept_rate_per_ip (5/s here, bursts of 10) a connection
    waits for a token, within max_connections_per_ip, instead of being
    refused (max_connections_per_ip 0 keeps the old refusal)."""
    users = dict(PW, fleet=FLEET_PW)
    extra_config = ("limit_loopback true\nmax_accept_rate_per_ip 5\n"
                    "sys_interval 0\n")
    guard = False

    def test_burst_beyond_the_accept_rate_is_delayed_not_refused(self):
        socks, results = [], []
        try:
            for i in range(20):
                s = raw_connect(self.port, CONNECT_TIMEOUT + 5)
                send_quietly(s, connect_packet("burst-%s-%d" % (self.tag, i),
                                               user="fleet",
                                               password=FLEET_PW))
                socks.append(s)
            for s in socks:
                data = connack_of(s, timeout=CONNECT_TIMEOUT + 5)
                results.append(parse_connack(data)[1] if data else None)
            self.assertEqual(results, [0] * 20)
            self.assertNotIn("max_accept_rate_per_ip exceeded",
                             self.new_log())
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    unittest.main()
