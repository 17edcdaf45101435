#!/usr/bin/env python3
"""Write the seed corpus for fuzz_leak into corpus/leak/.

Each seed is a mode byte (see fuzz_leak.c) followed by a message taken
from the labelled leak corpora (tests/leak/corpus/*.jsonl): every fourth
message, with the four db modes in turn, plus a few hand-made edge cases.
Re-run after changing the corpora:  python3 tests/fuzz/gen_leak_corpus.py
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
