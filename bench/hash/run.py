#!/usr/bin/env python3
"""Content hashing numbers for docs/benchmarks.md, measured with the release build.

  bench/hash/run.py [--notmod build/release/notmod] [--work DIR] [--runs N] [--files N]

1. XXH3-128 GB/s on one core, in memory (xxh3_speed.c) and end to end through
   `notmod etag --rehash` on a 1 GiB file in the page cache.
2. Time to first byte of a GET for an unhashed 1 MiB, 100 MiB and 1 GiB file (a server just
   started with --no-prehash, one worker warmed by one small request; no attribute; the file
   settled for over 2 s), with the file in the page cache and evicted from it, and the time
   until the server sends an ETag for it.
3. Startup of `notmod serve` over a tree of N files (default 100,000; 60 % of 2 KiB, 40 % of
   96 KiB, so 40 % are above the 64 KiB in-memory size and get prehashed): time to listen, time
   to the "hashing after prehash" line, and VmRSS/VmHWM then; with no attributes ("cold") and
   with the attributes the previous run stored ("persisted"). The tree is evicted from the page
   cache (POSIX_FADV_DONTNEED per file) before every run.

Every figure is the median of --runs runs (default 5; 3 for the tree). Prints a Markdown report.
"""

import argparse
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
XATTR = "user.notmod.etag"
RACY_S = 2.2
STORE = []  # the ETag store directory the servers use, set by main()


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop_xattr(path):
    """Forgets path's hash: its attribute (notmod etag --write) and the servers' ETag store."""
    try:
        os.removexattr(path, XATTR)
    except OSError:
        pass
    try:
        os.unlink(os.path.join(STORE[0], "etag-store"))
    except OSError:
        pass


def make_file(path, size):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[:min(left, len(block))])
            left -= len(block)
        f.flush()
        os.fsync(f.fileno())


