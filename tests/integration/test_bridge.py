"""Bridges (docs/bridges.md): moatd connecting out to remote brokers.

Real brokers on loopback, each a child of the test: moatd, and Debian's
mosquitto (/usr/sbin/mosquitto 2.0.11) both as the remote of a moatd
bridge and as the origin of a mosquitto bridge to moatd.  Every pair runs
over TLS (a throw-away PKI made with the openssl tool), in MQTT 3.1.1 and
5.0:

  MoatToMoat*        out and in topics with prefixes, a both-direction
                     topic that does not echo, QoS 1 with no loss while
                     the remote restarts, $SYS state, /metrics
  MoatToMosquitto*   the same against mosquitto as the remote
  MosquittoToMoat*   mosquitto's own bridge to moatd (try_private, v5)
  Policy             the local ACL and leak_policy on bridged traffic (the
                     bridge is the user named by the connection)
  Hostile            a remote that sends garbage, never answers CONNECT,
                     or sends a huge packet: logged, backed off, bounded
  Secrets            remote_password only in a private file
Clients are paho-mqtt.  No timing assertions: waits are bounded.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from moat_harness import (Broker, MOATD, can_connect, free_port,
                          password_file_text, proc_status_kib, wait_for,
                          write_private)
from test_metrics import get, http_port

MOSQUITTO = "/usr/sbin/mosquitto"
HAVE_MOSQUITTO = os.path.exists(MOSQUITTO)
PKI = None
BRIDGE_PW = "Br1dge-T3st-pw!x"
WAIT = 15.0


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), cwd=PKI.name,
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("openssl %s:\n%s" % (args, r.stderr))


def setUpModule():
    global PKI
    PKI = tempfile.TemporaryDirectory(prefix="moat-bridge-pki-")
    os.chmod(PKI.name, 0o755)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=moat bridge CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(PKI.name, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
            "-days", "2", "-extfile", "ext")


def tearDownModule():
    PKI.cleanup()


def pki(name):
    with open(os.path.join(PKI.name, name)) as f:
        return f.read()


def tls_files():
    return {"ca.crt": pki("ca.crt"), "server.crt": pki("server.crt"),
            "server.key": pki("server.key")}


# ---- clients -----------------------------------------------------------

class Sub:
    """A paho subscriber that records (topic, payload, retain)."""

    def __init__(self, port, filters, cid=None, clean=True, qos=1,
                 user=None):
        self.msgs = []
        self.lock = threading.Lock()
        self.subacked = threading.Event()
        self.c = mqtt.Client(cid or "", clean_session=clean)
        if user:
            self.c.username_pw_set(*user)
        self.c.on_message = self._msg
        self.c.on_subscribe = lambda *a: self.subacked.set()
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        self.c.subscribe([(f, qos) for f in filters])
        if not self.subacked.wait(WAIT):
            raise AssertionError("no SUBACK")

    def _msg(self, client, userdata, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload, m.retain))

    def payloads(self, topic=None):
        with self.lock:
            return [p for t, p, _ in self.msgs if topic is None or t == topic]

    def wait_for(self, topic, payload, timeout=WAIT):
        ok = wait_for(lambda: payload in self.payloads(topic), timeout)
        if not ok:
            raise AssertionError("no %r on %s; got %r" %
                                 (payload, topic, self.msgs[-10:]))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish(port, topic, payload, qos=1, retain=False):
    c = mqtt.Client()
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    info = c.publish(topic, payload, qos=qos, retain=retain)
    info.wait_for_publish()
    c.disconnect()
    c.loop_stop()


def publish_many(port, topic, payloads):
    c = mqtt.Client()
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    infos = [c.publish(topic, p, qos=1) for p in payloads]
    for i in infos:
        i.wait_for_publish()
    c.disconnect()
    c.loop_stop()


def until_bridged(src_port, src_topic, sub, dst_topic, timeout=WAIT):
    """Publish probes on src until sub sees one on dst (the bridge is up
    and subscribed both sides)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        publish(src_port, src_topic, b"probe-%d" % n, qos=0)
        if wait_for(lambda: any(p.startswith(b"probe-")
                                for p in sub.payloads(dst_topic)), 0.3):
            return
    raise AssertionError("the bridge never carried %s to %s" %
                         (src_topic, dst_topic))


