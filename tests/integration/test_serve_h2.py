"""HTTP/2 with prior knowledge (`--h2c`) at the frame level, with Debian's python3-h2 (run with
/usr/bin/python3): the same decisions as HTTP/1.1, request content on GET, the concurrent-stream
limit, a stalled download beside a fast one, many listings on one connection, and floods (rapid reset, CONTINUATION, HPACK bomb,
SETTINGS, PING, empty DATA, WINDOW_UPDATE), each ending its connection with GOAWAY
ENHANCE_YOUR_CALM while another client is served. Each flood prints the bytes it sent and the
server CPU time it cost."""

import os
import socket
import struct
import threading
import time
import unittest

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from launch import NotmodServer, Site, fetch, require_binary

IO_TIMEOUT_S = 10.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BIG = 4 << 20
LISTINGS = 8  # directories of ...
LISTING_ENTRIES = 1000  # ... entries each: listings that take a while to render


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) \
        + payload


def get_block(path):
    """A header block for GET path (static table and literals, no dynamic table)."""
    p = path.encode()
    return bytes([0x82, 0x86, 0x04, len(p)]) + p + bytes([0x01, 1]) + b"t"


def literal(name, value, index=False):
    def length(n):
        return bytes([n]) if n < 127 else bytes([127]) + _varint(n - 127)
    return bytes([0x40 if index else 0x00]) + length(len(name)) + name + length(len(value)) + value


