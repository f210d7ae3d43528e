"""Precompressed sidecars served as variants (RFC 9110 §8.4, §8.8.3, §12.5.3), end to end."""

import errno
import gzip
import os
import shutil
import subprocess
import tempfile
import unittest

from launch import ServerTestCase, curl_compressed, require_binary, run, tool

T0 = 1672531200  # 2023-01-01 00:00:00 UTC
SOURCE = b"".join(b"line %04d of a compressible page\n" % i for i in range(200))
RECORD = "user.notmod.source"
CLIENT_TIMEOUT_S = 30


def zstd_bytes(data):
    p = subprocess.run([tool("zstd"), "-q", "-c"], input=data, capture_output=True,
                       timeout=CLIENT_TIMEOUT_S, check=True)
    return p.stdout


def etag_of(path):
    p = run(["etag", path])
    if p.returncode != 0:
        raise AssertionError("notmod etag %s: %s" % (path, p.stderr.decode()))
    return p.stdout.decode().split(" ", 1)[0]


def supports_user_xattrs(directory):
    probe = os.path.join(directory, ".xattr-probe")
    with open(probe, "wb"):
        pass
    try:
        os.setxattr(probe, "user.notmod.probe", b"1")
        return True
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return False
        raise
    finally:
        os.unlink(probe)


@require_binary
class Variants(ServerTestCase):
    # Sidecars alone: variants made on the fly are test_serve_fly.py's.
    SERVER_OPTIONS = ("--no-compress",)

    @classmethod
    def populate(cls, site):
        site.write("g.txt", SOURCE, mtime=T0)
        site.write("g.txt.gz", gzip.compress(SOURCE, mtime=0), mtime=T0 + 10)
        site.write("z.txt", SOURCE, mtime=T0)
        site.write("z.txt.zst", zstd_bytes(SOURCE), mtime=T0 + 10)
        site.write("old.txt", SOURCE, mtime=T0)
        site.write("old.txt.gz", gzip.compress(SOURCE, mtime=0), mtime=T0 - 100)
        site.write("plain.txt", SOURCE, mtime=T0)

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="notmod-variants-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def curl_compressed(self, path):
        return curl_compressed(self.port, path, self.work)

    def test_curl_compressed_gets_the_gzip_variant_decoded_to_the_source(self):
        body, head = self.curl_compressed("/g.txt")
        self.assertIn("content-encoding: gzip", head)
        self.assertIn("vary: accept-encoding", head)
        self.assertEqual(body, SOURCE)

    def test_curl_compressed_gets_the_zstd_variant_decoded_to_the_source(self):
        body, head = self.curl_compressed("/z.txt")
        self.assertIn("content-encoding: zstd", head)
        self.assertEqual(body, SOURCE)

    def test_each_variant_tag_differs_from_identity_and_is_the_sidecars_content_hash(self):
        for name, coding in (("g.txt", "gzip"), ("z.txt", "zstd")):
            with self.subTest(name=name):
                ident = self.get("/" + name)
                coded = self.get("/" + name, [("Accept-Encoding", coding)])
                self.assertEqual(ident.status, 200)
                self.assertIsNone(ident.header("Content-Encoding"))
                self.assertEqual(coded.header("Content-Encoding"), coding)
                self.assertNotEqual(ident.header("ETag"), coded.header("ETag"))
                sidecar = self.site.path(name + (".gz" if coding == "gzip" else ".zst"))
                self.assertEqual(coded.header("ETag"), etag_of(sidecar))
                self.assertEqual(ident.header("ETag"), etag_of(self.site.path(name)))
                with open(sidecar, "rb") as f:
                    self.assertEqual(coded.body, f.read())

    def test_304_for_the_variant_carries_vary_and_the_variant_tag(self):
        coded = self.get("/g.txt", [("Accept-Encoding", "gzip")])
        tag = coded.header("ETag")
        r = self.get("/g.txt", [("Accept-Encoding", "gzip"), ("If-None-Match", tag)])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), tag)
        self.assertEqual(r.header("Vary"), "Accept-Encoding")
        ident = self.get("/g.txt", [("If-None-Match", tag)])
        self.assertEqual(ident.status, 200)
        self.assertEqual(ident.header("Vary"), "Accept-Encoding")

    def test_sidecar_older_than_its_source_is_not_served(self):
        r = self.get("/old.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertIsNone(r.header("Vary"))
        self.assertEqual(r.body, SOURCE)

    def test_file_without_sidecars_has_no_vary(self):
        r = self.get("/plain.txt", [("Accept-Encoding", "gzip, br, zstd")])
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Vary"))
        self.assertIsNone(r.header("Content-Encoding"))

    def test_source_rewritten_in_the_same_second_loses_its_recorded_sidecar(self):
        if not supports_user_xattrs(self.site.root):
            self.skipTest("no user extended attributes here")
        src, side = self.site.path("r.txt"), self.site.path("r.txt.gz")
        self.site.write("r.txt", SOURCE)
        self.site.write("r.txt.gz", gzip.compress(SOURCE, mtime=0))
        hash_text = etag_of(src).strip('"')
        os.setxattr(side, RECORD, ("1 gzip %s" % hash_text).encode())
        os.utime(src, ns=(T0 * 10**9 + 100, T0 * 10**9 + 100))
        os.utime(side, ns=(T0 * 10**9 + 900, T0 * 10**9 + 900))
        r = self.get("/r.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        # Same size, same second, and still not newer than the sidecar: only the record tells.
        rewritten = SOURCE.replace(b"line 0000", b"LINE 0000")
        self.assertEqual(len(rewritten), len(SOURCE))
        with open(src, "r+b") as f:
            f.write(rewritten)
        os.utime(src, ns=(T0 * 10**9 + 500, T0 * 10**9 + 500))
        r = self.get("/r.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertEqual(r.body, rewritten)
        self.assertEqual(r.header("ETag"), etag_of(src))

    def test_a_sidecar_whose_bytes_are_not_the_ones_its_record_names_is_not_served(self):
        # What a worker reads of a sidecar rewritten in place, caught after the write of its new
        # bytes and before their truncate, while the record still names the source it had.
        if not supports_user_xattrs(self.site.root):
            self.skipTest("no user extended attributes here")
        src, side = self.site.path("t.txt"), self.site.path("t.txt.gz")
        packed = gzip.compress(SOURCE, mtime=0)
        self.site.write("t.txt", SOURCE, mtime=T0)
        self.site.write("t.txt.gz", packed, mtime=T0 + 10)
        source_tag, own_tag = etag_of(src).strip('"'), etag_of(side).strip('"')
        os.setxattr(side, RECORD, ("2 gzip %s %s" % (source_tag, own_tag)).encode())
        r = self.get("/t.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(r.body, packed)
        torn = gzip.compress(SOURCE.replace(b"line 0001", b"LINE 0001"), mtime=0)[:len(packed) // 2]
        with open(side, "r+b") as f:
            f.write(torn)
        os.utime(side, ns=((T0 + 20) * 10**9, (T0 + 20) * 10**9))
        r = self.get("/t.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertEqual(r.body, SOURCE)


@require_binary
class PrecompressedOff(ServerTestCase):
    SERVER_OPTIONS = ("--precompressed", "off", "--no-compress")

    @classmethod
    def populate(cls, site):
        site.write("g.txt", SOURCE, mtime=T0)
        site.write("g.txt.gz", gzip.compress(SOURCE, mtime=0), mtime=T0 + 10)

    def test_off_serves_identity_without_vary(self):
        r = self.get("/g.txt", [("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertIsNone(r.header("Vary"))


if __name__ == "__main__":
    unittest.main()
