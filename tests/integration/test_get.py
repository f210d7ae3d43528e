"""notmod get against a stdlib ETag server, nginx, python3 -m http.server and notmod serve:
revalidation and 304s, RFC 9111 freshness, Vary, §4.3.4 freshening, a server that disappears
mid-transfer, and bad input."""
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import unittest

from launch import (CannedServer, EtagServer, NginxServer, NotmodServer, PythonHttpServer,
                    RangeServer, RedirectServer, Resource, SlowServer, TruncatingServer,
                    VersionedServer, free_port, notmod_binary, run, shared_tempdir, write_file)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNCHANGED, EXIT_NETWORK, EXIT_HTTP = 0, 1, 2, 3, 4, 5
BIG = os.urandom(2_100_000)


def cache_files(cache_root):
    """Every file under the cache directory with its bytes, for before/after comparisons."""
    out = {}
    for dirpath, _, names in os.walk(cache_root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, cache_root)] = f.read()
    return out


class GetTestCase(unittest.TestCase):
    def setUp(self):
        # nginx serves from here with workers running as nobody.
        self.tmp = shared_tempdir("nm-get-")
        self.cache = os.path.join(self.tmp, "cache")
        self.out = os.path.join(self.tmp, "out.bin")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def get(self, url, *extra, **kw):
        return run(["get", "--cache-dir", self.cache, "--no-progress"] + list(extra) + [url], **kw)

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, stderr: {proc.stderr.decode(errors='replace')}")

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def meta_text(self):
        metas = [n for n in os.listdir(self.cache) if n.endswith(".meta")]
        self.assertEqual(len(metas), 1, metas)
        with open(os.path.join(self.cache, metas[0])) as f:
            return f.read()


