"""MQTT 3.1.1 conformance of moatd, spoken in raw bytes.

Every case drives the real moatd over loopback with hand-built packets and
asserts the exact bytes that come back (or that the connection is closed
without a response).  Each case also checks that the broker keeps serving
other clients: a well-behaved "guard" subscriber connected before the case
must still receive a publish afterwards (see RawTestCase.tearDown), and
cases that try to smuggle a message through also check that a watcher
never receives it.

Statement ids in comments ([MQTT-x.y.z-n]) refer to the OASIS MQTT 3.1.1
specification.  Only loopback traffic; every socket has a timeout and every
wait is bounded.
"""
import os
import random
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import (  # noqa: E402
    u16, publish_packet, subscribe_packet, unsubscribe_packet, ack,
    parse_publish, CONNACK_OK, CONNACK_OK_PRESENT, CONNACK_BAD_PROTOCOL,
    CONNACK_ID_REJECTED, PINGREQ, PINGRESP, DISCONNECT, cid_on,
    read_until_close, send_quietly, BrokerTest, connect_packet, expect_closed,
    mqtt_str, packet, password_file_text, raw_connect, read_packet,
    recv_exact, varint)

WORKERS = 2
TIMEOUT = 5.0



# ---- helpers -------------------------------------------------------------























def close_with_reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()


# ---- base class ----------------------------------------------------------

class RawTestCase(BrokerTest):
    workers = WORKERS
    broker_config = ""

    def setUp(self):
        super().setUp()
        self._socks = []
        self._n = 0
        name = self._testMethodName
        self.tag = name
        # The guard subscribes before the case runs; tearDown checks it
        # still gets a publish from a client on the other worker.
        self.guard_topic = "guard/" + name
        self.guard = self.client(cid_on("guard-" + name, 0))
        self.assertEqual(self.subscribe(self.guard, [(self.guard_topic, 1)]),
                         [1])

    def tearDown(self):
        try:
            self.assert_serving()
        finally:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        super().tearDown()

    # -- connections --

    def uid(self, what="c"):
        self._n += 1
        return "%s-%s-%d" % (what, self.tag, self._n)

    def sock(self):
        s = raw_connect(self.port, TIMEOUT)
        self._socks.append(s)
        return s

    def client(self, cid=None, clean=True, keepalive=60, will=None,
               user=None, password=None, present=False):
        """A connected client; asserts the exact CONNACK."""
        s = self.sock()
        s.sendall(connect_packet(cid if cid is not None else self.uid(),
                                 clean=clean, keepalive=keepalive, will=will,
                                 user=user, password=password))
        self.assertEqual(recv_exact(s, 4),
                         CONNACK_OK_PRESENT if present else CONNACK_OK)
        return s

    def expect(self, s, data):
        self.assertEqual(recv_exact(s, len(data)), data)

    def subscribe(self, s, filters, pid=1):
        """SUBSCRIBE and return the SUBACK return codes."""
        s.sendall(subscribe_packet(pid, filters))
        first, body = read_packet(s)
        self.assertEqual(first, 0x90)
        self.assertEqual(body[:2], u16(pid))  # [MQTT-3.8.4-2]
        return list(body[2:])

    def sync(self, s):
        """PINGREQ and read up to the PINGRESP; returns the publishes
        received before it (the broker answers packets in order)."""
        s.sendall(PINGREQ)
        got = []
        while True:
            first, body = read_packet(s)
            if first == 0xD0:
                self.assertEqual(body, b"")
                return got
            if first == 0x62:  # PUBREL for a QoS 2 delivery
                s.sendall(ack("pubcomp", int.from_bytes(body, "big")))
                continue
            got.append(self.take_publish(s, first, body))

    def take_publish(self, s, first, body):
        """Parse a PUBLISH and acknowledge it (QoS 1: PUBACK; QoS 2:
        PUBREC, then PUBCOMP for the PUBREL handled by next_publish)."""
        p = parse_publish(first, body)
        if p["qos"] == 1:
            s.sendall(ack("puback", p["pid"]))
        elif p["qos"] == 2:
            s.sendall(ack("pubrec", p["pid"]))
        return p

    def next_publish(self, s, timeout=TIMEOUT):
        """The next PUBLISH (acknowledged), answering PUBRELs on the way."""
        s.settimeout(timeout)
        while True:
            first, body = read_packet(s)
            if first == 0x62:
                s.sendall(ack("pubcomp", int.from_bytes(body, "big")))
                continue
            return self.take_publish(s, first, body)

    def watcher(self, filters, worker=0):
        """A subscriber (QoS 0) whose retained backlog has been drained."""
        s = self.client(cid_on(self.uid("watch"), worker))
        codes = self.subscribe(s, [(f, 0) for f in filters])
        self.assertEqual(codes, [0] * len(filters))
        self.sync(s)
        return s

    def publish(self, topic, payload, qos=0, retain=False, worker=1):
        """Publish from a fresh well-behaved client homed on worker."""
        s = self.client(cid_on(self.uid("pub"), worker))
        s.sendall(publish_packet(topic, payload, qos=qos, pid=1,
                                 retain=retain))
        if qos == 1:
            self.expect(s, ack("puback", 1))
        elif qos == 2:
            self.expect(s, ack("pubrec", 1))
            s.sendall(ack("pubrel", 1))
            self.expect(s, ack("pubcomp", 1))
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        s.close()

    def until_marker(self, s, marker_topic):
        """Publish a marker on marker_topic and return every payload the
        subscriber s gets before it.  The marker is sent after the case's
        attack was handled, so anything the attack smuggled through
        arrives first."""
        marker = ("marker-" + self.uid()).encode()
        self.publish(marker_topic, marker)
        seen = []
        while True:
            p = self.next_publish(s)
            if p["payload"] == marker:
                return seen
            seen.append(p)

    def assert_not_delivered(self, s, marker_topic, payload):
        seen = self.until_marker(s, marker_topic)
        self.assertNotIn(payload, [p["payload"] for p in seen],
                         "a rejected message was delivered")

    def assert_closed_silently(self, s):
        """The broker closes the connection and sends nothing first."""
        closed, data = read_until_close(s)
        self.assertTrue(closed, "connection not closed within %ss" % TIMEOUT)
        self.assertEqual(data, b"", "unexpected response before the close")

    def assert_serving(self):
        self.assertTrue(self.broker.alive(),
                        "broker died:\n" + self.broker.read_log()[-4000:])
        payload = ("still-serving-" + self.tag).encode()
        self.publish(self.guard_topic, payload, qos=1, worker=1)
        p = self.next_publish(self.guard)
        self.assertEqual((p["topic"], p["payload"], p["qos"]),
                         (self.guard_topic.encode(), payload, 1))
        self.guard.sendall(DISCONNECT)
        self.assertTrue(self.broker.alive())


# ---- the default broker --------------------------------------------------

