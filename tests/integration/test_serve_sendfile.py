"""Large bodies by sendfile under a read lease (docs/etags.md, "Large bodies by sendfile under a
read lease"): a writer's open breaks the lease and returns at once, the responses sending the
file by sendfile are cut, the next request gets the new bytes under a new tag; without a lease
(--sendfile off, or a server running as nobody over root's files) the body is copied and
checked as before."""

import os
import socket
import threading
import time
import unittest

from launch import (Conn, NotmodServer, ProtocolError, Site, fetch, get_request, read_leases,
                    require_binary, serve_for_test, shared_tempdir, write_file)

SIZE = 8 << 20
OLD = time.time() - 3600  # a settled version: hashed at once, not racy
WRITER_BOUND_S = 3.0      # a writer's open returns within this, not lease-break-time (45 s)
# Below SIZE: a version written a moment ago (racy) is then hashed by the pool rather than held in
# memory whole, so it is served from its descriptor, the path under test.
THRESHOLD = str(4 << 20)


def body_of(n, seed):
    """n bytes that differ at every 64-byte block from those of another seed."""
    block = bytes((seed * 7 + i) % 251 for i in range(64))
    return (block * (n // 64 + 1))[:n]


class SlowReader:
    """A client that asks for path with a small receive buffer and reads only the head and the
    first bytes, so that the rest of the body waits in the server's socket."""

    def __init__(self, port, path):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(get_request(path))
        self.data = b""
        while b"\r\n\r\n" not in self.data and len(self.data) < 65536:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.data += chunk
        head, _, self.body = self.data.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    def read_rest(self, timeout=20.0):
        """Reads to the end (EOF or reset) within timeout; returns the body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            self.body += chunk
        self.sock.close()
        return self.body


def tagged(port, path, timeout=15.0):
    """GET path once its response carries an ETag (a version changed a moment ago is hashed off
    the event loop and served without one meanwhile)."""
    deadline = time.monotonic() + timeout
    r = fetch(port, path)
    while r.status == 200 and not r.has("ETag") and time.monotonic() < deadline:
        time.sleep(0.1)
        r = fetch(port, path)
    return r


def timed(action):
    t = time.monotonic()
    action()
    return time.monotonic() - t


def rewrite_in_place(path, data):
    """Opens path for writing (no truncation) and writes data over it; returns the seconds the
    open took."""
    fd = None

    def do_open():
        nonlocal fd
        fd = os.open(path, os.O_WRONLY)

    took = timed(do_open)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    return took


@require_binary
class SendfileUnderLeaseTest(unittest.TestCase):
    """--sendfile all: spliced to this loopback client too, and cut when the lease breaks."""

    OPTIONS = ("--workers", "1", "--hash-threshold", THRESHOLD, "--sendfile", "all")

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        self.old = body_of(SIZE, 1)
        self.path = self.site.write("big.bin", self.old, mtime=OLD)
        self.server = serve_for_test(self, self.site.root, self.OPTIONS)

    def start_slow_reader(self):
        r = tagged(self.server.port, "/big.bin")
        self.assertEqual(r.body, self.old)
        reader = SlowReader(self.server.port, "/big.bin")
        self.assertIn(" 200 ", reader.head.split("\r\n")[0])
        self.assertEqual(reader.header("ETag"), r.header("ETag"))
        time.sleep(0.3)  # the server fills its socket and waits for the reader
        return reader, r.header("ETag")

    def test_a_served_large_file_is_held_under_a_read_lease(self):
        tagged(self.server.port, "/big.bin")
        leases = read_leases(self.path)
        self.assertIn((self.server.proc.pid, "READ"), leases)

    def test_a_writer_breaks_the_lease_at_once_and_the_response_in_flight_is_cut(self):
        reader, old_tag = self.start_slow_reader()
        new = body_of(SIZE, 2)
        took = rewrite_in_place(self.path, new)
        self.assertLess(took, WRITER_BOUND_S, "the writer's open waited for the lease")
        body = reader.read_rest()
        self.assertLess(len(body), SIZE, "the response sending the old version completed")
        r = tagged(self.server.port, "/big.bin")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, new)
        self.assertIsNotNone(r.header("ETag"))
        self.assertNotEqual(r.header("ETag"), old_tag)
        self.assertIn("/big.bin changed while being sent; response aborted", self.server.stderr())

    def test_truncating_the_file_mid_send_cuts_the_response(self):
        reader, old_tag = self.start_slow_reader()
        self.assertLess(timed(lambda: os.truncate(self.path, 1 << 20)), WRITER_BOUND_S)
        self.assertLess(len(reader.read_rest()), SIZE)
        r = tagged(self.server.port, "/big.bin")
        self.assertEqual(r.body, self.old[:1 << 20])
        self.assertNotEqual(r.header("ETag"), old_tag)

    def test_deleting_the_file_mid_send_never_mixes_versions(self):
        reader, _ = self.start_slow_reader()
        os.unlink(self.path)
        body = reader.read_rest()
        # Removing the name changes no byte: the old version goes on whole (or is cut), and a
        # new file under that name is a new inode with its own lease.
        self.assertEqual(body, self.old[:len(body)])
        self.assertEqual(fetch(self.server.port, "/big.bin").status, 404)
        write_file(self.path, body_of(SIZE, 3), mtime=OLD)
        r = tagged(self.server.port, "/big.bin")
        self.assertEqual(r.body, body_of(SIZE, 3))

    def test_keep_alive_responses_after_a_rewrite_carry_the_new_version(self):
        r = tagged(self.server.port, "/big.bin")
        with Conn(self.server.port) as c:
            first = c.request(get_request("/big.bin"))
            self.assertEqual(first.body, self.old)
            new = body_of(SIZE, 4)
            self.assertLess(rewrite_in_place(self.path, new), WRITER_BOUND_S)
            os.utime(self.path, (OLD + 10, OLD + 10))  # settled, so it is hashed inline
            second = c.request(get_request("/big.bin"))
        self.assertEqual(second.body, new)
        self.assertNotEqual(second.header("ETag"), r.header("ETag"))


class CopyToPeersOnThisHostTest(SendfileUnderLeaseTest):
    """--sendfile on (the default): the lease is taken, but a loopback client gets a copy, checked
    at its end; the writer's open still returns at once."""

    OPTIONS = ("--workers", "1", "--hash-threshold", THRESHOLD)


class CopyWithoutSendfileTest(SendfileUnderLeaseTest):
    """--sendfile off: no lease, the copy-then-check path cuts a response whose file changed."""

    OPTIONS = ("--workers", "1", "--hash-threshold", THRESHOLD, "--sendfile", "off")

    def test_a_served_large_file_is_held_under_a_read_lease(self):
        tagged(self.server.port, "/big.bin")
        self.assertEqual(read_leases(self.path), [])

    def test_a_writer_breaks_the_lease_at_once_and_the_response_in_flight_is_cut(self):
        reader, _ = self.start_slow_reader()
        self.assertLess(rewrite_in_place(self.path, body_of(SIZE, 2)), WRITER_BOUND_S)
        # The copy may have read new bytes before its final check: the response is cut.
        self.assertLess(len(reader.read_rest()), SIZE)


@require_binary
class LeaseRefusedTest(unittest.TestCase):
    """A server running as nobody over root's files cannot take a lease (EACCES): it copies."""

    def test_a_server_running_as_nobody_over_root_files_copies_and_checks(self):
        root = shared_tempdir("notmod-lease-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, True))
        old = body_of(SIZE, 5)
        path = write_file(os.path.join(root, "big.bin"), old, mtime=OLD)
        os.chmod(path, 0o644)
        srv = NotmodServer(root, ("--workers", "1", "--hash-threshold", THRESHOLD),
                           as_nobody=True).start()
        self.addCleanup(srv.stop_checked)
        r = tagged(srv.port, "/big.bin")
        self.assertEqual(r.body, old)
        self.assertEqual(read_leases(path), [])
        reader = SlowReader(srv.port, "/big.bin")
        time.sleep(0.3)
        self.assertLess(rewrite_in_place(path, body_of(SIZE, 6)), WRITER_BOUND_S)
        self.assertLess(len(reader.read_rest()), SIZE)
        self.assertEqual(tagged(srv.port, "/big.bin").body, body_of(SIZE, 6))


if __name__ == "__main__":
    unittest.main()
