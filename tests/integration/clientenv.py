"""Servers and helpers shared by the notmod get and notmod check integration tests.

Every server binds 127.0.0.1 on a port the kernel picks, every wait is bounded, and every
subprocess has a timeout. Python standard library only.
"""
import email.utils
import http.server
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from serverenv import is_reachable_by_others, shared_tempdir, tool

NOTMOD = os.environ.get("NOTMOD", "")
RUN_TIMEOUT = 60


def notmod_binary():
    if not NOTMOD or not os.access(NOTMOD, os.X_OK):
        raise AssertionError("NOTMOD is not set to the notmod binary: %r (run through ctest)"
                             % NOTMOD)
    return NOTMOD


def read_text(path, limit=4000):
    """The last `limit` characters of a log file, or '' when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-limit:]
    except OSError:
        return ""


def run(args, env=None, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL):
    """Runs notmod with args; returns the CompletedProcess (stdout as bytes)."""
    full_env = dict(os.environ)
    full_env.pop("XDG_CACHE_HOME", None)
    if env:
        full_env.update(env)
    return subprocess.run([notmod_binary()] + list(args), capture_output=True, env=full_env,
                          timeout=timeout, stdin=stdin)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


class Resource:
    """One URL of the ETag server. Fields may be changed while the server runs."""

    def __init__(self, body, etag=None, last_modified=None, cache_control=None, headers=None):
        self.body = body
        self.etag = etag
        self.last_modified = last_modified
        self.cache_control = cache_control
        self.headers = list(headers or [])
        # Test hooks: a 304 naming this tag instead of the current one; a 304 without
        # validators; a 304 carrying a bogus Content-Length.
        self.etag_on_304 = None
        self.bare_304 = False
        self.length_on_304 = None
        self.always_304 = False  # 304 to any conditional request, matching or not


class _EtagHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _validators(self, res):
        hdrs = []
        if res.etag:
            hdrs.append(("ETag", res.etag))
        if res.last_modified is not None:
            hdrs.append(("Last-Modified", http_date(res.last_modified)))
        if res.cache_control:
            hdrs.append(("Cache-Control", res.cache_control))
        return hdrs + res.headers

    def _not_modified(self, res):
        """RFC 9110 §13.2.2: If-None-Match decides; If-Modified-Since only without it."""
        inm = self.headers.get("If-None-Match")
        if res.always_304 and (inm is not None or "If-Modified-Since" in self.headers):
            return True
        if inm is not None:
            if not res.etag:
                return False
            if inm.strip() == "*":
                return True
            want = res.etag[2:] if res.etag.startswith("W/") else res.etag
            for member in re.findall(r'(?:W/)?"[^"]*"', inm):
                got = member[2:] if member.startswith("W/") else member
                if got == want:
                    return True
            return False
        ims = self.headers.get("If-Modified-Since")
        if ims is not None and res.last_modified is not None:
            try:
                when = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
            return int(res.last_modified) <= int(when)
        return False

    def _serve(self, head_only):
        server = self.server
        with server.lock:
            server.requests.append((self.command, self.path, dict(self.headers.items())))
            res = server.resources.get(self.path)
        if res is None:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)
            return
        if self._not_modified(res):
            self.send_response(304)
            if not res.bare_304:
                for name, value in self._validators(res):
                    if name == "ETag" and res.etag_on_304:
                        value = res.etag_on_304
                    self.send_header(name, value)
            if res.length_on_304 is not None:
                self.send_header("Content-Length", str(res.length_on_304))
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(res.body)))
        for name, value in self._validators(res):
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(res.body)

    def do_GET(self):
        self._serve(False)

    def do_HEAD(self):
        self._serve(True)


class EtagServer:
    """A stdlib HTTP/1.1 server with correct ETag / If-None-Match / If-Modified-Since handling,
    whose resources and misbehaviours the tests control."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EtagHandler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.resources = {}
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path, resource):
        with self.httpd.lock:
            self.httpd.resources[path] = resource
        return resource

    def requests(self):
        with self.httpd.lock:
            return list(self.httpd.requests)

    def clear_requests(self):
        with self.httpd.lock:
            self.httpd.requests.clear()


