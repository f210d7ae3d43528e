"""Deploys seen by the server: replicas at two versions of a file must never let a client keep
one version's bytes under the other's validators, and a root that a deploy swaps (a `current`
symlink pointed at a new release, two directories exchanged) is followed at the next request."""

import ctypes
import errno
import hashlib
import os
import shutil
import socket
import tempfile
import time
import unittest

from launch import http_get, require_binary, serve_for_test, wait_until

KIB = 1024
# Above the 64 KiB held in memory: these are hashed from disk, not while they are read.
FILES = {
    "/a.js": 70 * KIB,
    "/b.css": 200 * KIB,
    "/c.bin": 1536 * KIB,  # above --hash-threshold: always hashed by the pool
    "/same.js": 100 * KIB,  # the same bytes in both versions, rewritten with a new mtime
}
RUN_S = 4.0  # covers the two seconds in which a new version is not hashed yet
MAX_ROUNDS = 4000


def content(version, size):
    seed = hashlib.sha256(version.encode() if size != FILES["/same.js"] else b"same").digest()
    return (seed * (size // len(seed) + 1))[:size]


def write_tree(root, version, mtime=None):
    for path, size in FILES.items():
        p = os.path.join(root, path.lstrip("/"))
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content(version, size))
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, p)  # as rsync and most deploy tools replace a file


def storable(headers):
    """What a browser or shared cache would keep and later revalidate (RFC 9111 §3)."""
    cc = headers.get("cache-control", "").lower()
    return "no-store" not in cc and ("etag" in headers or "last-modified" in headers)


