"""A shared cache in front of three replicas whose copies of the tree have different mtimes:
Varnish (deploy/varnish/notmod.vcl, round robin) and nginx's proxy_cache (deploy/nginx/cache.conf)
with max-age=1, so that they revalidate every second. With content ETags every replica answers
the cache's conditional fetches of unchanged files with 304, the compressed variants keep their
strong tags through the cache, and a changed file reaches clients within max-age. The same
Varnish run with `--etag metadata` replicas and with nginx replicas shows the ratio that
content tags remove; the table of ratios is printed at the end (docs/deploy.md quotes it)."""

import hashlib
import os
import shutil
import sys
import time
import unittest

from launch import (NginxCacheServer, NginxServer, NginxTlsServer, NotmodServer, VarnishServer,
                    access_log_requests, http_get, https_get, log_size, require_binary,
                    shared_tempdir, write_file)

NODES = 3
MAX_AGE_S = 1
WARM_S = 2.5  # first fetches, then the first revalidations of every object
MEASURE_S = 6.0  # Varnish revalidates about 15 objects a second, nginx about 8
ROUND_PAUSE_S = 0.2
MAX_ROUNDS = 200
CHANGE_SLACK_S = 2.0  # a loaded machine's scheduling on top of max-age
WARM_TIMEOUT_S = 90  # a ceiling: the pool and the compressor run at nice 19


