"""notmod compress against the real binary: gzip sidecars decode with Python's own gzip and zlib
to the source bytes, only the codings asked for are written, a second run writes nothing, and
the command line is checked (brotli and zstd round trips: tests/unit/variants/test_codec.c)."""
import gzip
import os
import unittest
import zlib

from launch import Site, require_binary, run


def content_tag_of(path):
    """The 22 characters of PATH's content tag, as notmod etag prints it."""
    p = run(["etag", path])
    if p.returncode != 0:
        raise AssertionError("notmod etag %s: %s" % (path, p.stderr.decode()))
    return p.stdout.decode().split(" ", 1)[0].strip('"')

EXIT_USAGE = 2
CSS = b"".join(b".c%d { margin: %dpx auto; color: #333; }\n" % (i, i % 7) for i in range(200))
JS = b"".join(b"function f%d(x) { return x * %d; }\n" % (i, i) for i in range(200))


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


@require_binary
class CompressTree(unittest.TestCase):
    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        self.site.write("css/site.css", CSS)
        self.site.write("js/app.js", JS)
        self.site.write("img/photo.png", CSS)  # not a compressible type
        self.site.write("small.txt", b"short\n")  # under --min-size

    def compress(self, *args):
        p = run(["compress", *args, self.site.root], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return p.stderr.decode()

    def test_gzip_sidecars_decode_to_their_sources(self):
        summary = self.compress("--codings", "gzip")
        self.assertIn("2 sidecars written", summary)
        self.assertEqual(files_under(self.site.root),
                         ["css/site.css", "css/site.css.gz", "img/photo.png", "js/app.js",
                          "js/app.js.gz", "small.txt"])
        for rel, source in (("css/site.css", CSS), ("js/app.js", JS)):
            with open(self.site.path(rel + ".gz"), "rb") as f:
                member = f.read()
            self.assertEqual(gzip.decompress(member), source)
            self.assertEqual(zlib.decompress(member, 31), source)
            self.assertEqual(member[4:8], b"\0\0\0\0", "MTIME 0")
            self.assertLess(len(member), len(source) // 3)
            # The record names the source's bytes and the sidecar's own (docs/usage.md).
            record = os.getxattr(self.site.path(rel + ".gz"), "user.notmod.source")
            self.assertEqual(record.decode().split(" "),
                             ["2", "gzip", content_tag_of(self.site.path(rel)),
                              content_tag_of(self.site.path(rel + ".gz"))])

    def test_a_second_run_writes_nothing(self):
        self.compress()
        stats = {f: os.stat(self.site.path(f)) for f in files_under(self.site.root)}
        self.assertIn("css/site.css.br", stats)
        self.assertIn("js/app.js.zst", stats)
        summary = self.compress()
        self.assertIn("0 sidecars written, 6 up to date", summary)
        for f, st in stats.items():
            now = os.stat(self.site.path(f))
            self.assertEqual((now.st_ino, now.st_mtime_ns), (st.st_ino, st.st_mtime_ns), f)

    def test_a_changed_source_gets_a_new_sidecar(self):
        self.compress("--codings", "gzip")
        changed = CSS.replace(b"#333", b"#444")
        st = os.stat(self.site.path("css/site.css"))
        self.site.write("css/site.css", changed)
        os.utime(self.site.path("css/site.css"), ns=(st.st_atime_ns, st.st_mtime_ns))
        self.assertIn("1 sidecars written", self.compress("--codings", "gzip"))
        with open(self.site.path("css/site.css.gz"), "rb") as f:
            self.assertEqual(gzip.decompress(f.read()), changed)

    def test_quiet_prints_nothing(self):
        p = run(["compress", "-q", self.site.root], timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"", b""))


@require_binary
class CompressCommandLine(unittest.TestCase):
    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)

    def assert_usage(self, args, message):
        p = run(["compress", *args], timeout=30)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, EXIT_USAGE, err)
        self.assertIn(message, err)
        self.assertEqual(os.listdir(self.site.root), [])

    def test_bad_command_lines_exit_2(self):
        self.assert_usage(["--codecs", "gzip", self.site.root], "unknown option '--codecs'")
        self.assert_usage(["--code", "gzip", self.site.root], "unknown option '--code'")
        self.assert_usage(["--codings", "gzip,lzma", self.site.root], "--codings")
        self.assert_usage(["--codings", "identity", self.site.root], "--codings")
        self.assert_usage(["--level", "23", self.site.root], "--level")
        self.assert_usage(["--min-saving", "100", self.site.root], "--min-saving")
        self.assert_usage(["--min-size", "-1", self.site.root], "--min-size")
        self.assert_usage([], "no DIR given")

    def test_a_missing_directory_exits_1(self):
        p = run(["compress", os.path.join(self.site.root, "nope")], timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("No such file or directory", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