class ConnectTests(RawTestCase):
    def test_first_packet_must_be_connect(self):
        # [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT;
        # anything else is a protocol violation and the connection closes.
        w = self.watcher(["first/#"])
        cases = {
            "publish": publish_packet("first/x", b"sneaky-first"),
            "publish-qos1": publish_packet("first/x", b"sneaky-first", 1, 7),
            "pingreq": PINGREQ,
            "subscribe": subscribe_packet(1, [("first/#", 0)]),
            "unsubscribe": unsubscribe_packet(1, ["first/#"]),
            "disconnect": DISCONNECT,
            "pubrel": ack("pubrel", 1),
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.sock()
                s.sendall(data)
                self.assert_closed_silently(s)
        self.assert_not_delivered(w, "first/marker", b"sneaky-first")

    def test_second_connect_is_a_protocol_violation(self):
        # [MQTT-3.1.0-2] a second CONNECT closes the connection.
        s = self.client()
        s.sendall(connect_packet(self.uid()))
        self.assert_closed_silently(s)
        # also when pipelined behind the first CONNECT, for a session on
        # either worker (the connection may change worker in between)
        for worker in (0, 1):
            with self.subTest(worker=worker):
                s = self.sock()
                s.sendall(connect_packet(cid_on(self.uid(), worker)) +
                          connect_packet(self.uid()))
                self.expect(s, CONNACK_OK)
                self.assert_closed_silently(s)

    def test_nothing_processed_after_refused_connect(self):
        # [MQTT-3.1.4-5] after refusing a CONNECT the server processes no
        # data sent after it.
        topic = "refused/" + self.tag
        w = self.watcher([topic])
        tail = (subscribe_packet(1, [(topic, 0)]) +
                publish_packet(topic, b"after-refusal", qos=1, pid=1))
        for name, conn in (
                ("level-6", connect_packet(self.uid(), level=6)),
                ("empty-id", connect_packet("", clean=False)),
                ("password-without-user",
                 connect_packet(self.uid(), flags_extra=0x40)),
                ("bad-flags", connect_packet(self.uid(), flags_extra=1))):
            with self.subTest(name):
                s = self.sock()
                send_quietly(s, conn + tail)
                closed, data = read_until_close(s)
                self.assertTrue(closed)
                self.assertIn(data, (b"", CONNACK_BAD_PROTOCOL,
                                     CONNACK_ID_REJECTED))
        self.assert_not_delivered(w, topic, b"after-refusal")

    def test_unsupported_protocol_level(self):
        # [MQTT-3.1.2-2] unsupported level: CONNACK 0x01, then close.
        # (Level 5 is MQTT 5.0, on by default: test_mqtt5.py covers it,
        # and its refusal with "mqtt5 false".)
        for level in (0, 3, 6, 255):
            with self.subTest(level=level):
                s = self.sock()
                s.sendall(connect_packet(self.uid(), level=level))
                self.expect(s, CONNACK_BAD_PROTOCOL)
                self.assert_closed_silently(s)

    def test_mqisdp_level_3_is_accepted(self):
        # MQTT 3.1 ("MQIsdp", level 3) is supported.
        s = self.sock()
        s.sendall(connect_packet(self.uid(), name="MQIsdp", level=3))
        self.expect(s, CONNACK_OK)
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)

    def test_unknown_protocol_name_closes_without_connack(self):
        # [MQTT-3.1.2-1] a wrong protocol name: the server MAY disconnect
        # and MUST NOT go on with this specification (no CONNACK).
        for name in ("MQTX", "mqtt", "MQIsdp4", "", "HTTP"):
            with self.subTest(name=name):
                s = self.sock()
                s.sendall(connect_packet(self.uid(), name=name))
                self.assert_closed_silently(s)
        # An HTTP request: "GE" reads as a PUBACK (type 4) with flags 0111
        # and remaining length 0x45; once those 69 bytes are in, it is
        # closed as a non-CONNECT first packet [MQTT-3.1.0-1].
        s = self.sock()
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                  b"User-Agent: moat-test/1.0\r\nAccept: */*\r\n\r\n")
        self.assert_closed_silently(s)

    def test_invalid_connect_flags(self):
        cases = {
            # [MQTT-3.1.2-3] reserved flag bit 0 must be 0
            "reserved": connect_packet(self.uid(), flags_extra=0x01),
            # [MQTT-3.1.2-14] will QoS 3
            "will-qos3": connect_packet(self.uid(),
                                        will=("w/t", b"x", 3, False)),
            # [MQTT-3.1.2-13] will flag 0: will QoS must be 0
            "qos-no-will": connect_packet(self.uid(), flags_extra=0x08),
            "qos2-no-will": connect_packet(self.uid(), flags_extra=0x10),
            # [MQTT-3.1.2-15] will flag 0: will retain must be 0
            "retain-no-will": connect_packet(self.uid(), flags_extra=0x20),
            # [MQTT-3.1.2-22] password flag without user name flag
            "password-no-user": connect_packet(self.uid(), password="pw"),
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.sock()
                s.sendall(data)
                self.assert_closed_silently(s)

    def test_user_name_without_password_is_accepted(self):
        # [MQTT-3.1.2-18..21]: user name alone is allowed.
        s = self.client(user="alice")
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)
        s = self.client(user="bob", password=b"\x00\xff binary ok")
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)

    def test_truncated_or_padded_connect_closes(self):
        cases = {
            # client id length runs past the end of the packet
            "id-past-end": packet(0x10, mqtt_str("MQTT") +
                                  b"\x04\x02\x00\x3c\x00\x40abc"),
            "no-flags": packet(0x10, mqtt_str("MQTT") + b"\x04"),
            "no-keepalive": packet(0x10, mqtt_str("MQTT") + b"\x04\x02"),
            "no-client-id": packet(0x10, mqtt_str("MQTT") +
                                   b"\x04\x02\x00\x3c"),
            # will flag set but no will topic/message in the payload
            "will-missing": packet(0x10, mqtt_str("MQTT") +
                                   b"\x04\x06\x00\x3c" + mqtt_str("id")),
            # user name flag set but no user name
            "user-missing": packet(0x10, mqtt_str("MQTT") +
                                   b"\x04\x82\x00\x3c" + mqtt_str("id")),
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.sock()
                s.sendall(data)
                closed, data = read_until_close(s)
                self.assertTrue(closed)
                self.assertNotEqual(data[:4], CONNACK_OK)

    def test_invalid_utf8_in_connect_strings(self):
        # [MQTT-1.5.3-1] ill-formed UTF-8 / [MQTT-1.5.3-2] U+0000 in the
        # client id, will topic or user name closes the connection.
        def connect_with(cid=b"ok", will_topic=None, user=None):
            flags = 0x02
            payload = mqtt_str(cid)
            if will_topic is not None:
                flags |= 0x04
                payload += mqtt_str(will_topic) + mqtt_str(b"msg")
            if user is not None:
                flags |= 0x80
                payload += mqtt_str(user)
            return packet(0x10, mqtt_str("MQTT") + bytes([4, flags]) +
                          b"\x00\x3c" + payload)
        w = self.watcher(["utfwill/#"])
        for bad in (b"a\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"a\x00b"):
            for where in ("cid", "will", "user"):
                with self.subTest(bad=bad, where=where):
                    s = self.sock()
                    if where == "cid":
                        s.sendall(connect_with(cid=b"id-" + bad))
                    elif where == "will":
                        s.sendall(connect_with(
                            cid=self.uid().encode(),
                            will_topic=b"utfwill/" + bad))
                    else:
                        s.sendall(connect_with(cid=self.uid().encode(),
                                               user=b"u" + bad))
                    self.assert_closed_silently(s)
        seen = self.until_marker(w, "utfwill/marker")
        self.assertEqual(seen, [], "a will with an invalid topic was sent")

    def test_empty_client_id(self):
        # [MQTT-3.1.3-8] empty id with clean session 0: CONNACK 0x02, close.
        s = self.sock()
        s.sendall(connect_packet("", clean=False))
        self.expect(s, CONNACK_ID_REJECTED)
        self.assert_closed_silently(s)
        # MQTT 3.1 requires a 1-23 character client id (docs/mqtt.md)
        s = self.sock()
        s.sendall(connect_packet("", clean=True, name="MQIsdp", level=3))
        self.expect(s, CONNACK_ID_REJECTED)
        self.assert_closed_silently(s)
        # [MQTT-3.1.3-6] [MQTT-3.1.3-7] empty id with clean session 1 is
        # accepted with an assigned id; the client is fully usable.
        topic = "emptyid/" + self.tag
        clients = []
        for _ in range(4):  # assigned ids land on both workers
            s = self.sock()
            s.sendall(connect_packet("", clean=True))
            self.expect(s, CONNACK_OK)
            self.assertEqual(self.subscribe(s, [(topic, 0)]), [0])
            clients.append(s)
        self.publish(topic, b"to-anonymous")
        for s in clients:
            p = self.next_publish(s)
            self.assertEqual(p["payload"], b"to-anonymous")

    def test_session_present_flag(self):
        cid = self.uid("persist")
        # [MQTT-3.2.2-1] clean session 1: session present 0
        s = self.client(cid, clean=True)
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # [MQTT-3.2.2-3] clean session 0 and no session: present 0
        s = self.client(cid, clean=False, present=False)
        self.assertEqual(self.subscribe(s, [("persist/" + self.tag, 1)]),
                         [1])
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # [MQTT-3.2.2-2] clean session 0 with a stored session: present 1
        s = self.client(cid, clean=False, present=True)
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # the subscription survived: offline QoS 1 messages are queued
        # [MQTT-3.1.2-5]
        self.publish("persist/" + self.tag, b"while-away", qos=1)
        s = self.client(cid, clean=False, present=True)
        p = self.next_publish(s)
        self.assertEqual((p["payload"], p["qos"]), (b"while-away", 1))
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # [MQTT-3.1.2-6] clean session 1 discards it: present 0 ...
        s = self.client(cid, clean=True, present=False)
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # ... and nothing is left for a later clean-session-0 connect
        s = self.client(cid, clean=False, present=False)
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        s = self.client(cid, clean=True)  # leave no session behind
        s.sendall(DISCONNECT)

    def test_session_takeover(self):
        # [MQTT-3.1.4-2] a CONNECT with the id of a connected client
        # closes the existing connection; the new one works.
        for worker in (0, 1):
            with self.subTest(worker=worker):
                cid = cid_on(self.uid("take"), worker)
                topic = "take/%s/%d" % (self.tag, worker)
                w = self.watcher([topic + "/will"])
                first = self.client(cid, will=(topic + "/will",
                                               b"taken-over", 0, False))
                second = self.client(cid)
                self.assertTrue(expect_closed(first),
                                "old connection not closed")
                self.assertEqual(self.subscribe(second, [(topic, 0)]), [0])
                self.publish(topic, b"to-second")
                p = self.next_publish(second)
                self.assertEqual(p["payload"], b"to-second")
                # docs/mqtt.md: the old connection's will is published on
                # takeover.
                p = self.next_publish(w)
                self.assertEqual(p["payload"], b"taken-over")

    def test_takeover_of_persistent_session(self):
        # Taking over a clean-session-0 connection with clean session 0
        # resumes the session: present 1 [MQTT-3.2.2-2] and the
        # subscription still works [MQTT-3.1.2-4].  Taking over a
        # clean-session-1 connection finds no session [MQTT-3.2.2-3].
        for worker in (0, 1):
            with self.subTest(worker=worker):
                cid = cid_on(self.uid("ptake"), worker)
                topic = "ptake/%s/%d" % (self.tag, worker)
                first = self.client(cid, clean=False)
                self.assertEqual(self.subscribe(first, [(topic, 1)]), [1])
                second = self.client(cid, clean=False, present=True)
                self.assertTrue(expect_closed(first))
                self.publish(topic, b"to-resumed", qos=1)
                self.assertEqual(self.next_publish(second)["payload"],
                                 b"to-resumed")
                third = self.client(cid, clean=True)
                self.assertTrue(expect_closed(second))
                fourth = self.client(cid, clean=False, present=False)
                self.assertTrue(expect_closed(third))
                fourth.sendall(DISCONNECT)
                self.assertTrue(expect_closed(fourth))
                self.client(cid, clean=True).sendall(DISCONNECT)

    def test_fragmented_and_pipelined_packets(self):
        # A CONNECT dribbled in byte by byte, then several packets in one
        # segment, all before the CONNACK is read (clients may send
        # further packets right after CONNECT, 3.1.4).
        for worker in (0, 1):
            with self.subTest(worker=worker):
                cid = cid_on(self.uid("frag"), worker)
                topic = "frag/%s/%d" % (self.tag, worker)
                s = self.sock()
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for b in connect_packet(cid):
                    s.sendall(bytes([b]))
                    time.sleep(0.001)
                self.expect(s, CONNACK_OK)
                s.sendall(PINGREQ * 3)
                self.expect(s, PINGRESP * 3)
                s2 = self.sock()
                cid2 = cid_on(self.uid("pipe"), worker)
                s2.sendall(connect_packet(cid2) +
                           subscribe_packet(9, [(topic, 1)]) +
                           publish_packet(topic, b"self", qos=1, pid=3) +
                           PINGREQ)
                self.expect(s2, CONNACK_OK)
                self.expect(s2, b"\x90\x03\x00\x09\x01")
                got = []
                while len(got) < 3:
                    first, body = read_packet(s2)
                    got.append((first, body))
                self.assertIn((0x40, u16(3)), got)  # PUBACK
                self.assertIn((0xD0, b""), got)
                pubs = [parse_publish(f, b) for f, b in got if f >> 4 == 3]
                self.assertEqual(len(pubs), 1)
                self.assertEqual(pubs[0]["payload"], b"self")


class FramingTests(RawTestCase):
    def test_remaining_length_of_five_bytes(self):
        # 2.2.3: at most four remaining-length bytes; a fifth is malformed.
        s = self.client()
        send_quietly(s, b"\x30\xff\xff\xff\xff\x7f")
        self.assert_closed_silently(s)
        s = self.sock()
        send_quietly(s, b"\x10\x80\x80\x80\x80\x01")
        self.assert_closed_silently(s)

    def test_non_mqtt_bytes_closed_on_the_fixed_header(self):
        # Not MQTT at all (an HTTP request): the first fixed header is not
        # a CONNECT [MQTT-3.1.0-1], so the broker closes at once instead
        # of waiting for the declared body or for connect_timeout (10 s
        # here; the wait below is bounded at 3 s).
        s = self.sock()
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.assertTrue(expect_closed(s, timeout=3.0))
        s = self.sock()
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00")  # a TLS ClientHello
        self.assertTrue(expect_closed(s, timeout=3.0))

    def test_remaining_length_past_the_end(self):
        # A packet that declares more than is ever sent: the broker waits
        # for the rest and must cope with the peer going away.
        w = self.watcher(["short/#"])
        half = publish_packet("short/x", b"short-never")
        body = half[2:]
        s = self.client()
        s.sendall(b"\x30\x64" + body[:10])
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(expect_closed(s))
        s = self.client()
        s.sendall(b"\x30\x64" + body[:10])
        close_with_reset(s)
        s = self.sock()
        s.sendall(connect_packet(self.uid())[:7])
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(expect_closed(s))
        self.assert_not_delivered(w, "short/marker", b"short-never")

    def test_reserved_fixed_header_flags(self):
        # [MQTT-2.2.2-1] [MQTT-2.2.2-2] wrong reserved flags close the
        # connection; [MQTT-3.8.1-1] SUBSCRIBE, [MQTT-3.10.1-1]
        # UNSUBSCRIBE and [MQTT-3.6.1-1] PUBREL must have flags 0010.
        sub = subscribe_packet(1, [("flags/x", 0)])
        unsub = unsubscribe_packet(1, ["flags/x"])
        cases = {
            "subscribe-0x80": b"\x80" + sub[1:],
            "subscribe-0x83": b"\x83" + sub[1:],
            "subscribe-0x8a": b"\x8a" + sub[1:],
            "unsubscribe-0xa0": b"\xa0" + unsub[1:],
            "unsubscribe-0xa3": b"\xa3" + unsub[1:],
            "pubrel-0x60": b"\x60\x02\x00\x01",
            "pubrel-0x6a": b"\x6a\x02\x00\x01",
            "puback-0x41": b"\x41\x02\x00\x01",
            "pubrec-0x52": b"\x52\x02\x00\x01",
            "pubcomp-0x78": b"\x78\x02\x00\x01",
            "pingreq-0xc1": b"\xc1\x00",
            "pingreq-0xc8": b"\xc8\x00",
            "disconnect-0xe1": b"\xe1\x00",
            "disconnect-0xe2": b"\xe2\x00",
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.client()
                s.sendall(data)
                self.assert_closed_silently(s)
        s = self.sock()
        s.sendall(b"\x11" + connect_packet(self.uid())[1:])  # CONNECT 0x11
        self.assert_closed_silently(s)

    def test_packets_with_wrong_lengths(self):
        cases = {
            "pingreq-with-body": b"\xc0\x01\x00",
            "disconnect-with-body": b"\xe0\x01\x00",
            "puback-short": b"\x40\x01\x00",
            "puback-long": b"\x40\x03\x00\x01\x00",
            "pubrel-short": b"\x62\x01\x00",
            "subscribe-no-qos": packet(0x82, u16(1) + mqtt_str("a")),
            "subscribe-filter-past-end": packet(0x82, u16(1) + b"\x00\x09ab"),
            "unsubscribe-filter-past-end": packet(0xA2, u16(1) +
                                                  b"\x00\x09ab"),
            "publish-topic-past-end": packet(0x30, b"\x00\x09ab"),
            "publish-qos1-no-id": packet(0x32, mqtt_str("a") + b"\x00"),
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.client()
                s.sendall(data)
                self.assert_closed_silently(s)

    def test_server_only_and_reserved_packet_types(self):
        # 2.2.1: types 0 and 15 are reserved; CONNACK, SUBACK, UNSUBACK
        # and PINGRESP only go from server to client (4.8: close).
        cases = {
            "connack": CONNACK_OK,
            "suback": b"\x90\x03\x00\x01\x00",
            "unsuback": b"\xb0\x02\x00\x01",
            "pingresp": PINGRESP,
            "reserved-0": b"\x00\x00",
            "reserved-15": b"\xf0\x00",
        }
        for name, data in cases.items():
            with self.subTest(name):
                s = self.client()
                s.sendall(data)
                self.assert_closed_silently(s)
                s = self.sock()  # and as the very first packet
                s.sendall(data)
                self.assert_closed_silently(s)

    def test_connect_disconnect_churn(self):
        # Short connections that send CONNECT and DISCONNECT in one
        # segment, for sessions homed on either worker (so the connection
        # often changes worker between the two packets), 20 at a time.
        # Each gets its CONNACK and a close [MQTT-3.14.4-1]; the broker
        # stays up.
        for batch in range(100):
            socks = []
            try:
                for j in range(20):
                    i = batch * 20 + j
                    s = raw_connect(self.port, TIMEOUT)
                    socks.append(s)
                    s.sendall(connect_packet(cid_on("churn%d" % i, i % 2)) +
                              DISCONNECT)
                for s in socks:
                    closed, data = read_until_close(s)
                    self.assertTrue(closed)
                    self.assertEqual(data, CONNACK_OK)
            finally:
                for s in socks:
                    s.close()
            if not self.broker.alive():
                self.fail("broker died in batch %d:\n%s"
                          % (batch, self.broker.read_log()[-3000:]))

    def test_garbage_connections(self):
        # 200 connections sending junk (some after a valid CONNECT, some
        # cut off with a reset) must not disturb a well-behaved client.
        rng = random.Random(20240611)
        topic = "garbage/" + self.tag
        w = self.watcher([topic])
        open_socks = []
        for i in range(200):
            try:
                s = raw_connect(self.port, TIMEOUT)
            except OSError as e:
                self.fail("connect %d failed: %s" % (i, e))
            kind = i % 5
            junk = bytes(rng.getrandbits(8)
                         for _ in range(rng.randint(1, 300)))
            if kind == 0:
                data = junk
            elif kind == 1:
                data = connect_packet(cid_on("junk%d" % i, i % 2)) + junk
            elif kind == 2:
                data = bytes([rng.choice([0x10, 0x30, 0x82, 0xC0])]) + junk
            elif kind == 3:
                data = connect_packet("junk%d" % i) + \
                    subscribe_packet(1, [(topic, 1)]) + junk
            else:
                data = b"\x10" + varint(rng.randint(0, 2 ** 28 - 1)) + junk
            send_quietly(s, data)
            if i % 3 == 0:
                close_with_reset(s)
            else:
                open_socks.append(s)
            if len(open_socks) >= 50:
                for o in open_socks:
                    o.close()
                open_socks = []
        for o in open_socks:
            o.close()
        self.assertTrue(self.broker.alive())
        self.publish(topic, b"after-garbage", qos=1)
        p = self.next_publish(w)
        self.assertEqual(p["payload"], b"after-garbage")


class PublishTests(RawTestCase):
    def attack(self, data, payload, watch="atk"):
        """Send data on a connected client, expect a silent close, and
        check that payload never reaches a '#' watcher."""
        w = self.watcher(["#"])
        s = self.client()
        s.sendall(data)
        self.assert_closed_silently(s)
        self.assert_not_delivered(w, watch + "/marker", payload)

    def test_invalid_publish_flags(self):
        # [MQTT-3.3.1-4] QoS 3; [MQTT-3.3.1-2] DUP with QoS 0;
        # [MQTT-2.3.1-1] QoS > 0 needs a non-zero packet id.
        body = mqtt_str("pf/x") + u16(1) + b"pf-qos3"
        cases = {
            "qos3": (packet(0x36, body), b"pf-qos3"),
            "qos3-retain": (packet(0x37, body), b"pf-qos3"),
            "dup-qos0": (publish_packet("pf/x", b"pf-dup0", dup=True),
                         b"pf-dup0"),
            "qos1-id0": (publish_packet("pf/x", b"pf-id0", qos=1, pid=0),
                         b"pf-id0"),
            "qos2-id0": (publish_packet("pf/x", b"pf-id0b", qos=2, pid=0),
                         b"pf-id0b"),
        }
        for name, (data, payload) in cases.items():
            with self.subTest(name):
                self.attack(data, payload)

    def test_invalid_utf8_topic_is_not_forwarded(self):
        # [MQTT-1.5.3-1] ill-formed UTF-8 and [MQTT-1.5.3-2] U+0000 in a
        # topic name close the sender, and the message is never
        # forwarded (CVE-2017-7653).
        cases = {
            "ff": b"a/\xff",
            "lone-continuation": b"a/\x80",
            "overlong-slash": b"a/\xc0\xaf",
            "overlong-3byte": b"a/\xe0\x80\xaf",
            "surrogate-high": b"a/\xed\xa0\x80",
            "surrogate-low": b"a/\xed\xbf\xbf",
            "above-10ffff": b"a/\xf4\x90\x80\x80",
            "truncated": b"a/\xe2\x82",
            "truncated-at-end": b"a/\xc3",
            "nul": b"a/\x00",
            "nul-middle": b"a\x00b",
            "f8-lead": b"a/\xf8\x88\x80\x80\x80",
        }
        w = self.watcher(["#"])
        for name, topic in cases.items():
            with self.subTest(name):
                payload = ("bad-utf8-" + name).encode()
                for qos in (0, 1):
                    s = self.client()
                    s.sendall(publish_packet(topic, payload, qos=qos))
                    self.assert_closed_silently(s)
        seen = self.until_marker(w, "utf/marker")
        self.assertEqual([p["payload"] for p in seen
                          if p["payload"].startswith(b"bad-utf8-")], [])

    def test_valid_utf8_topics_are_forwarded_intact(self):
        # [MQTT-1.5.3-3] U+FEFF is not skipped or stripped; multi-byte
        # characters pass unchanged.
        topics = ["utf8/\ufeffbom", "utf8/\u00fc\u00f1\u00ef/\u65e5\u672c",
                  "utf8/\U0001f642", "utf8/\u07ff\u0800\uffff"]
        w = self.watcher(["utf8/#"])
        for t in topics:
            self.publish(t, b"ok")
            p = self.next_publish(w)
            self.assertEqual(p["topic"], t.encode())

    def test_topic_name_with_wildcards_or_empty(self):
        # [MQTT-3.3.2-2] no wildcards in a topic name; [MQTT-4.7.3-1] a
        # topic is at least one character long.
        for topic in ("a/+", "a/#", "+", "#", "a+b", "a/b#", ""):
            with self.subTest(topic=topic):
                payload = ("wild-" + topic).encode()
                self.attack(publish_packet(topic, payload), payload)

    def test_publish_qos_flows(self):
        s = self.client()
        # QoS 0: nothing back
        s.sendall(publish_packet("qos/" + self.tag, b"q0"))
        self.assertEqual(self.sync(s), [])
        # [MQTT-4.3.2-2] QoS 1: PUBACK with the same packet id
        for pid in (1, 0x1234, 0xFFFF):
            s.sendall(publish_packet("qos/" + self.tag, b"q1", 1, pid))
            self.expect(s, ack("puback", pid))
        # [MQTT-4.3.3-2] QoS 2: PUBREC, then PUBREL (0x62) -> PUBCOMP
        s.sendall(publish_packet("qos/" + self.tag, b"q2", 2, 0xABCD))
        self.expect(s, ack("pubrec", 0xABCD))
        s.sendall(ack("pubrel", 0xABCD))
        self.expect(s, ack("pubcomp", 0xABCD))
        # PUBREL for an id never seen: PUBCOMP anyway [MQTT-4.3.3-2]
        s.sendall(ack("pubrel", 4242))
        self.expect(s, ack("pubcomp", 4242))
        # PINGREQ -> PINGRESP [MQTT-3.12.4-1]
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)

    def test_qos2_duplicate_before_pubrel_delivered_once(self):
        # [MQTT-4.3.3-2] until PUBREL, a PUBLISH with the same packet id is
        # not delivered again; after PUBCOMP the id starts a new message.
        topic = "q2dup/" + self.tag
        w = self.client(cid_on(self.uid("q2w"), 0))
        self.assertEqual(self.subscribe(w, [(topic, 2)]), [2])
        p = self.client(cid_on(self.uid("q2p"), 1))
        p.sendall(publish_packet(topic, b"first", 2, 7))
        self.expect(p, ack("pubrec", 7))
        p.sendall(publish_packet(topic, b"first", 2, 7, dup=True))
        self.expect(p, ack("pubrec", 7))
        p.sendall(publish_packet(topic, b"first", 2, 7))
        self.expect(p, ack("pubrec", 7))
        p.sendall(ack("pubrel", 7))
        self.expect(p, ack("pubcomp", 7))
        p.sendall(publish_packet(topic, b"second", 2, 7))
        self.expect(p, ack("pubrec", 7))
        p.sendall(ack("pubrel", 7))
        self.expect(p, ack("pubcomp", 7))
        # the subscriber: QoS 2 flow outwards, messages in order
        # [MQTT-4.6.0-6]; PUBREL from the broker has flags 0010
        # [MQTT-3.6.1-1].
        got, pending, released = [], set(), 0
        while len(got) < 2 or released < 2:
            first, body = read_packet(w)
            if first == 0x62:
                pid = int.from_bytes(body, "big")
                self.assertIn(pid, pending)
                pending.discard(pid)
                released += 1
                w.sendall(ack("pubcomp", pid))
                continue
            self.assertEqual(first & 0xF6, 0x34)  # QoS 2 PUBLISH
            m = parse_publish(first, body)
            got.append(m["payload"])
            pending.add(m["pid"])
            w.sendall(ack("pubrec", m["pid"]))
        self.assertEqual(got, [b"first", b"second"])
        self.assertEqual(self.sync(w), [])

    def test_unacked_qos1_resent_with_dup_on_reconnect(self):
        # [MQTT-4.4.0-1] unacknowledged QoS 1 PUBLISH packets are re-sent
        # on reconnect with clean session 0, with DUP set
        # [MQTT-3.3.1-1], the same packet id and payload.
        topic = "dupq/" + self.tag
        cid = cid_on(self.uid("dupsub"), 0)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.publish(topic, b"unacked-payload", qos=1)
        first, body = read_packet(s)
        self.assertEqual(first, 0x32)
        orig = parse_publish(first, body)
        s.close()  # no PUBACK
        s = self.client(cid, clean=False, present=True)
        first, body = read_packet(s)
        self.assertEqual(first, 0x3A)  # PUBLISH, DUP, QoS 1
        again = parse_publish(first, body)
        self.assertEqual((again["topic"], again["pid"], again["payload"]),
                         (topic.encode(), orig["pid"], b"unacked-payload"))
        s.sendall(ack("puback", again["pid"]))
        self.assertEqual(self.sync(s), [])
        # a new message after that is not a duplicate
        self.publish(topic, b"fresh", qos=1)
        first, body = read_packet(s)
        self.assertEqual(first, 0x32)
        self.assertEqual(parse_publish(first, body)["payload"], b"fresh")
        s.sendall(ack("puback", parse_publish(first, body)["pid"]))
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        # acknowledged: nothing is re-sent on the next reconnect
        s = self.client(cid, clean=False, present=True)
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        s = self.client(cid, clean=True)
        s.sendall(DISCONNECT)

    def test_outgoing_qos2_pubrel_resent_on_reconnect(self):
        # [MQTT-4.4.0-1] a PUBREL not yet completed is re-sent on
        # reconnect with clean session 0.
        topic = "relq/" + self.tag
        cid = cid_on(self.uid("relsub"), 1)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 2)]), [2])
        self.publish(topic, b"q2-to-resume", qos=2, worker=0)
        first, body = read_packet(s)
        m = parse_publish(first, body)
        self.assertEqual((first, m["payload"]), (0x34, b"q2-to-resume"))
        s.sendall(ack("pubrec", m["pid"]))
        self.expect(s, ack("pubrel", m["pid"]))
        s.close()  # no PUBCOMP
        s = self.client(cid, clean=False, present=True)
        self.expect(s, ack("pubrel", m["pid"]))
        s.sendall(ack("pubcomp", m["pid"]))
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        s = self.client(cid, clean=True)
        s.sendall(DISCONNECT)

    def test_outgoing_qos2_publish_resent_with_dup(self):
        # [MQTT-4.4.0-1] a QoS 2 PUBLISH without PUBREC is re-sent with
        # DUP (0x3C) and the same packet id on reconnect.
        topic = "q2re/" + self.tag
        cid = cid_on(self.uid("q2re"), 0)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 2)]), [2])
        self.publish(topic, b"q2-unreceived", qos=2, worker=1)
        first, body = read_packet(s)
        m = parse_publish(first, body)
        self.assertEqual((first, m["payload"]), (0x34, b"q2-unreceived"))
        close_with_reset(s)  # no PUBREC
        s = self.client(cid, clean=False, present=True)
        first, body = read_packet(s)
        again = parse_publish(first, body)
        self.assertEqual((first, again["pid"], again["payload"]),
                         (0x3C, m["pid"], b"q2-unreceived"))
        s.sendall(ack("pubrec", m["pid"]))
        self.expect(s, ack("pubrel", m["pid"]))
        s.sendall(ack("pubcomp", m["pid"]))
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        self.client(cid, clean=True).sendall(DISCONNECT)

    def test_resend_order_on_reconnect(self):
        # [MQTT-4.4.0-1] unacknowledged messages are re-sent (with DUP,
        # original ids), then the messages queued while the client was
        # away follow; all in publish order, as the ordered-topic rule
        # requires for one publisher, topic and QoS [MQTT-4.6.0-6].
        topic = "order/" + self.tag
        cid = cid_on(self.uid("order"), 1)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        p = self.client(cid_on(self.uid("orderpub"), 0))
        for i in range(5):
            p.sendall(publish_packet(topic, b"o%d" % i, qos=1, pid=i + 1))
            self.expect(p, ack("puback", i + 1))
        sent = []
        for _ in range(5):
            first, body = read_packet(s)
            sent.append(parse_publish(first, body))
        self.assertEqual([m["payload"] for m in sent],
                         [b"o%d" % i for i in range(5)])
        s.sendall(ack("puback", sent[1]["pid"]))  # one acknowledged
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        for i in range(5, 8):
            p.sendall(publish_packet(topic, b"o%d" % i, qos=1, pid=i + 1))
            self.expect(p, ack("puback", i + 1))
        s = self.client(cid, clean=False, present=True)
        got = []
        for _ in range(7):
            first, body = read_packet(s)
            m = parse_publish(first, body)
            got.append((m["payload"], m["dup"]))
            s.sendall(ack("puback", m["pid"]))
        self.assertEqual(got, [(b"o0", True), (b"o2", True), (b"o3", True),
                               (b"o4", True), (b"o5", False),
                               (b"o6", False), (b"o7", False)])
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        self.client(cid, clean=True).sendall(DISCONNECT)

    def test_acks_out_of_order_keep_the_window_consistent(self):
        # The outgoing window is a ring in send order: acks that come out
        # of order (here: the oldest held back, the rest in reverse) take
        # entries from the middle; every message still arrives once, in
        # order, and no packet id is used twice while unacknowledged
        # [MQTT-2.3.1-2].
        topic = "ooo/" + self.tag
        s = self.client(cid_on(self.uid("ooosub"), 0))
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        p = self.client(cid_on(self.uid("ooopub"), 1))
        total = 60
        for i in range(total):
            p.sendall(publish_packet(topic, b"m%d" % i, qos=1, pid=i + 1))
            self.expect(p, ack("puback", i + 1))
        held, outstanding, got = None, {}, []
        while len(got) < total:
            first, body = read_packet(s)
            m = parse_publish(first, body)
            self.assertEqual(first, 0x32)
            self.assertNotIn(m["pid"], outstanding,
                             "packet id in use twice")
            outstanding[m["pid"]] = m["payload"]
            got.append(m["payload"])
            if held is None:
                held = m["pid"]  # the oldest stays unacknowledged
                continue
            if len(outstanding) >= 4 or len(got) == total:
                for pid in sorted(outstanding, reverse=True):
                    if pid != held:
                        s.sendall(ack("puback", pid))
                        del outstanding[pid]
        self.assertEqual(got, [b"m%d" % i for i in range(total)])
        s.sendall(ack("puback", held))
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        p.sendall(DISCONNECT)

    def test_incoming_qos2_state_survives_reconnect(self):
        # Session state includes QoS 2 messages received but not yet
        # released (3.1.2.4): a re-sent PUBLISH after reconnecting with
        # clean session 0 is not delivered again [MQTT-4.3.3-2].
        topic = "q2in/" + self.tag
        w = self.watcher([topic])
        cid = cid_on(self.uid("q2in"), 1)
        p = self.client(cid, clean=False)
        p.sendall(publish_packet(topic, b"exactly-once", qos=2, pid=77))
        self.expect(p, ack("pubrec", 77))
        close_with_reset(p)
        p = self.client(cid, clean=False, present=True)
        p.sendall(publish_packet(topic, b"exactly-once", qos=2, pid=77,
                                 dup=True))
        self.expect(p, ack("pubrec", 77))
        p.sendall(ack("pubrel", 77))
        self.expect(p, ack("pubcomp", 77))
        seen = self.until_marker(w, topic)
        self.assertEqual([m["payload"] for m in seen], [b"exactly-once"])
        p.sendall(DISCONNECT)
        self.client(cid, clean=True).sendall(DISCONNECT)

    def test_delivery_qos_is_minimum_of_publish_and_granted(self):
        # [MQTT-3.8.4-6] / 3.3.5: delivered at min(publish QoS, granted).
        topic = "minq/" + self.tag
        subs = {}
        for q in (0, 1, 2):
            s = self.client(cid_on(self.uid("minq"), q % 2))
            self.assertEqual(self.subscribe(s, [(topic, q)]), [q])
            subs[q] = s
        for pq in (0, 1, 2):
            self.publish(topic, b"pq%d" % pq, qos=pq)
            for sq, s in subs.items():
                p = self.next_publish(s)
                self.assertEqual((p["payload"], p["qos"]),
                                 (b"pq%d" % pq, min(pq, sq)))


    def test_large_payload_across_workers(self):
        # A 300 KB payload (3-byte remaining length) arrives intact, read
        # in several chunks and sent on from the other worker.
        topic = "large/" + self.tag
        w = self.client(cid_on(self.uid("lw"), 0))
        self.assertEqual(self.subscribe(w, [(topic, 1)]), [1])
        payload = bytes(random.Random(7).getrandbits(8)
                        for _ in range(300 * 1024))
        self.publish(topic, payload, qos=1, worker=1)
        p = self.next_publish(w)
        self.assertEqual((p["topic"], p["qos"]), (topic.encode(), 1))
        self.assertTrue(p["payload"] == payload, "payload corrupted")

    def test_max_topic_length(self):
        # docs/mqtt.md: max_topic_length (default 1k): a longer topic name
        # closes the connection; a longer filter gets SUBACK 0x80.
        s = self.client()
        ok = "tl/" + "x" * 1021
        s.sendall(publish_packet(ok, b"fits", qos=1, pid=2))
        self.expect(s, ack("puback", 2))
        self.assertEqual(self.subscribe(s, [(ok, 0), (ok + "y", 0)]),
                         [0, 0x80])
        s.sendall(publish_packet(ok + "y", b"too-long"))
        self.assert_closed_silently(s)


