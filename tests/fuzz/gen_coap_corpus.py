#!/usr/bin/env python3
"""Write the seed corpora of fuzz_coap_codec (corpus/coap_codec/) and
fuzz_coap_client (corpus/coap_client/).

The first byte of each file selects the harness entry point (enum target in
fuzz_coap_codec.c); the rest is that entry point's input.  Re-run after
changing the layout:  python3 tests/fuzz/gen_coap_corpus.py
"""
import os
import struct

PARSE, URI, PCT, BUILD, OBSERVE = range(5)


def opt(delta, value):
    """One option with the extended delta/length forms of RFC 7252 §3.1."""
    def nib(v):
        if v < 13:
            return v, b""
        if v < 269:
            return 13, bytes([v - 13])
        return 14, struct.pack(">H", v - 269)
    dn, de = nib(delta)
    ln, le = nib(len(value))
    return bytes([dn << 4 | ln]) + de + le + value


def msg(typ, code, mid, token=b"", opts=b"", payload=b""):
    head = bytes([0x40 | typ << 4 | len(token), code]) + struct.pack(">H", mid)
    return head + token + opts + (b"\xff" + payload if payload else b"")


SEEDS = {
    "get_temperature": (PARSE, msg(0, 1, 0x7d34, opts=opt(11, b"temperature"))),
    "ack_content": (PARSE, msg(2, 0x45, 0x7d34, payload=b"22.3 C")),
    "ping": (PARSE, msg(0, 0, 0x1234)),
    "rst": (PARSE, msg(3, 0, 0x1234)),
    "observe_get": (PARSE, msg(0, 1, 7, b"\x01\x02\x03\x04\x05\x06\x07\x08",
                               opt(6, b"") + opt(5, b"ps") + opt(0, b"a"))),
    "notification": (PARSE, msg(1, 0x45, 8, b"\xaa" * 8,
                                opt(6, b"\x00\x01\x02") + opt(6, b"\x32")
                                + opt(2, b"\x3c"), b"{\"v\":1}")),
    "block2": (PARSE, msg(2, 0x45, 9, b"\x01", opt(12, b"\x2a")
                          + opt(11, b"\x1e") + opt(5, b"\x00\x28\x00"),
                          b"x" * 64)),
    "block1_size1": (PARSE, msg(0, 3, 10, b"\x02", opt(11, b"big")
                                + opt(16, b"\x0e") + opt(33, b"\x00\x28\x00"),
                                b"y" * 64)),
    "echo_401": (PARSE, msg(2, 0x81, 11, b"\x03",
                            opt(252, bytes(range(16))))),
    "request_tag": (PARSE, msg(0, 2, 12, b"\x04",
                               opt(27, b"\x0e") + opt(225, b"\x01")
                               + opt(40, b"\x01\x02"))),
    "big_option": (PARSE, msg(0, 2, 13, b"", opt(11, b"p" * 300))),
    "etag_maxage": (PARSE, msg(2, 0x45, 14, b"", opt(4, b"\x01\x02")
                               + opt(10, b"\x00\x00\x0e\x10"), b"z")),
    "unknown_critical": (PARSE, msg(0, 1, 15, b"", opt(9, b""))),
    "bad_nibble15": (PARSE, b"\x40\x01\x00\x01\xf0"),
    "bad_marker": (PARSE, b"\x40\x01\x00\x01\xff"),
    "uri_simple": (URI, b"coap://127.0.0.1/ps/sensors/temp"),
    "uri_query": (URI, b"coaps://[::1]:5684/a%2Fb/%7E?x=1&y=%26&z"),
    "uri_host": (URI, b"coap://Example.COM:61616/.well-known/core"),
    "uri_dots": (URI, b"coap://h/%2E%2E/%2e/.a/"),
    "uri_bad_userinfo": (URI, b"coap://u:p@h/"),
    "pct": (PCT, b"a/b c&d\x00\xff%"),
    "build": (BUILD, b"\x00\x01\x00\x00" + b"\x0b\x03abc" + b"\x01\x00"
              + b"\x81\x02\x00\x01" + b"payload"),
    "observe": (OBSERVE, b"\xff\xff\xff\x00\x00\x03\x00\x00\x00\x0b"),
}

# fuzz_coap_client: a request selector byte, then server datagrams, each
# as a 2-byte length, flags (1: take the request's id and token, 2: make
# it an ACK) and the bytes (the header and token placeholders are
# overwritten when flag 1 is set).
TOK = b"\x00" * 8


def dgram(flags, data):
    return struct.pack(">H", len(data)) + bytes([flags]) + data


def resp(code, opts=b"", payload=b"", typ=2):
    return msg(typ, code, 0, TOK, opts, payload)


def block2(num, more, szx=6):
    v = num << 4 | (8 if more else 0) | szx
    return bytes([v]) if v < 256 else struct.pack(">H", v)


CLIENT_SEEDS = {
    "get_piggyback": bytes([0]) + dgram(3, resp(0x45, payload=b"22.3 C")),
    "get_separate": bytes([0]) + dgram(3, msg(2, 0, 0, b"", b""))
    + dgram(1, resp(0x45, payload=b"later", typ=0)),
    "get_block2": bytes([0])
    + b"".join(dgram(3, resp(0x45, opt(23, block2(i, i < 2)),
                             b"b" * (1024 if i < 2 else 10)))
               for i in range(3)),
    "get_echo": bytes([0]) + dgram(3, resp(0x81, opt(252, b"\x01" * 8)))
    + dgram(3, resp(0x45, payload=b"ok")),
    "observe": bytes([32]) + dgram(3, resp(0x45, opt(6, b"\x05"), b"n0"))
    + b"".join(dgram(1, resp(0x45, opt(6, bytes([6 + i])), b"n", typ=1))
               for i in range(3)),
    "put_block1": bytes([1 | 3 << 2])
    + b"".join(dgram(3, resp(0x5f, opt(27, bytes([i << 4 | 8 | 6]))))
               for i in range(2))
    + dgram(3, resp(0x44, opt(27, bytes([2 << 4 | 6])))),
    "post_small": bytes([2 | 1 << 2 | 16]) + dgram(3, resp(0x41)),
    "get_4_04": bytes([0]) + dgram(3, resp(0x84, payload=b"nope")),
    "get_rst": bytes([0]) + dgram(1, msg(3, 0, 0)),
    "get_garbage": bytes([0]) + dgram(0, b"\xff\x00") + dgram(0, b"")
    + dgram(3, resp(0x45, payload=b"x")),
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "coap_codec")
os.makedirs(out, exist_ok=True)
for name, (sel, data) in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([sel]) + data)
print(f"wrote {len(SEEDS)} seeds to {out}")
out = os.path.join(here, "corpus", "coap_client")
os.makedirs(out, exist_ok=True)
for name, data in CLIENT_SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(CLIENT_SEEDS)} seeds to {out}")
