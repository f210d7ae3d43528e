#!/usr/bin/env python3
"""notmod, nginx, H2O and lighttpd side by side: server CPU per request from /proc, syscalls per
request from strace, and resident memory per idle keep-alive connection (docs/benchmarks.md).

Every server runs one worker with access logs off over the same generated files, pinned with
taskset to one CPU; the load generators (wrk, h2load) and the clients run pinned to the other.
Servers are interleaved run by run within each scenario. Loopback only; every loop and wait is
bounded in time, and every process started here is stopped on the way out.

Usage: bench/compare.py [--runs N] [--seconds S] [--scenarios a,b] [--servers a,b] [--markdown FILE]
       (bench/compare.py --list prints the scenarios)
Python standard library only.
"""

import argparse
import http.client
import json
import os
import random
import re
import resource
import select
import selectors
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVERS = ("notmod", "nginx", "h2o", "lighttpd")
LOAD_CPU = "0"
SERVER_CPU = "1"
HZ = os.sysconf("SC_CLK_TCK")
AGE_S = 3600  # files are an hour old: no server treats them as just written
TREE_FILES = 100_000
MIX_FILES = 1000
START_TIMEOUT_S = 30.0
QUIET_TIMEOUT_S = 180.0  # background hashing of the 100,000-file tree after a start
IO_TIMEOUT_S = 10.0
NOFILE = 250_000
MAX_CONNS = 16384  # nginx, H2O and lighttpd; notmod gets NOTMOD_CONNS for its 100,000 test
NOTMOD_CONNS = 120_000
KEEPALIVE_S = 3600

# key: (title, root, transport, path, condition, options)
SCENARIOS = {
    "inm": ("304 If-None-Match", "site", "http", "/small.txt", "inm", {}),
    "ims": ("304 If-Modified-Since", "site", "http", "/small.txt", "ims", {}),
    "get1k": ("200, 1 KiB", "site", "http", "/small.txt", None, {}),
    "get100k": ("200, 100 KiB", "site", "http", "/k100.bin", None, {}),
    "pipe16": ("304 If-None-Match, pipelined x16", "site", "http", "/small.txt", "inm",
               {"pipeline": 16}),
    "get10m": ("200, 10 MiB", "site", "http", "/m10.bin", None, {"conns": 8}),
    "tree": ("304, one file of a 100,000-file tree", "tree", "http", "/one.txt", "inm", {}),
    "single": ("304, the same file alone in its root", "single", "http", "/one.txt", "inm", {}),
    "mixed": ("mixed 90% 304 / 10% 200, 1,000 files, 256 conns", "site", "http", None, "mixed",
              {"conns": 256}),
    "tls304": ("TLS, 304 If-None-Match", "site", "tls", "/small.txt", "inm", {}),
    "tls200": ("TLS, 200, 1 KiB", "site", "tls", "/small.txt", None, {}),
    "h2_304": ("HTTP/2 + TLS, 304 If-None-Match", "site", "h2", "/small.txt", "inm", {}),
    "h2_200": ("HTTP/2 + TLS, 200, 1 KiB", "site", "h2", "/small.txt", None, {}),
}
# notmod's CPU per request over nginx's in the same run (docs/benchmarks.md).
TARGETS = {"inm": 0.70, "ims": 0.70, "get1k": 0.60, "get100k": 0.50, "pipe16": 0.20,
           "get10m": 0.90, "mixed": 0.70}
CHART_LABELS = {"inm": "304 INM", "ims": "304 IMS", "get1k": "200 1K", "get100k": "200 100K",
                "pipe16": "304 x16 pipelined", "get10m": "200 10M", "tree": "304 100k-file tree",
                "single": "304 1-file root", "mixed": "mixed 90/10", "tls304": "TLS 304",
                "tls200": "TLS 200 1K", "h2_304": "h2 304", "h2_200": "h2 200 1K"}
SIZES = {"/small.txt": 1024, "/k100.bin": 100 * 1024, "/m10.bin": 10 * 1024 * 1024,
         "/one.txt": 1024}


class BenchError(Exception):
    pass


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def need(name):
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin")
    if not path:
        raise BenchError("%s is missing (scripts/install-deps --bench)" % name)
    return path


# ---- files ----------------------------------------------------------------------------------------


def write(path, data, mtime):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def text(rng, n):
    alphabet = b"abcdefghijklmnopqrstuvwxyz      \n"
    return bytes(alphabet[b % len(alphabet)] for b in rng.randbytes(n))