@require_binary
class ReplicasAtTwoVersions(unittest.TestCase):
    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="notmod-deploy-")
        self.addCleanup(shutil.rmtree, self.base, True)

    def serve(self, root, *options):
        return serve_for_test(self, root, options)

    def test_unhashed_version_goes_out_without_validators_and_is_not_stored(self):
        root = os.path.join(self.base, "site")
        os.mkdir(root)
        # Just written: not hashed for two seconds, and above --hash-threshold, so not read
        # whole and tagged from memory meanwhile either (docs/etags.md, "Racy versions").
        write_tree(root, "B")
        s = self.serve(root, "--cache-control", "*=max-age=60", "--expires")
        status, h, body = http_get(s.port, "/c.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, content("B", FILES["/c.bin"]))
        self.assertNotIn("etag", h)
        self.assertNotIn("last-modified", h)
        self.assertNotIn("expires", h)
        self.assertEqual(h.get("cache-control"), "no-store")
        # A client that sends the date it might have from elsewhere gets the bytes, not a 304.
        status, h, _ = http_get(s.port, "/c.bin",
                                {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
        self.assertEqual(status, 200)
        # Once hashed, the version leaves with its tag, its date and the configured caching.
        self.assertTrue(wait_until(lambda: "etag" in http_get(s.port, "/c.bin")[1], 15))
        status, h, _ = http_get(s.port, "/c.bin")
        self.assertIn("last-modified", h)
        self.assertEqual(h.get("cache-control"), "max-age=60")
        self.assertIn("expires", h)

    def test_clients_revalidating_across_replicas_at_two_versions_get_no_wrong_304(self):
        old = time.time() - 3 * 86400
        roots = []
        for name in ("a", "b"):
            root = os.path.join(self.base, name)
            os.mkdir(root)
            write_tree(root, "A", mtime=old)
            roots.append(root)
        nodes = [self.serve(r) for r in roots]
        for node in nodes:
            for path in FILES:
                self.assertTrue(wait_until(lambda: "etag" in http_get(node.port, path)[1], 15))
        truth = [{p: content("A", n) for p, n in FILES.items()} for _ in nodes]

        # Node b switches to version B (new bytes, a newer mtime) while clients revalidate
        # against both nodes in turn, as behind a round-robin balancer.
        write_tree(roots[1], "B")
        truth[1] = {p: content("B", n) for p, n in FILES.items()}
        clients = [{} for _ in range(4)]
        wrong, revalidated, rounds = [], 0, 0
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline and rounds < MAX_ROUNDS:
            for ci, cache in enumerate(clients):
                node = (rounds + ci) % 2
                for path in FILES:
                    held = cache.get(path)
                    headers = {}
                    if held:
                        if "etag" in held[1]:
                            headers["If-None-Match"] = held[1]["etag"]
                        if "last-modified" in held[1]:
                            headers["If-Modified-Since"] = held[1]["last-modified"]
                    status, h, body = http_get(nodes[node].port, path, headers)
                    if status == 304:
                        revalidated += 1
                        if held[0] != truth[node][path]:
                            wrong.append((path, node, held[1], h))
                        continue
                    self.assertEqual(status, 200)
                    self.assertEqual(body, truth[node][path])
                    if storable(h):
                        cache[path] = (body, h)
                    else:
                        cache.pop(path, None)
            rounds += 1
        self.assertGreater(rounds, 10)
        self.assertEqual(len(wrong), 0, "304s for bytes the client does not hold, of %d: %r"
                         % (revalidated, wrong[:3]))
        self.assertGreater(revalidated, 0)  # the unchanged file, whichever node answers


def renameat2_exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    rc = libc.renameat2(at_fdcwd, a.encode(), at_fdcwd, b.encode(), rename_exchange)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@require_binary
class RootSwaps(unittest.TestCase):
    """The two releases give app.css the same size and mtime: only the directory tells them
    apart, so the old release's file table must not be consulted."""

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="notmod-swap-")
        self.addCleanup(shutil.rmtree, self.base, True)
        t = time.time() - 86400
        self.releases = {}
        for v in ("A", "B"):
            d = os.path.join(self.base, "releases", v)
            os.makedirs(d)
            files = {"app.css": ("body{color:%s}\n" % v).encode() * 50,
                     "big.bin": content(v, 3 << 20)}
            if v == "A":
                files["only-in-a.txt"] = b"gone in B\n"
            for name, data in files.items():
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
                os.utime(os.path.join(d, name), (t, t))
            self.releases[v] = files

    def start(self, root):
        return serve_for_test(self, root, ["--workers", "2"])

    def assert_serves(self, s, v):
        # Two workers each follow the root on their own: ask enough connections to reach both.
        for _ in range(6):
            status, h, body = http_get(s.port, "/app.css")
            self.assertEqual((status, body), (200, self.releases[v]["app.css"]))
        status, _, _ = http_get(s.port, "/only-in-a.txt")
        self.assertEqual(status, 200 if v == "A" else 404)

    def test_a_swapped_current_symlink_is_followed_at_the_next_request(self):
        current = os.path.join(self.base, "current")
        os.symlink("releases/A", current)
        s = self.start(current)
        self.assert_serves(s, "A")
        _, a_headers, _ = http_get(s.port, "/app.css")

        # A large body in flight when the link moves is finished from release A, whole.
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        self.assertTrue(first.startswith(b"HTTP/1.1 200 "), first[:80])

        tmp = os.path.join(self.base, "current.new")
        os.symlink("releases/B", tmp)
        os.replace(tmp, current)
        self.assert_serves(s, "B")
        _, b_headers, _ = http_get(s.port, "/app.css")
        self.assertNotEqual(a_headers.get("etag"), b_headers.get("etag"))

        data = first
        deadline = time.monotonic() + 20
        head, _, body = data.partition(b"\r\n\r\n")
        while len(body) < len(self.releases["A"]["big.bin"]) and time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            body += chunk
        self.assertEqual(body, self.releases["A"]["big.bin"])

    def test_exchanged_directories_are_followed_at_the_next_request(self):
        site = os.path.join(self.base, "site")
        nxt = os.path.join(self.base, "site.next")
        shutil.copytree(os.path.join(self.base, "releases", "A"), site, copy_function=shutil.copy2)
        shutil.copytree(os.path.join(self.base, "releases", "B"), nxt, copy_function=shutil.copy2)
        s = self.start(site)
        self.assert_serves(s, "A")
        renameat2_exchange(nxt, site)
        self.assert_serves(s, "B")
        renameat2_exchange(nxt, site)  # and a rollback
        self.assert_serves(s, "A")


if __name__ == "__main__":
    unittest.main()
