"""`moat scan`: the leak detector from the command line.

Exit codes, the JSON and text output, --jsonl (topic and payload, offsets
in the decoded payload, redacted topics), --categories, --stats, --budget,
--key-file (HMACs checked against Python's hmac), bad input (exit 2 with
the line named, the other lines still scanned), huge lines (bounded memory
and time), and that the output never contains what was found.
"""
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import unittest

MOAT = os.environ.get("MOAT_BIN", "../../build/moat")
TIMEOUT = 120


def run(args, data=b"", timeout=TIMEOUT, stdout=subprocess.PIPE, env=None):
    p = subprocess.run([MOAT, "scan"] + args, input=data, stdout=stdout,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def findings(out):
    return [json.loads(x) for x in out.decode().splitlines() if x.strip()]


class ScanBasics(unittest.TestCase):
    def test_help(self):
        rc, out, _ = run(["--help"])
        self.assertEqual(rc, 0)
        self.assertIn(b"Usage: moat scan", out)
        for opt in [b"--jsonl", b"--format", b"--categories", b"--stats",
                    b"--budget", b"--key-file"]:
            self.assertIn(opt, out)
        p = subprocess.run([MOAT, "help", "scan"], stdout=subprocess.PIPE,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"Usage: moat scan", p.stdout)
        p = subprocess.run([MOAT, "--help"], stdout=subprocess.PIPE,
                           timeout=TIMEOUT)
        self.assertIn(b"scan", p.stdout)

    def test_list_categories(self):
        rc, out, _ = run(["--list-categories"])
        self.assertEqual(rc, 0)
        names = out.decode().split()
        self.assertEqual(len(names), 22)
        self.assertIn("wifi_credentials", names)

    def test_clean_input_exits_0(self):
        rc, out, err = run([], b'{"temp":21.5}\nhello\n\n')
        self.assertEqual((rc, out, err), (0, b"", ""))
        rc, out, _ = run([], b"")
        self.assertEqual((rc, out), (0, b""))

    def test_findings_exit_1_and_json_fields(self):
        lines = [b'{"temp":21.5}',
                 b'{"password": "12345", "ip": "10.0.0.1"}',
                 b"contact jane.doe@example.com",
                 b"card 4111 1111 1111 1111"]
        rc, out, _ = run(["--format", "json"], b"\n".join(lines) + b"\n")
        self.assertEqual(rc, 1)
        fs = findings(out)
        got = sorted((f["line"], f["category"]) for f in fs)
        self.assertEqual(got, [(2, "credential"), (2, "private_ipv4"),
                               (3, "email"), (4, "payment_card")])
        for f in fs:
            for k in ["line", "category", "severity", "start", "end",
                      "path", "preview", "hmac", "confidence", "flags",
                      "field", "file"]:
                self.assertIn(k, f)
            secret = lines[f["line"] - 1][f["start"]:f["end"]]
            self.assertTrue(secret)
            self.assertNotIn(secret.decode(), f["preview"])
            self.assertNotIn(secret.decode(), json.dumps(f))
        by = {f["category"]: f for f in fs}
        self.assertEqual(lines[1][by["credential"]["start"]:
                                  by["credential"]["end"]], b"12345")
        self.assertEqual(by["credential"]["path"], "$.password")
        self.assertIn("weak_password", by["credential"]["flags"])
        self.assertEqual(by["credential"]["severity"], "high")
        self.assertIsNone(by["email"]["path"])
        self.assertEqual(by["email"]["preview"], "j***@example.com")
        self.assertEqual(by["payment_card"]["preview"], "****1111")

    def test_text_format(self):
        rc, out, _ = run([], b"x\ngw 10.0.0.1\n")
        self.assertEqual(rc, 1)
        text = out.decode().splitlines()
        self.assertTrue(text[0].startswith("LINE"))
        self.assertIn("PREVIEW", text[0])
        self.assertEqual(len(text), 2)
        cols = text[1].split()
        self.assertEqual(cols[:5], ["2", "payload", "private_ipv4",
                                    "medium", "3-11"])
        self.assertEqual(cols[-1], "10.*.*.*")
        self.assertNotIn("10.0.0.1", out.decode())

    def test_crlf_lines(self):
        rc, out, _ = run(["--format", "json"], b"password=hunter2\r\nok\r\n")
        self.assertEqual(rc, 1)
        f = findings(out)[0]
        self.assertEqual((f["start"], f["end"]), (9, 16))

    def test_binary_input(self):
        data = bytes(range(256)) * 64 + b"\n\x00\x00gw 10.0.0.1\x00\n"
        rc, out, _ = run(["--format", "json"], data)
        self.assertEqual(rc, 1)
        self.assertEqual([f["category"] for f in findings(out)],
                         ["private_ipv4"])


class ScanJsonl(unittest.TestCase):
    def test_topic_and_payload(self):
        msgs = [
            {"topic": "tenants/jane.roe@example.org/state",
             "payload": "{\"password\":\"s3cr3t!\"}"},
            {"topic": "t", "payload": "caf\u00e9 gw 10.0.0.1",
             "labels": ["extra members are ignored"]},
            {"payload": {"lat": 48.858370, "lon": 2.294481}},
            {"topic": "bin", "payload-base64":
             "AAH/Z3cgMTAuMC4wLjE="},  # b"\\x00\\x01\\xffgw 10.0.0.1"
        ]
        data = "".join(json.dumps(m) + "\n" for m in msgs).encode()
        rc, out, _ = run(["--jsonl", "--format", "json"], data)
        self.assertEqual(rc, 1)
        fs = findings(out)
        got = [(f["line"], f["field"], f["category"]) for f in fs]
        self.assertEqual(got, [(1, "topic", "email"),
                               (1, "payload", "credential"),
                               (2, "payload", "private_ipv4"),
                               (3, "payload", "geolocation"),
                               (3, "payload", "geolocation"),
                               (4, "payload", "private_ipv4")])
        self.assertEqual((fs[5]["start"], fs[5]["end"]), (6, 14))
        # the topic is printed with its own findings redacted
        self.assertEqual(fs[0]["topic"],
                         "tenants/" + "*" * len("jane.roe@example.org") +
                         "/state")
        self.assertEqual(fs[1]["topic"], fs[0]["topic"])
        self.assertNotIn("jane.roe", out.decode())
        # offsets are in the decoded payload: "café" is 5 bytes in UTF-8
        self.assertEqual((fs[2]["start"], fs[2]["end"]), (9, 17))
        self.assertIsNone(fs[3]["topic"])
        self.assertEqual(fs[3]["path"], "$.lat")

    def test_bad_lines_exit_2(self):
        data = (b'{"payload":"gw 10.0.0.1"}\n'
                b'not json\n'
                b'{"topic":"t"}\n'
                b'{"payload":"x",}\n'
                b'{"payload":"\\ud800"}\n'
                b'{"topic":1,"payload":"x"}\n'
                b'{"payload-base64":"not base64!"}\n'
                b'{"payload":"mail jane@example.com"}\n')
        rc, out, err = run(["--jsonl", "--format", "json"], data)
        self.assertEqual(rc, 2)
        for line in ["-:2:", "-:3:", "-:4:", "-:5:", "-:6:", "-:7:"]:
            self.assertIn(line, err)
        self.assertEqual([(f["line"], f["category"]) for f in findings(out)],
                         [(1, "private_ipv4"), (8, "email")])

    def test_escapes_decoded(self):
        data = json.dumps({"payload": "{\"pin\":\"4821\"}\n\t\u2603"})
        rc, out, _ = run(["--jsonl", "--format", "json"],
                         data.encode() + b"\n")
        self.assertEqual(rc, 1)
        f = findings(out)[0]
        self.assertEqual((f["category"], f["start"], f["end"]),
                         ("credential", 8, 12))


class ScanOptions(unittest.TestCase):
    def test_categories(self):
        data = b'{"password":"x1y2z3","ip":"10.0.0.1","to":"a.b@example.com"}\n'
        rc, out, _ = run(["--format", "json", "--categories", "email"], data)
        self.assertEqual(rc, 1)
        self.assertEqual([f["category"] for f in findings(out)], ["email"])
        rc, out, _ = run(["--format", "json", "--categories=jwt,iban"], data)
        self.assertEqual((rc, out), (0, b""))
        rc, _, err = run(["--categories", "email,bogus"], data)
        self.assertEqual(rc, 2)
        self.assertIn("bogus", err)

    def test_usage_errors(self):
        for args in [["--format", "xml"], ["--format"], ["--bogus"],
                     ["--budget", "0"], ["--budget", "x"],
                     ["--budget", "99999999999"], ["--categories", ""]]:
            rc, out, err = run(args, b"gw 10.0.0.1\n")
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, b"", args)
            self.assertIn("moat scan:", err, args)

    def test_stats(self):
        data = b'{"password":"12345"}\ngw 10.0.0.1 and 192.168.0.1\nok\n'
        rc, out, err = run(["--stats", "--format", "json"], data)
        self.assertEqual(rc, 1)
        self.assertIn("3 messages", err)
        self.assertIn("2 with findings", err)
        self.assertRegex(err, r"credential\s+1")
        self.assertRegex(err, r"private_ipv4\s+2")
        self.assertRegex(err, r"MB/s scanning")
        self.assertEqual(len(findings(out)), 3)

    def test_budget(self):
        data = b"gw 10.0.0.1" + b" " * 100 + b"gw 10.0.0.2\n"
        rc, out, err = run(["--format", "json", "--budget", "50", "--stats"],
                           data)
        self.assertEqual(rc, 1)
        self.assertEqual([f["start"] for f in findings(out)], [3])
        self.assertIn("over budget: 1", err)

    def test_files(self):
        with tempfile.TemporaryDirectory() as d:
            a = os.path.join(d, "a.txt")
            b = os.path.join(d, "b.txt")
            with open(a, "wb") as f:
                f.write(b"ok\ngw 10.0.0.1\n")
            with open(b, "wb") as f:
                f.write(b"mail jane@example.com")  # no final newline
            rc, out, _ = run(["--format", "json", a, "-", b],
                             b"pin=1234 sim\n")
            self.assertEqual(rc, 1)
            got = [(os.path.basename(f["file"]), f["line"], f["category"])
                   for f in findings(out)]
            self.assertEqual(got, [("a.txt", 2, "private_ipv4"),
                                   ("-", 1, "credential"),
                                   ("b.txt", 1, "email")])
            rc, out, _ = run([a, b])
            self.assertIn("a.txt:2", out.decode())
            rc, out, err = run(["--format", "json", a,
                                os.path.join(d, "missing")])
            self.assertEqual(rc, 2)
            self.assertIn("missing", err)
            self.assertEqual(len(findings(out)), 1)

    def test_key_file(self):
        key = bytes(range(32))
        with tempfile.TemporaryDirectory() as d:
            kf = os.path.join(d, "key")
            fd = os.open(kf, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, key.hex().encode() + b"\n")
            os.close(fd)
            data = b"password=hunter2\n"
            want = hmac.new(key, b"hunter2", hashlib.sha256).hexdigest()[:32]
            rc, out, _ = run(["--format", "json", "--key-file", kf], data)
            self.assertEqual(rc, 1)
            self.assertEqual(findings(out)[0]["hmac"], want)
            with open(kf, "wb") as f:
                f.write(key)
            rc, out, _ = run(["--format", "json", "--key-file", kf], data)
            self.assertEqual(findings(out)[0]["hmac"], want)
            # without a key: a random one per run
            _, o1, _ = run(["--format", "json"], data)
            _, o2, _ = run(["--format", "json"], data)
            self.assertNotEqual(findings(o1)[0]["hmac"],
                                findings(o2)[0]["hmac"])
            # a key others can read is refused, as is a malformed one
            os.chmod(kf, 0o644)
            rc, _, err = run(["--key-file", kf], data)
            self.assertEqual(rc, 2)
            os.chmod(kf, 0o600)
            with open(kf, "wb") as f:
                f.write(b"too short")
            rc, _, err = run(["--key-file", kf], data)
            self.assertEqual(rc, 2)
            self.assertIn("32 bytes", err)
            rc, _, err = run(["--key-file", os.path.join(d, "none")], data)
            self.assertEqual(rc, 2)

    def test_output_error(self):
        with open("/dev/full", "wb") as full:
            rc, _, err = run(["--format", "json"], b"gw 10.0.0.1\n" * 5000,
                             stdout=full)
        self.assertEqual(rc, 2)
        self.assertIn("cannot write", err)