def make_files(work, roots):
    """The roots, made deterministically (seeded) and an hour old: site (1 KiB, 100 KiB and
    10 MiB files, and 1,000 files for the mixed load), tree (100,000 files) and single (one)."""
    mtime = int(time.time()) - AGE_S
    rng = random.Random(16)
    one = text(rng, 1024)
    if "site" in roots:
        site = os.path.join(work, "site")
        write(os.path.join(site, "small.txt"), text(rng, 1024), mtime)
        write(os.path.join(site, "k100.bin"), rng.randbytes(100 * 1024), mtime)
        write(os.path.join(site, "m10.bin"), rng.randbytes(10 * 1024 * 1024), mtime)
        for i in range(MIX_FILES):
            write(os.path.join(site, "mix", "f%03d.txt" % i), text(rng, 256 + i * 37 % 3840), mtime)
    if "single" in roots:
        write(os.path.join(work, "single", "one.txt"), one, mtime)
    if "tree" in roots:
        tree = os.path.join(work, "tree")
        write(os.path.join(tree, "one.txt"), one, mtime)
        for i in range(TREE_FILES - 1):
            write(os.path.join(tree, "d%02d" % (i // 1000), "f%05d.txt" % i),
                  b"file %d\n" % i, mtime)
        for d in range((TREE_FILES - 1 + 999) // 1000):
            os.utime(os.path.join(tree, "d%02d" % d), (mtime, mtime))
    for root in roots:
        os.utime(os.path.join(work, root), (mtime, mtime))


def make_certificate(work):
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)  # workers that run as nobody read it
    return cert, key


# ---- processes and /proc --------------------------------------------------------------------------


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_ticks(pids):
    """utime + stime of each process (all its threads) and of its reaped children."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total


def rss_bytes(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Instance:
    """One server process (and its workers) serving one root on a cleartext and a TLS port."""

    def __init__(self, kind, root, work, cert, key, notmod):
        self.kind, self.root = kind, root
        self.dir = os.path.join(work, "%s-%s" % (kind, root))
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.docroot = os.path.join(work, root)
        self.cert, self.key = cert, key
        self.http_port = self.tls_port = None
        argv = getattr(self, "_argv_" + kind)(notmod)
        self.err = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
                                     start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        if self.kind == "notmod":
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                self.err.seek(0)
                m = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)/, https://127\.0\.0\.1:(\d+)/",
                              self.err.read())
                if m:
                    self.http_port, self.tls_port = int(m.group(1)), int(m.group(2))
                    break
                time.sleep(0.05)
        for port in (self.http_port, self.tls_port):
            if not port or not wait_port(port, self.proc):
                raise BenchError("%s did not start on %s: %s" % (self.kind, self.root,
                                                                  self.stderr()[-2000:]))

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def pids(self):
        return descendants(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self.err.close()

    def wait_quiet(self, timeout=QUIET_TIMEOUT_S):
        """Waits until the server has used no CPU for half a second (startup hashing done)."""
        deadline = time.monotonic() + timeout
        last = cpu_ticks(self.pids())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu_ticks(self.pids())
            if now == last:
                return
            last = now
        raise BenchError("%s on %s kept using CPU for %d s after starting" %
                         (self.kind, self.root, timeout))

    # -- how each server is started and configured ---------------------------------------------

    def _argv_notmod(self, notmod):
        binary, extra = notmod
        return [binary, "serve", "--workers", "1", "--access-log", "off",
                "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
                "--tls-cert", self.cert, "--tls-key", self.key,
                "--etag-store", "off", "--idle-timeout", str(KEEPALIVE_S),
                "--max-connections", str(NOTMOD_CONNS), *extra, self.docroot]

    def _argv_nginx(self, _):
        self.http_port, self.tls_port = free_port(), free_port()
        d = self.dir
        user = "user root root;" if os.geteuid() == 0 else ""  # reads the work dir as is
        conf = f"""
{user}
worker_processes 1;
worker_rlimit_nofile {NOFILE};
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections {MAX_CONNS}; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=200000;
    keepalive_requests 1000000000;
    keepalive_timeout {KEEPALIVE_S}s;
    etag on;
    types {{ text/plain txt; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{self.http_port};
        listen 127.0.0.1:{self.tls_port} ssl http2;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        root {self.docroot};
    }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        return [need("nginx"), "-p", d, "-c", os.path.join(d, "nginx.conf"), "-g", "daemon off;"]

    def _argv_h2o(self, _):
        self.http_port, self.tls_port = free_port(), free_port()
        d = self.dir
        user = "user: root\n" if os.geteuid() == 0 else ""
        conf = f"""{user}num-threads: 1
max-connections: {MAX_CONNS}
pid-file: {d}/h2o.pid
error-log: {d}/error.log
http1-request-timeout: {KEEPALIVE_S}
http2-idle-timeout: {KEEPALIVE_S}
file.etag: ON
listen:
  host: 127.0.0.1
  port: {self.http_port}
hosts:
  default:
    listen:
      host: 127.0.0.1
      port: {self.tls_port}
      ssl:
        certificate-file: {self.cert}
        key-file: {self.key}
    paths:
      /:
        file.dir: {self.docroot}
"""
        with open(os.path.join(d, "h2o.conf"), "w") as f:
            f.write(conf)
        return [need("h2o"), "-c", os.path.join(d, "h2o.conf")]

    def _argv_lighttpd(self, _):
        self.http_port, self.tls_port = free_port(), free_port()
        d = self.dir
        conf = f"""
server.modules = ("mod_openssl")
server.document-root = "{self.docroot}"
server.bind = "127.0.0.1"
server.port = {self.http_port}
server.pid-file = "{d}/lighttpd.pid"
server.errorlog = "{d}/error.log"
server.max-worker = 0
server.max-fds = {2 * MAX_CONNS}
server.max-connections = {MAX_CONNS}
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = {KEEPALIVE_S}
server.max-read-idle = {KEEPALIVE_S}
static-file.etags = "enable"
mimetype.assign = (".txt" => "text/plain", ".bin" => "application/octet-stream")
$SERVER["socket"] == "127.0.0.1:{self.tls_port}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{self.cert}"
    ssl.privkey = "{self.key}"
}}
"""
        with open(os.path.join(d, "lighttpd.conf"), "w") as f:
            f.write(conf)
        return [need("lighttpd"), "-D", "-f", os.path.join(d, "lighttpd.conf")]


# ---- requests -------------------------------------------------------------------------------------


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch(inst, path, headers=None, tls=False, conn=None):
    """(status, headers, body length) of one GET."""
    own = conn is None
    if own:
        conn = (http.client.HTTPSConnection("127.0.0.1", inst.tls_port, timeout=IO_TIMEOUT_S,
                                            context=client_context()) if tls else
                http.client.HTTPConnection("127.0.0.1", inst.http_port, timeout=IO_TIMEOUT_S))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, len(body)
    finally:
        if own:
            conn.close()


def validators(inst, paths):
    """path -> (ETag, Last-Modified) as this server gives them; waits (bounded) for ETags that a
    server adds once it has hashed the file."""
    out = {}
    conn = http.client.HTTPConnection("127.0.0.1", inst.http_port, timeout=IO_TIMEOUT_S)
    try:
        for path in paths:
            deadline = time.monotonic() + QUIET_TIMEOUT_S
            while True:
                status, h, _ = fetch(inst, path, conn=conn)
                if status == 200 and "etag" in h:
                    out[path] = (h["etag"], h.get("last-modified"))
                    break
                if time.monotonic() > deadline:
                    raise BenchError("%s gave no ETag for %s (status %d)" % (inst.kind, path, status))
                time.sleep(0.2)
    finally:
        conn.close()
    return out


def lua_string(s):
    """A Lua long string (no escapes); callers put spaces around it inside [ ], where [[ would
    open a long string of its own."""
    return "[==[" + s + "]==]"


class Load:
    """What one measurement sends to one server: the wrk Lua script or h2load headers."""

    def __init__(self, key, inst, tags, work):
        title, root, transport, path, cond, opts = SCENARIOS[key]
        self.key, self.inst, self.transport, self.path = key, inst, transport, path
        self.conns = opts.get("conns", 32)
        self.headers = {}
        if cond == "inm":
            self.headers["If-None-Match"] = tags[path][0]
        elif cond == "ims":
            self.headers["If-Modified-Since"] = tags[path][1]
        self.expect = 304 if cond in ("inm", "ims") else 200
        self.script = os.path.join(work, "lua", "%s-%s-%s.lua" % (key, inst.kind, root))
        os.makedirs(os.path.dirname(self.script), exist_ok=True)
        lines = []
        if cond == "mixed":
            mix = sorted(p for p in tags if p.startswith("/mix/"))
            lines.append("local paths = {" + ", ".join(lua_string(p) for p in mix) + "}")
            lines.append("local tags = {" + ", ".join(lua_string(tags[p][0]) for p in mix) + "}")
            lines.append("local i = 0")
            # A fixed walk over the files; every tenth request carries no validator.
            lines.append("request = function()\n  i = i + 1\n  local k = (i * 7919) %% %d + 1\n"
                         "  if i %% 10 == 0 then return wrk.format(nil, paths[k]) end\n"
                         "  return wrk.format(nil, paths[k], {[\"If-None-Match\"] = tags[k]})\n"
                         "end" % len(mix))
            self.mix = [(p, tags[p][0]) for p in mix]
        elif opts.get("pipeline"):
            hdrs = ", ".join("[ %s ] = %s" % (lua_string(k), lua_string(v))
                             for k, v in self.headers.items())
            lines.append("local req")
            lines.append("init = function(args)\n  local r = {}\n  for i = 1, %d do\n"
                         "    r[i] = wrk.format(nil, %s, {%s})\n  end\n  req = table.concat(r)\n"
                         "end" % (opts["pipeline"], lua_string(path), hdrs))
            lines.append("request = function() return req end")
        else:
            for k, v in self.headers.items():
                lines.append("wrk.headers[ %s ] = %s" % (lua_string(k), lua_string(v)))
        with open(self.script, "w") as f:
            f.write("\n".join(lines) + "\n")

    def url(self):
        if self.transport == "http":
            return "http://127.0.0.1:%d%s" % (self.inst.http_port, self.path or "/")
        return "https://127.0.0.1:%d%s" % (self.inst.tls_port, self.path or "/")

    def check(self):
        """None when the server answers as the scenario expects, else the problem."""
        if self.transport == "h2":
            out = self._h2load(["-n", "4", "-c", "1"], timeout=30)
            if "Application protocol: h2" not in out:
                return "no HTTP/2 over TLS (ALPN)"
            want = "status codes: %s" % ("0 2xx, 4 3xx" if self.expect == 304 else "4 2xx, 0 3xx")
            if want not in out:
                m = re.search(r"status codes: [^\n]*", out)
                return "h2load saw '%s', want '%s'" % (m.group(0) if m else "?", want)
            return None
        tls = self.transport == "tls"
        if self.key == "mixed":
            conn = http.client.HTTPConnection("127.0.0.1", self.inst.http_port, timeout=IO_TIMEOUT_S)
            try:
                for path, tag in self.mix:
                    status, _, _ = fetch(self.inst, path, {"If-None-Match": tag}, conn=conn)
                    if status != 304:
                        return "%s with its ETag: %d, want 304" % (path, status)
            finally:
                conn.close()
            return None
        status, _, length = fetch(self.inst, self.path, self.headers, tls=tls)
        want = (304, 0) if self.expect == 304 else (200, SIZES[self.path])
        if (status, length) != want:
            return "answered %d with %d bytes, want %d with %d" % (status, length, *want)
        return None

    def _h2load(self, args, timeout):
        argv = ["taskset", "-c", LOAD_CPU, need("h2load"), "-t", "1"] + args
        for k, v in self.headers.items():
            argv += ["-H", "%s: %s" % (k.lower(), v)]
        argv.append(self.url())
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout

    def run(self, seconds):
        """(requests completed, seconds, server CPU ticks, errors)"""
        pids = self.inst.pids()
        c0 = cpu_ticks(pids)
        if self.transport == "h2":
            out = self._h2load(["-c", str(self.conns), "-m", "16", "-D", str(seconds)],
                               timeout=seconds + 60)
            c1 = cpu_ticks(pids)
            m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                          r"(\d+) failed, (\d+) errored", out)
            if not m:
                raise BenchError("h2load output not understood: %s" % out[-1000:])
            n, errors = int(m.group(1)), int(m.group(2)) + int(m.group(3))
            codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx", out)
            if not codes or int(codes.group(1 if self.expect == 304 else 2)) > 0:
                raise BenchError("%s, %s: h2load saw other answers than %d: %s" %
                                 (self.key, self.inst.kind, self.expect,
                                  codes.group(0) if codes else out[-500:]))
            fm = re.search(r"finished in ([\d.]+)s", out)
            secs = float(fm.group(1)) if fm else seconds
        else:
            argv = ["taskset", "-c", LOAD_CPU, need("wrk"), "-t1", "-c%d" % self.conns,
                    "-d%ds" % seconds, "--timeout", "10s", "-s", self.script, self.url()]
            out = subprocess.run(argv, capture_output=True, text=True,
                                 timeout=seconds + 60).stdout
            c1 = cpu_ticks(pids)
            m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
            if not m:
                raise BenchError("wrk output not understood: %s" % out[-1000:])
            n = int(m.group(1))
            secs = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
            errors = 0
            # wrk counts a 200 where a 304 was meant as a success: the bytes read tell them apart
            # (wrk rounds them to 3 significant digits; a 304 head is under 512 bytes).
            bm = re.search(r"requests in [^,]+, ([\d.]+)([KMGT]?)B read", out)
            if not bm:
                raise BenchError("wrk output not understood: %s" % out[-1000:])
            per = float(bm.group(1)) * 1024 ** "_KMGT".index(bm.group(2) or "_") / n
            body = SIZES.get(self.path, 0)
            if (self.expect == 304 and self.key != "mixed" and per > 512) or \
                    (self.expect == 200 and self.key != "mixed" and per < 0.98 * body):
                raise BenchError("%s, %s: %.0f bytes read per response, not a %d of %s" %
                                 (self.key, self.inst.kind, per, self.expect, self.path))
            em = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if em:
                errors += int(em.group(1))
            sm = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           out)
            if sm:
                errors += sum(int(x) for x in sm.groups())
        return n, secs, c1 - c0, errors


# ---- syscalls per request -------------------------------------------------------------------------


def keepalive_requests(port, path, headers, count):
    """count GETs, one after the other on one keep-alive connection; bounded by IO_TIMEOUT_S per
    read."""
    head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    req = head.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as s:
        buf = b""
        for _ in range(count):
            s.sendall(req)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"\r\ncontent-length: *(\d+)", buf[:end], re.I)
                    status = int(buf[9:12])
                    length = int(m.group(1)) if m and status != 304 else 0
                    if len(buf) >= end + 4 + length:
                        buf = buf[end + 4 + length:]
                        break
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise BenchError("connection closed after a partial answer")
                buf += chunk


