"""The JSON API (/api/v1/) of a protocol http listener: logins of
administrators only, session cookie flags, bearer tokens, CSRF on POST,
the login back-off shared with MQTT, recent leak findings (never the
leaked value) and security events.  Real moatd, mosquitto_pub, urllib."""
import json
import os
import ssl
import subprocess
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt

from moat_harness import MOATD, Broker, password_file_text, wait_for
from test_metrics import get, http_port, raw_http

TIMEOUT = 10.0
ADMIN_PW = "Adm1n-api-pass"
BOB_PW = "B0b-api-pass"
FILES = {
    "passwd": password_file_text({"admin": ADMIN_PW, "bob": BOB_PW}),
    "acl": "user admin\ntopic read $SYS/#\ntopic readwrite #\n"
           "user bob\ntopic readwrite bob/#\n",
}
CONFIG = ("password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
          "auth_backoff_initial 2s\nlistener 0 127.0.0.1\nprotocol http\n")


def post(port, path, body, headers=None, ctype="application/json",
         **kw):
    h = {"Content-Type": ctype} if ctype else {}
    h.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return get(port, path, method="POST", data=data, headers=h, **kw)


def api_json(resp):
    status, headers, body = resp
    return status, headers, json.loads(body) if body else None


class ApiBase(unittest.TestCase):
    """A broker with an admin, a user, and an http listener."""
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(CONFIG, files=FILES).start()
        cls.http = http_port(cls.broker)

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        cls.broker.dir.cleanup()
        assert rc == 0

    def try_login(self, user, pw):
        return api_json(post(self.http, "/api/v1/login",
                             {"user": user, "password": pw}))

    def login(self, user="admin", pw=ADMIN_PW):
        """A login that waits out the address's back-off left by another
        test's failed login (429), as a client would."""
        out = []

        def attempt():
            out[:] = [self.try_login(user, pw)]
            return out[0][0] != 429
        self.assertTrue(wait_for(attempt, TIMEOUT, interval=0.2))
        return out[0]

    def bearer(self, token):
        return {"Authorization": "Bearer " + token}


