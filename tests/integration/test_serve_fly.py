"""Compressed variants made on the fly for files without sidecars (RFC 9110 §8.4, §8.8.3,
§12.5.3), end to end: Vary from the first response, the variant once the background thread has
made it, the same tag from every server that links the same libraries, and the limits."""

import gzip
import os
import shutil
import tempfile
import time
import unittest

from launch import ServerTestCase, curl_compressed, fetch, require_binary, tool

SOURCE = b"".join(b"line %05d of a page compressed by the server\n" % i for i in range(2000))
BIG_BYTES = 20 << 20
READY_WAIT_S = 20


@require_binary
class OnTheFly(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("page.html", SOURCE)
        site.write("curl.css", SOURCE)
        site.write("restart.js", SOURCE)
        site.write("tiny.txt", b"short\n")
        site.write("photo.jpg", SOURCE)
        site.write("huge.txt", b"0123456789abcdef\n" * (BIG_BYTES // 17 + 1))

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="notmod-fly-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def curl_compressed(self, path):
        return curl_compressed(self.port, path, self.work)

    def wait_for_coding(self, port, path, coding):
        """Asks until the response is coded, a bounded number of times: the first ask queues the
        job and is answered at once."""
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            r = fetch(port, path, [("Accept-Encoding", coding)])
            if r.header("Content-Encoding") == coding or time.monotonic() > deadline:
                return r
            time.sleep(0.05)

    def test_curl_compressed_gets_identity_and_vary_first_then_the_source_decoded(self):
        body, head = self.curl_compressed("/curl.css")
        self.assertNotIn("content-encoding", head, "the first request never waits")
        self.assertIn("vary: accept-encoding", head)
        self.assertEqual(body, SOURCE)
        deadline = time.monotonic() + READY_WAIT_S
        while "content-encoding" not in head and time.monotonic() < deadline:
            time.sleep(0.05)
            body, head = self.curl_compressed("/curl.css")
        self.assertIn("content-encoding", head)
        self.assertIn("vary: accept-encoding", head)
        self.assertEqual(body, SOURCE)

    def test_the_gzip_variant_has_its_own_tag_length_and_a_304(self):
        ident = self.get("/page.html")
        self.assertEqual(ident.header("Vary"), "Accept-Encoding")
        coded = self.wait_for_coding(self.port, "/page.html", "gzip")
        self.assertEqual(coded.header("Content-Encoding"), "gzip")
        self.assertEqual(gzip.decompress(coded.body), SOURCE)
        self.assertEqual(int(coded.header("Content-Length")), len(coded.body))
        self.assertLess(len(coded.body), len(SOURCE))
        self.assertEqual(coded.header("Content-Type"), ident.header("Content-Type"))
        self.assertEqual(coded.header("Cache-Control"), ident.header("Cache-Control"))
        tag = coded.header("ETag")
        self.assertTrue(tag.startswith('"'), tag)
        self.assertNotEqual(tag, ident.header("ETag"))
        r = self.get("/page.html", [("Accept-Encoding", "gzip"), ("If-None-Match", tag)])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), tag)
        self.assertEqual(r.header("Vary"), "Accept-Encoding")
        r = self.get("/page.html", [("If-None-Match", tag)])
        self.assertEqual(r.status, 200, "identity is not validated by the variant's tag")
        r = self.get("/page.html", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-1")])
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, coded.body[:2])

    def test_another_server_gives_the_same_bytes_the_same_tag(self):
        first = self.wait_for_coding(self.port, "/restart.js", "gzip")
        self.assertEqual(first.header("Content-Encoding"), "gzip")
        other = self.start_server()
        second = self.wait_for_coding(other.port, "/restart.js", "gzip")
        self.assertEqual(second.header("Content-Encoding"), "gzip")
        self.assertEqual(second.body, first.body, "deterministic output")
        self.assertEqual(second.header("ETag"), first.header("ETag"))

    def test_small_files_other_types_and_files_over_the_limit_are_identity_without_vary(self):
        for path in ("/tiny.txt", "/photo.jpg", "/huge.txt"):
            with self.subTest(path=path):
                for _ in range(3):
                    r = self.get(path, [("Accept-Encoding", "gzip")])
                    self.assertEqual(r.status, 200)
                    self.assertIsNone(r.header("Content-Encoding"))
                    self.assertIsNone(r.header("Vary"))
                    time.sleep(0.05)
        self.assertEqual(len(r.body), os.path.getsize(self.site.path("huge.txt")))


@require_binary
class NoCompress(ServerTestCase):
    SERVER_OPTIONS = ("--no-compress",)

    @classmethod
    def populate(cls, site):
        site.write("page.html", SOURCE)

    def test_no_compress_sends_identity_without_vary(self):
        for _ in range(3):
            r = self.get("/page.html", [("Accept-Encoding", "gzip")])
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Content-Encoding"))
            self.assertIsNone(r.header("Vary"))
            self.assertEqual(r.body, SOURCE)
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
