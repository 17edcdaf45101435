"""Interoperability tests: moatd with the mosquitto command-line clients
(mosquitto_pub / mosquitto_sub, mosquitto-clients 2.0.11).

    MOATD_BIN=.../moatd python3 -m unittest -v \
        tests/integration/test_interop_mosquitto.py

Every subprocess runs with a timeout, every wait is bounded, all traffic is
on 127.0.0.1 and nothing asserts on timing.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))

from moat_harness import BrokerTest, HOST, wait_for  # noqa: E402

PUB = shutil.which("mosquitto_pub")
SUB = shutil.which("mosquitto_sub")
# mosquitto_sub does not flush its output when it is a pipe.
STDBUF = shutil.which("stdbuf")
WAIT = 10.0
PROC_TIMEOUT = 20.0
# mosquitto_sub output line for a message: retain|qos|topic|payload
FORMAT = "M|%r|%q|%t|%p"


class Sub:
    """A running mosquitto_sub whose output is collected by a thread.

    -d makes it print its protocol exchange, which tells us when the
    SUBACK has arrived (so that publishing can start)."""

    def __init__(self, port, *args, client_id=None):
        cmd = [STDBUF, "-oL", SUB, "-h", HOST, "-p", str(port), "-d",
               "-F", FORMAT]
        if client_id:
            cmd += ["-i", client_id]
        cmd += list(args)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)

    def output(self):
        with self.lock:
            return list(self.lines)

    def messages(self):
        """[(retain, qos, topic, payload)] in arrival order."""
        out = []
        for line in self.output():
            if line.startswith("M|"):
                _, r, q, t, p = line.split("|", 4)
                out.append((int(r), int(q), t, p))
        return out

    def payloads(self):
        return [m[3] for m in self.messages()]

    def wait_subscribed(self, timeout=WAIT):
        ok = wait_for(lambda: any("received SUBACK" in ln
                                  for ln in self.output()), timeout)
        if not ok:
            self.kill()
            raise AssertionError("mosquitto_sub did not subscribe: %r\n%s"
                                 % (self.cmd, "\n".join(self.output())))
        return self

    def wait_count(self, n, timeout=WAIT):
        return wait_for(lambda: len(self.messages()) >= n, timeout)

    def wait_exit(self, timeout=PROC_TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("mosquitto_sub did not exit: %r\n%s"
                                 % (self.cmd, "\n".join(self.output())))
        self.reader.join(5)
        return rc

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.reader.join(5)


@unittest.skipIf(PUB is None or SUB is None or STDBUF is None,
                 "mosquitto-clients (or coreutils' stdbuf) is not installed")
class MosquittoTest(BrokerTest):

    def sub(self, *args, client_id=None):
        s = Sub(self.port, *args, client_id=client_id)
        self.addCleanup(self._cleanup_sub, s)
        return s

    @staticmethod
    def _cleanup_sub(s):
        s.kill()
        s.proc.stdout.close()

    def run_client(self, prog, *args, stdin=None, port=None, check=True):
        cmd = [prog, "-h", HOST, "-p", str(port or self.port)] + list(args)
        try:
            r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               timeout=PROC_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%r timed out; output:\n%s"
                                 % (cmd, e.output))
        if check and r.returncode != 0:
            raise AssertionError("%r exited %d:\n%s"
                                 % (cmd, r.returncode,
                                    r.stdout.decode(errors="replace")))
        return r

    def pub(self, *args, **kw):
        return self.run_client(PUB, *args, **kw)

    # ---- QoS levels ----------------------------------------------------

    def test_qos_levels(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                topic = "mq/qos%d" % qos
                s = self.sub("-t", topic, "-q", "2", "-C", "5", "-W", "15")
                s.wait_subscribed()
                for i in range(5):
                    self.pub("-t", topic, "-q", str(qos), "-m",
                             "msg %d at qos %d" % (i, qos))
                self.assertEqual(s.wait_exit(), 0, "\n".join(s.output()))
                self.assertEqual(
                    s.messages(),
                    [(0, qos, topic, "msg %d at qos %d" % (i, qos))
                     for i in range(5)])

    def test_qos_downgraded_to_subscription(self):
        topic = "mq/down"
        s = self.sub("-t", topic, "-q", "1", "-C", "1", "-W", "15")
        s.wait_subscribed()
        self.pub("-t", topic, "-q", "2", "-m", "down")
        self.assertEqual(s.wait_exit(), 0)
        self.assertEqual(s.messages(), [(0, 1, topic, "down")],
                         "delivered at the granted QoS [MQTT-3.8.4-6]")

    def test_line_mode_1000_qos1(self):
        topic = "mq/lines"
        n = 1000
        s = self.sub("-t", topic, "-q", "1", "-C", str(n), "-W", "30")
        s.wait_subscribed()
        lines = "".join("line %04d\n" % i for i in range(n)).encode()
        self.pub("-t", topic, "-q", "1", "-l", stdin=lines)
        self.assertEqual(s.wait_exit(timeout=40), 0,
                         "got %d of %d" % (len(s.messages()), n))
        self.assertEqual(s.payloads(), ["line %04d" % i for i in range(n)])
        self.assertTrue(all(m[1] == 1 for m in s.messages()))

    # ---- retained ------------------------------------------------------

    def test_retained(self):
        topic = "mq/retained"
        self.pub("-t", topic, "-q", "1", "-r", "-m", "v1")
        s = self.sub("-t", topic, "-C", "1", "-W", "10")
        self.assertEqual(s.wait_exit(), 0, "\n".join(s.output()))
        self.assertEqual(s.messages(), [(1, 0, topic, "v1")])

        self.pub("-t", topic, "-q", "1", "-r", "-m", "v2")  # replace
        s = self.sub("-t", topic, "-q", "1", "-C", "1", "-W", "10")
        self.assertEqual(s.wait_exit(), 0)
        self.assertEqual(s.messages(), [(1, 1, topic, "v2")])

        # -R ignores the stale retained copy; the live one gets through
        s = self.sub("-t", topic, "-R", "-C", "1", "-W", "10")
        s.wait_subscribed()
        # The retained copy follows the SUBACK; once it has been seen on
        # the wire, the live publish is certainly after it.
        wait_for(lambda: any("received PUBLISH" in ln
                             for ln in s.output()), WAIT)
        self.pub("-t", topic, "-m", "live")
        self.assertEqual(s.wait_exit(), 0)
        self.assertEqual(s.messages(), [(0, 0, topic, "live")])
        self.assertTrue(any("received PUBLISH (d0, q0, r1" in ln
                            for ln in s.output()),
                        "the retained copy was not sent with retain 1")

        # -n -r deletes it
        self.pub("-t", topic, "-q", "1", "-r", "-n")
        s = self.sub("-t", topic, "-C", "1", "-W", "10")
        s.wait_subscribed()
        self.pub("-t", topic, "-m", "sentinel")
        self.assertEqual(s.wait_exit(), 0)
        self.assertEqual(s.messages(), [(0, 0, topic, "sentinel")],
                         "retained message survived an empty retained "
                         "publish [MQTT-3.3.1-10]")

    # ---- persistent session ------------------------------------------

    def test_persistent_session(self):
        cid = "mq-persist"
        topic = "mq/persist"
        # subscribe, then leave (-E: exit once subscribed)
        s = self.sub("-c", "-q", "1", "-t", topic, "-E", client_id=cid)
        self.assertEqual(s.wait_exit(), 0, "\n".join(s.output()))
        lines = "".join("p%02d\n" % i for i in range(20)).encode()
        self.pub("-t", topic, "-q", "1", "-l", stdin=lines)
        s = self.sub("-c", "-q", "1", "-t", topic, "-C", "20", "-W", "15",
                     client_id=cid)
        self.assertEqual(s.wait_exit(), 0,
                         "got %d of 20 queued messages:\n%s"
                         % (len(s.messages()), "\n".join(s.output()[-20:])))
        self.assertEqual(s.payloads(), ["p%02d" % i for i in range(20)])
        self.assertTrue(all(m[1] == 1 for m in s.messages()))
        # remove the session: a clean connection with the same id
        s = self.sub("-q", "1", "-t", topic, "-E", client_id=cid)
        self.assertEqual(s.wait_exit(), 0)

    # ---- failures ------------------------------------------------------

    def test_wrong_port(self):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        # nothing listens there now
        r = self.pub("-t", "x", "-m", "y", port=port, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)

    # ---- will ------------------------------------------------------------

    def test_will_on_kill(self):
        topic = "mq/will"
        watcher = self.sub("-t", topic, "-q", "1", "-C", "1", "-W", "15")
        watcher.wait_subscribed()
        doomed = self.sub("-t", "mq/will-dummy", "--will-topic", topic,
                          "--will-payload", "died", "--will-qos", "1",
                          "--will-retain", client_id="mq-doomed")
        doomed.wait_subscribed()
        doomed.kill(signal.SIGKILL)
        self.assertEqual(watcher.wait_exit(), 0,
                         "no will after SIGKILL:\n%s"
                         % "\n".join(watcher.output()))
        self.assertEqual(watcher.messages(), [(0, 1, topic, "died")])
        # retained will for a late subscriber
        late = self.sub("-t", topic, "-q", "1", "-C", "1", "-W", "10")
        self.assertEqual(late.wait_exit(), 0)
        self.assertEqual(late.messages(), [(1, 1, topic, "died")])
        self.pub("-t", topic, "-r", "-n")

    def test_no_will_on_clean_exit(self):
        topic = "mq/will-clean"
        watcher = self.sub("-t", topic, "-q", "1")
        watcher.wait_subscribed()
        polite = self.sub("-t", "mq/will-dummy2", "--will-topic", topic,
                          "--will-payload", "died", "-E",
                          client_id="mq-polite")
        self.assertEqual(polite.wait_exit(), 0)  # sends DISCONNECT
        self.pub("-t", topic, "-q", "1", "-m", "sentinel")
        self.assertTrue(watcher.wait_count(1))
        wait_for(lambda: len(watcher.messages()) > 1, 0.5)
        self.assertEqual(watcher.payloads(), ["sentinel"],
                         "will published after DISCONNECT")

    # ---- protocol versions --------------------------------------------

    def test_mqtt31(self):
        topic = "mq/v31"
        s = self.sub("-V", "mqttv31", "-t", topic, "-q", "1", "-C", "3",
                     "-W", "15")
        s.wait_subscribed()
        for i in range(3):
            self.pub("-V", "mqttv31", "-t", topic, "-q", str(i),
                     "-m", "v31-%d" % i)
        self.assertEqual(s.wait_exit(), 0, "\n".join(s.output()))
        self.assertEqual(s.messages(),
                         [(0, min(i, 1), topic, "v31-%d" % i)
                          for i in range(3)])

    def test_mqtt5_both_ways(self):
        # MQTT 5 is on by default: v5 and 3.1.1 clients share topics.
        s = self.sub("-V", "mqttv5", "-t", "mq/v5", "-q", "2", "-C", "2",
                     "-W", "10")
        s.wait_subscribed()
        self.pub("-V", "mqttv5", "-t", "mq/v5", "-m", "five", "-q", "2",
                 "-D", "publish", "user-property", "k", "v")
        self.pub("-t", "mq/v5", "-m", "three", "-q", "1")
        self.assertEqual(s.wait_exit(), 0)
        # libmosquitto hands a QoS 2 message over on PUBREL, so the QoS 1
        # one published after it may overtake it: no order across QoS.
        self.assertEqual(sorted(s.payloads()), ["five", "three"])
        self.assertTrue(self.broker.alive())
        # and 3.1.1 subscribers get v5 publishes
        s = self.sub("-t", "mq/after-v5", "-C", "1", "-W", "10")
        s.wait_subscribed()
        self.pub("-t", "mq/after-v5", "-m", "ok")
        self.assertEqual(s.wait_exit(), 0)
        self.assertEqual(s.payloads(), ["ok"])


if __name__ == "__main__":
    unittest.main()
