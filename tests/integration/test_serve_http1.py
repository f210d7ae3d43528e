"""RFC 9112 framing over raw sockets: pipelining, connection reuse, malformed and smuggling
requests, request content that is read and dropped, Expect, methods."""

import socket
import time
import unittest

from launch import Conn, ProtocolError, ServerTestCase, get_request, require_binary

SMALL = {("/p%d.txt" % i): ("pipelined body %d\n" % i).encode() for i in range(16)}
LARGE = bytes((i * 31 + 7) % 256 for i in range(300 * 1024))
DISCARD_CAP = 1 << 20


def req(head, body=b""):
    """A request from a head written with \\n line ends, sent with CRLF."""
    return head.replace("\n", "\r\n").encode("latin-1") + body


# (name, raw request, expected status, the server must close after it)
MALFORMED = [
    ("content_length_with_transfer_encoding",
     req("POST / HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"), 400, True),
    ("transfer_encoding_with_content_length_on_get",
     req("GET /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 0\n\n"),
     400, True),
    ("differing_content_length_lines",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 5\nContent-Length: 6\n\n"), 400, True),
    ("differing_content_length_list",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 5, 6\n\n"), 400, True),
    ("non_numeric_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: abc\n\n"), 400, True),
    ("negative_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: -1\n\n"), 400, True),
    ("plus_signed_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: +5\n\n"), 400, True),
    ("hex_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 0x10\n\n"), 400, True),
    ("overflowing_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 99999999999999999999999\n\n"), 400, True),
    ("obs_fold_continuation_line",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-Long: a\n b\n\n"), 400, True),
    ("obs_fold_with_tab",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-Long: a\n\tb\n\n"), 400, True),
    ("space_before_colon",
     req("GET /a.txt HTTP/1.1\nHost : x\n\n"), 400, True),
    ("space_before_colon_in_transfer_encoding",
     req("GET /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding : chunked\n\n0\n\n"), 400, True),
    ("tab_before_colon",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-A\t: b\n\n"), 400, True),
    ("nul_in_field_value",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-A: a\x00b\n\n"), 400, True),
    ("nul_in_request_target",
     req("GET /a.txt\x00.html HTTP/1.1\nHost: x\n\n"), 400, True),
    ("control_byte_in_field_value",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-A: a\x01b\n\n"), 400, True),
    ("del_byte_in_field_value",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-A: a\x7fb\n\n"), 400, True),
    ("bare_cr_in_field_value",
     b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, True),
    ("bare_cr_as_line_end",
     b"GET /a.txt HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400, True),
    ("bare_cr_in_request_line",
     b"GET /a.txt\rHTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("missing_host",
     req("GET /a.txt HTTP/1.1\nUser-Agent: t\n\n"), 400, True),
    ("duplicate_host",
     req("GET /a.txt HTTP/1.1\nHost: a\nHost: b\n\n"), 400, True),
    ("host_with_userinfo",
     req("GET /a.txt HTTP/1.1\nHost: user@x\n\n"), 400, True),
    ("host_with_a_space",
     req("GET /a.txt HTTP/1.1\nHost: a b\n\n"), 400, True),
    ("empty_field_name",
     req("GET /a.txt HTTP/1.1\nHost: x\n: empty\n\n"), 400, True),
    ("field_name_with_a_quote",
     req('GET /a.txt HTTP/1.1\nHost: x\nX"A: b\n\n'), 400, True),
    ("field_line_without_colon",
     req("GET /a.txt HTTP/1.1\nHost: x\nNoColonHere\n\n"), 400, True),
    ("http2_connection_preface",
     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, True),
    ("http_3_0_version",
     req("GET /a.txt HTTP/3.0\nHost: x\n\n"), 505, True),
    ("http_0_9_request",
     b"GET /a.txt\r\n\r\n", 400, True),
    ("lowercase_http_name",
     req("GET /a.txt http/1.1\nHost: x\n\n"), 400, True),
    ("two_digit_minor_version",
     req("GET /a.txt HTTP/1.10\nHost: x\n\n"), 400, True),
    ("space_after_version",
     req("GET /a.txt HTTP/1.1 \nHost: x\n\n"), 400, True),
    ("two_spaces_after_method",
     req("GET  /a.txt HTTP/1.1\nHost: x\n\n"), 400, True),
    ("method_with_a_separator",
     req("GE(T /a.txt HTTP/1.1\nHost: x\n\n"), 400, True),
    ("non_ascii_byte_in_target",
     req("GET /a\xff.txt HTTP/1.1\nHost: x\n\n"), 400, True),
    ("tls_client_hello_on_plain_port",
     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32, 400, True),
    ("huge_request_target",
     req("GET /" + "a" * 9000 + " HTTP/1.1\nHost: x\n\n"), 414, True),
    ("huge_header_field",
     req("GET /a.txt HTTP/1.1\nHost: x\nX-Big: " + "b" * 40000 + "\n\n"), 431, True),
    ("many_header_fields_in_total_size",
     req("GET /a.txt HTTP/1.1\nHost: x\n" + "".join("X-F%03d: %s\n" % (i, "v" * 400)
                                                     for i in range(99)) + "\n"), 431, True),
    ("one_hundred_and_one_fields",
     req("GET /a.txt HTTP/1.1\nHost: x\n" + "".join("X-F%d: v\n" % i for i in range(100)) + "\n"),
     431, True),
    ("transfer_coding_other_than_chunked",
     req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked\n\n0\n\n"), 501, True),
    ("chunked_not_final",
     req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, gzip\n\n"), 400, True),
    ("chunked_twice",
     req("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n"
         "0\n\n"), 400, True),
    ("transfer_encoding_in_http_1_0",
     req("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n0\n\n"), 400, True),
    ("unsupported_expectation",
     req("GET /a.txt HTTP/1.1\nHost: x\nExpect: 200-ok\n\n"), 417, True),
    ("content_length_over_the_discard_cap",
     req("POST / HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % (DISCARD_CAP + 1)), 413, True),
    ("get_content_length_over_the_discard_cap",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % (64 << 20)), 413, True),
    ("transfer_encoding_that_only_contains_chunked",
     req("GET /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\n\n"), 400, True),
    ("empty_transfer_encoding",
     req("GET /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding:\n\n"), 400, True),
    ("chunked_then_identity_on_two_lines",
     req("GET /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: identity\n\n"),
     400, True),
    ("content_length_with_an_underscore",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 1_0\n\n"), 400, True),
    ("empty_content_length",
     req("GET /a.txt HTTP/1.1\nHost: x\nContent-Length:\n\n"), 400, True),
    ("host_twice_in_different_case",
     req("GET /a.txt HTTP/1.1\nhost: x\nHOST: y\n\n"), 400, True),
    ("unknown_method",
     req("BREW /a.txt HTTP/1.1\nHost: x\n\n"), 501, False),
    ("lowercase_get_is_another_method",
     req("get /a.txt HTTP/1.1\nHost: x\n\n"), 501, False),
    ("asterisk_form_for_get",
     req("GET * HTTP/1.1\nHost: x\n\n"), 400, False),
    ("fragment_in_target",
     req("GET /a.txt#frag HTTP/1.1\nHost: x\n\n"), 400, False),
    ("authority_form_for_get",
     req("GET localhost:80 HTTP/1.1\nHost: x\n\n"), 400, False),
]

NOT_ALLOWED = ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"]


@require_binary
class Http1(ServerTestCase):
    @classmethod
    def populate(cls, site):
        site.write("alive.txt", b"alive\n")
        site.write("a.txt", b"A body\n")
        site.write("large.bin", LARGE)
        for path, body in SMALL.items():
            site.write(path, body)

    def check_malformed(self, raw, status, must_close):
        with Conn(self.port) as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, status, r)
            if must_close:
                self.assertEqual(r.header("Connection"), "close")
                self.assertTrue(c.is_closed_by_peer(), "server kept the connection open")
            else:
                # The framing was understood: the same connection still answers.
                self.assertIsNone(r.header("Connection"))
                nxt = c.request(get_request("/alive.txt"))
                self.assertEqual((nxt.status, nxt.body), (200, b"alive\n"))
        self.assert_alive()

    # ---- pipelining and reuse ----

    def test_sixteen_pipelined_requests_in_one_packet_answer_in_order(self):
        paths = sorted(SMALL)
        blob = b"".join(get_request(p) for p in paths)
        with Conn(self.port) as c:
            c.send(blob)
            for p in paths:
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, SMALL[p]))

    def test_pipelined_mixture_of_statuses_answer_in_order(self):
        etag = self.get("/p1.txt").header("ETag")
        reqs = [
            (get_request("/p0.txt"), 200, SMALL["/p0.txt"], False),
            (get_request("/p1.txt", [("If-None-Match", etag)]), 304, b"", False),
            (get_request("/nope"), 404, None, False),
            (get_request("/p2.txt", method="HEAD"), 200, b"", True),
            (get_request("/p3.txt", [("If-Match", '"x"')]), 412, None, False),
            (get_request("/large.bin"), 200, LARGE, False),
            (get_request("/p4.txt", [("Range", "bytes=0-3")]), 206, SMALL["/p4.txt"][:4], False),
            (get_request("/p5.txt", method="POST"), 405, None, False),
            (get_request("/large.bin", [("Range", "bytes=100000-100009")]), 206,
             LARGE[100000:100010], False),
            (get_request("/p6.txt"), 200, SMALL["/p6.txt"], False),
        ]
        with Conn(self.port) as c:
            c.send(b"".join(r[0] for r in reqs))
            for raw, status, body, head in reqs:
                r = c.read_response(head_request=head)
                self.assertEqual(r.status, status, raw)
                if body is not None:
                    self.assertEqual(r.body, body, raw)

    def test_pipelined_large_responses_read_slowly_arrive_whole(self):
        n = 8
        with Conn(self.port) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            c.send(b"".join(get_request("/large.bin") for _ in range(n)) +
                   get_request("/p7.txt"))
            time.sleep(0.3)
            for _ in range(n):
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, LARGE)
            r = c.read_response()
            self.assertEqual(r.body, SMALL["/p7.txt"])

    def test_connection_is_reused_after_304_412_and_404(self):
        etag = self.get("/a.txt").header("ETag")
        with Conn(self.port) as c:
            steps = [
                (get_request("/a.txt", [("If-None-Match", etag)]), 304),
                (get_request("/a.txt"), 200),
                (get_request("/a.txt", [("If-Match", '"other"')]), 412),
                (get_request("/a.txt"), 200),
                (get_request("/does-not-exist.txt"), 404),
                (get_request("/a.txt"), 200),
                (get_request("/a.txt", [("Range", "bytes=999-")]), 416),
                (get_request("/a.txt"), 200),
            ]
            for raw, status in steps:
                r = c.request(raw)
                self.assertEqual(r.status, status, raw)
                self.assertIsNone(r.header("Connection"))
                if status == 200:
                    self.assertEqual(r.body, b"A body\n")

    def test_connection_close_is_honoured(self):
        with Conn(self.port) as c:
            r = c.request(get_request("/a.txt", [("Connection", "close")]))
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.is_closed_by_peer())

    def test_http_1_0_closes_unless_keep_alive(self):
        with Conn(self.port) as c:
            r = c.request(b"GET /a.txt HTTP/1.0\r\n\r\n")
            self.assertEqual((r.status, r.version), (200, "HTTP/1.1"))
            self.assertTrue(c.is_closed_by_peer())
        with Conn(self.port) as c:
            r = c.request(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            self.assertEqual(r.header("Connection"), "keep-alive")
            r = c.request(b"GET /p0.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            self.assertEqual(r.body, SMALL["/p0.txt"])

    def test_lf_only_line_ends_and_a_leading_empty_line_are_accepted(self):
        with Conn(self.port) as c:
            r = c.request(b"\r\nGET /a.txt HTTP/1.1\nHost: x\n\n")
            self.assertEqual((r.status, r.body), (200, b"A body\n"))

    def test_request_split_into_single_bytes_is_answered(self):
        raw = get_request("/a.txt", [("X-Pad", "y" * 20)])
        with Conn(self.port) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(raw)):
                c.send(raw[i:i + 1])
                if i % 16 == 0:
                    time.sleep(0.002)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"A body\n"))

    def test_unusual_but_valid_requests_are_served(self):
        follow = get_request("/alive.txt")
        cases = [
            ("empty host", b"GET /a.txt HTTP/1.1\r\nHost:\r\n\r\n"),
            ("identical content-length list",
             b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"),
            ("chunked in capitals",
             b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
            ("100-continue ignored in HTTP/1.0",
             b"GET /a.txt HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
             b"Connection: keep-alive\r\n\r\nab"),
            ("target of exactly 8192 bytes", b"GET /a.txt?" + b"q" * (8192 - 7) +
             b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("one hundred fields", b"GET /a.txt HTTP/1.1\r\nHost: x\r\n" +
             b"".join(b"X-F%d: v\r\n" % i for i in range(99)) + b"\r\n"),
            ("a 30000-byte field", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: " +
             b"b" * 30000 + b"\r\n\r\n"),
        ]
        for name, raw in cases:
            with self.subTest(case=name):
                with Conn(self.port) as c:
                    c.send(raw + follow)
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, b"A body\n"))
                    self.assertNotEqual(r.header("Connection"), "close")
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, b"alive\n"))

    def test_many_concurrent_clients_each_get_their_bytes(self):
        import threading
        errors = []

        def client(k):
            try:
                with Conn(self.port) as c:
                    for j in range(10):
                        path = "/p%d.txt" % ((k + j) % 16)
                        r = c.request(get_request(path))
                        if (r.status, r.body) != (200, SMALL[path]):
                            errors.append((k, j, r))
                    r = c.request(get_request("/large.bin"))
                    if r.body != LARGE:
                        errors.append((k, "large"))
            except Exception as e:  # reported below, with the client's number
                errors.append((k, repr(e)))

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(errors, [])

    def test_many_open_connections_do_not_stop_new_ones(self):
        idle = []
        self.addCleanup(lambda: [c.close() for c in idle])
        for _ in range(200):
            idle.append(Conn(self.port))
        for c in idle[::20]:
            self.assertEqual(c.request(get_request("/a.txt")).status, 200)
        self.assert_alive()

    def test_idle_connections_answer_again_after_their_buffers_went_back(self):
        # An idle connection keeps no buffers: each takes a state again when a request comes,
        # including a request sent in pieces (the piece holds the state until the rest comes).
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])
        for k in range(300):
            conns.append(Conn(self.port))
            self.assertEqual(conns[-1].request(get_request("/p%d.txt" % (k % 16))).status, 200)
        raw = get_request("/a.txt")
        for c in conns[::3]:
            c.send(raw[:7])
        time.sleep(0.3)
        for k, c in enumerate(conns):
            if k % 3 == 0:
                c.send(raw[7:])
                r = c.read_response()
            else:
                r = c.request(get_request("/p%d.txt" % (k % 16)))
            self.assertEqual(r.status, 200, "connection %d" % k)
        self.assert_alive()

    def test_pipelined_batch_cut_inside_a_request_is_answered_whole_in_order(self):
        paths = sorted(SMALL)
        blob = b"".join(get_request(p) for p in paths)
        with Conn(self.port) as c:
            for cut in (len(blob) // 3, len(blob) // 3 + 1, len(blob) - 5):
                c.send(blob[:cut])
                time.sleep(0.05)  # the answers to the whole requests leave meanwhile
                c.send(blob[cut:])
                for p in paths:
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, SMALL[p]), (cut, p))

    # ---- request content on GET ----

    def test_content_length_body_on_get_is_discarded(self):
        smuggled = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        body = smuggled + b"z" * 7
        raw = (get_request("/a.txt", [("Content-Length", str(len(body)))]) + body +
               get_request("/p3.txt"))
        with Conn(self.port) as c:
            c.send(raw)
            r1 = c.read_response()
            r2 = c.read_response()
            self.assertEqual((r1.status, r1.body), (200, b"A body\n"))
            self.assertEqual((r2.status, r2.body), (200, SMALL["/p3.txt"]))

    def test_content_sent_after_the_head_in_pieces_is_read_before_the_answer(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("Content-Length", "20000")]))
            c.sock.settimeout(0.3)
            with self.assertRaises(socket.timeout, msg="an answer before the content"):
                c.sock.recv(1)
            c.sock.settimeout(10)
            for _ in range(10):
                c.send(b"GET /nope HTTP/1.1\r\n" * 100)  # 2,000 bytes of content each
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"A body\n"))
            r = c.request(get_request("/p8.txt"))
            self.assertEqual((r.status, r.body), (200, SMALL["/p8.txt"]))

    def test_chunked_body_on_get_is_discarded(self):
        body = b"5\r\nhello\r\n1a;ext=1\r\n" + b"GET /nope HTTP/1.1\r\nHost: " + b"\r\n0\r\nT: v\r\n\r\n"
        raw = get_request("/a.txt", [("Transfer-Encoding", "chunked")]) + body
        with Conn(self.port) as c:
            c.send(raw + get_request("/p9.txt"))
            r1 = c.read_response()
            r2 = c.read_response()
            self.assertEqual((r1.status, r1.body), (200, b"A body\n"))
            self.assertEqual((r2.status, r2.body), (200, SMALL["/p9.txt"]))

    def first_bytes_after(self, raw, n=12):
        """The first n bytes the server sends after raw (fewer if it closes first)."""
        with Conn(self.port) as c:
            c.send(raw)
            got = b""
            for _ in range(1000):
                if len(got) >= n:
                    break
                try:
                    chunk = c.sock.recv(n - len(got))
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            return got

    def test_malformed_chunked_content_is_400_with_no_200_before_it(self):
        # RFC 9112 §7.1, §2.2: the content is read and checked before the answer is decided.
        bodies = [
            ("size_not_hex", b"zz\r\n"),
            ("size_of_2_to_the_64", b"10000000000000000\r\nx\r\n0\r\n\r\n"),
            ("more_data_than_the_size", b"5\r\nhelloEXTRA\r\n0\r\n\r\n"),
            ("control_byte_in_an_extension", b"5;a\x01\r\nhello\r\n0\r\n\r\n"),
        ]
        for method in ("GET", "HEAD"):
            for name, body in bodies:
                with self.subTest(method=method, body=name):
                    raw = (get_request("/a.txt", [("Transfer-Encoding", "chunked")],
                                       method=method) + body + get_request("/p9.txt"))
                    self.assertEqual(self.first_bytes_after(raw), b"HTTP/1.1 400")
                    with Conn(self.port) as c:
                        c.send(raw)
                        r = c.read_response(head_request=method == "HEAD")
                        self.assertEqual(r.status, 400)
                        self.assertEqual(r.header("Connection"), "close")
                        self.assertTrue(c.is_closed_by_peer(), "the next request was read")
        self.assert_alive()

    def test_malformed_chunked_content_arriving_late_is_still_400(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("Transfer-Encoding", "chunked")]) + b"5\r\nhel")
            c.sock.settimeout(0.3)
            with self.assertRaises(socket.timeout, msg="an answer before the content"):
                c.sock.recv(1)
            c.sock.settimeout(10)
            c.send(b"loXX\r\n0\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.header("Connection")), (400, "close"))
            self.assertTrue(c.is_closed_by_peer())

    def test_chunked_content_over_the_discard_cap_is_413_and_closes(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("Transfer-Encoding", "chunked")]))
            chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
            for _ in range(40):  # 2.5 MiB, over the 1 MiB cap
                try:
                    c.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
            r = c.read_response()
            self.assertEqual((r.status, r.header("Connection")), (413, "close"))
        # A chunk announcing more than the cap is refused at its size line, before its data.
        raw = get_request("/a.txt", [("Transfer-Encoding", "chunked")]) + b"%x\r\n" % (2 << 20)
        self.assertEqual(self.first_bytes_after(raw), b"HTTP/1.1 413")
        self.assert_alive()

    # ---- Expect ----

    def test_expect_100_continue_gets_100_then_the_response_after_the_content(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("Content-Length", "5"), ("Expect", "100-continue")],
                               method="GET"))
            interim = c.read_response()
            self.assertEqual((interim.status, interim.reason), (100, "Continue"))
            c.send(b"12345" + get_request("/p10.txt"))
            final = c.read_response()
            self.assertEqual((final.status, final.body), (200, b"A body\n"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, SMALL["/p10.txt"]))

    def test_expect_100_continue_on_post_gets_100_then_405_after_the_content(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("Content-Length", "3"), ("Expect", "100-continue")],
                               method="POST"))
            self.assertEqual(c.read_response().status, 100)
            c.send(b"abc" + get_request("/p11.txt"))
            self.assertEqual(c.read_response().status, 405)
            self.assertEqual(c.read_response().body, SMALL["/p11.txt"])

    def test_expect_100_continue_without_content_gets_no_100(self):
        with Conn(self.port) as c:
            r = c.request(get_request("/a.txt", [("Expect", "100-continue")]))
            self.assertEqual(r.status, 200)

    # ---- methods ----

    def test_methods_other_than_get_head_options_are_405_with_allow(self):
        for m in NOT_ALLOWED:
            with self.subTest(method=m):
                target = "localhost:443" if m == "CONNECT" else "/a.txt"
                with Conn(self.port) as c:
                    r = c.request(get_request(target, [("Content-Length", "0")], method=m))
                    self.assertEqual(r.status, 405)
                    self.assertEqual(r.header("Allow"), "GET, HEAD, OPTIONS")
                    r = c.request(get_request("/alive.txt"))
                    self.assertEqual(r.status, 200)

    def test_options_is_204_with_allow(self):
        for target in ("*", "/a.txt", "/"):
            with self.subTest(target=target):
                with Conn(self.port) as c:
                    r = c.request(get_request(target, method="OPTIONS"))
                    self.assertEqual(r.status, 204)
                    self.assertEqual(r.header("Allow"), "GET, HEAD, OPTIONS")
                    self.assertIsNone(r.header("Content-Length"))
                    self.assertEqual(c.request(get_request("/alive.txt")).status, 200)

    def test_absolute_form_target_is_served(self):
        r = self.get("http://example.com/a.txt")
        self.assertEqual((r.status, r.body), (200, b"A body\n"))

    def test_pipelined_requests_before_a_half_close_are_all_answered(self):
        # More answers than the output queue holds at once: those still unread in the input
        # when EOF arrives are answered too.
        want = b"A body\n"
        for _ in range(10):
            with Conn(self.port, timeout=10) as c:
                c.send(get_request("/a.txt") * 300)
                c.sock.shutdown(socket.SHUT_WR)
                for i in range(300):
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, want), "response %d" % i)
                self.assertTrue(c.is_closed_by_peer())
        self.assert_alive()

    def test_partial_head_then_close_gets_no_response_and_leaves_the_server_up(self):
        with Conn(self.port) as c:
            c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            try:
                data = c.sock.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
        self.assert_alive()


def _make_malformed_test(raw, status, must_close):
    def test(self):
        self.check_malformed(raw, status, must_close)
    return test


for _name, _raw, _status, _close in MALFORMED:
    setattr(Http1, "test_malformed_%s_is_%d" % (_name, _status),
            _make_malformed_test(_raw, _status, _close))


if __name__ == "__main__":
    unittest.main()