# ---- brokers -----------------------------------------------------------

class Mosquitto:
    """Debian's mosquitto as a child: one plain listener for clients and
    one TLS listener for bridges, on fixed ports (so it can restart)."""

    def __init__(self, extra="", persistence=True):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-bridge-mq-")
        self.dir = self.tmp.name
        os.chmod(self.dir, 0o755)
        for name, data in tls_files().items():
            with open(self.path(name), "w") as f:
                f.write(data)
            os.chmod(self.path(name), 0o644)
        self.port, self.tls_port = free_port(), free_port()
        conf = ("user root\nper_listener_settings false\n"
                "allow_anonymous true\n"
                "listener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
                % (self.port, self.tls_port, self.path("ca.crt"),
                   self.path("server.crt"), self.path("server.key")))
        if persistence:
            conf += ("persistence true\npersistence_location %s/\n"
                     "autosave_interval 1\n" % self.dir)
        with open(self.path("mosquitto.conf"), "w") as f:
            f.write(conf + extra.replace("@DIR@", self.dir))
        self.proc = None
        self.logf = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        self.logf = open(self.path("mosquitto.log"), "a")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-v", "-c", self.path("mosquitto.conf")],
            stdout=self.logf, stderr=subprocess.STDOUT)
        ok = wait_for(lambda: self.proc.poll() is not None or
                      all(can_connect(p) for p in
                          (self.port, self.tls_port)), 10)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("mosquitto did not start:\n" + self.log())
        return self

    def log(self):
        with open(self.path("mosquitto.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.logf:
            self.logf.close()
            self.logf = None

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()


def finish(broker):
    """Stop a moatd of the test, check it ended cleanly, remove its files."""
    rc = broker.stop()
    log = broker.read_log()
    broker.dir.cleanup()
    if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
        raise AssertionError("moatd exit %d:\n%s" % (rc, log[-4000:]))


def moat_remote(persistence=True, tls=None):
    """A moatd that bridges connect to: a plain listener for clients (fixed
    port), a TLS listener for the bridge (on port tls, or a free one), the
    bridge's user in the password file and the ACL (with the notification
    topic granted)."""
    tls = tls or free_port()
    conf = ("listener %d 127.0.0.1\ncertfile @DIR@/server.crt\n"
            "keyfile @DIR@/server.key\n"
            "password_file @DIR@/passwd\nacl_file @DIR@/acl\n" % tls)
    if persistence:
        conf += "persistence true\npersistence_location @DIR@/store\n"
    acl = ("topic readwrite #\n"
           "user bridge\ntopic readwrite #\n"
           "topic readwrite $SYS/broker/connection/#\n")
    files = dict(tls_files())
    files["passwd"] = password_file_text({"bridge": BRIDGE_PW})
    files["acl"] = acl
    b = Broker(conf, port=free_port(), files=files)
    b.tls_port = tls
    return b


def bridge_conf(name, port, version, topics, extra=""):
    """A connection section to 127.0.0.1:port over TLS, with the CA and
    the password file in the origin's directory."""
    return ("connection %s\naddress 127.0.0.1:%d\n"
            "bridge_cafile @DIR@/ca.crt\nremote_username bridge\n"
            "remote_password_file @DIR@/bridge.pw\n"
            "bridge_protocol_version %s\nrestart_timeout 1 2\n"
            "keepalive_interval 10\n%s%s"
            % (name, port, version, topics, extra))


TOPICS = ("topic site/# out 1 \"\" a/\n"   # local site/x -> remote a/site/x
          "topic cmd/# in 1 \"\" a/\n"     # remote a/cmd/x -> local cmd/x
          "topic both/# both 1\n"
          "topic q2/# both 2\n")


ADMIN = ("admin", "Adm1n-Br1dge-T3st!")
ORIGIN_ACL = ("topic readwrite #\n"
              "user admin\ntopic read $SYS/#\n"
              "user toremote\ntopic readwrite #\n")


def moat_origin(port, version, extra_conf="", topics=TOPICS, files=None):
    """The bridging moatd: anonymous clients on loopback, an admin that
    may read $SYS, the bridge as the user toremote (its connection)."""
    f = {"ca.crt": pki("ca.crt"), "bridge.pw": BRIDGE_PW + "\n",
         "passwd": password_file_text({ADMIN[0]: ADMIN[1]}),
         "acl": ORIGIN_ACL}
    f.update(files or {})
    extra_conf = ("password_file @DIR@/passwd\nacl_file @DIR@/acl\n" +
                  extra_conf)
    return Broker("listener 0 127.0.0.1\nprotocol http\n" + extra_conf +
                  bridge_conf("toremote", port, version, topics),
                  port=free_port(), files=f)


# ---- the checks shared by every pair -------------------------------------

class BridgePair:
    """origin_port: where local clients of the bridging broker connect;
    remote_port: the remote's plain listener."""

    def check_out_and_in(self, origin_port, remote_port):
        rsub = Sub(remote_port, ["#"])
        osub = Sub(origin_port, ["#"])
        try:
            until_bridged(origin_port, "site/probe", rsub, "a/site/probe")
            publish(origin_port, "site/t1", b"out-1")
            rsub.wait_for("a/site/t1", b"out-1")
            until_bridged(remote_port, "a/cmd/probe", osub, "cmd/probe")
            publish(remote_port, "a/cmd/c1", b"in-1")
            osub.wait_for("cmd/c1", b"in-1")
            # Outside every topic line: not carried either way (the
            # messages after them on the same paths arrive).
            publish(origin_port, "other/x", b"no-o")
            publish(remote_port, "a/other", b"no-r")
            publish(origin_port, "site/t2", b"out-2")
            publish(remote_port, "a/cmd/c2", b"in-2")
            rsub.wait_for("a/site/t2", b"out-2")
            osub.wait_for("cmd/c2", b"in-2")
            self.assertNotIn(b"no-o", rsub.payloads())
            self.assertNotIn(b"no-r", osub.payloads())
        finally:
            rsub.close()
            osub.close()

    def check_no_echo(self, origin_port, remote_port):
        """both/#: a message crosses once and does not come back.  The
        sentinel is published on the far side after the message got there,
        so it follows any echo through the same bridge queue."""
        osub = Sub(origin_port, ["both/#"])
        rsub = Sub(remote_port, ["both/#"])
        try:
            until_bridged(origin_port, "both/probe", rsub, "both/probe")
            until_bridged(remote_port, "both/probe2", osub, "both/probe2")
            for src, dst, ssub, dsub, tag in (
                    (origin_port, remote_port, osub, rsub, b"o"),
                    (remote_port, origin_port, rsub, osub, b"r")):
                publish(src, "both/x", b"x-" + tag)
                dsub.wait_for("both/x", b"x-" + tag)
                publish(dst, "both/sentinel", b"s-" + tag)
                ssub.wait_for("both/sentinel", b"s-" + tag)
                self.assertEqual(ssub.payloads("both/x").count(b"x-" + tag), 1,
                                 "echoed back: %r" % ssub.msgs)
                self.assertEqual(dsub.payloads("both/x").count(b"x-" + tag), 1)
        finally:
            osub.close()
            rsub.close()

    def check_restart(self, origin_port, remote_port, restart):
        """QoS 1 out while the remote restarts: nothing lost.  The remote
        keeps the subscriber's session (persistence); 20 messages go
        before, 20 while it is down (queued here), 20 after."""
        sub = Sub(remote_port, ["a/site/q/#"], cid="qsub", clean=False)
        try:
            until_bridged(origin_port, "site/q/probe", sub, "a/site/q/probe")
        finally:
            sub.close()
        payloads = [b"m-%03d" % i for i in range(60)]
        publish_many(origin_port, "site/q/n", payloads[:20])
        restart(lambda: publish_many(origin_port, "site/q/n",
                                     payloads[20:40]))
        publish_many(origin_port, "site/q/n", payloads[40:])
        sub = Sub(remote_port, ["a/site/q/#"], cid="qsub", clean=False)
        try:
            ok = wait_for(lambda: set(payloads) <=
                          set(sub.payloads("a/site/q/n")), 30)
            self.assertTrue(ok, "lost: %r" % sorted(
                set(payloads) - set(sub.payloads("a/site/q/n"))))
        finally:
            sub.close()


class PairTests(BridgePair):
    """The tests every pair runs: self.origin bridges to self.remote, each
    with a plain client port."""

    def test_out_and_in(self):
        self.check_out_and_in(self.origin.port, self.remote.port)

    def test_no_echo(self):
        self.check_no_echo(self.origin.port, self.remote.port)

    def test_qos2_both_ways(self):
        """QoS 2 end to end: each message arrives once, at QoS 2."""
        osub = Sub(self.origin.port, ["q2/#"], qos=2)
        rsub = Sub(self.remote.port, ["q2/#"], qos=2)
        try:
            until_bridged(self.origin.port, "q2/probe", rsub, "q2/probe")
            until_bridged(self.remote.port, "q2/probe2", osub, "q2/probe2")
            for i in range(5):
                publish(self.origin.port, "q2/o", b"o%d" % i, qos=2)
                publish(self.remote.port, "q2/r", b"r%d" % i, qos=2)
            for i in range(5):
                rsub.wait_for("q2/o", b"o%d" % i)
                osub.wait_for("q2/r", b"r%d" % i)
            self.assertEqual(sorted(rsub.payloads("q2/o")),
                             [b"o%d" % i for i in range(5)])
            self.assertEqual(sorted(osub.payloads("q2/r")),
                             [b"r%d" % i for i in range(5)])
        finally:
            osub.close()
            rsub.close()


def restart_test():
    """test_remote_restart_qos1, for the pairs whose remote is restarted
    (mosquitto's stop() says nothing, moatd's returns its status)."""
    def test_remote_restart_qos1(self):
        def restart(meanwhile):
            self.assertIn(self.remote.stop(), (0, None))
            meanwhile()
            self.remote.start()
        self.check_restart(self.origin.port, self.remote.port, restart)
        log = self.origin.read_log()
        self.assertIn("bridge toremote: connection to 127.0.0.1:%d lost"
                      % self.remote.tls_port, log)
        self.assertGreaterEqual(log.count("bridge toremote: connected to"),
                                2)
    return test_remote_restart_qos1


# ---- moatd <-> moatd -----------------------------------------------------

class MoatToMoat(PairTests):
    version = "mqttv311"

    def setUp(self):
        self.remote = moat_remote().start()
        self.origin = moat_origin(self.remote.tls_port, self.version).start()

    def tearDown(self):
        finish(self.origin)
        finish(self.remote)

    test_remote_restart_qos1 = restart_test()

    def test_connected_over_tls(self):
        rsub = Sub(self.remote.port, ["a/#"])
        try:
            until_bridged(self.origin.port, "site/m", rsub, "a/site/m")
        finally:
            rsub.close()
        self.assertIn("bridge toremote: connected to 127.0.0.1:%d (MQTT %s "
                      "over TLS" % (self.remote.tls_port,
                                    "5.0" if self.version == "mqttv50"
                                    else "3.1.1"), self.origin.read_log())

    def test_state_and_metrics(self):
        rsub = Sub(self.remote.port, ["a/#"])
        try:
            until_bridged(self.origin.port, "site/m", rsub, "a/site/m")
        finally:
            rsub.close()
        http = http_port(self.origin)
        ok = wait_for(lambda: 'moat_bridge_up{bridge="toremote"} 1' in
                      get(http)[2], 5)
        body = get(http)[2]
        self.assertTrue(ok, body)
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=body,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('moat_bridge_connects_total{bridge="toremote"} 1', body)
        self.assertIn('moat_bridge_messages_sent_total{bridge="toremote"}',
                      body)
        # The remote's notification: retained 1 on its notification
        # topic (mosquitto's default name).
        n = Sub(self.remote.port, ["$SYS/broker/connection/+/state"],
                user=("bridge", BRIDGE_PW))
        try:
            wait_for(lambda: n.payloads(), 5)
            self.assertEqual(n.payloads(), [b"1"])
        finally:
            n.close()
        # The local state, retained in $SYS for those who may read it.
        st = Sub(self.origin.port, ["$SYS/broker/connection/toremote/state"],
                 user=ADMIN)
        try:
            st.wait_for("$SYS/broker/connection/toremote/state", b"1")
        finally:
            st.close()


# ---- moatd -> mosquitto --------------------------------------------------

@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto not installed")
class MoatToMosquitto(PairTests):
    version = "mqttv311"

    def setUp(self):
        self.remote = Mosquitto().start()
        self.origin = moat_origin(self.remote.tls_port, self.version).start()

    def tearDown(self):
        self.remote.cleanup()
        finish(self.origin)

    test_remote_restart_qos1 = restart_test()


# ---- mosquitto -> moatd --------------------------------------------------

@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto not installed")
class MosquittoToMoat(PairTests):
    version = "mqttv311"

    def setUp(self):
        self.remote = moat_remote(persistence=False).start()
        self.origin = Mosquitto(
            "connection toremote\naddress 127.0.0.1:%d\n"
            "bridge_cafile @DIR@/ca.crt\nremote_username bridge\n"
            "remote_password %s\nbridge_protocol_version %s\n"
            "restart_timeout 1\n%s"
            % (self.remote.tls_port, BRIDGE_PW, self.version, TOPICS),
            persistence=False)
        self.origin.start()

    def tearDown(self):
        self.origin.cleanup()
        finish(self.remote)


# Each pair in MQTT 3.1.1 and 5.0: MoatToMoat311, MoatToMoat5, ...
for _base in (MoatToMoat, MoatToMosquitto, MosquittoToMoat):
    for _v, _suffix in (("mqttv311", "311"), ("mqttv50", "5")):
        _name = _base.__name__ + _suffix
        globals()[_name] = type(_name, (_base, unittest.TestCase),
                                {"version": _v})
del _base, _v, _suffix, _name


class Failover(unittest.TestCase):
    def test_back_to_the_first_address(self):
        """round_robin false: the first address is down, the bridge uses
        the second; once the first answers it moves back."""
        first = free_port()
        second = moat_remote(persistence=False).start()
        origin = primary = None
        try:
            origin = Broker(
                "connection toremote\naddress 127.0.0.1:%d 127.0.0.1:%d\n"
                "bridge_cafile @DIR@/ca.crt\nremote_username bridge\n"
                "remote_password_file @DIR@/bridge.pw\nrestart_timeout 1\n"
                "topic site/# out 1 \"\" a/\n" % (first, second.tls_port),
                port=free_port(),
                files={"ca.crt": pki("ca.crt"),
                       "bridge.pw": BRIDGE_PW + "\n"}).start()
            sub = Sub(second.port, ["a/#"])
            try:
                until_bridged(origin.port, "site/x", sub, "a/site/x")
            finally:
                sub.close()
            primary = moat_remote(persistence=False, tls=first).start()
            ok = wait_for(lambda: "answers again; moving back from "
                          "127.0.0.1:%d" % second.tls_port
                          in origin.read_log(), 30)
            self.assertTrue(ok, origin.read_log()[-3000:])
            sub = Sub(primary.port, ["a/#"])
            try:
                until_bridged(origin.port, "site/y", sub, "a/site/y", 30)
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, origin.read_log()[-3000:]))
            finally:
                sub.close()
        finally:
            for b in (origin, primary, second):
                if b:
                    finish(b)


