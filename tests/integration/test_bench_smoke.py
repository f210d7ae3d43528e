"""bench/compare.py, the side-by-side benchmark (docs/benchmarks.md), on a tiny run: one run of
one second over three scenarios against notmod, nginx, H2O and lighttpd. It checks the plumbing,
not the figures: every server starts and answers as the scenario expects, every CPU figure is
positive, the syscall and idle-memory tables are filled, and the SVG chart is drawn."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

from launch import notmod_binary, tool

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                     "compare.py")
SERVERS = ("notmod", "nginx", "h2o", "lighttpd")
SCENARIOS = ("inm", "get1k", "h2_304")
IDLE = 100
BENCH_TIMEOUT_S = 240


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("wrk", "h2load", "nginx", "h2o", "lighttpd", "gnuplot", "strace", "taskset",
                     "openssl"):
            tool(name)
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.svg, cls.json, cls.md = (os.path.join(d, n) for n in ("c.svg", "r.json", "t.md"))
        cls.bench = subprocess.run(
            [sys.executable, BENCH, "--notmod", notmod_binary(), "--runs", "1", "--seconds", "1",
             "--scenarios", ",".join(SCENARIOS), "--servers", ",".join(SERVERS),
             "--strace-requests", "100", "--idle", str(IDLE), "--idle-notmod", "0",
             "--svg", cls.svg, "--json", cls.json, "--markdown", cls.md],
            capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
        cls.results = None
        if cls.bench.returncode == 0:
            with open(cls.json) as f:
                cls.results = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def setUp(self):
        self.assertEqual(self.bench.returncode, 0, self.bench.stderr[-4000:])

    def test_every_server_answers_every_scenario_as_expected(self):
        for key in SCENARIOS:
            self.assertEqual(self.results["scenarios"][key]["na"], {}, key)

    def test_every_cpu_figure_is_positive(self):
        for key in SCENARIOS:
            samples = self.results["scenarios"][key]["samples"]
            self.assertEqual(sorted(samples), sorted(SERVERS), key)
            for server, runs in samples.items():
                self.assertEqual(len(runs), 1)
                self.assertGreater(runs[0]["requests"], 0, (key, server))
                self.assertGreater(runs[0]["cpu_us"], 0, (key, server))

    def test_syscalls_are_counted_for_every_server(self):
        for key in ("inm", "get1k"):
            for server in SERVERS:
                self.assertGreater(self.results["syscalls"][key][server]["per_request"], 0.5,
                                   (key, server))

    def test_every_server_holds_the_idle_connections(self):
        for server in SERVERS:
            (idle,) = self.results["idle"][server]
            self.assertEqual(idle["held"], IDLE, server)
            self.assertGreater(idle["rss_before"], 0, server)

    def test_the_tables_and_the_chart_are_written(self):
        with open(self.md) as f:
            md = f.read()
        for server in SERVERS:
            self.assertIn("| 304 If-None-Match | %s |" % server, md)
        with open(self.svg) as f:
            svg = f.read()
        self.assertIn("<svg", svg)
        self.assertIn("lighttpd", svg)


if __name__ == "__main__":
    unittest.main()
