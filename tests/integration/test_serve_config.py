"""notmod serve --config: the file's settings and per-path rules (headers on every status, CORS
preflight, try_files fallbacks, error pages), --check-config, reload on SIGHUP under load, and the
drain timeout at SIGTERM."""

import hashlib
import http.client
import os
import re
import signal
import socket
import tempfile
import threading
import time
import unittest

from launch import (HTTP_TIMEOUT_S, NotmodServer, Site, fetch, free_port, get_request,
                    require_binary, run, serve_for_test, wait_until)

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "usage.md")


def docs_example(root):
    """The full example config of docs/usage.md, serving root."""
    with open(DOCS) as f:
        text = f.read()
    m = re.search(r"```\n(# /etc/notmod/site\.conf\n.*?)```", text, re.S)
    assert m, "docs/usage.md has no full example config"
    return re.sub(r'^root = ".*?";', 'root = "%s";' % root, m.group(1), count=1, flags=re.M)


# A config for the reload tests, with the root, the listen addresses and X-Release filled in.
EXAMPLE = """\
root = "%(root)s";
listen = [%(listen)s];
workers = 2;
etag = "content";
if_modified_since = "rfc";
max_age = 60;
precompressed = "br,zstd,gzip";
compress = true;
index = "index.html";
list_dirs = false;
dotfiles = "deny";
access_log = "off";
log_format = "combined";
timeouts = { header = 10; idle = 60; send = 60; drain = 10; };
error_pages = ( { status = 404; page = "/404.html"; } );
rules = (
  { match = "/assets/*";
    cache_control = "public, max-age=31536000, immutable";
    headers = { Access-Control-Allow-Origin = "*";
                Access-Control-Allow-Methods = "GET, HEAD";
                Access-Control-Allow-Headers = "If-None-Match";
                Access-Control-Max-Age = "600"; }; },
  { prefix = "/app/"; try_files = ["/app/index.html"]; },
  { match = "/*";
    try_files = ["$uri.html"];
    headers = { Content-Security-Policy = "default-src 'self'";
                Strict-Transport-Security = "max-age=63072000";
                X-Release = "%(release)s"; }; }
);
"""

# A 304 keeps the shape of RFC 9110 §15.4.5: none of these.
NOT_ON_304 = ("Content-Type", "Content-Length", "Content-Encoding")


def write_config(path, root, release="r1", text=EXAMPLE, listen=("127.0.0.1:8080",)):
    with open(path, "w") as f:
        f.write(text % {"root": root, "release": release,
                        "listen": ", ".join('"%s"' % a for a in listen)})
    return path


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def populate(site):
    site.write("index.html", "<h1>home</h1>\n")
    site.write("about.html", "<h1>about</h1>\n")
    site.write("404.html", "<h1>no such page</h1>\n")
    site.write("app/index.html", "<div id=app></div>\n")
    site.write("assets/app.css", "body { color: black; }\n" * 40)