def strace_count(inst, path, headers, count, work):
    """(syscalls per request, [(name, per request)] most frequent first) from strace -c attached
    to every thread of the server while one client sends count keep-alive requests."""
    out = os.path.join(work, "strace-%s-%d.txt" % (inst.kind, time.monotonic_ns()))
    argv = ["taskset", "-c", LOAD_CPU, need("strace"), "-c", "-f", "-o", out]
    tids = [tid for pid in inst.pids() for tid in os.listdir("/proc/%d/task" % pid)]
    for tid in tids:
        argv += ["-p", tid]
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # strace says "Process N attached" for each thread it has stopped in, or "Process N
        # attached with K threads" for a whole process.
        said, attached, deadline = b"", 0, time.monotonic() + IO_TIMEOUT_S
        while attached < len(tids) and time.monotonic() < deadline:
            if select.select([tracer.stderr], [], [], 0.5)[0]:
                chunk = os.read(tracer.stderr.fileno(), 4096)
                if not chunk:
                    break
                said += chunk
                attached = sum(int(n or 1) for n in
                               re.findall(rb" attached(?: with (\d+) threads)?", said))
        if attached < len(tids):
            raise BenchError("strace attached to %d of %d threads of %s" %
                             (attached, len(tids), inst.kind))
        keepalive_requests(inst.http_port, path, headers, count)
        time.sleep(0.2)
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(10)
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not re.match(r"^[\d.]+$", parts[0]) or parts[-1] == "total":
                continue
            calls[parts[-1]] = int(parts[3])
    total = sum(calls.values())
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:4]
    return total / count, [(name, n / count) for name, n in top]


