"""Content ETags end to end: the tag is the hash of the bytes sent and never stands for two bodies
(a rewrite storm, gzip sidecars included), same-second rewrites and rollbacks, hashes persisted
across restarts, the event loop answering while a 1 GiB file is hashed, manifests shared by
replicas (for gzip variants too), and files that are unreadable, vanish or grow."""

import base64
import ctypes
import ctypes.util
import email.utils
import errno
import gzip
import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest
import unittest.mock

from launch import (NotmodServer, http_connection, http_get, require_binary, run,
                    serve_for_test, shared_tempdir, wait_until)

RACY_S = 2.2  # a file changed less than 2 s ago is not hashed from disk yet
SMALL = 256 * 1024  # files up to this size are held in memory by the server (--hold-size)
STORM_S = 16
GIB = 1 << 30
HAS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def body_for(name, gen, size):
    """A body that says which write made it, so a torn one is recognisable."""
    head = ("%s gen=%d size=%d\n" % (name, gen, size)).encode()
    seed = hashlib.sha256(head).digest()
    reps = (size // len(seed)) + 1
    return (head + seed * reps)[:size]


def write_in_place(path, data):
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.write(data)
        f.truncate(len(data))


def write_by_rename(path, data):
    tmp = "%s.tmp%d" % (path, threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def xattrs_supported(directory):
    probe = os.path.join(directory, ".xattr-probe")
    with open(probe, "wb") as f:
        f.write(b"x")
    try:
        os.setxattr(probe, "user.notmod.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


def notmod_etag(*args, as_nobody=False):
    p = run(["etag", *args], timeout=120, as_nobody=as_nobody)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def etag_of_file(path):
    rc, out, err = notmod_etag(path)
    if rc != 0:
        raise AssertionError("notmod etag %s: %s" % (path, err))
    return out.split(" ", 1)[0]


class _XXH128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


def _load_xxh3_128():
    name = ctypes.util.find_library("xxhash")  # notmod links the same library
    if not name:
        return None
    fn = ctypes.CDLL(name).XXH3_128bits
    fn.restype = _XXH128
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return fn


_xxh3_128 = _load_xxh3_128()


def content_tag(data):
    """The content tag of DATA without its quotes (docs/etags.md), as notmod etag prints it."""
    if _xxh3_128 is None:
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            return etag_of_file(f.name).strip('"')
    h = _xxh3_128(data, len(data))
    digest = h.high64.to_bytes(8, "big") + h.low64.to_bytes(8, "big")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def counters(server, when):
    """The counters of the server's last 'hashing WHEN:' line as a dict, or None."""
    found = None
    for line in server.stderr().splitlines():
        if "hashing %s:" % when in line:
            found = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
    return found


def wait_counters(server, when, timeout):
    found = wait_until(lambda: counters(server, when), timeout)
    if found is None:
        raise AssertionError("no 'hashing %s' line within %ss: %s" % (when, timeout,
                                                                    server.stderr()))
    return found


@require_binary
class ContentETags(unittest.TestCase):
    def setUp(self):
        # One test serves this tree as nobody.
        self.root = shared_tempdir("notmod-etags-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def path(self, name):
        return os.path.join(self.root, name)

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        write_in_place(p, data)
        return p

    def serve(self, *options, as_nobody=False, env=None, defaults=False):
        return serve_for_test(self, self.root, options, as_nobody=as_nobody, checked=False,
                              env=env, defaults=defaults)

    def fresh_store(self):
        """A directory (not made yet) for the server's default ETag store, as systemd's
        CacheDirectory= gives it (CACHE_DIRECTORY), removed after the test."""
        parent = tempfile.mkdtemp(prefix="notmod-store-")
        self.addCleanup(shutil.rmtree, parent, True)
        return os.path.join(parent, "notmod")

    def test_the_tag_is_what_notmod_etag_prints_for_the_bytes(self):
        self.write("a.txt", b"hello\n")
        self.write("empty", b"")
        s = self.serve("--no-prehash")
        for name in ("a.txt", "empty"):
            status, h, body = http_get(s.port, "/" + name)
            self.assertEqual(status, 200)
            self.assertRegex(h["etag"], r'^"[A-Za-z0-9_-]{22}"$')
            self.assertEqual(h["etag"], etag_of_file(self.path(name)))
        # The same bytes anywhere else, whatever their mtime, have the same tag.
        other = self.write("copy/b.txt", b"hello\n")
        os.utime(other, ns=(10**18, 10**18))
        self.assertEqual(http_get(s.port, "/copy/b.txt")[1]["etag"],
                         http_get(s.port, "/a.txt")[1]["etag"])

    def test_a_same_size_rewrite_in_the_same_second_gets_a_new_tag(self):
        p = self.write("f.txt", b"version one\n")
        st = os.stat(p)
        s = self.serve("--no-prehash")
        first = http_get(s.port, "/f.txt")[1]["etag"]
        write_in_place(p, b"version two\n")
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # even the same mtime, to the ns
        status, h, body = http_get(s.port, "/f.txt")
        self.assertEqual(body, b"version two\n")
        self.assertNotEqual(h["etag"], first)
        self.assertEqual(h["etag"], etag_of_file(p))
        # The old tag no longer validates the new bytes.
        status, _, _ = http_get(s.port, "/f.txt", {"If-None-Match": first})
        self.assertEqual(status, 200)

    def test_a_rollback_gets_the_old_tag_back(self):
        big_a, big_b = os.urandom(300 * 1024), os.urandom(300 * 1024)
        self.write("s.css", b"body { color: red }\n")
        self.write("big.bin", big_a)
        time.sleep(RACY_S)
        s = self.serve("--no-prehash")
        tags = []
        for small, big in ((b"body { color: red }\n", big_a), (b"body { color: blue }\n", big_b),
                           (b"body { color: red }\n", big_a)):
            write_by_rename(self.path("s.css"), small)
            write_in_place(self.path("big.bin"), big)
            time.sleep(RACY_S)
            small_tag = http_get(s.port, "/s.css")[1]["etag"]
            big_tag = wait_until(lambda: http_get(s.port, "/big.bin")[1].get("etag"), 20)
            tags.append((small_tag, big_tag))
        self.assertNotEqual(tags[0], tags[1])
        self.assertEqual(tags[0], tags[2])
        # A cache holding the old tag revalidates after the rollback.
        self.assertEqual(http_get(s.port, "/big.bin", {"If-None-Match": tags[0][1]})[0], 304)

    def restart_hashes_nothing(self, options, env, source):
        names = ["big%d.bin" % i for i in range(6)]
        for i, name in enumerate(names):
            self.write("d%d/%s" % (i % 2, name), os.urandom(SMALL + 1 + i * 100 * 1024))
        self.write("small.txt", b"small\n")
        s = self.serve(*options, env=env, defaults=True)
        first = wait_counters(s, "after prehash", 30)
        self.assertEqual(first["hashed_files"], len(names), first)
        self.assertEqual(first["persisted"], len(names), first)
        tags = {}
        for i, name in enumerate(names):
            url = "/d%d/%s" % (i % 2, name)
            tags[url] = http_get(s.port, url)[1].get("etag")
            self.assertEqual(tags[url], etag_of_file(self.path(url[1:])))
        self.assertEqual(s.stop(), 0)

        s2 = self.serve(*options, env=env, defaults=True)
        again = wait_counters(s2, "after prehash", 30)
        self.assertEqual(again["hashed_files"], 0, again)
        self.assertEqual(again[source], len(names), again)
        for url, tag in tags.items():
            self.assertEqual(http_get(s2.port, url)[1].get("etag"), tag, url)
        self.assertEqual(s2.stop(), 0)
        self.assertEqual(counters(s2, "at shutdown")["hashed_files"], 0)

    def test_a_restart_over_a_persisted_tree_hashes_nothing(self):
        # The default: the ETag store outside the tree, which needs no attributes.
        self.restart_hashes_nothing((), {"CACHE_DIRECTORY": self.fresh_store()}, "from_store")

    def test_a_restart_with_etag_store_xattr_hashes_nothing(self):
        if not xattrs_supported(self.root):
            self.skipTest("%s has no user extended attributes: hashes stay in memory"
                          % self.root)
        self.restart_hashes_nothing(("--etag-store", "xattr"),
                                    {"CACHE_DIRECTORY": self.fresh_store()}, "from_xattr")

    def test_serving_with_defaults_leaves_the_tree_untouched(self):
        for i in range(4):
            self.write("d/big%d.bin" % i, os.urandom(SMALL + 1 + i * 300 * 1024))
        self.write("small.txt", b"small\n")
        self.write("d/mid.bin", os.urandom(SMALL // 2))
        time.sleep(RACY_S)  # settled files: the server would persist their hashes

        def snapshot():
            found = {}
            for dirpath, dirnames, filenames in os.walk(self.root):
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    st = os.stat(p)
                    found[p] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                sorted(os.listxattr(p)))
            st = os.stat(self.root)
            found[self.root] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns,
                                sorted(os.listxattr(self.root)))
            return found

        before = snapshot()
        store = self.fresh_store()
        for _ in range(2):  # a first start hashes and stores, a restart reads the store
            s = self.serve(env={"CACHE_DIRECTORY": store}, defaults=True)
            done = wait_counters(s, "after prehash", 30)
            for i in range(4):
                status, headers = http_get(s.port, "/d/big%d.bin" % i)[:2]
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("etag"),
                                 etag_of_file(self.path("d/big%d.bin" % i)))
            self.assertEqual(s.stop(), 0)
        self.assertEqual(snapshot(), before)
        self.assertEqual(done["hashed_files"], 0, done)
        self.assertEqual(done["from_store"], 4, done)
        self.assertEqual(os.stat(store).st_mode & 0o777, 0o700)
        self.assertTrue(os.path.isfile(os.path.join(store, "etag-store")))

    def test_an_etag_store_others_can_write_is_refused(self):
        self.write("big.bin", os.urandom(SMALL + 1))
        store = self.fresh_store()
        os.mkdir(store)
        os.chmod(store, 0o777)
        # The last --etag-store wins: a directory after xattr is the store, and is checked.
        for options, env in ((("--etag-store", "xattr", "--etag-store", store), None),
                             ((), {"CACHE_DIRECTORY": store})):
            argv = ["serve", "--listen", "127.0.0.1:0", *options, self.root]
            p = run(argv, env=env, timeout=30)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("notmod serve: refusing ETag store %s: writable by other users "
                          "(mode 0777)" % store, p.stderr.decode())
        os.chmod(store, 0o700)
        s = self.serve("--etag-store", store)
        self.assertEqual(http_get(s.port, "/big.bin")[0], 200)
        self.assertEqual(s.stop(), 0)

    def write_failures_keep_tags_right_and_warn_once(self, options, seam, err, message):
        names = ["big%d.bin" % i for i in range(4)]
        for i, name in enumerate(names):
            self.write(name, os.urandom(SMALL + 1 + i * 1024))
        time.sleep(RACY_S)  # settled: every hash is one the server tries to persist
        env = {seam: str(err), "CACHE_DIRECTORY": self.fresh_store()}
        s = self.serve(*options, env=env, defaults=True)
        done = wait_counters(s, "after prehash", 30)
        self.assertEqual(done["hashed_files"], len(names), done)
        self.assertEqual(done["persisted"], 0, done)
        # The first failure pauses writes: at most one per pool thread got through before.
        self.assertIn(done["persist_failed"], (1, 2), done)
        for name in names:
            status, headers = http_get(s.port, "/" + name)[:2]
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("etag"), etag_of_file(self.path(name)), name)
        self.assertEqual(s.stop(), 0)
        warnings = [line for line in s.stderr().splitlines() if "cannot store ETags" in line]
        self.assertEqual(len(warnings), 1, s.stderr())
        self.assertIn(message, warnings[0])

    def test_a_full_disk_keeps_tags_right_and_warns_once(self):
        self.write_failures_keep_tags_right_and_warn_once(
            ("--etag-store", "xattr"), "NOTMOD_TEST_XATTR_ERRNO", errno.ENOSPC,
            "No space left on device")

    def test_failing_store_writes_keep_tags_right_and_warn_once(self):
        for err, message in ((errno.ENOSPC, "No space left on device"),
                             (errno.EROFS, "Read-only file system"),
                             (errno.EIO, "Input/output error")):
            with self.subTest(errno=errno.errorcode[err]):
                self.write_failures_keep_tags_right_and_warn_once(
                    (), "NOTMOD_TEST_STORE_ERRNO", err, "ETag store: " + message)

    def test_notmod_etag_write_stores_tags_the_server_then_uses(self):
        if not xattrs_supported(self.root):
            self.skipTest("%s has no user extended attributes" % self.root)
        p = self.write("big.bin", os.urandom(2 << 20))
        rc, out, err = notmod_etag("--write", self.root)
        self.assertEqual(rc, 0, err)
        self.assertIn("1 stored", err)
        self.assertTrue(os.getxattr(p, "user.notmod.etag").startswith(b"1 %d " % (2 << 20)))
        tag = out.split(" ", 1)[0]
        stamped = (os.stat(p).st_ctime_ns, os.getxattr(p, "user.notmod.etag"))
        s = self.serve("--no-prehash", "--hash-threshold", "0")
        self.assertEqual(http_get(s.port, "/big.bin")[1].get("etag"), tag)
        self.assertEqual(s.stop(), 0)
        # Read, never written again: the file's ctime and attribute are as the deploy left them.
        self.assertEqual((os.stat(p).st_ctime_ns, os.getxattr(p, "user.notmod.etag")), stamped)
        done = counters(s, "at shutdown")
        self.assertEqual((done["hashed_files"], done["from_xattr"]), (0, 1), done)
        # Printing again reads the attribute; --rehash does the work and agrees.
        self.assertEqual(notmod_etag(p)[1], notmod_etag("--rehash", p)[1])

    def test_a_304_is_prompt_while_a_1_gib_file_is_hashed(self):
        if shutil.disk_usage(self.root).free < 3 * GIB:
            self.skipTest("less than 3 GiB free in %s" % self.root)
        self.write("small.css", b"a { color: red }\n")
        big = self.path("huge.bin")
        block = os.urandom(1 << 20)
        with open(big, "wb") as f:
            for _ in range(1024):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
            # Out of the page cache, so that hashing reads the disk and takes a while.
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self.addCleanup(os.unlink, big)
        time.sleep(RACY_S)
        s = self.serve("--no-prehash")
        small_tag = http_get(s.port, "/small.css")[1]["etag"]

        t0 = time.monotonic()
        status, h, body = http_get(s.port, "/huge.bin", {"Range": "bytes=0-99"})
        ttfb = time.monotonic() - t0
        self.assertEqual(status, 206)
        self.assertEqual(body, block[:100])
        self.assertNotIn("etag", h, "served at once, without a tag, while hashing")
        # Not to be cached by its date alone (docs/etags.md, "A version without its tag yet").
        self.assertNotIn("last-modified", h)
        self.assertEqual(h.get("cache-control"), "no-store")
        self.assertLess(ttfb, 2.0)

        latencies, during = [], 0
        conn = http_connection(s.port)
        deadline = time.monotonic() + 120
        tagged = None
        while time.monotonic() < deadline and not tagged:
            t = time.monotonic()
            conn.request("GET", "/small.css", headers={"If-None-Match": small_tag})
            r = conn.getresponse()
            r.read()
            latencies.append(time.monotonic() - t)
            self.assertEqual(r.status, 304)
            conn.request("HEAD", "/huge.bin")
            r = conn.getresponse()
            r.read()
            tagged = r.getheader("ETag")
            during += tagged is None
        conn.close()
        self.assertIsNotNone(tagged, "the 1 GiB file was not hashed within 120 s")
        self.assertGreater(during, 0, "the hash finished before the first 304")
        latencies.sort()
        median = latencies[len(latencies) // 2]
        print("\n304s while hashing 1 GiB: %d, median %.2f ms, slowest %.2f ms; first byte of the "
              "unhashed file after %.2f ms" % (during, median * 1e3, latencies[-1] * 1e3,
                                               ttfb * 1e3))
        self.assertLess(median, 0.1, "median 304 latency while hashing: %.3fs" % median)
        self.assertLess(latencies[-1], 1.0, "slowest 304 while hashing: %.3fs" % latencies[-1])

    def test_a_manifest_gives_replicas_the_same_validators(self):
        files = {"index.html": b"<p>hi</p>\n", "css/app.css": b"p { margin: 0 }\n",
                 "img/big.bin": os.urandom(200 * 1024), "img/other.bin": os.urandom(100 * 1024)}
        for name, data in files.items():
            self.write(name, data)
        time.sleep(RACY_S)
        manifest = os.path.join(tempfile.mkdtemp(prefix="notmod-manifest-"), "etags.manifest")
        self.addCleanup(shutil.rmtree, os.path.dirname(manifest), True)
        rc, out, err = notmod_etag("--manifest=" + manifest, self.root)
        self.assertEqual(rc, 0, err)
        with open(manifest) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "notmod-manifest 1")
        self.assertEqual([line.split(" ")[0] for line in lines[1:]],
                         sorted("/" + n for n in files))
        for line in lines[1:]:
            path, size, tag, date = line.split(" ", 3)
            self.assertEqual(int(size), len(files[path[1:]]))
            self.assertEqual(tag, etag_of_file(self.path(path[1:])))
            self.assertRegex(date, r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")
        # Two more replicas of the tree whose files have other mtimes; in one, a small file
        # has other bytes of the same size and a big one another size.
        replicas = []
        for k in range(2):
            r = tempfile.mkdtemp(prefix="notmod-replica-")
            os.chmod(r, 0o755)
            self.addCleanup(shutil.rmtree, r, True)
            shutil.copytree(self.root, r, dirs_exist_ok=True)
            for name in files:
                os.utime(os.path.join(r, name), (1600000000 + k * 1000, 1600000000 + k * 1000))
            replicas.append(r)
        write_in_place(os.path.join(replicas[1], "css/app.css"), b"p { margin: 1 }\n")
        write_in_place(os.path.join(replicas[1], "img/other.bin"), os.urandom(99 * 1024))
        time.sleep(RACY_S)
        servers = []
        for r in replicas:
            servers.append(serve_for_test(self, r, ["--etag-manifest", manifest, "--no-prehash"],
                                          checked=False))
        self.assertIn("4 of 4 entries match", servers[0].stderr())
        self.assertIn("2 of 4 entries match", servers[1].stderr())
        self.assertIn("/css/app.css ignored: content differs", servers[1].stderr())
        self.assertIn("/img/other.bin ignored: size is", servers[1].stderr())
        by_path = dict((line.split(" ")[0], line.split(" ", 3)) for line in lines[1:])
        for path in ("/index.html", "/img/big.bin"):
            seen = [http_get(s.port, path)[1] for s in servers]
            for h in seen:
                self.assertEqual(h.get("etag"), by_path[path][2], path)
                self.assertEqual(h.get("last-modified"), by_path[path][3], path)
            # A date-only client revalidates against either replica.
            for s in servers:
                status = http_get(s.port, path, {"If-Modified-Since": by_path[path][3]})[0]
                self.assertEqual(status, 304, path)
        # Entries that do not match are never trusted: own bytes, own mtime.
        h = http_get(servers[1].port, "/css/app.css")[1]
        self.assertEqual(h["etag"], etag_of_file(os.path.join(replicas[1], "css/app.css")))
        self.assertNotEqual(h["etag"], by_path["/css/app.css"][2])
        own = os.stat(os.path.join(replicas[1], "css/app.css")).st_mtime
        self.assertEqual(h["last-modified"], email.utils.formatdate(own, usegmt=True))
        # A broken manifest stops the server with the line at fault.
        with open(manifest, "a") as f:
            f.write("/zz 1 \"bad\" Sun, 06 Nov 1994 08:49:37 GMT\n")
        p = run(["serve", "--listen", "127.0.0.1:0", "--etag-manifest", manifest, self.root],
                timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("line %d: bad ETag" % (len(lines) + 1), p.stderr.decode())

    def test_replicas_with_one_manifest_agree_on_the_gzip_variant(self):
        css = b"".join(b".c%d { margin: %dpx; padding: 0 }\n" % (i, i) for i in range(400))
        self.write("css/app.css", css)
        p = run(["compress", "--codings", "gzip", "-q", self.root], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        sidecar = self.path("css/app.css.gz")
        self.assertTrue(os.path.exists(sidecar))
        time.sleep(RACY_S)
        manifest = os.path.join(tempfile.mkdtemp(prefix="notmod-manifest-"), "etags.manifest")
        self.addCleanup(shutil.rmtree, os.path.dirname(manifest), True)
        rc, out, err = notmod_etag("--manifest=" + manifest, self.root)
        self.assertEqual(rc, 0, err)
        with open(manifest) as f:
            lines = f.read().splitlines()[1:]
        entries = dict((line.split(" ")[0], line.split(" ", 3)) for line in lines)
        # The sidecar is a file like any other: its own line, its own tag.
        self.assertEqual(sorted(entries), ["/css/app.css", "/css/app.css.gz"])
        gz_tag = etag_of_file(sidecar)
        self.assertEqual(entries["/css/app.css.gz"][1], str(os.path.getsize(sidecar)))
        self.assertEqual(entries["/css/app.css.gz"][2], gz_tag)
        self.assertNotEqual(gz_tag, entries["/css/app.css"][2])
        # One replica is a copy with its records and other mtimes; the other gets only the
        # source, compresses it itself, and its sidecar is made older than the source.
        replicas = []
        for k in range(2):
            r = tempfile.mkdtemp(prefix="notmod-replica-")
            os.chmod(r, 0o755)
            self.addCleanup(shutil.rmtree, r, True)
            os.makedirs(os.path.join(r, "css"))
            shutil.copy2(self.path("css/app.css"), os.path.join(r, "css/app.css"))
            if k == 0:
                shutil.copy2(sidecar, os.path.join(r, "css/app.css.gz"))
            else:
                p = run(["compress", "--codings", "gzip", "-q", r], timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
            t = 1600000000 + k * 1000
            os.utime(os.path.join(r, "css/app.css"), (t, t))
            os.utime(os.path.join(r, "css/app.css.gz"), (t - 10 * k, t - 10 * k))
            replicas.append(r)
        time.sleep(RACY_S)
        servers = [serve_for_test(self, r, ["--etag-manifest", manifest, "--no-prehash"],
                                  checked=False) for r in replicas]
        for s in servers:
            self.assertIn("2 of 2 entries match", s.stderr())
        gzip_heads = []
        for s in servers:
            status, h, body = http_get(s.port, "/css/app.css", {"Accept-Encoding": "gzip"})
            self.assertEqual(status, 200)
            self.assertEqual(h.get("content-encoding"), "gzip")
            self.assertIn("Accept-Encoding", h.get("vary", ""))
            self.assertEqual(gzip.decompress(body), css)
            gzip_heads.append(h)
            # Identity stays the source's own tag.
            ident = http_get(s.port, "/css/app.css")[1]
            self.assertEqual(ident.get("etag"), entries["/css/app.css"][2])
        for h in gzip_heads:
            self.assertEqual(h.get("etag"), gz_tag)
            self.assertEqual(h.get("last-modified"), entries["/css/app.css.gz"][3])
        # A client holding the gzip variant from one replica revalidates against the other.
        for s in servers:
            status, h, _ = http_get(s.port, "/css/app.css", {"Accept-Encoding": "gzip",
                                                             "If-None-Match": gz_tag})
            self.assertEqual(status, 304)
            self.assertEqual(h.get("etag"), gz_tag)
            status = http_get(s.port, "/css/app.css", {
                "Accept-Encoding": "gzip",
                "If-Modified-Since": entries["/css/app.css.gz"][3]})[0]
            self.assertEqual(status, 304)

    def test_unreadable_vanished_and_growing_files(self):
        ok = self.write("ok.txt", b"fine\n")
        secret = self.write("secret.txt", b"secret\n")
        os.chmod(secret, 0)
        big_secret = self.write("secret.bin", os.urandom(300 * 1024))
        os.chmod(big_secret, 0)
        gone = self.write("gone.bin", os.urandom(300 * 1024))
        for p in (ok, gone):
            os.chmod(p, 0o644)
        as_nobody = HAS_ROOT  # root reads anything: drop to nobody so that mode 0 means it
        s = self.serve("--hash-threshold", "0", as_nobody=as_nobody)
        self.assertEqual(http_get(s.port, "/secret.txt")[0], 403)
        self.assertEqual(http_get(s.port, "/secret.bin")[0], 403)
        rc, out, err = notmod_etag(secret, ok, as_nobody=as_nobody)
        self.assertEqual(rc, 1)
        self.assertIn("secret.txt: Permission denied", err)
        self.assertIn(" " + ok, out)
        # Vanished: while its hash is pending, and after.
        status, h, _ = http_get(s.port, "/gone.bin")
        self.assertEqual(status, 200)
        self.assertNotIn("etag", h)
        os.unlink(gone)
        self.assertEqual(http_get(s.port, "/gone.bin")[0], 404)
        rc, _, err = notmod_etag(gone)
        self.assertEqual(rc, 1)
        self.assertIn("No such file", err)
        # Growing (sent with sendfile): no tag while it grows, and each complete body is a
        # prefix of the final file.
        grow = self.write("grow.log", b"#" * 99 + b"\n" * (SMALL + 1))
        os.chmod(grow, 0o644)  # readable by nobody whatever the umask
        stop = threading.Event()

        def appender():
            with open(grow, "ab") as f:
                n = 0
                while not stop.is_set():
                    f.write(b"line %08d\n" % n)
                    f.flush()
                    n += 1
                    time.sleep(0.002)
        t = threading.Thread(target=appender)
        t.start()
        try:
            time.sleep(0.2)
            seen = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                c = http_connection(s.port)
                try:
                    c.request("GET", "/grow.log")
                    r = c.getresponse()
                    body = r.read()
                    seen.append((r.status, r.getheader("ETag"), body))
                except (http.client.IncompleteRead, ConnectionError):
                    pass
                finally:
                    c.close()
        finally:
            stop.set()
            t.join(timeout=10)
        self.assertTrue(seen)
        with open(grow, "rb") as f:
            final = f.read()
        for status, tag, body in seen:
            self.assertEqual(status, 200)
            self.assertTrue(final.startswith(body))
            self.assertIsNone(tag, "a file changed within 2 s has no tag yet")
        tag = wait_until(lambda: http_get(s.port, "/grow.log")[1].get("etag"), 20)
        self.assertEqual(tag, etag_of_file(grow))
        if as_nobody:
            # Files it may not write: the hash lives in memory only, and is used all the same.
            self.assertEqual(s.stop(), 0)
            done = counters(s, "at shutdown")
            self.assertEqual(done["persisted"], 0, done)
            self.assertGreaterEqual(done["hashed_files"], 1, done)

    def test_other_modes_stay_available(self):
        p = self.write("m.txt", b"abc")
        os.utime(p, ns=(1700000000123456789, 1700000000123456789))
        s = self.serve("--etag", "metadata")
        self.assertEqual(http_get(s.port, "/m.txt")[1]["etag"], '"3-%x"' % 1700000000123456789)
        s = self.serve("--etag", "version:build-42")
        self.assertEqual(http_get(s.port, "/m.txt")[1]["etag"], '"build-42"')
        s = self.serve("--etag", "off")
        h = http_get(s.port, "/m.txt")[1]
        self.assertNotIn("etag", h)
        self.assertIn("last-modified", h)


def store_records(path):
    """(whole records, records that fail their checksum) in an ETag store file (docs/etags.md)."""
    with open(path, "rb") as f:
        data = f.read()
    whole = torn = 0
    for off in range(128, len(data) - 127, 128):
        rec = data[off:off + 128]
        if rec == bytes(128):
            continue
        if _xxh3_128 is None:
            whole += rec[:4] == b"NMET"
            continue
        h = _xxh3_128(rec[:120], 120)
        if rec[120:] == h.high64.to_bytes(8, "little") and rec[:4] == b"NMET":
            whole += 1
        else:
            torn += 1
    return whole, torn


@require_binary
class StoreCrashes(unittest.TestCase):
    """The ETag store survives a server killed (SIGKILL) again and again while its pool hashes
    hundreds of large files and writes their records: a later server serves every file under
    the hash of its bytes, whatever the store holds, a record with damaged bytes included."""

    FILES = 400
    KILLS = 12

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="notmod-crash-")
        self.addCleanup(shutil.rmtree, self.root, True)
        parent = tempfile.mkdtemp(prefix="notmod-store-")
        self.addCleanup(shutil.rmtree, parent, True)
        self.store = os.path.join(parent, "notmod")
        self.tags = {}
        rng = random.Random(14)
        for i in range(self.FILES):
            data = rng.randbytes(SMALL + 1 + rng.randrange(96 * 1024))
            write_file_at = os.path.join(self.root, "f%03d.bin" % i)
            with open(write_file_at, "wb") as f:
                f.write(data)
            self.tags["/f%03d.bin" % i] = '"%s"' % content_tag(data)
        time.sleep(RACY_S)  # settled: every hash is stored

    def serve(self):
        return NotmodServer(self.root, ("--etag-store", self.store)).start()

    def test_killed_while_writing_records_the_store_never_gives_a_wrong_tag(self):
        rng = random.Random(1405)
        path = os.path.join(self.store, "etag-store")
        kills = killed_with_new_records = 0
        previous = 0
        for _ in range(self.KILLS):
            s = self.serve()
            time.sleep(rng.uniform(0.05, 0.6))
            s.signal(signal.SIGKILL)
            s.wait(10)
            s.stop()
            kills += 1
            whole, torn = store_records(path)
            killed_with_new_records += whole > previous and whole < self.FILES
            previous = whole
        stored, torn = store_records(path)
        # Damage some records as a crash or a bad disk could (a flipped bit in a hash): they
        # must read as misses, never as tags.
        damaged = 0
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            for off in range(128, len(data) - 127, 128):
                if data[off:off + 4] == b"NMET" and damaged < 10:
                    data[off + 70] ^= 0x01
                    damaged += 1
            f.seek(0)
            f.write(data)
        s = self.serve()
        done = wait_counters(s, "after prehash", 120)
        mismatches = []
        conn = http_connection(s.port)
        for url, tag in self.tags.items():
            conn.request("GET", url)
            r = conn.getresponse()
            body = r.read()
            served = r.getheader("etag")
            if r.status != 200 or served != tag or '"%s"' % content_tag(body) != tag:
                mismatches.append((url, r.status, served, tag))
        conn.close()
        self.assertEqual(s.stop(), 0)
        print("\nstore crash test: %d kills (%d with records written), %d whole records and "
              "%d torn after them, %d damaged on purpose, final start: hashed_files=%d "
              "from_store=%d, %d mismatches" % (kills, killed_with_new_records, stored, torn,
                                                 damaged, done["hashed_files"],
                                                 done["from_store"], len(mismatches)))
        self.assertEqual(mismatches, [])
        self.assertEqual(done["hashed_files"] + done["from_store"], self.FILES, done)
        self.assertGreaterEqual(done["hashed_files"], damaged, done)
        self.assertGreater(done["from_store"], 0, done)


@require_binary
class RewriteStorm(unittest.TestCase):
    """Writers rewrite files in place (same size, new size) and by rename while readers download
    over kept-alive connections: no ETag ever stands for two bodies. Some files have a gzip
    sidecar, rewritten after each source with or without its record, which half of the requests
    accept: a gzip body goes out under the hash of its own bytes and is one whole gzip stream, and
    a sidecar decodes to the whole version it was made from."""

    SMALL_FILES = {"s%d.txt" % i: 1000 + i * 7000 for i in range(6)}
    LARGE_FILES = {"l%d.bin" % i: 150 * 1024 + i * 400 * 1024 for i in range(4)}
    WITH_SIDECAR = ("s0.txt", "s1.txt", "s4.txt", "l0.bin", "l1.bin")
    SERVE_OPTIONS = ["--workers", "2"]
    SIDECAR_MODES = ("same", "rename")  # how sidecars with a record are rewritten

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="notmod-storm-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.sizes = dict(self.SMALL_FILES, **self.LARGE_FILES)
        self.gen = dict((name, 0) for name in self.sizes)
        self.lock = threading.Lock()
        # A source and its sidecar are rewritten by one writer at a time, source first, so that
        # a sidecar with a record always names the bytes it was made from.
        self.pair_locks = dict((name, threading.Lock()) for name in self.WITH_SIDECAR)
        self.has_xattrs = xattrs_supported(self.root)
        self.sidecars_written = set()
        for name, size in self.sizes.items():
            data = body_for(name, 0, size)
            write_in_place(os.path.join(self.root, name), data)
            if name in self.WITH_SIDECAR:
                self.write_sidecar(name, data, "same", True)

    def write_sidecar(self, name, data, mode, with_record):
        """Writes NAME.gz for the source bytes DATA, in place or by rename, with the record
        notmod compress would write or without one."""
        path = os.path.join(self.root, name + ".gz")
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        with self.lock:
            self.sidecars_written.add(hashlib.sha256(packed).digest())
        record = None
        if with_record and self.has_xattrs:
            # Version 2: the source's hash and the sidecar's own, so that a sidecar read half
            # rewritten in place (new bytes over old, not truncated yet) is no longer current.
            record = ("2 gzip %s %s" % (content_tag(data), content_tag(packed))).encode()
        if mode == "rename":
            tmp = "%s.tmp%d" % (path, threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(packed)
            if record:
                os.setxattr(tmp, "user.notmod.source", record)
            os.replace(tmp, path)
            return
        if record:
            # In place, the new record goes first: until the new bytes are whole (written, then
            # the old tail truncated), what is on disk is not what the record names. Written
            # after them, the record would leave a moment where the old one (or none, over a
            # sidecar that came by rename without one) vouches for half-rewritten bytes.
            if not os.path.exists(path):
                open(path, "wb").close()
            os.setxattr(path, "user.notmod.source", record)
        write_in_place(path, packed)

    def sidecar_kinds(self):
        """How writers rewrite sidecars: (mode, with a record). A sidecar without a record has
        only its age to vouch for it, so one rewritten in place could be read half done with
        nothing to tell (docs/etags.md): those are written by rename, as a tool must."""
        kinds = [(mode, True) for mode in self.SIDECAR_MODES] if self.has_xattrs else []
        return kinds + [("rename", False)]

    def writer(self, stop, wid, names_of_phase, counts):
        rng = random.Random(wid)
        while not stop.is_set():
            name = rng.choice(names_of_phase())
            with self.lock:
                self.gen[name] += 1
                gen = self.gen[name]
                mode = rng.choice(("same", "resize", "rename"))
                size = self.sizes[name]
                if mode != "same":
                    # Small files stay held in memory; large ones cross --hold-size (256 KiB):
                    # held, or sent from their descriptor (by sendfile under a lease).
                    lo, hi = (100 * 1024, 2 << 20) if name in self.LARGE_FILES else (64, 60000)
                    size = min(hi, max(lo, int(size * rng.uniform(0.8, 1.2))))
                    self.sizes[name] = size
            path = os.path.join(self.root, name)
            data = body_for(name, gen, size)
            if name not in self.WITH_SIDECAR:
                (write_by_rename if mode == "rename" else write_in_place)(path, data)
                counts[mode] += 1
                time.sleep(rng.uniform(0, 0.03))
                continue
            side_mode, with_record = rng.choice(self.sidecar_kinds())
            with self.pair_locks[name]:
                (write_by_rename if mode == "rename" else write_in_place)(path, data)
                self.write_sidecar(name, data, side_mode, with_record)
            counts[mode] += 1
            counts["gz " + side_mode + (" record" if with_record else "")] += 1
            time.sleep(rng.uniform(0, 0.03))

    def reader(self, stop, port, rid, results):
        rng = random.Random(1000 + rid)
        names = sorted(self.sizes)
        conn = None
        while not stop.is_set():
            if conn is None:
                conn = http_connection(port)
            name = rng.choice(names)
            headers = {"Accept-Encoding": "gzip"} if rng.random() < 0.5 else {}
            try:
                conn.request("GET", "/" + name, headers=headers)
                r = conn.getresponse()
                body = r.read()
                results.append((name, r.status, r.getheader("ETag"), body,
                                r.getheader("Content-Encoding")))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError):
                results.append((name, "cut", None, None, None))
                conn.close()
                conn = None
        if conn:
            conn.close()

    def test_no_etag_ever_stands_for_two_bodies(self):
        s = serve_for_test(self, self.root, self.SERVE_OPTIONS, checked=False)
        names = sorted(self.sizes)
        groups = (names[0::2], names[1::2])
        t0 = time.monotonic()

        def names_of_phase():
            # Each half of the files is rewritten for 3 s, then left alone for 3 s, so that
            # large files also get hashed and tagged between storms.
            return groups[int((time.monotonic() - t0) / 3) % 2]

        stop = threading.Event()
        counts = {"same": 0, "resize": 0, "rename": 0}
        for mode, with_record in self.sidecar_kinds():
            counts["gz " + mode + (" record" if with_record else "")] = 0
        results = []
        threads = [threading.Thread(target=self.writer, args=(stop, i, names_of_phase, counts))
                   for i in range(3)]
        threads += [threading.Thread(target=self.reader, args=(stop, s.port, i, results))
                    for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(STORM_S)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads))

        bodies_by_tag = {}
        tagged = {"small": 0, "large": 0, "gzip": 0}
        sidecar_bodies = 0
        for name, status, tag, body, coding in results:
            if status != 200 or tag is None:
                continue
            bodies_by_tag.setdefault(tag, set()).add(hashlib.sha256(body).hexdigest())
            if coding is not None:
                self.assertEqual(coding, "gzip", name)
                tagged["gzip"] += 1
                is_sidecar = hashlib.sha256(body).digest() in self.sidecars_written
                sidecar_bodies += is_sidecar
                # Every gzip body is one whole gzip stream: a sidecar read half rewritten in
                # place (new bytes over the old tail) is never sent.
                plain = gzip.decompress(body)
                if name not in self.WITH_SIDECAR:
                    continue  # made on the fly from a file two writers may tear on disk
                head = plain.split(b"\n", 1)[0].decode(errors="replace")
                m = re.fullmatch(r"(\S+) gen=(\d+) size=(\d+)", head)
                self.assertTrue(m and m.group(1) == name, "%s: gzip of %r" % (name, plain[:40]))
                # A sidecar decodes to the one whole version it was made from. A body made on
                # the fly is the source as it was read, which an in-place rewrite read before
                # its truncate leaves with the old tail, as an identity body may be.
                if is_sidecar:
                    self.assertEqual(plain, body_for(name, int(m.group(2)), int(m.group(3))),
                                     head)
                continue
            tagged["large" if name in self.LARGE_FILES else "small"] += 1
        liars = dict((t, b) for t, b in bodies_by_tag.items() if len(b) > 1)
        self.assertEqual(liars, {}, "tags that stood for more than one body")
        statuses = [r[1] for r in results]
        summary = ("writes %s; responses %d (200: %d, cut: %d, 503: %d); tagged %s, of which "
                   "%d sidecars" % (counts, len(results), statuses.count(200),
                                    statuses.count("cut"), statuses.count(503), tagged,
                                    sidecar_bodies))
        self.assertGreaterEqual(min(counts.values()), 20, summary)
        self.assertGreater(tagged["small"], 100, summary)
        self.assertGreater(tagged["large"], 10, summary)
        self.assertGreater(tagged["gzip"], 50, summary)
        self.assertGreater(sidecar_bodies, 50, summary)
        self.assertTrue(set(statuses) <= {200, 503, "cut"}, summary)
        # And every tag is the content hash of the one body it came with, as notmod etag
        # computes it: a torn body under a tag would show here.
        samples = tempfile.mkdtemp(prefix="notmod-storm-bodies-")
        self.addCleanup(shutil.rmtree, samples, True)
        body_of_tag = {}
        for name, status, tag, body, _ in results:
            if status == 200 and tag and tag not in body_of_tag:
                body_of_tag[tag] = (name, body)
        for i, (tag, (name, body)) in enumerate(sorted(body_of_tag.items())):
            with open(os.path.join(samples, "%05d" % i), "wb") as f:
                f.write(body)
        rc, out, err = notmod_etag(samples)
        self.assertEqual(rc, 0, err)
        printed = [line.split(" ")[0] for line in out.splitlines()]
        for (tag, (name, body)), got in zip(sorted(body_of_tag.items()), printed):
            self.assertEqual(got, tag, "%s: a body of %d bytes (%r...) under %s" % (
                name, len(body), body[:40], tag))
        self.assertEqual(len(printed), len(body_of_tag))
        print("\nstorm: " + summary)



class RewriteStormSmallBudget(RewriteStorm):
    """The same storm with room for about two held bodies per worker (--hold-budget): bodies are
    let go and read again all along, and still never leave under another body's tag."""

    SERVE_OPTIONS = ["--workers", "2", "--hold-budget", str(160 * 1024)]


if __name__ == "__main__":
    unittest.main()
