#!/usr/bin/env python3
"""Server CPU per gigabyte of large bodies: notmod with --sendfile all (spliced under a read
lease; `on` would copy to this loopback client) and off (copied), and nginx, in the same run over
the same 10 MiB file.

Each server runs with one worker pinned to CPU 1 (taskset), the client (wrk -t1 -c8) to CPU 0.
The CPU is the server process's utime + stime from /proc/PID/stat (nginx: its worker) over the
load, divided by the body bytes wrk received (10^9 bytes to the GB). The servers take turns run
by run, and the table shows the median of the runs.

Usage: bench/cpu_per_gb.py [--binary PATH] [--runs N] [--seconds S] [--size BYTES]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def start_notmod(binary, root, sendfile):
    proc = subprocess.Popen(["taskset", "-c", "1", binary, "serve", "--workers", "1",
                             "--access-log", "off", "--etag-store", "off", "--hash-threshold",
                             str(64 << 20), "--sendfile", sendfile, "--listen", "127.0.0.1:0",
                             root], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        raise RuntimeError("notmod did not start: %r" % line)
    return proc, proc.pid, int(m.group(1))


def start_nginx(work, root):
    port = free_port()
    os.makedirs(os.path.join(work, "nginx", "logs"), exist_ok=True)
    conf = os.path.join(work, "nginx", "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1;
error_log %(w)s/nginx/logs/error.log warn;
pid %(w)s/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { application/octet-stream bin; }
    server { listen 127.0.0.1:%(p)d; root %(r)s; etag on; }
}
""" % {"w": work, "p": port, "r": root})
    proc = subprocess.Popen(["taskset", "-c", "1", "/usr/sbin/nginx", "-p",
                             os.path.join(work, "nginx"), "-c", conf, "-g", "daemon off;"])
    wait_port(port)
    with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
        worker = int(f.read().split()[0])
    return proc, worker, port


def load(port, path, seconds, size):
    """Runs wrk; returns the body bytes it received."""
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c8", "--timeout", "60s", "-d%ds" % seconds,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk on port %d: %s" % (port, out))
    return int(m.group(1)) * size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(TOP, "build", "release", "notmod"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size", type=int, default=10 << 20)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="notmod-bench-")
    os.chmod(work, 0o755)  # nginx's workers run as nobody
    procs = []
    try:
        root = os.path.join(work, "site")
        os.makedirs(root)
        os.chmod(root, 0o755)
        path = os.path.join(root, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(args.size))
        os.chmod(path, 0o644)
        old = time.time() - 3600
        os.utime(path, (old, old))
        servers = {}
        # The client is on this host: --sendfile on would copy to it, all splices.
        for name, sendfile in (("notmod, --sendfile all", "all"),
                               ("notmod, --sendfile off", "off")):
            proc, pid, port = start_notmod(args.binary, root, sendfile)
            procs.append(proc)
            servers[name] = (pid, port)
        proc, worker, port = start_nginx(work, root)
        procs.append(proc)
        servers["nginx 1.22, sendfile on"] = (worker, port)
        for pid, port in servers.values():  # warm: tables loaded, files hashed
            load(port, "/big.bin", 1, args.size)
        results = {name: [] for name in servers}
        for run in range(args.runs):
            names = list(servers)
            names = names[run % len(names):] + names[:run % len(names)]
            for name in names:
                pid, port = servers[name]
                before = cpu_seconds(pid)
                got = load(port, "/big.bin", args.seconds, args.size)
                used = cpu_seconds(pid) - before
                results[name].append((used * 1000 / (got / 1e9), got / 1e9 / args.seconds))
        print("| server | CPU ms per GB (runs) | median | GB/s (median) |")
        print("|---|---|---:|---:|")
        for name, rs in results.items():
            ms = [r[0] for r in rs]
            print("| %s | %s | %.0f | %.2f |" % (name, ", ".join("%.0f" % x for x in ms),
                                                 statistics.median(ms),
                                                 statistics.median(r[1] for r in rs)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, True)


if __name__ == "__main__":
    sys.exit(main())