class Server:
    def __init__(self, notmod, root, *options):
        self.t0 = time.monotonic()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [notmod, "serve", "--access-log", "off", "--listen", "127.0.0.1:0",
             "--etag-store", STORE[0], *options, root],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        self.t_listen = time.monotonic() - self.t0
        m = re.search(r":(\d+)/ ", line)
        if not m:
            raise SystemExit("server did not start: %r" % line)
        self.port = int(m.group(1))

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def wait_line(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            if needle in text:
                return time.monotonic() - self.t0, text
            time.sleep(0.01)
        raise SystemExit("no %r within %ss" % (needle, timeout))

    def status(self):
        fields = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        return fields

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


def head_request(port, path, method="GET"):
    """Seconds to the first response byte, and the response head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = time.monotonic()
    s.sendall(("%s %s HTTP/1.1\r\nHost: b\r\n\r\n" % (method, path)).encode())
    first = s.recv(1)
    ttfb = time.monotonic() - t
    data = first
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return ttfb, data.split(b"\r\n\r\n")[0].decode(errors="replace")


def has_etag(head):
    return re.search(r"(?im)^etag:", head) is not None


def hashing_speed(notmod, work, runs):
    exe = os.path.join(work, "xxh3_speed")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "xxh3_speed.c"), "-lxxhash"],
                   check=True)
    out = subprocess.run([exe, "256", str(max(runs, 7))], capture_output=True, check=True,
                         text=True).stdout.split()
    mem = (float(out[0]), float(out[1]), float(out[2]))
    big = os.path.join(work, "gib.bin")
    make_file(big, 1 << 30)
    subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)
    rates = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run([notmod, "etag", "--rehash", big], stdout=subprocess.DEVNULL, check=True)
        rates.append((1 << 30) / (time.monotonic() - t) / 1e9)
    os.unlink(big)
    return mem, (statistics.median(rates), min(rates), max(rates))


def ttfb(notmod, work, runs):
    rows = []
    for label, size in (("1 MiB", 1 << 20), ("100 MiB", 100 << 20), ("1 GiB", 1 << 30)):
        d = os.path.join(work, "ttfb")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "f.bin")
        make_file(path, size)
        with open(os.path.join(d, "w.txt"), "wb") as f:
            f.write(b"warm\n")
        time.sleep(RACY_S)
        for cache in ("page cache", "evicted"):
            firsts, tagged_first, to_tag = [], 0, []
            for _ in range(runs):
                drop_xattr(path)
                time.sleep(RACY_S)  # removing the attribute moved the ctime
                if cache == "evicted":
                    evict(path)
                else:
                    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
                srv = Server(notmod, d, "--no-prehash", "--workers", "1")
                head_request(srv.port, "/w.txt")  # a running server: the worker is warm
                t0 = time.monotonic()
                first, head = head_request(srv.port, "/f.bin")
                firsts.append(first)
                tagged_first += has_etag(head)
                while not has_etag(head) and time.monotonic() - t0 < 300:
                    time.sleep(0.005)
                    _, head = head_request(srv.port, "/f.bin", "HEAD")
                to_tag.append(time.monotonic() - t0)
                srv.stop()
            rows.append((label, cache, statistics.median(firsts) * 1e3, tagged_first, runs,
                         statistics.median(to_tag) * 1e3))
        os.unlink(path)
    return rows


def tree(notmod, work, n_files, runs):
    root = os.path.join(work, "tree")
    names = []
    t = time.monotonic()
    for i in range(n_files):
        d = os.path.join(root, "d%03d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "f%05d.%s" % (i, "bin" if i % 5 < 2 else "txt"))
        size = 96 * 1024 if i % 5 < 2 else 2048
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        names.append(p)
    made_s = time.monotonic() - t
    total = sum(os.path.getsize(p) for p in names)
    large = sum(1 for p in names if p.endswith(".bin"))
    time.sleep(RACY_S)
    results = {}
    for mode in ("cold", "persisted"):
        rows = []
        for r in range(runs):
            if mode == "cold":
                for p in names:
                    drop_xattr(p)
                time.sleep(RACY_S)  # removing attributes moved the ctimes
            for p in names:
                evict(p)
            srv = Server(notmod, root)
            done_s, text = srv.wait_line("hashing after prehash", 1800)
            st = srv.status()
            counters = re.findall(r"hashing after prehash: (.*)", text)[-1]
            srv.stop()
            rows.append((srv.t_listen, done_s, st["VmRSS"], st["VmHWM"], counters))
        results[mode] = rows
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    srv = Server(notmod, empty)
    srv.wait_line("hashing after prehash", 60)
    base = srv.status()
    srv.stop()
    return dict(files=n_files, large=large, bytes=total, made_s=made_s, results=results,
                empty_rss=base["VmRSS"], empty_hwm=base["VmHWM"])


def kib(v):
    return int(v.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--notmod", default=os.path.join(TOP, "build", "release", "notmod"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--skip", default="", help="comma list of: speed,ttfb,tree")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="notmod-bench-hash-", dir=a.work)
    STORE.append(os.path.join(work, "etag-store"))
    skip = set(filter(None, a.skip.split(",")))
    try:
        print("## Content hashing\n")
        cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")]
        fs = subprocess.run(["df", "-T", work], capture_output=True, text=True).stdout
        print("Machine: %s, %d CPUs, Linux %s, work dir on %s; %s.\n" % (
            cpu[0].split(":", 1)[1].strip() if cpu else "?", os.cpu_count(), os.uname().release,
            fs.splitlines()[1].split()[1], a.notmod))
        if "speed" not in skip:
            mem, e2e = hashing_speed(a.notmod, work, a.runs)
            print("| XXH3-128, one core | median GB/s | min | max |\n|---|---|---|---|")
            print("| in memory, 256 MiB buffer | %.2f | %.2f | %.2f |" % mem)
            print("| `notmod etag --rehash`, 1 GiB file in page cache | %.2f | %.2f | %.2f |\n"
                  % e2e)
        if "ttfb" not in skip:
            print("| unhashed file | cache | TTFB median (ms) | first response tagged | "
                  "ETag sent after (ms, median) |\n|---|---|---|---|---|")
            for label, cache, first, tagged, runs, to_tag in ttfb(a.notmod, work, a.runs):
                print("| %s | %s | %.2f | %d of %d | %.1f |" % (label, cache, first, tagged,
                                                               runs, to_tag))
            print()
        if "tree" not in skip:
            t = tree(a.notmod, work, a.files, max(1, min(a.runs, 3)))
            print("Tree: %d files (%d of 96 KiB, the rest 2 KiB), %.2f GB, written in %.0f s; "
                  "empty-tree server: VmRSS %s, VmHWM %s.\n" % (
                      t["files"], t["large"], t["bytes"] / 1e9, t["made_s"], t["empty_rss"],
                      t["empty_hwm"]))
            print("| start | listening (ms) | prehash done (s) | VmRSS then (MiB) | "
                  "VmHWM (MiB) | counters (last run) |\n|---|---|---|---|---|---|")
            for mode, rows in t["results"].items():
                print("| %s | %.1f | %.2f | %.1f | %.1f | %s |" % (
                    mode, statistics.median(r[0] for r in rows) * 1e3,
                    statistics.median(r[1] for r in rows),
                    statistics.median(kib(r[2]) for r in rows) / 1024,
                    statistics.median(kib(r[3]) for r in rows) / 1024, rows[-1][4]))
            print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