class RawServer:
    """An HTTP/1.1 server over raw sockets on 127.0.0.1:0, one request per connection, for
    answers no real server gives. Subclasses implement answer(head) -> bytes; the accept loop is
    bounded in time and every socket has a timeout."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.served = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def answer(self, head):
        raise NotImplementedError

    def serve(self, conn, head):
        """Sends the answer to one request head; override to stream."""
        conn.sendall(self.answer(head))

    def _loop(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" in data:
                        self.serve(conn, data.split(b"\r\n\r\n")[0])
                except OSError:
                    pass
                self.served += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


class TruncatingServer(RawServer):
    """Answers every request with a 200 announcing Content-Length: 1000000, sends 1000 bytes of
    the body, then closes: the server that disappears mid-transfer. Also answers conditional
    requests the same way, so a revalidation is cut short too. With truncate = False it sends
    the whole body (to fill a cache entry first)."""

    def __init__(self, announced=1000000, sent=1000):
        super().__init__()
        self.announced = announced
        self.sent = sent
        self.truncate = True

    def answer(self, head):
        return (f"HTTP/1.1 200 OK\r\nContent-Length: {self.announced}\r\n"
                "ETag: \"truncated\"\r\nCache-Control: no-cache\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + \
            b"x" * (self.sent if self.truncate else self.announced)


class ProcessServer:
    """A server subprocess whose port is known; stopped by its own pid on exit."""

    def __init__(self):
        self.proc = None
        self.port = None
        self.err = None

    def _stderr_file(self):
        """A file for the server's stderr, quoted when it fails to start."""
        self.err = tempfile.TemporaryFile()
        return self.err

    def _stderr_text(self):
        if not self.err:
            return ""
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-4000:]

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def _wait_port(self, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.err:
            self.err.close()
            self.err = None


class PythonHttpServer(ProcessServer):
    """python3 -m http.server over a directory: Last-Modified and If-Modified-Since, no ETag."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __enter__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", self.root,
             str(self.port)],
            stdout=subprocess.DEVNULL, stderr=self._stderr_file())
        if not self._wait_port():
            err = self._stderr_text()
            self.__exit__()
            raise RuntimeError("python3 -m http.server did not start; stderr:\n" + err)
        return self


class NginxServer(ProcessServer):
    """Debian's nginx serving a directory, with its pid, logs and temp paths in a temp dir."""

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.tmp = None

    def __enter__(self):
        nginx = tool("nginx")
        # Started as root, nginx runs its workers as nobody: the served tree and nginx's own
        # temp paths must be open to them, whatever the umask and the modes above the test's
        # directories.
        for d, _, names in os.walk(self.root):
            os.chmod(d, os.stat(d).st_mode | 0o755)
            for n in names:
                p = os.path.join(d, n)
                os.chmod(p, os.stat(p).st_mode | 0o644)
        if not is_reachable_by_others(self.root):
            raise AssertionError("nginx's workers cannot reach %s: make it with "
                                 "serverenv.shared_tempdir" % self.root)
        self.tmp = shared_tempdir("nm-nginx-")
        self.port = free_port()
        os.makedirs(os.path.join(self.tmp, "logs"))
        conf = os.path.join(self.tmp, "nginx.conf")
        t = self.tmp
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {t}/access.log;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
    }}
}}
""")
        self.proc = subprocess.Popen([nginx, "-p", t, "-c", conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=self._stderr_file())
        if not self._wait_port():
            err = self._stderr_text() + read_text(os.path.join(t, "error.log"))
            self.__exit__()
            raise RuntimeError(f"nginx did not start; stderr and error.log:\n{err}")
        return self

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


class NotmodServe(ProcessServer):
    """notmod serve --listen 127.0.0.1:0 DIR; the port is read from its startup line. Fails with
    the server's stderr when it exits at once or prints no URL within 5 s."""

    def __init__(self, root, extra=()):
        super().__init__()
        self.root = root
        self.extra = list(extra)

    def __enter__(self):
        # The startup line is on stderr (stdout carries the access log). The file is read with
        # pread: a seek would move the offset the server writes at.
        self.proc = subprocess.Popen(
            [notmod_binary(), "serve", "--listen", "127.0.0.1:0"] + self.extra + [self.root],
            stdout=subprocess.DEVNULL, stderr=self._stderr_file())
        deadline = time.monotonic() + 5
        for _ in range(1000):
            exited = self.proc.poll() is not None
            text = os.pread(self.err.fileno(), 1 << 20, 0).decode(errors="replace")
            m = re.search(r"^notmod: serving .* on http://127\.0\.0\.1:(\d+)/", text, re.M)
            if m:
                self.port = int(m.group(1))
                break
            if exited or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self.port is None:
            err = self._stderr_text()
            self.__exit__()
            raise RuntimeError("notmod serve exited or printed no http://127.0.0.1:PORT/ within "
                               "5 s; its stderr:\n" + err[-4000:])
        if not self._wait_port():
            err = self._stderr_text()
            self.__exit__()
            raise RuntimeError("notmod serve printed a URL but does not accept connections; "
                               "its stderr:\n" + err[-4000:])
        return self

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def write_file(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def cache_files(cache_root):
    """Every file under the cache directory with its bytes, for before/after comparisons."""
    out = {}
    for dirpath, _, names in os.walk(cache_root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, cache_root)] = f.read()
    return out


class SlowServer(TruncatingServer):
    """Sends a complete 200 of `chunks` x `chunk` bytes, pausing `pause` seconds between
    chunks: a download that takes a while."""

    def __init__(self, chunks=40, chunk=10000, pause=0.05):
        super().__init__(announced=chunks * chunk, sent=chunks * chunk)
        self.chunks, self.chunk, self.pause = chunks, chunk, pause

    def serve(self, conn, head):
        conn.sendall((f"HTTP/1.1 200 OK\r\nContent-Length: {self.announced}\r\n"
                      "Cache-Control: no-cache\r\nETag: \"slow\"\r\n\r\n").encode())
        for _ in range(self.chunks):
            if self.stop.is_set():
                break
            conn.sendall(b"s" * self.chunk)
            time.sleep(self.pause)