class SubscribeTests(RawTestCase):
    def test_suback_codes_and_packet_id(self):
        # [MQTT-3.8.4-1] SUBACK; [MQTT-3.8.4-2] same packet id;
        # [MQTT-3.9.3-1] one return code per filter, in order;
        # [MQTT-3.8.4-5] granted QoS as requested here.
        s = self.client()
        s.sendall(subscribe_packet(0xBEEF, [("sa/a", 0), ("sa/b/+", 1),
                                            ("sa/c/#", 2), ("#", 1),
                                            ("+/+/+", 0), ("sa/a", 2)]))
        self.expect(s, b"\x90\x08\xbe\xef\x00\x01\x02\x01\x00\x02")
        s.sendall(subscribe_packet(1, [("single", 2)]))
        self.expect(s, b"\x90\x03\x00\x01\x02")

    def test_many_filters_in_one_subscribe(self):
        # One return code per filter, in order [MQTT-3.9.3-1], in a SUBACK
        # whose remaining length (302) needs two bytes; beyond
        # max_subscriptions (default 100) the code is 0x80.
        s = self.client()
        filters = [("many/%d" % i, i % 3) for i in range(300)]
        s.sendall(subscribe_packet(0x0102, filters))
        codes = bytes([i % 3 for i in range(100)] + [0x80] * 200)
        self.expect(s, b"\x90\xae\x02\x01\x02" + codes)

    def test_subscribe_without_filters(self):
        # [MQTT-3.8.3-3] at least one filter.
        s = self.client()
        s.sendall(b"\x82\x02\x00\x01")
        self.assert_closed_silently(s)

    def test_subscribe_requested_qos_reserved(self):
        # [MQTT-3.8.3-4] QoS 3 or reserved bits set in the QoS byte.
        for qbyte in (3, 4, 0x81, 0x82, 0xFF, 0x40):
            with self.subTest(qos=qbyte):
                s = self.client()
                s.sendall(subscribe_packet(1, [("rq/a", 0),
                                               ("rq/b", qbyte)]))
                self.assert_closed_silently(s)

    def test_invalid_topic_filters(self):
        # [MQTT-4.7.1-2] '#' last and alone in its level;
        # [MQTT-4.7.1-3] '+' alone in its level; [MQTT-4.7.3-1] not empty;
        # [MQTT-1.5.3-1] [MQTT-1.5.3-2] well-formed UTF-8 without U+0000.
        for f in (b"a/#/b", b"a+", b"+a", b"a/b+/c", b"#a", b"a/b#", b"##",
                  b"++", b"", b"a/\xff", b"a/\x00", b"a/\xed\xa0\x80"):
            with self.subTest(filter=f):
                s = self.client()
                s.sendall(subscribe_packet(3, [("ok/f", 0), (f, 0)]))
                self.assert_closed_silently(s)

    def test_valid_unusual_filters(self):
        # 4.7: empty levels are valid; '#' alone, '+' alone, "/#", "+/+".
        s = self.client()
        self.assertEqual(self.subscribe(
            s, [("/", 0), ("//", 0), ("+", 0), ("/#", 0), ("+/+", 0),
                ("a//b", 1), ("+/#", 2), ("#", 0)]),
            [0, 0, 0, 0, 0, 1, 2, 0])

    def test_topic_matching(self):
        # 4.7.1: wildcard semantics, checked by a client publishing to
        # itself (the broker answers the PINGREQ after routing).
        cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", True),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
            ("sport/tennis/player1/#", "sport/tennis/player1/a/b", True),
            ("sport/#", "sport", True),
            ("#", "sport/tennis", True),
            ("sport/tennis/+", "sport/tennis/player1", True),
            ("sport/tennis/+", "sport/tennis/player1/ranking", False),
            ("sport/+", "sport", False),
            ("sport/+", "sport/", True),
            ("+/+", "/finance", True),
            ("/+", "/finance", True),
            ("+", "/finance", False),
            ("+", "finance", True),
            ("a/+/c", "a//c", True),
            ("a//c", "a//c", True),
            ("a/b", "a/b/", False),
            ("a/b", "A/b", False),
            ("a/b/", "a/b", False),
            ("+/#", "x", True),
            # [MQTT-4.7.2-1] no leading wildcard match for '$' topics
            ("#", "$x/y", False),
            ("+/y", "$x/y", False),
            ("+/#", "$x/y", False),
            ("$x/+", "$x/y", True),
            # [MQTT-4.7.3-4] no normalisation: U+00E9 vs e + U+0301
            ("caf\u00e9", "cafe\u0301", False),
            ("caf\u00e9", "caf\u00e9", True),
        ]
        s = self.client(cid_on(self.uid("match"), 0))
        for i, (f, t, match) in enumerate(cases):
            with self.subTest(filter=f, topic=t):
                self.assertEqual(self.subscribe(s, [(f, 0)], pid=i + 1), [0])
                s.sendall(publish_packet(t, b"m%d" % i))
                got = self.sync(s)
                self.assertEqual(
                    [p["payload"] for p in got], [b"m%d" % i] if match
                    else [])
                s.sendall(unsubscribe_packet(i + 1, [f]))
                self.expect(s, ack("unsuback", i + 1))

    def test_unsubscribe(self):
        s = self.client()
        # [MQTT-3.10.3-2] at least one filter
        s.sendall(b"\xa2\x02\x00\x05")
        self.assert_closed_silently(s)
        # [MQTT-3.10.4-5] UNSUBACK even when nothing matched, same id
        # [MQTT-3.10.4-4]
        s = self.client()
        s.sendall(unsubscribe_packet(0x4321, ["never/subscribed", "x/#"]))
        self.expect(s, ack("unsuback", 0x4321))
        # [MQTT-3.10.4-2] after UNSUBACK no new messages are delivered
        topic = "unsub/" + self.tag
        self.assertEqual(self.subscribe(s, [(topic, 1), ("other/" +
                                                         self.tag, 0)]),
                         [1, 0])
        s.sendall(unsubscribe_packet(2, [topic]))
        self.expect(s, ack("unsuback", 2))
        self.publish(topic, b"after-unsub", qos=1)
        self.publish("other/" + self.tag, b"still-subscribed")
        p = self.next_publish(s)
        self.assertEqual(p["payload"], b"still-subscribed")
        # [MQTT-3.10.4-1] filters are compared character by character:
        # neither "Case/x" nor "case/+" removes "case/X".
        ctopic = "case/%s/X" % self.tag
        self.assertEqual(self.subscribe(s, [(ctopic, 0)], pid=4), [0])
        s.sendall(unsubscribe_packet(5, [ctopic.lower(),
                                         "case/%s/+" % self.tag]))
        self.expect(s, ack("unsuback", 5))
        self.publish(ctopic, b"case-kept")
        self.assertEqual(self.next_publish(s)["payload"], b"case-kept")
        # invalid UTF-8 in an UNSUBSCRIBE filter closes [MQTT-1.5.3-1]
        s = self.client()
        s.sendall(unsubscribe_packet(3, [b"a/\xc0\xaf"]))
        self.assert_closed_silently(s)

    def test_resubscribe_replaces(self):
        # [MQTT-3.8.4-3] a SUBSCRIBE with an existing filter replaces the
        # subscription (new QoS); one copy of each message.
        topic = "resub/" + self.tag
        s = self.client(cid_on(self.uid("resub"), 0))
        self.assertEqual(self.subscribe(s, [(topic, 0)]), [0])
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.publish(topic, b"once", qos=2)
        p = self.next_publish(s)
        self.assertEqual((p["payload"], p["qos"]), (b"once", 1))
        self.assertEqual(self.sync(s), [])
        # ... and retained messages matching it are re-sent
        self.publish(topic, b"kept", qos=1, retain=True)
        p = self.next_publish(s)
        self.assertEqual((p["payload"], p["retain"]), (b"kept", False))
        self.assertEqual(self.subscribe(s, [(topic, 1)], pid=3), [1])
        got = self.sync(s)
        self.assertEqual([(m["payload"], m["retain"], m["qos"])
                          for m in got], [(b"kept", True, 1)])
        self.publish(topic, b"", retain=True)

    def test_overlapping_subscriptions_one_copy(self):
        # docs/mqtt.md (allowed by [MQTT-3.3.5-1]): one copy at the
        # highest granted QoS for overlapping subscriptions.
        topic = "ovl/%s/x" % self.tag
        s = self.client(cid_on(self.uid("ovl"), 1))
        self.assertEqual(self.subscribe(
            s, [("ovl/%s/+" % self.tag, 0), ("ovl/#", 1), (topic, 0)]),
            [0, 1, 0])
        self.publish(topic, b"overlap", qos=2, worker=0)
        p = self.next_publish(s)
        self.assertEqual((p["payload"], p["qos"]), (b"overlap", 1))
        self.assertEqual(self.sync(s), [])


