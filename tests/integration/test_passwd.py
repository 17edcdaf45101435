"""Black-box tests of `moat passwd`, the password file tool.

Environment:
  MOAT_BIN   path of the moat binary (required)
  MOATD_BIN  path of moatd; PasswdBroker checks that moatd accepts the
             files moat passwd writes (skipped without it)

Groups:
  PasswdUsage   command-line errors (exit 2): passwords on the command
                line (a third argument, mosquitto_passwd's -b), bad user
                names, bad option combinations; nothing is written.
  PasswdFile    creating, changing and deleting users with --stdin: file
                mode, line format, other lines kept byte for byte, weak
                passwords refused, symlinks and malformed files refused,
                no temporary files left behind.
  PasswdTty     the terminal prompt, on a pseudo-terminal: echo off,
                mismatch, no terminal at all.
  PasswdMosquitto  files made by mosquitto_passwd (skipped when it is not
                installed) are edited without touching their other lines.
  PasswdBroker  moatd loads what moat passwd wrote and checks passwords.

Every subprocess has a timeout; nothing asserts on timing.
"""
import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moat_harness import (Broker, CONNACK_NOT_AUTHORIZED, CONNACK_OK,  # noqa
                          connect_packet, raw_connect, read_packet)

MOAT = os.environ.get("MOAT_BIN", "moat")
MOATD = os.environ.get("MOATD_BIN")
TIMEOUT = 60.0
STRONG = "vT7#qL9!mZ2@wR4k"
STRONG2 = "Qz8&hN3^pX6*cJ1m"
CONNACK_BAD_CREDENTIALS = b"\x20\x02\x00\x04"
ARGON_LINE = re.compile(
    rb"^(?P<user>[^:\n]+):\$argon2id\$v=19\$m=19456,t=2,p=1\$"
    rb"[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


def check_sanitizers(stderr):
    for mark in (b"Sanitizer", b"runtime error:"):
        if mark in stderr:
            raise AssertionError("sanitizer report:\n" +
                                 stderr.decode(errors="replace"))


def passwd(*args, stdin=None, cwd=None):
    """Run `moat passwd ARGS`; stdin is bytes (or None: /dev/null)."""
    r = subprocess.run([MOAT, "passwd"] + list(args),
                       input=stdin if stdin is not None else b"",
                       capture_output=True, timeout=TIMEOUT, cwd=cwd)
    check_sanitizers(r.stderr)
    return r


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class TmpDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moat-passwd-")
        self.dir = self.tmp.name
        self.file = os.path.join(self.dir, "passwd")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, data, mode=0o600, name="passwd"):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def add(self, user, pw=STRONG, create=False, path=None):
        args = (["-c"] if create else []) + \
            ["--stdin", path or self.file, user]
        return passwd(*args, stdin=pw.encode() + b"\n")

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"")

    def assertFails(self, r, code, *needles):
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertEqual(r.stdout, b"")
        for n in needles:
            self.assertIn(n, r.stderr)

    def assertOnlyFiles(self, *names):
        """No temporary file left behind."""
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(names))


