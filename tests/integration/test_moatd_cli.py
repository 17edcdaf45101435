"""moatd's command line and configuration handling."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import MOATD, Broker, raw_connect, connect_packet, \
    read_packet  # noqa: E402


def run(args, timeout=10):
    return subprocess.run([MOATD] + args, capture_output=True, text=True,
                          timeout=timeout)


def with_config(text):
    d = tempfile.TemporaryDirectory(prefix="moat-cfg-")
    path = os.path.join(d.name, "moatd.conf")
    with open(path, "w") as f:
        f.write(text)
    return d, path


class MoatdCli(unittest.TestCase):
    def test_help_and_version(self):
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("Usage: moatd", r.stdout)
        self.assertIn("--config", r.stdout)
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^moatd \d+\.\d+\.\d+")

    def test_unknown_option_is_usage_error(self):
        r = run(["--no-such-option"])
        self.assertEqual(r.returncode, 2)
        r = run(["stray-argument"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("unexpected argument", r.stderr)

    def test_help_config_lists_every_directive(self):
        r = run(["--help-config"])
        self.assertEqual(r.returncode, 0)
        for d in ("listener", "workers", "max_packet_size",
                  "max_inflight_messages", "max_queued_messages",
                  "max_queued_bytes", "max_connections", "max_keepalive",
                  "connect_timeout", "sys_interval",
                  "allow_insecure_listener"):
            self.assertIn(d + "  (", r.stdout)

    def test_configuration_doc_matches_directive_table(self):
        r = run(["--help-config"])
        doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "configuration.md")
        with open(doc) as f:
            text = f.read()
        section = text.split("<!-- BEGIN GENERATED -->\n```\n", 1)[1]
        section = section.split("```\n<!-- END GENERATED -->", 1)[0]
        self.assertEqual(section, r.stdout,
                         "docs/configuration.md is stale: run "
                         "scripts/gen-config-doc.sh build/moatd")

    def test_unknown_directive_names_file_and_line(self):
        d, path = with_config("workers 1\n# comment\nbogus_directive 3\n")
        with d:
            r = run(["-c", path, "--test-config"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:3: bogus_directive: unknown directive" % path,
                      r.stderr)

    def test_bad_values_are_errors(self):
        cases = [
            ("workers many\n", "invalid value 'many'"),
            ("max_packet_size 10\n", "out of range"),
            ("max_packet_size 2g\n", "out of range"),
            ("listener 99999\n", "invalid port"),
            ("listener 1883 not-an-address\n", "not a numeric"),
            ("retain_available maybe\n", "expected true or false"),
            ("log_level loud\n", "expected error, warning"),
            ("workers\n", "expected exactly one value"),
            ("workers 1 2\n", "expected exactly one value"),
            ("workers 1\x01\n", "control character"),
        ]
        for text, msg in cases:
            with self.subTest(text=text):
                d, path = with_config(text)
                with d:
                    r = run(["-c", path, "-t"])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(path + ":1:", r.stderr)
                self.assertIn(msg, r.stderr)

    def test_units(self):
        d, path = with_config("max_packet_size 64k\nconnect_timeout 2m\n"
                              "max_queued_bytes 1mb\n")
        with d:
            r = run(["-c", path, "-t"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stdout)

    def test_missing_file(self):
        r = run(["-c", "/nonexistent/moatd.conf"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/moatd.conf: cannot open", r.stderr)

    def test_network_listener_refused_without_opt_in(self):
        d, path = with_config("listener 18999 0.0.0.0\n")
        with d:
            r = run(["-c", path, "-t"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("allow_insecure_listener", r.stderr)
        d, path = with_config("listener 18999\n")
        with d:
            r = run(["-c", path, "-t"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("all addresses", r.stderr)

    def test_network_listener_with_opt_in_warns_loudly(self):
        # Bound to ::1 only (loopback), but the warning logic is exercised
        # through an explicit non-loopback opt-in checked by -t.
        d, path = with_config("listener 18999 0.0.0.0\n"
                              "allow_insecure_listener true\n"
                              "allow_anonymous true\n")
        with d:
            r = run(["-c", path, "-t"])
        self.assertEqual(r.returncode, 0, r.stderr)
        # Opting in to an insecure listener does not make anonymous
        # clients welcome on it: without credentials nobody could connect.
        d, path = with_config("listener 18999 0.0.0.0\n"
                              "allow_insecure_listener true\n")
        with d:
            r = run(["-c", path, "-t"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("no client could connect", r.stderr)

    def test_loopback_ipv6_listener(self):
        b = Broker(config="listener 0 ::1\n")
        with b:
            self.assertIn("listening on [::1]:", b.read_log())

    def test_clean_shutdown_on_sigterm(self):
        b = Broker()
        b.start()
        s = raw_connect(b.port)
        s.sendall(connect_packet("shutdown-test"))
        first, body = read_packet(s)
        self.assertEqual((first, body), (0x20, b"\x00\x00"))
        self.assertEqual(b.stop(), 0)
        log = b.read_log()
        self.assertIn("shutting down", log)
        self.assertIn("stopped", log)
        s.close()
        b.dir.cleanup()


if __name__ == "__main__":
    unittest.main()