class AgainstEtagServer(GetTestCase):
    def test_stale_copy_is_revalidated_and_a_304_leaves_the_output_untouched(self):
        with EtagServer() as srv:
            srv.add("/big", Resource(BIG, etag='"v1"', last_modified=time.time() - 3 * 3600,
                                     cache_control="no-cache"))
            first = self.get(srv.url("/big"), "-o", self.out, "-v")
            self.assertExit(first, EXIT_OK)
            self.assertEqual(self.read(self.out), BIG)
            self.assertNotIn("If-None-Match", srv.requests()[0][2])
            os.utime(self.out, (1000000000, 1000000000))
            srv.clear_requests()

            second = self.get(srv.url("/big"), "-o", self.out, "-v")
            self.assertExit(second, EXIT_OK)
            reqs = srv.requests()
            self.assertEqual(len(reqs), 1)
            self.assertEqual(reqs[0][2].get("If-None-Match"), '"v1"')
            self.assertIn("If-Modified-Since", reqs[0][2])
            err = second.stderr.decode()
            self.assertIn("304 Not Modified, 2.1 MB not downloaded", err)
            self.assertIn("left untouched", err)
            self.assertEqual(os.stat(self.out).st_mtime, 1000000000)
            self.assertEqual(self.read(self.out), BIG)

    def test_a_fresh_copy_is_used_without_any_request(self):
        with EtagServer() as srv:
            srv.add("/a", Resource(b"hello\n", etag='"a1"', cache_control="max-age=3600"))
            self.assertExit(self.get(srv.url("/a")), EXIT_OK)
            srv.clear_requests()
            second = self.get(srv.url("/a"), "-v")
            self.assertExit(second, EXIT_OK)
            self.assertEqual(second.stdout, b"hello\n")
            self.assertEqual(srv.requests(), [])
            self.assertIn("fresh in cache", second.stderr.decode())

    def test_revalidate_asks_even_when_fresh(self):
        with EtagServer() as srv:
            srv.add("/a", Resource(b"hello\n", etag='"a1"', cache_control="max-age=3600"))
            self.get(srv.url("/a"))
            srv.clear_requests()
            self.assertExit(self.get(srv.url("/a"), "--revalidate"), EXIT_OK)
            self.assertEqual(srv.requests()[0][2].get("If-None-Match"), '"a1"')

    def test_heuristic_freshness_applies_unless_turned_off(self):
        with EtagServer() as srv:
            srv.add("/h", Resource(b"old page\n", etag='"h1"',
                                   last_modified=time.time() - 10 * 86400))
            self.assertExit(self.get(srv.url("/h")), EXIT_OK)
            srv.clear_requests()
            heur = self.get(srv.url("/h"), "-v")
            self.assertEqual(heur.stdout, b"old page\n")
            self.assertEqual(srv.requests(), [], "10% of 10 days is fresh: no request")
            self.assertIn("heuristic", heur.stderr.decode())
            off = self.get(srv.url("/h"), "--no-heuristic", "-v")
            self.assertExit(off, EXIT_OK)
            self.assertEqual(len(srv.requests()), 1)
            self.assertIn("304 Not Modified", off.stderr.decode())

    def test_changed_content_replaces_the_entry_and_if_changed_reports_it(self):
        with EtagServer() as srv:
            res = srv.add("/c", Resource(b"version 1\n", etag='"c1"', cache_control="no-cache"))
            self.assertExit(self.get(srv.url("/c"), "-o", self.out, "--if-changed"), EXIT_OK)
            self.assertExit(self.get(srv.url("/c"), "-o", self.out, "--if-changed"),
                            EXIT_UNCHANGED)
            res.body, res.etag = b"version 2, longer\n", '"c2"'
            changed = self.get(srv.url("/c"), "-o", self.out, "--if-changed", "-v")
            self.assertExit(changed, EXIT_OK)
            self.assertIn("content changed", changed.stderr.decode())
            self.assertEqual(self.read(self.out), b"version 2, longer\n")
            self.assertIn('header ETag: "c2"', self.meta_text())
            self.assertEqual(len([n for n in os.listdir(self.cache) if n.endswith(".body")]), 1)
            self.assertExit(self.get(srv.url("/c"), "--if-changed"), EXIT_UNCHANGED)

    def test_a_304_naming_another_etag_is_not_used_and_the_body_is_refetched(self):
        with EtagServer() as srv:
            res = srv.add("/w", Resource(b"first\n", etag='"w1"', cache_control="no-cache"))
            self.get(srv.url("/w"), "-o", self.out)
            # The content changes, and the server wrongly answers 304 to the old tag.
            res.body, res.etag, res.always_304 = b"second\n", '"w2"', True
            srv.clear_requests()
            p = self.get(srv.url("/w"), "-o", self.out, "-v")
            self.assertExit(p, EXIT_OK)
            reqs = srv.requests()
            self.assertEqual(len(reqs), 2)
            self.assertEqual(reqs[0][2].get("If-None-Match"), '"w1"')
            self.assertNotIn("If-None-Match", reqs[1][2])
            self.assertNotIn("If-Modified-Since", reqs[1][2])
            self.assertIn('the 304 names ETag "w2"', p.stderr.decode())
            self.assertEqual(self.read(self.out), b"second\n")
            self.assertIn('header ETag: "w2"', self.meta_text())

    def test_a_304_never_gives_the_entry_its_content_length(self):
        with EtagServer() as srv:
            res = srv.add("/l", Resource(b"0123456789", etag='"l1"', cache_control="no-cache"))
            self.get(srv.url("/l"))
            res.length_on_304 = 0
            res.cache_control = "max-age=600"
            p = self.get(srv.url("/l"), "-v")
            self.assertExit(p, EXIT_OK)
            self.assertIn("304 Not Modified", p.stderr.decode())
            self.assertEqual(p.stdout, b"0123456789")
            meta = self.meta_text()
            self.assertIn("header Content-Length: 10\n", meta)
            self.assertNotIn("Content-Length: 0", meta)
            self.assertIn("header Cache-Control: max-age=600\n", meta)
            self.assertNotIn("no-cache", meta)

    def test_a_304_freshens_the_stored_headers(self):
        with EtagServer() as srv:
            res = srv.add("/f", Resource(b"body", etag='"f1"', cache_control="max-age=0"))
            self.get(srv.url("/f"))
            res.cache_control = "max-age=3600"
            self.assertIn("304", self.get(srv.url("/f"), "-v").stderr.decode())
            srv.clear_requests()
            third = self.get(srv.url("/f"), "-v")
            self.assertEqual(third.stdout, b"body")
            self.assertEqual(srv.requests(), [], "freshened by the 304's max-age=3600")

    def test_a_304_without_validators_freshens_the_entry_it_answers(self):
        with EtagServer() as srv:
            res = srv.add("/n", Resource(b"body", etag='"n1"', cache_control="no-cache"))
            self.get(srv.url("/n"))
            res.bare_304 = True
            p = self.get(srv.url("/n"), "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"body")
            self.assertIn("304 Not Modified", p.stderr.decode())

    def test_vary_stores_request_headers_and_a_mismatch_is_a_miss(self):
        with EtagServer() as srv:
            srv.add("/v", Resource(b"bonjour\n", etag='"v-fr"', cache_control="max-age=3600",
                                   headers=[("Vary", "Accept-Language")]))
            self.get(srv.url("/v"), "-H", "Accept-Language: fr")
            self.assertIn("request Accept-Language: fr", self.meta_text())
            srv.clear_requests()
            self.get(srv.url("/v"), "-H", "Accept-Language: fr")
            self.assertEqual(srv.requests(), [])
            p = self.get(srv.url("/v"), "-H", "Accept-Language: de")
            self.assertExit(p, EXIT_OK)
            reqs = srv.requests()
            self.assertEqual(len(reqs), 1)
            self.assertNotIn("If-None-Match", reqs[0][2], "another variant: no conditions")
            self.assertIn("request Accept-Language: de", self.meta_text())

    def test_vary_star_is_never_stored_or_reused(self):
        with EtagServer() as srv:
            srv.add("/s", Resource(b"x", etag='"s"', cache_control="max-age=3600",
                                   headers=[("Vary", "*")]))
            p = self.get(srv.url("/s"), "-v")
            self.assertIn("not stored (Vary: *)", p.stderr.decode())
            self.get(srv.url("/s"))
            self.assertEqual(len(srv.requests()), 2)

    def test_no_store_is_honoured(self):
        with EtagServer() as srv:
            srv.add("/ns", Resource(b"secret", etag='"ns"', cache_control="no-store, max-age=60"))
            p = self.get(srv.url("/ns"))
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"secret")
            self.assertEqual([n for n in os.listdir(self.cache) if not n.startswith(".")], [])
            self.get(srv.url("/ns"))
            self.assertEqual(len(srv.requests()), 2)

    def test_stale_if_error_serves_the_stale_copy_unless_must_revalidate(self):
        with EtagServer() as srv:
            srv.add("/ok", Resource(b"ok body", etag='"ok"', cache_control="max-age=0"))
            srv.add("/mr", Resource(b"mr body", etag='"mr"',
                                    cache_control="max-age=0, must-revalidate"))
            self.get(srv.url("/ok"))
            self.get(srv.url("/mr"))
            url_ok, url_mr = srv.url("/ok"), srv.url("/mr")
        # The server is gone now.
        stale = self.get(url_ok, "--stale-if-error")
        self.assertExit(stale, EXIT_OK)
        self.assertEqual(stale.stdout, b"ok body")
        self.assertIn("stale", stale.stderr.decode())
        self.assertExit(self.get(url_ok), EXIT_NETWORK)
        refused = self.get(url_mr, "--stale-if-error")
        self.assertExit(refused, EXIT_NETWORK)
        self.assertEqual(refused.stdout, b"")

    def test_http_errors_exit_5_and_leave_the_output_alone(self):
        with EtagServer() as srv:
            write_file(self.out, b"keep me")
            p = self.get(srv.url("/missing"), "-o", self.out)
            self.assertExit(p, EXIT_HTTP)
            self.assertIn("HTTP 404", p.stderr.decode())
            self.assertEqual(self.read(self.out), b"keep me")
            self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".out")], [])

    def test_xdg_cache_home_is_the_default_location(self):
        with EtagServer() as srv:
            srv.add("/x", Resource(b"x", etag='"x"', cache_control="max-age=60"))
            xdg = os.path.join(self.tmp, "xdg")
            p = run(["get", srv.url("/x")], env={"XDG_CACHE_HOME": xdg})
            self.assertExit(p, EXIT_OK)
            self.assertTrue(any(n.endswith(".meta") for n in os.listdir(os.path.join(xdg, "notmod"))))
            listing = run(["cache", "list"], env={"XDG_CACHE_HOME": xdg})
            self.assertExit(listing, EXIT_OK)
            self.assertRegex(listing.stdout.decode(), r"fresh .* \"x\" .*" + re.escape(srv.url("/x")))
            cleared = run(["cache", "clear"], env={"XDG_CACHE_HOME": xdg})
            self.assertExit(cleared, EXIT_OK)
            self.assertIn("removed 1 entry", cleared.stdout.decode())
            self.assertEqual(os.listdir(os.path.join(xdg, "notmod")), [])

    def test_a_corrupt_cache_entry_is_reported_and_replaced(self):
        with EtagServer() as srv:
            srv.add("/k", Resource(b"good", etag='"k"', cache_control="max-age=3600"))
            self.get(srv.url("/k"))
            for n in os.listdir(self.cache):
                if n.endswith(".meta"):
                    write_file(os.path.join(self.cache, n), b"notmod-cache 1\nurl garbage\x00\n")
            p = self.get(srv.url("/k"))
            self.assertExit(p, EXIT_OK)
            self.assertIn("corrupt", p.stderr.decode())
            self.assertEqual(p.stdout, b"good")
            listing = run(["cache", "list", "--cache-dir", self.cache])
            self.assertIn("fresh", listing.stdout.decode())
            # A body that no longer matches its recorded length is corrupt too.
            for n in os.listdir(self.cache):
                if n.endswith(".body"):
                    write_file(os.path.join(self.cache, n), b"tampered!")
            p = self.get(srv.url("/k"))
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"good")


