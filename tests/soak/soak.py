"""A long run of notmod serve under mixed load while a writer changes the tree.

Clients over keep-alive and pipelined connections ask for 200s, 304s, 206s, 404s and a listing;
slow readers take large files a little at a time; other clients drop connections mid-response.
Meanwhile a writer rewrites files in place and by rename, renames them away and back, and
deletes and recreates them. Every second the server's RSS, open descriptors and the requests'
latency are sampled. At the end:
- RSS and descriptors, once the load has stopped, are within 5% of their level after warm-up;
- no ETag stands for a body whose content hash differs (checked with `notmod etag` on the bodies
  received, one per tag) and no ETag stands for two bodies;
- every response is well-formed HTTP/1.1 (a transfer the server cuts because the file changed
  under it is counted, not an error).

Usage: soak.py [--binary PATH] [--seconds N] [--warmup N] [--json FILE] [--rss-tolerance F].
The binary defaults to $NOTMOD. Python standard library only; every loop is bounded in time.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import launch  # noqa: E402
from launch import (Conn, NotmodServer, ProtocolError, get_request,  # noqa: E402
                    process_fd_count, process_rss_bytes)

SMALL = ["s%02d.txt" % i for i in range(24)]
LARGE = ["l%d.bin" % i for i in range(4)]
TOLERANCE = 0.05
TAG_SAMPLES_MAX = 4000


def body_for(name, gen):
    """A body that names its file and generation; small files up to 60 KB, large ones 0.3-2 MB."""
    rng = random.Random("%s/%d" % (name, gen))
    size = rng.randint(100, 60000) if name in SMALL else rng.randint(300_000, 2_000_000)
    head = ("%s gen=%d\n" % (name, gen)).encode()
    block = hashlib.sha256(head).digest() * 64
    return (head + block * (size // len(block) + 1))[:size]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.latencies = []  # of the current second
        self.tags = {}  # ETag -> set of sha256 of the whole bodies sent under it
        self.samples = {}  # ETag -> one body, for the content-hash check
        self.malformed = []

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def response(self, status, latency, tag=None, body=None):
        with self.lock:
            self.counts[status] = self.counts.get(status, 0) + 1
            self.latencies.append(latency)
            if tag and body is not None:
                self.tags.setdefault(tag, set()).add(hashlib.sha256(body).digest())
                if tag not in self.samples and len(self.samples) < TAG_SAMPLES_MAX:
                    self.samples[tag] = body

    def bad(self, what):
        with self.lock:
            if len(self.malformed) < 50:
                self.malformed.append(what)
            self.counts["malformed"] = self.counts.get("malformed", 0) + 1

    def take_latencies(self):
        with self.lock:
            out, self.latencies = self.latencies, []
        return out


class Soak:
    def __init__(self, binary, seconds, warmup, rss_tolerance=TOLERANCE):
        self.rss_tolerance = rss_tolerance
        self.binary = binary
        self.seconds = seconds
        self.warmup = warmup
        self.tmp = tempfile.mkdtemp(prefix="notmod-soak-")
        self.root = os.path.join(self.tmp, "site")
        os.makedirs(os.path.join(self.root, "dir"))
        self.gen = dict((n, 0) for n in SMALL + LARGE)
        for name in self.gen:
            self.write(name, body_for(name, 0), rename=False)
        for i in range(50):
            with open(os.path.join(self.root, "dir", "e%03d" % i), "wb") as f:
                f.write(b"x" * i)
        self.stats = Stats()
        self.stop = threading.Event()
        self.known_tags = {}  # path -> a tag seen, for conditional requests
        self.srv = None

    def write(self, name, data, rename):
        path = os.path.join(self.root, name)
        if rename:
            tmp = "%s.tmp%d" % (path, threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            with open(path, "r+b" if os.path.exists(path) else "wb") as f:
                f.write(data)
                f.truncate(len(data))

    # ---- the writer ----

    def writer(self):
        rng = random.Random(1)
        while not self.stop.is_set():
            name = rng.choice(SMALL + LARGE)
            path = os.path.join(self.root, name)
            what = rng.choice(("in place", "rename", "rename", "move away", "delete"))
            self.gen[name] += 1
            data = body_for(name, self.gen[name])
            if what == "move away" and os.path.exists(path):
                away = path + ".away"
                os.replace(path, away)
                time.sleep(0.05)
                os.replace(away, path)
            elif what == "delete" and os.path.exists(path):
                os.unlink(path)
                time.sleep(0.05)
                self.write(name, data, rename=True)
            else:
                self.write(name, data, rename=what == "rename")
            self.stats.count("writes " + what)
            time.sleep(rng.uniform(0.01, 0.1))

    # ---- clients ----

    def request_for(self, rng):
        """(path, headers, method) of a request of the mix."""
        k = rng.random()
        name = rng.choice(SMALL if rng.random() < 0.8 else LARGE)
        path = "/" + name
        if k < 0.35:
            return path, [], "GET"
        if k < 0.65:
            tag = self.known_tags.get(path)
            return path, [("If-None-Match", tag)] if tag else [], "GET"
        if k < 0.8:
            a = rng.randint(0, 50)
            return path, [("Range", "bytes=%d-%d" % (a, a + rng.randint(0, 80)))], "GET"
        if k < 0.9:
            return "/missing-%d.txt" % rng.randint(0, 99), [], "GET"
        if k < 0.95:
            return "/dir/", [], "GET"
        return path, [], "HEAD"

    def check(self, path, headers, method, r, latency):
        """Counts a response and checks what it claims."""
        tag = r.header("ETag")
        if r.status == 200:
            if tag and method == "GET" and path != "/dir/":
                self.known_tags[path] = tag
            self.stats.response(200, latency, tag if method == "GET" else None,
                                r.body if method == "GET" else None)
        elif r.status == 206:
            cr = r.header("Content-Range", "")
            try:
                a, b = cr.split(" ")[1].split("/")[0].split("-")
                ok = int(b) - int(a) + 1 == len(r.body)
            except (IndexError, ValueError):
                ok = False
            if not ok:
                self.stats.bad("206 with Content-Range %r and %d bytes" % (cr, len(r.body)))
            self.stats.response(206, latency)
        elif r.status == 304:
            inm = dict(headers).get("If-None-Match")
            if not inm or tag != inm:
                self.stats.bad("304 for %s with ETag %r to If-None-Match %r" % (path, tag, inm))
            self.stats.response(304, latency)
        elif r.status in (404, 503):
            self.stats.response(r.status, latency)
        else:
            self.stats.bad("status %d for %s %s" % (r.status, method, path))

    def keepalive_client(self, cid, pipeline):
        rng = random.Random(100 + cid)
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = Conn(self.srv.port)
                reqs = [self.request_for(rng) for _ in range(8 if pipeline else 1)]
                t = time.monotonic()
                conn.send(b"".join(get_request(p, h, m) for p, h, m in reqs))
                for p, h, m in reqs:
                    r = conn.read_response(head_request=m == "HEAD")
                    self.check(p, h, m, r, time.monotonic() - t)
                if rng.random() < 0.05:
                    conn.close()
                    conn = None
            except ProtocolError as e:
                # A large file changed mid-body: the server ends the connection short of
                # Content-Length, by design. Anything else is malformed.
                text = str(e)
                if text.startswith("connection closed with"):
                    self.stats.count("cut")
                else:
                    self.stats.bad(text[:200])
                conn.close()
                conn = None
            except OSError as e:
                self.stats.count("connection error %s" % type(e).__name__)
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def slow_reader(self, cid):
        rng = random.Random(200 + cid)
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
                s.sendall(get_request("/" + rng.choice(LARGE)))
                end = time.monotonic() + rng.uniform(1, 4)
                while time.monotonic() < end and not self.stop.is_set():
                    if not s.recv(4096):
                        break
                    time.sleep(0.02)
                s.close()
                self.stats.count("slow reads")
            except OSError:
                self.stats.count("slow read errors")

    def dropper(self, cid):
        rng = random.Random(300 + cid)
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
                s.sendall(get_request("/" + rng.choice(LARGE + SMALL)) * rng.randint(1, 4))
                s.recv(rng.randint(1, 30000))
                if rng.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                s.close()
                self.stats.count("dropped")
            except OSError:
                self.stats.count("drop errors")
            time.sleep(0.01)

    # ---- the run ----

    def sample(self, t0, samples):
        pid = self.srv.proc.pid
        lat = sorted(self.stats.take_latencies())
        samples.append({
            "t": round(time.monotonic() - t0, 1),
            "rss_mb": round(process_rss_bytes(pid) / 1e6, 2),
            "fds": process_fd_count(pid),
            "requests": len(lat),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
        })

    def run(self):
        env_asan = os.environ.get("ASAN_OPTIONS")
        # A sanitizer build holds freed memory in a quarantine that would read as growth.
        os.environ["ASAN_OPTIONS"] = (env_asan + ":" if env_asan else "") + \
            "quarantine_size_mb=4:detect_leaks=1"
        launch.NOTMOD = self.binary
        self.srv = NotmodServer(self.root, ["--workers", "2", "--list-dirs"],
                                binary=self.binary).start()
        threads = [threading.Thread(target=self.writer)]
        threads += [threading.Thread(target=self.keepalive_client, args=(i, i % 2 == 1))
                    for i in range(6)]
        threads += [threading.Thread(target=self.slow_reader, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=self.dropper, args=(i,)) for i in range(2)]
        samples = []
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            while time.monotonic() - t0 < self.seconds:
                time.sleep(1)
                self.sample(t0, samples)
                if not self.srv.is_running():
                    break
        finally:
            self.stop.set()
            for t in threads:
                t.join(60)
        # The load is gone: idle connections close at the server's sweep; then the final level.
        time.sleep(3)
        self.sample(t0, samples)
        final = samples[-1]
        after_warmup = [s for s in samples if self.warmup <= s["t"] < self.warmup + 10]
        base_rss = max(s["rss_mb"] for s in after_warmup)
        base_fds = max(s["fds"] for s in after_warmup)
        peak_rss = max(s["rss_mb"] for s in samples)
        bad_tags = self.check_tags()
        status = self.srv.stop()
        report = self.srv.sanitizer_report()
        lat = [s["p99_ms"] for s in samples if s["p99_ms"] is not None]
        result = {
            "seconds": self.seconds,
            "counts": dict((str(k), v) for k, v in sorted(self.stats.counts.items(),
                                                           key=lambda kv: str(kv[0]))),
            "rss_after_warmup_mb": base_rss,
            "rss_peak_mb": peak_rss,
            "rss_end_mb": final["rss_mb"],
            "fds_after_warmup": base_fds,
            "fds_end": final["fds"],
            "p99_ms_worst_second": max(lat) if lat else None,
            "p99_ms_median_second": sorted(lat)[len(lat) // 2] if lat else None,
            "tags_seen": len(self.stats.tags),
            "tags_with_two_bodies": sum(1 for b in self.stats.tags.values() if len(b) > 1),
            "tags_checked": len(self.stats.samples),
            "tags_not_the_body_hash": bad_tags,
            "malformed": self.stats.counts.get("malformed", 0),
            "malformed_examples": self.stats.malformed[:5],
            "exit_status": status,
            "sanitizer_report": bool(report),
            "samples": samples,
        }
        problems = []
        if final["rss_mb"] > base_rss * (1 + self.rss_tolerance):
            problems.append("RSS %.1f MB at the end, %.1f MB after warm-up"
                            % (final["rss_mb"], base_rss))
        if final["fds"] > base_fds * (1 + TOLERANCE):
            problems.append("%d descriptors at the end, %d after warm-up" % (final["fds"],
                                                                              base_fds))
        if result["tags_with_two_bodies"] or bad_tags:
            problems.append("ETags that do not describe their bodies")
        if result["malformed"]:
            problems.append("malformed responses: %r" % self.stats.malformed[:5])
        if status != 0 or report:
            problems.append("server exit %r%s" % (status, "; " + report[-2000:] if report else ""))
        for kind in (200, 304, 206, 404):
            if not self.stats.counts.get(kind):
                problems.append("no %d responses" % kind)
        result["problems"] = problems
        return result

    def check_tags(self):
        """Tags whose sampled body does not hash to them, by `notmod etag` on the bodies."""
        d = os.path.join(self.tmp, "bodies")
        os.mkdir(d)
        by_name = {}
        for i, (tag, body) in enumerate(sorted(self.stats.samples.items())):
            name = os.path.join(d, "%05d" % i)
            with open(name, "wb") as f:
                f.write(body)
            by_name[name] = tag
        if not by_name:
            return 0
        p = subprocess.run([self.binary, "etag", d], capture_output=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError("notmod etag failed: %s" % p.stderr.decode(errors="replace"))
        bad = 0
        seen = 0
        for line in p.stdout.decode().splitlines():
            tag, path = line.split(" ", 1)
            seen += 1
            bad += by_name.get(path) != tag
        return bad + (len(by_name) - seen)

    def cleanup(self):
        if self.srv:
            self.srv.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.environ.get("NOTMOD", ""))
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the figures and samples here")
    ap.add_argument("--rss-tolerance", type=float, default=TOLERANCE,
                    help="how far above its level after warm-up RSS may end (default 0.05)")
    args = ap.parse_args()
    if not args.binary or not os.access(args.binary, os.X_OK):
        print("soak: --binary or $NOTMOD must name the notmod binary", file=sys.stderr)
        return 2
    os.environ["NOTMOD"] = os.path.abspath(args.binary)
    warmup = args.warmup if args.warmup is not None else min(60, max(10, args.seconds // 5))
    soak = Soak(os.path.abspath(args.binary), args.seconds, warmup, args.rss_tolerance)
    try:
        result = soak.run()
    finally:
        soak.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    summary = dict((k, v) for k, v in result.items() if k != "samples")
    print(json.dumps(summary, indent=1))
    if result["problems"]:
        print("soak: FAILED: " + "; ".join(result["problems"]), file=sys.stderr)
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
