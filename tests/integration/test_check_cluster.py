"""moatd --check and moat audit --config on cluster mode's NATS settings
(AUD-CL-01..03, docs/security-checks.md, docs/cluster.md).

Each test writes a moatd.conf into a private temporary directory and
lints it; nothing connects to NATS.
"""
import os
import subprocess
import sys
import json
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from moat_harness import MOAT  # noqa: E402
from test_check import CheckBase, find, ids  # noqa: E402

NET = "nats://10.0.0.1:4222,nats://10.0.0.2:4222"
LOCAL = "nats://127.0.0.1:4222,nats://[::1]:4223"


class ClusterFindings(CheckBase):
    def lint(self, text):
        self.c.write("moatd.conf", "listener 1883 127.0.0.1\n" + text)
        return self.c.json("moatd.conf")

    def test_cluster_off_has_no_cluster_findings(self):
        rc, rep = self.lint("")
        self.assertFalse([i for i in ids(rep) if i.startswith("AUD-CL")])

    def test_plaintext_unauthenticated_network(self):
        rc, rep = self.lint("cluster_nats_url %s\ncluster_node_id a\n" % NET)
        self.assertEqual(rc, 1, rep)
        tls = find(rep, "AUD-CL-01")
        self.assertEqual(len(tls), 1, rep)
        self.assertEqual(tls[0]["severity"], "high")
        self.assertIn("moatd.conf:2", tls[0]["evidence"])
        self.assertIn("2 of 2 NATS servers", tls[0]["evidence"])
        auth = find(rep, "AUD-CL-02")
        self.assertEqual([f["severity"] for f in auth], ["high"])

    def test_loopback_is_lower(self):
        rc, rep = self.lint("cluster_nats_url %s\n" % LOCAL)
        self.assertEqual([f["severity"] for f in find(rep, "AUD-CL-01")],
                         ["low"])
        self.assertEqual([f["severity"] for f in find(rep, "AUD-CL-02")],
                         ["medium"])
        self.assertEqual(rc, 0, rep)

    def test_one_plaintext_server_of_three(self):
        rc, rep = self.lint("cluster_nats_url tls://10.0.0.1:4222,"
                            "nats://10.0.0.2:4222,tls://10.0.0.3:4222\n")
        tls = find(rep, "AUD-CL-01")
        self.assertEqual(len(tls), 1, rep)
        self.assertIn("1 of 3", tls[0]["evidence"])
        self.assertIn("nats://10.0.0.2:4222", tls[0]["evidence"])

    def test_tls_and_password_file_pass(self):
        self.c.tls_files()
        self.c.write("nats-pass", "s3cret-nats-password\n")
        rc, rep = self.lint(
            "cluster_nats_url tls://10.0.0.1:4222,tls://10.0.0.2:4222\n"
            "cluster_nats_cafile cert.pem\n"
            "cluster_nats_user node1\n"
            "cluster_nats_password_file nats-pass\n")
        self.assertFalse([i for i in ids(rep) if i.startswith("AUD-CL")],
                         rep)
        # a nats:// URL with a CA is TLS too (libnats: secure options)
        rc, rep = self.lint(
            "cluster_nats_url nats://10.0.0.1:4222\n"
            "cluster_nats_cafile cert.pem\n"
            "cluster_nats_certfile cert.pem\n"
            "cluster_nats_keyfile key.pem\n")
        self.assertFalse([i for i in ids(rep) if i.startswith("AUD-CL")],
                         rep)

    def test_secret_files_are_checked(self):
        self.c.tls_files()
        self.c.write("nats-pass", "s3cret-nats-password\n", 0o644)
        os.chmod(self.c.path("key.pem"), 0o640 | 0o004)
        rc, rep = self.lint(
            "cluster_nats_url tls://10.0.0.1:4222\n"
            "cluster_nats_cafile cert.pem\n"
            "cluster_nats_certfile cert.pem\n"
            "cluster_nats_keyfile key.pem\n"
            "cluster_nats_user node1\n"
            "cluster_nats_password_file nats-pass\n")
        ev = " ".join(f["evidence"] for f in find(rep, "AUD-CFG-04"))
        self.assertIn("cluster_nats_password_file", ev)
        self.assertIn("cluster_nats_keyfile", ev)
        self.assertEqual(rc, 1)

    def test_credentials_in_url(self):
        rc, rep = self.lint("cluster_nats_url tls://node1:hunter2@"
                            "10.0.0.1:4222\n")
        self.assertEqual([f["severity"] for f in find(rep, "AUD-CL-03")],
                         ["medium"])
        # the URL's credentials count as credentials, and never appear
        self.assertNotIn("AUD-CL-02", ids(rep))
        self.assertNotIn("hunter2", json.dumps(rep))
        # plaintext: the evidence shows the server, masked
        rc, rep = self.lint("cluster_nats_url nats://node1:hunter2@"
                            "10.0.0.1:4222\n")
        self.assertNotIn("hunter2", json.dumps(rep))
        self.assertIn("nats://***@10.0.0.1:4222",
                      find(rep, "AUD-CL-01")[0]["evidence"])
        # a configuration others can read now holds a password
        os.chmod(self.c.path("moatd.conf"), 0o644)
        rc, rep = self.c.json("moatd.conf")
        self.assertTrue([f for f in find(rep, "AUD-CFG-04")
                         if "holds a password" in f["evidence"]], rep)

    def test_audit_config_reports_the_same(self):
        self.c.write("moatd.conf", "cluster_nats_url %s\n" % NET)
        r = subprocess.run([MOAT, "audit", "--config",
                            self.c.path("moatd.conf"), "--format", "json"],
                           capture_output=True, timeout=60)
        rep = json.loads(r.stdout.decode())
        found = json.dumps(rep)
        self.assertIn("AUD-CL-01", found)
        self.assertIn("AUD-CL-02", found)


if __name__ == "__main__":
    unittest.main()