class PasswdUsage(TmpDirTest):
    def test_help(self):
        for arg in ("-h", "--help"):
            r = passwd(arg)
            self.assertEqual(r.returncode, 0)
            self.assertIn(b"moat passwd [-c] [--stdin] FILE USER", r.stdout)
            self.assertIn(b"moat passwd -D FILE USER", r.stdout)
        r = subprocess.run([MOAT, "help", "passwd"], capture_output=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"--stdin", r.stdout)
        r = subprocess.run([MOAT, "--help"], capture_output=True,
                           timeout=TIMEOUT)
        self.assertIn(b"passwd", r.stdout)

    def test_password_on_command_line_refused(self):
        for args in (["-c", self.file, "alice", STRONG],
                     ["-c", "-b", self.file, "alice", STRONG],
                     ["-b", self.file, "alice", STRONG],
                     ["-cb", self.file, "alice", STRONG]):
            with self.subTest(args=args):
                r = passwd(*args)
                self.assertFails(r, 2, b"command line", b"history", b"ps")
                self.assertNotIn(STRONG.encode(), r.stderr)
                self.assertOnlyFiles()

    def test_usage_errors(self):
        cases = [
            [],
            [self.file],
            ["-c", "-D", self.file, "alice"],
            ["-D", "--stdin", self.file, "alice"],
            ["-D", self.file, "alice", "extra"],
            ["-c", self.file, "a", "b", "c"],
            ["-x", self.file, "alice"],
            ["--password", self.file, "alice"],
            ["-H", "sha512", self.file, "alice"],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = passwd(*args, stdin=STRONG.encode() + b"\n")
                self.assertFails(r, 2, b"moat passwd")
                self.assertOnlyFiles()

    def test_bad_user_names(self):
        cases = {
            b"": b"empty",
            b"a:b": b"':'",
            b"a+b": b"ACL",
            b"a#": b"ACL",
            b"site/a": b"ACL",
            b"a\tb": b"control",
            b"a\x7fb": b"control",
            b"a\xc2\x85b": b"control",  # U+0085, a C1 control
            b"a\xc0\x80": b"UTF-8",
            b"a\xffb": b"UTF-8",
            b"u" * 65536: b"65535",
        }
        for user, why in cases.items():
            with self.subTest(user=user[:20]):
                r = subprocess.run(
                    [os.fsencode(MOAT), b"passwd", b"-c", b"--stdin",
                     os.fsencode(self.file), user],
                    input=STRONG.encode() + b"\n", capture_output=True,
                    timeout=TIMEOUT)
                check_sanitizers(r.stderr)
                self.assertFails(r, 2, why)
                self.assertOnlyFiles()

    def test_unicode_user_name_accepted(self):
        self.assertOk(self.add("d\u00e9vice-\u6e29\u5ea6", create=True))
        self.assertTrue(ARGON_LINE.match(read(self.file).rstrip(b"\n")))


class PasswdFile(TmpDirTest):
    def lines(self):
        return read(self.file).split(b"\n")

    def test_create(self):
        self.assertOk(self.add("alice", create=True))
        self.assertEqual(mode_of(self.file), 0o600)
        data = read(self.file)
        self.assertTrue(data.endswith(b"\n"))
        self.assertEqual(data.count(b"\n"), 1)
        m = ARGON_LINE.match(data[:-1])
        self.assertTrue(m, data)
        self.assertEqual(m.group("user"), b"alice")
        self.assertNotIn(STRONG.encode(), data)
        self.assertOnlyFiles("passwd")

    def test_create_overwrites_and_fixes_mode(self):
        self.write(b"old:x\n", mode=0o644)
        self.assertOk(self.add("alice", create=True))
        self.assertEqual(mode_of(self.file), 0o600)
        self.assertEqual(len(self.lines()), 2)
        self.assertTrue(read(self.file).startswith(b"alice:"))

    def test_create_under_restrictive_umask(self):
        old = os.umask(0o277)
        try:
            self.assertOk(self.add("alice", create=True))
        finally:
            os.umask(old)
        self.assertEqual(mode_of(self.file), 0o600)

    def test_add_change_delete(self):
        self.assertOk(self.add("alice", create=True))
        self.assertOk(self.add("bob", STRONG2))
        self.assertOk(self.add("carol"))
        first = self.lines()
        self.assertEqual([ln.split(b":")[0] for ln in first],
                         [b"alice", b"bob", b"carol", b""])
        # change bob: a new hash, in place; the others byte for byte
        self.assertOk(self.add("bob"))
        second = self.lines()
        self.assertEqual(second[0], first[0])
        self.assertEqual(second[2], first[2])
        self.assertNotEqual(second[1], first[1])
        self.assertTrue(ARGON_LINE.match(second[1]))
        self.assertTrue(second[1].startswith(b"bob:"))
        # delete bob
        self.assertOk(passwd("-D", self.file, "bob"))
        self.assertEqual(self.lines(), [first[0], first[2], b""])
        self.assertEqual(mode_of(self.file), 0o600)
        # deleting someone absent fails and changes nothing
        before = read(self.file)
        self.assertFails(passwd("-D", self.file, "bob"), 1, b"bob")
        self.assertFails(passwd("-D", self.file, "bo"), 1)
        self.assertEqual(read(self.file), before)
        # the last user can go; the file stays
        self.assertOk(passwd("-D", self.file, "alice"))
        self.assertOk(passwd("-D", self.file, "carol"))
        self.assertEqual(read(self.file), b"")
        self.assertOnlyFiles("passwd")

    def test_other_lines_kept_exactly(self):
        original = (b"# users of site 1\r\n"
                    b"\n"
                    b"bob:$6$eo9YzXrYRGKWBINv$LRQaiLs4U4qkQhgdw6+vJHLEKDwK7DIetu"
                    b"wykDCutGdAkY4Ep7N7tX5qroSpl4hSmj1YfWpuqNN48WuVxAlciQ==\r\n"
                    b"   \n"
                    b"#alice:commented-out\n"
                    b"carol:$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgL"
                    b"rQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4")  # no final newline
        self.write(original)
        self.assertOk(self.add("alice"))
        data = read(self.file)
        self.assertTrue(data.startswith(original + b"\nalice:"), data)
        self.assertTrue(ARGON_LINE.match(data[len(original) + 1:-1]))
        # replacing a CRLF line keeps its CRLF
        self.assertOk(self.add("bob"))
        data = read(self.file)
        self.assertTrue(data.startswith(b"# users of site 1\r\n\nbob:$argon2id$"))
        bob = data.split(b"\n")[2]
        self.assertTrue(bob.endswith(b"\r"))
        self.assertTrue(ARGON_LINE.match(bob[:-1]))
        self.assertIn(b"   \n#alice:commented-out\ncarol:$argon2id$v=19$m=256",
                      data)
        self.assertOnlyFiles("passwd")

    def test_weak_passwords_refused(self):
        self.assertOk(self.add("alice", create=True))
        before = read(self.file)
        for pw, why in (("12345", b"too short"),
                        ("admin", b"too short"),
                        ("", b"too short"),
                        ("password", b"common"),
                        ("123456789", b"common"),
                        ("Raspberry", b"common"),
                        ("Xq9#sensor42!", b"user name"),
                        ("aaaaaaaaaaaaaaaa", b"")):
            with self.subTest(pw=pw):
                r = self.add("sensor42", pw)
                self.assertFails(r, 1, b"moat passwd: weak password: ", why)
                if why in (b"user name", b""):  # not quoted back
                    self.assertNotIn(pw.encode(), r.stderr)
                self.assertEqual(read(self.file), before)
                # nor with -c: an existing file is not replaced either
                r = self.add("sensor42", pw, create=True)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(read(self.file), before)
        self.assertOnlyFiles("passwd")

    def test_stdin_first_line_only(self):
        r = passwd("-c", "--stdin", self.file, "alice",
                   stdin=STRONG.encode() + b"\r\nsecond line\n")
        self.assertOk(r)
        r = passwd("--stdin", self.file, "bob", stdin=STRONG.encode())
        self.assertOk(r)  # no newline at all is fine
        r = passwd("--stdin", self.file, "carol", stdin=b"")
        self.assertFails(r, 1, b"no password")
        r = passwd("--stdin", self.file, "carol",
                   stdin=b"abc\0defghijk\n")
        self.assertFails(r, 1, b"NUL")
        r = passwd("--stdin", self.file, "carol",
                   stdin=b"x" * 70000 + b"\n")
        self.assertFails(r, 1, b"65535")
        self.assertEqual(len(read(self.file).split(b"\n")), 3)

    def test_missing_file_needs_c(self):
        r = self.add("alice")
        self.assertFails(r, 1, b"-c")
        self.assertOnlyFiles()
        r = passwd("-D", self.file, "alice")
        self.assertEqual(r.returncode, 1)

    def test_symlink_refused(self):
        target = self.write(b"bob:$6$eo9YzXrYRGKWBINv$LRQaiLs4U4qkQhgdw6+vJHLE"
                            b"KDwK7DIetuwykDCutGdAkY4Ep7N7tX5qroSpl4hSmj1YfWp"
                            b"uqNN48WuVxAlciQ==\n", name="real")
        before = read(target)
        os.symlink("real", self.file)
        for r in (self.add("alice", create=True), self.add("alice"),
                  passwd("-D", self.file, "bob")):
            self.assertFails(r, 1, b"symbolic link")
            self.assertTrue(os.path.islink(self.file))
            self.assertEqual(read(target), before)
        self.assertOnlyFiles("passwd", "real")

    def test_directory_refused(self):
        os.mkdir(self.file)
        self.assertFails(self.add("alice", create=True), 1, b"regular")

    def test_malformed_file_not_edited(self):
        for text, where in ((b"bob:$6$eo9YzXrYRGKWBINv$x\n", b":1:"),
                            (b"# ok\nbob\n", b":2:"),
                            (b"bob:plain\n", b":1:"),
                            (b"a:$7$0$c2FsdA==$c2FsdA==\n", b":1:"),
                            (b"x:$6$eo9YzXrYRGKWBINv$LRQaiLs4U4qkQhgdw6+vJHLEKD"
                             b"wK7DIetuwykDCutGdAkY4Ep7N7tX5qroSpl4hSmj1YfWpuqN"
                             b"N48WuVxAlciQ==\nx:$6$eo9YzXrYRGKWBINv$LRQaiLs4U4"
                             b"qkQhgdw6+vJHLEKDwK7DIetuwykDCutGdAkY4Ep7N7tX5qro"
                             b"Spl4hSmj1YfWpuqNN48WuVxAlciQ==\n", b":2:")):
            with self.subTest(text=text[:30]):
                self.write(text)
                for r in (self.add("alice"), passwd("-D", self.file, "x")):
                    self.assertFails(r, 1, self.file.encode() + where)
                    self.assertEqual(read(self.file), text)
                    # the hash is not echoed back
                    self.assertNotIn(b"eo9YzXrYRGKWBINv", r.stderr)
        # -c does not care what was there
        self.assertOk(self.add("alice", create=True))

    def test_relative_path(self):
        r = passwd("-c", "--stdin", "passwd", "alice",
                   stdin=STRONG.encode() + b"\n", cwd=self.dir)
        self.assertOk(r)
        self.assertEqual(mode_of(self.file), 0o600)
        self.assertOnlyFiles("passwd")


class PasswdTty(TmpDirTest):
    """The prompt, on a pseudo-terminal that is moat's controlling
    terminal (so /dev/tty is it)."""

    def run_tty(self, args, answers):
        pid, fd = pty.fork()
        if pid == 0:  # child
            try:
                os.execv(MOAT, [MOAT, "passwd"] + args)
            finally:
                os._exit(127)
        out = b""
        deadline = time.monotonic() + TIMEOUT
        answers = list(answers)
        sent = 0
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, 9)
                    raise AssertionError("timeout; output %r" % out)
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                # answer each prompt once, after it shows (echo is off
                # by then; anything typed earlier would be flushed)
                if answers and out.count(b"assword: ") > sent:
                    os.write(fd, answers.pop(0).encode() + b"\n")
                    sent += 1
        finally:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        check_sanitizers(out)
        return os.waitstatus_to_exitcode(status), out

    def test_prompt_twice_without_echo(self):
        rc, out = self.run_tty(["-c", self.file, "alice"], [STRONG, STRONG])
        self.assertEqual(rc, 0, out)
        self.assertIn(b"Password: ", out)
        self.assertIn(b"Reenter password: ", out)
        self.assertNotIn(STRONG.encode(), out)  # echo was off
        self.assertTrue(ARGON_LINE.match(read(self.file).rstrip(b"\n")))
        self.assertEqual(mode_of(self.file), 0o600)

    def test_mismatch(self):
        rc, out = self.run_tty(["-c", self.file, "alice"], [STRONG, STRONG2])
        self.assertEqual(rc, 1, out)
        self.assertIn(b"do not match", out)
        self.assertNotIn(STRONG.encode(), out)
        self.assertOnlyFiles()

    def test_weak_at_prompt(self):
        rc, out = self.run_tty(["-c", self.file, "alice"],
                               ["password", "password"])
        self.assertEqual(rc, 1, out)
        self.assertIn(b"weak password", out)
        self.assertOnlyFiles()

    def test_stdin_not_a_terminal(self):
        for stdin in (b"", STRONG.encode() + b"\n"):
            r = passwd("-c", self.file, "alice", stdin=stdin)
            self.assertFails(r, 2, b"--stdin", b"not a terminal")
            self.assertOnlyFiles()


