"""The servers and commands the integration tests run, and the clients that talk to them:
`notmod serve`, nginx (serving files, as a shared cache, as a TLS terminator), Varnish, HAProxy
and python3 -m http.server as processes on 127.0.0.1, stdlib and raw-socket servers in threads,
notmod's other commands, raw HTTP/1.1 and http.client clients (over TLS too).

The binary comes from the NOTMOD environment variable. Every socket, subprocess and wait here is
bounded in time; every loop is bounded in count. Python standard library only.
"""

import atexit
import base64
import calendar
import email.utils
import hashlib
import http.client
import http.server
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

NOTMOD = os.environ.get("NOTMOD", "")
NOBODY = 65534
START_TIMEOUT_S = 20.0
VARNISH_START_TIMEOUT_S = 90.0  # cc compiles the VCL first
STOP_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 60
IO_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior",
                   "ThreadSanitizer")

_STARTUP = re.compile(r"^notmod: serving (.+) on (https?://\S+?)(?:, https?://\S+?)* \(")
_ADDRESS = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)/")
_ADDRESSES = re.compile(r"(https?)://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)/")


# ---- binaries and commands ----------------------------------------------------------------------


def notmod_binary():
    """NOTMOD, or an AssertionError: ctest always sets it, so a missing binary is a broken run,
    never a reason to skip."""
    if not NOTMOD or not os.access(NOTMOD, os.X_OK):
        raise AssertionError("NOTMOD does not name the notmod binary: %r (run through ctest)"
                             % NOTMOD)
    return NOTMOD


def require_binary(testcase_class):
    """Fails a whole test class, from its setUpClass, when NOTMOD does not name an executable."""
    try:
        notmod_binary()
    except AssertionError:
        testcase_class.setUpClass = classmethod(lambda cls: notmod_binary())
    return testcase_class


def tool(name):
    """The path of a command that `make test` installs (scripts/install-deps --test). A missing
    one fails the test that needs it: a skip would let a broken setup pass."""
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin")
    if not path:
        raise AssertionError("%s is not installed (scripts/install-deps --test installs it)" % name)
    return path


_nobody_copies = {}  # binary -> its copy that nobody can run, made once per process


def as_user(as_nobody):
    """The notmod binary and the Popen arguments that run it as the caller, or as nobody. nobody
    runs a copy kept in a directory open to every user, from there: the checkout and its parents
    may be closed to it (a clone in a `mktemp -d` directory is 0700)."""
    binary = notmod_binary()
    if not as_nobody:
        return binary, {}
    if binary not in _nobody_copies:
        copy = copy_for_other_users(binary)
        atexit.register(shutil.rmtree, os.path.dirname(copy), True)
        _nobody_copies[binary] = copy
    copy = _nobody_copies[binary]
    return copy, {"user": NOBODY, "group": NOBODY, "extra_groups": [],
                  "cwd": os.path.dirname(copy)}


def run(args, env=None, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL, as_nobody=False,
        text=False):
    """Runs notmod with args, without XDG_CACHE_HOME unless env sets it, and with the test
    process's ETag store as the default one of `notmod serve` (CACHE_DIRECTORY); returns the
    CompletedProcess (stdout and stderr as bytes, or str with text)."""
    full_env = dict(os.environ)
    full_env.pop("XDG_CACHE_HOME", None)
    full_env["CACHE_DIRECTORY"] = etag_store_for_tests()
    if env:
        full_env.update(env)
    binary, how = as_user(as_nobody)
    return subprocess.run([binary, *args], capture_output=True, env=full_env, timeout=timeout,
                          stdin=stdin, text=text, **how)


# ---- a test certificate authority ----------------------------------------------------------------