class Truncation(GetTestCase):
    def test_a_server_that_disappears_mid_transfer_damages_nothing(self):
        with TruncatingServer() as srv:
            url = srv.url("/file")
            # No entry yet: no output, only the partial body kept to resume.
            p = self.get(url, "-o", self.out)
            self.assertExit(p, EXIT_NETWORK)
            self.assertFalse(os.path.exists(self.out))
            self.assertEqual(len(os.listdir(self.cache)), 2, "a partial body and its metadata")
            shutil.rmtree(self.cache)
            # A good entry and output first, then a revalidation cut short.
            srv.truncate = False
            self.assertExit(self.get(url, "-o", self.out), EXIT_OK)
            self.assertEqual(os.path.getsize(self.out), 1000000)
            os.utime(self.out, (1000000000, 1000000000))
            before = cache_files(self.cache)
            srv.truncate = True
            p = self.get(url, "-o", self.out)
            self.assertExit(p, EXIT_NETWORK)
            after = cache_files(self.cache)
            self.assertEqual({k: after[k] for k in before}, before, "the entry is untouched")
            self.assertFalse(any(n.endswith(".tmp") for n in after))
            self.assertEqual(os.path.getsize(self.out), 1000000)
            self.assertEqual(os.stat(self.out).st_mtime, 1000000000)
            self.assertEqual(sorted(os.listdir(self.tmp)), ["cache", "out.bin"])
            # On stdout, nothing is written either.
            p = self.get(url)
            self.assertExit(p, EXIT_NETWORK)
            self.assertEqual(p.stdout, b"")


