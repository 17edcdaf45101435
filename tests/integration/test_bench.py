"""moat bench against a real moatd: small bounded runs of every scenario.

The assertions are about counts (every message accounted for: sent,
received, lost, duplicated, out of order), the JSON fields, exit codes and
usage errors -- never about speed.  Each run is bounded by -n and -d.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from moat_harness import free_port, MOAT, Broker, BrokerTest, password_file_text

RUN_TIMEOUT = 120

# Generous limits, as bench/compare uses: nothing is dropped by design.
GENEROUS = """
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 100
sys_interval 0
"""

JSON_FIELDS = [
    "scenario", "host", "port", "tls", "mqtt_version", "qos", "payload_size",
    "rate", "window", "inflight", "topic", "publishers", "subscribers",
    "connections", "connect", "hold_s", "publish_s", "deliver_s", "drain_s",
    "elapsed_s", "sent", "expected", "received", "lost", "duplicated",
    "out_of_order", "foreign", "sent_per_s", "received_per_s", "latency_us",
    "errors", "first_error",
]
HIST_FIELDS = ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"]


def bench(*args, timeout=RUN_TIMEOUT):
    r = subprocess.run([MOAT, "bench"] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    err = r.stderr.decode()
    # Under a sanitizer build the client is checked too.
    if "Sanitizer" in err or "runtime error:" in err:
        raise AssertionError("moat bench: sanitizer report:\n" + err)
    return r.returncode, r.stdout.decode(), err



class BenchScenarios(BrokerTest):
    broker_config = GENEROUS

    def run_json(self, *args):
        rc, out, err = bench(*args, "-h", "127.0.0.1", "-p", self.port,
                             "--json")
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        res = json.loads(out)
        for f in JSON_FIELDS:
            self.assertIn(f, res)
        for f in HIST_FIELDS:
            self.assertIn(f, res["latency_us"])
            self.assertIn(f, res["connect"]["latency_us"])
        self.assertEqual(res["errors"], 0)
        self.assertIsNone(res["first_error"])
        return res

    def assert_complete(self, res, sent, per_message):
        """QoS >= 1: every message arrives once, in order."""
        self.assertEqual(res["sent"], sent)
        self.assertEqual(res["expected"], sent * per_message)
        self.assertEqual(res["received"], sent * per_message)
        self.assertEqual(res["lost"], 0)
        self.assertEqual(res["duplicated"], 0)
        self.assertEqual(res["out_of_order"], 0)
        self.assertEqual(res["foreign"], 0)
        self.assertEqual(res["latency_us"]["count"], res["received"])
        lat = res["latency_us"]
        self.assertTrue(lat["min"] <= lat["p50"] <= lat["p99"] <=
                        lat["p999"] <= lat["max"], lat)

    def test_fan_in_qos1(self):
        res = self.run_json("fan-in", "-c", 4, "-n", 3000, "-q", 1)
        self.assertEqual(res["scenario"], "fan-in")
        self.assertEqual((res["publishers"], res["subscribers"]), (4, 1))
        self.assertEqual(res["connect"]["connected"], 5)
        self.assertEqual(res["connect"]["failed"], 0)
        self.assert_complete(res, 12000, 1)

    def test_fan_in_unbatched(self):
        # One PUBLISH per write (the overload scenarios' client): the
        # counting is the same.
        res = self.run_json("fan-in", "-c", 40, "-n", 100, "-q", 1,
                            "--unbatched")
        self.assertTrue(res["unbatched"])
        self.assert_complete(res, 4000, 1)

    def test_pairs_unbatched_at_a_rate(self):
        res = self.run_json("pairs", "-c", 20, "-n", 50, "-q", 1, "-r",
                            20000, "--unbatched")
        self.assert_complete(res, 1000, 1)

    def test_fan_out_qos1(self):
        res = self.run_json("fan-out", "-c", 5, "-n", 2000, "-q", 1)
        self.assertEqual((res["publishers"], res["subscribers"]), (1, 5))
        self.assert_complete(res, 2000, 5)

    def test_pairs_qos2(self):
        res = self.run_json("pairs", "-c", 3, "-n", 1000, "-q", 2)
        self.assertEqual((res["publishers"], res["subscribers"]), (3, 3))
        self.assertEqual(res["qos"], 2)
        self.assert_complete(res, 3000, 1)

    def test_pairs_mqtt5_qos1(self):
        res = self.run_json("pairs", "-c", 2, "-n", 1000, "-q", 1, "-V", 5,
                            "-s", 300)
        self.assertEqual(res["mqtt_version"], "5")
        self.assertEqual(res["payload_size"], 300)
        self.assert_complete(res, 2000, 1)

    def test_fan_out_mqtt5_qos2_window(self):
        res = self.run_json("fan-out", "-c", 3, "-n", 1500, "-q", 2, "-V", 5,
                            "--window", 10, "--inflight", 5)
        self.assertEqual((res["window"], res["inflight"]), (10, 5))
        self.assert_complete(res, 1500, 3)

    def test_large_payloads(self):
        res = self.run_json("pairs", "-c", 1, "-n", 50, "-q", 1,
                            "-s", 200000)
        self.assert_complete(res, 50, 1)

    def test_qos0_accounting(self):
        """QoS 0 may lose messages; the books must still balance."""
        res = self.run_json("fan-in", "-c", 3, "-n", 2000, "-q", 0)
        self.assertEqual(res["sent"], 6000)
        self.assertEqual(res["expected"], 6000)
        unique = res["received"] - res["duplicated"]
        self.assertEqual(unique + res["lost"], res["expected"])
        self.assertEqual(res["duplicated"], 0)

    def test_latency_fixed_rate(self):
        res = self.run_json("latency", "-c", 2, "-r", 2000, "-n", 300,
                            "-q", 1)
        self.assertEqual(res["rate"], 2000)
        self.assert_complete(res, 600, 1)

    def test_latency_default_rate(self):
        res = self.run_json("latency", "-n", 100)
        self.assertEqual(res["rate"], 1000)
        self.assertEqual((res["publishers"], res["subscribers"]), (1, 1))
        self.assertEqual(res["sent"], 100)

    def test_duration_bounds_the_run(self):
        """Without -n the run ends after -d."""
        res = self.run_json("pairs", "-c", 2, "-d", 0.5, "-q", 1)
        self.assertGreater(res["sent"], 0)
        self.assertEqual(res["lost"], 0)
        self.assertEqual(res["received"], res["sent"])

    def test_conn(self):
        res = self.run_json("conn", "-c", 200, "--hold", 0.2)
        self.assertEqual(res["scenario"], "conn")
        self.assertEqual(res["connections"], 200)
        self.assertEqual(res["connect"]["attempted"], 200)
        self.assertEqual(res["connect"]["connected"], 200)
        self.assertEqual(res["connect"]["failed"], 0)
        self.assertEqual(res["connect"]["latency_us"]["count"], 200)
        self.assertEqual(res["sent"], 0)

    def test_conn_rate_and_inflight(self):
        res = self.run_json("conn", "-c", 30, "-r", 300, "--inflight", 2,
                            "--hold", 0, "-V", 5)
        self.assertEqual(res["connect"]["connected"], 30)

    def test_text_summary(self):
        rc, out, err = bench("fan-out", "-c", 2, "-n", 100, "-q", 1,
                             "-h", "127.0.0.1", "-p", self.port)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("moat bench fan-out: 1 publisher -> "
                                       "2 subscribers"), out)
        for label in ("broker", "connected", "sent", "received", "lost",
                      "duplicated", "out of order", "latency"):
            self.assertRegex(out, r"(?m)^  %s " % label)
        self.assertIn("received      200 of 200", out)
        self.assertEqual(err, "")  # no progress line when not a terminal

    def test_custom_topic_prefix(self):
        res = self.run_json("pairs", "-c", 1, "-n", 10, "-t", "lab/run 1")
        self.assertEqual(res["topic"], "lab/run 1")
        self.assertEqual(res["received"], 10)


class BenchTLS(unittest.TestCase):
    """The same client over TLS (OpenSSL, non-blocking)."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("no openssl command")
        cls.pki = tempfile.TemporaryDirectory(prefix="moat-bench-pki-")
        d = cls.pki.name
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
             "-days", "2", "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=60)
        os.chmod(os.path.join(d, "key.pem"), 0o600)
        cls.ca = os.path.join(d, "cert.pem")
        key = os.path.join(d, "key.pem")
        cls.broker = Broker(GENEROUS + "listener 0 127.0.0.1\n"
                            "certfile %s\nkeyfile %s\n"
                            "listener 0 127.0.0.1\nprotocol websockets\n"
                            "listener 0 127.0.0.1\nprotocol websockets\n"
                            "certfile %s\nkeyfile %s\n"
                            % (cls.ca, key, cls.ca, key))
        cls.broker.start()
        cls.tls_port = cls.broker.tls_ports[0]
        cls.ws_port = cls.broker.ws_ports[0]
        cls.wss_port = cls.broker.wss_ports[0]

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        cls.broker.dir.cleanup()
        cls.pki.cleanup()
        if rc != 0:
            raise AssertionError("moatd exit status %d" % rc)

    def test_verified(self):
        rc, out, err = bench("pairs", "-c", 2, "-n", 500, "-q", 1,
                             "-h", "127.0.0.1", "-p", self.tls_port,
                             "--cafile", self.ca, "--json")
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertTrue(res["tls"])
        self.assertEqual(res["received"], 1000)
        self.assertEqual(res["lost"], 0)

    def test_by_name_mqtt5(self):
        rc, out, err = bench("fan-in", "-c", 2, "-n", 300, "-q", 1, "-V", 5,
                             "-h", "localhost", "-p", self.tls_port,
                             "--cafile", self.ca, "--json")
        if rc != 0 and "connect:" in err:
            self.skipTest("localhost does not resolve to 127.0.0.1 first")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["received"], 600)

    def test_insecure_conn(self):
        rc, out, err = bench("conn", "-c", 20, "--hold", 0, "--insecure",
                             "-h", "127.0.0.1", "-p", self.tls_port,
                             "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["connect"]["connected"], 20)

    def test_websockets(self):
        """The same client over ws:// and wss:// (the transport stack's
        WebSocket client layer), every message accounted for."""
        for name, args in (("ws", ["-p", self.ws_port, "--ws"]),
                           ("wss", ["-p", self.wss_port, "--ws",
                                    "--cafile", self.ca])):
            for scenario, clients, n, want in (("pairs", 3, 400, 1200),
                                               ("fan-out", 4, 300, 1200)):
                with self.subTest(name, scenario=scenario):
                    rc, out, err = bench(scenario, "-c", clients, "-n", n,
                                         "-q", 1, "-h", "127.0.0.1",
                                         "--json", *args)
                    self.assertEqual(rc, 0, err)
                    res = json.loads(out)
                    self.assertEqual(res["received"], want)
                    self.assertEqual(res["lost"], 0)
                    self.assertEqual(res["duplicated"], 0)
        rc, out, err = bench("pairs", "-c", 1, "-n", 10, "-h", "127.0.0.1",
                             "-p", self.ws_port, "--ws", "--ws-path",
                             "/nope")
        self.assertEqual(rc, 1)
        self.assertIn("WebSocket", err)

    def test_unverifiable_certificate_fails(self):
        """Verification is on by default: a self-signed broker is refused."""
        rc, out, err = bench("conn", "-c", 2, "--hold", 0, "--tls",
                             "-h", "127.0.0.1", "-p", self.tls_port)
        self.assertEqual(rc, 1)
        self.assertIn("certificate verify failed", err)
        self.assertIn("2 failed", out)


class BenchErrors(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        cases = [
            [],
            ["bogus"],
            ["fan-in", "-q", "3"],
            ["fan-in", "-s", "23"],
            ["fan-in", "-c", "0"],
            ["fan-in", "-c", "100001"],
            ["fan-in", "-d", "0"],
            ["fan-in", "-d", "nan"],
            ["fan-in", "-d", "3601"],
            ["fan-in", "-p", "0"],
            ["fan-in", "-p"],
            ["fan-in", "-V", "4"],
            ["fan-in", "-t", "a/#"],
            ["fan-in", "-t", ""],
            ["fan-in", "--inflight", "0"],
            ["fan-in", "--window", "-1"],
            ["fan-in", "--json=yes"],
            ["fan-in", "--nope"],
            ["fan-in", "extra"],
            ["fan-in", "-qq"],
            ["latency", "-r", "0"],
            ["pairs", "-P", "secret"],
        ]
        for args in cases:
            with self.subTest(args=args):
                rc, out, err = bench(*args)
                self.assertEqual(rc, 2, (out, err))
                self.assertEqual(out, "")
                self.assertTrue(err.startswith("moat bench: ") or
                                err.startswith("Usage:"), err)

    def test_help(self):
        for args in (["bench", "--help"], ["help", "bench"],
                     ["bench", "fan-in", "--help"]):
            r = subprocess.run([MOAT] + args, stdout=subprocess.PIPE,
                               timeout=30)
            self.assertEqual(r.returncode, 0)
            text = r.stdout.decode()
            for word in ("fan-in", "fan-out", "pairs", "latency", "conn",
                         "--json", "--window", "--inflight", "--cafile"):
                self.assertIn(word, text)
        r = subprocess.run([MOAT, "--help"], stdout=subprocess.PIPE,
                           timeout=30)
        self.assertIn("bench", r.stdout.decode())

    def test_no_broker_exits_1(self):
        port = free_port()
        rc, out, err = bench("pairs", "-c", 2, "-n", 10, "-h", "127.0.0.1",
                             "-p", port, "--json")
        self.assertEqual(rc, 1)
        res = json.loads(out)
        self.assertEqual(res["connect"]["connected"], 0)
        self.assertGreater(res["errors"], 0)
        self.assertIn("Connection refused", res["first_error"])
        self.assertIn("Connection refused", err)

    def test_unresolvable_host_exits_1(self):
        rc, out, err = bench("conn", "-c", 1, "-h", "no-such-host.invalid")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("cannot resolve", err)

    def test_refused_and_authenticated_clients(self):
        """Without credentials the broker refuses (the CONNACK code is
        reported); with -u and MOAT_PASSWORD the run succeeds."""
        files = {"pw": password_file_text({"bench": "s3cret-bench-pw"})}
        conf = "allow_anonymous false\npassword_file @DIR@/pw\n" + GENEROUS
        with Broker(conf, files=files) as b:
            rc, out, err = bench("conn", "-c", 3, "--hold", 0,
                                 "-h", "127.0.0.1", "-p", b.port, "--json")
            self.assertEqual(rc, 1)
            res = json.loads(out)
            self.assertEqual(res["connect"]["failed"], 3)
            self.assertRegex(res["first_error"], r"CONNACK code [45]")
            env = dict(os.environ, MOAT_PASSWORD="s3cret-bench-pw")
            r = subprocess.run(
                [MOAT, "bench", "pairs", "-c", "2", "-n", "100", "-q", "1",
                 "-u", "bench", "-h", "127.0.0.1", "-p", str(b.port),
                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, timeout=RUN_TIMEOUT)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["received"], 200)

    def test_broker_gone_mid_run(self):
        """The broker stops during the run: the run ends early with
        errors, exit 1, and still a report."""
        b = Broker(GENEROUS).start()
        try:
            p = subprocess.Popen(
                [MOAT, "bench", "pairs", "-c", "2", "-d", "60", "-h",
                 "127.0.0.1", "-p", str(b.port), "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Let the run start (bounded), then stop the broker.
            for _ in range(250):
                if p.poll() is not None or \
                        b.read_log().count(" connected") >= 4:
                    break
                time.sleep(0.02)
            time.sleep(0.2)
            b.stop()
            out, err = p.communicate(timeout=RUN_TIMEOUT)
        finally:
            if b.proc.poll() is None:
                b.stop()
            b.dir.cleanup()
        self.assertEqual(p.returncode, 1, err)
        res = json.loads(out.decode())
        self.assertGreater(res["errors"], 0)
        self.assertLess(res["publish_s"], 60)

if __name__ == "__main__":
    unittest.main()