# ---- moatd migrate ----------------------------------------------------------

@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto not installed")
class Migrate(BridgePair, unittest.TestCase):
    """A mosquitto set-up with a TLS bridge to a moatd: mosquitto serves it,
    then the moatd that moatd migrate wrote serves it on the same port;
    the same checks pass against both."""

    def test_migrated_bridge_works(self):
        remote = moat_remote(persistence=False).start()
        d = tempfile.TemporaryDirectory(prefix="moat-bridge-mig-")
        moatd = log = None
        try:
            os.chmod(d.name, 0o755)
            p = lambda *n: os.path.join(d.name, *n)
            write_private(p("ca.crt"), pki("ca.crt"), 0o644)
            write_private(p("acl"), "topic readwrite #\n", 0o644)
            port = free_port()
            write_private(p("mosquitto.conf"), (
                "user root\nlistener %d 127.0.0.1\nallow_anonymous true\n"
                "acl_file %s\n\nconnection toremote\naddress 127.0.0.1:%d\n"
                "bridge_cafile %s\nremote_username bridge\n"
                "remote_password %s\nrestart_timeout 1\n"
                "bridge_protocol_version mqttv50\n%s"
                % (port, p("acl"), remote.tls_port, p("ca.crt"),
                   BRIDGE_PW, TOPICS)), 0o644)
            with open(p("mosquitto.log"), "w") as mlog:
                mq = subprocess.Popen([MOSQUITTO, "-c", p("mosquitto.conf")],
                                      stdout=mlog, stderr=subprocess.STDOUT)
                try:
                    self.assertTrue(wait_for(lambda: can_connect(port), 10))
                    self.check_out_and_in(port, remote.port)
                finally:
                    mq.terminate()
                    mq.wait(10)
            r = subprocess.run([MOATD, "migrate", p("mosquitto.conf"),
                                p("out")], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("bridge lines carried over", r.stdout)
            self.assertNotIn("would not start", r.stdout)
            with open(p("out", "moatd.conf")) as f:
                conf = f.read()
            with open(p("out", "MIGRATION.md")) as f:
                report = f.read()
            self.assertIn("connection toremote\n", conf)
            self.assertIn("remote_password_file bridge-toremote.pw", conf)
            self.assertNotIn(BRIDGE_PW, conf + report)
            st = os.stat(p("out", "bridge-toremote.pw"))
            self.assertEqual(st.st_mode & 0o777, 0o600)
            self.assertIn("## Bridges (1)", report)
            with open(p("out", "acl")) as f:
                self.assertIn("user toremote\ntopic read site/#\n"
                              "topic write cmd/#\ntopic readwrite both/#\n",
                              f.read())
            log = open(p("moatd.log"), "w")
            moatd = subprocess.Popen([MOATD, "-c", p("out", "moatd.conf"),
                                      "-v"], stdout=log,
                                     stderr=subprocess.STDOUT)
            self.assertTrue(wait_for(lambda: can_connect(port), 10))
            self.check_out_and_in(port, remote.port)
            self.check_no_echo(port, remote.port)
        finally:
            if moatd:
                moatd.terminate()
                self.assertEqual(moatd.wait(15), 0)
                log.close()
            remote.stop()
            remote.dir.cleanup()
            d.cleanup()


# ---- the local ACL and leak policy apply to what comes in -------------------

class Policy(unittest.TestCase):
    def test_acl_and_leak_policy_on_bridged_traffic(self):
        acl = ("topic readwrite #\n"
               "user toremote\ntopic write in/ok/#\ntopic write in/leak/#\n"
               "topic read site/#\n")
        # (replaces ORIGIN_ACL: the bridge may write in/ok and in/leak)
        with moat_remote(persistence=False) as remote, moat_origin(
                remote.tls_port, "mqttv50",
                extra_conf="acl_file @DIR@/acl\n"
                           "leak_policy in/leak/# credential block\n",
                topics="topic site/# out 1 \"\" a/\n"
                       "topic # in 1 in/ b/\n",
                files={"acl": acl}) as origin:
            osub = Sub(origin.port, ["in/#"])
            try:
                until_bridged(remote.port, "b/ok/probe", osub, "in/ok/probe")
                publish(remote.port, "b/denied/x", b"acl-denied")
                publish(remote.port, "b/leak/x",
                        b'{"device": "pump-7", "password": "hunter2"}')
                publish(remote.port, "b/ok/x", b"fine")
                osub.wait_for("in/ok/x", b"fine")
                self.assertEqual(osub.payloads("in/denied/x"), [])
                self.assertEqual(osub.payloads("in/leak/x"), [])
                log = origin.read_log()
                self.assertIn("acl denial", log)
                self.assertIn("user toremote", log)
                self.assertRegex(log, r"leak.*credential")
            finally:
                osub.close()


# ---- a hostile remote ------------------------------------------------------

class HostileServer:
    """A TCP server on loopback that answers each connection with
    behaviour(conn); counts connections."""

    def __init__(self, behaviour):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.behaviour = behaviour
        self.count = 0
        self.stopping = False
        self.conns = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.s.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            self.count += 1
            self.conns.append(c)
            try:
                c.settimeout(2)
                self.behaviour(c)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.s.close()


def garbage(c):
    c.recv(4096)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + os.urandom(200))


