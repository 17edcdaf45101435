#!/usr/bin/env python3
"""Write the seed corpus for fuzz_mqtt_codec into corpus/mqtt_codec/.

The first byte of each file selects the harness entry point (see the enum
in fuzz_mqtt_codec.c); the rest is that entry point's input.  Re-run after
changing the selector layout:  python3 tests/fuzz/gen_corpus.py
"""
import os
import struct

CONNECT, PUBLISH, ACK, SUBSCRIBE, UNSUBSCRIBE, CONNACK, FIXED, UTF8, TOPIC, \
    STREAM, PROPS, CONNECT_V, PUBLISH_V, ACK_V, SUB_V, DISCONNECT_V, AUTH, \
    STREAM5 = range(18)

# property contexts (enum moat_mqtt_prop_ctx)
PCTX = dict(CONNECT=0, WILL=1, CONNACK=2, PUBLISH=3, ACK=4, SUBSCRIBE=5,
            SUBACK=6, UNSUBSCRIBE=7, UNSUBACK=8, DISCONNECT=9, AUTH=10)


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


def u32(v):
    return struct.pack(">I", v)


# MQTT 5 properties: identifier byte + value
def p_u8(i, v):
    return bytes([i, v])


def p_u16(i, v):
    return bytes([i]) + u16(v)


def p_u32(i, v):
    return bytes([i]) + u32(v)


def p_var(i, v):
    return bytes([i]) + varint(v)


def p_str(i, v):
    return bytes([i]) + s(v)


def p_pair(k, v):
    return bytes([0x26]) + s(k) + s(v)


def block(*props):
    b = b"".join(props)
    return varint(len(b)) + b


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

# ---- MQTT 5 ----
PROPS_BY_CTX = {
    "CONNECT": [p_u32(0x11, 3600), p_u16(0x21, 20), p_u32(0x27, 1024),
                p_u16(0x22, 10), p_u8(0x19, 1), p_u8(0x17, 0),
                p_str(0x15, "SCRAM"), p_str(0x16, b"\x01\x02"),
                p_pair("k", "v")],
    "WILL": [p_u32(0x18, 5), p_u8(0x01, 1), p_u32(0x02, 60),
             p_str(0x03, "text/plain"), p_str(0x08, "r/t"),
             p_str(0x09, b"\x00\x01"), p_pair("k", "v")],
    "CONNACK": [p_u32(0x11, 0), p_str(0x12, "auto-1"), p_u16(0x13, 30),
                p_str(0x15, "m"), p_str(0x16, b"d"), p_str(0x1A, "ri"),
                p_str(0x1C, "h:1"), p_str(0x1F, "ok"), p_u16(0x21, 1),
                p_u16(0x22, 0), p_u8(0x24, 1), p_u8(0x25, 1),
                p_u32(0x27, 99), p_u8(0x28, 1), p_u8(0x29, 0), p_u8(0x2A, 1),
                p_pair("", "")],
    "PUBLISH": [p_u8(0x01, 0), p_u32(0x02, 1), p_str(0x03, "ct"),
                p_str(0x08, "resp"), p_str(0x09, b"\xff"), p_var(0x0B, 1),
                p_var(0x0B, 268435455), p_u16(0x23, 3), p_pair("a", "b"),
                p_pair("a", "c")],
    "ACK": [p_str(0x1F, "why"), p_pair("k", "v")],
    "SUBSCRIBE": [p_var(0x0B, 16384), p_pair("k", "v")],
    "SUBACK": [p_str(0x1F, "r"), p_pair("k", "v")],
    "UNSUBSCRIBE": [p_pair("k", "v")],
    "UNSUBACK": [p_str(0x1F, "r")],
    "DISCONNECT": [p_u32(0x11, 0), p_str(0x1F, "bye"), p_str(0x1C, "o:1"),
                   p_pair("k", "v")],
    "AUTH": [p_str(0x15, "SCRAM"), p_str(0x16, b"\x00"), p_str(0x1F, "go"),
             p_pair("k", "v")],
}
for ctx, props in PROPS_BY_CTX.items():
    seeds["props_" + ctx.lower()] = bytes([PROPS, PCTX[ctx]]) + block(*props)
seeds["props_dup"] = bytes([PROPS, PCTX["CONNECT"]]) + block(
    p_u16(0x21, 1), p_u16(0x21, 2))
seeds["props_nonminimal_id"] = bytes([PROPS, PCTX["PUBLISH"]]) + \
    varint(3) + b"\x81\x00\x01"