def text(seed, size):
    line = ("/* %s: notmod replica test content */ .c%%d { margin: %%dpx }\n" % seed)
    out = "".join(line % (i, i % 97) for i in range(size // 40 + 1))
    return out.encode()[:size]


FILES = {
    "/index.html": b"<!DOCTYPE html><title>cdn</title>\n" + text("index", 2000),
    "/app.css": text("css", 20 * 1024),
    "/app.js": text("js", 70 * 1024),  # above 64 KiB: hashed by the pool, not inline
    "/logo.bin": hashlib.sha256(b"logo").digest() * 3200,  # 100 KiB, not a compressible type
}
COMPRESSIBLE = ("/index.html", "/app.css", "/app.js")
CHANGING = "/news.html"
ACCEPT = (None, "gzip", "br", "zstd", "gzip, deflate, br, zstd")
RESULTS = {}  # run name -> (304s, backend fetches, clients' 304s, clients' revalidations, weak)
CHANGES = {}  # run name -> seconds from a change on the nodes to its arrival through the cache


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Replicas:
    """Three copies of FILES with mtimes hours apart, each served by one origin: notmod with
    `options`, or nginx when options is None. Each writes its own access log."""

    def __init__(self, options):
        self.base = shared_tempdir("notmod-cdn-")
        self.nodes, self.logs = [], []
        try:
            for i in range(NODES):
                root = os.path.join(self.base, "node%d" % i)
                os.mkdir(root)
                t = 1_700_000_000 + i * 7200
                for path, data in FILES.items():
                    write_file(os.path.join(root, path[1:]), data, t)
                write_file(os.path.join(root, CHANGING[1:]), text("news 1", 1000), t)
                if options is None:
                    node = NginxServer(root, extra="expires %ds;" % MAX_AGE_S).start()
                    log = node.access_log()
                else:
                    log = os.path.join(self.base, "access%d.log" % i)
                    node = NotmodServer(root, ["--workers", "1", "--cache-control",
                                               "*=max-age=%d" % MAX_AGE_S, "--access-log", log,
                                               *options]).start()
                self.nodes.append(node)
                self.logs.append(log)
        except BaseException:
            self.close()
            raise

    def ports(self):
        return [n.port for n in self.nodes]

    def wait_for_variants(self):
        """Every node sends every file with its tag and every compressible file in every coding
        asked for: tags hashed by the pool and variants coded in the background exist before the
        cache first asks. Returns {tag: body hash} and {(path, Accept-Encoding): tag} as the nodes
        send them."""
        tags, chosen = {}, {}
        deadline = time.monotonic() + WARM_TIMEOUT_S
        for node in self.nodes:
            for path in FILES:
                for ae in ACCEPT:
                    for _ in range(int(WARM_TIMEOUT_S / 0.05)):
                        status, h, body = http_get(node.port, path,
                                                   {"Accept-Encoding": ae} if ae else {})
                        ready = "etag" in h and (ae is None or path not in COMPRESSIBLE
                                                 or "content-encoding" in h)
                        if status == 200 and ready or time.monotonic() > deadline:
                            break
                        time.sleep(0.05)
                    if not ready:
                        raise AssertionError("%s %r: no tag or variant within %d s"
                                             % (path, ae, WARM_TIMEOUT_S))
                    tags.setdefault(h["etag"], sha(body))
                    chosen.setdefault((path, ae), h["etag"])
        return tags, chosen

    def log_offsets(self):
        return [log_size(log) for log in self.logs]

    def backend_statuses(self, offsets, paths):
        """The statuses the nodes answered GETs of paths with since offsets."""
        return [status for log, off in zip(self.logs, offsets)
                for method, path, status in access_log_requests(log, off)
                if method == "GET" and path in paths]

    def change(self, path, data):
        for node in self.nodes:
            p = os.path.join(node.root, path[1:])
            write_file(p + ".tmp", data)
            os.replace(p + ".tmp", p)

    def close(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Clients:
    """Clients holding one copy of every (path, Accept-Encoding) and revalidating it through the
    cache as a browser does: If-None-Match and If-Modified-Since from what they hold."""

    def __init__(self, testcase, port, origin=None):
        self.t = testcase
        self.port = port
        # What the origins send: {tag: body hash} and {(path, Accept-Encoding): tag}, or None.
        self.origin_tags, self.chosen = origin or (None, None)
        self.held = {}
        self.codings = set()  # the Content-Encodings clients got
        self.reset()

    def reset(self):
        self.revalidations = self.not_modified = self.weak = 0

    def request(self, path, ae):
        key = (path, ae)
        headers = {"Accept-Encoding": ae} if ae else {}
        held = self.held.get(key)
        if held:
            headers["If-None-Match"] = held[1]["etag"]
            if "last-modified" in held[1]:
                headers["If-Modified-Since"] = held[1]["last-modified"]
            self.revalidations += 1
        status, h, body = http_get(self.port, path, headers)
        if status == 304:
            self.t.assertIsNotNone(held, "304 to an unconditional request for %s" % path)
            self.t.assertEqual(h.get("etag", held[1]["etag"]), held[1]["etag"], path)
            self.not_modified += 1
            return held[0], held[1]
        self.t.assertEqual(status, 200, (path, ae, h))
        self.codings.add(h.get("content-encoding"))
        tag = h.get("etag")
        if tag and tag.startswith("W/"):
            self.weak += 1
        elif self.origin_tags is not None and path in FILES:
            # The exact chain: the bytes under a strong tag are the bytes a node sends under it.
            # And the variant is the one a node picks for the client's own Accept-Encoding.
            self.t.assertEqual(tag, self.chosen[key], (path, ae, h))
            self.t.assertEqual(self.origin_tags[tag], sha(body), (path, ae, tag))
        if tag and "no-store" not in h.get("cache-control", ""):
            self.held[key] = (body, h)
        return body, h

    def run(self, seconds, paths=tuple(FILES)):
        deadline = time.monotonic() + seconds
        for _ in range(MAX_ROUNDS):
            if time.monotonic() >= deadline:
                break
            for path in paths:
                for ae in ACCEPT:
                    self.request(path, ae)
            time.sleep(ROUND_PAUSE_S)


def cached_run(testcase, name, origin_options, make_cache, exact=True):
    """Replicas with origin_options behind the cache make_cache(ports) starts; clients warm up,
    then revalidate for MEASURE_S. Returns (replicas, cache, clients, backend statuses), all
    stopped at the test's cleanup; records the ratios under name."""
    replicas = Replicas(origin_options)
    testcase.addCleanup(replicas.close)
    origin = replicas.wait_for_variants() if exact else None
    cache = make_cache(replicas.ports())
    testcase.addCleanup(cache.stop)
    clients = Clients(testcase, cache.port, origin)
    clients.run(WARM_S)
    offsets = replicas.log_offsets()
    clients.reset()
    clients.run(MEASURE_S)
    statuses = replicas.backend_statuses(offsets, set(FILES))
    RESULTS[name] = (statuses.count(304), len(statuses), clients.not_modified,
                     clients.revalidations, clients.weak)
    testcase.assertTrue(cache.is_running(), cache.diagnostics()[-2000:])
    testcase.assertGreaterEqual(len(statuses), 15, "too few backend fetches: %r" % statuses)
    return replicas, cache, clients, statuses


def varnish(params=("http_gzip_support=off",)):
    return lambda ports: VarnishServer(ports, params).start()


def nginx_cache(ports):
    return NginxCacheServer(ports).start()


@require_binary
class SharedCacheInFront(unittest.TestCase):
    def assert_exact_chain(self, name, replicas, clients, statuses):
        fetched, ratio = len(statuses), statuses.count(304) / len(statuses)
        self.assertGreaterEqual(ratio, 0.99, "%s: %d of %d backend fetches were 304: %r"
                                % (name, statuses.count(304), fetched, statuses))
        self.assertGreaterEqual(clients.not_modified / clients.revalidations, 0.99)
        self.assertEqual(clients.weak, 0, "a strong tag was weakened on the way")
        CHANGES[name] = self.assert_change_arrives_within_max_age(replicas, clients)

    def assert_change_arrives_within_max_age(self, replicas, clients):
        old = text("news 1", 1000)
        body, _ = clients.request(CHANGING, None)
        self.assertEqual(body, old)
        new = text("news 2", 1000)
        replicas.change(CHANGING, new)
        changed = time.monotonic()
        for _ in range(400):
            body, _ = clients.request(CHANGING, None)
            if body == new or time.monotonic() - changed > MAX_AGE_S + CHANGE_SLACK_S:
                break
            time.sleep(0.02)
        took = time.monotonic() - changed
        self.assertEqual(body, new, "the change did not arrive in %.1f s" % took)
        self.assertLessEqual(took, MAX_AGE_S + CHANGE_SLACK_S)
        return took

    def test_varnish_gets_304_from_every_replica_and_keeps_variants_strong(self):
        name = "Varnish, notmod content ETags"
        replicas, _, clients, statuses = cached_run(self, name, [], varnish())
        self.assert_exact_chain(name, replicas, clients, statuses)

    def test_nginx_proxy_cache_gets_304_from_every_replica_and_keeps_variants_strong(self):
        name = "nginx proxy_cache, notmod content ETags"
        replicas, _, clients, statuses = cached_run(self, name, [], nginx_cache)
        self.assert_exact_chain(name, replicas, clients, statuses)


@require_binary
class TlsTerminatorInFront(unittest.TestCase):
    def test_nginx_terminating_tls_passes_validators_and_variants_through(self):
        replicas = Replicas([])
        self.addCleanup(replicas.close)
        origin_tags, _ = replicas.wait_for_variants()
        proxy = NginxTlsServer(replicas.ports()).start()
        self.addCleanup(proxy.stop)
        offsets = replicas.log_offsets()
        for path in FILES:
            for ae in ACCEPT:
                headers = {"Accept-Encoding": ae} if ae else {}
                _, direct, _ = http_get(replicas.nodes[0].port, path, headers)
                status, h, body = https_get(proxy.port, path, proxy.cafile(), headers)
                self.assertEqual(status, 200)
                self.assertEqual(h["etag"], direct["etag"], (path, ae))
                self.assertEqual(origin_tags[h["etag"]], sha(body), (path, ae))
                for name in ("vary", "content-encoding", "cache-control"):
                    self.assertEqual(h.get(name), direct.get(name), (path, ae, name))
                # Round robin: the next NODES requests reach every node once.
                headers["If-None-Match"] = h["etag"]
                statuses = [https_get(proxy.port, path, proxy.cafile(), headers)[0]
                            for _ in range(NODES)]
                self.assertEqual(statuses, [304] * NODES, (path, ae))
        for log, off in zip(replicas.logs, offsets):
            self.assertIn(304, [status for _, _, status in access_log_requests(log, off)])


@require_binary
class WhatContentTagsRemove(unittest.TestCase):
    """The runs docs/deploy.md records: the same Varnish with other validators, or with its
    own gzip handling on."""

    def test_varnish_over_metadata_etags_fetches_whole_bodies_from_other_replicas(self):
        _, _, _, statuses = cached_run(self, "Varnish, notmod --etag metadata",
                                       ["--etag", "metadata", "--no-compress"], varnish(),
                                       exact=False)
        self.assertLess(statuses.count(304) / len(statuses), 0.6, statuses)

    def test_varnish_over_nginx_replicas_fetches_whole_bodies_from_other_replicas(self):
        _, _, _, statuses = cached_run(self, "Varnish, nginx replicas", None, varnish(),
                                       exact=False)
        self.assertLess(statuses.count(304) / len(statuses), 0.6, statuses)

    def test_varnish_with_its_gzip_handling_on_weakens_strong_tags(self):
        _, _, clients, _ = cached_run(self, "Varnish with http_gzip_support on, notmod content",
                                      [], varnish(params=()), exact=False)
        self.assertGreater(clients.weak, 0)
        # Varnish asked the replicas for gzip only: br and zstd reached no client.
        self.assertLessEqual(clients.codings, {None, "gzip"})


def tearDownModule():
    lines = ["", "| run | backend fetches answered 304 | clients' revalidations answered 304 "
             "| weak tags clients got |", "|---|---|---|---|"]
    for name, (nm, fetched, cnm, crev, weak) in RESULTS.items():
        lines.append("| %s | %d of %d (%.1f%%) | %d of %d (%.1f%%) | %d |"
                     % (name, nm, fetched, 100.0 * nm / max(fetched, 1), cnm, crev,
                        100.0 * cnm / max(crev, 1), weak))
    lines += ["", "| cache | a changed file reached clients after (s, max-age %d) |" % MAX_AGE_S,
              "|---|---|"]
    lines += ["| %s | %.2f |" % (name, took) for name, took in CHANGES.items()]
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
