"""The batched sends of --io-uring on give the same exchanges as one system call per connection
(--io-uring off): keep-alive 200s and 304s on many connections at once, pipelined requests, a
queue larger than the socket buffer read slowly, a client that half-closes after its request, a
client that vanishes mid-response; and the option and the config key."""

import os
import socket
import struct
import threading
import tempfile
import time
import unittest

from launch import (Conn, NotmodServer, Site, get_request, require_binary, run, wait_until)

N_CONNS = 48
ROUNDS = 3
SMALL = 40


def normalized(resp):
    """What must not differ between the two modes: all but the Date field."""
    return (resp.status, [(n, v) for n, v in resp.headers if n.lower() != "date"], resp.body)


def etag_and_date(port, path, method="GET"):
    with Conn(port) as c:
        r = c.request(get_request(path, method=method), head_request=(method == "HEAD"))
        return r.header("ETag"), r.header("Last-Modified")


@require_binary
class SameExchangesTest(unittest.TestCase):
    """Each exchange is run against a server with --io-uring on and one with --io-uring off; the
    responses (Date aside) must be the same."""

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        for i in range(SMALL):
            cls.site.write("f%d.txt" % i, (b"file %d " % i) * (20 + 37 * i), mtime=1700000000)
        # Held in memory (64 KiB or less), so a pipelined run of them is memory-only output.
        cls.site.write("mid.bin", os.urandom(60 * 1024), mtime=1700000000)
        cls.site.write("large.bin", os.urandom(3 * 1024 * 1024), mtime=1700000000)
        cls.site.write("alive.txt", b"alive\n", mtime=1700000000)
        cls.servers = {}
        try:
            for mode in ("on", "off"):
                cls.servers[mode] = NotmodServer(cls.site.root,
                                                 ["--io-uring", mode, "--workers", "2"]).start()
                # The large file is hashed off the event loop: sent untagged until then.
                port = cls.servers[mode].port
                if not wait_until(lambda: etag_and_date(port, "/large.bin", "HEAD")[0], 30, 0.1):
                    raise AssertionError("no ETag for /large.bin within 30 s")
        except BaseException:
            for srv in cls.servers.values():
                srv.stop()
            cls.site.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for srv in cls.servers.values():
                srv.stop_checked()
        finally:
            cls.site.cleanup()

    def both(self, exchange):
        """exchange(port) in both modes; its results must be equal, and are returned."""
        on = exchange(self.servers["on"].port)
        off = exchange(self.servers["off"].port)
        self.assertEqual(on, off)
        return on

    def assert_alive(self):
        for srv in self.servers.values():
            with Conn(srv.port) as c:
                self.assertEqual(c.request(get_request("/alive.txt")).body, b"alive\n")

    def test_keep_alive_200s_and_304s_on_many_connections_at_once(self):
        def exchange(port):
            validators = [etag_and_date(port, "/f%d.txt" % i) for i in range(SMALL)]
            conns = [Conn(port) for _ in range(N_CONNS)]
            out = []
            try:
                for rnd in range(ROUNDS):
                    # Every connection sends before any reads: one wake-up of the server finds
                    # many of them readable, and their answers leave in one batch.
                    sent = []
                    for k, c in enumerate(conns):
                        i = (k + rnd) % SMALL
                        etag, lm = validators[i]
                        kind = (k + rnd) % 3
                        headers = [(), [("If-None-Match", etag)],
                                   [("If-Modified-Since", lm)]][kind]
                        c.send(get_request("/f%d.txt" % i, headers))
                        sent.append(kind)
                    for c, kind in zip(conns, sent):
                        r = c.read_response()
                        self.assertEqual(r.status, 200 if kind == 0 else 304)
                        out.append(normalized(r))
            finally:
                for c in conns:
                    c.close()
            return out

        self.assertEqual(len(self.both(exchange)), N_CONNS * ROUNDS)

    def test_pipelined_requests_are_answered_in_order(self):
        def exchange(port):
            etag, _ = etag_and_date(port, "/f3.txt")
            reqs = []
            for i in range(24):
                reqs.append(get_request("/f%d.txt" % (i % SMALL),
                                        [("If-None-Match", etag)] if i % 2 else ()))
            reqs.append(get_request("/large.bin", method="HEAD"))
            reqs.append(get_request("/missing.txt"))
            with Conn(port) as c:
                c.send(b"".join(reqs))
                return [normalized(c.read_response(head_request=(i == 24)))
                        for i in range(len(reqs))]

        out = self.both(exchange)
        self.assertEqual(out[-1][0], 404)

    def slow_read(self, port, raw, n_responses):
        """Sends raw on a connection with a small receive buffer, then reads it slowly."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", port))
        c = Conn.__new__(Conn)
        c.sock, c.buf, c.eof = s, b"", False
        with c:
            c.send(raw)
            time.sleep(0.3)  # the server fills the socket and waits for it to drain
            out = []
            for _ in range(n_responses):
                r = c.read_response()
                out.append(normalized(r))
            return out

    def test_memory_output_larger_than_the_socket_buffer_reaches_a_slow_reader(self):
        raw = get_request("/mid.bin") * 40  # 2.4 MB of bodies held in memory
        out = self.both(lambda port: self.slow_read(port, raw, 40))
        self.assertEqual(len(out), 40)
        self.assertTrue(all(r[0] == 200 and len(r[2]) == 60 * 1024 for r in out))

    def test_a_file_body_after_memory_output_reaches_a_slow_reader(self):
        raw = get_request("/f1.txt") + get_request("/large.bin") + get_request("/f2.txt")
        out = self.both(lambda port: self.slow_read(port, raw, 3))
        self.assertEqual(len(out[1][2]), 3 * 1024 * 1024)

    def test_a_client_that_half_closes_after_its_requests_gets_every_answer_then_the_end(self):
        def exchange(port):
            with Conn(port) as c:
                c.send(get_request("/f5.txt") + get_request("/f6.txt"))
                c.sock.shutdown(socket.SHUT_WR)
                out = [normalized(c.read_response()), normalized(c.read_response())]
                out.append(c.is_closed_by_peer())
                return out

        self.assertTrue(self.both(exchange)[-1])

    def test_a_client_that_vanishes_mid_response_leaves_the_server_serving(self):
        def vanish(port):
            for k in range(8):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(5)
                s.connect(("127.0.0.1", port))
                s.sendall(get_request("/mid.bin") * 20 + get_request("/large.bin"))
                s.recv(1000 * (k + 1))
                # A reset, not an orderly end: the server's next send fails.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()

        threads = [threading.Thread(target=vanish, args=(srv.port,))
                   for srv in self.servers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assert_alive()


@require_binary
class OptionTest(unittest.TestCase):

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)

    def test_the_option_takes_on_or_off_only(self):
        r = run(["serve", "--io-uring", "maybe", self.site.root], text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("io-uring", r.stderr)

    def test_the_config_key_takes_on_or_off(self):
        for value, ok in (("on", True), ("off", True), ("yes", False)):
            fd, path = tempfile.mkstemp(suffix=".conf")
            self.addCleanup(os.unlink, path)
            with os.fdopen(fd, "w") as f:
                f.write('io_uring = "%s";\n' % value)
            r = run(["serve", "--check-config", "--config", path, self.site.root], text=True)
            self.assertEqual(r.returncode == 0, ok, r.stderr)
            if not ok:
                self.assertIn("io_uring wants off or on", r.stderr)

    def test_a_server_with_io_uring_off_serves(self):
        self.site.write("a.txt", b"a\n")
        srv = NotmodServer(self.site.root, ["--io-uring", "off"]).start()
        self.addCleanup(srv.stop_checked)
        with Conn(srv.port) as c:
            self.assertEqual(c.request(get_request("/a.txt")).body, b"a\n")
        self.assertTrue(wait_until(lambda: srv.is_running(), 1))


if __name__ == "__main__":
    unittest.main()