@unittest.skipUnless(shutil.which("mosquitto_passwd"),
                     "mosquitto_passwd not installed")
class PasswdMosquitto(TmpDirTest):
    def mosquitto_passwd(self, *args):
        r = subprocess.run(["mosquitto_passwd"] + list(args),
                           capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_edit_mosquitto_file(self):
        # mosquitto_passwd -b is what we refuse; fine for a test fixture
        self.mosquitto_passwd("-c", "-b", self.file, "mq7", "S3cure-Pass!")
        self.mosquitto_passwd("-H", "sha512", "-b", self.file, "mq6",
                              "An0ther-Pass")
        original = read(self.file)
        mq7, mq6 = original.split(b"\n")[:2]
        self.assertTrue(mq7.startswith(b"mq7:$7$"))
        self.assertTrue(mq6.startswith(b"mq6:$6$"))

        self.assertOk(self.add("alice"))
        data = read(self.file)
        self.assertTrue(data.startswith(original), data)
        self.assertEqual(mode_of(self.file), 0o600)  # was 0644 under umask 022
        # change the $7$ user: argon2id now; the $6$ line untouched
        self.assertOk(self.add("mq7"))
        lines = read(self.file).split(b"\n")
        self.assertTrue(ARGON_LINE.match(lines[0]))
        self.assertTrue(lines[0].startswith(b"mq7:"))
        self.assertEqual(lines[1], mq6)
        self.assertOk(passwd("-D", self.file, "mq6"))
        self.assertEqual([ln.split(b":")[0] for ln in
                          read(self.file).split(b"\n")],
                         [b"mq7", b"alice", b""])
        self.assertOnlyFiles("passwd")


@unittest.skipUnless(MOATD, "MOATD_BIN not set")
class PasswdBroker(TmpDirTest):
    """moatd loads the file moat passwd wrote, and checks against it."""

    def connack(self, port, user, pw):
        s = raw_connect(port)
        try:
            s.sendall(connect_packet("pw-" + user, user=user, password=pw))
            first, body = read_packet(s)
            return bytes([first, len(body)]) + body
        finally:
            s.close()

    def test_broker_accepts_written_file(self):
        self.assertOk(self.add("alice", create=True))
        self.assertOk(self.add("bob", STRONG2))
        conf = "password_file %s\nallow_anonymous false\n" % self.file
        with Broker(conf) as b:
            self.assertEqual(self.connack(b.port, "alice", STRONG),
                             CONNACK_OK)
            self.assertEqual(self.connack(b.port, "bob", STRONG2),
                             CONNACK_OK)
            # refused: 4 (bad user name or password) or 5 (not
            # authorised), whichever the broker prefers
            for user, pw in (("alice", STRONG2), ("carol", STRONG),
                             ("alice", STRONG[:-1])):
                self.assertIn(self.connack(b.port, user, pw),
                              (CONNACK_BAD_CREDENTIALS,
                               CONNACK_NOT_AUTHORIZED))


def setUpModule():
    if not os.path.exists(MOAT) and not shutil.which(MOAT):
        raise RuntimeError("moat binary not found: set MOAT_BIN")


if __name__ == "__main__":
    unittest.main()
