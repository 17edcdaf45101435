"""Running as a service: the privilege drop when started as root (user,
docs/install.md) and systemd's notifications (READY, RELOADING, WATCHDOG,
STOPPING) on a $NOTIFY_SOCKET.  The drop tests need root (CI runs as root);
they skip otherwise."""
import ctypes
import os
import re
import time
import socket
import subprocess
import tempfile
import unittest

from moat_harness import (Broker, password_file_text, wait_for)

NOBODY = 65534


def status_ids(pid):
    """(uids, gids, groups) of a process from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    def field(name):
        return re.search(r"^%s:[ \t]*(.*)$" % name, text, re.M).group(1).split()
    return field("Uid"), field("Gid"), field("Groups")


def sub_one(port, user, password, topic):
    """mosquitto_sub for one retained message; its output or ''."""
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                        "-u", user, "-P", password, "-t", topic, "-C", "1",
                        "-W", "5"], capture_output=True, text=True,
                       timeout=15)
    return r.stdout.strip() if r.returncode == 0 else ""


def pub(port, user, password, topic, msg):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                           str(port), "-u", user, "-P", password, "-t", topic,
                           "-m", msg, "-r", "-q", "1"],
                          capture_output=True, timeout=15).returncode


class DropBroker(Broker):
    """A Broker whose directory and files the dropped user can reach:
    the directory 0711, secrets root:nogroup 0640 (as the package's are
    root:moat 0640)."""

    def __init__(self, config, files=None, **kw):
        super().__init__(config, files=files, **kw)
        os.chmod(self.dir.name, 0o711)
        for name in (files or {}):
            self.share(name)
        os.chmod(self.conf, 0o644)

    def share(self, name):
        os.chown(self.path(name), 0, NOBODY)
        os.chmod(self.path(name), 0o640)


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class PrivilegeDrop(unittest.TestCase):
    def test_drops_to_user_groups_cleared(self):
        with DropBroker("user nobody\n") as b:
            uids, gids, groups = status_ids(b.proc.pid)
            self.assertEqual(uids, [str(NOBODY)] * 4)
            self.assertEqual(gids, [str(NOBODY)] * 4)
            self.assertEqual(groups, [])
            self.assertIn("running as user nobody", b.read_log())
            # Every thread, not only the main one.
            for tid in os.listdir("/proc/%d/task" % b.proc.pid):
                with open("/proc/%d/task/%s/status" % (b.proc.pid, tid)) as f:
                    self.assertRegex(f.read(), r"\nUid:\s+65534\s+65534")

    def test_reload_after_drop(self):
        conf = "user nobody\nallow_anonymous false\npassword_file @DIR@/pw\n"
        files = {"pw": password_file_text({"alice": "Correct-Horse-1"})}
        with DropBroker(conf, files=files) as b:
            self.assertEqual(pub(b.port, "alice", "Correct-Horse-1",
                                 "t/a", "one"), 0)
            b.write("pw", password_file_text({"alice": "Correct-Horse-1",
                                              "bob": "Battery-Staple-2"}))
            b.share("pw")
            self.assertTrue(b.reload())
            self.assertEqual(sub_one(b.port, "bob", "Battery-Staple-2",
                                     "t/a"), "one")
            # A file the user cannot read: the reload fails, the old
            # configuration stays (and says why).
            os.chmod(b.path("pw"), 0o600)
            self.assertFalse(b.reload())
            self.assertIn("Permission denied", b.read_log())
            self.assertEqual(sub_one(b.port, "bob", "Battery-Staple-2",
                                     "t/a"), "one")
            # The user cannot change without a restart.
            with open(b.conf, "a") as f:
                f.write("user root\n")
            b.share("pw")
            self.assertTrue(b.reload())
            self.assertIn("reload: user changed", b.read_log())
            self.assertEqual(status_ids(b.proc.pid)[0][0], str(NOBODY))

    def test_user_root_stays_root_with_warning(self):
        with Broker("user root\n") as b:
            self.assertEqual(status_ids(b.proc.pid)[0][0], "0")
            self.assertIn("running as root ('user root')", b.read_log())

    def test_missing_user_is_an_error(self):
        b = Broker("user no-such-user-moat\n")
        with self.assertRaises(RuntimeError) as e:
            b.start()
        b.stop()
        self.assertIn("there is no user 'no-such-user-moat'", str(e.exception))
        self.assertNotIn("listening on", str(e.exception))
        r = subprocess.run([os.environ.get("MOATD_BIN", "moatd"), "-t", "-c",
                            b.conf], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no-such-user-moat", r.stderr)
        b.dir.cleanup()

    def test_persistence_directory_given_to_user(self):
        keep = tempfile.TemporaryDirectory(prefix="moat-runas-")
        os.chmod(keep.name, 0o711)
        data = os.path.join(keep.name, "data")
        conf = ("user nobody\npersistence true\npersistence_location %s\n"
                % data)
        with DropBroker(conf) as b:
            st = os.stat(data)
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o700))
            self.assertEqual(pub(b.port, "u", "p", "keep/me", "v"), 0)
        self.assertEqual(os.stat(os.path.join(data, "moat.db")).st_uid,
                         NOBODY)
        # A start as root left root-owned files: given to the user.
        os.chown(os.path.join(data, "moat.db"), 0, 0)
        with DropBroker(conf) as b:
            self.assertEqual(sub_one(b.port, "u", "p", "keep/me"), "v")
        self.assertEqual(os.stat(os.path.join(data, "moat.db")).st_uid,
                         NOBODY)
        keep.cleanup()

    def test_existing_root_directory_not_given_away(self):
        conf = "user nobody\npersistence true\npersistence_location @DIR@/data\n"
        b = DropBroker(conf)
        os.mkdir(b.path("data"), 0o700)
        with self.assertRaises(RuntimeError) as e:
            b.start()
        b.stop()
        self.assertEqual(os.stat(b.path("data")).st_uid, 0)
        self.assertIn("persistence", str(e.exception))
        b.dir.cleanup()


class Notify(unittest.TestCase):
    """sd_notify datagrams, read from a socket of our own."""

    def test_ready_reload_watchdog_stopping(self):
        d = tempfile.TemporaryDirectory(prefix="moat-notify-")
        path = os.path.join(d.name, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(10)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
        b = Broker("")
        b.preexec_fn = None
        old = os.environ.copy()
        os.environ.update(env)
        try:
            b.start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        try:
            got = []
            def recv_until(word):
                while True:
                    m = s.recv(4096).decode()
                    got.append(m)
                    if word in m:
                        return m
            self.assertIn("READY=1", recv_until("READY=1"))
            recv_until("WATCHDOG=1")
            b.proc.send_signal(1)
            m = recv_until("RELOADING=1")
            self.assertRegex(m, r"MONOTONIC_USEC=\d+")
            recv_until("READY=1")
        finally:
            rc = b.stop()
        self.assertEqual(rc, 0)
        self.assertIn("STOPPING=1", recv_until("STOPPING=1"))
        s.close()
        b.dir.cleanup()
        d.cleanup()


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


@unittest.skipUnless(os.geteuid() == 0, "needs root (ptrace)")
class Watchdog(unittest.TestCase):
    """A hung worker silences the watchdog: the other threads are stopped
    with ptrace (PTRACE_INTERRUPT stops one thread, the main thread runs
    on), and moatd must stop sending WATCHDOG=1 and say why."""

    def test_stalled_worker_silences_watchdog(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long,
                                ctypes.c_void_p, ctypes.c_void_p]
        d = tempfile.TemporaryDirectory(prefix="moat-watchdog-")
        path = os.path.join(d.name, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        old = os.environ.copy()
        os.environ.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        b = Broker("")
        try:
            b.start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        tids = [int(t) for t in os.listdir("/proc/%d/task" % b.proc.pid)
                if int(t) != b.proc.pid]
        stopped = []
        try:
            s.settimeout(5)
            while "WATCHDOG=1" not in s.recv(4096).decode():
                pass
            for t in tids:
                if libc.ptrace(PTRACE_SEIZE, t, None, None) == 0:
                    stopped.append(t)
                    libc.ptrace(PTRACE_INTERRUPT, t, None, None)
                    os.waitpid(t, 0x40000000)  # __WALL: it has stopped
            self.assertTrue(stopped)
            # Within 5 s of the stop the pings must end, and not resume.
            self.assertTrue(wait_for(lambda: "has not come round its event "
                                     "loop" in b.read_log(), timeout=15))
            s.settimeout(0.1)
            try:
                while True:
                    s.recv(4096)  # drain what came before
            except socket.timeout:
                pass
            s.settimeout(1.0)
            with self.assertRaises(socket.timeout):
                while True:
                    if "WATCHDOG=1" in s.recv(4096).decode():
                        break
        finally:
            for t in stopped:
                libc.ptrace(PTRACE_DETACH, t, None, None)
            self.assertEqual(b.stop(), 0)
            s.close()
            b.dir.cleanup()
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
