"""The command line of the client subcommands and notmod etag: long options by their exact names
only, and notmod check --json keeping UTF-8 (serve's own options: test_serve_lifecycle)."""
import json
import os
import shutil
import tempfile
import unittest

from launch import RawServer, free_port, notmod_binary, run, write_file

EXIT_USAGE = 2


class Utf8EtagServer(RawServer):
    """Answers every request 200 with an entity-tag of UTF-8 and one byte that is not: both are
    obs-text, which RFC 9110 §8.8.3 allows in an entity-tag."""

    ETAG = b'"caf\xc3\xa9-\xe2\x82\xac-\xff"'

    def answer(self, head):
        body = b"" if head.startswith(b"HEAD ") else b"hello\n"
        return (b"HTTP/1.1 200 OK\r\nETag: " + self.ETAG + b"\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 6\r\nConnection: close\r\n\r\n" + body)


class ExactOptionNames(unittest.TestCase):
    def setUp(self):
        notmod_binary()
        self.tmp = tempfile.mkdtemp(prefix="nm-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        write_file(os.path.join(self.tmp, "a.txt"), b"a\n")
        # Nothing listens there: a command that took an abbreviation fails at once, not later.
        self.url = "http://127.0.0.1:%d/" % free_port()

    def assert_unknown(self, command, args, name):
        p = run([command, *args], env={"XDG_CACHE_HOME": self.tmp}, timeout=30)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, EXIT_USAGE, err)
        self.assertIn("notmod %s: unknown option '%s'" % (command, name), err)
        self.assertEqual(p.stdout, b"")

    def test_get_refuses_abbreviated_options(self):
        for args, name in ((["--out", os.path.join(self.tmp, "o"), self.url], "--out"),
                           (["--head", "X: y", self.url], "--head"),
                           (["--no-st", self.url], "--no-st"),
                           (["--reval", self.url], "--reval"),
                           ([self.url, "--cache", self.tmp], "--cache")):
            with self.subTest(args=args):
                self.assert_unknown("get", args, name)

    def test_check_refuses_abbreviated_options(self):
        for args, name in ((["--js", self.url], "--js"), (["--time", "3", self.url], "--time"),
                           (["--back=127.0.0.1:1", self.url], "--back")):
            with self.subTest(args=args):
                self.assert_unknown("check", args, name)

    def test_etag_refuses_abbreviated_options(self):
        for args, name in ((["--re", self.tmp], "--re"), (["--man", self.tmp], "--man"),
                           (["--wr", self.tmp], "--wr")):
            with self.subTest(args=args):
                self.assert_unknown("etag", args, name)

    def test_cache_refuses_abbreviated_options(self):
        self.assert_unknown("cache", ["--cache", self.tmp, "list"], "--cache")

    def test_exact_names_still_work(self):
        p = run(["etag", "--rehash", os.path.join(self.tmp, "a.txt")])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run(["cache", "--cache-dir", self.tmp, "list"])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_misused_options_are_named(self):
        cases = (("get", ["--output"], "option '--output' needs a value"),
                 ("get", ["-o"], "option '-o' needs a value"),
                 ("get", ["-Z", self.url], "unknown option '-Z'"),
                 ("check", ["--json=yes", self.url], "option '--json' takes no value"),
                 ("etag", ["--rehash=1", self.tmp], "option '--rehash' takes no value"))
        for command, args, message in cases:
            with self.subTest(args=args):
                p = run([command, *args], timeout=30)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stderr)
                self.assertIn("notmod %s: %s" % (command, message), p.stderr.decode())


class CheckJson(unittest.TestCase):
    def test_json_keeps_utf8_and_escapes_other_bytes_reversibly(self):
        notmod_binary()
        with Utf8EtagServer() as srv:
            p = run(["check", "--json", "--timeout", "5", "http://127.0.0.1:%d/a" % srv.port],
                    timeout=120)
        self.assertIn(b'caf\xc3\xa9-\xe2\x82\xac-\\udcff', p.stdout)
        data = json.loads(p.stdout.decode("utf-8"))
        messages = [f["message"].encode("utf-8", "surrogateescape")
                    for f in data["targets"][0]["findings"] if f["check"] == "etag"]
        self.assertEqual(len(messages), 1, data)
        self.assertIn(Utf8EtagServer.ETAG, messages[0])


if __name__ == "__main__":
    unittest.main()