class TestCA:
    """A certificate authority made with the openssl CLI in a new temporary directory, and the
    server certificates it signs (P-256 keys, mode 0600). Nothing is downloaded; remove with
    cleanup()."""

    def __init__(self):
        self.openssl = tool("openssl")
        self.dir = tempfile.mkdtemp(prefix="notmod-ca-")
        self.cert = os.path.join(self.dir, "ca.pem")
        self._key = os.path.join(self.dir, "ca.key")
        self._serial = 0
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self._key, "-out", self.cert, "-days", "2",
                      "-subj", "/CN=notmod test CA")

    def _openssl(self, *args):
        r = subprocess.run([self.openssl, *args], capture_output=True, timeout=RUN_TIMEOUT_S)
        if r.returncode != 0:
            raise AssertionError("openssl %s failed: %s" % (args[0], r.stderr.decode()[-2000:]))
        return r.stdout

    def issue(self, name, hosts=(), stem=None):
        """A certificate for CN=name and subjectAltName DNS:name plus hosts (IP addresses as
        IP:...), signed by the CA. Returns (cert path, key path); stem names the files."""
        self._serial += 1
        stem = os.path.join(self.dir, stem or "%s-%d" % (name, self._serial))
        key, csr, ext = stem + ".key", stem + ".csr", stem + ".ext"
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name)
        os.chmod(key, 0o600)
        alt = ["DNS:%s" % name] + [h if h.startswith("IP:") else "DNS:" + h for h in hosts]
        write_file(ext, ("subjectAltName=%s\n" % ",".join(alt)).encode())
        self._openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self._key,
                      "-set_serial", str(1000 + self._serial), "-days", "2", "-extfile", ext,
                      "-out", stem + ".pem")
        return stem + ".pem", key

    def spki_sha256(self, key):
        """The base64 SHA-256 of the public key of key (what Chromium's
        --ignore-certificate-errors-spki-list takes)."""
        der = self._openssl("pkey", "-in", key, "-pubout", "-outform", "DER")
        return base64.b64encode(hashlib.sha256(der).digest()).decode()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- files, dates and waits ---------------------------------------------------------------------


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


