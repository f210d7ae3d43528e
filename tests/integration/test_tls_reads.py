"""notmod serve reading TLS connections: a short read of the socket ends reading until the next
epoll edge (docs/architecture.md, "A request"), so what this must never do is leave a connection
waiting for an edge that does not come. Over TLS 1.2 and 1.3 (TlsConn, memory BIOs, so that the
test decides what goes on the wire and when): many keep-alive requests on one connection,
pipelined requests (in one record, in many records, more than the input buffer holds, and a
batch that fills it at a request's end while TLS holds more), a request cut into records and
into TCP segments with pauses between them, a request followed by a FIN, a FIN or a close_notify
on an idle connection, a request followed by a close_notify, and HTTP/2 over TLS with streams
one after another. Every read has a timeout of IO_TIMEOUT_S: a stall fails the test in
seconds."""

import socket
import ssl
import struct
import time
import unittest

from launch import NotmodServer, Site, TestCA, TlsConn, get_request, require_binary

IO_TIMEOUT_S = 5.0
KEEP_ALIVE_REQUESTS = 300
PIPELINED = 400  # about 40 KiB of requests: several records, more than one read's worth
PAUSE_S = 0.15
VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
BODY = b"hello over tls, one short body\n"


def context(ca, version, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=ca.cert)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(list(alpn))
    return ctx


# ---- HTTP/2 frames, enough for GETs (RFC 9113 §4.1; HPACK literals without indexing, RFC 7541
# §6.2.2, names and values under 127 bytes) ----

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_SETTINGS, H2_GOAWAY = 0, 1, 4, 7
H2_END_STREAM, H2_END_HEADERS, H2_ACK = 1, 4, 1


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def h2_get(stream, path):
    block = b""
    for name, value in ((b":method", b"GET"), (b":scheme", b"https"), (b":path", path.encode()),
                        (b":authority", b"localhost")):
        block += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return h2_frame(H2_HEADERS, H2_END_STREAM | H2_END_HEADERS, stream, block)


