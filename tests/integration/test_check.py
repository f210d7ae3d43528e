"""notmod check against notmod serve (passes), nginx and python3 -m http.server (each fails
where it departs from RFC 9110), a server with misshapen 304s, a server that mixes its content
codings, and replicas that disagree."""
import gzip
import json
import os
import shutil
import time
import unittest

from launch import (CannedServer, EtagServer, NginxServer, NotmodServer, PythonHttpServer,
                    RawServer, Resource, free_port, http_date, run, shared_tempdir, write_file)

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NETWORK = 0, 1, 2, 4


def check_json(*args):
    p = run(["check", "--json", "--timeout", "5"] + list(args), timeout=120)
    try:
        data = json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError(f"not JSON ({e}): {p.stdout[:500]!r} {p.stderr!r}")
    return p, data


def results(target):
    return {f["check"]: f["result"] for f in target["findings"]}


def fails(target):
    return {f["check"] for f in target["findings"] if f["result"] == "FAIL"}


class MisshapenServer(RawServer):
    """An HTTP/1.1 server over raw sockets whose 304s carry a body, Content-Length: 0, a
    Content-Type and no ETag: everything a 304 must not do."""

    BODY = b"0123456789abcdef"

    def __init__(self):
        super().__init__()
        self.date = http_date(time.time())
        self.lm = http_date(time.time() - 86400 * 3)

    def answer(self, head):
        lines = head.decode("latin-1").split("\r\n")
        method = lines[0].split(" ")[0]
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        common = (f"Date: {self.date}\r\nLast-Modified: {self.lm}\r\n"
                  "Cache-Control: max-age=60\r\nConnection: close\r\n")
        if fields.get("if-none-match") == '"m1"':
            return (b"HTTP/1.1 304 Not Modified\r\n" + common.encode() +
                    b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\nstray body")
        body = b"" if method == "HEAD" else self.BODY
        return (b"HTTP/1.1 200 OK\r\n" + common.encode() +
                f'ETag: "m1"\r\nContent-Type: text/plain\r\nContent-Length: {len(self.BODY)}\r\n\r\n'
                .encode() + body)


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return lines[0].split(" ")[0], fields


class MixedCodingServer(RawServer):
    """Serves a body as identity and, to Accept-Encoding: gzip, as gzip, with no Vary. With
    shared_tag both codings carry the same strong ETag (so a gzip range answers an identity
    If-Range); without it each has its own, but every 304 names the identity's."""

    BODY = b"mixed codings, one tag\n" * 20

    def __init__(self, shared_tag):
        super().__init__()
        self.shared_tag = shared_tag
        self.date = http_date(time.time())
        self.gz = gzip.compress(self.BODY, mtime=0)

    def answer(self, head):
        method, fields = parse_head(head)
        coded = "gzip" in fields.get("accept-encoding", "")
        tag = '"s1"' if self.shared_tag or not coded else '"s1-gz"'
        body = self.gz if coded else self.BODY
        common = (f"Date: {self.date}\r\nCache-Control: max-age=60\r\n"
                  "Connection: close\r\n")
        inm = fields.get("if-none-match")
        if inm is not None and tag in inm:
            return (f"HTTP/1.1 304 Not Modified\r\n{common}ETag: \"s1\"\r\n\r\n").encode()
        coding = "Content-Encoding: gzip\r\n" if coded else ""
        status = "200 OK"
        if fields.get("range") == "bytes=0-0" and fields.get("if-range", tag) == tag:
            status = "206 Partial Content"
            coding += f"Content-Range: bytes 0-0/{len(body)}\r\n"
            body = body[:1]
        return (f"HTTP/1.1 {status}\r\n{common}ETag: {tag}\r\n{coding}"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode() + (
                    b"" if method == "HEAD" else body)


class WrongVariantServer(RawServer):
    """Serves BODY as identity and, to Accept-Encoding: gzip, the given bytes as its gzip
    variant, with its own ETag and Vary: a well-behaved server but for the variant's content."""

    BODY = b"one resource, two codings\n" * 20

    def __init__(self, coded):
        super().__init__()
        self.coded = coded
        self.date = http_date(time.time())

    def answer(self, head):
        method, fields = parse_head(head)
        coded = "gzip" in fields.get("accept-encoding", "")
        tag, body = ('"w1-gz"', self.coded) if coded else ('"w1"', self.BODY)
        common = (f"Date: {self.date}\r\nCache-Control: max-age=60\r\nVary: Accept-Encoding\r\n"
                  f"Connection: close\r\nETag: {tag}\r\n")
        inm = fields.get("if-none-match")
        if inm is not None and tag in inm:
            return f"HTTP/1.1 304 Not Modified\r\n{common}\r\n".encode()
        coding = "Content-Encoding: gzip\r\n" if coded else ""
        return (f"HTTP/1.1 200 OK\r\n{common}{coding}Content-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + (
                    b"" if method == "HEAD" else body)


def body_finding(target):
    return [f for f in target["findings"] if f["check"] == "coding.body"]


CODING_PROBES = ("coding.etag", "coding.vary", "coding.304", "coding.304.vary", "coding.if-range",
                 "coding.body")


class CheckTestCase(unittest.TestCase):
    def setUp(self):
        # nginx serves from here with workers running as nobody.
        self.tmp = shared_tempdir("nm-check-")
        self.root = os.path.join(self.tmp, "www")
        os.makedirs(self.root)
        write_file(os.path.join(self.root, "a.txt"), b"hello, validators\n",
                   mtime=time.time() - 3600)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class ForeignServers(CheckTestCase):
    def test_nginx_fails_only_the_if_none_match_precedence_over_if_modified_since(self):
        with NginxServer(self.root) as ng:
            p, data = check_json(ng.url("/a.txt"))
        self.assertEqual(p.returncode, EXIT_FAIL, p.stderr)
        t = data["targets"][0]
        self.assertEqual(fails(t), {"precedence.current-etag"})
        r = results(t)
        for ok in ("inm.match", "inm.weak", "inm.list", "inm.star", "inm.other", "ims.match",
                   "precedence.stale-etag", "if-match.other", "range", "if-range.current",
                   "if-range.stale", "head", "304.etag", "304.body", "304.content-length"):
            self.assertEqual(r[ok], "PASS", ok)
        self.assertEqual(r["cache-control"], "WARN")
        finding = [f for f in t["findings"] if f["check"] == "precedence.current-etag"][0]
        self.assertEqual(finding["rfc"], "RFC 9110")
        self.assertEqual(finding["section"], "13.2.2")
        self.assertIn("-> 200, expected 304", finding["message"])

    def test_python_http_server_has_no_etag_and_ignores_if_match_and_if_unmodified_since(self):
        with PythonHttpServer(self.root) as py:
            p, data = check_json(py.url("/a.txt"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        t = data["targets"][0]
        self.assertEqual(fails(t), {"if-match.other", "ius.older"})
        r = results(t)
        self.assertEqual(r["etag"], "WARN")
        self.assertEqual(r["range"], "WARN")
        self.assertEqual(r["ims.match"], "PASS")
        self.assertEqual(r["304.body"], "PASS")
        self.assertNotIn("inm.match", r, "no ETag: no If-None-Match probes with it")

    def test_the_table_is_readable_and_ends_with_a_summary(self):
        with NginxServer(self.root) as ng:
            p = run(["check", ng.url("/a.txt")], timeout=120)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, EXIT_FAIL)
        self.assertIn("RESULT", out.splitlines()[1])
        self.assertRegex(out, r"FAIL +precedence\.current-etag +RFC 9110 §13\.2\.2")
        self.assertRegex(out.splitlines()[-1], r"^summary: \d+ PASS, \d+ WARN, 1 FAIL$")


class Misshapen304(CheckTestCase):
    def test_a_304_with_a_body_a_zero_length_and_no_etag_fails(self):
        with MisshapenServer() as srv:
            p, data = check_json(srv.url("/m"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        r = results(data["targets"][0])
        self.assertEqual(r["304.body"], "FAIL")
        self.assertEqual(r["304.content-length"], "FAIL")
        self.assertEqual(r["304.etag"], "FAIL")
        self.assertEqual(r["304.content-type"], "WARN")
        self.assertEqual(r["inm.match"], "PASS")

    def test_json_escapes_what_servers_send(self):
        with EtagServer() as srv:
            srv.add("/j", Resource(b"x", etag='"a\\b\xe9"', cache_control="max-age=1"))
            p, data = check_json(srv.url("/j"))
        msgs = " ".join(f["message"] for f in data["targets"][0]["findings"])
        # The byte that is not UTF-8 comes back exactly through surrogateescape.
        self.assertIn(b'"a\\b\xe9"', msgs.encode("utf-8", "surrogateescape"))


class Replicas(CheckTestCase):
    def test_backends_with_different_mtimes_disagree_on_validators(self):
        other = os.path.join(self.tmp, "www2")
        os.makedirs(other)
        write_file(os.path.join(other, "a.txt"), b"hello, validators\n",
                   mtime=time.time() - 7200)
        with NginxServer(self.root) as a, NginxServer(other) as b:
            backends = f"127.0.0.1:{a.port},127.0.0.1:{b.port}"
            p, data = check_json("--backends", backends, a.url("/a.txt"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        self.assertEqual(len(data["targets"]), 2)
        self.assertEqual({t["backend"] for t in data["targets"]},
                         {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"})
        r = results(data["replicas"][0])
        self.assertEqual(r["replicas.etag"], "FAIL")
        self.assertEqual(r["replicas.last-modified"], "FAIL")
        self.assertEqual(r["replicas.content"], "PASS")
        self.assertEqual(r["replicas.revalidate"], "FAIL")

    def test_backends_that_agree_pass(self):
        other = os.path.join(self.tmp, "www2")
        shutil.copytree(self.root, other)
        with NginxServer(self.root) as a, NginxServer(other) as b:
            p, data = check_json("--backends", f"127.0.0.1:{a.port},127.0.0.1:{b.port}",
                                 a.url("/a.txt"))
        r = results(data["replicas"][0])
        self.assertEqual(set(r.values()), {"PASS"}, r)
        self.assertEqual(r["replicas.revalidate"], "PASS")

    def test_backends_given_twice_keeps_both(self):
        with NotmodServer(self.root) as a, NotmodServer(self.root) as b:
            p, data = check_json("--backends", f"127.0.0.1:{a.port}", "--backends",
                                 f"127.0.0.1:{b.port}", a.url("/a.txt"))
        self.assertEqual([t["backend"] for t in data["targets"]],
                         [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
        r = results(data["replicas"][0])
        self.assertEqual(set(r.values()), {"PASS"}, r)
        self.assertEqual(p.returncode, EXIT_OK)

    def replicas_with_sidecars(self, level_a, level_b):
        """Two `notmod serve` replicas of one file whose gzip sidecars are made at these levels,
        both current; returns the replica findings."""
        body = b"".join(b"line %04d of a page that replicas share\n" % i for i in range(300))
        t0 = time.time() - 3600
        roots = []
        for name, level in (("r1", level_a), ("r2", level_b)):
            root = os.path.join(self.tmp, name)
            os.makedirs(root)
            write_file(os.path.join(root, "v.txt"), body, mtime=t0)
            write_file(os.path.join(root, "v.txt.gz"),
                       gzip.compress(body, compresslevel=level, mtime=0), mtime=t0 + 10)
            roots.append(root)
        with NotmodServer(roots[0], ["--no-compress"]) as a, \
                NotmodServer(roots[1], ["--no-compress"]) as b:
            p, data = check_json("--backends", f"127.0.0.1:{a.port},127.0.0.1:{b.port}",
                                 a.url("/v.txt"))
        return p, data["replicas"][0]

    def test_replicas_with_identical_sidecars_agree_on_the_gzip_variant(self):
        p, rep = self.replicas_with_sidecars(9, 9)
        r = results(rep)
        self.assertEqual(set(r.values()), {"PASS"}, rep["findings"])
        self.assertIn("replicas.coding", r)
        self.assertEqual(p.returncode, EXIT_OK)

    def test_replicas_with_sidecars_of_other_levels_disagree_on_the_gzip_variant(self):
        body = b"".join(b"line %04d of a page that replicas share\n" % i for i in range(300))
        self.assertNotEqual(gzip.compress(body, compresslevel=1, mtime=0),
                            gzip.compress(body, compresslevel=9, mtime=0))
        p, rep = self.replicas_with_sidecars(1, 9)
        r = results(rep)
        self.assertEqual(r["replicas.coding"], "FAIL", rep["findings"])
        self.assertEqual(r["replicas.etag"], "PASS")
        self.assertEqual(r["replicas.content"], "PASS")
        self.assertEqual(p.returncode, EXIT_FAIL)

    def test_a_dead_backend_is_a_network_error(self):
        with NginxServer(self.root) as a:
            p, data = check_json("--backends", f"127.0.0.1:{a.port},127.0.0.1:{free_port()}",
                                 a.url("/a.txt"))
        self.assertEqual(p.returncode, EXIT_NETWORK)
        self.assertEqual(results(data["targets"][1])["fetch"], "FAIL")


class NotmodPasses(CheckTestCase):
    def test_notmod_serve_passes_every_check(self):
        with NotmodServer(self.root) as srv:
            p, data = check_json(srv.url("/a.txt"))
        t = data["targets"][0]
        self.assertEqual(fails(t), set(), t["findings"])
        self.assertEqual(p.returncode, EXIT_OK)
        self.assertEqual(results(t)["precedence.current-etag"], "PASS")


class Codings(CheckTestCase):
    def test_notmod_serve_with_a_gzip_sidecar_passes_every_coding_probe(self):
        body = b"".join(b"line %04d of a compressible page\n" % i for i in range(200))
        t0 = time.time() - 3600
        write_file(os.path.join(self.root, "g.txt"), body, mtime=t0)
        write_file(os.path.join(self.root, "g.txt.gz"), gzip.compress(body, mtime=0),
                   mtime=t0 + 10)
        with NotmodServer(self.root) as srv:
            p, data = check_json(srv.url("/g.txt"))
        t = data["targets"][0]
        self.assertEqual(fails(t), set(), t["findings"])
        r = results(t)
        for probe in CODING_PROBES:
            self.assertEqual(r.get(probe), "PASS", (probe, t["findings"]))
        self.assertEqual(p.returncode, EXIT_OK)

    def test_one_strong_tag_for_two_codings_and_no_vary_fail(self):
        with MixedCodingServer(shared_tag=True) as srv:
            p, data = check_json(srv.url("/m"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        t = data["targets"][0]
        r = results(t)
        for probe in ("coding.etag", "coding.vary", "coding.if-range"):
            self.assertEqual(r[probe], "FAIL", (probe, t["findings"]))
        self.assertEqual(r["coding.304.vary"], "WARN")
        self.assertEqual(r["coding.body"], "PASS")
        finding = [f for f in t["findings"] if f["check"] == "coding.etag"][0]
        self.assertEqual(finding["section"], "8.8.3")
        self.assertIn('share the strong ETag "s1"', finding["message"])

    def test_a_304_naming_the_other_codings_tag_fails(self):
        with MixedCodingServer(shared_tag=False) as srv:
            p, data = check_json(srv.url("/m"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        r = results(data["targets"][0])
        self.assertEqual(r["coding.304"], "FAIL")
        self.assertEqual(r["coding.etag"], "PASS")

    def test_a_sidecar_that_decodes_to_the_identity_content_passes(self):
        body = b"".join(b"line %04d of a sidecar\n" % i for i in range(100))
        t0 = time.time() - 3600
        write_file(os.path.join(self.root, "s.txt"), body, mtime=t0)
        write_file(os.path.join(self.root, "s.txt.gz"), gzip.compress(body), mtime=t0 + 10)
        with NotmodServer(self.root, ["--no-compress"]) as srv:
            p, data = check_json(srv.url("/s.txt"))
        found = body_finding(data["targets"][0])
        self.assertEqual([f["result"] for f in found], ["PASS"], found)
        self.assertIn("decodes to the identity content's bytes", found[0]["message"])
        self.assertEqual(p.returncode, EXIT_OK)

    def test_a_gzip_variant_of_other_bytes_fails(self):
        other = WrongVariantServer.BODY.upper()  # same length: the ISIZE cannot tell
        with WrongVariantServer(gzip.compress(other)) as srv:
            p, data = check_json(srv.url("/w"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        found = body_finding(data["targets"][0])
        self.assertEqual([f["result"] for f in found], ["FAIL"], found)
        self.assertIn("decodes to other bytes than the identity body", found[0]["message"])

    def test_a_gzip_variant_that_is_not_gzip_fails(self):
        with WrongVariantServer(WrongVariantServer.BODY) as srv:
            p, data = check_json(srv.url("/w"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        found = body_finding(data["targets"][0])
        self.assertEqual([f["result"] for f in found], ["FAIL"], found)
        self.assertIn("not a gzip member", found[0]["message"])

    def test_a_well_framed_gzip_member_with_corrupt_content_does_not_decode(self):
        gz = bytearray(gzip.compress(WrongVariantServer.BODY, mtime=0))
        for i in range(12, len(gz) - 10):
            gz[i] ^= 0x55
        with WrongVariantServer(bytes(gz)) as srv:
            p, data = check_json(srv.url("/w"))
        self.assertEqual(p.returncode, EXIT_FAIL)
        found = body_finding(data["targets"][0])
        self.assertEqual([f["result"] for f in found], ["FAIL"], found)
        self.assertIn("does not decode", found[0]["message"])
        self.assertEqual(found[0]["section"], "8.4.1")


class NotFoundAndRedirects(CheckTestCase):
    def test_a_redirect_is_reported_with_its_location_and_no_probe_runs(self):
        os.makedirs(os.path.join(self.root, "dir"))
        with NotmodServer(self.root) as srv:
            p, data = check_json(srv.url("/dir"))
        t = data["targets"][0]
        self.assertEqual({f["check"] for f in t["findings"]}, {"get"}, t["findings"])
        self.assertIn("301", t["findings"][0]["message"])
        self.assertIn("Location: /dir/", t["findings"][0]["message"])
        self.assertEqual(p.returncode, EXIT_FAIL)

    def test_a_404_is_reported_as_such_and_no_probe_runs(self):
        with NotmodServer(self.root) as srv:
            p, data = check_json(srv.url("/missing.txt"))
        t = data["targets"][0]
        self.assertEqual({f["check"] for f in t["findings"]}, {"get"}, t["findings"])
        self.assertIn("GET answered 404", t["findings"][0]["message"])


class OneBackend(CheckTestCase):
    def test_one_backend_is_compared_with_the_urls_own_host(self):
        other = os.path.join(self.tmp, "www2")
        os.makedirs(other)
        write_file(os.path.join(other, "a.txt"), b"hello, validators, v2\n",
                   mtime=time.time() - 7200)
        with NotmodServer(self.root) as a, NotmodServer(other) as b:
            p, data = check_json("--backends", f"127.0.0.1:{b.port}", a.url("/a.txt"))
        self.assertEqual([t["backend"] for t in data["targets"]], [None, f"127.0.0.1:{b.port}"])
        r = results(data["replicas"][0])
        self.assertEqual(r["replicas.etag"], "FAIL")
        self.assertEqual(r["replicas.content"], "FAIL")
        self.assertNotIn("replicas", r, "two answers were compared")
        self.assertEqual(p.returncode, EXIT_FAIL)

    def test_one_backend_that_is_the_url_passes(self):
        with NotmodServer(self.root) as a:
            p, data = check_json("--backends", f"127.0.0.1:{a.port}", a.url("/a.txt"))
        r = results(data["replicas"][0])
        self.assertEqual(set(r.values()), {"PASS"}, r)
        self.assertEqual(p.returncode, EXIT_OK)


class BadInput(unittest.TestCase):
    def test_usage_errors(self):
        for args in (["check"], ["check", "not a url"], ["check", "--backends", "nope",
                                                        "http://127.0.0.1/"],
                     ["check", "--timeout", "0", "http://127.0.0.1/"], ["check", "--bogus"]):
            p = run(args)
            self.assertEqual(p.returncode, EXIT_USAGE, args)
            self.assertTrue(p.stderr.startswith(b"notmod check: "), p.stderr)

    def test_help(self):
        p = run(["check", "--help"])
        self.assertEqual(p.returncode, EXIT_OK)
        self.assertIn(b"--backends", p.stdout)

    def test_unreachable_url_is_a_network_error(self):
        p, data = check_json(f"http://127.0.0.1:{free_port()}/")
        self.assertEqual(p.returncode, EXIT_NETWORK)
        self.assertFalse(data["targets"][0]["reachable"])



class HostileValues(unittest.TestCase):
    def test_reason_phrases_and_etags_reach_the_terminal_escaped(self):
        # obs-text is allowed in both; a bare 0x9b is CSI to an 8-bit terminal.
        resp = (b"HTTP/1.1 200 O\x9b2JK\r\nETag: \"\x9b2J\"\r\n"
                b"Last-Modified: Thu, 01 Jan 2015 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nhi")
        with CannedServer(resp) as srv:
            p = run(["check", "--timeout", "5", srv.url("/")], timeout=120)
            out = p.stdout + p.stderr
            self.assertFalse(any((b < 0x20 and b not in (0x0a, 0x09)) or 0x7f <= b <= 0x9f
                                 for b in out.replace("§".encode(), b"")), out)
            self.assertIn(b"\\x9b2J", p.stdout)


if __name__ == "__main__":
    unittest.main()