def write_file(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


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
        return write_file(p, data if isinstance(data, bytes) else data.encode(), mtime)

    def mkdir(self, rel):
        os.makedirs(self.path(rel), exist_ok=True)

    def write_outside(self, name, data):
        return write_file(os.path.join(self.base, name), data)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def parse_http_date(s):
    return calendar.timegm(time.strptime(s, "%a, %d %b %Y %H:%M:%S GMT"))


def blocks_sigterm(pid):
    """Whether the process's main thread has SIGTERM blocked now (the server blocks it before it
    sets anything up, and takes it with sigwait from then on)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)) != 0
    except OSError:
        pass
    return False


def wait_until(predicate, timeout, interval=0.05):
    """The first true value predicate returns within timeout, else its value at the end."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return predicate()


def free_port():
    """A port on 127.0.0.1 that nothing listens on now, for servers that cannot take port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LOG_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ')


def log_size(path):
    """The size of a log file now (0 before it exists): where the lines still to come start."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def access_log_requests(path, offset=0):
    """(method, path, status) of each request an access log in the Combined format (notmod's
    and nginx's default) holds from byte offset on."""
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("latin-1")
    return [(m.group(1), m.group(2), int(m.group(3))) for m in _LOG_REQUEST.finditer(text)]


# ---- a process's resources, from /proc ---------------------------------------------------------


def process_cpu_seconds(pid):
    """User plus system CPU time the process has used, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_leases(path):
    """The leases /proc/locks lists on the file at path: (pid, type) pairs, type READ or WRITE
    (or UNLCK while a break is pending)."""
    st = os.stat(path)
    dev = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    out = []
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "LEASE" in fields and len(fields) >= 6 and fields[-3] == dev:
                out.append((int(fields[-4]), fields[-5]))
    return out


def process_rss_bytes(pid):
    """The process's resident set, in bytes."""
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_fd_count(pid):
    """How many descriptors the process has open."""
    return len(os.listdir("/proc/%d/fd" % pid))


# ---- servers in processes -----------------------------------------------------------------------


class Listener:
    """What every server here has: a host and a port on the loopback, and URLs on them."""

    host = "127.0.0.1"
    port = None

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (host, self.port, path)


class ServerProcess(Listener):
    """A server subprocess, of the directory root when it serves one: its stderr kept in a file
    that can be read while it runs, its own temporary directory, stopped by its pid with SIGTERM
    and a bounded wait. Subclasses implement start() -> self; a server that does not start
    raises with its stderr."""

    def __init__(self, root=None):
        self.root = root
        self.proc = None
        self.tmp = None
        self._err = None
        self._err_text = ""

    def _spawn(self, argv, **popen_args):
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=self._err,
                                     **popen_args)

    def stderr(self):
        """What the server wrote to stderr so far. The file is read with pread: a seek would
        move the offset the server writes at."""
        if self._err is None:
            return self._err_text
        fd = self._err.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def diagnostics(self):
        """What to quote when the server fails to start."""
        return self.stderr()

    def _fail(self, what):
        text = self.diagnostics()
        self.stop()
        raise RuntimeError("%s; stderr:\n%s" % (what, text[-4000:]))

    def _accepts(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _wait_port(self, what, timeout=10):
        wait_until(lambda: not self.is_running() or self._accepts(), timeout)
        if not self.is_running():
            self._fail("%s exited at once" % what)
        if not self._accepts():
            self._fail("%s accepts no connection on port %d within %d s" % (what, self.port,
                                                                            timeout))

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
        it had to be killed); stderr() still answers afterwards. Stopping twice is harmless."""
        status = None
        if self.proc is not None:
            status = self.proc.poll()
            if status is None:
                self.proc.send_signal(signal.SIGTERM)
                status = self.wait(timeout)
                if status is None:
                    self.proc.kill()
                    self.wait(5)
            if self.proc.stdout:
                self.proc.stdout.close()
        if self._err is not None:
            self._err_text = self.stderr()
            self._err.close()
            self._err = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_etag_store = []  # the ETag store every server of this process shares, made once


def etag_store_for_tests():
    """A private ETag store directory for this test process (removed at exit), so that servers
    the tests start never use the caller's own cache, and restarts find what they stored."""
    if not _etag_store:
        d = tempfile.mkdtemp(prefix="notmod-etag-store-")
        atexit.register(shutil.rmtree, d, True)
        _etag_store.append(d)
    return _etag_store[0]


