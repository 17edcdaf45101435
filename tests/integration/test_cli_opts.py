"""The one option engine of every moat command (apps/moat/cli_opt.c).

For pub, sub, passwd, scan, audit and bench alike: an unknown option, a
missing value, a value given to a flag, bundled short flags, a value
attached to a short option, `--` ending the options, and --help (exit 0,
the same text as `moat help CMD`).  Only usage paths: no broker is needed,
nothing is sent.
"""
import os
import subprocess
import tempfile
import unittest

MOAT = os.environ.get("MOAT_BIN", "moat")
TIMEOUT = 20

# command -> (argv prefix, an option taking a value, a flag)
COMMANDS = {
    "pub": ([], "-t", "--retain"),
    "sub": ([], "--topic", "--verbose"),
    "passwd": ([], None, "--stdin"),
    "scan": ([], "--format", "--jsonl"),
    "audit": ([], "--cafile", "--insecure"),
    "bench": (["fan-in"], "--clients", "--json"),
}


def moat(*args, stdin=b"", cwd=None):
    return subprocess.run([MOAT] + list(args), input=stdin,
                          capture_output=True, timeout=TIMEOUT, cwd=cwd)


class OptionEngine(unittest.TestCase):
    def usage(self, r, cmd, text):
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        self.assertIn("moat %s: %s" % (cmd, text), err)
        self.assertIn("Try 'moat %s --help' for more information." % cmd,
                      err)
        self.assertEqual(r.stdout, b"")

    def test_unknown_option(self):
        for cmd, (pre, _, _) in COMMANDS.items():
            for bad in ("--no-such-option", "-Z"):
                with self.subTest(cmd=cmd, opt=bad):
                    self.usage(moat(cmd, *pre, bad), cmd,
                               "unknown option '%s'" % bad)

    def test_missing_value(self):
        for cmd, (pre, valued, _) in COMMANDS.items():
            if valued is None:
                continue
            with self.subTest(cmd=cmd):
                r = moat(cmd, *pre, valued)
                self.usage(r, cmd, "option '%s' needs " % valued)

    def test_flag_takes_no_value(self):
        for cmd, (pre, _, flag) in COMMANDS.items():
            with self.subTest(cmd=cmd):
                self.usage(moat(cmd, *pre, flag + "=yes"), cmd,
                           "option '%s' takes no value" % flag)

    def test_long_option_with_equals(self):
        r = moat("pub", "--topic=a/b", "--message=-1", "--port=0")
        self.usage(r, "pub", "option '--port' needs a number from 1 to "
                   "65535, not '0'")

    def test_value_may_start_with_dash(self):
        # -m takes the next argument whatever it looks like; the run then
        # stops at the port check, before connecting
        r = moat("pub", "-t", "t", "-m", "-1", "-p", "x")
        self.usage(r, "pub", "option '-p' needs a number")

    def test_bundles(self):
        # value-less short options may be bundled...
        r = moat("pub", "-rd", "-m", "x")
        self.usage(r, "pub", "a topic is required")
        # ...an attached value is refused, naming the form to use
        r = moat("pub", "-V5", "-t", "t", "-m", "x")
        self.usage(r, "pub", "option '-V' needs a value: give it on its "
                   "own, '-V VERSION'")
        r = moat("sub", "-vZ", "-t", "t")
        self.usage(r, "sub", "unknown option '-Z' in '-vZ'")
        # mosquitto_passwd's -cb: the batch mode is refused with its reason
        r = moat("passwd", "-cb", "f", "u", "secret")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"command line", r.stderr)

    def test_double_dash_ends_options(self):
        # commands without arguments: what follows -- is an argument
        for cmd in ("pub", "sub"):
            with self.subTest(cmd=cmd):
                self.usage(moat(cmd, "-t", "t", "--", "-m"), cmd,
                           "unexpected argument '-m'")
        self.usage(moat("bench", "fan-in", "--", "--json"), "bench",
                   "unexpected argument '--json'")
        # scan: a file named like an option
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "--jsonl"), "w") as f:
                f.write("nothing to see here\n")
            r = moat("scan", "--", "--jsonl", cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = moat("scan", "--", "--missing", cwd=d)
            self.assertEqual(r.returncode, 2)
            self.assertIn(b"--missing", r.stderr)
            self.assertNotIn(b"unknown option", r.stderr)
            # passwd: a file name starting with '-'
            r = moat("passwd", "-c", "--stdin", "--", "-pw", "alice",
                     stdin=b"Zq8#rT4!vW2@xY6k\n", cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.exists(os.path.join(d, "-pw")))
        # audit: a target, not an option (and not a valid one)
        r = moat("audit", "--", "--fail-on")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn(b"unknown option", r.stderr)
        self.assertIn(b"--fail-on", r.stderr)

    def test_help(self):
        for cmd, (pre, valued, flag) in COMMANDS.items():
            with self.subTest(cmd=cmd):
                r = moat(cmd, *pre, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout.decode()
                self.assertTrue(out.startswith("Usage: moat %s" % cmd))
                for opt in (valued, flag):
                    if opt:
                        self.assertIn(opt, out)
                self.assertEqual(moat("help", cmd).stdout, r.stdout)

    def test_unknown_command(self):
        r = moat("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"unknown command 'frobnicate'", r.stderr)
        r = moat("help", "frobnicate")
        self.assertEqual(r.returncode, 2)