def connect5_body(flags=0x02, props=(), will=None, will_props=(), user=None,
                  password=None, cid="c5"):
    b = s("MQTT") + bytes([5, flags]) + u16(60) + block(*props) + s(cid)
    if will:
        b += block(*will_props) + s(will[0]) + s(will[1])
    if user is not None:
        b += s(user)
    if password is not None:
        b += s(password)
    return b


connect5_full = connect5_body(0xEE, PROPS_BY_CTX["CONNECT"], ("w/t", b"bye"),
                              PROPS_BY_CTX["WILL"], "u", b"p")
seeds["connect5_full"] = bytes([CONNECT_V, 1]) + connect5_full
seeds["connect5_min"] = bytes([CONNECT_V, 1]) + connect5_body()
seeds["connect5_pass_only"] = bytes([CONNECT_V, 1]) + connect5_body(
    0x42, password=b"secret")
seeds["connect5_not_allowed"] = bytes([CONNECT_V, 0]) + connect5_body()
seeds["connect_v_311"] = bytes([CONNECT_V, 1]) + connect_body(
    flags=0xF6, will=("w", b"x"), user="u", password=b"p")


def publish5_body(topic, pid=None, props=(), payload=b""):
    b = s(topic)
    if pid is not None:
        b += u16(pid)
    return b + block(*props) + payload


seeds["publish5_q1"] = bytes([PUBLISH_V, 0x03]) + publish5_body(
    "a/b", 7, [p_u8(0x01, 1), p_u32(0x02, 10), p_str(0x03, "text/plain"),
               p_str(0x08, "resp/x"), p_str(0x09, b"\x00\x01"),
               p_u16(0x23, 3), p_pair("k", "v")], b"hello")
seeds["publish5_alias_only"] = bytes([PUBLISH_V, 0x00]) + publish5_body(
    "", None, [p_u16(0x23, 1)], b"x")
seeds["publish5_q2_dup"] = bytes([PUBLISH_V, 0x0C]) + publish5_body(
    "t", 65535)
seeds["publish_v_311"] = bytes([PUBLISH_V, 0x12]) + s("a/b") + u16(1) + b"p"
seeds["ack5_short"] = bytes([ACK_V, 0]) + u16(1)
seeds["ack5_reason"] = bytes([ACK_V, 1]) + u16(2) + b"\x10"
seeds["ack5_props"] = bytes([ACK_V, 2]) + u16(3) + b"\x92" + block(
    p_str(0x1F, "not found"), p_pair("k", "v"))
seeds["ack_v_311"] = bytes([ACK_V, 4]) + u16(4)
seeds["sub5"] = bytes([SUB_V, 0]) + u16(10) + block(
    p_var(0x0B, 42), p_pair("k", "v")) + s("a/b") + b"\x00" + \
    s("$share/g/x") + b"\x15" + s("+/#") + b"\x2e"
seeds["unsub5"] = bytes([SUB_V, 1]) + u16(11) + block(p_pair("k", "v")) + \
    s("a/b") + s("#")
seeds["sub_v_311"] = bytes([SUB_V, 2]) + u16(12) + s("a") + b"\x02"
seeds["disconnect5_empty"] = bytes([DISCONNECT_V, 0])
seeds["disconnect5"] = bytes([DISCONNECT_V, 0]) + b"\x9d" + block(
    *PROPS_BY_CTX["DISCONNECT"])
seeds["auth5"] = bytes([AUTH, 0x18]) + block(*PROPS_BY_CTX["AUTH"])
seeds["auth5_empty"] = bytes([AUTH])

stream5 = (packet(0x10, connect5_full) +
           packet(0x82, u16(1) + block(p_var(0x0B, 5)) + s("a/#") + b"\x05") +
           packet(0x32, publish5_body("a/b", 2, [p_u16(0x23, 1)], b"pl")) +
           packet(0x30, publish5_body("", None, [p_u16(0x23, 1)], b"p2")) +
           packet(0x40, u16(2)) +
           packet(0x50, u16(3) + b"\x80" + block(p_str(0x1F, "no"))) +
           packet(0x62, u16(3) + b"\x00") +
           packet(0xA2, u16(4) + block() + s("a/#")) +
           packet(0xF0, b"\x19" + block(p_str(0x15, "m"))) +
           packet(0xE0, b"\x04" + block(p_u32(0x11, 10))))
seeds["stream5"] = bytes([STREAM5]) + stream5

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
