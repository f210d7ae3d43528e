"""The server over time: slow clients and the header timeout, files that change or disappear
between requests, graceful shutdown, listen addresses, and the command line's exit codes."""

import hashlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import unittest

from launch import (NOTMOD, Conn, NotmodServer, ServerTestCase, Site, fetch, get_request,
                    blocks_sigterm, etag_store_for_tests, require_binary, run, wait_until)

HEADER_TIMEOUT_S = 10.0
BIG_BYTES = 64 << 20


def run_cli(*args):
    return run(args, timeout=20, text=True)


@require_binary
class SlowClients(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")
        site.write("a.txt", b"A\n")

    def test_partial_heads_do_not_block_others_and_are_cut_by_the_header_timeout(self):
        partial = Conn(self.port, timeout=HEADER_TIMEOUT_S + 10)
        trickle = Conn(self.port, timeout=HEADER_TIMEOUT_S + 10)
        self.addCleanup(partial.close)
        self.addCleanup(trickle.close)
        started = time.monotonic()
        partial.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def trickle_bytes():
            # A byte every 0.4 s never completes a head; the timeout counts from its first byte.
            for b in (b"GET /a.txt HTTP/1.1\r\nX-Slow: " + b"y" * 200):
                if stop.wait(0.4):
                    return
                try:
                    trickle.send(bytes([b]))
                except OSError:
                    return

        t = threading.Thread(target=trickle_bytes, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        self.addCleanup(stop.set)

        # Meanwhile, other clients are served at once, several times over.
        for _ in range(5):
            t0 = time.monotonic()
            r = fetch(self.port, "/a.txt")
            self.assertEqual((r.status, r.body), (200, b"A\n"))
            self.assertLess(time.monotonic() - t0, 2.0)
            time.sleep(0.2)

        for conn in (partial, trickle):
            r = conn.read_response()
            elapsed = time.monotonic() - started
            self.assertEqual(r.status, 408)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(conn.is_closed_by_peer())
            self.assertGreater(elapsed, HEADER_TIMEOUT_S - 1.5)
            self.assertLess(elapsed, HEADER_TIMEOUT_S + 8)
        stop.set()
        self.assert_alive()


@require_binary
class ShortTimeouts(ServerTestCase):
    SERVER_OPTIONS = ("--header-timeout", "2", "--idle-timeout", "2", "--send-timeout", "2")

    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")
        site.write("big.bin", bytes(range(256)) * (128 * 1024))  # 32 MiB: more than buffers hold

    def test_header_timeout_option_cuts_a_partial_head(self):
        with Conn(self.port) as c:
            t0 = time.monotonic()
            c.send(b"GET /alive.txt HTTP/1.1\r\n")
            r = c.read_response()
            elapsed = time.monotonic() - t0
            self.assertEqual(r.status, 408)
            self.assertTrue(c.is_closed_by_peer())
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 6)

    def test_idle_timeout_option_closes_a_kept_alive_connection(self):
        with Conn(self.port) as c:
            self.assertEqual(c.request(get_request("/alive.txt")).status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.is_closed_by_peer(timeout=8))
            self.assertGreater(time.monotonic() - t0, 1.5)

    def test_idle_timeout_counts_from_each_connections_last_request(self):
        # Idle connections wait in last-activity order: a connection used again goes behind
        # the others, and each closes about the idle timeout after its own last request.
        with Conn(self.port) as a, Conn(self.port) as b:
            self.assertEqual(a.request(get_request("/alive.txt")).status, 200)
            self.assertEqual(b.request(get_request("/alive.txt")).status, 200)
            time.sleep(1.5)
            self.assertEqual(a.request(get_request("/alive.txt")).status, 200)
            t_a = time.monotonic()
            self.assertTrue(b.is_closed_by_peer(timeout=8))
            self.assertLess(time.monotonic() - t_a, 1.5, "b timed from a's request")
            self.assertFalse(a.is_closed_by_peer(timeout=0.2), "a was used after b")
            self.assertTrue(a.is_closed_by_peer(timeout=8))
            self.assertGreater(time.monotonic() - t_a, 1.5)

    def test_send_timeout_option_drops_a_client_that_stops_reading(self):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(10)
        c.connect(("127.0.0.1", self.port))
        self.addCleanup(c.close)
        c.sendall(get_request("/big.bin"))
        time.sleep(5)
        got = 0
        for _ in range(100000):
            try:
                chunk = c.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
        self.assertLess(got, 32 << 20)
        self.assert_alive()


@require_binary
class RequestDeadline(ServerTestCase):
    SERVER_OPTIONS = ("--header-timeout", "1")

    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")

    def test_content_trickled_in_is_cut_by_the_request_deadline(self):
        # A byte every 0.4 s keeps the connection busy forever; the deadline covers the content.
        with Conn(self.port, timeout=10) as c:
            t0 = time.monotonic()
            c.send(get_request("/alive.txt", [("Content-Length", "1000000")]))
            status = None
            for _ in range(25):
                time.sleep(0.4)
                try:
                    c.send(b"x")
                except OSError:
                    break
                if select.select([c.sock], [], [], 0)[0]:
                    break
            r = c.read_response()
            elapsed = time.monotonic() - t0
            status = r.status
            self.assertEqual(status, 408)
            self.assertEqual(r.header("Connection"), "close")
        self.assertLess(elapsed, 3.0)
        self.assert_alive()

    def test_next_head_gets_its_own_deadline_after_slow_content(self):
        with Conn(self.port, timeout=10) as c:
            c.send(get_request("/alive.txt", [("Content-Length", "3")]))
            for b in b"abc":
                time.sleep(0.25)
                c.send(bytes([b]))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"alive\n"))
            time.sleep(0.3)
            head = get_request("/alive.txt")
            c.send(head[:5])
            time.sleep(0.3)
            c.send(head[5:])
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"alive\n"))


