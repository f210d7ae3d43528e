#!/usr/bin/env python3
"""Server memory per idle keep-alive connection: VmRSS growth divided by the connections held.

The server runs with one worker and the access log off over a generated one-file site. A warm-up
connection makes a request and closes; the server's VmRSS is read; then N connections open, each
sends one request and reads its whole answer, and stay open (keep-alive); VmRSS is read again.
The figure is (after - before) / N bytes. Client sockets are bound to 127.0.0.2 .. 127.0.0.5 with
IP_BIND_ADDRESS_NO_PORT, so that 100,000 connections do not run out of ephemeral ports; this
script raises its own RLIMIT_NOFILE (the server inherits it), which takes root past the hard
limit.

Usage: bench/idle.py [--binary PATH] [-n N] [--mode http1|tls|h2c] [-- SERVE OPTIONS]
  http1: GET /small.txt over HTTP/1.1; tls: the same over TLS (a self-signed certificate made
  with the openssl CLI); h2c: HTTP/2 with prior knowledge (--h2c), one stream per connection.
"""
import argparse
import os
import re
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
IN_FLIGHT = 500  # connections between connect and a whole answer at once
DEADLINE_S = 900  # the whole run, whatever N
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + \
        payload


def h2_request():
    """Preface, empty SETTINGS, and HEADERS for GET /small.txt on stream 1 (RFC 9113 §3.4, HPACK
    static indices: 2 :method GET, 6 :scheme http, 4 :path, 1 :authority)."""
    path, host = b"/small.txt", b"127.0.0.1"
    block = bytes([0x82, 0x86, 0x04, len(path)]) + path + bytes([0x01, len(host)]) + host
    return H2_PREFACE + h2_frame(4, 0, 0, b"") + h2_frame(1, 0x5, 1, block)


def h2_answered(buf):
    """True once a frame of stream 1 with END_STREAM has come; acks need no answer here."""
    pos = 0
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos:pos + 3], "big")
        ftype, flags = buf[pos + 3], buf[pos + 4]
        stream = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        if len(buf) - pos - 9 < length:
            return False
        if stream == 1 and ftype in (0, 1) and flags & 0x1:
            return True
        pos += 9 + length
    return False


def http1_answered(buf):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return len(rest) >= (int(m.group(1)) if m else 0)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %d" % pid)


def start_server(binary, root, mode, n, options, work):
    args = [binary, "serve", "--workers", "1", "--access-log", "off", "--listen", "127.0.0.1:0",
            "--max-connections", str(n + 16)]
    if mode == "tls":
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True,
                       capture_output=True, timeout=60)
        args += ["--tls-cert", cert, "--tls-key", key]
    if mode == "h2c":
        args.append("--h2c")
    err = open(os.path.join(work, "stderr"), "w+")
    proc = subprocess.Popen(args + list(options) + [root], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        err.seek(0)
        m = re.search(r"https?://127\.0\.0\.1:(\d+)", err.read())
        if m:
            return proc, int(m.group(1)), err
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start:\n" + open(err.name).read())


def open_all(port, n, mode, deadline):
    """Opens n connections that each got a whole answer; returns them (kept open)."""
    sel = selectors.DefaultSelector()
    ctx = None
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
    request = h2_request() if mode == "h2c" else \
        b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answered = h2_answered if mode == "h2c" else http1_answered
    done, started, in_flight = [], 0, 0
    while len(done) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("%d of %d connections answered before the deadline" % (len(done), n))
        while in_flight < IN_FLIGHT and started < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((SOURCES[started % len(SOURCES)], 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            state = {"sock": s, "step": "connect", "buf": b""}
            sel.register(s, selectors.EVENT_WRITE, state)
            started += 1
            in_flight += 1
        for key, _ in sel.select(timeout=1):
            st = key.data
            s = st["sock"]
            try:
                if st["step"] == "connect":
                    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if e:
                        raise OSError(e, os.strerror(e))
                    if ctx:
                        s = ctx.wrap_socket(s, do_handshake_on_connect=False)
                        sel.unregister(key.fileobj)
                        st["sock"] = s
                        sel.register(s, selectors.EVENT_WRITE, st)
                        st["step"] = "handshake"
                    else:
                        st["step"] = "send"
                if st["step"] == "handshake":
                    try:
                        s.do_handshake()
                        st["step"] = "send"
                    except ssl.SSLWantReadError:
                        sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    except ssl.SSLWantWriteError:
                        sel.modify(s, selectors.EVENT_WRITE, st)
                        continue
                if st["step"] == "send":
                    s.sendall(request)  # small: the socket takes it at once
                    st["step"] = "read"
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                while True:
                    try:
                        chunk = s.recv(65536)
                    except (BlockingIOError, ssl.SSLWantReadError):
                        break
                    if not chunk:
                        raise RuntimeError("the server closed a connection")
                    st["buf"] += chunk
                if answered(st["buf"]):
                    sel.unregister(s)
                    done.append(s)
                    in_flight -= 1
            except (OSError, RuntimeError) as e:
                raise RuntimeError("connection %d: %s" % (len(done), e))
    sel.close()
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(TOP, "build/release/notmod"))
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--mode", choices=("http1", "tls", "h2c"), default="http1")
    ap.add_argument("options", nargs="*", help="more serve options, after --")
    a = ap.parse_args()
    fds = a.n + 1100  # the server keeps 1/16 of its limit (at most 1024) for files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard < fds:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fds, fds))  # CAP_SYS_RESOURCE
        elif soft < fds:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fds, hard))
    except (ValueError, OSError):
        sys.exit("bench/idle.py: -n %d needs %d descriptors; the hard limit is %d and cannot be "
                 "raised here (no CAP_SYS_RESOURCE)" % (a.n, fds, hard))
    work = tempfile.mkdtemp(prefix="notmod-idle-")
    root = os.path.join(work, "site")
    os.makedirs(root)
    with open(os.path.join(root, "small.txt"), "wb") as f:
        f.write(b"x" * 1024)
    old = time.time() - 3600
    os.utime(os.path.join(root, "small.txt"), (old, old))
    deadline = time.monotonic() + DEADLINE_S
    proc, port, err = start_server(a.binary, root, a.mode, a.n, a.options, work)
    conns = []
    try:
        time.sleep(1)  # the startup walk
        for c in open_all(port, 1, a.mode, deadline):
            c.close()
        time.sleep(0.5)
        before = rss_bytes(proc.pid)
        t0 = time.monotonic()
        conns = open_all(port, a.n, a.mode, deadline)
        took = time.monotonic() - t0
        time.sleep(3)  # past a tick or two: what the server does with idle connections is done
        after = rss_bytes(proc.pid)
        if proc.poll() is not None:
            raise RuntimeError("the server exited:\n" + open(err.name).read()[-2000:])
        print("%s: %d idle connections (opened in %.1f s): VmRSS %.1f MiB -> %.1f MiB, "
              "%.0f bytes per connection" % (a.mode, a.n, took, before / 2**20, after / 2**20,
                                             (after - before) / a.n))
    finally:
        for c in conns:
            c.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
