#!/usr/bin/python3
"""Seeds for fuzz_cluster_env (tests/fuzz/corpus/cluster_env): envelopes
as docs/cluster.md "Wire format" describes them.  Run from the repository
root; rewrites the directory."""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                   "cluster_env")
NONCE = bytes.fromhex("0123456789abcdef")


def env(qos=0, retain=False, expiry=None, props=b"", src=None,
        groups=False, payload=b""):
    flags = qos | (4 if retain else 0) | (8 if expiry is not None else 0) \
        | (16 if src else 0) | (32 if groups else 0)
    b = bytes([1, flags]) + NONCE
    if expiry is not None:
        b += expiry.to_bytes(4, "big")
    b += bytes([len(props)]) + props
    if src:
        user, cid = src
        b += (0xffff if user is None else len(user)).to_bytes(2, "big")
        b += user or b""
        b += len(cid).to_bytes(2, "big") + cid
    return b + payload


SEEDS = {
    "qos0_empty": env(),
    "qos1_payload": env(1, payload=b"21.5"),
    "qos2_retained_src": env(2, True, src=(b"alice", b"dev-1"),
                             payload=b"on"),
    "anonymous_src": env(1, True, src=(None, b"c"), payload=b"x"),
    "expiry": env(1, expiry=60, payload=b"soon"),
    "props": env(1, props=bytes([0x01, 0x01, 0x03, 0x00, 0x04]) + b"text" +
                 bytes([0x26, 0x00, 0x01]) + b"k" + bytes([0x00, 0x01]) +
                 b"v", payload=b"{}"),
    "groups_done": env(0, groups=True, payload=b"g"),
}

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.unlink(os.path.join(OUT, f))
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
