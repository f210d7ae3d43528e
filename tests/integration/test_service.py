"""notmod serve as a service: socket activation and Type=notify readiness without systemd
running (systemd-socket-activate passes the socket, a datagram socket here plays the manager's
NOTIFY_SOCKET), privileges given up after binding, the connection limit, and the metrics
listener."""

import gzip
import os
import re
import resource
import selectors
import signal
import socket
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from launch import (NOBODY, Conn, NotmodServer, Site, SocketActivatedServer, get_request,
                    fetch, require_binary, run, serve_for_test, shared_tempdir,
                    wait_until)


class NotifySocket:
    """A datagram socket standing in for the service manager's NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="notmod-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout=20.0):
        """The next state message, or an AssertionError after timeout."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("no notification within %.0f s" % timeout) from None

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def make_site():
    site = Site()
    site.write("index.html", b"<!doctype html><title>t</title>\n")
    site.write("a.txt", b"a" * 100)
    return site


@require_binary
class SocketActivation(unittest.TestCase):
    def setUp(self):
        self.site = make_site()
        self.addCleanup(self.site.cleanup)
        self.notify = NotifySocket()
        self.addCleanup(self.notify.close)

    def test_the_passed_socket_is_served_and_the_manager_hears_ready_reloading_and_stopping(self):
        # No --listen: the default 127.0.0.1:8080 would be bound if the passed socket were not
        # used instead.
        srv = SocketActivatedServer(self.site.root, ["--workers", "2"],
                                    env={"NOTIFY_SOCKET": self.notify.path})
        srv.start()
        self.addCleanup(srv.stop)
        self.assertEqual(self.notify.next(), "READY=1")
        self.assertIn("on http://127.0.0.1:%d/ " % srv.port, srv.startup_line)
        self.assertNotIn("8080", srv.startup_line)
        # Both workers take connections from the one socket: many in a row all get answers.
        tag = None
        for _ in range(20):
            r = fetch(srv.port, "/a.txt")
            self.assertEqual(r.status, 200)
            tag = r.header("ETag")
        self.assertEqual(fetch(srv.port, "/a.txt", [("If-None-Match", tag)]).status, 304)
        srv.signal(signal.SIGHUP)
        self.assertEqual(self.notify.next(), "RELOADING=1")
        self.assertEqual(self.notify.next(), "READY=1")
        self.assertEqual(fetch(srv.port, "/").status, 200)
        srv.signal(signal.SIGTERM)
        self.assertEqual(self.notify.next(), "STOPPING=1")
        self.assertEqual(srv.wait(20), 0)
        self.assertFalse(srv.sanitizer_report(), srv.stderr())

    def test_without_a_passed_socket_the_server_binds_itself_and_still_reports_ready(self):
        srv = NotmodServer(self.site.root, env={"NOTIFY_SOCKET": self.notify.path}).start()
        self.addCleanup(srv.stop_checked)
        self.assertEqual(self.notify.next(), "READY=1")
        self.assertEqual(fetch(srv.port, "/a.txt").status, 200)