class ApiTests(ApiBase):

    def test_no_access_without_login(self):
        for path in ("/api/v1/leaks", "/api/v1/leaks/counts",
                     "/api/v1/leaks/clients",
                     "/api/v1/security-events", "/api/v1/whoami"):
            self.assertEqual(get(self.http, path)[0], 401, path)
            self.assertEqual(get(self.http, path, headers=self.bearer(
                "0" * 64))[0], 401, path)
            self.assertEqual(get(self.http, path, headers={
                "Cookie": "moat_session=" + "a" * 64})[0], 401, path)
        self.assertEqual(get(self.http, "/api/v1/nope")[0], 401)

    def test_login_rules_and_cookie_flags(self):
        status, headers, body = self.login()
        self.assertEqual(status, 200)
        self.assertEqual(body["user"], "admin")
        self.assertRegex(body["token"], r"^[0-9a-f]{64}$")
        self.assertRegex(body["csrf_token"], r"^[0-9a-f]{64}$")
        cookie = headers["Set-Cookie"]
        self.assertIn("moat_session=" + body["token"], cookie)
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/api/v1/"):
            self.assertIn(flag, cookie)
        self.assertNotIn("Secure", cookie)  # plain HTTP on loopback
        status, _, who = api_json(get(self.http, "/api/v1/whoami",
                                      headers=self.bearer(body["token"])))
        self.assertEqual((status, who["user"], who["auth"]),
                         (200, "admin", "bearer"))
        self.assertEqual(who["csrf_token"], body["csrf_token"])
        status, _, who = api_json(get(self.http, "/api/v1/whoami", headers={
            "Cookie": "moat_session=" + body["token"]}))
        self.assertEqual((status, who["auth"]), (200, "cookie"))
        # A user that is no administrator is refused.
        self.assertEqual(self.login("bob", BOB_PW)[0], 403)
        # Not JSON, not the right type, too large, unknown length.
        self.assertEqual(post(self.http, "/api/v1/login", b"user=admin",
                              ctype="application/x-www-form-urlencoded")[0],
                         415)
        self.assertEqual(post(self.http, "/api/v1/login", b"{nope")[0], 400)
        self.assertEqual(post(self.http, "/api/v1/login",
                              {"user": "admin", "password": "x" * 2000})[0],
                         413)
        out = raw_http(self.http, b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:60])
        self.assertEqual(get(self.http, "/api/v1/login")[0], 405)

    def test_csrf_on_post(self):
        _, _, body = self.login()
        cookie = {"Cookie": "moat_session=" + body["token"]}
        self.assertEqual(post(self.http, "/api/v1/logout", b"",
                              headers=cookie)[0], 403)
        self.assertEqual(post(self.http, "/api/v1/logout", b"", headers=dict(
            cookie, **{"X-CSRF-Token": "f" * 64}))[0], 403)
        # Still logged in after the refused attempts.
        self.assertEqual(get(self.http, "/api/v1/whoami",
                             headers=cookie)[0], 200)
        status, headers, _ = post(self.http, "/api/v1/logout", b"",
                                  headers=dict(cookie, **{
                                      "X-CSRF-Token": body["csrf_token"]}))
        self.assertEqual(status, 200)
        self.assertIn("Max-Age=0", headers["Set-Cookie"])
        self.assertEqual(get(self.http, "/api/v1/whoami",
                             headers=cookie)[0], 401)
        # A bearer token needs no CSRF token (no browser sends it alone).
        _, _, body = self.login()
        self.assertEqual(post(self.http, "/api/v1/logout", b"",
                              headers=self.bearer(body["token"]))[0], 200)

    def test_login_back_off_shared_with_mqtt(self):
        r = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port),
                            "-u", "carol", "-P", "wrong", "-t", "x", "-m",
                            "1"], capture_output=True, timeout=TIMEOUT)
        self.assertNotEqual(r.returncode, 0)
        # The same user name over HTTP waits out the MQTT failure.
        self.assertEqual(self.try_login("carol", "wrong")[0], 429)
        _, _, body = self.login()
        status, _, ev = api_json(get(
            self.http, "/api/v1/security-events?event=auth_throttled",
            headers=self.bearer(body["token"])))
        self.assertEqual(status, 200)
        self.assertTrue(any(e.get("protocol") == "http" and
                            e["user"] == "carol" for e in ev["events"]))

    def test_leak_findings_without_the_value(self):
        secret = "dora.private@example.net"
        r = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port),
                            "-u", "bob", "-P", BOB_PW, "-i", "bob-sensor",
                            "-t", "bob/contact", "-m", "mail " + secret],
                           capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, _, body = self.login()
        auth = self.bearer(body["token"])

        def findings(query=""):
            return api_json(get(self.http, "/api/v1/leaks" + query,
                                headers=auth))[2]["findings"]
        self.assertTrue(wait_for(lambda: findings("?client_id=bob-sensor"),
                                 TIMEOUT))
        f = findings("?client_id=bob-sensor")[0]
        self.assertEqual((f["event"], f["category"], f["user"], f["topic"]),
                         ("leak", "email", "bob", "bob/contact"))
        self.assertEqual(findings("?category=email&topic=bob%2Fcontact")[0],
                         f)
        self.assertEqual(findings("?client_id=nobody"), [])
        self.assertLessEqual(len(findings("?limit=1")), 1)
        tl = api_json(get(self.http, "/api/v1/leaks/timeline",
                          headers=auth))[2]
        self.assertEqual(tl["interval_seconds"], 60)
        self.assertGreaterEqual(sum(i["counts"].get("email", 0)
                                    for i in tl["intervals"]), 1, tl)
        for i in tl["intervals"]:
            self.assertEqual(i["total"], sum(i["counts"].values()))
        counts = api_json(get(self.http, "/api/v1/leaks/counts",
                              headers=auth))[2]
        self.assertGreaterEqual(counts["categories"]["email"]["alert"], 1)
        # Per client over time: bob-sensor's finding and three from a
        # second client, each in this hour's minutes, most first.
        for i in range(3):
            r = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port),
                                "-u", "bob", "-P", BOB_PW, "-i",
                                "bob-leaky", "-t", "bob/contact", "-m",
                                "mail %d.%s" % (i, secret)],
                               capture_output=True, timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, r.stderr)

        def clients():
            return api_json(get(self.http, "/api/v1/leaks/clients",
                                headers=auth))[2]
        self.assertTrue(wait_for(lambda: any(
            c["client_id"] == "bob-leaky" and c["total"] >= 3
            for c in clients()["clients"]), TIMEOUT))
        cl = clients()
        self.assertEqual(cl["interval_seconds"], 60)
        self.assertEqual(cl["max_clients"], 128)
        by_id = {c["client_id"]: c for c in cl["clients"]}
        totals = [c["total"] for c in cl["clients"]]
        self.assertEqual(totals, sorted(totals, reverse=True))
        for cid, n in (("bob-sensor", 1), ("bob-leaky", 3)):
            c = by_id[cid]
            self.assertGreaterEqual(c["total"], n)
            self.assertEqual(c["total_error"], 0)
            self.assertEqual(sum(m["count"] for m in c["minutes"]),
                             c["total"])
        # Neither the API nor its events ever carry the value.
        for path in ("/api/v1/leaks", "/api/v1/security-events",
                     "/api/v1/leaks/counts", "/api/v1/leaks/clients",
                     "/metrics"):
            self.assertNotIn(secret, get(self.http, path, headers=auth)[2])
        events = api_json(get(self.http, "/api/v1/security-events",
                              headers=auth))[2]["events"]
        self.assertTrue(any(e["event"] == "api_login" for e in events))

    def test_config_check(self):
        _, _, body = self.login()
        status, _, rep = api_json(get(self.http, "/api/v1/check",
                                      headers=self.bearer(body["token"])))
        self.assertEqual(status, 200)
        self.assertEqual(rep["file"], self.broker.conf)
        self.assertEqual(rep["dialect"], "moatd")
        self.assertIn("high", rep["summary"])
        for f in rep["findings"]:
            self.assertTrue({"id", "severity", "title", "evidence",
                             "remediation"} <= set(f))
        # The same report as moatd --check --format json.
        r = subprocess.run([MOATD, "--check", "-c", self.broker.conf,
                            "--format", "json"], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(json.loads(r.stdout), rep)
        self.assertEqual(get(self.http, "/api/v1/check")[0], 401)

    def test_rights_rechecked_after_reload(self):
        _, _, body = self.login()
        auth = self.bearer(body["token"])
        self.assertEqual(get(self.http, "/api/v1/whoami", headers=auth)[0],
                         200)
        self.broker.write("acl", "user admin\ntopic readwrite x/#\n")
        try:
            self.assertTrue(self.broker.reload())
            self.assertEqual(get(self.http, "/api/v1/whoami",
                                 headers=auth)[0], 403)
        finally:
            self.broker.write("acl", FILES["acl"])
            self.assertTrue(self.broker.reload())


class AdminTests(ApiBase):
    """Lists of clients and sessions, and the admin actions."""

    def act(self, auth, path, body):
        return api_json(post(self.http, path, body, headers=auth))

    def client(self, cid, **kw):
        done = threading.Event()
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5, **kw)
        c.username_pw_set("bob", BOB_PW)
        reasons = []

        def on_disconnect(client, userdata, rc, props=None):
            reasons.append(rc)
            done.set()
        c.on_disconnect = on_disconnect
        c.on_connect = lambda *a: done.set()
        c.connect("127.0.0.1", self.broker.port, clean_start=False,
                  properties=session_props())
        c.loop_start()
        self.assertTrue(done.wait(TIMEOUT))
        done.clear()
        return c, done, reasons

    def test_clients_sessions_disconnect_delete(self):
        _, _, body = self.login()
        auth = self.bearer(body["token"])
        c, done, reasons = self.client("bob-admin-test")
        try:
            c.subscribe("bob/a", qos=1)
            status, _, lst = api_json(get(self.http, "/api/v1/clients",
                                          headers=auth))
            self.assertEqual(status, 200)
            mine = [e for e in lst["clients"]
                    if e["client_id"] == "bob-admin-test"]
            self.assertEqual(len(mine), 1, lst)
            e = mine[0]
            self.assertEqual((e["user"], e["protocol"], e["version"]),
                             ("bob", "mqtt", "5.0"))
            self.assertTrue(e["address"].startswith("127.0.0.1:"))
            self.assertRegex(e["connected_since"], r"^\d{4}-\d\d-\d\dT")
            self.assertTrue(wait_for(lambda: [
                x for x in api_json(get(self.http, "/api/v1/clients",
                                        headers=auth))[2]["clients"]
                if x["client_id"] == "bob-admin-test" and
                x["subscriptions"] == 1], TIMEOUT))
            self.assertEqual(self.act(auth, "/api/v1/clients/disconnect",
                                      {"client_id": "bob-admin-test"})[0],
                             200)
            self.assertTrue(done.wait(TIMEOUT))
            self.assertEqual(reasons, [0x98])  # Administrative action
        finally:
            c.loop_stop()
        # The session stays (persistent), offline.
        sessions = api_json(get(self.http, "/api/v1/sessions?limit=1000",
                                headers=auth))[2]["sessions"]
        s = [x for x in sessions if x["client_id"] == "bob-admin-test"][0]
        self.assertEqual((s["connected"], s["owner"], s["subscriptions"]),
                         (False, "bob", 1))
        self.assertEqual(self.act(auth, "/api/v1/clients/disconnect",
                                  {"client_id": "bob-admin-test"})[0], 404)
        self.assertEqual(self.act(auth, "/api/v1/sessions/delete",
                                  {"client_id": "bob-admin-test"})[0], 200)
        self.assertEqual(self.act(auth, "/api/v1/sessions/delete",
                                  {"client_id": "bob-admin-test"})[0], 404)
        self.assertEqual(self.act(auth, "/api/v1/sessions/delete",
                                  {"nope": 1})[0], 400)
        events = api_json(get(self.http,
                              "/api/v1/security-events?event=admin_action",
                              headers=auth))[2]["events"]
        self.assertTrue(any(x["action"] == "delete session" and
                            x["result"] == "done" and x["user"] == "admin"
                            for x in events), events)

    def test_clear_retained(self):
        _, _, body = self.login()
        auth = self.bearer(body["token"])
        pub = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port),
                              "-u", "bob", "-P", BOB_PW, "-t", "bob/kept",
                              "-r", "-m", "old"], capture_output=True,
                             timeout=TIMEOUT)
        self.assertEqual(pub.returncode, 0)

        def retained():
            r = subprocess.run(["mosquitto_sub", "-p", str(self.broker.port),
                                "-u", "bob", "-P", BOB_PW, "-t", "bob/kept",
                                "-W", "1", "-C", "1"], capture_output=True,
                               text=True, timeout=TIMEOUT)
            return r.stdout.strip()
        self.assertEqual(retained(), "old")
        self.assertEqual(self.act(auth, "/api/v1/retained/clear",
                                  {"topic": "bob/kept"})[0], 200)
        self.assertEqual(retained(), "")
        for bad in ("bob/+", "$SYS/broker/version", ""):
            self.assertEqual(self.act(auth, "/api/v1/retained/clear",
                                      {"topic": bad})[0], 400, bad)

    def test_actions_need_csrf_with_cookie(self):
        _, _, body = self.login()
        cookie = {"Cookie": "moat_session=" + body["token"]}
        self.assertEqual(self.act(cookie, "/api/v1/sessions/delete",
                                  {"client_id": "x"})[0], 403)
        self.assertEqual(self.act(dict(cookie, **{
            "X-CSRF-Token": body["csrf_token"]}), "/api/v1/sessions/delete",
            {"client_id": "x"})[0], 404)
        self.assertEqual(get(self.http, "/api/v1/clients")[0], 401)


def session_props():
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = 3600
    return p


class ApiTlsTests(unittest.TestCase):
    def test_cookie_is_secure_on_https(self):
        with tempfile.TemporaryDirectory() as pki:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key",
                 "-out", "srv.crt", "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=IP:127.0.0.1"], cwd=pki,
                check=True, capture_output=True, timeout=60)
            os.chmod(os.path.join(pki, "srv.key"), 0o600)
            cfg = CONFIG + "certfile %s\nkeyfile %s\n" % (
                os.path.join(pki, "srv.crt"), os.path.join(pki, "srv.key"))
            with Broker(cfg, files=FILES) as b:
                ctx = ssl.create_default_context(
                    cafile=os.path.join(pki, "srv.crt"))
                status, headers, _ = post(
                    http_port(b, "HTTPS"), "/api/v1/login",
                    {"user": "admin", "password": ADMIN_PW}, context=ctx,
                    scheme="https")
                self.assertEqual(status, 200)
                self.assertIn("; Secure", headers["Set-Cookie"])


if __name__ == "__main__":
    unittest.main()
