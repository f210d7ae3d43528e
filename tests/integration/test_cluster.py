"""Three notmod nodes behind HAProxy, serving the same bytes with different mtimes and inodes:
content ETags agree on every node, so a client revalidates with a 304 whichever node it reaches.
The same cluster with size+mtime ETags shows the problem content hashes remove."""

import os
import shutil
import tempfile
import time
import unittest

from launch import HaproxyServer, NotmodServer, http_get, require_binary

NODES = 3
REQUESTS = 12  # a multiple of NODES: round robin reaches every node the same number of times
FILES = {
    "index.html": b"<!DOCTYPE html><title>cluster</title><link rel=stylesheet href=/app.css>\n",
    "app.css": b"body { color: #123; }\n" * 40,
    "big.bin": bytes(range(256)) * 4096,  # 1 MiB: sent from the file, not from memory
}


class Cluster:
    def __init__(self, options):
        self.base = tempfile.mkdtemp(prefix="notmod-cluster-")
        self.nodes = []
        self.haproxy = None
        self.port = None
        try:
            self.start(options)
        except BaseException:
            self.close()
            raise

    def start(self, options):
        for i in range(NODES):
            root = os.path.join(self.base, "node%d" % i)
            os.mkdir(root)
            for name, data in FILES.items():
                p = os.path.join(root, name)
                with open(p, "wb") as f:
                    f.write(data)
                # Each node's copy has its own inode and an mtime hours apart, as after
                # separate deploys.
                t = 1_700_000_000 + i * 7200
                os.utime(p, (t, t))
            self.nodes.append(NotmodServer(root, options).start())
        if "--etag" not in options:
            self.wait_for_hashes()
        self.haproxy = HaproxyServer([n.port for n in self.nodes]).start()
        self.port = self.haproxy.port

    def wait_for_hashes(self, timeout_s=30):
        """Large files are hashed off the event loop and served without an ETag until their
        hash exists; wait (bounded) until every node has one for every file."""
        deadline = time.monotonic() + timeout_s
        for n in self.nodes:
            for name in FILES:
                while "etag" not in http_get(n.port, "/" + name)[1]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no ETag for %s after %d s" % (name, timeout_s))
                    time.sleep(0.05)

    def close(self):
        if self.haproxy:
            self.haproxy.stop()
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@require_binary
class ContentEtagsAgree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(["--workers", "1"])

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_every_node_sends_the_same_etag_for_the_same_bytes(self):
        for name, data in FILES.items():
            seen_lm, seen_etag = set(), set()
            for _ in range(REQUESTS):
                status, h, body = http_get(self.cluster.port, "/" + name)
                self.assertEqual(status, 200)
                self.assertEqual(body, data)
                seen_etag.add(h["etag"])
                seen_lm.add(h["last-modified"])
            # The mtimes differ, so every node was reached (three Last-Modified dates) ...
            self.assertEqual(len(seen_lm), NODES, name)
            # ... and all of them named the bytes with one ETag.
            self.assertEqual(len(seen_etag), 1, name)

    def test_revalidation_gets_304_from_every_node(self):
        for name in FILES:
            _, h, _ = http_get(self.cluster.port, "/" + name)
            etag = h["etag"]
            for _ in range(REQUESTS):
                status, h2, body = http_get(self.cluster.port, "/" + name, {"If-None-Match": etag})
                self.assertEqual(status, 304, name)
                self.assertEqual(body, b"")
                self.assertEqual(h2["etag"], etag)

    def test_nodes_answer_directly_with_the_same_etag(self):
        for name in FILES:
            tags = {http_get(n.port, "/" + name)[1]["etag"] for n in self.cluster.nodes}
            self.assertEqual(len(tags), 1, name)


@require_binary
class MetadataEtagsDisagree(unittest.TestCase):
    """The load-balancer problem, reproduced: size+mtime tags differ between nodes, so a client
    holding one node's tag is sent the whole body again by the others."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(["--workers", "1", "--etag", "metadata"])

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_revalidation_through_the_balancer_misses_on_other_nodes(self):
        _, h, _ = http_get(self.cluster.port, "/app.css")
        statuses = [http_get(self.cluster.port, "/app.css", {"If-None-Match": h["etag"]})[0]
                    for _ in range(REQUESTS)]
        self.assertEqual(statuses.count(304), REQUESTS // NODES)
        self.assertEqual(statuses.count(200), REQUESTS - REQUESTS // NODES)


if __name__ == "__main__":
    unittest.main()