@require_binary
class SlowReaders(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")
        site.write("big.bin", bytes(range(256)) * (32 * 1024))  # 8 MiB

    def test_a_client_that_stops_reading_does_not_block_others(self):
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(5)
        stuck.connect(("127.0.0.1", self.port))
        self.addCleanup(stuck.close)
        stuck.sendall(get_request("/big.bin") * 4)
        self.assertIn(b"200 OK", stuck.recv(1024))
        for _ in range(20):
            t0 = time.monotonic()
            self.assert_alive()
            self.assertLess(time.monotonic() - t0, 2.0)


@require_binary
class ChangingFiles(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")

    def test_file_that_disappears_is_404_and_back_when_recreated(self):
        self.site.write("gone.txt", b"here\n")
        self.assertEqual(self.get("/gone.txt").status, 200)
        os.remove(self.site.path("gone.txt"))
        self.assertEqual(self.get("/gone.txt").status, 404)
        self.site.write("gone.txt", b"back again\n")
        r = self.get("/gone.txt")
        self.assertEqual((r.status, r.body), (200, b"back again\n"))

    def test_changed_file_gets_a_new_tag_and_body(self):
        self.site.write("c.txt", b"version one\n")
        r1 = self.get("/c.txt")
        self.site.write("c.txt", b"version two, longer\n")
        r2 = self.get("/c.txt", [("If-None-Match", r1.header("ETag"))])
        self.assertEqual((r2.status, r2.body), (200, b"version two, longer\n"))
        self.assertNotEqual(r2.header("ETag"), r1.header("ETag"))
        self.assertEqual(self.get("/c.txt", [("If-None-Match", r2.header("ETag"))]).status, 304)

    def test_same_size_rewrite_with_the_same_mtime_gets_a_new_tag(self):
        p = self.site.write("s.txt", b"AAAA-1\n", mtime=1700000000)
        r1 = self.get("/s.txt")
        self.site.write("s.txt", b"BBBB-2\n", mtime=1700000000)
        self.assertEqual(os.stat(p).st_mtime, 1700000000)
        r2 = self.get("/s.txt", [("If-None-Match", r1.header("ETag"))])
        self.assertEqual((r2.status, r2.body), (200, b"BBBB-2\n"))
        self.assertNotEqual(r2.header("ETag"), r1.header("ETag"))

    def test_rewrite_back_to_the_same_bytes_gets_the_old_tag(self):
        self.site.write("r.txt", b"original\n")
        t1 = self.get("/r.txt").header("ETag")
        self.site.write("r.txt", b"modified\n")
        self.assertNotEqual(self.get("/r.txt").header("ETag"), t1)
        self.site.write("r.txt", b"original\n")
        self.assertEqual(self.get("/r.txt", [("If-None-Match", t1)]).status, 304)

    def test_atomic_rename_deploy_is_seen(self):
        self.site.write("deploy.js", b"old();\n")
        t1 = self.get("/deploy.js").header("ETag")
        tmp = self.site.write("deploy.js.tmp", b"new();\n")
        os.rename(tmp, self.site.path("deploy.js"))
        r = self.get("/deploy.js", [("If-None-Match", t1)])
        self.assertEqual((r.status, r.body), (200, b"new();\n"))

    def test_large_file_change_is_seen(self):
        big1 = bytes(range(256)) * 1024  # 256 KiB: sent from the file, not from memory
        big2 = bytes(reversed(range(256))) * 1024
        self.site.write("big.bin", big1)
        r1 = self.get_with_etag("/big.bin")
        self.assertEqual(r1.body, big1)
        self.assertTrue(r1.has("ETag"))
        self.site.write("big.bin", big2)
        r2 = self.get("/big.bin")
        self.assertEqual(r2.body, big2)
        self.assertNotEqual(r2.header("ETag"), r1.header("ETag"))
        r2 = self.get_with_etag("/big.bin")
        self.assertEqual(r2.body, big2)
        self.assertTrue(r2.has("ETag"))
        self.assertNotEqual(r1.header("ETag"), r2.header("ETag"))
        self.assertEqual(self.get("/big.bin", [("If-None-Match", r1.header("ETag"))]).status,
                         200)
        self.assertEqual(self.get("/big.bin", [("If-None-Match", r2.header("ETag"))]).status,
                         304)

    def test_file_changed_during_a_download_is_cut_short(self):
        size = 16 << 20
        self.site.write("moving.bin", bytes(range(256)) * (size // 256))
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.settimeout(10)
        c.connect(("127.0.0.1", self.port))
        self.addCleanup(c.close)
        c.sendall(get_request("/moving.bin"))
        data = b""
        for _ in range(10000):
            if len(data) >= 1 << 20:
                break
            data += c.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: %d" % size, head)
        with open(self.site.path("moving.bin"), "r+b") as f:
            f.seek(12 << 20)
            f.write(b"Z" * 100)
        got = len(body)
        deadline = time.monotonic() + 10
        for _ in range(100000):
            if time.monotonic() > deadline:
                break
            try:
                chunk = c.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
        # The headers described the old version: the response must not complete.
        self.assertLess(got, size)
        self.assertGreater(got, 1 << 20)
        r = self.get("/moving.bin", [("Range", "bytes=%d-%d" % (12 << 20, (12 << 20) + 3))])
        self.assertEqual((r.status, r.body), (206, b"ZZZZ"))

    def test_aborts_of_a_changing_file_are_logged_once_a_second_with_a_count(self):
        size, clients = 16 << 20, 10
        self.site.write("busy.bin", bytes(range(256)) * (size // 256), mtime=FIXED_MTIME)
        srv = self.start_server()
        conns = []
        for _ in range(clients):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.settimeout(10)
            self.addCleanup(c.close)
            c.connect(("127.0.0.1", srv.port))
            c.sendall(get_request("/busy.bin"))
            self.assertIn(b"200 OK", c.recv(65536))
            conns.append(c)
        with open(self.site.path("busy.bin"), "r+b") as f:
            f.seek(size // 2)
            f.write(b"Z" * 100)
        t0 = time.monotonic()
        aborted = 0
        for c in conns:
            got = 0
            for _ in range(100000):
                try:
                    chunk = c.recv(1 << 20)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                got += len(chunk)
            aborted += got < size
            c.close()
        elapsed = time.monotonic() - t0
        self.assertEqual(aborted, clients)
        self.assertEqual(srv.stop(), 0)
        logged = re.findall(r"notmod: /busy\.bin changed while being sent; response aborted$",
                            srv.stderr(), re.M)
        counts = [int(n) for n in re.findall(
            r"notmod: /busy\.bin: (\d+) more responses aborted: the file changed while being "
            r"sent$", srv.stderr(), re.M)]
        self.assertGreaterEqual(len(logged), 1, srv.stderr()[-2000:])
        self.assertLessEqual(len(logged), 2 + int(elapsed), srv.stderr()[-2000:])
        self.assertEqual(len(logged) + sum(counts), aborted, srv.stderr()[-2000:])

    def test_file_replaced_by_a_directory_redirects(self):
        self.site.write("morph", b"a file\n")
        self.assertEqual(self.get("/morph").status, 200)
        os.remove(self.site.path("morph"))
        self.site.write("morph/index.html", b"now a dir\n")
        r = self.get("/morph")
        self.assertEqual((r.status, r.header("Location")), (301, "/morph/"))
        self.assertEqual(self.get("/morph/").body, b"now a dir\n")


OLD_BYTES = bytes(range(256)) * 1024  # 256 KiB: hashed off the loop, its hash persisted
NEW_BYTES = bytes(reversed(range(256))) * 1024
FIXED_MTIME = 1700000000


@require_binary
class StaleHashes(ServerTestCase):
    """A same-size rewrite that restores the mtime (cp -p over a file, touch -r, a deploy tool
    keeping timestamps) changes only the ctime. The bytes differ, so the content ETag must."""

    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")

    def assert_never_old_tag_with_new_body(self, port, path, old_tag):
        new_tag = None
        deadline = time.monotonic() + 10
        for _ in range(200):
            r = fetch(port, path)
            self.assertEqual(r.body, NEW_BYTES)
            self.assertNotEqual(r.header("ETag"), old_tag,
                                "new bytes served under the ETag of the old bytes")
            new_tag = r.header("ETag")
            if new_tag or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertIsNotNone(new_tag)
        r = fetch(port, path, [("If-None-Match", old_tag)])
        self.assertEqual((r.status, r.body), (200, NEW_BYTES))

    def test_rewrite_keeping_size_and_mtime_gets_a_new_tag_while_serving(self):
        p = self.site.write("same.bin", OLD_BYTES, mtime=FIXED_MTIME)
        tagged = self.get_with_etag("/same.bin")
        self.assertEqual(tagged.body, OLD_BYTES)
        old_tag = tagged.header("ETag")
        self.assertIsNotNone(old_tag)
        time.sleep(0.5)  # let the hash be stored beside the file
        self.site.write("same.bin", NEW_BYTES, mtime=FIXED_MTIME)
        self.assertEqual(os.stat(p).st_mtime, FIXED_MTIME)
        self.assert_never_old_tag_with_new_body(self.port, "/same.bin", old_tag)

    def test_rewrite_keeping_size_and_mtime_while_stopped_gets_a_new_tag_after_restart(self):
        self.site.write("restart.bin", OLD_BYTES, mtime=FIXED_MTIME)
        first = self.start_server()
        old_tag = None
        for _ in range(100):
            r = fetch(first.port, "/restart.bin")
            old_tag = r.header("ETag")
            if old_tag:
                break
            time.sleep(0.1)
        self.assertIsNotNone(old_tag)
        time.sleep(0.5)
        self.assertEqual(first.stop(), 0)
        self.site.write("restart.bin", NEW_BYTES, mtime=FIXED_MTIME)
        second = self.start_server()
        self.assert_never_old_tag_with_new_body(second.port, "/restart.bin", old_tag)


@require_binary
class Shutdown(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        cls.site.write("alive.txt", b"alive\n")
        block = bytes((i * 13 + 5) % 256 for i in range(1 << 20))
        cls.big = block * (BIG_BYTES >> 20)
        cls.big_sha = hashlib.sha256(cls.big).hexdigest()
        cls.site.write("big.bin", cls.big)

    @classmethod
    def tearDownClass(cls):
        cls.site.cleanup()

    def start(self, options=()):
        srv = NotmodServer(self.site.root, options).start()
        self.addCleanup(srv.stop)
        return srv

    def finish(self, srv, deadline):
        status = srv.wait(deadline)
        srv.stop()
        self.assertEqual(srv.sanitizer_report(), "")
        return status

    def assert_refused(self, port, timeout=3.0):
        def refused():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
            except (ConnectionRefusedError, ConnectionResetError):
                return True
            except socket.timeout:
                return False
            s.close()
            return False
        self.assertTrue(wait_until(refused, timeout, 0.1), "new connections still accepted")

    def test_download_in_flight_completes_after_sigterm_and_the_process_exits_0(self):
        srv = self.start()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.settimeout(10)
        c.connect(("127.0.0.1", srv.port))
        self.addCleanup(c.close)
        c.sendall(get_request("/big.bin"))
        data = b""
        for _ in range(1000):
            if b"\r\n\r\n" in data:
                break
            data += c.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200 OK", head)
        self.assertIn(b"Content-Length: %d" % BIG_BYTES, head)
        chunks = [body]
        got = len(body)
        for _ in range(40):  # read slowly: about 1 MiB in 0.5 s
            chunks.append(c.recv(32768))
            got += len(chunks[-1])
            time.sleep(0.01)
        self.assertLess(got, BIG_BYTES // 2)

        srv.signal(signal.SIGTERM)
        self.assert_refused(srv.port)
        self.assertTrue(srv.is_running(), "exited before the download finished")

        deadline = time.monotonic() + 8
        for _ in range(100000):
            if got >= BIG_BYTES or time.monotonic() > deadline:
                break
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        self.assertEqual(got, BIG_BYTES)
        self.assertEqual(hashlib.sha256(b"".join(chunks)).hexdigest(), self.big_sha)
        self.assertEqual(c.recv(1), b"")  # closed after the response
        t0 = time.monotonic()
        self.assertEqual(self.finish(srv, 10), 0)
        self.assertLess(time.monotonic() - t0, 5)

    def test_idle_connections_do_not_delay_shutdown(self):
        srv = self.start()
        idle = Conn(srv.port)
        self.addCleanup(idle.close)
        self.assertEqual(idle.request(get_request("/alive.txt")).status, 200)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(self.finish(srv, 10), 0)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(idle.is_closed_by_peer(1))

    def test_sigint_stops_and_sighup_does_not(self):
        srv = self.start()
        srv.signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertTrue(srv.is_running())
        self.assertEqual(fetch(srv.port, "/alive.txt").status, 200)
        srv.signal(signal.SIGINT)
        self.assertEqual(self.finish(srv, 10), 0)

    def test_stalled_download_is_dropped_at_the_shutdown_deadline(self):
        srv = self.start()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.settimeout(10)
        c.connect(("127.0.0.1", srv.port))
        self.addCleanup(c.close)
        c.sendall(get_request("/big.bin"))
        self.assertIn(b"200 OK", c.recv(4096))
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        status = self.finish(srv, 20)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 0)
        self.assertGreater(elapsed, 5)
        self.assertLess(elapsed, 16)


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@require_binary
class CommandLine(unittest.TestCase):
    def setUp(self):
        self.site = Site()
        self.site.write("alive.txt", b"alive\n")
        self.addCleanup(self.site.cleanup)

    @unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_listen_address(self):
        srv = NotmodServer(self.site.root, listen="[::1]:0").start()
        self.addCleanup(srv.stop)
        self.assertIn("http://[::1]:%d/" % srv.port, srv.startup_line)
        with Conn(srv.port, host="::1") as c:
            r = c.request(get_request("/alive.txt", host="[::1]"))
        self.assertEqual((r.status, r.body), (200, b"alive\n"))
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.sanitizer_report(), "")

    def test_startup_line_names_the_directory_and_address(self):
        srv = NotmodServer(self.site.root).start()
        self.addCleanup(srv.stop)
        self.assertTrue(srv.startup_line.startswith(
            "notmod: serving %s on http://127.0.0.1:%d/" % (os.path.realpath(self.site.root),
                                                           srv.port)), srv.startup_line)
        self.assertEqual(srv.stop(), 0)

    def test_bad_options_exit_2_with_a_message(self):
        cases = [
            (["--bogus"], "unknown option '--bogus'"),
            (["--etag", "sha1"], "--etag wants"),
            (["--etag", "version:"], "--etag version:STRING wants"),
            (["--etag", 'version:a"b'], "--etag version:STRING wants"),
            (["--if-modified-since", "sometimes"], "--if-modified-since wants"),
            (["--workers", "0"], "--workers wants"),
            (["--workers", "many"], "--workers wants"),
            (["--max-age", "-5"], "--max-age wants"),
            (["--cache-control", "noequals"], "--cache-control wants"),
            (["--cache-control", "*.css=a\tb"], "--cache-control wants"),
            (["--index", "a/b.html"], "--index wants"),
            (["--dotfiles", "maybe"], "--dotfiles wants"),
            (["--follow-symlinks", "some"], "--follow-symlinks wants"),
            (["--log-format", "xml"], "--log-format wants"),
            (["--listen"], "needs a value"),
            (["--header-timeout", "0"], "--header-timeout wants"),
            (["--idle-timeout", "1.5"], "--idle-timeout wants"),
            (["--send-timeout", "86401"], "--send-timeout wants"),
            ([self.site.root, self.site.root], "serve takes one directory"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = run_cli("serve", *args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertEqual(p.stdout, "")

    def test_missing_directory_exits_1_with_a_message(self):
        missing = os.path.join(self.site.base, "no-such-dir")
        p = run_cli("serve", "--listen", "127.0.0.1:0", missing)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot serve %s" % missing, p.stderr)
        self.assertIn("No such file or directory", p.stderr)

    def test_file_as_directory_exits_1(self):
        p = run_cli("serve", "--listen", "127.0.0.1:0", self.site.path("alive.txt"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("Not a directory", p.stderr)

    def test_invalid_listen_address_exits_2_with_a_message(self):
        for addr in ("nohost", "127.0.0.1:99999", "[::1:80", "[localhost]:80", "1.2.3.4:"):
            with self.subTest(addr=addr):
                p = run_cli("serve", "--listen", addr, self.site.root)
                self.assertEqual(p.returncode, 2)
                self.assertIn("invalid listen address '%s'" % addr, p.stderr)

    def test_port_in_use_exits_1(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            p = run_cli("serve", "--listen", "127.0.0.1:%d" % port, self.site.root)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot listen on 127.0.0.1:%d: address already in use" % port, p.stderr)

    def other_site(self):
        other = Site()
        self.addCleanup(other.cleanup)
        other.write("alive.txt", b"the other site\n")
        return other

    def test_port_of_another_notmod_is_refused_and_keeps_all_its_requests(self):
        first = NotmodServer(self.site.root, ["--workers", "2"]).start()
        self.addCleanup(first.stop)
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                p = run_cli("serve", "--workers", workers, "--listen",
                            "127.0.0.1:%d" % first.port, self.other_site().root)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("cannot listen on 127.0.0.1:%d: address already in use"
                              % first.port, p.stderr)
                self.assertEqual(p.stdout, "")
        for _ in range(10):
            self.assertEqual(fetch(first.port, "/alive.txt").body, b"alive\n")
        self.assertEqual(first.stop(), 0)
        self.assertEqual(first.sanitizer_report(), "")

    def test_wildcard_address_over_a_notmod_on_loopback_is_refused(self):
        first = NotmodServer(self.site.root, ["--workers", "2"]).start()
        self.addCleanup(first.stop)
        p = run_cli("serve", "--listen", "0.0.0.0:%d" % first.port, self.other_site().root)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on 0.0.0.0:%d: address already in use" % first.port,
                      p.stderr)

    @unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_port_of_another_notmod_is_refused(self):
        first = NotmodServer(self.site.root, ["--workers", "2"], listen="[::1]:0").start()
        self.addCleanup(first.stop)
        p = run_cli("serve", "--listen", "[::1]:%d" % first.port, self.other_site().root)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on [::1]:%d: address already in use" % first.port, p.stderr)

    def test_socket_that_joins_a_multi_worker_server_later_gets_no_connections(self):
        # What another program (or an older notmod) does with SO_REUSEPORT under the same user:
        # the kernel lets it in the group, and the group must not hand it connections.
        srv = NotmodServer(self.site.root, ["--workers", "3"]).start()
        self.addCleanup(srv.stop)
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.bind(("127.0.0.1", srv.port))
            intruder.listen(64)
            for _ in range(30):
                r = fetch(srv.port, "/alive.txt")
                self.assertEqual((r.status, r.body), (200, b"alive\n"))
            intruder.setblocking(False)
            self.assertRaises(BlockingIOError, intruder.accept)
        self.assertEqual(srv.stop(), 0)

    def test_multi_worker_server_on_port_0_serves_on_one_port(self):
        srv = NotmodServer(self.site.root, ["--workers", "4"]).start()
        self.addCleanup(srv.stop)
        conns = [Conn(srv.port) for _ in range(16)]
        try:
            for c in conns:
                r = c.request(get_request("/alive.txt"))
                self.assertEqual((r.status, r.body), (200, b"alive\n"))
        finally:
            for c in conns:
                c.close()
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.sanitizer_report(), "")

    def test_listen_on_a_host_name_binds_every_address_it_resolves_to(self):
        wanted = set()
        for family, _, _, _, addr in socket.getaddrinfo("localhost", None, socket.AF_UNSPEC,
                                                        socket.SOCK_STREAM):
            if family == socket.AF_INET or (family == socket.AF_INET6 and have_ipv6_loopback()):
                wanted.add(addr[0])
        srv = NotmodServer(self.site.root, ["--workers", "2"], listen="localhost:0").start()
        self.addCleanup(srv.stop)
        urls = re.findall(r"http://(\[[0-9a-f:]+\]|[0-9.]+):(\d+)/", srv.startup_line)
        self.assertEqual({h.strip("[]") for h, _ in urls}, wanted, srv.startup_line)
        self.assertEqual(len(urls), len(wanted), srv.startup_line)
        self.assertEqual({int(p) for _, p in urls}, {srv.port}, "one port for every address")
        for host in wanted:
            with Conn(srv.port, host=host) as c:
                r = c.request(get_request("/alive.txt"))
            self.assertEqual((r.status, r.body), (200, b"alive\n"), host)
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.sanitizer_report(), "")

    def test_host_name_that_does_not_resolve_is_refused_with_a_message(self):
        p = run_cli("serve", "--listen", "nosuch.invalid:8080", self.site.root)
        # A name that does not exist is a bad value (2); a resolver that cannot answer, a
        # failure (1).
        self.assertEqual(p.returncode, 1 if "emporary failure" in p.stderr else 2, p.stderr)
        self.assertIn("cannot resolve 'nosuch.invalid' in listen address 'nosuch.invalid:8080'",
                      p.stderr)
        self.assertEqual(p.stdout, "")

    def test_abbreviated_options_are_unknown(self):
        # A missing directory makes a server that took them fail at once instead of serving.
        missing = os.path.join(self.site.base, "no-such-dir")
        for args, name in ((["--max", "5"], "--max"), (["--header", "X: y"], "--header"),
                           (["--list"], "--list"), (["--work=2"], "--work"),
                           (["--quie"], "--quie"), (["--no-pre"], "--no-pre")):
            with self.subTest(args=args):
                p = run_cli("serve", "--listen", "127.0.0.1:0", *args, missing)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("notmod serve: unknown option '%s'" % name, p.stderr)
                self.assertEqual(p.stdout, "")

    def test_startup_line_is_on_stderr_and_stdout_is_the_access_log(self):
        srv = NotmodServer(self.site.root, ["--access-log", "-"]).start()
        self.addCleanup(srv.stop)
        self.assertTrue(srv.startup_line.startswith("notmod: serving "))
        self.assertEqual(fetch(srv.port, "/alive.txt").status, 200)
        out = b""
        deadline = time.monotonic() + 10
        for _ in range(1000):
            if b"\n" in out or time.monotonic() > deadline:
                break
            ready, _, _ = select.select([srv.proc.stdout], [], [], 0.1)
            if ready:
                out += os.read(srv.proc.stdout.fileno(), 4096)
        self.assertRegex(out.decode(errors="replace"), r'^127\.0\.0\.1 - - \[.*\] "GET /alive\.txt')
        self.assertEqual(srv.stop(), 0)
        self.assertIn(srv.startup_line, srv.stderr())

    def test_quiet_also_silences_the_hashing_counters(self):
        self.site.write("more.txt", b"more\n")
        for quiet in (False, True):
            with self.subTest(quiet=quiet):
                p = subprocess.Popen([NOTMOD, "serve", "--listen", "127.0.0.1:0",
                                      *(["-q"] if quiet else ["--access-log", "off"]),
                                      self.site.root],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     env=dict(os.environ, CACHE_DIRECTORY=etag_store_for_tests()))
                try:
                    # SIGTERM before the server blocks it would kill it outright.
                    wait_until(lambda: p.poll() is not None or blocks_sigterm(p.pid), 20, 0.02)
                    time.sleep(0.5)
                    p.send_signal(signal.SIGTERM)
                    out, err = p.communicate(timeout=15)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.communicate(timeout=5)
                self.assertEqual(p.returncode, 0, err)
                self.assertEqual(out, b"")
                if quiet:
                    self.assertEqual(err, b"")
                else:
                    self.assertIn(b"notmod: hashing at shutdown: ", err)

    def test_json_access_log_keeps_utf8_and_escapes_other_bytes_reversibly(self):
        log = os.path.join(self.site.base, "access.json")
        srv = NotmodServer(self.site.root, ["--log-format", "json", "--access-log", log]).start()
        self.addCleanup(srv.stop)
        agent = b'caf\xc3\xa9 \xe2\x82\xac \xff\xfe\xc3 "q" \\'
        referer = b"http://example.com/\xd0\xbf\xd1\x83\xd1\x82\xc0\xaf"
        with Conn(srv.port) as c:
            r = c.request(b"GET /alive.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent +
                          b"\r\nReferer: " + referer + b"\r\n\r\n")
        self.assertEqual(r.status, 200)

        def logged():
            with open(log, "rb") as f:
                return f.read()
        self.assertTrue(wait_until(lambda: logged().endswith(b"\n"), 10))
        line = logged().splitlines()[0]
        self.assertIn(b'"user_agent":"caf\xc3\xa9 \xe2\x82\xac \\udcff\\udcfe\\udcc3 \\"q\\" '
                      b'\\\\"', line)
        entry = json.loads(line.decode("utf-8"))
        self.assertEqual(entry["user_agent"].encode("utf-8", "surrogateescape"), agent)
        self.assertEqual(entry["referer"].encode("utf-8", "surrogateescape"), referer)
        self.assertEqual(entry["target"], "/alive.txt")
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.sanitizer_report(), "")

    def test_help_and_version_exit_0(self):
        p = run_cli("serve", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: notmod serve", p.stdout)
        p = run_cli("serve", "--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^notmod \d+\.\d+\.\d+")


if __name__ == "__main__":
    unittest.main()
