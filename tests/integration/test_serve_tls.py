"""notmod serve over TLS, against a test CA made with the openssl CLI for each run: curl over
HTTP/1.1 and HTTP/2 (200, 304, HEAD, a range, a large body), SNI, the protocol versions and
ciphers, ALPN, session resumption, a cleartext listener beside a TLS one, garbage and stalled
handshakes, certificates re-read on SIGHUP, key file permissions, broken files at start, and
HTTP/2 with prior knowledge (--h2c); nghttp and h2load as HTTP/2 clients."""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from launch import (NotmodServer, Site, TestCA, fetch, require_binary, run, tool, wait_until)

CLIENT_TIMEOUT_S = 40
BIG_BYTES = 8 << 20  # well over the socket buffers of the loopback
HANDSHAKE_LINE = "TLS handshake with"


def client(*argv, stdin=b""):
    """Runs a client command; returns the CompletedProcess (bytes)."""
    return subprocess.run([tool(argv[0]), *argv[1:]], input=stdin, capture_output=True,
                          timeout=CLIENT_TIMEOUT_S)


class Curl:
    """curl against a server with the test CA; each call's body and head go to files."""

    def __init__(self, ca, work):
        self.ca = ca
        self.work = work

    def get(self, url, *args):
        """(status, HTTP version, body, head text)."""
        body, head = os.path.join(self.work, "body"), os.path.join(self.work, "head")
        for p in (body, head):
            if os.path.exists(p):
                os.unlink(p)
        r = client("curl", "-sS", "--max-time", "30", "--cacert", self.ca.cert, "-o", body, "-D",
                   head, "-w", "%{http_code} %{http_version}", *args, url)
        if r.returncode != 0:
            raise AssertionError("curl %s failed (%d): %s" % (url, r.returncode,
                                                                r.stderr.decode()))
        status, version = r.stdout.decode().split()
        data = open(body, "rb").read() if os.path.exists(body) else b""
        return int(status), version, data, open(head).read()


def s_client(port, *args):
    """openssl s_client's stdout and stderr, as text, for one handshake with nothing sent."""
    r = client("openssl", "s_client", "-connect", "127.0.0.1:%d" % port, *args)
    return r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=ca.cert)
    ctx.check_hostname = True
    return ctx


