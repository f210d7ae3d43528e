"""Faults the server meets and must come out of answering correctly: descriptors running out, an
access log that cannot take a line, a file truncated, grown, rewritten, renamed over or deleted
while a large body is being sent."""

import hashlib
import os
import resource
import socket
import threading
import time
import unittest

from launch import (Conn, NotmodServer, ProtocolError, Site, fetch, get_request,
                    process_cpu_seconds, process_fd_count, process_rss_bytes, require_binary,
                    serve_for_test, wait_until)

FD_LIMIT = 64
FLOOD = 200


def low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def open_many(port, n):
    """n connections to port, started without waiting for the server to accept them."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


@require_binary
class DescriptorExhaustionTest(unittest.TestCase):
    """RLIMIT_NOFILE at 64 and 200 clients that connect and hold: the server keeps a reserve of
    descriptors for files, so a connection opened before keeps being served, accepting does not
    spin at the limit, and new connections are served once the flood is gone."""

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        for i in range(20):
            self.site.write("small%d.txt" % i, b"small file %d\n" % i)
        self.large = os.urandom(300 * 1024)  # kept open by the file table while it is cached
        self.site.write("large.bin", self.large)
        self.srv = NotmodServer(self.site.root, ["--workers", "2"], preexec=low_fd_limit).start()
        self.addCleanup(self.srv.stop_checked)

    def test_a_connection_opened_before_a_flood_keeps_getting_files(self):
        pid = self.srv.proc.pid
        early = Conn(self.srv.port)
        self.addCleanup(early.close)
        self.assertEqual(early.request(get_request("/small0.txt")).status, 200)
        flood = open_many(self.srv.port, FLOOD)
        self.addCleanup(lambda: [s.close() for s in flood])
        # The server accepts what its bound allows; the rest wait in the listen backlog.
        wait_until(lambda: process_fd_count(pid) >= FD_LIMIT - 30, 5)
        time.sleep(0.5)
        fds_at_limit = process_fd_count(pid)
        statuses = []
        for i in range(20):
            r = early.request(get_request("/small%d.txt" % i))
            statuses.append(r.status)
            self.assertEqual(r.body, b"small file %d\n" % i)
        r = early.request(get_request("/large.bin"))
        statuses.append(r.status)
        self.assertEqual(statuses, [200] * 21)
        self.assertEqual(r.body, self.large)

        cpu0, t0 = process_cpu_seconds(pid), time.monotonic()
        time.sleep(3)
        cpu = (process_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        print("\ndescriptors: %d open of %d with %d clients connecting; CPU at the limit %.2f%%"
              % (fds_at_limit, FD_LIMIT, FLOOD, cpu * 100))
        self.assertLess(cpu, 0.05)
        self.assertIn("connections hold the descriptors", self.srv.stderr())

        for s in flood:
            s.close()
        flood.clear()
        served = wait_until(lambda: fetch(self.srv.port, "/small1.txt").status == 200, 10)
        self.assertTrue(served)
        # Once the flood is gone, many new connections in a row are served, each with a file.
        for i in range(FD_LIMIT * 2):
            self.assertEqual(fetch(self.srv.port, "/small%d.txt" % (i % 20)).status, 200)
        self.assertEqual(early.request(get_request("/small2.txt")).status, 200)


@require_binary
class AccessLogCapTest(unittest.TestCase):
    """Requests whose fields grow when escaped cannot push other requests out of the access log:
    each field is capped, and a line is never dropped without being counted."""

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        self.site.write("a.txt", b"a\n")
        self.log = os.path.join(self.site.base, "access.log")
        self.srv = serve_for_test(self, self.site.root, ["--access-log", self.log, "--workers",
                                                         "1"])

    def test_the_request_after_23_huge_escaped_ones_is_logged(self):
        huge = b"\xff" * 30000  # 120,000 bytes once escaped
        raw = b""
        for i in range(23):
            raw += (b"GET /a.txt?n=%d HTTP/1.1\r\nHost: x\r\nUser-Agent: " % i + huge +
                    b"\r\n\r\n")
        raw += get_request("/a.txt?n=23", [("User-Agent", "the-24th-request")])
        with Conn(self.srv.port) as c:
            c.send(raw)
            for _ in range(24):
                self.assertEqual(c.read_response().status, 200)

        def lines():
            with open(self.log, "rb") as f:
                return f.read().splitlines()
        wait_until(lambda: len(lines()) >= 24, 5)
        got = lines()
        self.assertEqual(len(got), 24)
        self.assertIn(b"the-24th-request", got[-1])
        longest = max(len(line) for line in got)
        self.assertLess(longest, 16384)
        self.assertTrue(got[0].endswith(b'\\..."'), got[0][-40:])
        print("\naccess log: 24 of 24 lines written, longest %d bytes" % longest)
        self.assertNotIn("lines dropped", self.srv.stderr())


BIG = 64 << 20


@require_binary
class ChangeMidSendTest(unittest.TestCase):
    """A 64 MiB file changes while a slow reader is in its first megabyte: truncated to zero,
    grown, rewritten in place, deleted, or replaced by a rename. A body that arrives whole is the
    version its ETag names (the content hash of the original bytes); a changed file ends the
    transfer short of its Content-Length, so no client keeps bytes under a tag that lies."""

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        cls.original = os.urandom(1 << 20) * 64  # 64 MiB, written once per test
        cls.original_sha = hashlib.sha256(cls.original).digest()
        cls.srv = NotmodServer(cls.site.root, ["--workers", "1"]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop_checked()
        finally:
            cls.site.cleanup()

    def transfer(self, name, change):
        """GETs /name with a small receive buffer, reads 1 MiB slowly, calls change(path), then
        reads to the end. Returns (Content-Length, ETag, body, complete)."""
        path = self.site.write(name, self.original) or self.site.path(name)
        # The content hash comes from the pool: wait until the server sends it.
        tag = wait_until(lambda: fetch(self.srv.port, "/" + name, method="HEAD")
                         .header("ETag"), 20)
        self.assertTrue(tag, "no ETag for the large file")
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(get_request("/" + name))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "no head")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        length = int(fields[b"Content-Length"])
        etag = fields.get(b"ETag", b"").decode()
        self.assertEqual(length, BIG)
        self.assertEqual(etag, tag)
        parts = [body]
        got = len(body)
        while got < (1 << 20):
            chunk = s.recv(4096)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            time.sleep(0.0005)
        change(path)
        while got < length:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        s.close()
        body = b"".join(parts)
        return length, etag, body, len(body) == length

    def check(self, name, change, may_complete, keeps_prefix=True):
        length, etag, body, complete = self.transfer(name, change)
        if complete:
            self.assertTrue(may_complete, "%s: a whole body arrived after the change" % name)
            self.assertEqual(hashlib.sha256(body).digest(), self.original_sha,
                             "%s: a whole body under %s that is not the original" % (name, etag))
        else:
            self.assertLess(len(body), length)
            if keeps_prefix:  # nothing overwrote the bytes that did arrive
                self.assertTrue(body == self.original[:len(body)], name)
        print("\n%s: %s after %d of %d bytes" % (name, "whole" if complete else "cut",
                                                  len(body), length))
        self.assertEqual(fetch(self.srv.port, "/small.txt").status, 200)
        return complete

    def setUp(self):
        self.site.write("small.txt", b"still here\n")

    def test_truncated_to_zero_mid_send_cuts_the_transfer(self):
        self.check("trunc.bin", lambda p: os.truncate(p, 0), may_complete=False)

    def test_grown_mid_send_cuts_the_transfer(self):
        def grow(p):
            with open(p, "ab") as f:
                f.write(b"more bytes at the end\n" * 1000)
        self.check("grow.bin", grow, may_complete=False)

    def test_rewritten_in_place_mid_send_cuts_the_transfer(self):
        def rewrite(p):
            with open(p, "r+b") as f:
                f.seek(BIG // 2)
                f.write(b"x" * 65536)
        self.check("rewrite.bin", rewrite, may_complete=False, keeps_prefix=False)

    def test_deleted_mid_send_sends_the_open_version(self):
        self.assertTrue(self.check("unlink.bin", os.unlink, may_complete=True))

    def test_renamed_over_mid_send_sends_the_open_version(self):
        def replace(p):
            tmp = p + ".new"
            with open(tmp, "wb") as f:
                f.write(b"the new version\n")
            os.replace(tmp, p)
        self.assertTrue(self.check("rename.bin", replace, may_complete=True))
        self.assertEqual(fetch(self.srv.port, "/rename.bin").body, b"the new version\n")


@require_binary
class ListingCostTest(unittest.TestCase):
    """A directory of 19,000 entries: a listing is rendered once per directory version (and
    second), so 200 pipelined HEADs of it do not hold a worker for seconds while another client
    waits, and clients that do not read its 3 MB page share one page rather than each holding a
    copy."""

    ENTRIES = 19000

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        cls.site.write("small.txt", b"small\n")
        huge = cls.site.path("huge")
        os.mkdir(huge)
        for i in range(cls.ENTRIES):
            with open(os.path.join(huge, "entry-with-a-longish-name-%06d.txt" % i), "wb"):
                pass
        cls.srv = NotmodServer(cls.site.root, ["--list-dirs", "--workers", "1"]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop_checked()
        finally:
            cls.site.cleanup()

    def test_pipelined_heads_of_a_huge_listing_leave_other_clients_served(self):
        port = self.srv.port
        self.assertEqual(fetch(port, "/huge/").status, 200)
        latencies = []
        done = threading.Event()

        def other_client():
            with Conn(port) as c:
                for _ in range(2000):
                    if done.is_set():
                        break
                    t = time.monotonic()
                    self.assertEqual(c.request(get_request("/small.txt")).status, 200)
                    latencies.append(time.monotonic() - t)
                    time.sleep(0.01)

        other = threading.Thread(target=other_client)
        other.start()
        t0 = time.monotonic()
        with Conn(port, timeout=60) as c:
            c.send(get_request("/huge/", method="HEAD") * 200)
            statuses = [c.read_response(head_request=True).status for _ in range(200)]
        took = time.monotonic() - t0
        time.sleep(0.2)
        done.set()
        other.join(30)
        self.assertEqual(statuses, [200] * 200)
        worst = max(latencies)
        print("\nlistings: 200 pipelined HEAD of a %d-entry directory in %.2f s; the other "
              "client's worst latency %.0f ms over %d requests"
              % (self.ENTRIES, took, worst * 1000, len(latencies)))
        # One render costs about 1 s in the sanitizer build: the bound is a few renders, where
        # rendering for every request took minutes.
        self.assertLess(took, 15.0)
        self.assertLess(worst, 3.0)

    def test_clients_that_do_not_read_a_huge_listing_share_one_page(self):
        port = self.srv.port
        pid = self.srv.proc.pid
        page = fetch(port, "/huge/").body
        self.assertGreater(len(page), 2 << 20)
        before = process_rss_bytes(pid)
        socks = []
        try:
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(get_request("/huge/"))
                socks.append(s)
            time.sleep(2)
            after = process_rss_bytes(pid)
            self.assertEqual(fetch(port, "/small.txt").status, 200)
        finally:
            for s in socks:
                s.close()
        grown = (after - before) / 1e6
        print("\nlistings: RSS %.1f -> %.1f MB with 100 clients not reading a %.1f MB listing"
              % (before / 1e6, after / 1e6, len(page) / 1e6))
        self.assertLess(grown, 40)


def is_sanitized(binary):
    """Whether binary is a sanitizer build, where RLIMIT_AS cannot be used (its shadow memory
    reserves terabytes of address space)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def vm_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


