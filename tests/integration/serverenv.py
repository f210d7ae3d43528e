"""Start and stop a real `notmod serve` on 127.0.0.1:0 and talk to it over raw sockets.

The binary comes from the NOTMOD environment variable. Every socket, subprocess and wait here is
bounded in time; every loop is bounded in count.
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

NOTMOD = os.environ.get("NOTMOD", "")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 10.0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")

_STARTUP = re.compile(r"^notmod: serving (.+) on (http://\S+?)(?:, http://\S+?)* \(")
_ADDRESS = re.compile(r"http://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)/")


def require_binary(testcase_class):
    """Fails a whole test class when NOTMOD does not name an executable: ctest always sets it, so
    a missing binary is a broken run, never a reason to skip."""
    if not NOTMOD or not os.access(NOTMOD, os.X_OK):
        def fail(cls):
            raise AssertionError("NOTMOD does not name the notmod binary: %r (run through ctest)"
                                 % NOTMOD)
        testcase_class.setUpClass = classmethod(fail)
    return testcase_class


def tool(name):
    """The path of a command that `make test` installs (scripts/install-deps --test). A missing
    one fails the test that needs it: a skip would let a broken setup pass."""
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin")
    if not path:
        raise AssertionError("%s is not installed (scripts/install-deps --test installs it)" % name)
    return path


def is_reachable_by_others(path):
    """True when every directory from / down to path lets any user search it."""
    p = os.path.realpath(path)
    for _ in range(4096):
        if not os.stat(p).st_mode & 0o001:
            return False
        if p == os.sep:
            return True
        p = os.path.dirname(p)
    return False


def shared_tempdir(prefix):
    """A new directory of mode 0755 that every user can reach, for what a process running as
    another user must open (nginx's workers, notmod as nobody). The parents are checked, not
    assumed: TMPDIR, like the checkout, may sit in a directory closed to other users."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(base) and is_reachable_by_others(base):
            d = tempfile.mkdtemp(prefix=prefix, dir=base)
            os.chmod(d, 0o755)
            return d
    raise AssertionError("no temporary directory that other users can reach (tried TMPDIR, "
                         "/tmp, /var/tmp, /dev/shm)")


def copy_for_other_users(binary):
    """binary copied, mode 0755, into a new shared_tempdir: another user may not reach the build
    tree (a clone in a `mktemp -d` directory is 0700). Remove os.path.dirname(copy) when done."""
    d = shared_tempdir("notmod-bin-")
    copy = os.path.join(d, os.path.basename(binary))
    shutil.copyfile(binary, copy)
    os.chmod(copy, 0o755)
    return copy


class Site:
    """A temporary site: base/secret.txt outside the root, base/site/ as the root."""

    SECRET = b"TOP-SECRET-DO-NOT-SERVE\n"

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="notmod-integ-")
        self.root = os.path.join(self.base, "site")
        os.mkdir(self.root)
        self.write_outside("secret.txt", self.SECRET)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def write(self, rel, data, mtime=None):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        if mtime is not None:
            os.utime(p, (mtime, mtime))
        return p

    def mkdir(self, rel):
        os.makedirs(self.path(rel), exist_ok=True)

    def write_outside(self, name, data):
        p = os.path.join(self.base, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


class Server:
    """One `notmod serve` process. Use start(), then stop() (or the context manager)."""

    def __init__(self, root, options=(), listen="127.0.0.1:0"):
        self.root = root
        self.options = list(options)
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = None
        self.startup_line = ""
        self._err = None
        self.stderr_text = ""

    def argv(self):
        return [NOTMOD, "serve", "--access-log", "off", "--listen", self.listen,
                *self.options, self.root]

    def start(self):
        self._err = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._err, env=env)
        line = self._read_line(START_TIMEOUT_S)
        m = _STARTUP.match(line)
        a = _ADDRESS.search(line)
        if not m or not a:
            self.stop()
            raise RuntimeError("no startup line from notmod serve: %r; stderr: %s"
                               % (line, self.stderr_text))
        self.startup_line = line
        self.host = a.group(1).strip("[]")
        self.port = int(a.group(2))
        return self

    def _read_line(self, timeout):
        """The startup line, from stderr (stdout carries the access log), or '' when none comes
        within timeout. The file is read with pread: a seek would move the offset the server
        writes at."""
        deadline = time.monotonic() + timeout
        fd = self._err.fileno()
        for _ in range(int(timeout / 0.02) + 2):
            exited = self.proc.poll() is not None
            text = os.pread(fd, 1 << 20, 0).decode("utf-8", "replace")
            for line in text.splitlines(keepends=True):
                if line.startswith("notmod: serving ") and line.endswith("\n"):
                    return line[:-1]
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return ""

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (host, self.port, path)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.is_running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit status within timeout, or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, a bounded wait, SIGKILL as a last resort. Returns the exit status (None when
        it had to be killed)."""
        if self.proc is None:
            return None
        status = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            status = self.wait(timeout)
            if status is None:
                self.proc.kill()
                self.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._err:
            self._err.seek(0)
            self.stderr_text = self._err.read().decode("utf-8", "replace")
            self._err.close()
            self._err = None
        return status

    def sanitizer_report(self):
        """The stderr text when it holds a sanitizer report, else ''."""
        if any(mark in self.stderr_text for mark in SANITIZER_MARKS):
            return self.stderr_text
        return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- raw HTTP/1.1 over sockets ------------------------------------------------------------------


class Response:
    def __init__(self, status, reason, version, headers, body):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers  # list of (name, value) in order
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    def all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def has(self, name):
        return self.header(name) is not None

    def __repr__(self):
        return "<Response %d %s %r body=%d bytes>" % (self.status, self.reason, self.headers,
                                                     len(self.body))


class ProtocolError(Exception):
    pass


class Conn:
    """A raw client connection with a read buffer, so pipelined responses parse one by one."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT_S):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode("latin-1"))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_until(self, mark, limit=1 << 20):
        for _ in range(100000):
            i = self.buf.find(mark)
            if i >= 0:
                out = self.buf[:i + len(mark)]
                self.buf = self.buf[i + len(mark):]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (mark, limit))
            if not self._fill():
                raise ProtocolError("connection closed before %r (have %r)" % (mark, self.buf))
        raise ProtocolError("too many reads")

    def read_exact(self, n):
        for _ in range(1000000):
            if len(self.buf) >= n:
                break
            if not self._fill():
                raise ProtocolError("connection closed with %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request=False):
        """Reads one response; 1xx interim responses are returned as they come."""
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or name != name.strip():
                raise ProtocolError("bad header line %r" % line)
            headers.append((name, value.strip()))
        resp = Response(int(m.group(2)), m.group(3), m.group(1), headers, b"")
        no_body = head_request or resp.status in (204, 304) or 100 <= resp.status < 200
        if not no_body:
            if resp.header("Transfer-Encoding") is not None:
                raise ProtocolError("unexpected Transfer-Encoding in a response")
            length = resp.header("Content-Length")
            if length is None:
                raise ProtocolError("response without Content-Length: %r" % resp)
            resp.body = self.read_exact(int(length))
        return resp

    def request(self, raw, head_request=False):
        self.send(raw)
        return self.read_response(head_request)

    def is_closed_by_peer(self, timeout=5.0):
        """True when the server closes (EOF or reset) within timeout with no further bytes."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if chunk:
            self.buf += chunk
            return False
        return True


def get_request(path, headers=(), method="GET", host="localhost", version="HTTP/1.1"):
    """Bytes of a simple request; headers is a sequence of (name, value)."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def fetch(port, path, headers=(), method="GET", host="127.0.0.1"):
    """One request on a fresh connection."""
    with Conn(port, host) as c:
        return c.request(get_request(path, headers, method), head_request=(method == "HEAD"))


def raw_exchange(port, raw, head_request=False):
    """Sends raw bytes on a fresh connection; returns (response, closed_after)."""
    with Conn(port) as c:
        c.send(raw)
        resp = c.read_response(head_request)
        return resp, c.is_closed_by_peer()


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        if predicate():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return predicate()


def http_date(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


def parse_http_date(s):
    import calendar
    return calendar.timegm(time.strptime(s, "%a, %d %b %Y %H:%M:%S GMT"))


class ServerTestCase(unittest.TestCase):
    """A site and a server shared by the tests of one class; SERVER_OPTIONS picks the options.
    The server's stderr is checked for sanitizer reports when it stops."""

    SERVER_OPTIONS = ()

    @classmethod
    def populate(cls, site):
        pass

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        try:
            cls.populate(cls.site)
            cls.server = Server(cls.site.root, cls.SERVER_OPTIONS).start()
        except BaseException:
            cls.site.cleanup()
            raise
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        status = cls.server.stop()
        cls.site.cleanup()
        report = cls.server.sanitizer_report()
        if report:
            raise AssertionError("sanitizer report from the server:\n" + report[-6000:])
        if status != 0:
            raise AssertionError("server exited with %r; stderr:\n%s"
                                 % (status, cls.server.stderr_text[-4000:]))

    def get(self, path, headers=(), method="GET"):
        return fetch(self.port, path, headers, method)

    def get_with_etag(self, path, timeout=10.0):
        """GET once the server sends an ETag for path: a large file modified in the last two
        seconds is served without one until its bytes are hashed off the event loop."""
        r = self.get(path)
        for _ in range(int(timeout / 0.1)):
            if r.status != 200 or r.has("ETag"):
                break
            time.sleep(0.1)
            r = self.get(path)
        return r

    def assert_alive(self):
        """The server still answers a plain request on a new connection."""
        self.assertTrue(self.server.is_running(), "server process exited")
        r = fetch(self.port, "/alive.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"alive\n")

    def start_server(self, options=(), root=None):
        """An extra server for one test, stopped at cleanup with the same checks."""
        srv = Server(root or self.site.root, options).start()

        def finish():
            status = srv.stop()
            report = srv.sanitizer_report()
            self.assertEqual(report, "", "sanitizer report")
            self.assertEqual(status, 0, "server exit status; stderr: " + srv.stderr_text[-2000:])

        self.addCleanup(finish)
        return srv