class Resume(GetTestCase):
    def test_a_download_cut_short_resumes_with_range_and_if_range(self):
        body = os.urandom(300_000)
        with RangeServer(body, etag='"r1"', cut_at=100_000) as srv:
            url = srv.url("/file")
            p = self.get(url, "-o", self.out)
            self.assertExit(p, EXIT_NETWORK)
            self.assertFalse(os.path.exists(self.out))
            self.assertIn("resumes", p.stderr.decode())
            srv.cut_at = None
            p = self.get(url, "-o", self.out, "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(self.read(self.out), body)
            last = srv.heads[-1]
            self.assertIn("Range: bytes=100000-", last)
            self.assertIn('If-Range: "r1"', last)
            self.assertIn("206 Partial Content, resumed after", p.stderr.decode())
            # The completed entry is an ordinary entry: revalidated with its tag, no Range.
            p = self.get(url, "-o", self.out)
            self.assertExit(p, EXIT_OK)
            self.assertFalse(any(line.startswith("Range:") for line in srv.heads[-1]))
            self.assertEqual(self.read(self.out), body)
            self.assertEqual(len([n for n in os.listdir(self.cache) if n.endswith(".meta")]), 1)

    def test_a_file_changed_in_between_gets_a_200_from_byte_0(self):
        old, new = os.urandom(300_000), os.urandom(250_000)
        with RangeServer(old, etag='"old"', cut_at=100_000) as srv:
            url = srv.url("/file")
            self.assertExit(self.get(url, "-o", self.out), EXIT_NETWORK)
            srv.body, srv.etag, srv.cut_at = new, '"new"', None
            p = self.get(url, "-o", self.out, "-v")
            self.assertExit(p, EXIT_OK)
            self.assertIn('If-Range: "old"', srv.heads[-1])
            self.assertEqual(self.read(self.out), new, "never two versions spliced")
            self.assertIn("starting from 0", p.stderr.decode())

    def test_without_a_strong_validator_nothing_is_kept(self):
        with TruncatingServer() as srv:
            srv.answer = lambda head: (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                                       b"ETag: W/\"weak\"\r\n\r\n" + b"w" * 1000)
            self.assertExit(self.get(srv.url("/w"), "-o", self.out), EXIT_NETWORK)
            self.assertEqual(os.listdir(self.cache), [])


class Redirects(GetTestCase):
    def test_without_l_a_redirect_is_exit_5_with_its_location(self):
        with RedirectServer({"/a": (301, "/b", [])}) as srv:
            p = self.get(srv.url("/a"))
            self.assertExit(p, EXIT_HTTP)
            self.assertIn("Location: /b", p.stderr.decode())
            self.assertEqual(srv.paths, ["/a"])

    def test_l_follows_a_301_and_a_302_and_caches_each_hop_by_its_rules(self):
        routes = {"/old": (301, "/moved", ["Cache-Control: max-age=600"]),
                  "/moved": (302, "/final", [])}
        with RedirectServer(routes) as srv:
            p = self.get(srv.url("/old"), "-L", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"/final")
            self.assertEqual(srv.paths, ["/old", "/moved", "/final"])
            err = p.stderr.decode()
            self.assertIn("final URL: " + srv.url("/final"), err)
            self.assertIn("not stored: no explicit freshness", err)
            # The 301 with max-age is reused without a request; the 302 is asked again.
            p = self.get(srv.url("/old"), "-L", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"/final")
            self.assertEqual(srv.paths[3:], ["/moved", "/final"])
            self.assertIn("fresh in cache", p.stderr.decode())

    def test_a_redirect_loop_stops_after_10_hops(self):
        with RedirectServer({"/loop": (307, "/loop", [])}) as srv:
            p = self.get(srv.url("/loop"), "-L")
            self.assertExit(p, EXIT_HTTP)
            self.assertIn("more than 10 redirects", p.stderr.decode())
            self.assertEqual(len(srv.paths), 11)


class LongDownloads(GetTestCase):
    def test_the_progress_bar_is_drawn_on_request_and_cleared(self):
        with SlowServer() as srv:
            p = run(["get", "--cache-dir", self.cache, "--progress", srv.url("/slow")])
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"s" * 400000)
            err = p.stderr.decode()
            self.assertRegex(err, r"\r +\d+% \[#* *\] [\d.]+ kB of 400\.0 kB")
            self.assertTrue(err.endswith("\r\x1b[K"), repr(err[-20:]))
            self.assertNotIn("ETA", err, "stderr is not a terminal: no ETA")
            quiet = run(["get", "--cache-dir", self.cache, "--reload", srv.url("/slow")])
            self.assertNotIn(b"\r", quiet.stderr, "stderr is not a terminal: no bar")

    def test_an_interrupted_download_leaves_cache_and_output_as_they_were(self):
        write_file(self.out, b"previous")
        with SlowServer(chunks=100, pause=0.05) as srv:
            proc = subprocess.Popen([notmod_binary(), "get", "--cache-dir", self.cache, "-o",
                                     self.out, srv.url("/slow")],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn(b"interrupted", err)
        self.assertEqual(self.read(self.out), b"previous")
        self.assertEqual(os.listdir(self.cache), [])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["cache", "out.bin"])