# ---- idle connections -----------------------------------------------------------------------------

IP_BIND_ADDRESS_NO_PORT = 24
PER_SOURCE = 20_000  # loopback ephemeral ports run out near 28,000 per source address


def idle_client(port, count, path, seconds, first_source):
    """Opens count keep-alive connections to 127.0.0.1:port from 127.0.0.2, .3, ..., each sends
    one GET and reads the answer, then idles. Prints 'held N', waits for a line on stdin (or
    seconds), closes all. Bounded: each batch has IO_TIMEOUT_S; stops at the first failure."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 1000
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    sel = selectors.DefaultSelector()
    held, stop_reason = [], ""
    batch = 250
    deadline = time.monotonic() + seconds
    while len(held) < count and not stop_reason:
        pending = {}
        for i in range(len(held), min(count, len(held) + batch)):
            s = socket.socket()
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind(("127.0.0.%d" % (first_source + i // PER_SOURCE), 0))
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
            except OSError as e:
                s.close()
                stop_reason = "socket: %s" % e
                break
            if err not in (0, 115):  # EINPROGRESS
                s.close()
                stop_reason = "connect: %s" % os.strerror(err)
                break
            pending[s] = [False, b""]
            sel.register(s, selectors.EVENT_WRITE)
        batch_deadline = min(deadline, time.monotonic() + IO_TIMEOUT_S)
        while pending and time.monotonic() < batch_deadline:
            for key, ev in sel.select(timeout=0.5):
                s = key.fileobj
                state = pending[s]
                try:
                    if not state[0]:
                        s.send(req)
                        state[0] = True
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    chunk = s.recv(65536)
                except OSError as e:
                    stop_reason = "connection: %s" % e
                    chunk = None
                if not chunk:
                    stop_reason = stop_reason or "a connection was closed"
                    sel.unregister(s)
                    s.close()
                    del pending[s]
                    continue
                state[1] += chunk
                buf = state[1]
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"\r\ncontent-length: *(\d+)", buf[:end], re.I)
                    if len(buf) >= end + 4 + (int(m.group(1)) if m else 0):
                        sel.unregister(s)
                        held.append(s)
                        del pending[s]
        if pending:
            stop_reason = stop_reason or "no answer within %d s, %d waiting" % (IO_TIMEOUT_S,
                                                                              len(pending))
            for s in pending:
                sel.unregister(s)
                s.close()
        if time.monotonic() > deadline:
            stop_reason = stop_reason or "out of time"
    print("held %d %s" % (len(held), stop_reason or "-"), flush=True)
    select.select([sys.stdin], [], [], max(1.0, deadline - time.monotonic()))
    for s in held:
        s.close()


_next_source = [2]  # each idle client gets fresh source addresses: closed ones sit in TIME_WAIT


def idle_memory(inst, count, seconds):
    """(connections held, RSS before, RSS with them open, why it stopped short)"""
    first_source = _next_source[0]
    _next_source[0] += (count + PER_SOURCE - 1) // PER_SOURCE
    if _next_source[0] > 250:
        raise BenchError("out of loopback source addresses for idle connections")
    fetch(inst, "/small.txt")
    time.sleep(0.5)
    before = rss_bytes(inst.pids())
    argv = ["taskset", "-c", LOAD_CPU, sys.executable, os.path.abspath(__file__), "--idle-client",
            "%d,%d,%d,%d" % (inst.http_port, count, seconds, first_source)]
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = client.stdout.readline().split(None, 2)
        if not line or line[0] != "held":
            raise BenchError("the idle client failed (%s)" % client.poll())
        held, reason = int(line[1]), line[2].strip() if len(line) > 2 else "-"
        time.sleep(1.0)
        after = rss_bytes(inst.pids())
        client.stdin.write("close\n")
        client.stdin.flush()
        client.wait(seconds + 30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    return held, before, after, "" if reason == "-" else reason


# ---- the run --------------------------------------------------------------------------------------


def median_min_max(values):
    return statistics.median(values), min(values), max(values)


def fmt_range(m, lo, hi, digits=1):
    f = "%%.%df" % digits
    return (f + " (" + f + "–" + f + ")") % (m, lo, hi)


def run_bench(args):
    servers = [s for s in args.servers.split(",") if s]
    keys = [k for k in args.scenarios.split(",") if k]
    for s in servers:
        if s not in SERVERS:
            raise BenchError("unknown server %s (%s)" % (s, ", ".join(SERVERS)))
    for k in keys:
        if k not in SCENARIOS:
            raise BenchError("unknown scenario %s (--list)" % k)
    if len(os.sched_getaffinity(0)) < 2 or os.cpu_count() < 2:
        raise BenchError("needs two CPUs: the load on CPU 0, the servers on CPU 1")
    notmod = os.path.abspath(args.notmod)
    if "notmod" in servers and not os.access(notmod, os.X_OK):
        raise BenchError("%s is missing (make release)" % notmod)
    for tool in ["taskset", "wrk", "openssl"] + (["h2load"] if any(
            SCENARIOS[k][2] == "h2" for k in keys) else []) + (
            ["strace"] if args.strace_requests else []) + (["gnuplot"] if args.svg else []):
        need(tool)
    for s in servers:
        if s != "notmod":
            need(s)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, NOFILE), max(hard, NOFILE)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    work = args.work or tempfile.mkdtemp(prefix="notmod-bench-")
    try:
        return measure_all(args, servers, keys, notmod, nofile, work)
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


def measure_all(args, servers, keys, notmod, nofile, work):
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    roots = sorted({SCENARIOS[k][1] for k in keys} | ({"site"} if args.idle else set()) |
                   ({"site"} if args.strace_requests else set()))
    log("files in %s (%s)" % (work, ", ".join(roots)))
    make_files(work, roots)
    cert, key = make_certificate(work)

    instances = {}
    results = {"runs": args.runs, "seconds": args.seconds, "servers": servers, "scenarios": {},
               "syscalls": {}, "idle": {}, "load": os.getloadavg(), "nofile": nofile,
               "notmod_args": args.notmod_args,
               "strace_requests": args.strace_requests}
    try:
        for root in roots:
            for s in servers:
                log("starting %s on %s" % (s, root))
                instances[s, root] = Instance(s, root, work, cert, key,
                                              (notmod, shlex.split(args.notmod_args)))
        for inst in instances.values():
            inst.wait_quiet()
        tags = {}
        for (s, root), inst in instances.items():
            paths = ["/one.txt"] if root != "site" else (
                ["/small.txt", "/k100.bin", "/m10.bin"] +
                ["/mix/f%03d.txt" % i for i in range(MIX_FILES)])
            tags[s, root] = validators(inst, paths)

        # The scenarios: check every server first, then interleave them run by run.
        for key in keys:
            title, root = SCENARIOS[key][0], SCENARIOS[key][1]
            loads, na = {}, {}
            for s in servers:
                load = Load(key, instances[s, root], tags[s, root], work)
                problem = load.check()
                if problem:
                    na[s] = problem
                    log("%s, %s: n/a: %s" % (title, s, problem))
                else:
                    loads[s] = load
            samples = {s: [] for s in loads}
            for r in range(args.runs):
                order = list(loads)
                order = order[r % len(order):] + order[:r % len(order)] if order else order
                for s in order:
                    n, secs, ticks, errors = loads[s].run(args.seconds)
                    if n == 0:
                        raise BenchError("%s, %s: no request completed" % (title, s))
                    samples[s].append({"requests": n, "seconds": secs, "ticks": ticks,
                                       "errors": errors,
                                       "cpu_us": ticks / HZ * 1e6 / n, "rps": n / secs})
                log("%s, run %d/%d: %s" % (title, r + 1, args.runs, ", ".join(
                    "%s %.1f µs" % (s, samples[s][-1]["cpu_us"]) for s in order)))
            results["scenarios"][key] = {"title": title, "samples": samples, "na": na}

        if args.strace_requests:
            for key in ("inm", "get1k"):
                load_headers = {}
                for s in servers:
                    inst = instances[s, "site"]
                    if key == "inm":
                        load_headers = {"If-None-Match": tags[s, "site"]["/small.txt"][0]}
                    else:
                        load_headers = {}
                    log("strace, %s, %s" % (key, s))
                    per, top = strace_count(inst, "/small.txt", load_headers,
                                            args.strace_requests, work)
                    results["syscalls"].setdefault(key, {})[s] = {"per_request": per, "top": top}

        if args.idle:
            for s in servers:
                counts = [args.idle] + ([args.idle_notmod] if s == "notmod" and
                                        args.idle_notmod else [])
                for count in counts:
                    log("idle connections, %s, %d" % (s, count))
                    held, before, after, reason = idle_memory(instances[s, "site"], count,
                                                              args.idle_seconds)
                    results["idle"].setdefault(s, []).append(
                        {"asked": count, "held": held, "rss_before": before, "rss_after": after,
                         "reason": reason})
    finally:
        for inst in instances.values():
            inst.stop()

    results["load_after"] = os.getloadavg()
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(results, work, args)
    return results


def report(results, work, args):
    """The tables (stdout, --markdown), the raw results (--json) and the chart (--svg)."""
    md = markdown(results, args)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.svg:
        chart(results, work, args.svg)


# ---- output ---------------------------------------------------------------------------------------


def summary(results, key):
    """server -> (cpu median, min, max, rps median, ratio to nginx median, min, max)"""
    sc = results["scenarios"][key]
    out = {}
    base = sc["samples"].get("nginx")
    for s, samples in sc["samples"].items():
        cpu = [x["cpu_us"] for x in samples]
        rps = [x["rps"] for x in samples]
        ratios = ([a["cpu_us"] / b["cpu_us"] for a, b in zip(samples, base)]
                  if base else [])
        out[s] = median_min_max(cpu) + (statistics.median(rps),) + (
            median_min_max(ratios) if ratios else (None, None, None))
    return out


def markdown(results, args):
    servers = results["servers"]
    lines = ["Server CPU per request (µs, median of %d runs of %d s, min–max in brackets), "
             "requests per second (median), and CPU per request over nginx's in the same run "
             "(median of the runs, min–max). Load average %.1f at the start, %.1f at the end." %
             (results["runs"], results["seconds"], results["load"][0], results["load_after"][0]),
             "", "| scenario | server | CPU µs/request | req/s | / nginx |",
             "|---|---|---:|---:|---:|"]
    for key, sc in results["scenarios"].items():
        sm = summary(results, key)
        for s in servers:
            if s in sm:
                c, lo, hi, rps, r, rlo, rhi = sm[s]
                ratio = "" if r is None or s == "nginx" else fmt_range(r, rlo, rhi, 2)
                extra = ""
                if key == "get10m":
                    extra = " (%.3f s/GB)" % (c / 1e6 / (SIZES["/m10.bin"] / 1e9))
                errs = sum(x["errors"] for x in sc["samples"][s])
                if errs:
                    extra += " (%d errors)" % errs
                lines.append("| %s | %s | %s%s | %.0f | %s |" % (
                    sc["title"], s, fmt_range(c, lo, hi), extra, rps, ratio))
            elif s in sc["na"]:
                lines.append("| %s | %s | n/a: %s | | |" % (sc["title"], s, sc["na"][s]))
    keys = list(results["scenarios"])
    goals = [k for k in keys if k in TARGETS]
    if "notmod" in servers and "nginx" in servers and goals:
        lines += ["", "notmod against its targets (CPU per request over nginx's, same run):", "",
                  "| scenario | notmod / nginx | target | met |", "|---|---:|---:|---|"]
        for k in goals:
            sm = summary(results, k).get("notmod")
            if not sm or sm[4] is None:
                continue
            lines.append("| %s | %s | <= %.2f | %s |" % (
                results["scenarios"][k]["title"], fmt_range(sm[4], sm[5], sm[6], 2), TARGETS[k],
                "yes" if sm[4] <= TARGETS[k] else "no"))
    if "tree" in results["scenarios"] and "single" in results["scenarios"]:
        lines += ["", "304 of one file in a 100,000-file tree over the same file alone in its "
                  "root (target for notmod: within 10%):", "",
                  "| server | tree µs | 1-file µs | tree / 1-file |", "|---|---:|---:|---:|"]
        t, o = summary(results, "tree"), summary(results, "single")
        for s in servers:
            if s in t and s in o:
                lines.append("| %s | %.1f | %.1f | %.2f |" % (s, t[s][0], o[s][0],
                                                             t[s][0] / o[s][0]))
    if results["syscalls"]:
        lines += ["", "Syscalls per request (strace -c -f attached to every thread of the server, "
                  "%d keep-alive requests one after the other on one connection):" %
                  results.get("strace_requests", args.strace_requests), "",
                  "| scenario | server | syscalls / request | most frequent, per request |",
                  "|---|---|---:|---|"]
        for key, per in results["syscalls"].items():
            for s in servers:
                if s in per:
                    lines.append("| %s | %s | %.2f | %s |" % (
                        SCENARIOS[key][0], s, per[s]["per_request"],
                        ", ".join("%s %.2f" % (n, c) for n, c in per[s]["top"])))
    if results["idle"]:
        lines += ["", "Idle keep-alive connections (each sent one GET of the 1 KiB file and read "
                  "the answer; resident memory summed over the server's processes; open files "
                  "limited to %d per process here):" % results["nofile"], "",
                  "| server | connections | held | RSS before | RSS with them | bytes / connection |",
                  "|---|---:|---:|---:|---:|---:|"]
        for s in servers:
            for x in results["idle"].get(s, []):
                per = (x["rss_after"] - x["rss_before"]) / x["held"] if x["held"] else 0
                held = "%d" % x["held"] + ("" if not x["reason"] else " (%s)" % x["reason"])
                lines.append("| %s | %d | %s | %.1f MiB | %.1f MiB | %.0f |" % (
                    s, x["asked"], held, x["rss_before"] / 2**20, x["rss_after"] / 2**20, per))
    # Prose wrapped as the docs are; table rows stay whole.
    out = []
    for line in lines:
        out.extend(textwrap.wrap(line, 99) if line and not line.startswith("|") else [line])
    return "\n".join(out) + "\n"


def chart(results, work, svg):
    """A clustered bar chart of CPU per request relative to nginx's, one cluster per scenario and
    one bar per server, drawn by gnuplot from a data file written here."""
    servers = results["servers"]
    keys = [k for k in results["scenarios"] if results["scenarios"][k]["samples"]]
    dat = os.path.join(work, "chart.dat")
    with open(dat, "w") as f:
        f.write("# scenario " + " ".join(servers) + "\n")
        for k in keys:
            sm = summary(results, k)
            base = sm.get("nginx", (None,))[0]
            label = CHART_LABELS[k] + (" (nginx %.1f µs)" % base if base else "")
            # The median of the run-by-run ratios, as in the table.
            vals = ["%.6f" % (1.0 if s == "nginx" else sm[s][4]) if s in sm and base else "NaN"
                    for s in servers]
            f.write('"%s" %s\n' % (label, " ".join(vals)))
    gp = os.path.join(work, "chart.gp")
    n = len(servers)
    plots = []
    for i, s in enumerate(servers):
        plots.append('"%s" using %d%s title "%s"' % (dat, i + 2, ":xtic(1)" if i == 0 else "", s))
    if "notmod" in servers:
        i = servers.index("notmod")
        plots.append('"%s" using ($0 + %.4f):%d:(sprintf("%%.2f", column(%d))) with labels '
                     'offset 0,0.7 font ",9" notitle' % (dat, (i - (n - 1) / 2) / (n + 1), i + 2,
                                                         i + 2))
    plots.append("1 with lines dashtype 2 linecolor rgb \"#444444\" notitle")
    with open(gp, "w") as f:
        f.write("""set terminal svg size 1100,560 dynamic font "sans,12" background "#ffffff"
