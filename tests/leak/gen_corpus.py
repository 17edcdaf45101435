#!/usr/bin/python3
"""Write the labelled leak corpus tests/leak/corpus/generated.jsonl.

Realistic IoT telemetry (JSON, CSV, key=value, NMEA, free text, topics)
with and without leaks.  Valid values (Luhn, IBAN mod-97, NMEA checksums,
JWTs, VIN check digits, ...) are computed here, independently of the C
validators, so the corpus labels do not inherit the detector's bugs.
Deterministic (fixed seed).  Re-run after changing it:

    /usr/bin/python3 tests/leak/gen_corpus.py
"""
import base64
import json
import os
import random
import string

R = random.Random(20240611)
OUT = []


def add(payload, labels, topic=None, note=None):
    o = {}
    if topic is not None:
        o["topic"] = topic
    o["payload"] = payload
    o["labels"] = sorted(set(labels))
    if note:
        o["note"] = note
    OUT.append(o)


def j(obj):
    return json.dumps(obj, separators=(R.choice([",", ", "]),
                                       R.choice([":", ": "])))


def rnd(n, alphabet=string.ascii_letters + string.digits):
    return "".join(R.choice(alphabet) for _ in range(n))


def dev():
    return R.choice(["dev", "sensor", "node", "gw", "meter", "tracker",
                     "thermo", "pump", "hvac"]) + "-%03d" % R.randrange(1000)


def ts():
    return "2024-%02d-%02dT%02d:%02d:%02dZ" % (
        R.randrange(1, 13), R.randrange(1, 28), R.randrange(24),
        R.randrange(60), R.randrange(60))


def topic():
    return R.choice(["site/%s/telemetry", "plant/line%d/%%s/status" %
                     R.randrange(1, 9), "home/%s/state", "fleet/%s/report",
                     "factory/cell-%d/%%s/data" % R.randrange(1, 20)]) % dev()


# ---- value generators ---------------------------------------------------

def luhn_digit(body):
    s = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return str((10 - s % 10) % 10)


def luhn_ok(num):
    return luhn_digit(num[:-1]) == num[-1]


