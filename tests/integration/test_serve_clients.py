"""Real clients against the real server: curl's ETag and date revalidation and resume, wget's
timestamping, and Python's http.client on a kept-alive connection."""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from launch import ServerTestCase, require_binary, tool, wait_until

T0 = 1672531200
PAGE = b"<!DOCTYPE html><title>t</title><p>page</p>\n"
BIG = bytes((i * 17 + 11) % 256 for i in range(3 * 1024 * 1024 + 123))
CLIENT_TIMEOUT_S = 30


@require_binary
class RealClients(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")
        site.write("page.html", PAGE, mtime=T0)
        # Its own file: a test counting log lines must not see another test's late line.
        site.write("etag-save.html", PAGE, mtime=T0)
        site.write("big.bin", BIG, mtime=T0)
        site.write("wget.txt", b"for wget\n", mtime=T0)
        cls.log_path = os.path.join(site.base, "access.log")
        cls.SERVER_OPTIONS = ("--access-log", cls.log_path)

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="notmod-client-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def run_tool(self, *argv):
        return subprocess.run(list(argv), cwd=self.work, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=CLIENT_TIMEOUT_S)

    def curl(self, *args):
        p = self.run_tool(tool("curl"), "-sS", "--max-time", "20", "-w", "%{http_code}", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return int(p.stdout.decode()[-3:])

    def logged_statuses(self, path):
        """The statuses of the requests for path in the access log, oldest first."""
        pattern = re.compile(r'"[A-Z]+ %s HTTP/1\.[01]" (\d{3}) ' % re.escape(path))
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return [int(m.group(1)) for m in map(pattern.search, f) if m]
        except FileNotFoundError:
            return []

    def statuses_since(self, path, mark, count):
        """The statuses of the `count` requests for path logged after the first `mark`; the line
        may be written just after the response is sent, so wait for it."""
        wait_until(lambda: len(self.logged_statuses(path)) >= mark + count, 5)
        return self.logged_statuses(path)[mark:]

    def local(self, name):
        return os.path.join(self.work, name)

    def test_curl_etag_save_then_compare_gets_304_and_keeps_the_file(self):
        url = self.server.url("/etag-save.html")
        mark = len(self.logged_statuses("/etag-save.html"))
        self.assertEqual(self.curl("-o", "page.html", "--etag-save", "etag.txt", url), 200)
        with open(self.local("etag.txt")) as f:
            saved = f.read().strip()
        self.assertEqual(saved, self.get("/etag-save.html").header("ETag"))
        status = self.curl("-o", "page.html", "--etag-compare", "etag.txt", url)
        self.assertEqual(status, 304)
        with open(self.local("page.html"), "rb") as f:
            self.assertEqual(f.read(), PAGE)
        self.assertEqual(self.statuses_since("/etag-save.html", mark, 3), [200, 200, 304])

    def test_curl_etag_compare_with_a_stale_tag_downloads(self):
        with open(self.local("etag.txt"), "w") as f:
            f.write('"stale"\n')
        url = self.server.url("/page.html")
        self.assertEqual(self.curl("-o", "page.html", "--etag-compare", "etag.txt", url), 200)
        with open(self.local("page.html"), "rb") as f:
            self.assertEqual(f.read(), PAGE)

    def test_curl_time_condition_gets_304(self):
        url = self.server.url("/page.html")
        self.assertEqual(self.curl("-R", "-o", "page.html", url), 200)
        self.assertEqual(int(os.stat(self.local("page.html")).st_mtime), T0)
        self.assertEqual(self.curl("-R", "-z", "page.html", "-o", "page.html", url), 304)
        with open(self.local("page.html"), "rb") as f:
            self.assertEqual(f.read(), PAGE)
        # A local copy older than the server's gets the file again.
        os.utime(self.local("page.html"), (T0 - 3600, T0 - 3600))
        self.assertEqual(self.curl("-R", "-z", "page.html", "-o", "page.html", url), 200)

    def test_curl_resume_gets_206_and_completes_byte_exact(self):
        partial = 1234567
        with open(self.local("big.bin"), "wb") as f:
            f.write(BIG[:partial])
        mark = len(self.logged_statuses("/big.bin"))
        status = self.curl("-C", "-", "-o", "big.bin", self.server.url("/big.bin"))
        self.assertEqual(status, 206)
        with open(self.local("big.bin"), "rb") as f:
            self.assertTrue(f.read() == BIG, "resumed file differs")
        self.assertEqual(self.statuses_since("/big.bin", mark, 1), [206])

    def test_curl_head_matches_get(self):
        p = self.run_tool(tool("curl"), "-sS", "-I", "--max-time", "20",
                          self.server.url("/page.html"))
        self.assertEqual(p.returncode, 0)
        head = p.stdout.decode()
        self.assertIn("HTTP/1.1 200 OK", head)
        self.assertIn("Content-Length: %d" % len(PAGE), head)

    def test_wget_timestamping_does_not_download_twice(self):
        url = self.server.url("/wget.txt")
        argv = (tool("wget"), "-N", "-S", "--tries=1", "--timeout=20", "--no-config", url)
        mark = len(self.logged_statuses("/wget.txt"))
        first = self.run_tool(*argv)
        self.assertEqual(first.returncode, 0, first.stderr)
        path = self.local("wget.txt")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"for wget\n")
        self.assertEqual(int(os.stat(path).st_mtime), T0)
        before = os.stat(path)
        time.sleep(0.05)

        second = self.run_tool(*argv)
        self.assertEqual(second.returncode, 0, second.stderr)
        out = second.stderr.decode(errors="replace")
        self.assertRegex(out, r"304 Not Modified|not retrieving|Omitting download", out)
        self.assertNotIn("saved [", out)
        after = os.stat(path)
        self.assertEqual((after.st_mtime_ns, after.st_ino), (before.st_mtime_ns, before.st_ino))
        self.assertFalse(os.path.exists(path + ".1"))
        statuses = self.statuses_since("/wget.txt", mark, 2)
        self.assertEqual(statuses[0], 200)
        self.assertEqual(statuses[-1], 304)

    def test_http_client_reuses_one_connection_through_revalidation(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/page.html")
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, PAGE))
        etag = r.getheader("ETag")
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", "/page.html", headers={"If-None-Match": etag})
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (304, b""))
            self.assertIs(conn.sock, sock, "connection was not kept alive")
        conn.request("HEAD", "/big.bin")
        r = conn.getresponse()
        self.assertEqual(int(r.getheader("Content-Length")), len(BIG))
        self.assertEqual(r.read(), b"")
        conn.request("GET", "/big.bin", headers={"Range": "bytes=-10"})
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (206, BIG[-10:]))
        self.assertIs(conn.sock, sock)


if __name__ == "__main__":
    unittest.main()