class RetainAndWillTests(RawTestCase):
    def test_retained_messages(self):
        topic = "ret/" + self.tag
        lives = [self.client(cid_on(self.uid("live"), wk)) for wk in (0, 1)]
        for live in lives:
            self.assertEqual(self.subscribe(live, [(topic, 1)]), [1])
        self.publish(topic, b"retained-v1", qos=1, retain=True)
        # [MQTT-3.3.1-9] live subscribers (on the publisher's worker and
        # on the other one): retain flag 0
        for live in lives:
            p = self.next_publish(live)
            self.assertEqual((p["payload"], p["retain"]),
                             (b"retained-v1", False))
        live = lives[0]
        # [MQTT-3.3.1-8] [MQTT-3.3.1-6] new subscription: retain flag 1
        for worker in (0, 1):
            s = self.client(cid_on(self.uid("late"), worker))
            s.sendall(subscribe_packet(5, [(topic, 1)]))
            self.expect(s, b"\x90\x03\x00\x05\x01")
            first, body = read_packet(s)
            self.assertEqual(first, 0x33)  # PUBLISH QoS 1, retain
            p = self.take_publish(s, first, body)
            self.assertEqual((p["topic"], p["payload"]),
                             (topic.encode(), b"retained-v1"))
        # [MQTT-3.3.1-5] a newer retained message replaces the old one;
        # matched through wildcards too.
        self.publish(topic, b"retained-v2", qos=0, retain=True)
        self.assertEqual(self.next_publish(live)["payload"], b"retained-v2")
        s = self.client()
        s.sendall(subscribe_packet(6, [("ret/+", 2)]))
        self.expect(s, b"\x90\x03\x00\x06\x02")
        got = [p for p in self.sync(s) if p["topic"] == topic.encode()]
        self.assertEqual([(p["first"], p["payload"]) for p in got],
                         [(0x31, b"retained-v2")])  # min(QoS 0, 2), retain
        # [MQTT-3.3.1-10] an empty retained payload is delivered normally
        # to live subscribers ... [MQTT-3.3.1-11] and deletes the message
        self.publish(topic, b"", qos=1, retain=True)
        p = self.next_publish(live)
        self.assertEqual((p["payload"], p["retain"]), (b"", False))
        s = self.client()
        s.sendall(subscribe_packet(7, [(topic, 1), ("ret/#", 1)]))
        self.expect(s, b"\x90\x04\x00\x07\x01\x01")
        self.assertEqual(
            [p for p in self.sync(s) if p["topic"] == topic.encode()], [])

    def test_retained_message_matched_by_wildcards(self):
        # A retained message on "r/T" is sent for "r/T/#" (the '#' also
        # matches the parent level, [MQTT-4.7.1-2]), "+/T" and "#", but
        # one on "$r/T" only for filters starting with "$r"
        # [MQTT-4.7.2-1].
        t = self.tag
        self.publish("rw/" + t, b"plain", retain=True)
        self.publish("$rw/" + t, b"dollar", retain=True)
        try:
            for f, want in (("rw/%s/#" % t, [b"plain"]),
                            ("+/" + t, [b"plain"]),
                            ("#", [b"plain"]),
                            ("+/+", [b"plain"]),
                            ("$rw/#", [b"dollar"]),
                            ("$rw/+", [b"dollar"]),
                            ("$rw/" + t, [b"dollar"])):
                with self.subTest(filter=f):
                    s = self.client()
                    self.assertEqual(self.subscribe(s, [(f, 0)]), [0])
                    got = [p for p in self.sync(s)
                           if p["topic"].endswith(t.encode())]
                    self.assertEqual([p["payload"] for p in got], want)
                    self.assertTrue(all(p["retain"] for p in got))
        finally:
            self.publish("rw/" + t, b"", retain=True)
            self.publish("$rw/" + t, b"", retain=True)

    def test_non_retained_publish_is_not_stored(self):
        # [MQTT-3.3.1-12] retain 0: not stored.
        topic = "nret/" + self.tag
        self.publish(topic, b"not-retained", qos=1, retain=False)
        s = self.client()
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        self.assertEqual(self.sync(s), [])

    def test_will_on_abrupt_close(self):
        # [MQTT-3.1.2-8] the will is published when the connection closes
        # without DISCONNECT; at the will QoS [MQTT-3.1.2-14] and with the
        # will retain flag honoured [MQTT-3.1.2-17].
        topic = "will/" + self.tag
        w = self.watcher([topic + "/#"])
        for i, how in enumerate(("close", "reset", "shutdown")):
            with self.subTest(how=how):
                s = self.client(cid_on(self.uid("will"), i % 2),
                                will=("%s/%s" % (topic, how),
                                      b"gone-" + how.encode(), 1, False))
                if how == "close":
                    s.close()
                elif how == "reset":
                    close_with_reset(s)
                else:
                    s.shutdown(socket.SHUT_WR)
                p = self.next_publish(w)
                self.assertEqual((p["topic"], p["payload"]),
                                 (("%s/%s" % (topic, how)).encode(),
                                  b"gone-" + how.encode()))

    def test_will_not_sent_after_disconnect(self):
        # [MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT deletes the will.
        topic = "nowill/" + self.tag
        w = self.watcher([topic + "/#"])
        for worker in (0, 1):
            s = self.client(cid_on(self.uid("nowill"), worker),
                            will=(topic + "/w", b"must-not-arrive", 0,
                                  False))
            s.sendall(DISCONNECT)
            # [MQTT-3.14.4-1] the server closes after DISCONNECT
            self.assertTrue(expect_closed(s))
            s.close()
        self.assert_not_delivered(w, topic + "/marker", b"must-not-arrive")

    def test_will_on_protocol_violation(self):
        # [MQTT-3.1.2-8] a close for a protocol error publishes the will;
        # a malformed DISCONNECT (flags 0001) is not a DISCONNECT.
        topic = "pvwill/" + self.tag
        w = self.watcher([topic + "/#"])
        for name, data in (("bad-disconnect", b"\xe1\x00"),
                           ("qos3", b"\x36\x05\x00\x01a\x00\x01"),
                           ("second-connect", connect_packet("x"))):
            with self.subTest(name):
                s = self.client(will=(topic + "/" + name,
                                      name.encode(), 0, False))
                s.sendall(data)
                self.assert_closed_silently(s)
                p = self.next_publish(w)
                self.assertEqual(p["payload"], name.encode())

    def test_will_retained(self):
        # [MQTT-3.1.2-17] will retain 1: published as a retained message.
        topic = "rwill/" + self.tag
        w = self.watcher([topic])
        s = self.client(will=(topic, b"retained-will", 1, True))
        close_with_reset(s)
        # once a watcher saw the will, a new subscription gets it as a
        # retained message (retain flag set [MQTT-3.3.1-8])
        self.assertEqual(self.next_publish(w)["payload"], b"retained-will")
        late = self.client()
        self.assertEqual(self.subscribe(late, [(topic, 1)]), [1])
        got = self.sync(late)
        self.assertEqual([(p["first"] & 0x0F, p["payload"]) for p in got],
                         [(0x03, b"retained-will")])
        self.publish(topic, b"", retain=True)  # clean up

    def test_will_topic_with_wildcard(self):
        # The will topic is a topic name: no wildcards [MQTT-3.3.2-2], not
        # empty [MQTT-4.7.3-1]; closed without CONNACK.
        for topic in ("w/+", "w/#", ""):
            with self.subTest(topic=topic):
                s = self.sock()
                s.sendall(connect_packet(self.uid(),
                                         will=(topic, b"x", 0, False)))
                self.assert_closed_silently(s)

    def test_dollar_topics(self):
        # [MQTT-4.7.2-1] '#' and '+' at the first level do not match
        # topics starting with '$'; "$foo/#" does.
        tag = self.tag
        hash_sub = self.watcher(["#"], worker=0)
        plus_sub = self.watcher(["+/bar" + tag], worker=1)
        dollar_sub = self.watcher(["$foo/#"], worker=1)
        self.publish("$foo/bar" + tag, b"dollar-msg", qos=1)
        p = self.next_publish(dollar_sub)
        self.assertEqual((p["topic"], p["payload"]),
                         (("$foo/bar" + tag).encode(), b"dollar-msg"))
        self.assert_not_delivered(hash_sub, "mk/bar" + tag, b"dollar-msg")
        self.assert_not_delivered(plus_sub, "mk/bar" + tag, b"dollar-msg")
        # a retained '$' message is not sent for a "#" subscription either
        self.publish("$foo/ret" + tag, b"dollar-ret", retain=True)
        s = self.client()
        self.assertEqual(self.subscribe(s, [("#", 0)]), [0])
        self.assertNotIn(b"dollar-ret",
                         [p["payload"] for p in self.sync(s)])
        self.assertEqual(self.subscribe(s, [("$foo/+", 0)], pid=2), [0])
        self.assertIn(b"dollar-ret", [p["payload"] for p in self.sync(s)])
        self.publish("$foo/ret" + tag, b"", retain=True)