@require_binary
class ConfigFileTest(unittest.TestCase):
    """One server from the full example config of docs/usage.md, its listen and access log
    overridden by the options the launcher gives (the options win over the file)."""

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        populate(cls.site)
        cls.conf = os.path.join(cls.site.base, "site.conf")
        with open(cls.conf, "w") as f:
            f.write(docs_example(cls.site.root))
        cls.server = NotmodServer(None, ["--config", cls.conf]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_checked()
        finally:
            cls.site.cleanup()

    def get(self, path, headers=(), method="GET"):
        return fetch(self.server.port, path, headers, method)

    def assert_rule_fields(self, r):
        self.assertEqual(r.header("Content-Security-Policy"), "default-src 'self'")
        self.assertEqual(r.header("Strict-Transport-Security"), "max-age=63072000")
        self.assertEqual(r.header("X-Frame-Options"), "DENY")

    def test_the_example_file_serves_its_root_with_its_max_age(self):
        r = self.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"<h1>home</h1>\n")
        self.assertEqual(r.header("Cache-Control"), "max-age=60")
        self.assertIn(self.site.root, self.server.startup_line)

    def test_rule_fields_are_on_200_206_304_and_404(self):
        ok = self.get("/assets/app.css")
        self.assertEqual(ok.status, 200)
        self.assertEqual(ok.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assertEqual(ok.header("Access-Control-Allow-Origin"), "*")
        self.assert_rule_fields(ok)
        part = self.get("/assets/app.css", [("Range", "bytes=0-3")])
        self.assertEqual(part.status, 206)
        self.assertEqual(part.body, b"body")
        self.assert_rule_fields(part)
        self.assertEqual(part.header("Access-Control-Allow-Origin"), "*")
        etag = ok.header("ETag")
        self.assertTrue(etag)
        nm = self.get("/assets/app.css", [("If-None-Match", etag)])
        self.assertEqual(nm.status, 304)
        self.assert_rule_fields(nm)
        self.assertEqual(nm.header("Access-Control-Allow-Origin"), "*")
        self.assertEqual(nm.header("ETag"), etag)
        for name in NOT_ON_304:
            self.assertFalse(nm.has(name), name)
        self.assertEqual(nm.body, b"")
        missing = self.get("/nothing/here.txt")
        self.assertEqual(missing.status, 404)
        self.assert_rule_fields(missing)

    def test_cors_preflight_is_answered_from_the_rule(self):
        r = self.get("/assets/app.css", [("Origin", "https://example.com"),
                                         ("Access-Control-Request-Method", "GET")],
                     method="OPTIONS")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*")
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "GET, HEAD")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "If-None-Match")
        self.assertEqual(r.header("Access-Control-Max-Age"), "600")
        plain = self.get("/assets/app.css", method="OPTIONS")
        self.assertEqual(plain.status, 204)
        self.assertEqual(plain.header("Allow"), "GET, HEAD, OPTIONS")
        self.assertFalse(plain.has("Access-Control-Allow-Origin"))
        # No rule sets CORS fields for /about: a preflight there is a plain OPTIONS.
        other = self.get("/about", [("Origin", "https://example.com"),
                                    ("Access-Control-Request-Method", "GET")], method="OPTIONS")
        self.assertEqual(other.header("Allow"), "GET, HEAD, OPTIONS")
        self.assertFalse(other.has("Access-Control-Allow-Origin"))

    def test_spa_fallback_is_served_with_the_fallback_files_validators(self):
        index = self.get("/app/index.html")
        deep = self.get("/app/users/42/settings")
        self.assertEqual(deep.status, 200)
        self.assertEqual(deep.body, b"<div id=app></div>\n")
        self.assertEqual(deep.header("ETag"), index.header("ETag"))
        self.assertEqual(deep.header("Last-Modified"), index.header("Last-Modified"))
        nm = self.get("/app/other/route", [("If-None-Match", index.header("ETag"))])
        self.assertEqual(nm.status, 304)
        for name in NOT_ON_304:
            self.assertFalse(nm.has(name), name)
        changed = self.get("/app/other/route", [("If-None-Match", '"something-else"')])
        self.assertEqual(changed.status, 200)

    def test_clean_urls_serve_the_html_file(self):
        r = self.get("/about")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"<h1>about</h1>\n")
        self.assertEqual(r.header("ETag"), self.get("/about.html").header("ETag"))

    def test_the_error_page_keeps_404_and_never_answers_a_precondition(self):
        r = self.get("/no-such-page")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b"<h1>no such page</h1>\n")
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertFalse(r.has("ETag"))
        self.assertFalse(r.has("Last-Modified"))
        page_tag = self.get("/404.html").header("ETag")
        for cond in [("If-None-Match", "*"), ("If-None-Match", page_tag),
                     ("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]:
            again = self.get("/no-such-page", [cond])
            self.assertEqual(again.status, 404, cond)
            self.assertEqual(again.body, b"<h1>no such page</h1>\n")
        head = self.get("/no-such-page", method="HEAD")
        self.assertEqual(head.status, 404)
        self.assertEqual(head.body, b"")


@require_binary
class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.site = Site()
        populate(self.site)
        self.addCleanup(self.site.cleanup)

    def conf(self, text, name="notmod.conf"):
        path = os.path.join(self.site.base, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_good_file_checks_ok(self):
        path = self.conf(docs_example(self.site.root))
        r = run(["serve", "--check-config", "--config", path], text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, path + ": ok\n")
        self.assertEqual(r.stderr, "")

    def test_a_bad_file_names_every_problem_with_its_line(self):
        path = self.conf('root = "%s";\nworkers = "two";\nrules = (\n'
                         '  { match = "/x/*"; headers = { Content-Length = "5"; }; },\n'
                         '  { prefix = "/y/"; colour = 1; }\n);\nlisten = 8080;\n'
                         % self.site.root)
        r = run(["serve", "--check-config", "--config", path], text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(path + ":2: workers wants a whole number", r.stderr)
        self.assertIn(path + ":4: header Content-Length refused", r.stderr)
        self.assertIn(path + ':5: unknown rule setting "colour"', r.stderr)
        self.assertIn(path + ":7: listen wants", r.stderr)

    def test_a_syntax_error_is_refused_at_start_with_its_line(self):
        path = self.conf('root = "%s";\n\nworkers = ;\n' % self.site.root)
        r = run(["serve", "--config", path, "--listen", "127.0.0.1:0"], text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path + ":3: ", r.stderr)
        self.assertNotIn("serving", r.stderr)

    def test_fields_the_server_owns_are_refused_by_name(self):
        for name in ("Content-Length", "Transfer-Encoding", "ETag", "Last-Modified",
                     "Content-Encoding", "Vary", "Date", "Connection", "Cache-Control"):
            path = self.conf('rules = ( { match = "/*"; headers = { %s = "x"; }; } );\n' % name)
            r = run(["serve", "--check-config", "--config", path, self.site.root], text=True)
            self.assertEqual(r.returncode, 1, name)
            self.assertIn(path + ":1: header %s refused" % name, r.stderr)

    def test_a_value_with_a_line_break_is_refused(self):
        path = self.conf('rules = ( { match = "/*"; headers = { X-A = "a\\r\\nSet-Cookie: x"; }; '
                         '} );\n')
        r = run(["serve", "--check-config", "--config", path, self.site.root], text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(path + ":1: header X-A: a value is at most", r.stderr)

    def test_a_rule_that_never_matches_is_a_warning_in_the_file_and_on_the_command_line(self):
        path = self.conf('rules = (\n  { match = "docs/*"; cache_control = "private"; }\n);\n')
        r = run(["serve", "--check-config", "--config", path, "--cache-control",
                 "docs/*=private", self.site.root], text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('warning: %s:2: rule "docs/*" never matches' % path, r.stderr)
        self.assertIn('warning: --cache-control rule "docs/*" never matches', r.stderr)

    def test_options_override_the_file(self):
        path = self.conf('max_age = 60;\nindex = "home.html";\n')
        self.site.write("home.html", "home")
        srv = serve_for_test(self, None, ["--config", path, "--max-age", "5", self.site.root])
        r = fetch(srv.port, "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"home")
        self.assertEqual(r.header("Cache-Control"), "max-age=5")


def read_download(port, path, sink, chunk=1 << 16, pause_s=0.0, limit_s=60.0):
    """GETs path on its own connection, reading it in chunks (with a pause after each); returns
    (status, bytes read, sha256 hex)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        digest = hashlib.sha256()
        total = 0
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            data = resp.read(chunk)
            if not data:
                break
            digest.update(data)
            total += len(data)
            if pause_s:
                time.sleep(pause_s)
        sink.append((resp.status, total, digest.hexdigest()))
    finally:
        conn.close()


@require_binary
class ReloadTest(unittest.TestCase):
    """SIGHUP reads the file again and swaps it in; a broken file keeps the old settings."""

    BIG_MB = 200

    def setUp(self):
        self.site = Site()
        populate(self.site)
        self.addCleanup(self.site.cleanup)
        self.conf = os.path.join(self.site.base, "notmod.conf")

    def make_big(self):
        """BIG_MB MiB of a repeated random block, and its SHA-256."""
        block = os.urandom(1 << 20)
        digest = hashlib.sha256()
        with open(self.site.path("big.bin"), "wb") as f:
            for _ in range(self.BIG_MB):
                f.write(block)
                digest.update(block)
        return digest.hexdigest()

    def release_of(self, port):
        return fetch(port, "/about").header("X-Release")

    def test_fifty_clients_and_a_download_run_through_twenty_reloads(self):
        want_hash = self.make_big()
        write_config(self.conf, self.site.root, "r0")
        srv = serve_for_test(self, None, ["--config", self.conf, "--workers", "2"])
        port = srv.port
        stop = threading.Event()
        failures, counts, seen = [], [0] * 50, set()
        lock = threading.Lock()

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
            try:
                for _ in range(2000):  # bounded; the reloads end it sooner
                    if stop.is_set():
                        break
                    try:
                        conn.request("GET", "/about" if i % 2 else "/assets/app.css")
                        r = conn.getresponse()
                        body = r.read()
                        release = r.getheader("X-Release")
                        if r.status != 200 or not body or not release:
                            failures.append((i, r.status, release))
                        with lock:
                            seen.add(release)
                        counts[i] += 1
                    except (OSError, http.client.HTTPException) as e:
                        failures.append((i, repr(e)))
                        conn.close()
                    time.sleep(0.005)
            finally:
                conn.close()

        download = []
        # 200 reads of 1 MiB with 40 ms after each: 8 s at least, in flight through every reload.
        dl = threading.Thread(target=read_download,
                              args=(port, "/big.bin", download, 1 << 20, 0.04, 120.0))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        started = time.monotonic()
        dl.start()
        for t in threads:
            t.start()
        releases = []
        for k in range(1, 21):
            time.sleep(0.15)
            release = "r%d" % (k % 2)
            write_config(self.conf, self.site.root, release)
            srv.signal(signal.SIGHUP)
            releases.append(release)
            # Each reload is in use before the next: a new connection sees its value.
            self.assertTrue(wait_until(lambda: self.release_of(port) == release, 5.0),
                            "reload %d not seen" % k)
        reload_s = time.monotonic() - started
        download_spanned = dl.is_alive()
        stop.set()
        for t in threads:
            t.join(30)
        dl.join(150)
        self.assertFalse(dl.is_alive())
        self.assertTrue(download_spanned, "the download ended before the last reload")
        self.assertEqual(failures, [])
        self.assertEqual(download, [(200, self.BIG_MB << 20, want_hash)])
        self.assertEqual(seen, {"r0", "r1"})
        self.assertTrue(all(n > 0 for n in counts))
        self.assertEqual(srv.stderr().count("reloaded " + self.conf), 20)
        print("\nreload: 20 reloads in %.1f s, %d requests by 50 keep-alive clients, 0 failed, "
              "%d MiB download intact" % (reload_s, sum(counts), self.BIG_MB))

    def test_a_broken_file_on_reload_keeps_the_old_settings_and_logs_its_line(self):
        write_config(self.conf, self.site.root, "good")
        srv = serve_for_test(self, None, ["--config", self.conf])
        self.assertEqual(self.release_of(srv.port), "good")
        with open(self.conf, "a") as f:
            f.write("workers = ;\n")
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload refused" in srv.stderr(), 5.0))
        self.assertRegex(srv.stderr(), re.escape(self.conf) + r":\d+: ")
        self.assertEqual(self.release_of(srv.port), "good")
        write_config(self.conf, self.site.root, "fixed")
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.release_of(srv.port) == "fixed", 5.0))

    def test_listeners_are_added_and_removed_on_reload(self):
        first, second = free_port(), free_port()
        write_config(self.conf, self.site.root, "a", listen=["127.0.0.1:%d" % first])
        srv = NotmodServer(None, ["--config", self.conf], listen=None).start()
        self.addCleanup(srv.stop_checked)
        self.assertEqual(srv.port, first)
        kept = http.client.HTTPConnection("127.0.0.1", first, timeout=HTTP_TIMEOUT_S)
        self.addCleanup(kept.close)
        kept.request("GET", "/about")
        self.assertEqual(kept.getresponse().read(), b"<h1>about</h1>\n")
        write_config(self.conf, self.site.root, "b", listen=["127.0.0.1:%d" % second])
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: accepts(second), 5.0), srv.stderr())
        self.assertTrue(wait_until(lambda: not accepts(first), 5.0), srv.stderr())
        self.assertEqual(fetch(second, "/about").header("X-Release"), "b")
        # A connection accepted before is the worker's, not the listener's: it goes on.
        kept.request("GET", "/about")
        r = kept.getresponse()
        self.assertEqual((r.status, r.getheader("X-Release")), (200, "b"))
        r.read()
        self.assertIn("listening on http://127.0.0.1:%d/" % second, srv.stderr())
        self.assertIn("no longer listening on http://127.0.0.1:%d/" % first, srv.stderr())
        # Both, then the first again: the kept address keeps its sockets.
        write_config(self.conf, self.site.root, "c",
                     listen=["127.0.0.1:%d" % second, "127.0.0.1:%d" % first])
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: accepts(first), 5.0), srv.stderr())
        self.assertEqual(fetch(second, "/about").header("X-Release"), "c")
        self.assertEqual(fetch(first, "/about").header("X-Release"), "c")

    def test_a_change_that_needs_a_restart_is_refused(self):
        write_config(self.conf, self.site.root, "one")
        srv = serve_for_test(self, None, ["--config", self.conf])
        write_config(self.conf, self.site.root, "two",
                     EXAMPLE.replace('etag = "content"', 'etag = "metadata"'))
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "etag changes only with a restart" in srv.stderr(),
                                   5.0))
        self.assertEqual(self.release_of(srv.port), "one")


@require_binary
class DrainTest(unittest.TestCase):
    def test_a_transfer_cut_at_the_drain_deadline_is_logged(self):
        site = Site()
        self.addCleanup(site.cleanup)
        size = 64 << 20
        with open(site.path("big.bin"), "wb") as f:
            f.truncate(size)  # sparse: no disk, the server reads zeros
        srv = NotmodServer(site.root, ["--drain-timeout", "1"]).start()
        self.addCleanup(srv.stop)
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(get_request("/big.bin"))
        self.assertTrue(sock.recv(4096))  # the head and the first bytes, then it stalls
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        status = srv.wait(10)
        took = time.monotonic() - started
        self.assertEqual(status, 0)
        self.assertLess(took, 5.0)
        m = re.search(r"drain: cut GET /big\.bin to 127\.0\.0\.1 after (\d+) of (\d+) bytes",
                      srv.stderr())
        self.assertTrue(m, srv.stderr())
        self.assertEqual(int(m.group(2)), size)
        self.assertLess(int(m.group(1)), size)


if __name__ == "__main__":
    unittest.main()