def pan(prefix, length):
    body = prefix + "".join(R.choice(string.digits)
                            for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def group4(n):
    return " ".join(n[i:i + 4] for i in range(0, len(n), 4))


IBAN_LEN = {"DE": 22, "FR": 27, "GB": 22, "NL": 18, "ES": 24, "IT": 27,
            "BE": 16, "CH": 21, "AT": 20, "PL": 28, "SE": 24, "IE": 22}


def iban(cc):
    n = IBAN_LEN[cc] - 4
    if cc in ("GB", "NL", "IE"):
        bban = rnd(4, string.ascii_uppercase) + rnd(n - 4, string.digits)
    elif cc in ("FR", "IT"):
        bban = rnd(n - 2, string.digits) + rnd(2, string.digits)
    else:
        bban = rnd(n, string.digits)
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    check = 98 - int(num) % 97
    return "%s%02d%s" % (cc, check, bban)


def iban_bad(cc):
    good = iban(cc)
    d = (int(good[2:4]) + R.randrange(1, 9)) % 97
    return good[:2] + "%02d" % d + good[4:]


def nmea(kind, lat, lon, valid=True):
    def dm(v, w):
        a = abs(v)
        d = int(a)
        m = (a - d) * 60
        return ("%0" + str(w) + "d%07.4f") % (d, m)
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    t = "%02d%02d%02d.00" % (R.randrange(24), R.randrange(60),
                             R.randrange(60))
    if kind == "GGA":
        body = "GPGGA,%s,%s,%s,%s,%s,1,08,0.9,%.1f,M,46.9,M,," % (
            t, dm(lat, 2), ns, dm(lon, 3), ew, R.uniform(0, 900))
    elif kind == "RMC":
        body = "GNRMC,%s,A,%s,%s,%s,%s,%.1f,%.1f,110324,,,A" % (
            t, dm(lat, 2), ns, dm(lon, 3), ew, R.uniform(0, 60),
            R.uniform(0, 359))
    else:
        body = "GPGLL,%s,%s,%s,%s,%s,A" % (dm(lat, 2), ns, dm(lon, 3), ew, t)
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    if not valid:
        cs ^= 0x11
    return "$%s*%02X" % (body, cs)


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt(alg="HS256", claims=None, sig=True):
    hdr = {"alg": alg, "typ": "JWT"}
    claims = claims or {"sub": rnd(8, string.digits), "iat": 1700000000 +
                        R.randrange(10**7), "exp": 1700003600 +
                        R.randrange(10**8)}
    s = rnd(43, string.ascii_letters + string.digits + "-_") if sig else ""
    return "%s.%s.%s" % (b64u(json.dumps(hdr).encode()),
                         b64u(json.dumps(claims).encode()), s)


VIN_MAP = dict(zip("ABCDEFGHJKLMNPRSTUVWXYZ",
                   [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5,
                    6, 7, 8, 9]))
VIN_W = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def vin():
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    wmi = R.choice(["1HG", "1FA", "2T1", "3VW", "5YJ", "JHM", "1G1", "4T1"])
    v = list(wmi + "".join(R.choice(chars) for _ in range(5)) + "0" +
             R.choice("ABCDEFGHJKLMNPRSTVWXY123456789") +
             R.choice(chars) + "".join(R.choice(string.digits)
                                       for _ in range(6)))
    s = sum((int(c) if c.isdigit() else VIN_MAP[c]) * w
            for c, w in zip(v, VIN_W))
    v[8] = "X" if s % 11 == 10 else str(s % 11)
    return "".join(v)


def ssn():
    while True:
        a = R.randrange(1, 900)
        if a != 666:
            return "%03d-%02d-%04d" % (a, R.randrange(1, 100),
                                       R.randrange(1, 10000))


def imei():
    body = R.choice(["35", "86", "01", "49"]) + rnd(12, string.digits)
    return body + luhn_digit(body)


def iccid():
    body = "8901" + rnd(14, string.digits)
    return body + luhn_digit(body)


def mac(sep=":"):
    b = [R.randrange(256) for _ in range(6)]
    b[0] &= 0xFE
    return sep.join("%02x" % x for x in b)


def priv4():
    return R.choice([
        "10.%d.%d.%d" % (R.randrange(256), R.randrange(256),
                         R.randrange(1, 255)),
        "192.168.%d.%d" % (R.randrange(256), R.randrange(1, 255)),
        "172.%d.%d.%d" % (R.randrange(16, 32), R.randrange(256),
                          R.randrange(1, 255)),
        "100.%d.%d.%d" % (R.randrange(64, 128), R.randrange(256),
                          R.randrange(1, 255)),
        "169.254.%d.%d" % (R.randrange(1, 255), R.randrange(1, 255)),
    ])


def pub4():
    while True:
        a = R.randrange(1, 224)
        if a not in (10, 100, 127, 169, 172, 192):
            return "%d.%d.%d.%d" % (a, R.randrange(256), R.randrange(256),
                                    R.randrange(1, 255))


FIRST = ["Alice", "Bob", "Carla", "Deepak", "Elena", "Farid", "Grace",
         "Hiroshi", "Ines", "Jonas", "Katarzyna", "Liam", "Maria", "Noah"]
LAST = ["Smith", "Okafor", "Garcia", "Nguyen", "Schmidt", "Rossi",
        "Kowalski", "Tanaka", "Dubois", "Johansson", "Murphy", "Silva"]
DOMAINS = ["example.com", "acme.io", "mail.example.org", "company.de",
           "uni-example.edu", "contoso.co.uk", "fleet.example.net"]


def email():
    f, l = R.choice(FIRST).lower(), R.choice(LAST).lower()
    return R.choice(["%s.%s", "%s_%s", "%s%s", "%s.%s+iot"]) % (f, l) + \
        "@" + R.choice(DOMAINS)


def person_name():
    return "%s %s" % (R.choice(FIRST), R.choice(LAST))


def latlon():
    return (round(R.uniform(-60, 70), R.choice([5, 6, 7])),
            round(R.uniform(-170, 170), R.choice([5, 6, 7])))


def secret(n=32):
    while True:
        s = rnd(n)
        if any(c.isdigit() for c in s) and any(c.isupper() for c in s) \
                and any(c.islower() for c in s):
            return s


WEAK = ["12345", "123456", "admin", "password", "root", "1234", "changeme",
        "qwerty", "letmein", "default"]


def password():
    return R.choice(WEAK + ["Tr0ub4dor&3", "s3cr3t!", "Summer2024!",
                            "hunter2", "correct-horse-battery",
                            "P@ssw0rd99", "mqttpass42"])


# ---- categories -----------------------------------------------------------

def gen_ipv4():
    for _ in range(16):
        ip = priv4()
        t = R.randrange(8)
        if t == 0:
            add(j({"device": dev(), "ip": ip, "rssi": -R.randrange(40, 90)}),
                ["private_ipv4"], topic())
        elif t == 1:
            add("gateway=%s netmask=255.255.255.0 dhcp=on" % ip,
                ["private_ipv4"])
        elif t == 2:
            add("%s,%s,%s,online" % (ts(), dev(), ip), ["private_ipv4"])
        elif t == 3:
            add("Connection from %s:%d refused (not authorised)" %
                (ip, R.randrange(1024, 65535)), ["private_ipv4"])
        elif t == 4:
            add(j({"net": {"dns": [ip, "8.8.8.8"], "up": True}}),
                ["private_ipv4"])
        elif t == 5:
            add("GET http://%s:8080/api/v1/status HTTP/1.1" % ip,
                ["private_ipv4"])
        elif t == 6:
            add("eth0: inet %s/24 brd %s.255 scope global" %
                (ip, ip.rsplit(".", 1)[0]), ["private_ipv4"])
        else:
            add(j({"peer": "%s:1883" % ip, "state": "connected"}),
                ["private_ipv4"], topic())
    for ip in ["8.8.8.8", pub4(), pub4()]:
        add(j({"ip": ip, "latency_ms": 23}), [], note="public address")
    add("firmware 10.2.0.1 installed, rebooting", [], note="version")
    add(j({"fw_version": "10.4.0.12", "hw": "rev3"}), [], note="version")
    add("update available: v10.0.0.1-beta", [], note="version")
    add("snmp oid 1.3.6.1.4.1.2021.10.1.3.1 = 0.42", [], note="OID")
    add("build 1.10.0.0.1 of the agent", [], note="5 parts")
    add(j({"addr": "10.0.0.256"}), [], note="octet out of range")
    add("maintenance window 10.12.2023 02:00", [], note="date")
    add("seq=10.20.30.40.50 value=3", [], note="5 parts")


def gen_ipv6():
    for _ in range(8):
        a = R.choice(["fd%02x:%x:%x::%x" % (R.randrange(256),
                                             R.randrange(65536),
                                             R.randrange(65536),
                                             R.randrange(1, 65536)),
                      "fe80::%x:%x:%x:%x%%eth0" % tuple(
                          R.randrange(65536) for _ in range(4)),
                      "fe80::1", "::1", "::ffff:192.168.%d.%d" %
                      (R.randrange(256), R.randrange(1, 255))])
        t = R.randrange(3)
        if t == 0:
            add(j({"ipv6": a, "prefix": 64}), ["private_ipv6"] +
                (["private_ipv4"] if False else []))
        elif t == 1:
            add("listening on [%s]:1883" % a, ["private_ipv6"])
        else:
            add("neighbor %s lladdr router REACHABLE" % a, ["private_ipv6"])
    add(j({"ipv6": "2001:db8::1"}), [], note="documentation prefix")
    add("resolved 2606:4700:4700::1111", [], note="public")
    add("uptime 12:34:56 load 0.42", [], note="time")
    add("std::vector<int> v; v.at(1)", [], note="C++")
    add("multicast to ff02::1 sent", [], note="multicast")


def gen_mac():
    for _ in range(10):
        t = R.randrange(5)
        if t == 0:
            add(j({"mac": mac(), "rssi": -60}), ["mac_address"], topic())
        elif t == 1:
            add("bssid=%s channel=%d" % (mac().upper(), R.randrange(1, 14)),
                ["mac_address"])
        elif t == 2:
            add("%s,%s,ble,%d" % (ts(), mac("-").upper(), -R.randrange(90)),
                ["mac_address"])
        elif t == 3:
            m = mac("")
            add(j({"hw_addr": m.upper()}), ["mac_address"])
        else:
            m = mac("")
            add("Interface %s.%s.%s up" % (m[0:4], m[4:8], m[8:12]),
                ["mac_address"])
    add(j({"mac": "00:00:00:00:00:00"}), [], note="all zero")
    add("broadcast ff:ff:ff:ff:ff:ff", [], note="broadcast")
    add("time 10:20:30:40 elapsed", [], note="4 groups")
    add(j({"uuid": "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f"}), [], note="uuid")


def gen_email():
    for _ in range(14):
        e = email()
        t = R.randrange(6)
        if t == 0:
            add(j({"owner_email": e, "plan": "pro"}), ["email"])
        elif t == 1:
            add("alert sent to %s at %s" % (e, ts()), ["email"])
        elif t == 2:
            add(j({"state": "on"}), ["email"], topic="users/%s/status" % e)
        elif t == 3:
            add("notify=%s;level=warn" % e, ["email"])
        elif t == 4:
            add("%s,%s,%s" % (ts(), dev(), e), ["email"])
        else:
            add(j({"contact": {"email": e}}), ["email"])
    add("registered device user@localhost", [], note="no TLD")
    add("asset logo@2x.png uploaded", [], note="file name")
    add("agent firmware@2.1.3 started", [], note="version")
    add("connect mqtt://operator@broker.example.com:8883", [],
        note="URL userinfo without password")
    add("ping @channel please check", [], note="mention")
    add(j({"email": "not-an-email"}), [], note="no @")


def gen_geo():
    for _ in range(18):
        lat, lon = latlon()
        t = R.randrange(9)
        if t == 0:
            add(j({"lat": lat, "lon": lon, "speed": 12.4}), ["geolocation"],
                topic())
        elif t == 1:
            add(j({"position": {"latitude": lat, "longitude": lon},
                   "ts": ts()}), ["geolocation"])
        elif t == 2:
            add(j({"type": "Point", "coordinates": [lon, lat]}),
                ["geolocation"])
        elif t == 3:
            add(nmea(R.choice(["GGA", "RMC", "GLL"]), lat, lon),
                ["geolocation"])
        elif t == 4:
            add("GPS fix %.6f, %.6f hdop 0.9" % (lat, lon), ["geolocation"])
        elif t == 5:
            add("lat=%.6f lng=%.6f sats=9" % (lat, lon), ["geolocation"])
        elif t == 6:
            add("%s,truck-%d,%.6f,%.6f,%.1f" % (ts(), R.randrange(99), lat,
                                                lon, R.uniform(0, 90)),
                ["geolocation"])
        elif t == 7:
            add(j({"gps_lat": str(lat), "gps_lon": str(lon)}),
                ["geolocation"])
        else:
            add("https://maps.google.com/?q=%.5f,%.5f" % (lat, lon),
                ["geolocation"])
    add("40.7128\u00b0 N, 74.0060\u00b0 W", ["geolocation"])
    add("pos 48\u00b051'29.6\"N 2\u00b017'40.2\"E", ["geolocation"])
    add(j({"lat": 95.123456, "lon": 200.654321}), [], note="out of range")
    add(j({"lat": 0, "lon": 0}), [], note="null island")
    lat, lon = latlon()
    add(nmea("GGA", lat, lon, valid=False), [], note="bad NMEA checksum")
    add("$GPGGA,123519,,,,,0,00,,,M,,M,,*66", [], note="no fix")
    add("%s,%s,21.5,45.2" % (ts(), dev()), [], note="temperature, humidity")
    add("temp 23.5\u00b0C, wind 270\u00b0", [], note="degrees")
    add(j({"accel": [0.012345, -0.987654]}), [], note="accelerometer")
    add("ratio 1.2345,6.7890 ok", [], note="numbers, 4 decimals, no context")


def gen_credential():
    for _ in range(18):
        pw = password()
        t = R.randrange(10)
        labels = ["credential"]
        if t == 0:
            add(j({"username": "admin", "password": pw}), labels, topic())
        elif t == 1:
            add("mqtt_user=devices mqtt_password=%s" % pw, labels)
        elif t == 2:
            add(j({"cfg": {"broker": "tcp://x:1883", "pass": pw + "x"}}),
                labels)
        elif t == 3:
            add("pwd: %s" % pw, labels)
        elif t == 4:
            add(j({"db_password": pw, "db": "telemetry"}), labels)
        elif t == 5:
            add(j({"api_key": secret(32)}), labels)
        elif t == 6:
            add(j({"token": secret(40), "ttl": 3600}), labels)
        elif t == 7:
            add(j({"sim_pin": str(R.randrange(1000, 9999))}), labels)
        elif t == 8:
            add("DB_PASSWORD=%s" % pw, labels)
        else:
            add(j({"client_id": dev(), "client_secret": secret(24)}),
                labels)
    add(j({"password": "12345"}), ["credential"], note="weak")
    add(j({"password": 12345}), ["credential"], note="number")
    add(j({"password": ""}), [], note="empty")
    add(j({"password": None}), [], note="null")
    add(j({"password": "********"}), [], note="masked")
    add(j({"password": "<redacted>"}), [], note="redacted")
    add(j({"password": "${MQTT_PASSWORD}"}), [], note="variable")
    add(j({"secret": "env:DEVICE_SECRET"}), [], note="reference")
    add(j({"password_changed": True, "password_age_days": 12}), [])
    add(j({"password_required": True}), [])
    add(j({"token_type": "Bearer", "expires_in": 3600}), [])
    add(j({"pin": 13, "mode": "output"}), [], note="GPIO pin")
    add(j({"tests": {"pass": 42, "fail": 0}}), [], note="test counts")
    add(j({"auth": True, "auth_method": "password"}), [])
    add("login failed: incorrect password for user", [])
    add("password reset requested at %s" % ts(), [])


def gen_http_auth():
    for _ in range(8):
        up = "%s:%s" % (R.choice(["admin", "device", "svc"]), password())
        tok = base64.b64encode(up.encode()).decode()
        t = R.randrange(3)
        if t == 0:
            add("Authorization: Basic %s" % tok, ["http_auth"])
        elif t == 1:
            add(j({"headers": {"Authorization": "Basic " + tok}}),
                ["http_auth"])
        else:
            add("curl -H 'Authorization: Bearer %s' https://api.example.com"
                % secret(36), ["http_auth"])
    add("basic auth enabled on port 8080", [])
    add("Basic configuration loaded", [])
    add("Authorization: Bearer <token>", [])
    add("Bearer token expired, refreshing", [])
    add("Authorization: Basic dGVzdA==", [], note="no user:pass")


def gen_jwt():
    for _ in range(8):
        t = R.randrange(3)
        if t == 0:
            add(j({"token": jwt()}), ["jwt"])
        elif t == 1:
            add("Authorization: Bearer " + jwt("RS256"), ["jwt"])
        else:
            add("session=%s; Path=/" % jwt(), ["jwt"])
    add(j({"id_token": jwt("none", sig=False)}), ["jwt"], note="alg none")
    fake = "%s.%s.%s" % (b64u(b'{"foo":"bar"}'), b64u(b'{"baz":1}'),
                         rnd(43))
    add(j({"data": fake}), [], note="JWT-shaped, no alg")
    add("eyJhbGciOiJIUzI1NiJ9 header only", [])
    add("cursor=eyJwYWdlIjoyfQ.eyJvZmZzZXQiOjUwfQ", [],
        note="two segments")


def pem(kind, n=12):
    body = "\n".join(base64.b64encode(bytes(R.randrange(256)
                                            for _ in range(48))).decode()
                     for _ in range(n))
    return "-----BEGIN %s-----\n%s\n-----END %s-----" % (kind, body, kind)


def gen_private_key():
    for kind in ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY",
                 "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]:
        add(j({"device_key": pem(kind)}), ["private_key"])
        add(pem(kind).replace("\n", " "), ["private_key"])
    k = pem("RSA PRIVATE KEY")
    add(j({"provision": k[:300]}), ["private_key"], note="cut short")
    add(j({"cert": pem("CERTIFICATE")}), [])
    add(pem("PUBLIC KEY").replace("\n", " "), [])
    add("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----", [],
        note="placeholder body")
    add("loaded private key from /etc/moat/device.key", [])


def gen_url():
    for _ in range(10):
        host = R.choice(["broker.example.com", "db.example.net",
                         "cluster0.mongodb.net", "rabbit", "github.com"])
        s = R.choice(["mqtt", "mqtts", "amqp", "postgres", "redis",
                      "mongodb+srv", "https"])
        user = R.choice(["admin", "app", "guest", ""])
        add("connecting to %s://%s:%s@%s/" % (s, user, password(), host),
            ["url_credentials"])
    add("broker mqtt://broker.example.com:1883", [])
    add("postgres://app:***@db.example.net/telemetry", [])
    add("redis://:${REDIS_PASS}@cache:6379/0", [])
    add("ftp://anonymous@ftp.example.org/pub", [])


AWS_CHARS = string.ascii_uppercase + "234567"


def gen_aws():
    for _ in range(6):
        kid = R.choice(["AKIA", "ASIA"]) + rnd(16, AWS_CHARS)
        t = R.randrange(3)
        if t == 0:
            add("aws_access_key_id=%s" % kid, ["aws_key"])
        elif t == 1:
            add(j({"AccessKeyId": kid, "SecretAccessKey": secret(40)}),
                ["aws_key"])
        else:
            add("uploading with %s to s3://bucket/x" % kid, ["aws_key"])
    add("AKIAAAAAAAAAAAAAAAAA", [], note="low entropy")
    add("arn:aws:iam::123456789012:user/alice", [])


def gen_vendor():
    toks = [
        "ghp_" + rnd(36), "github_pat_" + rnd(22) + "_" + rnd(59),
        "glpat-" + rnd(20, string.ascii_letters + string.digits + "-_"),
        "xoxb-%d-%d-%s" % (R.randrange(10**11, 10**12),
                           R.randrange(10**12, 10**13), rnd(24)),
        "sk_live_" + rnd(24), "AIza" + rnd(35, string.ascii_letters +
                                          string.digits + "-_"),
        "SG." + rnd(22) + "." + rnd(43), "npm_" + rnd(36),
        "shpat_" + rnd(32, "0123456789abcdef"),
        "dop_v1_" + rnd(64, "0123456789abcdef"),
    ]
    for tok in toks:
        t = R.randrange(3)
        if t == 0:
            add("export TOKEN=%s" % tok, ["vendor_token"])
        elif t == 1:
            add(j({"integration": {"key": tok}}), ["vendor_token"])
        else:
            add("using %s for uploads" % tok, ["vendor_token"])
    add("webhook https://hooks.slack.com/services/T%s/B%s/%s" % (
        rnd(8, string.ascii_uppercase + string.digits),
        rnd(8, string.ascii_uppercase + string.digits), rnd(24)),
        ["vendor_token"])
    add("HostName=hub1.azure-devices.net;DeviceId=%s;SharedAccessKey=%s" % (
        dev(), base64.b64encode(bytes(R.randrange(256)
                                      for _ in range(32))).decode()),
        ["vendor_token"])
    add("ghp_short123", [])
    add("xoxb-your-token-here", [])
    add("see https://github.com/org/repo/pull/12", [])


def gen_generic():
    for _ in range(8):
        k = R.choice(["encryption_key", "signingKey", "app_key",
                      "auth_code", "hmac_key", "x_secret_hash_salt",
                      "master_key", "secretKey"])
        v = secret(R.choice([24, 32, 40]))
        if k == "x_secret_hash_salt":
            add(j({k: v}), [], note="salt (hash word)")
            continue
        if R.random() < 0.5:
            add(j({k: v}), ["generic_secret"])
        else:
            add("%s=%s" % (k.upper(), v), ["generic_secret"])
    add(j({"key": "temperature", "value": 21.5}), [])
    add(j({"checksum_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b"
                                "822cd15d6c15b0f00a08"}), [])
    add(j({"public_key": secret(44)}), [], note="public key")
    add(j({"api_version": "2023-10-01"}), [])


def gen_card():
    for _ in range(12):
        p = R.choice([pan("4", 16), pan("51", 16), pan("2221", 16),
                      pan("37", 15), pan("6011", 16), pan("35%02d" % R.randrange(28, 90), 16)])
        t = R.randrange(4)
        f = group4(p) if len(p) == 16 else p
        if t == 0:
            add(j({"card": f, "amount": 12.5}), ["payment_card"])
        elif t == 1:
            add("payment approved pan=%s" % p, ["payment_card"])
        elif t == 2:
            add("%s,kiosk-%d,%s,EUR,4.20" % (ts(), R.randrange(99), p),
                ["payment_card"])
        else:
            add("charged card %s" % f.replace(" ", "-"), ["payment_card"])
    p = pan("4", 16)
    bad = p[:-1] + str((int(p[-1]) + 1) % 10)
    add(j({"card": bad}), [], note="Luhn off by one")
    add("order id 1700000000123 shipped", [], note="ms timestamp")
    add(j({"ts": 1712345678901234}), [], note="us timestamp")
    add("serial 4111111111111112", [], note="bad Luhn")
    add(j({"prob": 0.4111111111111111}), [], note="float")
    add("call +4915112345678 now", [], note="phone")


def gen_iban():
    for _ in range(10):
        cc = R.choice(list(IBAN_LEN))
        v = iban(cc)
        if R.random() < 0.5:
            v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
        t = R.randrange(3)
        if t == 0:
            add(j({"payout_iban": v}), ["iban"])
        elif t == 1:
            add("refund to IBAN %s by %s" % (v, ts()), ["iban"])
        else:
            add("%s,%s,%s" % (ts(), person_name().split()[1], v.replace(
                " ", "")), ["iban"])
    add(j({"iban": iban_bad("DE")}), [], note="wrong check digits")
    add("part no. DE12ABCD5678 in stock", [])


def gen_natid():
    for _ in range(8):
        t = R.randrange(3)
        if t == 0:
            add(j({"ssn": ssn()}), ["national_id"])
        elif t == 1:
            add("employee SSN %s on file" % ssn(), ["national_id"])
        else:
            add(j({"patient": {"ssn": ssn().replace("-", "")}}),
                ["national_id"])
    add("ssn 000-12-3456 invalid", [], note="area 000")
    add("id 666-45-1234", [], note="area 666")
    add("ref 912-34-5678", [], note="area 9xx")
    add("tel 555-123-4567", [], note="phone")


def gen_device():
    for _ in range(8):
        t = R.randrange(4)
        if t == 0:
            add(j({"imei": imei(), "rssi": -71}), ["device_id"], topic())
        elif t == 1:
            add("modem IMEI: %s registered" % imei(), ["device_id"])
        elif t == 2:
            add(j({"sim": {"iccid": iccid()}}), ["device_id"])
        else:
            add("ICCID %s IMSI %s" % (iccid(), "310260" +
                                      rnd(9, string.digits)), ["device_id"])
    i = imei()
    bad = i[:-1] + str((int(i[-1]) + 3) % 10)
    add(j({"imei": bad}), [], note="bad Luhn")
    add("counter 490154203237518 packets", [], note="no context")


def gen_health():
    for _ in range(12):
        t = R.randrange(6)
        if t == 0:
            add(j({"heart_rate": R.randrange(50, 140),
                   "spo2": R.randrange(90, 100)}), ["health"], topic())
        elif t == 1:
            add(j({"bp": "%d/%d" % (R.randrange(100, 160),
                                    R.randrange(60, 95))}), ["health"])
        elif t == 2:
            add("hr=%d bpm spo2=%d%%" % (R.randrange(50, 120),
                                         R.randrange(92, 100)), ["health"])
        elif t == 3:
            add(j({"glucose": R.randrange(70, 200), "unit": "mg/dL"}),
                ["health"])
        elif t == 4:
            add(j({"resourceType": "Observation", "status": "final",
                   "valueQuantity": {"value": R.randrange(50, 120),
                                     "unit": "beats/minute"}}), ["health"])
        else:
            add("MSH|^~\\&|MONITOR|ICU|HIS|HOSP|20240311||ORU^R01|1|P|2.5",
                ["health"])
    add(j({"hr": 14, "min": 30}), [], note="hour")
    add(j({"heart_rate": 0}), [], note="implausible")
    add(j({"pulse_count": 1234}), [], note="energy meter pulses")
    add("bp 1013.2 hPa", [], note="barometric")


def gen_person():
    for _ in range(10):
        t = R.randrange(5)
        n = person_name()
        if t == 0:
            add(j({"first_name": n.split()[0], "last_name": n.split()[1]}),
                ["person"])
        elif t == 1:
            add(j({"driver": {"name": n, "license_class": "C"}}),
                ["person"])
        elif t == 2:
            add(j({"dob": "19%02d-%02d-%02d" % (R.randrange(40, 99),
                                                R.randrange(1, 13),
                                                R.randrange(1, 28))}),
                ["person"])
        elif t == 3:
            add("patient_name=%s" % n.replace(" ", "_"), ["person"])
        else:
            add(j({"owner": n, "home": "unit 4"}), ["person"])
    add(j({"name": "sensor-kitchen", "type": "temp"}), [],
        note="device name")
    add(j({"user": "admin"}), [], note="generic account")
    add(j({"dob": "2099-01-01"}), [], note="future date")


def gen_hostname():
    for _ in range(8):
        h = R.choice(["nas01.local", "printer.lan", "db-prod-3.internal",
                      "ci.corp", "router.home.arpa", "vault.intranet"])
        t = R.randrange(3)
        if t == 0:
            add(j({"server": h, "port": 5432}), ["internal_hostname"])
        elif t == 1:
            add("resolving %s failed" % h, ["internal_hostname"])
        else:
            add("backup to \\\\%s\\share done" % h.split(".")[0],
                ["internal_hostname"])
    add("see docs at https://example.com/local", [])
    add("self.internal = True", [])
    add("docker-compose.local.yml loaded", [])


def gen_wifi():
    for _ in range(8):
        ssid = R.choice(["HomeNet", "FactoryWLAN", "Guest-5G", "IoT_Net"])
        pw = password() + "9"
        t = R.randrange(3)
        if t == 0:
            add(j({"wifi": {"ssid": ssid, "psk": pw}}), ["wifi_credentials"])
        elif t == 1:
            add(j({"ssid": ssid, "password": pw, "channel": 6}),
                ["wifi_credentials"])
        else:
            add("ssid=%s wpa_key=%s" % (ssid, pw), ["wifi_credentials"])
    add(j({"ssid": "HomeNet", "rssi": -55}), [], note="ssid alone")
    add(j({"ssid": "HomeNet", "psk": ""}), [], note="empty psk")


def gen_vin():
    for _ in range(8):
        v = vin()
        t = R.randrange(3)
        if t == 0:
            add(j({"vin": v, "odometer_km": R.randrange(100000)}),
                ["vehicle_id"])
        elif t == 1:
            add("vehicle %s ignition on" % v, ["vehicle_id"])
        else:
            add("%s,%s,%d" % (ts(), v, R.randrange(200)), ["vehicle_id"])
    add(j({"fleet_id": "FLEET2024ALPHA001"}), [], note="17 chars")


def gen_clean():
    for _ in range(50):
        t = R.randrange(7)
        if t == 0:
            add(j({"temp": round(R.uniform(-10, 40), 1),
                   "hum": round(R.uniform(10, 90), 1), "ts": ts()}), [],
                topic())
        elif t == 1:
            add("%s,%s,%.2f,%.2f,%d" % (ts(), dev(), R.uniform(0, 100),
                                        R.uniform(0, 5), R.randrange(100)),
                [])
        elif t == 2:
            add("temp=%.1f hum=%.1f batt=%d%%" % (R.uniform(0, 30),
                                                 R.uniform(20, 80),
                                                 R.randrange(100)), [])
        elif t == 3:
            add(j({"device": dev(), "fw": "2.%d.%d" % (R.randrange(9),
                                                        R.randrange(20)),
                   "uptime_s": R.randrange(10**6), "status": "ok"}), [])
        elif t == 4:
            add(j({"readings": [round(R.uniform(0, 10), 3)
                                for _ in range(R.randrange(3, 8))],
                   "unit": "kW"}), [])
        elif t == 5:
            add("door %s opened at %s" % (R.choice(["front", "garage"]),
                                          ts()), [])
        else:
            add(j({"id": R.randrange(10**9), "seq": R.randrange(10**6),
                   "ts": 1700000000000 + R.randrange(10**10)}), [])


for g in [gen_ipv4, gen_ipv6, gen_mac, gen_email, gen_geo, gen_credential,
          gen_http_auth, gen_jwt, gen_private_key, gen_url, gen_aws,
          gen_vendor, gen_generic, gen_card, gen_iban, gen_natid, gen_device,
          gen_health, gen_person, gen_hostname, gen_wifi, gen_vin,
          gen_clean]:
    g()

R.shuffle(OUT)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                    "generated.jsonl")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w", encoding="utf-8") as f:
    for o in OUT:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
print("%d messages -> %s" % (len(OUT), path))