def ids_of(pid):
    """{task id: (Uid line, Gid line, Groups line)} of every thread of pid, from /proc."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        out[tid] = tuple(fields[k].split() for k in ("Uid", "Gid", "Groups"))
    return out


def free_privileged_port():
    """A port below 1024 that nothing listens on now (binding it needs root)."""
    for port in range(987, 600, -7):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 1024 on 127.0.0.1")


@require_binary
class Privileges(unittest.TestCase):
    def setUp(self):
        # A site nobody can read: the server reads it after giving up root.
        self.root = shared_tempdir("notmod-privs-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.root, True))
        with open(os.path.join(self.root, "a.txt"), "wb") as f:
            f.write(b"served by nobody\n")
        os.chmod(os.path.join(self.root, "a.txt"), 0o644)

    def test_root_binds_a_privileged_port_then_serves_as_nobody_in_every_thread(self):
        if os.geteuid() != 0:
            r = run(["serve", "--listen", "127.0.0.1:0", "--user", "nobody", self.root])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(b"nobody", r.stderr)
            return
        for attempt in range(3):
            srv = NotmodServer(self.root, ["--user", "nobody", "--group", str(NOBODY),
                                           "--workers", "2"],
                               listen="127.0.0.1:%d" % free_privileged_port())
            try:
                srv.start()
                break
            except RuntimeError:
                if attempt == 2 or "already in use" not in srv.stderr():
                    raise
        self.addCleanup(srv.stop_checked)
        self.assertLess(srv.port, 1024)
        r = fetch(srv.port, "/a.txt")
        self.assertEqual((r.status, r.body), (200, b"served by nobody\n"))
        tasks = ids_of(srv.proc.pid)
        self.assertGreaterEqual(len(tasks), 3)  # main, two workers (and the hashing threads)
        for tid, (uid, gid, groups) in tasks.items():
            self.assertEqual(uid, [str(NOBODY)] * 4, "thread %s" % tid)
            self.assertEqual(gid, [str(NOBODY)] * 4, "thread %s" % tid)
            self.assertNotIn("0", groups, "thread %s kept root's group" % tid)

    def test_an_unknown_user_stops_the_start_naming_it(self):
        r = run(["serve", "--listen", "127.0.0.1:0", "--user", "no-such-user-nm", self.root])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no user no-such-user-nm", r.stderr)


def connect_many(port, n, batch=500, timeout=60.0):
    """n connected sockets to 127.0.0.1:port, opened batch by batch (the listen queue holds about
    a thousand), or an AssertionError."""
    socks = []
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    try:
        while len(socks) < n:
            pending = []
            for _ in range(min(batch, n - len(socks))):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                pending.append(s)
                sel.register(s, selectors.EVENT_WRITE)
            left = len(pending)
            while left:
                if time.monotonic() > deadline:
                    raise AssertionError("only %d of %d connections made" % (len(socks), n))
                for key, _ in sel.select(1.0):
                    err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise AssertionError("connect: %s" % os.strerror(err))
                    sel.unregister(key.fileobj)
                    socks.append(key.fileobj)
                    left -= 1
    finally:
        sel.close()
    return socks


def answer_all(socks, request, timeout=120.0):
    """Sends request on every socket; returns how many answered with a whole 200 response."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.sendall(request)
        sel.register(s, selectors.EVENT_READ, bytearray())
    ok, left = 0, len(socks)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            buf = key.data
            chunk = key.fileobj.recv(65536)
            buf += chunk
            if not chunk or (b"\r\n\r\n" in buf and buf.endswith(b"a" * 100)):
                ok += buf.startswith(b"HTTP/1.1 200 ")
                sel.unregister(key.fileobj)
                left -= 1
    sel.close()
    return ok


