#!/usr/bin/python3
"""Write short MQTT messages for detector benchmarks to stdout.

    short_telemetry.py [COUNT] [--payloads] [--fleet]    (default 200000)

One message per line as `moat scan --jsonl` reads it: {"topic": ...,
"payload": ...} with a 20-60 byte topic (one of a fleet of 500 devices)
and a 100-200 byte JSON telemetry payload (sensors, meters, trackers,
plugs; no leaks), the shape of most IoT traffic.  By default every
message draws its topic and its payload's kind and fields anew; with
--fleet each device keeps one payload layout (kind, fields, formats)
and only its readings change from message to message, as real devices
publish (what the detector's per-topic structure cache is for).  With --payloads, the payloads only, one per line (the
payload templates for `moat bench --payload FILE`).  Deterministic (fixed
seed).  Standard library only.
"""
import json
import random
import re
import sys

R = random.Random(20)

SITES = ["plant-3", "hq", "warehouse-east", "lab", "store-0117", "farm"]
KINDS = ["sensor", "meter", "plug", "tracker", "thermostat", "valve"]


def make_topic():
    while True:
        t = "%s/%s/%s-%04d/%s" % (
            R.choice(["site", "tele", "dt", "iot"]), R.choice(SITES),
            R.choice(KINDS), R.randrange(10000),
            R.choice(["state", "telemetry", "SENSOR", "up", "status"]))
        if 20 <= len(t) <= 60:
            return t


# A fleet of 500 devices, each publishing on its own topic.
TOPICS = [make_topic() for _ in range(500)]


def topic():
    return R.choice(TOPICS)


def payload(rng=None):
    global R
    if rng is not None:  # draw this payload's choices from rng
        saved, R = R, rng
        try:
            return payload()
        finally:
            R = saved
    while True:
        k = R.randrange(4)
        if k == 0:
            o = {"temp": round(R.uniform(-20, 60), 2),
                 "hum": round(R.uniform(0, 100), 1),
                 "battery": R.randrange(101), "rssi": -R.randrange(30, 110),
                 "ts": 1700000000 + R.randrange(10**7)}
        elif k == 1:
            o = {"Time": "2024-%02d-%02dT%02d:%02d:%02d" % (
                R.randrange(1, 13), R.randrange(1, 28), R.randrange(24),
                R.randrange(60), R.randrange(60)),
                 "ENERGY": {"Power": R.randrange(3000),
                            "Voltage": R.randrange(220, 240),
                            "Current": round(R.uniform(0, 10), 3)}}
        elif k == 2:
            o = {"state": R.choice(["ON", "OFF"]),
                 "brightness": R.randrange(256),
                 "linkquality": R.randrange(256),
                 "update": {"state": "idle"}}
        else:
            o = {"seq": R.randrange(10**6), "pressure":
                 round(R.uniform(950, 1050), 1), "status":
                 R.choice(["ok", "warn", "idle"]), "flow":
                 round(R.uniform(0, 50), 2), "valve": R.randrange(2)}
        s = json.dumps(o, separators=(",", ":"))
        extra = [("fw", "1.%d.%d" % (R.randrange(9), R.randrange(30))),
                 ("uptime", R.randrange(10**7)),
                 ("model", "X%d" % R.randrange(100)),
                 ("node", "n%04d" % R.randrange(10000)),
                 ("lqi", R.randrange(256)), ("err", 0),
                 ("interval", R.choice([10, 30, 60, 300])),
                 ("site", R.choice(SITES)), ("kind", R.choice(KINDS)),
                 ("boot", 1600000000 + R.randrange(10**8))]
        want = R.randrange(100, 201)
        while len(s) < want and extra:
            k, v = extra.pop(0)
            o[k] = v
            s = json.dumps(o, separators=(",", ":"))
        if 100 <= len(s) <= 200:
            return s


# --fleet: a device's layout comes from a generator seeded with its
# index (the same choices of kind, extra fields and lengths each time);
# its readings from a digit shuffle of that layout.
LAYOUT_SEED = 2020


def fleet_message():
    d = R.randrange(len(TOPICS))
    p = payload(random.Random(LAYOUT_SEED + d))
    # new readings: every digit of a number changes, lengths stay
    out, in_str = [], False
    for i, c in enumerate(p):
        if c == '"' and p[i - 1] != "\\":
            in_str = not in_str
        if not in_str and c.isdigit() and p[i - 1] != '"':
            first = not p[i - 1].isdigit() and p[i - 1] != "."
            c = str(R.randrange(1, 10) if first else R.randrange(10))
        out.append(c)
    # and the clock moves (the seconds of a "Time" string)
    p = re.sub(r'(T\d\d:\d\d:)\d\d"',
               lambda m: "%s%02d\"" % (m.group(1), R.randrange(60)),
               "".join(out))
    return TOPICS[d], p


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 200000
    only = "--payloads" in sys.argv[1:]
    fleet = "--fleet" in sys.argv[1:]
    out = sys.stdout
    for _ in range(n):
        if fleet:
            t, p = fleet_message()
            if only:
                out.write(p + "\n")
            else:
                out.write(json.dumps({"topic": t, "payload": p}) + "\n")
            continue
        p = payload()
        if only:
            out.write(p + "\n")
        else:
            out.write(json.dumps({"topic": topic(), "payload": p}) + "\n")


if __name__ == "__main__":
    main()