def open_tls(port, ca, name="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return tls_context(ca).wrap_socket(raw, server_hostname=name)


def fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def tls_get(sock, path):
    """One HTTP/1.1 GET on a TLS socket, the connection kept; returns (status, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    data = b""
    for _ in range(1000):
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                return int(head.split()[1]), rest[:int(m.group(1))]
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raise AssertionError("no whole response: %r" % data[:200])


def handshake_lines(server):
    return [l for l in server.stderr().splitlines() if HANDSHAKE_LINE in l]


@require_binary
class TlsListener(unittest.TestCase):
    """One TLS listener with an SNI name, and a cleartext listener beside it."""

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.work = tempfile.mkdtemp(prefix="notmod-tls-")
        cls.site = Site()
        try:
            cls.cert, cls.key = cls.ca.issue("localhost", ["IP:127.0.0.1"])
            cls.other_cert, cls.other_key = cls.ca.issue("other.test")
            cls.site.write("a.txt", b"hello over tls\n")
            cls.big = os.urandom(BIG_BYTES)
            cls.site.write("big.bin", cls.big)
            cls.server = NotmodServer(cls.site.root, [
                "--tls-cert", cls.cert, "--tls-key", cls.key,
                "--tls", "other.test=%s,%s" % (cls.other_cert, cls.other_key),
                "--listen", "127.0.0.1:0", "--workers", "2"]).start()
        except BaseException:
            cls.site.cleanup()
            cls.ca.cleanup()
            raise
        (scheme, _, cls.port), (plain, _, cls.plain_port) = cls.server.addresses
        assert scheme == "https" and plain == "http", cls.server.startup_line
        cls.curl = Curl(cls.ca, cls.work)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_checked()
        finally:
            cls.site.cleanup()
            cls.ca.cleanup()
            shutil.rmtree(cls.work, ignore_errors=True)

    def url(self, path, host="127.0.0.1"):
        return "https://%s:%d%s" % (host, self.port, path)

    def test_curl_gets_200_304_head_and_a_range_over_http11_and_http2(self):
        etags = os.path.join(self.work, "etags")
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            with self.subTest(flag):
                if os.path.exists(etags):
                    os.unlink(etags)
                status, got, body, head = self.curl.get(self.url("/a.txt"), flag,
                                                        "--etag-save", etags)
                self.assertEqual((status, got, body), (200, version, b"hello over tls\n"))
                self.assertRegex(head, r"(?i)\netag: \"")
                status, got, body, head = self.curl.get(self.url("/a.txt"), flag,
                                                        "--etag-compare", etags)
                self.assertEqual((status, got, body), (304, version, b""))
                status, got, _, head = self.curl.get(self.url("/a.txt"), flag, "-I")
                self.assertEqual((status, got), (200, version))
                self.assertRegex(head, r"(?im)^content-length: 15$")
                status, got, body, head = self.curl.get(self.url("/a.txt"), flag, "-r", "0-4")
                self.assertEqual((status, got, body), (206, version, b"hello"))

    def test_a_body_larger_than_the_socket_buffers_arrives_intact(self):
        want = hashlib.sha256(self.big).hexdigest()
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            with self.subTest(flag):
                status, got, body, _ = self.curl.get(self.url("/big.bin"), flag)
                self.assertEqual((status, got, len(body)), (200, version, BIG_BYTES))
                self.assertEqual(hashlib.sha256(body).hexdigest(), want)

    def test_sni_picks_the_certificate_of_the_name_asked_for(self):
        out = s_client(self.port, "-servername", "other.test")
        self.assertRegex(out, r"subject=CN ?= ?other\.test")
        out = s_client(self.port, "-servername", "localhost")
        self.assertRegex(out, r"subject=CN ?= ?localhost")
        out = s_client(self.port, "-noservername")
        self.assertRegex(out, r"subject=CN ?= ?localhost")
        status, _, body, _ = self.curl.get(self.url("/a.txt", "other.test"), "--resolve",
                                           "other.test:%d:127.0.0.1" % self.port)
        self.assertEqual((status, body), (200, b"hello over tls\n"))

    def test_tls_12_and_13_work_and_11_is_refused(self):
        self.assertIn("New, TLSv1.3", s_client(self.port, "-tls1_3"))
        self.assertIn("New, TLSv1.2", s_client(self.port, "-tls1_2"))
        out = s_client(self.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotIn("New, TLSv1.1", out)
        self.assertRegex(out, r"alert protocol version|no protocols available|Cipher is \(NONE\)")

    def test_tls_12_offers_only_ecdhe_with_aead(self):
        self.assertIn("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305",
                      s_client(self.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"))
        for weak in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
            with self.subTest(weak):
                out = s_client(self.port, "-tls1_2", "-cipher", weak)
                self.assertNotIn("Cipher is " + weak, out)

    def test_alpn_prefers_h2_and_falls_back_to_http11(self):
        self.assertIn("ALPN protocol: h2", s_client(self.port, "-alpn", "http/1.1,h2"))
        self.assertIn("ALPN protocol: http/1.1", s_client(self.port, "-alpn", "http/1.1"))
        self.assertIn("No ALPN negotiated", s_client(self.port, "-alpn", "spdy/3"))
        self.assertIn("No ALPN negotiated", s_client(self.port))

    def test_a_session_ticket_resumes_the_session(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version):
                ctx = tls_context(self.ca)
                ctx.minimum_version = ctx.maximum_version = version
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=10),
                                     server_hostname="localhost") as first:
                    # A TLS 1.3 ticket comes after the handshake, before the response.
                    self.assertEqual(tls_get(first, "/a.txt")[0], 200)
                    session = first.session
                    self.assertFalse(first.session_reused)
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=10),
                                     server_hostname="localhost", session=session) as again:
                    self.assertTrue(again.session_reused)
                    self.assertEqual(tls_get(again, "/a.txt")[0], 200)

    def test_a_cleartext_listener_works_beside_the_tls_one(self):
        r = fetch(self.plain_port, "/a.txt")
        self.assertEqual((r.status, r.body), (200, b"hello over tls\n"))
        r = client("curl", "-sS", "--max-time", "10", "--cacert", self.ca.cert,
                   "https://127.0.0.1:%d/a.txt" % self.plain_port)
        self.assertNotEqual(r.returncode, 0)

    def test_nghttp_and_h2load_succeed_over_h2(self):
        r = client("nghttp", "-s", self.url("/a.txt"))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        r = client("h2load", "-n", "200", "-c", "4", "-m", "10", self.url("/a.txt"))
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("200 succeeded, 0 failed, 0 errored", out)
        self.assertIn("Application protocol: h2", out)


@require_binary
class TlsLifecycle(unittest.TestCase):
    """A server of its own per test: handshake failures, timeouts, reloads, start-up errors."""

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.site = Site()
        cls.site.write("a.txt", b"hello over tls\n")

    @classmethod
    def tearDownClass(cls):
        cls.site.cleanup()
        cls.ca.cleanup()

    def start(self, cert, key, *options):
        srv = NotmodServer(self.site.root, ["--tls-cert", cert, "--tls-key", key, "--workers",
                                            "1", *options]).start()
        self.addCleanup(srv.stop_checked)
        return srv

    def files(self, stem):
        """A certificate and key at paths of their own, which the test may replace."""
        cert, key = self.ca.issue("localhost", ["IP:127.0.0.1"])
        d = tempfile.mkdtemp(prefix="notmod-tls-", dir=self.ca.dir)
        paths = os.path.join(d, stem + ".pem"), os.path.join(d, stem + ".key")
        shutil.copyfile(cert, paths[0])
        shutil.copyfile(key, paths[1])
        os.chmod(paths[1], 0o600)
        return paths

    def test_garbage_instead_of_a_client_hello_closes_with_one_log_line(self):
        srv = self.start(*self.files("garbage"))
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            try:
                for _ in range(20):
                    s.sendall(b"\x00garbage not TLS\xff" * 64)
                    time.sleep(0.01)
            except OSError:
                pass  # closed under the sender: what is tested
            closed = False
            for _ in range(100):
                try:
                    if s.recv(65536) == b"":
                        closed = True
                        break
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
            self.assertTrue(closed)
        self.assertTrue(wait_until(lambda: handshake_lines(srv), 5))
        time.sleep(0.3)
        self.assertEqual(len(handshake_lines(srv)), 1, srv.stderr())
        r = client("curl", "-sS", "--cacert", self.ca.cert, "https://127.0.0.1:%d/a.txt" % srv.port)
        self.assertEqual(r.stdout, b"hello over tls\n")

    def test_many_failed_handshakes_log_one_line_a_second(self):
        srv = self.start(*self.files("flood"))
        t0 = time.monotonic()
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    s.recv(100)
                except OSError:
                    pass
        time.sleep(0.2)
        seconds = time.monotonic() - t0
        self.assertGreaterEqual(len(handshake_lines(srv)), 1)
        self.assertLessEqual(len(handshake_lines(srv)), int(seconds) + 2, srv.stderr())

    def test_a_stalled_handshake_is_closed_after_the_header_timeout(self):
        srv = self.start(*self.files("stall"), "--header-timeout", "1")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never goes on
            t0 = time.monotonic()
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
            elapsed = time.monotonic() - t0
        self.assertEqual(got, b"")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 4.0)

    def test_sighup_loads_a_new_certificate_for_new_connections_only(self):
        cert, key = self.files("reload")
        srv = self.start(cert, key)
        before = open_tls(srv.port, self.ca)
        self.addCleanup(before.close)
        self.assertEqual(tls_get(before, "/a.txt"), (200, b"hello over tls\n"))
        old = fingerprint(before)
        new_cert, new_key = self.ca.issue("localhost", ["IP:127.0.0.1"])
        shutil.copyfile(new_cert, cert)
        shutil.copyfile(new_key, key)
        srv.signal(signal.SIGHUP)

        def new_print():
            with open_tls(srv.port, self.ca) as s:
                return fingerprint(s) if fingerprint(s) != old else None

        self.assertTrue(wait_until(new_print, 10))
        with open(new_cert, "rb") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read().decode())
        self.assertEqual(new_print(), hashlib.sha256(der).hexdigest())
        # The connection made before still works, with its certificate.
        self.assertEqual(tls_get(before, "/a.txt"), (200, b"hello over tls\n"))
        self.assertEqual(fingerprint(before), old)

    def test_sighup_with_a_broken_certificate_keeps_the_old_one(self):
        cert, key = self.files("broken")
        srv = self.start(cert, key)
        with open_tls(srv.port, self.ca) as s:
            old = fingerprint(s)
        with open(cert, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "keeping the previous" in srv.stderr(), 10))
        line = [l for l in srv.stderr().splitlines() if "keeping the previous" in l][0]
        self.assertIn(cert, line)
        with open_tls(srv.port, self.ca) as s:
            self.assertEqual(fingerprint(s), old)
            self.assertEqual(tls_get(s, "/a.txt"), (200, b"hello over tls\n"))

    def test_a_key_readable_by_others_is_warned_about(self):
        cert, key = self.files("open")
        os.chmod(key, 0o644)
        srv = self.start(cert, key)
        self.assertRegex(srv.stderr(), r"warning: TLS key %s is readable by others" % re.escape(key))
        cert2, key2 = self.files("closed")
        srv2 = self.start(cert2, key2)
        self.assertNotIn("warning: TLS key", srv2.stderr())

    def test_a_broken_certificate_or_key_at_start_is_an_error_naming_the_file(self):
        cert, key = self.files("start")
        bad = os.path.join(self.ca.dir, "bad.pem")
        with open(bad, "wb") as f:
            f.write(b"not a certificate\n")
        other_cert, other_key = self.ca.issue("other.test")
        for args, named in (((bad, key), bad), ((cert, bad), bad),
                            ((cert, os.path.join(self.ca.dir, "missing.key")), "missing.key"),
                            ((cert, other_key), other_key)):
            with self.subTest(named):
                r = run(["serve", "--listen", "127.0.0.1:0", "--tls-cert", args[0], "--tls-key",
                         args[1], self.site.root], timeout=20, text=True)
                self.assertNotIn(r.returncode, (0, None))
                self.assertIn(named, r.stderr)
                self.assertNotIn("serving", r.stderr)
        del other_cert

    def test_tls_options_without_their_pair_are_usage_errors(self):
        cert, key = self.files("usage")
        for args in (["--tls-cert", cert, "--listen", "127.0.0.1:0"],
                     ["--listen", "127.0.0.1:0", "--tls-cert", cert],
                     ["--listen", "127.0.0.1:0", "--tls", "x.test=%s,%s" % (cert, key)],
                     ["--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                      "--tls", "x.test=%s" % cert]):
            with self.subTest(args):
                r = run(["serve", *args, self.site.root], timeout=20, text=True)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--tls", r.stderr)


@require_binary
class CleartextHttp2(unittest.TestCase):
    """--h2c: HTTP/2 with prior knowledge beside HTTP/1.1 on one cleartext listener."""

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        cls.site.write("a.txt", b"hello h2c\n")
        cls.server = NotmodServer(cls.site.root, ["--h2c", "--workers", "1", "--header-timeout",
                                                  "2"]).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_checked()
        finally:
            cls.site.cleanup()

    def test_prior_knowledge_gets_http2_and_http11_still_works(self):
        url = "http://127.0.0.1:%d/a.txt" % self.server.port
        for flag, version in (("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")):
            with self.subTest(flag):
                r = client("curl", "-sS", "--max-time", "20", flag, "-w", " %{http_version}", url)
                self.assertEqual(r.stdout, b"hello h2c\n " + version.encode())
        r = fetch(self.server.port, "/a.txt")
        self.assertEqual((r.status, r.body), (200, b"hello h2c\n"))

    def test_h2load_with_prior_knowledge_has_no_failure(self):
        r = client("h2load", "-n", "100", "-c", "2", "http://127.0.0.1:%d/a.txt"
                   % self.server.port)
        out = r.stdout.decode()
        self.assertIn("100 succeeded, 0 failed, 0 errored", out)
        self.assertIn("Application protocol: h2c", out)

    def test_a_preface_cut_short_waits_then_times_out_like_a_request(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n")
            s.settimeout(1.0)
            with self.assertRaises(socket.timeout):
                s.recv(100)
            s.settimeout(5.0)
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
            self.assertEqual(got, b"")


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_GOAWAY = 7


def h2_frame_types(data):
    """The types of the whole frames in data (RFC 9113 §4.1: 24-bit length, type, flags, id)."""
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        types.append(data[3])
        data = data[9 + length:]
    return types


def read_to_end(sock, timeout):
    """Everything the peer sends until it closes, within timeout; (bytes, closed)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except socket.timeout:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


@require_binary
class Http2ConnectionLifetime(unittest.TestCase):
    """The worker's timeouts and graceful stop for HTTP/2 connections."""

    def setUp(self):
        self.site = Site()
        self.addCleanup(self.site.cleanup)
        self.site.write("a.txt", b"hello h2c\n")

    def test_an_idle_http2_connection_is_closed_after_the_idle_timeout(self):
        srv = NotmodServer(self.site.root, ["--h2c", "--workers", "1", "--idle-timeout",
                                            "1"]).start()
        self.addCleanup(srv.stop_checked)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(H2_PREFACE + H2_EMPTY_SETTINGS)
            t0 = time.monotonic()
            data, closed = read_to_end(s, 6)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed)
        self.assertIn(4, h2_frame_types(data))  # the server's SETTINGS
        self.assertGreaterEqual(elapsed, 0.9)

    def test_a_graceful_stop_sends_goaway_to_http2_connections(self):
        srv = NotmodServer(self.site.root, ["--h2c", "--workers", "1"]).start()
        self.addCleanup(srv.stop)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(H2_PREFACE + H2_EMPTY_SETTINGS)
            s.settimeout(5)
            first = s.recv(65536)
            srv.signal(signal.SIGTERM)
            data, closed = read_to_end(s, 10)
        self.assertTrue(closed)
        self.assertIn(H2_GOAWAY, h2_frame_types(first + data))
        self.assertEqual(srv.wait(10), 0)


if __name__ == "__main__":
    unittest.main()