class NotmodServer(ServerProcess):
    """`notmod serve` on listen with the access log off unless options turn it on (to stdout, a
    pipe); the host and port come from its startup line on stderr. With as_nobody it runs as
    nobody from a copy of the binary that every user can reach. The ETag store is
    etag_store_for_tests() (off for nobody, which cannot use it) unless options or defaults say
    otherwise: with defaults, the server's own default applies (env may set CACHE_DIRECTORY).
    preexec runs in the child before it starts (resource limits); binary replaces NOTMOD (the
    release build, for instance)."""

    def __init__(self, root, options=(), listen="127.0.0.1:0", as_nobody=False, env=None,
                 defaults=False, preexec=None, binary=None):
        super().__init__(root)
        self.options = list(options)
        self.listen = listen
        self.as_nobody = as_nobody
        self.env = dict(env or {})
        self.defaults = defaults
        self.preexec = preexec
        self.binary = binary
        self.startup_line = ""

    def argv(self, binary):
        """The command line: notmod serve with the options, as a subclass may wrap it."""
        # Without a root (or listen), the one a --config file names is served.
        root = [self.root] if self.root else []
        listen = ["--listen", self.listen] if self.listen else []
        return [binary, "serve", "--access-log", "off", *listen, *self.store_options(),
                *self.options, *root]

    def store_options(self):
        """A private ETag store (none as nobody), unless the test wants the server's defaults."""
        if self.defaults:
            return []
        return ["--etag-store", "off" if self.as_nobody else etag_store_for_tests()]

    def before_startup_line(self):
        """What must happen before the server prints its startup line: nothing here."""

    def start(self):
        binary, how = as_user(self.as_nobody)
        if self.binary:
            binary = self.binary
        if self.preexec:
            how = dict(how, preexec_fn=self.preexec)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.update(self.env)
        self._spawn(self.argv(binary), stdout=subprocess.PIPE, env=env, **how)
        self.before_startup_line()
        # Read once more after it exits: what it wrote before is in the file by then.
        wait_until(lambda: not self.is_running() or self._startup_line(), START_TIMEOUT_S, 0.02)
        line = self._startup_line()
        m = _STARTUP.match(line)
        a = _ADDRESS.search(line)
        if not m or not a:
            status = self.proc.poll()
            self._fail("notmod serve printed no startup line within %d s" % START_TIMEOUT_S
                       if status is None else "notmod serve exited with %r at start" % status)
        self.startup_line = line
        self.host = a.group(1).strip("[]")
        self.port = int(a.group(2))
        # Every listener, in order: (scheme, host, port).
        self.addresses = [(m.group(1), m.group(2).strip("[]"), int(m.group(3)))
                          for m in _ADDRESSES.finditer(line.split(" (ETag:")[0])]
        return self

    def _startup_line(self):
        """The startup line (stdout carries the access log), or '' before it is whole."""
        for line in self.stderr().splitlines(keepends=True):
            if line.startswith("notmod: serving ") and line.endswith("\n"):
                return line[:-1]
        return ""

    def sanitizer_report(self):
        """The stderr text when it holds a sanitizer report, else ''."""
        text = self.stderr()
        return text if any(mark in text for mark in SANITIZER_MARKS) else ""

    def stop_checked(self):
        """stop(), then an AssertionError on a sanitizer report or an exit status other than 0."""
        status = self.stop()
        report = self.sanitizer_report()
        if report:
            raise AssertionError("sanitizer report from notmod serve:\n" + report[-6000:])
        if status != 0:
            raise AssertionError("notmod serve exited with %r; stderr:\n%s"
                                 % (status, self.stderr()[-4000:]))


class SocketActivatedServer(NotmodServer):
    """`notmod serve` started by systemd-socket-activate on 127.0.0.1:port, as a notmod.socket
    unit would start it: the listening socket is passed (LISTEN_FDS), and notmod, exec'd in the
    activator's place at the first connection, has the activator's pid. Only the variables in env
    reach it (the activator passes on no other). A port taken meanwhile is retried with another."""

    def __init__(self, root, options=(), env=None):
        super().__init__(root, options, listen=None, env=env)
        self.port = None

    def argv(self, binary):
        passed = ["-E", "ASAN_OPTIONS"]
        for name in self.env:
            passed += ["-E", name]
        return [tool("systemd-socket-activate"), "-l", "127.0.0.1:%d" % self.port, *passed,
                binary, "serve", "--access-log", "off", *self.store_options(), *self.options,
                self.root]

    def before_startup_line(self):
        # The first connection starts notmod.
        self._wait_port("systemd-socket-activate")

    def start(self):
        for attempt in range(5):
            self.port = free_port()
            try:
                return super().start()
            except RuntimeError:
                if attempt == 4 or "Address already in use" not in self._err_text:
                    raise
        return self


def serve_for_test(testcase, root, options=(), as_nobody=False, checked=True, env=None,
                   defaults=False):
    """notmod serve over root for one test, stopped at its cleanup: with stop_checked(), or with
    stop() when not checked. env and defaults as for NotmodServer."""
    srv = NotmodServer(root, options, as_nobody=as_nobody, env=env, defaults=defaults).start()
    testcase.addCleanup(srv.stop_checked if checked else srv.stop)
    return srv


class PythonHttpServer(ServerProcess):
    """python3 -m http.server over a directory: Last-Modified and If-Modified-Since, no ETag."""

    def start(self):
        self.port = free_port()
        self._spawn(["python3", "-m", "http.server", "--bind", self.host, "--directory",
                     self.root, str(self.port)], stdout=subprocess.DEVNULL)
        self._wait_port("python3 -m http.server")
        return self


