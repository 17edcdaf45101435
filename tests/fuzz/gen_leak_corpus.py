#!/usr/bin/env python3
"""Write the seed corpus for fuzz_leak into corpus/leak/.

Each seed is a mode byte (see fuzz_leak.c) followed by a message taken
from the labelled leak corpora (tests/leak/corpus/*.jsonl): every fourth
message, with the four db modes in turn, plus a few hand-made edge cases.
Re-run after changing the corpora:  python3 tests/fuzz/gen_leak_corpus.py
(it also writes the seeds of fuzz_leak_decode into corpus/leak_decode/)
"""
import glob
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "leak")
os.makedirs(out, exist_ok=True)
for f in glob.glob(os.path.join(out, "*")):
    os.remove(f)

seeds = []
for path in sorted(glob.glob(os.path.join(here, "..", "leak", "corpus",
                                          "*.jsonl"))):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    for i, o in enumerate(lines):
        if i % 4 == 0:
            seeds.append(o["payload"].encode())

seeds += [
    b"", b"{", b"[", b"{\"a\":" * 40, b"[" * 80 + b"]" * 80,
    b"{\"password\":\"\\u0031\\\"2345\"}",
    b"{\"lat\":48.8566,\"lon\":2.3522,\"x\":{\"ssid\":\"n\",\"psk\":\"p4ss!\"}}",
    b"-----BEGIN RSA PRIVATE KEY-----" * 4,
    b"ey" + b"A" * 20 + b".ey" + b"B" * 20 + b"." + b"C" * 20,
    b"\xc3\xa9\xe2\x82\xac\x00\xff card 4111 1111 1111 1111",
    b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
]

for i, s in enumerate(seeds):
    with open(os.path.join(out, "seed%03d" % i), "wb") as f:
        f.write(bytes([i % 8]) + s)
print("%d seeds -> %s" % (len(seeds), out))

# Seeds for fuzz_leak_decode (corpus/leak_decode/): a mode byte (0: the
# bytes are CBOR, 1: they are base64-encoded into {"data": ...}), then
# bytes: CBOR maps and arrays (SenML labels, indefinite lengths, floats of
# three sizes, tags, byte strings) and texts that hold findings.
import struct  # noqa: E402


def ctext(s):
    b = s.encode()
    return (bytes([0x60 + len(b)]) if len(b) < 24
            else bytes([0x78, len(b)])) + b


def cdouble(x):
    return b"\xfb" + struct.pack(">d", x)


dec_out = os.path.join(here, "corpus", "leak_decode")
os.makedirs(dec_out, exist_ok=True)
for f in glob.glob(os.path.join(dec_out, "*")):
    os.remove(f)
dec_seeds = [
    b"\x00\xa3" + ctext("lat") + cdouble(52.520081) + ctext("lon")
    + cdouble(13.404954) + ctext("password") + ctext("Zq8!vR2mXx"),
    b"\x00\x82\xa2\x00" + ctext("lat") + b"\x02" + cdouble(48.85837)
    + b"\xa2\x00" + ctext("lon") + b"\x02" + cdouble(2.294481),
    b"\x00\xbf" + ctext("a") + b"\x9f\x01\x39\x01\x00\xf9\x3c\x00\xfa\x3f"
    b"\x80\x00\x00\xff" + ctext("b") + b"\xc1\x1a\x65\x00\x00\x00\xff",
    b"\x00\xa1\x20\x44\x01\x02\x03\x04",
    b"\x01" + json.dumps({"lat": 52.520081, "lon": 13.404954,
                          "pw": "x"}).encode(),
    b"\x01password=hunter2x ip 10.1.2.3",
    b"\x01\xa1" + ctext("token")
    + ctext("ghp_8f3KqZr2LmNp7XvB1cD4eF6gH9jK0lM2nO3p"),
]
for i, s in enumerate(dec_seeds):
    with open(os.path.join(dec_out, "seed%03d" % i), "wb") as f:
        f.write(s)
print("%d seeds -> %s" % (len(dec_seeds), dec_out))
