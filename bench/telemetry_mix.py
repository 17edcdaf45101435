#!/usr/bin/python3
"""Write a telemetry mix for `moat scan` benchmarks to stdout.

    telemetry_mix.py [MEGABYTES]     (default 32, at most 1024)

One message per line: JSON telemetry (about 60 %), CSV (15 %), key=value
(10 %), NMEA sentences (5 %) and free-text logs (10 %), with a leak in
about 1 message in 100 (addresses, credentials, tokens, locations, ...).
Deterministic (fixed seed).  Standard library only.
"""
import json
import random
import sys

R = random.Random(7)


def ts():
    return "2024-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        R.randrange(1, 13), R.randrange(1, 28), R.randrange(24),
        R.randrange(60), R.randrange(60), R.randrange(1000))


def dev():
    return "%s-%04d" % (R.choice(["sensor", "meter", "plc", "gw", "cam"]),
                        R.randrange(10000))


def js():
    o = {"device": dev(), "ts": ts(), "seq": R.randrange(10**7),
         "temp": round(R.uniform(-20, 60), 2),
         "hum": round(R.uniform(0, 100), 1),
         "pressure": round(R.uniform(950, 1050), 1),
         "battery": R.randrange(101), "rssi": -R.randrange(30, 110),
         "status": R.choice(["ok", "warn", "idle"]),
         "readings": [round(R.uniform(0, 10), 3)
                      for _ in range(R.randrange(2, 10))]}
    if R.random() < 0.3:
        o["meta"] = {"fw": "2.%d.%d" % (R.randrange(9), R.randrange(30)),
                     "uptime": R.randrange(10**7), "model": "X%d" %
                     R.randrange(100)}
    return json.dumps(o)


def csv():
    return ",".join([ts(), dev()] + ["%.2f" % R.uniform(0, 1000)
                                     for _ in range(R.randrange(3, 9))])


def kv():
    return " ".join("%s=%s" % (k, v) for k, v in [
        ("dev", dev()), ("t", "%.1f" % R.uniform(0, 40)),
        ("h", "%.1f" % R.uniform(0, 99)), ("v", "%.2f" % R.uniform(3, 4.2)),
        ("state", R.choice(["on", "off"]))])


def nmea():
    body = "GPGGA,%02d%02d%02d.00,%04.4f,N,%05.4f,E,1,08,0.9,%.1f,M,46.9,M,," % (
        R.randrange(24), R.randrange(60), R.randrange(60),
        R.uniform(0, 8959), R.uniform(0, 17959), R.uniform(0, 500))
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return "$%s*%02X" % (body, cs)


def text():
    return "%s %s %s" % (ts(), dev(), R.choice([
        "connected to broker, session resumed",
        "watchdog kicked, cycle time %d ms" % R.randrange(100),
        "door opened by schedule", "firmware check: up to date",
        "calibration drift %.3f within limits" % R.uniform(0, 1)]))


LEAKS = [
    lambda: json.dumps({"device": dev(), "password": "12345"}),
    lambda: "gateway=192.168.%d.1 up" % R.randrange(256),
    lambda: json.dumps({"lat": round(R.uniform(-60, 60), 6),
                        "lon": round(R.uniform(-170, 170), 6)}),
    lambda: "notify jane.doe@example.com",
    lambda: "Authorization: Basic YWRtaW46YWRtaW4=",
    lambda: json.dumps({"card": "4111 1111 1111 1111"}),
    lambda: "token=ghp_" + "".join(R.choice("abcdefghijkLMNOPQ0123456789")
                                   for _ in range(36)),
]


def main():
    mb = float(sys.argv[1]) if len(sys.argv) > 1 else 32.0
    mb = max(0.01, min(mb, 1024.0))
    limit = int(mb * 1e6)
    out, n = [], 0
    gens = [js] * 12 + [csv] * 3 + [kv] * 2 + [nmea] + [text] * 2
    while n < limit:
        line = R.choice(LEAKS)() if R.random() < 0.01 else R.choice(gens)()
        out.append(line)
        n += len(line) + 1
        if len(out) >= 4096:
            sys.stdout.write("\n".join(out) + "\n")
            out = []
    if out:
        sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