class NginxServer(ServerProcess):
    """Debian's nginx serving a directory, with its pid, logs and temp paths in a temp dir. Its
    access log (combined format) is access_log(); `extra` is added to the server block (say
    `expires 1s;`). Subclasses that serve no directory override server_conf()."""

    def __init__(self, root=None, extra=""):
        super().__init__(root)
        self.extra = extra

    def open_root_to_workers(self):
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
                                 "launch.shared_tempdir" % self.root)

    def server_conf(self, t):
        """The http-level configuration after the temp paths: here one server of self.root."""
        return f"""    server {{
        listen {self.host}:{self.port};
        root {self.root};
        {self.extra}
    }}
"""

    def access_log(self):
        return os.path.join(self.tmp, "access.log")

    def start(self):
        nginx = tool("nginx")
        if self.root is not None:
            self.open_root_to_workers()
        self.tmp = t = shared_tempdir("nm-nginx-")
        self.port = free_port()
        os.makedirs(os.path.join(t, "logs"))
        conf = os.path.join(t, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {t}/access.log;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
{self.server_conf(t)}}}
""")
        self._spawn([nginx, "-p", t, "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL)
        self._wait_port("nginx")
        return self

    def diagnostics(self):
        try:
            with open(os.path.join(self.tmp, "error.log"), "rb") as f:
                log = f.read().decode(errors="replace")
        except OSError:
            log = ""
        return self.stderr() + "\nerror.log:\n" + log[-4000:]


def recipe(name):
    """The text of a configuration file of deploy/ (the recipes docs/deploy.md shows)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(top, "deploy", name), encoding="utf-8") as f:
        return f.read()


def with_backend_ports(text, pattern, ports):
    """text with the port of each backend line matching pattern (one group: the port) replaced
    by ports, in order; an AssertionError unless there are exactly len(ports) such lines."""
    found = list(re.finditer(pattern, text))
    if len(found) != len(ports):
        raise AssertionError("%d backend lines match %r, %d ports given"
                             % (len(found), pattern, len(ports)))
    out, last = [], 0
    for m, port in zip(found, ports):
        out += [text[last:m.start(1)], str(port)]
        last = m.end(1)
    return "".join(out) + text[last:]


class NginxCacheServer(NginxServer):
    """nginx as a shared cache (proxy_cache, proxy_cache_revalidate) round robin over servers on
    127.0.0.1 ports: deploy/nginx/cache.conf with the ports, listen address and cache path of the
    test."""

    def __init__(self, backend_ports):
        super().__init__()
        self.backend_ports = list(backend_ports)

    def server_conf(self, t):
        text = with_backend_ports(recipe("nginx/cache.conf"), r"server 127\.0\.0\.1:(\d+);",
                                  self.backend_ports)
        text = re.sub(r"listen 127\.0\.0\.1:\d+;", "listen %s:%d;" % (self.host, self.port),
                      text)
        return text.replace("/var/cache/nginx/notmod", os.path.join(t, "cache"))


class NginxTlsServer(NginxServer):
    """nginx terminating TLS and balancing round robin over servers on 127.0.0.1 ports:
    deploy/nginx/tls.conf with the test's addresses and a self-signed certificate for 127.0.0.1,
    made by openssl at start; cafile() is that certificate, for the client to verify."""

    def __init__(self, backend_ports):
        super().__init__()
        self.backend_ports = list(backend_ports)

    def cafile(self):
        return os.path.join(self.tmp, "cert.pem")

    def server_conf(self, t):
        cert, key = os.path.join(t, "cert.pem"), os.path.join(t, "key.pem")
        p = subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                            key, "-out", cert], capture_output=True, timeout=RUN_TIMEOUT_S)
        if p.returncode != 0:
            raise AssertionError("openssl req: %s" % p.stderr.decode(errors="replace"))
        text = with_backend_ports(recipe("nginx/tls.conf"), r"server 127\.0\.0\.1:(\d+);",
                                  self.backend_ports)
        text = re.sub(r"listen 127\.0\.0\.1:\d+ ssl;", "listen %s:%d ssl;"
                      % (self.host, self.port), text)
        return text.replace("/etc/ssl/notmod/cert.pem", cert).replace(
            "/etc/ssl/notmod/key.pem", key)