class BadInput(GetTestCase):
    def test_malformed_urls_and_flags_are_usage_errors(self):
        for args in (["get", "not a url"], ["get", "ftp://127.0.0.1/x"], ["get"],
                     ["get", "--bogus", "http://127.0.0.1/"], ["get", "--timeout", "x",
                                                             "http://127.0.0.1/"],
                     ["get", "-H", "If-None-Match: \"x\"", "http://127.0.0.1/"],
                     ["get", "-H", "no colon", "http://127.0.0.1/"]):
            p = run(args + ["--cache-dir", self.cache])
            self.assertExit(p, EXIT_USAGE)
            self.assertTrue(p.stderr.startswith(b"notmod get: "), p.stderr)

    def test_help_describes_options_and_exit_statuses(self):
        p = run(["get", "--help"])
        self.assertExit(p, EXIT_OK)
        for word in (b"--if-changed", b"--no-heuristic", b"--cache-dir", b"exit status"):
            self.assertIn(word, p.stdout)

    def test_an_unreachable_host_is_a_network_error(self):
        p = self.get(f"http://127.0.0.1:{free_port()}/x")
        self.assertExit(p, EXIT_NETWORK)
        self.assertIn(b"notmod get: ", p.stderr)

    def test_an_unwritable_output_fails_before_any_request(self):
        with EtagServer() as srv:
            srv.add("/a", Resource(b"a", etag='"a"'))
            p = self.get(srv.url("/a"), "-o", os.path.join(self.tmp, "no", "such", "dir", "f"))
            self.assertExit(p, EXIT_FAILURE)
            self.assertIn(b"cannot write", p.stderr)
            p = self.get(srv.url("/a"), "-o", self.tmp)
            self.assertExit(p, EXIT_FAILURE)
            self.assertEqual(srv.requests(), [])

    def test_an_unusable_cache_directory_is_a_local_failure(self):
        blocker = os.path.join(self.tmp, "file")
        write_file(blocker, b"")
        p = run(["get", "--cache-dir", blocker, "http://127.0.0.1:1/"])
        self.assertExit(p, EXIT_FAILURE)
        self.assertIn(b"cannot use cache directory", p.stderr)


