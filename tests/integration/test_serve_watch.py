"""Changes learnt from inotify (docs/etags.md, "Watching"): a keep-alive 304 costs no stat, and
yet a rewrite, a renamed directory, a sidecar added or removed and a swapped root are seen by the
very next request; --no-watch keeps a stat per request."""

import gzip
import os
import shutil
import time
import unittest

from launch import Conn, Site, get_request, require_binary, serve_for_test, wait_until

SETTLE_S = 2.2  # older than the racy window: entries are then trusted to the watch
ROUNDS = 20


def inotify_fds(pid):
    """How many inotify descriptors the process holds."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:inotify":
                n += 1
        except OSError:
            pass
    return n


def rewrite_same_second(path, data):
    """Same size, and even the same mtime to the nanosecond: only the ctime moves."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@require_binary
class Watching(unittest.TestCase):
    OPTIONS = ["--workers", "1", "--no-prehash"]

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)

    def serve(self, *extra):
        return serve_for_test(self, self.site.root, self.OPTIONS + list(extra))

    def get(self, conn, path, headers=()):
        return conn.request(get_request(path, headers))

    def test_a_rewrite_right_after_a_304_is_answered_200_with_the_new_tag(self):
        p = self.site.write("page.txt", b"version 00\n")
        time.sleep(SETTLE_S)
        srv = self.serve()
        with Conn(srv.port) as c:
            tag = self.get(c, "/page.txt").header("ETag")
            for i in range(1, ROUNDS + 1):
                r = self.get(c, "/page.txt", [("If-None-Match", tag)])
                self.assertEqual(r.status, 304, "round %d" % i)
                body = b"version %02d\n" % i
                rewrite_same_second(p, body)
                r = self.get(c, "/page.txt", [("If-None-Match", tag)])
                self.assertEqual(r.status, 200, "round %d: the rewrite was not seen" % i)
                self.assertEqual(r.body, body)
                self.assertNotEqual(r.header("ETag"), tag)
                tag = r.header("ETag")

    def test_a_renamed_directory_is_seen_by_the_next_request(self):
        self.site.write("d/sub/x.txt", b"old x\n")
        time.sleep(SETTLE_S)
        srv = self.serve()
        with Conn(srv.port) as c:
            first = self.get(c, "/d/sub/x.txt")
            self.assertEqual(first.status, 200)
            self.assertEqual(self.get(c, "/d/sub/x.txt").status, 200)
            os.rename(self.site.path("d"), self.site.path("e"))
            self.assertEqual(self.get(c, "/d/sub/x.txt").status, 404)
            moved = self.get(c, "/e/sub/x.txt")
            self.assertEqual(moved.body, b"old x\n")
            self.assertEqual(moved.header("ETag"), first.header("ETag"))
            self.site.write("d/sub/x.txt", b"new x\n")
            self.assertEqual(self.get(c, "/d/sub/x.txt").body, b"new x\n")
            with open(self.site.path("e/sub/x.txt"), "wb") as f:
                f.write(b"e2\n")
            self.assertEqual(self.get(c, "/e/sub/x.txt").body, b"e2\n")

    def test_a_sidecar_added_or_removed_is_seen_by_the_next_request(self):
        self.site.write("app.css", b"body { color: red }\n" * 20)
        time.sleep(SETTLE_S)
        srv = self.serve("--precompressed", "gzip", "--no-compress")  # sidecars only
        gz = [("Accept-Encoding", "gzip")]
        with Conn(srv.port) as c:
            for _ in range(2):
                r = self.get(c, "/app.css", gz)
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.header("Content-Encoding"))
            packed = gzip.compress(b"body { color: red }\n" * 20)
            with open(self.site.path("app.css.gz"), "wb") as f:
                f.write(packed)
            r = self.get(c, "/app.css", gz)
            self.assertEqual(r.header("Content-Encoding"), "gzip")
            self.assertEqual(r.body, packed)
            os.unlink(self.site.path("app.css.gz"))
            r = self.get(c, "/app.css", gz)
            self.assertIsNone(r.header("Content-Encoding"))

    def test_a_root_swapped_by_symlink_is_seen_by_the_next_request(self):
        base = self.site.base
        for name, body in (("r1", b"release one\n"), ("r2", b"release two\n")):
            os.mkdir(os.path.join(base, name))
            with open(os.path.join(base, name, "v.txt"), "wb") as f:
                f.write(body)
        current = os.path.join(base, "current")
        os.symlink("r1", current)
        time.sleep(SETTLE_S)
        srv = serve_for_test(self, current, self.OPTIONS)
        with Conn(srv.port) as c:
            for _ in range(2):
                self.assertEqual(self.get(c, "/v.txt").body, b"release one\n")
            os.symlink("r2", current + ".new")
            os.replace(current + ".new", current)
            self.assertEqual(self.get(c, "/v.txt").body, b"release two\n")
            shutil.rmtree(os.path.join(base, "r1"))
            os.mkdir(os.path.join(base, "r3"))
            with open(os.path.join(base, "r3", "v.txt"), "wb") as f:
                f.write(b"release three\n")
            os.symlink("r3", current + ".new")
            os.replace(current + ".new", current)
            self.assertEqual(self.get(c, "/v.txt").body, b"release three\n")

    def test_each_worker_watches_through_one_inotify_descriptor_and_no_watch_uses_none(self):
        self.site.write("a.txt", b"a\n")
        srv = self.serve()
        with Conn(srv.port) as c:
            self.assertEqual(self.get(c, "/a.txt").status, 200)  # the worker runs by now
        self.assertTrue(wait_until(lambda: inotify_fds(srv.proc.pid) == 1, 5))
        off = self.serve("--no-watch")
        with Conn(off.port) as c:
            self.assertEqual(self.get(c, "/a.txt").status, 200)
        self.assertEqual(inotify_fds(off.proc.pid), 0)

    def test_with_no_watch_a_rewrite_after_a_304_is_still_seen(self):
        p = self.site.write("page.txt", b"version 00\n")
        time.sleep(SETTLE_S)
        srv = self.serve("--no-watch")
        with Conn(srv.port) as c:
            tag = self.get(c, "/page.txt").header("ETag")
            self.assertEqual(self.get(c, "/page.txt", [("If-None-Match", tag)]).status, 304)
            rewrite_same_second(p, b"version 01\n")
            r = self.get(c, "/page.txt", [("If-None-Match", tag)])
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"version 01\n")


if __name__ == "__main__":
    unittest.main()