class VarnishServer(ServerProcess):
    """Debian's varnishd in the foreground on 127.0.0.1, its working directory (-n) in a temp
    dir, with deploy/varnish/notmod.vcl whose backends' ports are replaced by backend_ports, and
    the parameters `params` (say ["http_gzip_support=off"])."""

    def __init__(self, backend_ports, params=(), vcl="varnish/notmod.vcl"):
        super().__init__()
        self.backend_ports = list(backend_ports)
        self.params = list(params)
        self.vcl = vcl

    def start(self):
        varnishd = tool("varnishd")
        self.tmp = tempfile.mkdtemp(prefix="nm-varnish-")
        self.port = free_port()
        vcl = os.path.join(self.tmp, "notmod.vcl")
        with open(vcl, "w") as f:
            f.write(with_backend_ports(recipe(self.vcl), r'\.port = "(\d+)";',
                                       self.backend_ports))
        argv = [varnishd, "-F", "-j", "none", "-n", os.path.join(self.tmp, "n"),
                "-a", "%s:%d" % (self.host, self.port), "-f", vcl, "-s", "malloc,64m",
                "-T", "none"]
        for p in self.params:
            argv += ["-p", p]
        self._spawn(argv, stdout=subprocess.DEVNULL)
        # The VCL is compiled by cc before the port opens: allow a loaded machine its time.
        self._wait_port("varnishd", timeout=VARNISH_START_TIMEOUT_S)
        return self


class HaproxyServer(ServerProcess):
    """HAProxy on 127.0.0.1 balancing HTTP round robin over servers on 127.0.0.1 ports:
    deploy/haproxy/notmod.cfg with the test's listen address and one server line a port."""

    def __init__(self, backend_ports):
        super().__init__()
        self.backend_ports = list(backend_ports)

    def start(self):
        haproxy = tool("haproxy")
        self.tmp = tempfile.mkdtemp(prefix="nm-haproxy-")
        self.port = free_port()
        text = re.sub(r"(?m)^    server .*\n", "", recipe("haproxy/notmod.cfg"))
        text = re.sub(r"bind 127\.0\.0\.1:\d+", "bind %s:%d" % (self.host, self.port), text)
        text += "".join("    server n%d 127.0.0.1:%d\n" % (i + 1, port)
                        for i, port in enumerate(self.backend_ports))
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        self._spawn([haproxy, "-db", "-f", cfg], stdout=subprocess.DEVNULL)
        self._wait_port("haproxy")
        return self


# ---- servers in threads -------------------------------------------------------------------------


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


class ThreadServer(Listener):
    """A server in a daemon thread of this process, serving from `with` entry to exit.
    Subclasses implement _run(), bounded in time, _halt(), which makes _run() return, and
    _close(), which releases the socket."""

    thread = None

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._halt()
        self.thread.join(timeout=10)
        self._close()


class EtagServer(ThreadServer):
    """A stdlib HTTP/1.1 server with correct ETag / If-None-Match / If-Modified-Since handling,
    whose resources and misbehaviours the tests control."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer((self.host, 0), _EtagHandler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.resources = {}
        self.port = self.httpd.server_address[1]

    def _run(self):
        self.httpd.serve_forever(poll_interval=0.1)

    def _halt(self):
        self.httpd.shutdown()

    def _close(self):
        self.httpd.server_close()

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


class RawServer(ThreadServer):
    """An HTTP/1.1 server over raw sockets on 127.0.0.1:0, one request per connection, for
    answers no real server gives. Subclasses implement answer(head) -> bytes; the accept loop is
    bounded in time and every socket has a timeout."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.served = 0

    def answer(self, head):
        raise NotImplementedError

    def serve(self, conn, head):
        """Sends the answer to one request head; override to stream."""
        conn.sendall(self.answer(head))

    def _run(self):
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

    def _halt(self):
        self.stop.set()

    def _close(self):
        self.sock.close()


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