def silent(c):
    c.recv(4096)  # and never a CONNACK


def huge(c):
    c.recv(4096)
    c.sendall(b"\x20\x02\x00\x00")                 # CONNACK accepted
    c.sendall(b"\x30\xff\xff\xff\x7f" + b"x" * 65536)  # 256 MB PUBLISH


def empty_suback(c):
    """CVE-2024-10525's SUBACK: no reason codes at all."""
    c.recv(4096)
    c.sendall(b"\x20\x02\x00\x00")
    sub = c.recv(4096)                    # SUBSCRIBE: its packet id
    c.sendall(b"\x90\x02" + sub[2:4])


class Hostile(unittest.TestCase):
    def run_against(self, behaviour, expect, extra=""):
        srv = HostileServer(behaviour)
        try:
            with Broker("connect_timeout 1\nconnection evil\n"
                        "address 127.0.0.1:%d\ntopic # both 1\n"
                        "restart_timeout 1 2\n%s" % (srv.port, extra)) as b:
                rss0 = proc_status_kib(b.proc.pid)
                ok = wait_for(lambda: srv.count >= 3 and
                              b.read_log().count("next attempt in") >= 2, 20)
                log = b.read_log()
                self.assertTrue(ok, log[-3000:])
                self.assertIn(expect, log)
                self.assertTrue(b.alive())
                # (growth: a sanitizer build starts large)
                self.assertLess(proc_status_kib(b.proc.pid) - rss0,
                                64 * 1024)
        finally:
            srv.close()
        return log

    def test_garbage(self):
        self.run_against(garbage, "bridge evil: cannot connect to")

    def test_never_connacks(self):
        self.run_against(silent, "no CONNACK within connect_timeout")

    def test_huge_packet(self):
        # (accepted, then the packet: the connection counts as lost)
        srv = HostileServer(huge)
        try:
            with Broker("connection evil\naddress 127.0.0.1:%d\n"
                        "topic # both 1\nrestart_timeout 1 2\n"
                        % srv.port) as b:
                rss0 = proc_status_kib(b.proc.pid)
                ok = wait_for(lambda: b.read_log().count(
                    "exceeds max_packet_size") >= 2, 20)
                log = b.read_log()
                self.assertTrue(ok, log[-3000:])
                self.assertIn("bridge evil: connection to", log)
                self.assertIn("reconnecting in", log)
                self.assertLess(proc_status_kib(b.proc.pid) - rss0,
                                64 * 1024)
        finally:
            srv.close()

    def test_suback_without_codes(self):
        # (the connection was accepted: lost, not failed)
        srv = HostileServer(empty_suback)
        try:
            with Broker("connection evil\naddress 127.0.0.1:%d\n"
                        "topic # in 1\nrestart_timeout 1 2\n"
                        % srv.port) as b:
                ok = wait_for(lambda: b.read_log().count(
                    "malformed packet (packet type 9)") >= 2, 20)
                self.assertTrue(ok, b.read_log()[-3000:])
                self.assertIn("reconnecting in", b.read_log())
        finally:
            srv.close()

    def test_refused_port(self):
        port = free_port()
        with Broker("connection gone\naddress 127.0.0.1:%d\ntopic a/# out\n"
                    "restart_timeout 1\n" % port) as b:
            ok = wait_for(lambda: b.read_log().count(
                "Connection refused; next attempt in 1.0 s") >= 2, 10)
            self.assertTrue(ok, b.read_log()[-2000:])


