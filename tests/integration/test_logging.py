"""log_format json and log_dest: lines parse as JSON with stable fields,
security and leak lines carry an event, and a log file is opened again on
SIGHUP (logrotate).  Real moatd, mosquitto_pub; bounded waits only."""
import json
import os
import signal
import subprocess
import tempfile
import unittest

from moat_harness import MOATD, Broker, password_file_text, wait_for

TIMEOUT = 10.0
PASSWORD = "Corr3ct-horse-log"


def json_lines(text):
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))  # raises on anything else
    return out


def pub(port, *args):
    return subprocess.run(["mosquitto_pub", "-p", str(port)] + list(args),
                          capture_output=True, timeout=TIMEOUT)


class JsonLogTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker("log_format json\npassword_file @DIR@/passwd\n",
                            files={"passwd": password_file_text(
                                {"alice": PASSWORD})}).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        cls.broker.dir.cleanup()
        assert rc == 0

    def events(self, name):
        return [o for o in json_lines(self.broker.run_log())
                if o.get("event") == name]

    def test_every_line_is_json(self):
        lines = json_lines(self.broker.run_log())
        self.assertGreater(len(lines), 2)
        for o in lines:
            self.assertEqual(list(o)[:2], ["ts", "level"])
            self.assertRegex(o["ts"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(o["level"], ("error", "warning", "notice", "info",
                                       "debug"))
            self.assertIsInstance(o["msg"], str)
        self.assertTrue(any("running with" in o["msg"] for o in lines))

    def test_auth_failure_event(self):
        r = pub(self.broker.port, "-t", "x", "-m", "1", "-u", "alice",
                "-P", "wrong-password", "-i", "bad-login-id")
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(wait_for(lambda: self.events("auth_failure"),
                                 TIMEOUT))
        ev = self.events("auth_failure")[-1]
        # user is the verified identity: none yet; the name tried is in
        # the detail.
        self.assertIsNone(ev["user"])
        self.assertIn('"alice"', ev["detail"])
        self.assertEqual(ev["client_id"], "bad-login-id")
        self.assertTrue(ev["peer"].startswith("127.0.0.1:"))
        self.assertIn("bad user name or password", ev["detail"])
        self.assertTrue(ev["msg"].startswith("security: auth failure: "))

    def test_leak_event_has_fields_not_value(self):
        secret = "bob.leaky@example.org"
        r = pub(self.broker.port, "-t", "home/contact", "-m",
                "write to " + secret, "-i", "leaky-dev")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: self.events("leak"), TIMEOUT))
        ev = self.events("leak")[-1]
        for key in ("category", "severity", "confidence", "action",
                    "message", "origin", "part", "topic", "client_id",
                    "user", "path", "start", "end", "preview", "hmac"):
            self.assertIn(key, ev)
        self.assertEqual(ev["category"], "email")
        self.assertEqual(ev["client_id"], "leaky-dev")
        self.assertIsNone(ev["user"])
        self.assertEqual(ev["topic"], "home/contact")
        self.assertIsInstance(ev["start"], int)
        self.assertNotIn(secret, self.broker.run_log())


class LogFileTests(unittest.TestCase):
    def test_file_reopened_on_sighup(self):
        b = Broker("log_dest file @DIR@/moat.log\nlog_format json\n")
        b.log_path = b.path("moat.log")  # the harness reads the same file
        with b:
            rotated = b.path("moat.log.1")
            os.rename(b.log_path, rotated)
            b.proc.send_signal(signal.SIGHUP)

            def reloaded():
                try:
                    return "configuration reloaded" in b.read_log()
                except FileNotFoundError:
                    return False
            self.assertTrue(wait_for(reloaded, TIMEOUT))
            # moatd made the new file: private.
            self.assertEqual(os.stat(b.log_path).st_mode & 0o777, 0o600)
            with open(b.log_path) as f:
                new = json_lines(f.read())
            self.assertTrue(any("configuration reloaded" in o["msg"]
                                for o in new))
            with open(rotated) as f:
                old = f.read()
            self.assertIn("running with", old)
            self.assertNotIn("configuration reloaded", old)
            r = pub(b.port, "-t", "after/rotate", "-m", "a@example.com")
            self.assertEqual(r.returncode, 0)
            self.assertTrue(wait_for(lambda: '"event":"leak"' in
                                     b.read_log(), TIMEOUT))

    def test_text_stays_the_default(self):
        with Broker("") as b:
            line = b.run_log().splitlines()[0]
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT[\d:.]+Z notice: ")


class LogConfigTests(unittest.TestCase):
    def run_moatd(self, text, *args):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "moatd.conf")
            with open(path, "w") as f:
                f.write("listener 0 127.0.0.1\n" + text)
            return subprocess.run([MOATD, "-c", path] + list(args),
                                  capture_output=True, text=True,
                                  timeout=TIMEOUT)

    def test_bad_values(self):
        for text, msg in (("log_dest file\n", "expected: log_dest"),
                          ("log_dest syslog x\n", "expected: log_dest"),
                          ("log_dest kafka\n", "expected: log_dest"),
                          ("log_format xml\n", "expected one of text|json")):
            r = self.run_moatd(text, "-t")
            self.assertEqual(r.returncode, 1, text)
            self.assertIn(msg, r.stderr, text)
        r = self.run_moatd("log_dest syslog\nlog_format json\n", "-t")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unwritable_file_refused_at_start(self):
        r = self.run_moatd("log_dest file /nonexistent-dir/moat.log\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("log_dest: /nonexistent-dir/moat.log: cannot open",
                      r.stderr)


if __name__ == "__main__":
    unittest.main()