class VersionedServer(RawServer):
    """Serves `versions[path]`, a list of bodies, turning to the next version of a path on every
    second request: a 200 streamed in `chunks` pieces with `pause` seconds between them under the
    ETag tag_of(body), or a 304 when If-None-Match names the version being served."""

    def __init__(self, versions, chunks=8, pause=0.004):
        super().__init__()
        self.versions = versions
        self.chunks, self.pause = chunks, pause
        self.counts = dict((path, 0) for path in versions)

    @staticmethod
    def tag_of(body):
        return '"%s"' % hashlib.sha256(body).hexdigest()[:20]

    def serve(self, conn, head):
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        if path not in self.versions:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        n = self.counts[path]
        self.counts[path] = n + 1
        body = self.versions[path][(n // 2) % len(self.versions[path])]
        tag = self.tag_of(body)
        inm = [l.split(":", 1)[1].strip() for l in lines[1:]
               if l.lower().startswith("if-none-match:")]
        fields = "ETag: %s\r\nCache-Control: no-cache\r\n" % tag
        if inm and inm[0] == tag:
            conn.sendall(("HTTP/1.1 304 Not Modified\r\n%s\r\n" % fields).encode())
            return
        conn.sendall(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n"
                      % (len(body), fields)).encode())
        step = max(1, len(body) // self.chunks)
        for i in range(0, len(body), step):
            if self.stop.is_set():
                break
            conn.sendall(body[i:i + step])
            time.sleep(self.pause)


class RangeServer(RawServer):
    """Serves one body under a strong ETag and honours "Range: bytes=N-" with a 206 when If-Range
    names that ETag (else a 200 of the whole body). With `cut_at` set, a 200 sends that many body
    bytes and closes. Each request head is kept in `heads`; tests change body and etag between
    runs."""

    def __init__(self, body, etag='"r1"', cut_at=None):
        super().__init__()
        self.body, self.etag, self.cut_at = body, etag, cut_at
        self.heads = []

    def answer(self, head):
        lines = head.decode("latin-1").split("\r\n")
        self.heads.append(lines)
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        m = re.fullmatch(r"bytes=(\d+)-", fields.get("range", ""))
        if m and fields.get("if-range") == self.etag and int(m.group(1)) < len(self.body):
            start = int(m.group(1))
            part = self.body[start:]
            return (f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(part)}\r\n"
                    f"Content-Range: bytes {start}-{len(self.body) - 1}/{len(self.body)}\r\n"
                    f"ETag: {self.etag}\r\nCache-Control: no-cache\r\n\r\n").encode() + part
        body = self.body if self.cut_at is None else self.body[:self.cut_at]
        return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\nETag: {self.etag}\r\n"
                "Accept-Ranges: bytes\r\nCache-Control: no-cache\r\n\r\n").encode() + body


class RedirectServer(RawServer):
    """Answers the paths in `routes` ({path: (status, location, extra field lines)}) with that
    redirect and any other path with a 200 whose body is the path. Requested paths are kept in
    `paths`."""

    def __init__(self, routes):
        super().__init__()
        self.routes = routes
        self.paths = []

    def answer(self, head):
        path = head.decode("latin-1").split(" ")[1]
        self.paths.append(path)
        if path in self.routes:
            status, location, extra = self.routes[path]
            return (f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                    + "".join(f"{line}\r\n" for line in extra) + "\r\n").encode()
        return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(path)}\r\nCache-Control: no-cache"
                f"\r\nETag: \"{len(path)}\"\r\n\r\n{path}").encode()


class CannedServer(RawServer):
    """Answers every request with the same bytes, `response`, whatever they hold (hostile reason
    phrases and field values, trailers). Request heads are kept in `heads`."""

    def __init__(self, response):
        super().__init__()
        self.response = response
        self.heads = []

    def answer(self, head):
        self.heads.append(head)
        return self.response