class Bounds(unittest.TestCase):
    def test_queue_bounded_while_the_remote_is_away(self):
        """QoS 1 for a remote that is down waits within max_queued_messages;
        the rest is dropped and counted, never kept."""
        with Broker("listener 0 127.0.0.1\nprotocol http\n"
                    "max_queued_messages 10\nconnection gone\n"
                    "address 127.0.0.1:%d\ntopic q/# out 1\n"
                    "restart_timeout 1\n" % free_port()) as b:
            http = http_port(b)
            publish_many(b.port, "q/x", [b"%d" % i for i in range(30)])
            want = ('moat_bridge_queued_messages{bridge="gone"} 10',
                    'moat_bridge_dropped_messages_total{bridge="gone"} 20',
                    'moat_bridge_up{bridge="gone"} 0')
            ok = wait_for(lambda: all(w in get(http)[2] for w in want), 5)
            self.assertTrue(ok, get(http)[2])
            self.assertEqual(b.read_log().count(
                "queue full (max_queued_messages)"), 1)


# ---- secrets ---------------------------------------------------------------

class Secrets(unittest.TestCase):
    def test_check_reports_plaintext_bridges_off_loopback(self):
        """moatd --check: AUD-BR-01 for a bridge without TLS to a network
        address and for bridge_insecure; none for one on loopback."""
        d = tempfile.TemporaryDirectory(prefix="moat-bridge-check-")
        try:
            conf = os.path.join(d.name, "moatd.conf")
            write_private(conf, (
                "connection far\naddress 192.0.2.1:1883\ntopic a/# out\n"
                "connection near\naddress 127.0.0.1:1883 localhost\n"
                "topic a/# out\n"
                "connection lax\naddress 192.0.2.2:8883\n"
                "bridge_cafile /nonexistent/ca.crt\nbridge_insecure true\n"
                "topic a/# out\n"), 0o600)
            r = subprocess.run([MOATD, "--check", "-c", conf],
                               capture_output=True, text=True, timeout=30)
            out = r.stdout
            self.assertIn("AUD-BR-01", out)
            self.assertIn("bridge far has no bridge_cafile", out)
            self.assertIn("bridge lax: bridge_insecure true", out)
            self.assertNotIn("bridge near", out)
            self.assertNotIn("bridge lax has no", out)
        finally:
            d.cleanup()

    def test_password_in_a_readable_config_is_refused(self):
        d = tempfile.TemporaryDirectory(prefix="moat-bridge-conf-")
        try:
            conf = os.path.join(d.name, "moatd.conf")
            write_private(conf, "connection x\naddress 127.0.0.1:1\n"
                          "topic a out\nremote_username u\n"
                          "remote_password secret-pw\n", 0o644)
            r = subprocess.run([MOATD, "--test-config", "-c", conf],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("remote_password is written in a file other "
                          "users can read", r.stderr + r.stdout)
            self.assertNotIn("secret-pw", r.stderr + r.stdout)
            os.chmod(conf, 0o600)
            r = subprocess.run([MOATD, "--test-config", "-c", conf],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