@require_binary
class MaxConnections(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.site = make_site()

    @classmethod
    def tearDownClass(cls):
        cls.site.cleanup()

    def test_a_connection_past_the_limit_waits_until_another_closes(self):
        srv = serve_for_test(self, self.site.root, ["--max-connections", "2", "--workers", "2"])
        a, b = Conn(srv.port), Conn(srv.port)
        for c in (a, b):
            self.assertEqual(c.request(get_request("/a.txt")).status, 200)
        c = Conn(srv.port, timeout=1.5)
        self.addCleanup(c.close)
        c.send(get_request("/a.txt"))
        with self.assertRaises((socket.timeout, TimeoutError)):
            c.read_response()  # not accepted: the limit holds for both workers together
        a.close()
        c.sock.settimeout(10)
        self.assertEqual(c.read_response().status, 200)
        b.close()

    def test_ten_thousand_clients_are_served_at_once(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertGreaterEqual(hard, 10100, "the open file limit cannot hold 10,000 clients")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        srv = serve_for_test(self, self.site.root, ["--max-connections", "10000"])
        socks = connect_many(srv.port, 10000)
        try:
            ok = answer_all(socks, get_request("/a.txt"))
        finally:
            for s in socks:
                s.close()
        self.assertEqual(ok, 10000)
        self.assertNotIn("more than the open file limit", srv.stderr())

    def test_a_limit_above_the_open_file_limit_is_warned_about(self):
        srv = serve_for_test(self, self.site.root, ["--max-connections", "1000000"])
        self.assertIn("--max-connections 1000000 is more than the open file limit",
                      srv.stderr())
        self.assertEqual(fetch(srv.port, "/a.txt").status, 200)

    def test_a_bad_limit_is_a_usage_error(self):
        for value in ("0", "-1", "many", "1000001"):
            r = run(["serve", "--max-connections", value, "."])
            self.assertEqual(r.returncode, 2, value)
            self.assertIn(b"--max-connections", r.stderr)


def metrics_url(srv):
    """The /metrics URL the server logs once the workers run (after its startup line)."""
    pattern = r"metrics on (http://127\.0\.0\.1:\d+/)metrics"
    wait_until(lambda: re.search(pattern, srv.stderr()), 20)
    m = re.search(r"metrics on (http://127\.0\.0\.1:\d+/)metrics", srv.stderr())
    if not m:
        raise AssertionError("no metrics line on stderr:\n" + srv.stderr())
    return m.group(1)


def scrape(base):
    """{(name, labels): value} of the exposition at base + 'metrics'."""
    with urllib.request.urlopen(base + "metrics", timeout=10) as r:
        if not r.headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            raise AssertionError("Content-Type %s" % r.headers["Content-Type"])
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r"([a-z_]+)(\{[^}]*\})? (\d+)", line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = int(m.group(3))
    return out


@require_binary
class Metrics(unittest.TestCase):
    def test_counters_match_a_known_request_mix(self):
        site = make_site()
        self.addCleanup(site.cleanup)
        body = b"css{color:red}\n" * 40
        site.write("s.css", body)
        site.write("s.css.gz", gzip.compress(body, mtime=0))
        srv = serve_for_test(self, site.root, ["--metrics", "127.0.0.1:0", "--workers", "2",
                                               "--no-compress"])
        base = metrics_url(srv)
        before = scrape(base)
        self.assertEqual(before.get(("notmod_not_modified_total", ""), 0), 0)
        tag = None
        for _ in range(3):
            r = fetch(srv.port, "/a.txt")
            self.assertEqual(r.status, 200)
            tag = r.header("ETag")
        for _ in range(2):
            self.assertEqual(fetch(srv.port, "/a.txt", [("If-None-Match", tag)]).status, 304)
        self.assertEqual(fetch(srv.port, "/missing").status, 404)
        self.assertEqual(fetch(srv.port, "/a.txt", method="HEAD").status, 200)
        r = fetch(srv.port, "/s.css", [("Accept-Encoding", "gzip")])
        self.assertEqual((r.status, r.header("Content-Encoding")), (200, "gzip"))
        gz_len = len(r.body)
        with Conn(srv.port) as held:  # one connection open while scraped
            held.request(get_request("/a.txt"))
            got = scrape(base)
        self.assertEqual(got[("notmod_requests_total", '{method="GET",code="200"}')], 5)
        self.assertEqual(got[("notmod_requests_total", '{method="GET",code="304"}')], 2)
        self.assertEqual(got[("notmod_requests_total", '{method="GET",code="404"}')], 1)
        self.assertEqual(got[("notmod_requests_total", '{method="HEAD",code="200"}')], 1)
        self.assertEqual(got[("notmod_not_modified_total", "")], 2)
        self.assertEqual(got[("notmod_not_modified_saved_bytes_total", "")], 2 * 100)
        self.assertEqual(got[("notmod_responses_by_coding_total", '{coding="gzip"}')], 1)
        self.assertEqual(got[("notmod_responses_by_coding_total", '{coding="identity"}')], 5)
        self.assertGreaterEqual(got[("notmod_response_bytes_total", "")], 4 * 100 + gz_len)
        self.assertEqual(got[("notmod_open_connections", "")], 1)
        self.assertEqual(got[("notmod_aborted_bodies_total", "")], 0)
        self.assertIn(("notmod_etag_sources_total", '{source="hashed_in_memory"}'), got)

    def test_the_status_page_is_self_contained_html_and_other_paths_are_404(self):
        site = make_site()
        self.addCleanup(site.cleanup)
        srv = serve_for_test(self, site.root, ["--metrics", "127.0.0.1:0"])
        base = metrics_url(srv)
        with urllib.request.urlopen(base + "status", timeout=10) as r:
            page = r.read().decode()
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.assertIn("fetch('/metrics'", page)
        self.assertNotRegex(page, r"(src|href)=\"?(https?:)?//")  # no external asset
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "other", timeout=10)
        self.assertEqual(e.exception.code, 404)

    def test_a_malformed_metrics_address_is_a_usage_error(self):
        r = run(["serve", "--metrics", "localhost", "."])
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"metrics address", r.stderr)


if __name__ == "__main__":
    unittest.main()