# ---- clients: http.client, and raw HTTP/1.1 over sockets ----------------------------------------


def http_connection(port, host="127.0.0.1", timeout=HTTP_TIMEOUT_S):
    """An http.client connection, for a test that keeps one alive over several requests."""
    return http.client.HTTPConnection(host, port, timeout=timeout)


def https_get(port, path, cafile, headers=None):
    """http_get over TLS to 127.0.0.1, the server's certificate checked against cafile."""
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S, context=ctx)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def curl_compressed(port, path, work, timeout=30):
    """curl --compressed on 127.0.0.1:port: the decoded body and the response's head, lowercased.
    The files curl writes go to the directory `work`."""
    out, head = os.path.join(work, "body"), os.path.join(work, "head")
    p = subprocess.run([tool("curl"), "-sS", "--max-time", "20", "--compressed", "-D", head,
                        "-o", out, "http://127.0.0.1:%d%s" % (port, path)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("curl --compressed %s: %s" % (path, p.stderr.decode(errors="replace")))
    with open(out, "rb") as f, open(head, encoding="latin-1") as h:
        return f.read(), h.read().lower()


def http_get(port, path, headers=None, method="GET"):
    """One request over http.client on a fresh connection: (status, {lower-case name: value},
    body)."""
    conn = http_connection(port)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


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


class TlsConn(Conn):
    """A TLS client connection (context: an ssl.SSLContext) through memory BIOs, so that the test
    decides what goes on the wire and when: records() seals bytes without sending them (to cut
    them into TCP segments), shutdown_write() sends a FIN, close_notify() the TLS close. Reads
    parse responses as Conn does; close_notified tells whether the server's close_notify came."""

    def __init__(self, port, context, server_hostname="localhost", host="127.0.0.1",
                 timeout=IO_TIMEOUT_S):
        super().__init__(port, host, timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.close_notified = False
        for _ in range(100):
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.send_raw(self.outgoing.read())
                if not self._fill_raw():
                    raise ProtocolError("connection closed during the TLS handshake")
        self.send_raw(self.outgoing.read())

    def send_raw(self, data):
        if data:
            self.sock.sendall(data)

    def _fill_raw(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.incoming.write_eof()
            return False
        self.incoming.write(chunk)
        return True

    def records(self, data):
        """The TLS records that carry data (one per 16 KiB), sealed but not sent."""
        self.tls.write(data if isinstance(data, bytes) else data.encode("latin-1"))
        return self.outgoing.read()

    def send(self, data):
        self.send_raw(self.records(data))

    def _fill(self):
        for _ in range(1000):
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                if self._fill_raw():
                    continue
                chunk = b""
            except ssl.SSLZeroReturnError:
                self.close_notified = True
                chunk = b""
            except (ssl.SSLEOFError, ConnectionResetError):
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
            return True
        raise ProtocolError("too many reads")

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close_notify(self):
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # the server's close_notify comes later, if at all
        self.send_raw(self.outgoing.read())

    def is_closed_by_peer(self, timeout=5.0):
        """True when the server ends the stream (close_notify, EOF or reset) within timeout with
        no further bytes."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return not self._fill()
        except socket.timeout:
            return False


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


# ---- a site and a server per test class ---------------------------------------------------------


class ServerTestCase(unittest.TestCase):
    """A site and a server shared by the tests of one class; SERVER_OPTIONS picks the options.
    The server's stderr is checked for sanitizer reports, and its exit status, when it stops."""

    SERVER_OPTIONS = ()

    @classmethod
    def populate(cls, site):
        pass

    @classmethod
    def setUpClass(cls):
        cls.site = Site()
        try:
            cls.populate(cls.site)
            cls.server = NotmodServer(cls.site.root, cls.SERVER_OPTIONS).start()
        except BaseException:
            cls.site.cleanup()
            raise
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_checked()
        finally:
            cls.site.cleanup()

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
        return serve_for_test(self, root or self.site.root, options)