class CacheDirectoryOwnership(GetTestCase):
    def fetch_with_cache_mode(self, mode, owner=None):
        os.mkdir(self.cache)
        os.chmod(self.cache, mode)
        if owner is not None:
            os.chown(self.cache, owner, -1)
        with EtagServer() as srv:
            srv.add("/a", Resource(b"hello\n", etag='"a1"', cache_control="max-age=3600"))
            return self.get(srv.url("/a")), srv.requests()

    def test_a_cache_directory_others_can_write_is_refused(self):
        p, reqs = self.fetch_with_cache_mode(0o777)
        self.assertExit(p, EXIT_FAILURE)
        self.assertIn(self.cache.encode(), p.stderr)
        self.assertEqual(reqs, [])

    @unittest.skipUnless(os.geteuid() == 0, "chown to another user needs root")
    def test_a_cache_directory_another_user_owns_is_refused(self):
        p, reqs = self.fetch_with_cache_mode(0o700, owner=65534)
        self.assertExit(p, EXIT_FAILURE)
        self.assertIn(self.cache.encode(), p.stderr)
        self.assertEqual(reqs, [])

    def test_a_private_cache_directory_is_used(self):
        p, _ = self.fetch_with_cache_mode(0o700)
        self.assertExit(p, EXIT_OK)
        self.assertEqual(p.stdout, b"hello\n")


class MaxSize(GetTestCase):
    def test_a_body_over_max_size_is_abandoned_and_nothing_stored(self):
        with TruncatingServer(announced=2_000_000, sent=2_000_000) as srv:
            srv.truncate = False
            p = self.get(srv.url("/big"), "--max-size", "1000000", "-o", self.out)
            self.assertExit(p, EXIT_HTTP)
            self.assertIn(b"--max-size", p.stderr)
            self.assertFalse(os.path.exists(self.out))
            self.assertEqual([n for n in cache_files(self.cache) if not n.startswith(".")], [])

    def test_a_chunked_body_over_max_size_is_abandoned_as_received(self):
        chunk = b"x" * 100_000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
        resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"c\"\r\n"
                b"Cache-Control: max-age=60\r\n\r\n" + body + b"0\r\n\r\n")
        with CannedServer(resp) as srv:
            p = self.get(srv.url("/big"), "--max-size", "1000000")
            self.assertExit(p, EXIT_HTTP)
            self.assertEqual(p.stdout, b"")
            self.assertEqual([n for n in cache_files(self.cache) if not n.startswith(".")], [])

    def test_a_body_within_max_size_is_delivered(self):
        with TruncatingServer(announced=5000, sent=5000) as srv:
            srv.truncate = False
            p = self.get(srv.url("/small"), "--max-size", "1000000")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(len(p.stdout), 5000)


def has_terminal_controls(data):
    """True when data holds a byte a terminal acts on: below 0x20 (but \\n, \\t), 0x7f, or a
    C1 control (a bare 0x9b is CSI)."""
    return any((b < 0x20 and b not in (0x0a, 0x09)) or 0x7f <= b <= 0x9f for b in data)


class HostileServers(GetTestCase):
    def test_a_trailer_field_never_acts_as_a_header_field(self):
        # RFC 9110 §6.5.1: the trailer's max-age must not make the stale copy fresh.
        resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"t1\"\r\n"
                b"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nTrailer: Cache-Control\r\n\r\n"
                b"6\r\nhello\n\r\n0\r\nCache-Control: max-age=99999999\r\n\r\n")
        with CannedServer(resp) as srv:
            first = self.get(srv.url("/t"), "-v")
            self.assertExit(first, EXIT_OK)
            self.assertEqual(first.stdout, b"hello\n")
            second = self.get(srv.url("/t"), "-v")
            self.assertExit(second, EXIT_OK)
            self.assertEqual(second.stdout, b"hello\n")
            self.assertEqual(len(srv.heads), 2, "the second run must ask the server")
            self.assertIn(b"If-None-Match: \"t1\"", srv.heads[1])

    def test_control_bytes_in_the_head_never_reach_the_terminal(self):
        for resp in (b"HTTP/1.1 302 Moved\x1b]0;pwned\x07\r\n"
                     b"Location: /x\x1b[2J\x7f\r\nContent-Length: 0\r\n\r\n",
                     b"HTTP/1.1 404 Not\x1b]0;pwned\x07Found\r\nETag: \"\x1b]0;pwned\x07\"\r\n"
                     b"Content-Length: 0\r\n\r\n"):
            with CannedServer(resp) as srv:
                p = self.get(srv.url("/r"), "-v")
                self.assertNotEqual(p.returncode, EXIT_OK)
                self.assertFalse(has_terminal_controls(p.stdout + p.stderr), p.stderr)

    def test_a_c1_control_in_a_reason_phrase_and_location_is_escaped(self):
        # obs-text is allowed in a reason phrase and a field value; 0x9b is CSI to a terminal.
        resp = (b"HTTP/1.1 302 Moved\x9b2J\r\nLocation: /x\x9b2J\r\nContent-Length: 0\r\n\r\n")
        with CannedServer(resp) as srv:
            p = self.get(srv.url("/r"), "-v")
            self.assertExit(p, EXIT_HTTP)
            self.assertFalse(has_terminal_controls(p.stdout + p.stderr), p.stderr)
            self.assertNotIn(b"\x9b", p.stderr)
            self.assertIn(b"Moved\\x9b2J, Location: /x\\x9b2J", p.stderr)


