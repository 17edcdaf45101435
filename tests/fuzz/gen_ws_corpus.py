#!/usr/bin/python3
"""Write the seed corpus for fuzz_ws into corpus/ws/ (see fuzz_ws.c for
the input layout: the first byte picks the target)."""
import os

REQ = (b"GET /mqtt HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n"
       b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       b"Sec-WebSocket-Protocol: chat, mqtt\r\nOrigin: http://a.example\r\n"
       b"X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n")


def frame(op, payload=b"", fin=True, mask=b"\x01\x02\x03\x04"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0xFE]) + n.to_bytes(2, "big")
    else:
        head += bytes([0xFF]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"c"
frames = (frame(2, connect[:5]) + frame(2, connect[5:]) +
          frame(9, b"ping") + frame(2, b"\x30\x05", fin=False) +
          frame(0, b"\x00\x01t", fin=False) + frame(10, b"") +
          frame(0, b"xy") + frame(8, b"\x03\xe8bye"))
seeds = {
    "request": b"\x00" + REQ,
    "request-origin-b": b"\x00" + REQ.replace(b"http://a.example",
                                              b"http://b:8080"),
    "answer-101": b"\x00HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
    b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
    b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
    "frame-binary": b"\x01" + frame(2, b"\xc0\x00"),
    "frame-16": b"\x01" + frame(2, b"z" * 300),
    "frame-64": b"\x01" + bytes([0x82, 0xFF]) + (1 << 40).to_bytes(8, "big")
    + b"\x00" * 4,
    "frame-close": b"\x01" + frame(8, b"\x03\xe9going"),
    "layer-frames": b"\x02\x00" + frames,
    "layer-own-request": b"\x02\x01" + REQ + frames,
    "layer-text": b"\x02\x02" + frame(1, b"{}"),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                   "ws")
os.makedirs(out, exist_ok=True)
for name, data in sorted(seeds.items()):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))