set output "%s"
set title "Server CPU per request, relative to nginx in the same run (lower is better; labels: notmod)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 1
set datafile missing "NaN"
set ylabel "CPU per request / nginx's"
set yrange [0:*]
set grid ytics
set key top left
set xtics rotate by 30 right scale 0 font ",10"
set bmargin 9
plot %s
""" % (os.path.abspath(svg), ", \\\n     ".join(plots)))
    subprocess.run([need("gnuplot"), gp], check=True, timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    ap.add_argument("--seconds", type=int, default=10, help="seconds per run (default 10)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated scenario keys (default all; --list)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="default " + ",".join(SERVERS))
    ap.add_argument("--notmod", default=os.environ.get("NOTMOD") or
                    os.path.join(TOP, "build", "release", "notmod"),
                    help="the binary (default $NOTMOD, else build/release/notmod)")
    ap.add_argument("--notmod-args", default="",
                    help="more options for notmod serve, one shell-quoted string (for instance "
                    "\"--io-uring off\"), after the benchmark's own")
    ap.add_argument("--strace-requests", type=int, default=2000,
                    help="requests per strace count (0: no syscall table)")
    ap.add_argument("--idle", type=int, default=10000,
                    help="idle connections per server (0: no memory table)")
    ap.add_argument("--idle-notmod", type=int, default=100000,
                    help="then this many to notmod alone (0: none)")
    ap.add_argument("--idle-seconds", type=int, default=180, help="bound on each idle client")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--svg", default=os.path.join(TOP, "docs", "benchmarks.svg"),
                    help="the chart (default docs/benchmarks.svg; '' for none)")
    ap.add_argument("--work", help="work directory (default a new one under $TMPDIR, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--from-json", metavar="FILE",
                    help="no measuring: the tables and the chart from the results of --json")
    ap.add_argument("--idle-client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.idle_client:
        port, count, seconds, first_source = (int(x) for x in args.idle_client.split(","))
        idle_client(port, count, "/small.txt", seconds, first_source)
        return 0
    if args.list:
        for k, v in SCENARIOS.items():
            print("%-8s %s%s" % (k, v[0], "  (target %.2f)" % TARGETS[k] if k in TARGETS else ""))
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        with tempfile.TemporaryDirectory(prefix="notmod-bench-") as work:
            report(results, work, argparse.Namespace(**dict(vars(args), json=None)))
        return 0
    try:
        run_bench(args)
    except BenchError as e:
        log(e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