class ScanHugeInput(unittest.TestCase):
    def test_huge_line_is_bounded(self):
        # 200 MB on one line: only the budget is scanned, and the line is
        # never held in memory (moat's own peak RSS, from --stats)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "big.txt")
            with open(path, "wb") as f:
                f.write(b"gw 10.0.0.1 ")
                chunk = b"x" * (1 << 20)
                for _ in range(200):
                    f.write(chunk)
                f.write(b" gw 10.0.0.2\nok 10.0.0.3\n")
            # under ASan, freed memory (pattern compilation) sits in the
            # quarantine and would count
            env = dict(os.environ)
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=0").lstrip(":")
            rc, out, err = run(["--format", "json", "--stats", path],
                               env=env)
        self.assertEqual(rc, 1, err)
        self.assertEqual([(f["line"], f["start"]) for f in findings(out)],
                         [(1, 3), (2, 3)])
        self.assertIn("over budget: 1", err)
        rss_kib = int(err.split("memory: ")[1].split()[0])
        self.assertLess(rss_kib, 100 * 1024)

    def test_huge_jsonl_line_is_an_error(self):
        line = b'{"payload":"' + b"a" * (9 << 20) + b'"}\n'
        rc, out, err = run(["--jsonl", "--format", "json"],
                           line + b'{"payload":"gw 10.0.0.1"}\n')
        self.assertEqual(rc, 2)
        self.assertIn("-:1: line longer than", err)
        self.assertEqual([f["line"] for f in findings(out)], [2])

    def test_many_findings_truncated(self):
        line = b" ".join(b"10.0.%d.%d" % (i // 200, i % 200 + 1)
                         for i in range(500))
        rc, out, _ = run(["--format", "json"], line + b"\n")
        self.assertEqual(rc, 1)
        self.assertEqual(len(findings(out)), 64)


if __name__ == "__main__":
    unittest.main()
