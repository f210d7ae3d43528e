"""Files held in memory (docs/etags.md, "Held files"): up to --hold-size (256 KiB by default) a
file is read whole, tagged with the hash of those bytes and sent from them, within each worker's
--hold-budget. A file between the old 64 KiB bound and the new one, rewritten in place (even with
its size and mtime kept), is answered with its new tag and its new bytes; a budget smaller than
the files asked for lets the coldest bodies go and loads them again, always under their own tag."""

import os
import re
import time
import unittest

from launch import Conn, Site, get_request, require_binary, serve_for_test
from test_etags import content_tag

SETTLE_S = 2.2  # older than the racy window: held bytes are then trusted until a change
KIB = 1024


def rewrite_in_place(path, data, keep_mtime):
    """Writes DATA over PATH (same inode); keep_mtime puts the old mtime back, to the
    nanosecond, so that only the ctime (and, for a new size, the size) tells."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def small_files_hashed(stderr):
    """small_files= of the last hashing line the server printed (at shutdown)."""
    found = re.findall(r"small_files=(\d+)", stderr)
    return int(found[-1]) if found else None


@require_binary
class HeldFiles(unittest.TestCase):
    OPTIONS = ["--workers", "1", "--no-prehash"]

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)

    def get(self, conn, path, tag=None):
        return conn.request(get_request(path, [("If-None-Match", tag)] if tag else []))

    def expect_body(self, conn, path, data, why):
        r = self.get(conn, path)
        self.assertEqual(r.status, 200, why)
        self.assertEqual(r.body, data, why)
        self.assertEqual(r.header("ETag"), '"%s"' % content_tag(data), why)
        return r.header("ETag")

    def test_a_file_between_64_and_256_kib_changed_in_place_gets_its_new_tag_and_bytes(self):
        sizes = (150 * KIB, 150 * KIB, 150 * KIB, 200 * KIB, 100 * KIB, 256 * KIB)
        for watch in ("--watch", "--no-watch"):
            p = self.site.write("mid.bin", os.urandom(sizes[0]))
            time.sleep(SETTLE_S)
            srv = serve_for_test(self, self.site.root, self.OPTIONS + [watch])
            with Conn(srv.port) as c:
                with open(p, "rb") as f:
                    tag = self.expect_body(c, "/mid.bin", f.read(), watch)
                for i, size in enumerate(sizes[1:], 1):
                    why = "%s, round %d (%d bytes)" % (watch, i, size)
                    r = self.get(c, "/mid.bin", tag)
                    self.assertEqual(r.status, 304, why)
                    data = os.urandom(size)
                    rewrite_in_place(p, data, keep_mtime=True)
                    r = self.get(c, "/mid.bin", tag)
                    self.assertEqual(r.status, 200, "%s: the rewrite was not seen" % why)
                    self.assertEqual(r.body, data, why)
                    self.assertNotEqual(r.header("ETag"), tag, why)
                    # While racy (just written) the bytes are read again at each request; once
                    # settled they are held, and still the new version's.
                    tag = self.expect_body(c, "/mid.bin", data, why)
                time.sleep(SETTLE_S)
                self.expect_body(c, "/mid.bin", data, watch + ", settled")
                self.assertEqual(self.get(c, "/mid.bin", tag).status, 304, watch)
            srv.stop_checked()

    def serve_cycling(self, budget, files, passes):
        """Serves FILES, asks for each of them PASSES times in turn, checking every body and
        tag, and returns how many held bodies the server hashed (read whole)."""
        options = self.OPTIONS + (["--hold-budget", str(budget)] if budget is not None else [])
        srv = serve_for_test(self, self.site.root, options)
        with Conn(srv.port) as c:
            for n in range(passes):
                for name, data in sorted(files.items()):
                    self.expect_body(c, "/" + name, data, "pass %d, %s" % (n, name))
        srv.stop_checked()
        return small_files_hashed(srv.stderr())

    def test_with_a_small_budget_bodies_are_let_go_and_still_served_under_their_own_tags(self):
        files = dict(("f%d.bin" % i, os.urandom(150 * KIB + i)) for i in range(5))
        for name, data in files.items():
            self.site.write(name, data)
        time.sleep(SETTLE_S)
        # The default budget holds all five: each is read and hashed once.
        self.assertEqual(self.serve_cycling(None, files, 4), 5)
        # Room for two: asked for in turn, every body has gone by the time it is asked again,
        # so each request reads and hashes its file anew, and still sends the bytes it hashed.
        self.assertEqual(self.serve_cycling(2 * 150 * KIB + 10, files, 4), 20)
        # Smaller than any of them: served from the descriptor, copied and checked.
        self.assertEqual(self.serve_cycling(100 * KIB, files, 2), 0)


if __name__ == "__main__":
    unittest.main()