# $SYS is readable only by an authenticated user with an ACL grant: the
# watcher logs in as one.  Everyone else may use every other topic.
SYS_ADMIN, SYS_ADMIN_PW = "sys-admin", "Sy5#Adm1n!Watch8"


class SysTests(RawTestCase):
    broker_config = "password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
    broker_files = {
        "passwd": password_file_text({SYS_ADMIN: SYS_ADMIN_PW}),
        "acl": ("topic readwrite #\n"
                "user %s\n"
                "topic readwrite #\n"
                "topic readwrite $SYS/#\n" % SYS_ADMIN),
    }

    def admin(self, worker=0):
        return self.client(cid_on(self.uid("admin"), worker),
                           user=SYS_ADMIN, password=SYS_ADMIN_PW)

    def test_clients_cannot_publish_to_sys(self):
        # docs/mqtt.md: $SYS belongs to the broker; a client's publish
        # there is acknowledged (every QoS flow completes) but not sent,
        # whether it comes from an anonymous client or from a user the
        # ACL grants $SYS/# to.
        topic = "$SYS/moat-test/" + self.tag
        w = self.admin()
        filters = [topic, "$SYS/moat-test/#", "sysmk/" + self.tag]
        self.assertEqual(self.subscribe(w, [(f, 0) for f in filters]),
                         [0, 0, 0])
        self.sync(w)
        for s in (self.client(), self.admin(worker=1)):
            s.sendall(publish_packet(topic, b"forged-0"))
            s.sendall(publish_packet(topic, b"forged-1", qos=1, pid=11,
                                     retain=True))
            self.expect(s, ack("puback", 11))
            s.sendall(publish_packet(topic, b"forged-2", qos=2, pid=12))
            self.expect(s, ack("pubrec", 12))
            s.sendall(ack("pubrel", 12))
            self.expect(s, ack("pubcomp", 12))
        seen = [p["payload"] for p in self.until_marker(w, "sysmk/" +
                                                         self.tag)]
        self.assertEqual([x for x in seen if x.startswith(b"forged")], [])
        late = self.admin()
        self.assertEqual(self.subscribe(late, [(topic, 0)]), [0])
        self.assertEqual(self.sync(late), [])


