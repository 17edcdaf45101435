#!/usr/bin/env python3
"""Write the seed corpus for fuzz_mqtt_codec into corpus/mqtt_codec/.

The first byte of each file selects the harness entry point (see the enum
in fuzz_mqtt_codec.c); the rest is that entry point's input.  Re-run after
changing the selector layout:  python3 tests/fuzz/gen_corpus.py
"""
import os
import struct

CONNECT, PUBLISH, ACK, SUBSCRIBE, UNSUBSCRIBE, CONNACK, FIXED, UTF8, TOPIC, \
    STREAM = range(10)


def u16(v):
    return struct.pack(">H", v)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u16(len(b)) + b


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_body(name="MQTT", level=4, flags=0x02, keepalive=60, cid="c",
                 will=None, user=None, password=None):
    b = s(name) + bytes([level, flags]) + u16(keepalive) + s(cid)
    if will:
        b += s(will[0]) + s(will[1])
    if user is not None:
        b += s(user)
    if password is not None:
        b += s(password)
    return b


seeds = {
    "connect_min_311": bytes([CONNECT]) + connect_body(),
    "connect_31": bytes([CONNECT]) + connect_body("MQIsdp", 3, 0x00, 10,
                                                   "legacy-client"),
    "connect_full": bytes([CONNECT]) + connect_body(
        flags=0xF6, cid="client-1", will=("will/topic", b"\x00bye"),
        user="alice", password=b"s3cr\x00t"),
    "connect_v5": bytes([CONNECT]) + connect_body(level=5),
    "publish_q0": bytes([PUBLISH, 0x00]) + s("a/b") + b"hello",
    "publish_q1_retain": bytes([PUBLISH, 0x03]) + s("sport/tennis") +
    u16(7) + b"\x00\x01\x02",
    "publish_q2_dup": bytes([PUBLISH, 0x0C]) + s("$SYS/x") + u16(65535),
    "ack": bytes([ACK]) + u16(0x1234),
    "subscribe": bytes([SUBSCRIBE]) + u16(10) + s("a/b") + b"\x00" +
    s("sport/#") + b"\x01" + s("+/x/+") + b"\x02",
    "unsubscribe": bytes([UNSUBSCRIBE]) + u16(11) + s("a/b") + s("#"),
    "connack": bytes([CONNACK, 0x01, 0x00]),
    "fixed_4byte": bytes([FIXED, 0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
    "fixed_2byte": bytes([FIXED, 0x82, 0x80, 0x01]),
    "utf8_mixed": bytes([UTF8]) + "h\u00e9llo \u20ac \U0001F600".encode(),
    "utf8_bad": bytes([UTF8]) + b"a\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80",
    "topic_plus_hash": bytes([TOPIC, 17]) + b"sport/+/player1/#" +
    b"sport/tennis/player1/ranking",
    "topic_sys": bytes([TOPIC, 6]) + b"$SYS/#" + b"$SYS/monitor/Clients",
    "topic_empty_levels": bytes([TOPIC, 3]) + b"+/+" + b"/finance",
}

stream = (packet(0x10, connect_body(flags=0xC2, user="u", password=b"p")) +
          packet(0x82, u16(1) + s("a/#") + b"\x01") +
          packet(0x32, s("a/b") + u16(2) + b"payload") +
          packet(0x40, u16(2)) +
          packet(0x62, u16(3)) +
          packet(0xA2, u16(4) + s("a/#")) +
          packet(0xC0, b"") +
          packet(0xE0, b""))
seeds["stream"] = bytes([STREAM]) + stream

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                   "mqtt_codec")
os.makedirs(out, exist_ok=True)
for name, data in sorted(seeds.items()):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