def _varint(n):
    out = b""
    while n >= 128:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def server_cpu_ticks(pid):
    """utime + stime of the server, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Client:
    """One HTTP/2 connection through python3-h2, every read bounded in time."""

    def __init__(self, port, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        self.streams = {}
        self.goaway = None
        self.flush()

    def close(self):
        self.sock.close()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, headers=(), method="GET", end_stream=True):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                                   (":authority", "t")] + list(headers), end_stream=end_stream)
        self.streams[sid] = {"status": None, "headers": [], "body": bytearray(), "ended": False,
                             "reset": None, "ack": True}
        self.flush()
        return sid

    def pump(self, until, timeout=IO_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if until():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            if not data:
                break
            for e in self.h2.receive_data(data):
                self._event(e)
            self.flush()
        if not until():
            raise AssertionError("HTTP/2 exchange did not finish in time: %r" % self.streams)

    def _event(self, e):
        s = self.streams.get(getattr(e, "stream_id", None))
        if isinstance(e, h2.events.ResponseReceived):
            s["headers"] = [(k.decode(), v.decode()) for k, v in e.headers]
            s["status"] = int(dict(s["headers"])[":status"])
        elif isinstance(e, h2.events.DataReceived):
            s["body"] += e.data
            if s["ack"]:
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            s["ended"] = True
        elif isinstance(e, h2.events.StreamReset):
            s["reset"] = e.error_code
        elif isinstance(e, h2.events.ConnectionTerminated):
            self.goaway = e.error_code

    def get(self, path, headers=(), method="GET"):
        sid = self.request(path, headers, method)
        self.pump(lambda: self.streams[sid]["ended"] or self.streams[sid]["reset"] is not None)
        return self.streams[sid]


def header(stream, name):
    for k, v in stream["headers"]:
        if k == name:
            return v
    return None


def boundaries(fields):
    return [v.split("boundary=", 1)[1] for k, v in fields
            if k == "content-type" and "boundary=" in v]


@require_binary
class Http2Test(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        cls.site.write("hello.txt", b"Hello, world!\n", mtime=1700000000)
        cls.site.write("style.css", b"body { color: red }\n" * 40, mtime=1700000000)
        cls.site.write("big.bin", bytes(range(256)) * (BIG // 256), mtime=1700000000)
        for i in range(LISTINGS):
            for k in range(LISTING_ENTRIES):
                cls.site.write("many%d/e%04d-%d" % (i, k, i), b"", mtime=1700000000)
        try:
            cls.server = NotmodServer(cls.site.root, ["--h2c"]).start()
        except BaseException:
            cls.site.cleanup()
            raise
        cls.port = cls.server.port
        try:
            cls.listing_server = NotmodServer(cls.site.root,
                                              ["--h2c", "--list-dirs", "--workers", "1"]).start()
        except BaseException:
            cls.server.stop()
            cls.site.cleanup()
            raise
        cls.listing_port = cls.listing_server.port

    @classmethod
    def tearDownClass(cls):
        try:
            try:
                cls.server.stop_checked()
            finally:
                cls.listing_server.stop_checked()
        finally:
            cls.site.cleanup()

    def client(self, settings=None, port=None):
        c = Client(port or self.port, settings)
        self.addCleanup(c.close)
        return c

    # ---- the same responses as HTTP/1.1 ----

    def test_each_response_matches_http1_but_for_framing_fields(self):
        c = self.client()
        etag = header(c.get("/hello.txt"), "etag")
        cases = [
            ("GET", "/hello.txt", []),
            ("HEAD", "/big.bin", []),
            ("GET", "/style.css", [("accept-encoding", "gzip")]),
            ("GET", "/hello.txt", [("if-none-match", etag)]),
            ("GET", "/hello.txt", [("if-none-match", '"x"'), ("if-none-match", etag)]),
            ("GET", "/hello.txt", [("if-match", '"nope"')]),
            ("GET", "/big.bin", [("range", "bytes=0-9")]),
            ("GET", "/big.bin", [("range", "bytes=0-0,-2")]),
            ("GET", "/missing", []),
            ("DELETE", "/hello.txt", []),
        ]
        framing = {"date", "connection", "keep-alive", "transfer-encoding"}
        # The gzip variant of style.css is made on the fly after a first ask: wait for it, so
        # that both protocols find it ready.
        for _ in range(100):
            if fetch(self.port, "/style.css", [("Accept-Encoding", "gzip")]).header(
                    "Content-Encoding") == "gzip":
                break
            time.sleep(0.05)
        for method, path, fields in cases:
            with self.subTest(method=method, path=path, fields=fields):
                s = c.get(path, fields, method)
                r = fetch(self.port, path, [(k.title(), v) for k, v in fields], method)
                self.assertEqual(s["status"], r.status)
                mine = [(k, v) for k, v in s["headers"] if not k.startswith(":") and
                        k not in framing]
                theirs = [(k.lower(), v) for k, v in r.headers if k.lower() not in framing]
                body = bytes(s["body"])
                # Each worker keys multipart boundaries its own way: compare them as one.
                for b1, b2 in zip(boundaries(mine), boundaries(theirs)):
                    mine = [(k, v.replace(b1, b2)) for k, v in mine]
                    body = body.replace(b1.encode(), b2.encode())
                self.assertEqual(mine, theirs)
                self.assertEqual(body, r.body)
                for name in ("connection", "keep-alive", "transfer-encoding"):
                    self.assertIsNone(header(s, name))
                if s["status"] == 304:
                    self.assertIsNone(header(s, "content-length"))
                    self.assertEqual(s["body"], b"")

    def test_content_on_get_is_read_and_the_request_answered(self):
        c = self.client()
        sid = c.request("/hello.txt", [("content-length", "5")], end_stream=False)
        c.h2.send_data(sid, b"hello", end_stream=True)
        c.flush()
        c.pump(lambda: c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["status"], 200)
        self.assertEqual(bytes(c.streams[sid]["body"]), b"Hello, world!\n")

    def test_content_shorter_than_its_length_is_a_stream_protocol_error(self):
        c = self.client()
        sid = c.request("/hello.txt", [("content-length", "9")], end_stream=False)
        c.h2.send_data(sid, b"hello", end_stream=True)
        c.flush()
        c.pump(lambda: c.streams[sid]["reset"] is not None or c.streams[sid]["ended"])
        self.assertEqual(c.streams[sid]["reset"], h2.errors.ErrorCodes.PROTOCOL_ERROR)
        self.assertEqual(c.get("/hello.txt")["status"], 200, "the connection goes on")

    # ---- limits ----

    def test_the_101st_concurrent_stream_is_refused(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)
        self.addCleanup(sock.close)
        # Sent before the server's SETTINGS are read, so no client-side limit holds them back.
        out = PREFACE + frame(0x4, 0, 0)
        for sid in range(1, 2 * 101 + 1, 2):
            out += frame(0x1, 0x4, sid, get_block("/hello.txt"))  # END_HEADERS, no END_STREAM
        sock.sendall(out)
        codes = self.read_frames(sock, lambda f: f[0] == 0x3 and f[2] == 201)
        rst = [f for f in codes if f[0] == 0x3 and f[2] == 201]
        self.assertEqual(struct.unpack(">I", rst[0][3])[0], h2.errors.ErrorCodes.REFUSED_STREAM)
        self.assertFalse([f for f in codes if f[0] == 0x3 and f[2] < 201])

    def test_a_stalled_download_beside_a_fast_small_one(self):
        c = self.client({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
        big = c.request("/big.bin")
        c.streams[big]["ack"] = False  # never opened: its window stays shut at 1024 bytes
        c.pump(lambda: len(c.streams[big]["body"]) >= 1024)
        small = c.request("/hello.txt")
        c.pump(lambda: c.streams[small]["ended"])
        self.assertEqual(bytes(c.streams[small]["body"]), b"Hello, world!\n")
        self.assertEqual(len(c.streams[big]["body"]), 1024)
        # Another connection is served meanwhile too.
        self.assertEqual(fetch(self.port, "/hello.txt").status, 200)
        # The window opens: the rest comes, in frames no larger than the window allowed.
        c.streams[big]["ack"] = True
        c.h2.increment_flow_control_window(BIG, stream_id=big)
        c.h2.increment_flow_control_window(BIG)
        c.flush()
        c.pump(lambda: c.streams[big]["ended"], timeout=60)
        self.assertEqual(bytes(c.streams[big]["body"]), bytes(range(256)) * (BIG // 256))

    # ---- listings ----

    def test_many_listings_on_one_connection_are_all_answered_beside_another_client(self):
        # One listing render per connection per pass of the loop: the streams after it wait
        # for the next pass (not failed) while the other connection is served.
        c = self.client(port=self.listing_port)
        sids = [c.request("/many%d/" % i) for i in range(LISTINGS)]
        other = fetch(self.listing_port, "/hello.txt")
        self.assertEqual(other.status, 200)
        c.pump(lambda: all(c.streams[s]["ended"] or c.streams[s]["reset"] is not None
                           for s in sids), timeout=60)
        for i, sid in enumerate(sids):
            s = c.streams[sid]
            self.assertIsNone(s["reset"], "stream %d was reset" % sid)
            self.assertEqual(s["status"], 200)
            self.assertIn(b"e%04d-%d" % (LISTING_ENTRIES - 1, i), bytes(s["body"]))

    # ---- floods ----

    def read_frames(self, sock, stop, timeout=IO_TIMEOUT_S):
        """Frames (type, flags, stream, payload) read until stop(frame) or the peer closes."""
        buf, frames = b"", []
        deadline = time.monotonic() + timeout
        for _ in range(1000000):
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n])
                frames.append(f)
                buf = buf[9 + n:]
                if stop(f):
                    return frames
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(1 << 16)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            buf += data
        return frames

    def flood(self, name, payload):
        """Sends PREFACE + SETTINGS + payload while another client is served; expects GOAWAY
        ENHANCE_YOUR_CALM. Prints what it cost the server."""
        pid = self.server.proc.pid
        before = server_cpu_ticks(pid)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)
        self.addCleanup(sock.close)
        sent = [0]

        def send():
            data = PREFACE + frame(0x4, 0, 0) + payload
            try:
                for off in range(0, len(data), 1 << 16):
                    sock.sendall(data[off:off + (1 << 16)])
                    sent[0] += len(data[off:off + (1 << 16)])
            except OSError:
                pass  # closed by the server: the point

        t = threading.Thread(target=send)
        t.start()
        other = self.client()
        self.assertEqual(other.get("/hello.txt")["status"], 200, "another client is served")
        frames = self.read_frames(sock, lambda f: f[0] == 0x7)
        t.join(IO_TIMEOUT_S)
        goaway = [f for f in frames if f[0] == 0x7]
        self.assertTrue(goaway, "%s: the server sent a GOAWAY" % name)
        code = struct.unpack(">I", goaway[0][3][4:8])[0]
        self.assertEqual(code, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, name)
        ticks = server_cpu_ticks(pid) - before
        print("\nflood %s: %d bytes sent, server CPU %.0f ms (ticks of %d ms)"
              % (name, sent[0], ticks * 1000 / os.sysconf("SC_CLK_TCK"),
                 1000 // os.sysconf("SC_CLK_TCK")))
        self.assertEqual(other.get("/style.css")["status"], 200, "and still is afterwards")

    def test_rapid_reset(self):
        block = get_block("/hello.txt")
        pairs = b"".join(frame(0x1, 0x5, sid, block) + frame(0x3, 0, sid, struct.pack(">I", 8))
                         for sid in range(1, 2 * 5000, 2))
        self.flood("rapid reset", pairs)

    def test_continuation_flood(self):
        cont = frame(0x9, 0, 1, literal(b"x-a", b"v" * 1000))
        self.flood("CONTINUATION", frame(0x1, 0x1, 1, get_block("/hello.txt")) + cont * 2000)

    def test_hpack_bomb(self):
        insert = frame(0x1, 0x5, 1, get_block("/hello.txt") + literal(b"x-b", b"v" * 4000, True))
        bombs = b"".join(frame(0x1, 0x5, sid, get_block("/hello.txt") + b"\xbe" * 1000)
                         for sid in range(3, 3 + 2 * 1000, 2))
        self.flood("HPACK bomb", insert + bombs)

    def test_settings_flood(self):
        self.flood("SETTINGS", frame(0x4, 0, 0, struct.pack(">HI", 2, 0)) * 20000)

    def test_ping_flood(self):
        self.flood("PING", frame(0x6, 0, 0, b"12345678") * 20000)

    def test_empty_data_flood(self):
        self.flood("empty DATA", frame(0x1, 0x4, 1, get_block("/hello.txt"))
                   + frame(0x0, 0, 1) * 20000)

    def test_window_update_flood(self):
        self.flood("WINDOW_UPDATE", frame(0x8, 0, 0, struct.pack(">I", 1)) * 20000)


if __name__ == "__main__":
    unittest.main()