def h2_read_frame(conn):
    head = conn.read_exact(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, \
        conn.read_exact(length)


@require_binary
class TlsReads(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.site = Site()
        try:
            cert, key = cls.ca.issue("localhost", ["IP:127.0.0.1"])
            cls.site.write("a.txt", BODY)
            cls.server = NotmodServer(cls.site.root, [
                "--tls-cert", cert, "--tls-key", key, "--workers", "1"]).start()
        except BaseException:
            cls.site.cleanup()
            cls.ca.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_checked()
        finally:
            cls.site.cleanup()
            cls.ca.cleanup()

    def connect(self, version, alpn=("http/1.1",)):
        conn = TlsConn(self.server.port, context(self.ca, version, alpn), timeout=IO_TIMEOUT_S)
        self.addCleanup(conn.close)
        return conn

    def check_answer(self, resp, status=200):
        self.assertEqual(resp.status, status, resp)
        if status == 200:
            self.assertEqual(resp.body, BODY)

    def test_many_keep_alive_requests_on_one_connection_are_answered_without_a_stall(self):
        for version in VERSIONS:
            with self.subTest(version=version):
                conn = self.connect(version)
                resp = conn.request(get_request("/a.txt"))
                self.check_answer(resp)
                etag = resp.header("ETag")
                start = time.monotonic()
                for i in range(KEEP_ALIVE_REQUESTS):
                    if i % 2:
                        self.check_answer(conn.request(get_request("/a.txt")))
                    else:
                        self.check_answer(
                            conn.request(get_request("/a.txt", [("If-None-Match", etag)])), 304)
                # Far below one stall of IO_TIMEOUT_S each: every answer came at once.
                self.assertLess(time.monotonic() - start, 30)

    def test_pipelined_requests_in_one_record_or_many_are_all_answered(self):
        one = get_request("/a.txt", [("X-Padding", "p" * 40)])
        for version in VERSIONS:
            for how in ("one write", "a record each"):
                with self.subTest(version=version, how=how):
                    conn = self.connect(version)
                    if how == "one write":
                        conn.send(one * PIPELINED)  # records of 16 KiB
                    else:
                        conn.send_raw(b"".join(conn.records(one) for _ in range(PIPELINED)))
                    for _ in range(PIPELINED):
                        self.check_answer(conn.read_response())
                    self.check_answer(conn.request(get_request("/a.txt")))

    def test_pipelined_requests_that_fill_the_input_buffer_at_a_request_end_are_all_answered(self):
        # The input buffer (a multiple of 1 KiB) fills at the end of a request while TLS still
        # holds the rest of the record: every request in the buffer is answered, the socket is
        # empty, and the rest must still be read.
        for version in VERSIONS:
            conn = self.connect(version)
            etag = conn.request(get_request("/a.txt")).header("ETag")
            for size, count in ((1024, 44), (4096, 12)):
                with self.subTest(version=version, size=size):
                    base = get_request("/a.txt", [("If-None-Match", etag), ("X-Padding", "")])
                    one = get_request("/a.txt", [("If-None-Match", etag),
                                                 ("X-Padding", "p" * (size - len(base)))])
                    self.assertEqual(len(one), size)
                    conn.send(one * count)
                    for _ in range(count):
                        self.check_answer(conn.read_response(), 304)

    def test_a_request_cut_into_records_and_segments_with_pauses_is_answered(self):
        req = get_request("/a.txt")
        for version in VERSIONS:
            with self.subTest(version=version, cut="records"):
                conn = self.connect(version)
                for piece in (req[:5], req[5:20], req[20:]):
                    conn.send(piece)
                    time.sleep(PAUSE_S)
                self.check_answer(conn.read_response())
                self.check_answer(conn.request(req))
            with self.subTest(version=version, cut="segments of one record"):
                conn = self.connect(version)
                wire = conn.records(req)
                # Inside the record header, at its end, and inside the sealed body.
                cuts = (0, 3, 5, 5 + (len(wire) - 5) // 2, len(wire))
                for a, b in zip(cuts, cuts[1:]):
                    conn.send_raw(wire[a:b])
                    time.sleep(PAUSE_S)
                self.check_answer(conn.read_response())
                self.check_answer(conn.request(req))

    def test_a_request_then_a_fin_gets_its_answer_and_a_close(self):
        for version in VERSIONS:
            for paused in (False, True):
                with self.subTest(version=version, paused=paused):
                    conn = self.connect(version)
                    conn.send(get_request("/a.txt"))
                    if paused:
                        time.sleep(PAUSE_S)  # the request is read before the FIN comes
                    conn.shutdown_write()
                    self.check_answer(conn.read_response())
                    self.assertTrue(conn.is_closed_by_peer(IO_TIMEOUT_S))

    def test_a_fin_or_a_close_notify_on_an_idle_connection_closes_it(self):
        for version in VERSIONS:
            for how in ("fin", "close_notify"):
                with self.subTest(version=version, how=how):
                    conn = self.connect(version)
                    self.check_answer(conn.request(get_request("/a.txt")))
                    time.sleep(PAUSE_S)  # idle, its socket read empty
                    if how == "fin":
                        conn.shutdown_write()
                    else:
                        conn.close_notify()
                    self.assertTrue(conn.is_closed_by_peer(IO_TIMEOUT_S))

    def test_a_request_then_a_close_notify_gets_its_answer(self):
        for version in VERSIONS:
            with self.subTest(version=version):
                conn = self.connect(version)
                conn.send(get_request("/a.txt"))
                conn.close_notify()
                self.check_answer(conn.read_response())
                self.assertTrue(conn.is_closed_by_peer(IO_TIMEOUT_S))

    def test_http2_streams_one_after_another_are_each_answered(self):
        for version in VERSIONS:
            with self.subTest(version=version):
                conn = self.connect(version, alpn=("h2",))
                self.assertEqual(conn.tls.selected_alpn_protocol(), "h2")
                conn.send(H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0))
                for k in range(100):
                    stream = 1 + 2 * k
                    conn.send(h2_get(stream, "/a.txt"))
                    body, status_seen = b"", False
                    for _ in range(50):
                        ftype, flags, sid, payload = h2_read_frame(conn)
                        if ftype == H2_SETTINGS and not flags & H2_ACK:
                            conn.send(h2_frame(H2_SETTINGS, H2_ACK, 0))
                        self.assertNotEqual(ftype, H2_GOAWAY, payload)
                        if sid != stream:
                            continue
                        status_seen |= ftype == H2_HEADERS
                        if ftype == H2_DATA:
                            body += payload
                        if flags & H2_END_STREAM:
                            break
                    self.assertTrue(status_seen)
                    self.assertEqual(body, BODY, "stream %d" % stream)


if __name__ == "__main__":
    unittest.main()