class AgainstNginx(GetTestCase):
    def test_nginx_answers_revalidations_with_304_and_changes_with_200(self):
        root = os.path.join(self.tmp, "www")
        os.makedirs(root)
        write_file(os.path.join(root, "big.bin"), BIG, mtime=time.time() - 3600)
        with NginxServer(root) as ng:
            url = ng.url("/big.bin")
            self.assertExit(self.get(url, "-o", self.out, "--no-heuristic"), EXIT_OK)
            self.assertEqual(self.read(self.out), BIG)
            p = self.get(url, "-o", self.out, "--no-heuristic", "-v", "--if-changed")
            self.assertExit(p, EXIT_UNCHANGED)
            self.assertIn("304 Not Modified, 2.1 MB not downloaded", p.stderr.decode())
            new = os.urandom(1000)
            write_file(os.path.join(root, "big.bin"), new, mtime=time.time() - 60)
            p = self.get(url, "-o", self.out, "--no-heuristic", "-v", "--if-changed")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(self.read(self.out), new)
            self.assertIn("content changed", p.stderr.decode())


class AgainstPythonHttpServer(GetTestCase):
    def test_date_only_revalidation_gets_304s(self):
        root = os.path.join(self.tmp, "www")
        os.makedirs(root)
        write_file(os.path.join(root, "page.txt"), b"page one\n", mtime=time.time() - 7200)
        with PythonHttpServer(root) as py:
            url = py.url("/page.txt")
            self.assertExit(self.get(url, "--no-heuristic"), EXIT_OK)
            p = self.get(url, "--no-heuristic", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(p.stdout, b"page one\n")
            self.assertIn("304 Not Modified", p.stderr.decode())
            write_file(os.path.join(root, "page.txt"), b"page two!\n", mtime=time.time() - 30)
            p = self.get(url, "--no-heuristic", "-v")
            self.assertEqual(p.stdout, b"page two!\n")
            self.assertIn("200", p.stderr.decode())


class AgainstNotmodServe(GetTestCase):
    def test_notmod_serve_revalidations_get_304s_and_changes_get_200s(self):
        root = os.path.join(self.tmp, "www")
        os.makedirs(root)
        write_file(os.path.join(root, "app.css"), b"body{}\n")
        with NotmodServer(root) as srv:
            url = srv.url("/app.css")
            self.assertExit(self.get(url, "-o", self.out, "--no-heuristic"), EXIT_OK)
            self.assertEqual(self.read(self.out), b"body{}\n")
            p = self.get(url, "-o", self.out, "--no-heuristic", "--revalidate", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertIn("304 Not Modified", p.stderr.decode())
            write_file(os.path.join(root, "app.css"), b"body{color:red}\n")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                p = self.get(url, "-o", self.out, "--no-heuristic", "--revalidate")
                if self.read(self.out) == b"body{color:red}\n":
                    break
                time.sleep(0.2)
            self.assertEqual(self.read(self.out), b"body{color:red}\n")

    def test_a_gzip_variant_is_stored_decoded_and_revalidated_with_its_own_tag(self):
        root = os.path.join(self.tmp, "www")
        os.makedirs(root)
        source = b"body { color: red }\n" * 500
        write_file(os.path.join(root, "app.css"), source, mtime=time.time() - 3600)
        write_file(os.path.join(root, "app.css.gz"), gzip.compress(source, mtime=0),
                   mtime=time.time() - 60)
        # Only the sidecar: a variant compressed on the fly would replace it once ready.
        with NotmodServer(root, options=["--no-compress"]) as srv:
            url = srv.url("/app.css")
            p = self.get(url, "-o", self.out, "--no-heuristic", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertEqual(self.read(self.out), source)
            meta = self.meta_text()
            self.assertRegex(meta, r"(?i)content-encoding: gzip")
            self.assertRegex(meta, r"(?i)accept-encoding: [a-z, ]*gzip")
            p = self.get(url, "-o", self.out, "--no-heuristic", "-v")
            self.assertExit(p, EXIT_OK)
            self.assertIn("304 Not Modified", p.stderr.decode())
            self.assertEqual(self.read(self.out), source)
            p = self.get(url, "--no-heuristic")
            self.assertEqual(p.stdout, source)


class KilledMidWriteTest(GetTestCase):
    """notmod get killed with SIGKILL at random points while it downloads and stores (200 kills,
    0-50 ms after it starts, against a server that alternates versions and streams them slowly):
    every entry left behind is a whole old or new version, its metadata and body agree, and
    later runs work."""

    KILLS = 200

    def entries(self):
        """url -> (ETag, body) of each entry, read from the cache's own files: the metadata's
        body line names the body file, its length and hash."""
        out = {}
        for name in os.listdir(self.cache):
            if not name.endswith(".meta"):
                continue
            with open(os.path.join(self.cache, name), "rb") as f:
                meta = f.read().decode("latin-1")
            url = re.search(r"^url (.*)$", meta, re.M).group(1)
            body_name, length, _ = re.search(r"^body (\S+) (\d+) (\S+)$", meta, re.M).groups()
            tag = re.search(r"^header ETag: (.*)$", meta, re.M | re.I).group(1)
            with open(os.path.join(self.cache, body_name), "rb") as f:
                body = f.read()
            self.assertEqual(len(body), int(length), url)
            out[url] = (tag, body)
        return out

    def check_entries(self, versions, srv):
        for url, (tag, body) in self.entries().items():
            path = url[len(srv.url("/")) - 1:]
            self.assertIn(body, versions[path], "%s: a body that is no version" % url)
            self.assertEqual(tag, VersionedServer.tag_of(body), "%s: a mix of versions" % url)

    def test_kills_mid_write_leave_whole_entries(self):
        rng = random.Random(15)
        versions = dict(("/f%d" % i, [os.urandom(200_000 + 1000 * i + 7 * k) for k in range(2)])
                        for i in range(3))
        kinds = {"killed": 0, "finished": 0}
        with VersionedServer(versions) as srv:
            # A whole run of each first: the old versions, and how long a run takes, so that the
            # kills land all along it (start-up, transfer, the writes of the entry).
            t0 = time.monotonic()
            for path in sorted(versions):
                self.assertExit(self.get(srv.url(path), "-o", self.out), EXIT_OK)
            whole = (time.monotonic() - t0) / len(versions)
            # Bounded in time too: on a loaded machine a sanitizer build's run takes a second.
            deadline = time.monotonic() + 75  # the server thread stops accepting at 120 s
            for k in range(self.KILLS):
                if time.monotonic() > deadline:
                    break
                url = srv.url(rng.choice(sorted(versions)))
                proc = subprocess.Popen([notmod_binary(), "get", "--cache-dir", self.cache,
                                         "--no-progress", "-o", self.out, url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0, whole * 1.2))
                proc.kill()
                kinds["finished" if proc.wait(10) == 0 else "killed"] += 1
                if k % 20 == 19:
                    self.check_entries(versions, srv)
            self.check_entries(versions, srv)
            self.assertGreaterEqual(kinds["killed"], 20, kinds)
            # What the kills left besides the entries, made older than the 10 minutes after
            # which a later run's commit removes it.
            left_by_kills = [n for n in os.listdir(self.cache) if not n.endswith(".meta")]
            old = time.time() - 3600
            for n in left_by_kills:
                os.utime(os.path.join(self.cache, n), (old, old))
            # Later runs work, and each leaves the version the server sent, whole.
            for path in sorted(versions):
                p = self.get(srv.url(path), "-o", self.out, "--reload")
                self.assertExit(p, EXIT_OK)
                self.assertIn(self.read(self.out), versions[path])
            self.check_entries(versions, srv)
            self.assertEqual(len(self.entries()), len(versions))
            listing = run(["cache", "list", "--cache-dir", self.cache])
            self.assertExit(listing, EXIT_OK)
            self.assertNotIn(b"corrupt", listing.stdout)
        left = [n for n in os.listdir(self.cache) if not n.endswith(".meta")]
        print("\nget killed: %d kills over runs of %.0f ms, %d runs finished first; %d files "
              "besides the %d entries' metadata, %d once later runs cleaned up"
              % (kinds["killed"], whole * 1000, kinds["finished"], len(left_by_kills),
                 len(versions), len(left)))
        self.assertEqual(len(left), len(versions), left)  # one body each


if __name__ == "__main__":
    unittest.main()
