#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: repeatable where wall-clock figures are not.

The server runs under `valgrind --tool=callgrind` with one worker over a generated site, twice:
once answering a few requests and once answering many more, on one keep-alive connection, one
request at a time (or in pipelined batches). Every other cost (start, the background walk,
stopping) is the same in both runs, so the difference of the two totals divided by the
difference of the request counts is what one request costs, all threads included.

Usage: bench/callgrind.py [--binary PATH] [--scenario NAME ...] [--requests N] [-- SERVE OPTIONS]
Scenarios: inm (304 to If-None-Match), ims (304 to If-Modified-Since), 200 (1 KiB body),
200-100k (100 KiB body), pipelined (304 to If-None-Match, 16 per batch), 404.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = {"pipelined": 16}
SETTLE_S = 3  # files younger than this are "racy" and re-read by the server


def make_site(root):
    os.makedirs(root)
    with open(os.path.join(root, "small.txt"), "wb") as f:
        f.write(bytes((i * 7 + 11) % 251 for i in range(1024)))
    with open(os.path.join(root, "mid.bin"), "wb") as f:
        f.write(bytes((i * 13 + 5) % 253 for i in range(100 * 1024)))
    old = time.time() - 3600
    for name in ("small.txt", "mid.bin"):
        os.utime(os.path.join(root, name), (old, old))


def read_response(sock, buf):
    """Reads one response (head plus Content-Length bytes) from sock; returns (head, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-response")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m and not head.startswith(b"HTTP/1.1 304") else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        rest += chunk
    return head, rest[length:]


def request_for(scenario, validators):
    path = {"200-100k": "/mid.bin", "404": "/missing.txt"}.get(scenario, "/small.txt")
    lines = [f"GET {path} HTTP/1.1", "Host: bench"]
    if scenario in ("inm", "pipelined"):
        lines.append(f"If-None-Match: {validators['etag']}")
    elif scenario == "ims":
        lines.append(f"If-Modified-Since: {validators['last_modified']}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def validators_of(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"HEAD /small.txt HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        head = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return {"etag": fields.get("etag"), "last_modified": fields.get("last-modified")}


def count(binary, root, scenario, n, serve_options, work):
    out = os.path.join(work, f"callgrind.{scenario}.{n}")
    err = open(os.path.join(work, "stderr"), "w+")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "serve",
         "--workers", "1", "--access-log", "off", "--listen", "127.0.0.1:0", *serve_options, root],
        stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            err.seek(0)
            m = re.search(r"http://127\.0\.0\.1:(\d+)", err.read())
            port = int(m.group(1)) if m else None
            time.sleep(0.1)
        if port is None:
            raise RuntimeError("the server did not start:\n" + open(err.name).read())
        time.sleep(1)  # let the startup walk finish before counting
        validators = validators_of(port)
        if scenario in ("inm", "pipelined") and not validators["etag"]:
            raise RuntimeError("no ETag on /small.txt")
        req = request_for(scenario, validators)
        batch = BATCH.get(scenario, 1)
        want = {"inm": b" 304 ", "ims": b" 304 ", "pipelined": b" 304 ", "404": b" 404 "}.get(
            scenario, b" 200 ")
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            for _ in range(n // batch):
                s.sendall(req * batch)
                for _ in range(batch):
                    head, buf = read_response(s, buf)
                    if want not in head.split(b"\r\n", 1)[0] + b" ":
                        raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(TOP, "build/release/notmod"))
    ap.add_argument("--scenario", action="append",
                    choices=["inm", "ims", "200", "200-100k", "pipelined", "404"])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("serve_options", nargs="*")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("callgrind.py: valgrind is missing (scripts/install-deps --bench)")
    scenarios = args.scenario or ["inm", "ims", "200", "200-100k", "pipelined", "404"]
    work = tempfile.mkdtemp(prefix="nm-callgrind-")
    try:
        root = os.path.join(work, "site")
        make_site(root)
        print("| scenario | instructions per request |")
        print("|---|---:|")
        for sc in scenarios:
            few, many = 16 * 4, 16 * 4 + args.requests
            a = count(args.binary, root, sc, few, args.serve_options, work)
            b = count(args.binary, root, sc, many, args.serve_options, work)
            print(f"| {sc} | {(b - a) / (many - few):.0f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