class KeepAliveTests(RawTestCase):
    def test_keepalive_expiry_closes_and_sends_will(self):
        # [MQTT-3.1.2-24] no packet within 1.5 x keep-alive: the server
        # disconnects, and the will is published [MQTT-3.1.2-8].
        topic = "kawill/" + self.tag
        w = self.watcher([topic])
        s = self.client(keepalive=1, will=(topic, b"timed-out", 0, False))
        closed, data = read_until_close(s, timeout=5.0)
        self.assertTrue(closed, "not closed within 5 s of silence")
        self.assertEqual(data, b"")
        p = self.next_publish(w)
        self.assertEqual(p["payload"], b"timed-out")

    def test_keepalive_respected_while_pinging(self):
        # [MQTT-3.1.2-23] a client that sends PINGREQ well within its
        # keep-alive stays connected.
        s = self.client(keepalive=2)  # closed after 3 s of silence
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            s.sendall(PINGREQ)
            self.expect(s, PINGRESP)
            time.sleep(0.3)
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)

    def test_keepalive_zero_and_above_max_accepted(self):
        # docs/mqtt.md: MQTT 3.1.1 cannot be told a shorter keep-alive, so
        # 0 (none, legal [MQTT-3.1.2-10]) and values above max_keepalive
        # (default 300) are accepted as mosquitto accepts them; TCP
        # keep-alive probes watch the peer.
        for ka in (0, 300, 301, 3600, 65535):
            with self.subTest(keepalive=ka):
                s = self.client(keepalive=ka)
                s.sendall(PINGREQ)
                self.expect(s, PINGRESP)


