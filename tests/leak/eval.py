#!/usr/bin/python3
"""Precision and recall of `moat scan` per leak category on labelled corpora.

    eval.py [--moat PATH] [--min FLOOR] [--errors] CORPUS.jsonl...

Each corpus line is a JSON object:
    {"topic": "...", "payload": "...", "labels": ["credential", ...]}
("topic" optional; "labels" lists every category present in the message,
[] for a clean one; other members such as "note" are ignored).  The
corpus is fed to `moat scan --jsonl --format json` (which ignores the extra
members) and a message counts as predicted positive for a category when at
least one finding of that category is reported for its topic or payload.

Prints a table per category (support, TP, FP, FN, precision, recall) and
the micro average.  With --min, exits 1 when a category that occurs in the
corpus (or was predicted) has precision or recall below FLOOR.  --errors
lists the false positives and false negatives.  Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys

CATEGORIES = [
    "private_ipv4", "private_ipv6", "mac_address", "email", "geolocation",
    "credential", "http_auth", "jwt", "private_key", "url_credentials",
    "aws_key", "vendor_token", "generic_secret", "payment_card", "iban",
    "national_id", "device_id", "health", "person", "internal_hostname",
    "wifi_credentials", "vehicle_id",
]


def load(paths):
    msgs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                labels = obj.get("labels", [])
                for lab in labels:
                    if lab not in CATEGORIES:
                        raise SystemExit("%s:%d: unknown label %r"
                                         % (path, no, lab))
                msgs.append((path, no, obj, set(labels)))
    return msgs


def predict(moat, msgs):
    text = "".join(json.dumps({"topic": o.get("topic", ""),
                               "payload": o["payload"]}) + "\n"
                   for _, _, o, _ in msgs)
    p = subprocess.run([moat, "scan", "--jsonl", "--format", "json"],
                       input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    if p.returncode not in (0, 1):
        raise SystemExit("moat scan failed (%d): %s"
                         % (p.returncode, p.stderr.decode(errors="replace")))
    pred = [set() for _ in msgs]
    for line in p.stdout.decode().splitlines():
        f = json.loads(line)
        pred[f["line"] - 1].add(f["category"])
    return pred


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moat", default=os.environ.get("MOAT_BIN", "moat"))
    ap.add_argument("--min", type=float, default=None)
    ap.add_argument("--errors", action="store_true")
    ap.add_argument("corpus", nargs="+")
    a = ap.parse_args()
    msgs = load(a.corpus)
    pred = predict(a.moat, msgs)
    rows, bad = [], []
    tot = [0, 0, 0]
    for cat in CATEGORIES:
        tp = fp = fn = 0
        for (path, no, obj, labels), got in zip(msgs, pred):
            if cat in got and cat in labels:
                tp += 1
            elif cat in got:
                fp += 1
                if a.errors:
                    print("FP %-17s %s:%d labels=%s got=%s %s" % (
                        cat, os.path.basename(path), no, sorted(labels),
                        sorted(got), json.dumps(obj["payload"])[:160]))
            elif cat in labels:
                fn += 1
                if a.errors:
                    print("FN %-17s %s:%d labels=%s got=%s %s" % (
                        cat, os.path.basename(path), no, sorted(labels),
                        sorted(got), json.dumps(obj["payload"])[:160]))
        support = tp + fn
        prec = tp / (tp + fp) if tp + fp else 1.0
        rec = tp / support if support else 1.0
        rows.append((cat, support, tp, fp, fn, prec, rec))
        tot[0] += tp
        tot[1] += fp
        tot[2] += fn
        if a.min is not None and (support or fp) and \
                (prec < a.min or rec < a.min):
            bad.append(cat)
    print("%-18s %7s %5s %5s %5s %9s %7s" % (
        "category", "support", "tp", "fp", "fn", "precision", "recall"))
    for cat, sup, tp, fp, fn, prec, rec in rows:
        print("%-18s %7d %5d %5d %5d %9.3f %7.3f" % (
            cat, sup, tp, fp, fn, prec, rec))
    tp, fp, fn = tot
    print("%-18s %7d %5d %5d %5d %9.3f %7.3f" % (
        "(micro)", tp + fn, tp, fp, fn,
        tp / (tp + fp) if tp + fp else 1.0,
        tp / (tp + fn) if tp + fn else 1.0))
    print("%d messages, %d clean" % (
        len(msgs), sum(1 for m in msgs if not m[3])))
    if bad:
        print("below %.2f: %s" % (a.min, ", ".join(bad)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