@require_binary
class MemoryPressureTest(unittest.TestCase):
    """Under a memory limit the server gives memory back (its file table lets the coldest files
    go) or answers 503 for the moment, and keeps answering: never an abort. The limit is
    RLIMIT_AS in a release build; a sanitizer build reserves terabytes of address space, so there
    the limit is the sanitizer's own soft RSS limit, past which its malloc returns NULL
    (allocator_may_return_null) as a failing malloc would. Either way it is the size the server
    has once started and warmed up, plus 16 MB, while 24 MB of small files (held in memory once
    read) and their compressed variants are asked for."""

    FILES = 400

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        self.bodies = {}
        for i in range(self.FILES):
            body = (b"%05d " % i) + os.urandom(30 * 1024).hex().encode()[:60 * 1024 - 6]
            self.bodies["/f%03d.txt" % i] = body
            self.site.write("f%03d.txt" % i, body)
        self.options = ["--workers", "1", "--compress-cache", "1048576"]

    def limited_server(self):
        binary = os.environ["NOTMOD"]
        if not is_sanitized(binary):
            # One malloc arena: a thread's arena reserves 64 MB of address space up front, in
            # which it would grow without ever meeting the limit.
            os.environ["MALLOC_ARENA_MAX"] = "1"
            self.addCleanup(os.environ.pop, "MALLOC_ARENA_MAX", None)
        probe = NotmodServer(self.site.root, self.options).start()
        try:
            for path in list(self.bodies)[:5]:
                fetch(probe.port, path)
            pid = probe.proc.pid
            size_kb = vm_kb(pid, "VmRSS" if is_sanitized(binary) else "VmSize")
        finally:
            probe.stop()
        limit = size_kb * 1024 + (16 << 20)
        if is_sanitized(binary):
            old = os.environ.get("ASAN_OPTIONS")
            os.environ["ASAN_OPTIONS"] = "allocator_may_return_null=1:soft_rss_limit_mb=%d:" \
                "detect_leaks=0:quarantine_size_mb=1" % (limit >> 20)
            try:
                srv = NotmodServer(self.site.root, self.options).start()
            finally:
                if old is None:
                    del os.environ["ASAN_OPTIONS"]
                else:
                    os.environ["ASAN_OPTIONS"] = old
            how = "soft RSS limit %d MB" % (limit >> 20)
        else:
            srv = NotmodServer(self.site.root, self.options,
                               preexec=lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                                  (limit, limit))).start()
            how = "RLIMIT_AS %d MB" % (limit >> 20)
        self.addCleanup(srv.stop)
        return srv, how

    def test_the_server_keeps_answering_under_a_memory_limit(self):
        srv, how = self.limited_server()
        counts = {}
        tags = {}
        with Conn(srv.port, timeout=30) as c:
            for rnd in range(3):
                for path, body in self.bodies.items():
                    headers = [("Accept-Encoding", "gzip")] if rnd == 1 else []
                    if rnd == 2 and path in tags:
                        headers.append(("If-None-Match", tags[path]))
                    r = c.request(get_request(path, headers))
                    counts[r.status] = counts.get(r.status, 0) + 1
                    self.assertIn(r.status, (200, 304, 503), path)
                    if r.status == 200 and r.header("Content-Encoding") is None:
                        self.assertEqual(r.body, body, path)
                        if r.header("ETag"):
                            tags[path] = r.header("ETag")
                    if r.status == 304:
                        self.assertEqual(r.header("ETag"), tags[path])
        self.assertTrue(srv.is_running())
        peak = vm_kb(srv.proc.pid, "VmHWM") >> 10
        # A new connection is answered, or closed at once when even its buffer cannot be had:
        # never left waiting.
        fresh = []
        for _ in range(3):
            try:
                r = fetch(srv.port, "/f000.txt")
                fresh.append(r.status)
                if r.status == 200:
                    self.assertEqual(r.body, self.bodies["/f000.txt"])
            except ProtocolError:
                fresh.append("closed")
        self.assertTrue(set(fresh) <= {200, 503, "closed"}, fresh)
        status = srv.stop()
        err = srv.stderr()
        print("\nmemory: under %s, %r, then new connections %r; peak RSS %d MB"
              % (how, counts, fresh, peak))
        self.assertEqual(status, 0, err[-3000:])
        self.assertNotIn("ERROR: AddressSanitizer", err)
        self.assertNotIn("runtime error:", err)
        if is_sanitized(os.environ["NOTMOD"]):
            # The sanitizer's allocator keeps what was freed, so its RSS stays past the limit
            # once reached, and every allocation fails from then on: 503s, served correctly.
            self.assertGreater(counts.get(200, 0), self.FILES // 2)
        else:
            # Letting the coldest files go makes room: most requests are answered in full.
            self.assertGreater(counts.get(200, 0) + counts.get(304, 0), self.FILES * 2)
            self.assertEqual(fresh, [200] * 3)


if __name__ == "__main__":
    unittest.main()