# ---- brokers with limits -------------------------------------------------

class LimitTests(RawTestCase):
    broker_config = ("max_keepalive 60\n"
                     "connect_timeout 1\n"
                     "max_packet_size 1k\n"
                     "max_subscriptions 3\n"
                     "max_topic_levels 4\n"
                     "max_inflight_messages 2\n"
                     "max_queued_messages 3\n")

    def test_max_packet_size_boundary(self):
        # max_packet_size counts the whole packet, header included.
        topic = "edge/" + self.tag
        w = self.watcher([topic])
        body_len = 1024 - 3  # 1 type byte + 2 remaining-length bytes
        payload = b"e" * (body_len - 2 - len(topic))
        exact = publish_packet(topic, payload)
        self.assertEqual(len(exact), 1024)
        self.publish(topic, payload)
        self.assertEqual(self.next_publish(w)["payload"], payload)
        s = self.client()
        send_quietly(s, publish_packet(topic, payload + b"!"))  # 1025
        closed, data = read_until_close(s)
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        self.assert_not_delivered(w, topic, payload + b"!")

    def test_inflight_window_keeps_order(self):
        # max_inflight_messages 2: two unacknowledged QoS 1 messages at a
        # time, the rest follow as acks come, in order [MQTT-4.6.0-6].
        # Publisher and subscriber share a worker, so routing is done when
        # the PUBACKs are in.
        topic = "win/" + self.tag
        s = self.client(cid_on(self.uid("winsub"), 0))
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        p = self.client(cid_on(self.uid("winpub"), 0))
        for i in range(5):
            p.sendall(publish_packet(topic, b"w%d" % i, qos=1, pid=i + 1))
        for i in range(5):
            self.expect(p, ack("puback", i + 1))
        got = []
        for _ in range(2):
            first, body = read_packet(s)
            got.append(parse_publish(first, body))
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)  # window full: nothing more yet
        for i in range(3):
            s.sendall(ack("puback", got[i]["pid"]))
            first, body = read_packet(s)
            got.append(parse_publish(first, body))
        self.assertEqual([m["payload"] for m in got],
                         [b"w%d" % i for i in range(5)])
        self.assertEqual(len({m["pid"] for m in got[:2]}), 2)
        for m in got[3:]:
            s.sendall(ack("puback", m["pid"]))
        self.assertEqual(self.sync(s), [])

    def test_offline_queue_limit(self):
        # max_queued_messages 3: QoS 1 messages for an offline session are
        # queued up to the limit (the oldest kept), the rest dropped.
        topic = "offq/" + self.tag
        cid = cid_on(self.uid("offq"), 1)
        s = self.client(cid, clean=False)
        self.assertEqual(self.subscribe(s, [(topic, 1)]), [1])
        s.sendall(DISCONNECT)
        self.assertTrue(expect_closed(s))
        p = self.client(cid_on(self.uid("offpub"), 1))
        for i in range(6):
            p.sendall(publish_packet(topic, b"q%d" % i, qos=1, pid=i + 1))
        for i in range(6):
            self.expect(p, ack("puback", i + 1))
        s = self.client(cid, clean=False, present=True)
        got = []
        while len(got) < 3:
            got.append(self.next_publish(s)["payload"])
        self.assertEqual(got, [b"q0", b"q1", b"q2"])
        self.assertEqual(self.sync(s), [])
        s.sendall(DISCONNECT)
        s = self.client(cid, clean=True)
        s.sendall(DISCONNECT)

    def test_slow_consumer_does_not_block_others(self):
        # A subscriber that does not read: the publisher is not held up,
        # other clients are served, and what the slow one gets later is
        # in publish order [MQTT-4.6.0-6] (some messages may be dropped).
        topic = "slow/" + self.tag
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socks.append(slow)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(TIMEOUT)
        slow.connect(("127.0.0.1", self.port))
        slow.sendall(connect_packet(cid_on(self.uid("slow"), 0)))
        self.expect(slow, CONNACK_OK)
        self.assertEqual(self.subscribe(slow, [(topic, 0)]), [0])
        p = self.client(cid_on(self.uid("flood"), 1))
        n = 3000
        chunk = b"".join(publish_packet(topic, b"%06d" % i + b"." * 900)
                         for i in range(n))
        p.sendall(chunk)
        p.sendall(PINGREQ)
        self.expect(p, PINGRESP)
        self.publish(self.guard_topic, b"during-flood", qos=1)
        self.assertEqual(self.next_publish(self.guard)["payload"],
                         b"during-flood")
        slow.sendall(PINGREQ)
        seqs = []
        while True:
            first, body = read_packet(slow)
            if first == 0xD0:
                break
            seqs.append(int(parse_publish(first, body)["payload"][:6]))
        slow.settimeout(0.5)
        try:
            while True:
                first, body = read_packet(slow)
                seqs.append(int(parse_publish(first, body)["payload"][:6]))
        except (socket.timeout, TimeoutError):
            pass
        self.assertTrue(seqs, "the slow consumer got nothing")
        self.assertEqual(seqs, sorted(set(seqs)), "out of order")
        self.assertLess(seqs[-1], n)

    def test_keepalive_above_max_keepalive(self):
        # 3.1.1 keep-alives above max_keepalive (60 here) are accepted:
        # the client keeps the one it asked for [MQTT-3.1.2-24].
        for ka in (61, 120, 65535):
            with self.subTest(keepalive=ka):
                s = self.client(keepalive=ka)
                s.sendall(PINGREQ)
                self.expect(s, PINGRESP)
        s = self.client(keepalive=60)
        s.sendall(PINGREQ)
        self.expect(s, PINGRESP)

    def test_connect_timeout(self):
        # connect_timeout 1: a connection that sends nothing, or only part
        # of a CONNECT, is closed (within 5 s here).
        silent = self.sock()
        partial = self.sock()
        partial.sendall(connect_packet(self.uid())[:5])
        http = self.sock()  # "GE": a PUBACK header still waiting for data
        http.sendall(b"GET / HTTP/1.0\r\n\r\n")
        for s in (silent, partial, http):
            closed, data = read_until_close(s, timeout=5.0)
            self.assertTrue(closed, "not closed within 5 s")
            self.assertEqual(data, b"")

    def test_packet_larger_than_max_packet_size(self):
        topic = "big/" + self.tag
        w = self.watcher([topic])
        # fits: 900 bytes of payload
        self.publish(topic, b"x" * 900)
        self.assertEqual(self.next_publish(w)["payload"], b"x" * 900)
        # too big: closed, not delivered
        s = self.client()
        send_quietly(s, publish_packet(topic, b"B" * 2000))
        closed, data = read_until_close(s)
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        # a huge declared length is refused at once, not waited for
        s = self.client()
        send_quietly(s, b"\x30\xff\xff\xff\x7f" + mqtt_str(topic))
        self.assert_closed_silently(s)
        s = self.sock()
        send_quietly(s, b"\x10\xff\xff\xff\x7f")
        self.assert_closed_silently(s)
        seen = self.until_marker(w, topic)
        self.assertEqual([p for p in seen if p["payload"] == b"B" * 2000],
                         [])

    def test_max_subscriptions(self):
        # SUBACK 0x80 (failure, [MQTT-3.9.3-2]) for filters beyond
        # max_subscriptions; replacing an existing one still works.
        s = self.client()
        self.assertEqual(self.subscribe(s, [("ms/a", 0), ("ms/b", 1),
                                            ("ms/c", 2), ("ms/d", 1),
                                            ("ms/e", 0)]),
                         [0, 1, 2, 0x80, 0x80])
        self.assertEqual(self.subscribe(s, [("ms/b", 2), ("ms/f", 0)],
                                        pid=2), [2, 0x80])
        s.sendall(unsubscribe_packet(3, ["ms/a"]))
        self.expect(s, ack("unsuback", 3))
        self.assertEqual(self.subscribe(s, [("ms/f", 0)], pid=4), [0])

    def test_max_topic_levels(self):
        s = self.client()
        self.assertEqual(self.subscribe(s, [("a/b/c/d", 0),
                                            ("a/b/c/d/e", 0)]), [0, 0x80])
        s.sendall(publish_packet("a/b/c/d/e", b"deep"))
        closed, _ = read_until_close(s)
        self.assertTrue(closed)


if __name__ == "__main__":
    unittest.main()
