"""RFC 9110 §13 preconditions, §14 ranges and the §15.4.5 304 shape, end to end."""

import os
import re
import time
import unittest

from launch import (Conn, ServerTestCase, fetch, get_request, http_date, parse_http_date,
                    require_binary)

T0 = 1672531200  # 2023-01-01 00:00:00 UTC
BODY = b"hello, conditional world\n"
RANGE_BODY = bytes((i * 7 + 3) % 251 for i in range(1000))
LARGE_BODY = bytes((i * 11 + 1) % 253 for i in range(300 * 1024))


def populate_common(site):
    site.write("alive.txt", b"alive\n")
    site.write("a.txt", BODY, mtime=T0)
    site.write("range.bin", RANGE_BODY, mtime=T0)
    site.write("style.css", b"body{}\n", mtime=T0)
    site.write("static/app.js", b"var x;\n", mtime=T0)
    site.write("nostore.html", b"<p>x</p>\n", mtime=T0)


@require_binary
class Preconditions(ServerTestCase):
    @classmethod
    def populate(cls, site):
        populate_common(site)
        site.write("epoch0.txt", b"zero\n", mtime=0)
        site.write("epoch1.txt", b"one\n", mtime=1)
        site.write("future.txt", b"future\n", mtime=time.time() + 400 * 86400)
        site.write("large.bin", LARGE_BODY, mtime=T0)
        site.write("empty.txt", b"", mtime=T0)
        site.write("dir/index.html", b"<p>i</p>\n", mtime=T0)

    def setUp(self):
        first = self.get("/a.txt")
        self.assertEqual(first.status, 200)
        self.etag = first.header("ETag")
        self.lm = first.header("Last-Modified")
        self.assertRegex(self.etag, r'^"[^"]+"$')
        self.assertEqual(self.lm, http_date(T0))

    # ---- If-None-Match (§13.1.2) ----

    def test_if_none_match_with_the_current_tag_is_304(self):
        r = self.get("/a.txt", [("If-None-Match", self.etag)])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), self.etag)

    def test_weak_form_of_the_tag_matches_in_if_none_match(self):
        r = self.get("/a.txt", [("If-None-Match", "W/" + self.etag)])
        self.assertEqual(r.status, 304)

    def test_list_containing_the_tag_is_304(self):
        r = self.get("/a.txt", [("If-None-Match", '"nope", %s, W/"other"' % self.etag)])
        self.assertEqual(r.status, 304)

    def test_tag_on_a_second_if_none_match_line_is_304(self):
        r = self.get("/a.txt", [("If-None-Match", '"nope"'), ("If-None-Match", self.etag)])
        self.assertEqual(r.status, 304)

    def test_star_if_none_match_is_304(self):
        r = self.get("/a.txt", [("If-None-Match", "*")])
        self.assertEqual(r.status, 304)

    def test_other_tag_in_if_none_match_is_200(self):
        r = self.get("/a.txt", [("If-None-Match", '"something-else"')])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)

    def test_head_with_matching_if_none_match_is_304(self):
        r = fetch(self.port, "/a.txt", [("If-None-Match", self.etag)], method="HEAD")
        self.assertEqual(r.status, 304)

    # ---- If-Modified-Since (§13.1.3) ----

    def test_if_modified_since_equal_to_last_modified_is_304(self):
        r = self.get("/a.txt", [("If-Modified-Since", self.lm)])
        self.assertEqual(r.status, 304)

    def test_if_modified_since_later_than_last_modified_is_304(self):
        r = self.get("/a.txt", [("If-Modified-Since", http_date(T0 + 3600))])
        self.assertEqual(r.status, 304)

    def test_if_modified_since_earlier_than_last_modified_is_200(self):
        r = self.get("/a.txt", [("If-Modified-Since", http_date(T0 - 1))])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)

    def test_if_modified_since_later_than_the_server_clock_is_ignored(self):
        # No Last-Modified this server sends is later than its Date (§8.8.2.1), so a date after
        # its clock did not come from it: ignored (§13.1.3 on the origin clock), 200.
        for d in (http_date(time.time() + 3600), http_date(time.time() + 400 * 86400),
                  "Fri, 31 Dec 9999 23:59:59 GMT"):
            with self.subTest(date=d):
                r = self.get("/a.txt", [("If-Modified-Since", d)])
                self.assertEqual((r.status, r.body), (200, BODY))
                r = self.get("/a.txt", [("If-Modified-Since", d)], method="HEAD")
                self.assertEqual(r.status, 200)
        # After Last-Modified and not after Date: still 304.
        r = self.get("/a.txt", [("If-Modified-Since", http_date(time.time() - 60))])
        self.assertEqual(r.status, 304)
        # A file whose mtime is in the future has Last-Modified clamped to Date; a date past that
        # is ignored too.
        r = self.get("/future.txt", [("If-Modified-Since", http_date(time.time() + 3600))])
        self.assertEqual((r.status, r.body), (200, b"future\n"))

    def test_obsolete_date_forms_are_understood(self):
        rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(T0))
        asctime = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(T0))
        for d in (rfc850, asctime):
            with self.subTest(date=d):
                self.assertEqual(self.get("/a.txt", [("If-Modified-Since", d)]).status, 304)

    def test_invalid_if_modified_since_is_ignored(self):
        for d in ("yesterday", "Sun, 01 Jan 2023 00:00:00", "0", "Sun, 32 Jan 2023 00:00:00 GMT"):
            with self.subTest(date=d):
                r = self.get("/a.txt", [("If-Modified-Since", d)])
                self.assertEqual(r.status, 200)

    def test_if_modified_since_ignored_when_if_none_match_does_not_match(self):
        r = self.get("/a.txt", [("If-None-Match", '"stale"'),
                                ("If-Modified-Since", http_date(T0 + 3600))])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)

    def test_if_none_match_wins_when_if_modified_since_says_modified(self):
        r = self.get("/a.txt", [("If-None-Match", self.etag),
                                ("If-Modified-Since", http_date(T0 - 86400))])
        self.assertEqual(r.status, 304)

    # ---- If-Match (§13.1.1) and If-Unmodified-Since (§13.1.4) ----

    def test_if_match_with_the_current_tag_is_200(self):
        r = self.get("/a.txt", [("If-Match", self.etag)])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)

    def test_if_match_with_another_tag_is_412(self):
        r = self.get("/a.txt", [("If-Match", '"other"')])
        self.assertEqual(r.status, 412)

    def test_if_match_with_weak_form_is_412(self):
        r = self.get("/a.txt", [("If-Match", "W/" + self.etag)])
        self.assertEqual(r.status, 412)

    def test_if_match_star_is_200(self):
        r = self.get("/a.txt", [("If-Match", "*")])
        self.assertEqual(r.status, 200)

    def test_if_unmodified_since_earlier_than_last_modified_is_412(self):
        r = self.get("/a.txt", [("If-Unmodified-Since", http_date(T0 - 60))])
        self.assertEqual(r.status, 412)

    def test_if_unmodified_since_equal_to_last_modified_is_200(self):
        r = self.get("/a.txt", [("If-Unmodified-Since", self.lm)])
        self.assertEqual(r.status, 200)

    def test_if_unmodified_since_ignored_with_if_match(self):
        r = self.get("/a.txt", [("If-Match", self.etag),
                                ("If-Unmodified-Since", http_date(T0 - 60))])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)

    def test_if_match_failure_wins_over_if_none_match(self):
        r = self.get("/a.txt", [("If-Match", '"other"'), ("If-None-Match", self.etag)])
        self.assertEqual(r.status, 412)

    def test_if_none_match_list_forms(self):
        for value in ('"a",%s' % self.etag, ', ,%s,' % self.etag, 'W/"a" ,\t%s' % self.etag):
            with self.subTest(value=value):
                self.assertEqual(self.get("/a.txt", [("If-None-Match", value)]).status, 304)
        for value in ('"unterminated', self.etag[:-1], self.etag.strip('"'), '""'):
            with self.subTest(value=value):
                self.assertEqual(self.get("/a.txt", [("If-None-Match", value)]).status, 200)

    def test_if_match_list_containing_the_tag_is_200(self):
        self.assertEqual(self.get("/a.txt", [("If-Match", '"x", %s' % self.etag)]).status, 200)

    def test_redirect_wins_over_preconditions(self):
        r = self.get("/dir", [("If-None-Match", "*"), ("If-Match", '"nope"')])
        self.assertEqual((r.status, r.header("Location")), (301, "/dir/"))

    def test_preconditions_on_a_missing_file_give_404(self):
        r = self.get("/missing.txt", [("If-None-Match", "*"), ("If-Match", "*")])
        self.assertEqual(r.status, 404)

    # ---- Range and If-Range (§13.1.5, §14) ----

    def range_etag(self):
        return self.get("/range.bin", method="HEAD").header("ETag")

    def test_single_range_is_206_with_content_range(self):
        r = self.get("/range.bin", [("Range", "bytes=10-19")])
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("Content-Range"), "bytes 10-19/1000")
        self.assertEqual(r.header("Content-Length"), "10")
        self.assertEqual(r.body, RANGE_BODY[10:20])
        self.assertEqual(r.header("ETag"), self.range_etag())

    def test_suffix_and_open_ranges(self):
        r = self.get("/range.bin", [("Range", "bytes=-100")])
        self.assertEqual((r.status, r.header("Content-Range")), (206, "bytes 900-999/1000"))
        self.assertEqual(r.body, RANGE_BODY[900:])
        r = self.get("/range.bin", [("Range", "bytes=990-")])
        self.assertEqual((r.status, r.header("Content-Range")), (206, "bytes 990-999/1000"))
        self.assertEqual(r.body, RANGE_BODY[990:])
        r = self.get("/range.bin", [("Range", "bytes=995-5000")])
        self.assertEqual((r.status, r.header("Content-Range")), (206, "bytes 995-999/1000"))

    def test_multiple_ranges_are_multipart_byteranges(self):
        r = self.get("/range.bin", [("Range", "bytes=0-4, 100-109,-3")])
        self.assertEqual(r.status, 206)
        ctype = r.header("Content-Type")
        m = re.match(r"^multipart/byteranges; boundary=(\S+)$", ctype)
        self.assertIsNotNone(m, ctype)
        self.assertIsNone(r.header("Content-Range"))
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        parts = parse_multipart(r.body, m.group(1))
        self.assertEqual([p[0] for p in parts],
                         ["bytes 0-4/1000", "bytes 100-109/1000", "bytes 997-999/1000"])
        self.assertEqual([p[1] for p in parts],
                         [RANGE_BODY[0:5], RANGE_BODY[100:110], RANGE_BODY[997:]])
        for p in parts:
            self.assertEqual(p[2], "application/octet-stream")

    def test_multiple_ranges_of_a_large_file_are_sent_from_the_file(self):
        r = self.get("/large.bin", [("Range", "bytes=0-99,100000-165535,-70000")])
        self.assertEqual(r.status, 206)
        boundary = r.header("Content-Type").split("boundary=", 1)[1]
        parts = parse_multipart(r.body, boundary)
        n = len(LARGE_BODY)
        self.assertEqual([p[0] for p in parts],
                         ["bytes 0-99/%d" % n, "bytes 100000-165535/%d" % n,
                          "bytes %d-%d/%d" % (n - 70000, n - 1, n)])
        self.assertEqual([p[1] for p in parts],
                         [LARGE_BODY[:100], LARGE_BODY[100000:165536], LARGE_BODY[-70000:]])

    def test_ranges_of_an_empty_file(self):
        r = self.get("/empty.txt", [("Range", "bytes=0-0")])
        self.assertEqual((r.status, r.header("Content-Range")), (416, "bytes */0"))
        r = self.get("/empty.txt", [("Range", "bytes=-5")])
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "0"))

    def test_too_many_range_specs_are_ignored(self):
        spec = "bytes=" + ",".join("%d-%d" % (i, i) for i in range(0, 202, 2))
        r = self.get("/range.bin", [("Range", spec)])
        self.assertEqual((r.status, r.body), (200, RANGE_BODY))

    def test_if_none_match_with_a_range_is_304(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-None-Match", self.range_etag())])
        self.assertEqual(r.status, 304)

    def test_overlapping_ranges_are_coalesced(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9,5-14")])
        self.assertEqual((r.status, r.header("Content-Range")), (206, "bytes 0-14/1000"))
        self.assertEqual(r.body, RANGE_BODY[:15])

    def test_unsatisfiable_range_is_416_with_star_content_range(self):
        r = self.get("/range.bin", [("Range", "bytes=1000-1001")])
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */1000")

    def test_range_syntax_error_is_ignored(self):
        for spec in ("bytes=abc", "bytes=5-2", "items=0-1", "bytes 0-1", "bytes=--1"):
            with self.subTest(range=spec):
                r = self.get("/range.bin", [("Range", spec)])
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, RANGE_BODY)
                self.assertIsNone(r.header("Content-Range"))

    def test_range_on_head_is_ignored(self):
        r = self.get("/range.bin", [("Range", "bytes=0-1")], method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "1000")

    def test_if_range_with_the_current_strong_tag_is_206(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-Range", self.range_etag())])
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, RANGE_BODY[:10])

    def test_if_range_with_a_stale_tag_is_200_full(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-Range", '"stale"')])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, RANGE_BODY)

    def test_if_range_with_weak_tag_is_200_full(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-Range", "W/" + self.range_etag())])
        self.assertEqual(r.status, 200)

    def test_if_range_date_equal_to_last_modified_is_206(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-Range", http_date(T0))])
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, RANGE_BODY[:10])

    def test_if_range_date_other_than_last_modified_is_200(self):
        r = self.get("/range.bin", [("Range", "bytes=0-9"), ("If-Range", http_date(T0 + 1))])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, RANGE_BODY)

    # ---- HEAD and the 304 shape (§9.3.2, §15.4.5) ----

    def test_head_has_the_headers_of_get_and_no_body(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", method="HEAD") + get_request("/a.txt"))
            head = c.read_response(head_request=True)
            get = c.read_response()
        self.assertEqual(head.status, 200)
        self.assertEqual(get.body, BODY)

        def strip(r):
            return [(n.lower(), v) for n, v in r.headers if n.lower() != "date"]
        self.assertEqual(strip(head), strip(get))
        self.assertEqual(head.header("Content-Length"), str(len(BODY)))

    def test_304_has_date_etag_cache_control_and_nothing_else_of_the_body(self):
        with Conn(self.port) as c:
            c.send(get_request("/a.txt", [("If-None-Match", self.etag)]) +
                   get_request("/range.bin"))
            r = c.read_response()
            nxt = c.read_response()
        self.assertEqual(r.status, 304)
        self.assertTrue(r.has("Date"))
        self.assertEqual(r.header("ETag"), self.etag)
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        for absent in ("Content-Type", "Content-Length", "Transfer-Encoding",
                       "Content-Encoding", "Content-Range"):
            self.assertIsNone(r.header(absent), absent)
        # The next response starts right after the 304's empty line: no body bytes between.
        self.assertEqual(nxt.status, 200)
        self.assertEqual(nxt.body, RANGE_BODY)

    def test_304_by_date_keeps_the_validators(self):
        r = self.get("/a.txt", [("If-Modified-Since", self.lm)])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), self.etag)
        self.assertIsNone(r.header("Content-Length"))

    def test_date_header_is_now(self):
        r = self.get("/a.txt")
        self.assertLess(abs(parse_http_date(r.header("Date")) - time.time()), 5)

    # ---- Last-Modified edge cases (§8.8.2) ----

    def test_mtime_zero_and_one_send_no_last_modified(self):
        for name in ("/epoch0.txt", "/epoch1.txt"):
            with self.subTest(name=name):
                r = self.get(name)
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.header("Last-Modified"))
                self.assertTrue(r.has("ETag"))
                r = self.get(name, [("If-Modified-Since", http_date(T0))])
                self.assertEqual(r.status, 200)

    def test_future_mtime_is_clamped_to_date(self):
        r = self.get("/future.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Last-Modified"), r.header("Date"))
        later = self.get("/future.txt", [("If-Modified-Since", r.header("Date"))])
        self.assertEqual(later.status, 304)


def parse_multipart(body, boundary):
    """[(content_range, bytes, content_type)] of a multipart/byteranges body, strictly."""
    delim = b"--" + boundary.encode()
    parts = []
    self_pos = body.index(delim)
    pos = self_pos
    for _ in range(1000):
        assert body[pos:pos + len(delim)] == delim, body[pos:pos + 40]
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            assert body[pos + 2:] in (b"", b"\r\n"), body[pos:]
            return parts
        assert body[pos:pos + 2] == b"\r\n"
        head_end = body.index(b"\r\n\r\n", pos)
        fields = {}
        for line in body[pos + 2:head_end].split(b"\r\n"):
            n, _, v = line.decode().partition(":")
            fields[n.strip().lower()] = v.strip()
        m = re.match(r"bytes (\d+)-(\d+)/(\d+)", fields["content-range"])
        n = int(m.group(2)) - int(m.group(1)) + 1
        data_start = head_end + 4
        parts.append((fields["content-range"], body[data_start:data_start + n],
                      fields.get("content-type")))
        pos = data_start + n
        assert body[pos:pos + 2] == b"\r\n"
        pos += 2
    raise AssertionError("too many parts")


@require_binary
class EtagMetadata(ServerTestCase):
    SERVER_OPTIONS = ("--etag", "metadata")

    @classmethod
    def populate(cls, site):
        populate_common(site)
        site.write("twin1.txt", BODY, mtime=T0)
        site.write("twin2.txt", BODY, mtime=T0 + 10)

    def test_metadata_tag_is_size_and_nanosecond_mtime(self):
        st = os.stat(self.site.path("a.txt"))
        r = self.get("/a.txt")
        self.assertEqual(r.header("ETag"), '"%x-%x"' % (st.st_size, st.st_mtime_ns))
        self.assertEqual(self.get("/a.txt", [("If-None-Match", r.header("ETag"))]).status, 304)

    def test_same_bytes_different_mtime_give_different_tags(self):
        t1 = self.get("/twin1.txt").header("ETag")
        t2 = self.get("/twin2.txt").header("ETag")
        self.assertNotEqual(t1, t2)


@require_binary
class EtagContent(ServerTestCase):
    @classmethod
    def populate(cls, site):
        populate_common(site)
        site.write("twin1.txt", BODY, mtime=T0)
        site.write("twin2.txt", BODY, mtime=T0 + 10)

    def test_same_bytes_give_the_same_tag_whatever_the_mtime(self):
        t1 = self.get("/twin1.txt").header("ETag")
        t2 = self.get("/twin2.txt").header("ETag")
        self.assertEqual(t1, t2)
        self.assertNotEqual(self.get("/range.bin").header("ETag"), t1)


@require_binary
class EtagVersion(ServerTestCase):
    SERVER_OPTIONS = ("--etag", "version:build-42.a")

    @classmethod
    def populate(cls, site):
        populate_common(site)

    def test_version_tag_is_the_given_string(self):
        for path in ("/a.txt", "/range.bin"):
            r = self.get(path)
            self.assertEqual(r.header("ETag"), '"build-42.a"')
        r = self.get("/a.txt", [("If-None-Match", '"build-42.a"')])
        self.assertEqual(r.status, 304)
        r = self.get("/a.txt", [("If-None-Match", '"build-41"')])
        self.assertEqual(r.status, 200)


@require_binary
class EtagOff(ServerTestCase):
    SERVER_OPTIONS = ("--etag", "off")

    @classmethod
    def populate(cls, site):
        populate_common(site)

    def test_no_etag_and_dates_still_validate(self):
        r = self.get("/a.txt")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("ETag"))
        self.assertEqual(r.header("Last-Modified"), http_date(T0))
        r = self.get("/a.txt", [("If-Modified-Since", http_date(T0))])
        self.assertEqual(r.status, 304)
        self.assertIsNone(r.header("ETag"))
        self.assertEqual(r.header("Last-Modified"), http_date(T0))

    def test_any_tag_fails_if_match_and_passes_if_none_match(self):
        self.assertEqual(self.get("/a.txt", [("If-Match", '"x"')]).status, 412)
        self.assertEqual(self.get("/a.txt", [("If-None-Match", '"x"')]).status, 200)
        self.assertEqual(self.get("/a.txt", [("If-None-Match", "*")]).status, 304)


@require_binary
class ExactIfModifiedSince(ServerTestCase):
    SERVER_OPTIONS = ("--if-modified-since", "exact")

    @classmethod
    def populate(cls, site):
        populate_common(site)

    def test_only_the_exact_date_is_304(self):
        self.assertEqual(self.get("/a.txt", [("If-Modified-Since", http_date(T0))]).status, 304)
        # A rollback to an older file: the client's date is later than Last-Modified.
        self.assertEqual(self.get("/a.txt", [("If-Modified-Since", http_date(T0 + 60))]).status,
                         200)
        self.assertEqual(self.get("/a.txt", [("If-Modified-Since", http_date(T0 - 60))]).status,
                         200)


@require_binary
class CacheControlRules(ServerTestCase):
    SERVER_OPTIONS = ("--cache-control", "*.css=public, max-age=31536000, immutable",
                      "--cache-control", "/static/*=max-age=60",
                      "--cache-control", "nostore.html=no-store",
                      "--max-age", "120", "--expires")

    @classmethod
    def populate(cls, site):
        populate_common(site)

    def assert_expires(self, r, max_age):
        date = parse_http_date(r.header("Date"))
        self.assertEqual(parse_http_date(r.header("Expires")), date + max_age)

    def test_glob_on_the_name_matches(self):
        r = self.get("/style.css")
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assert_expires(r, 31536000)

    def test_glob_with_a_slash_matches_the_path(self):
        r = self.get("/static/app.js")
        self.assertEqual(r.header("Cache-Control"), "max-age=60")
        self.assert_expires(r, 60)

    def test_unmatched_path_gets_max_age(self):
        r = self.get("/a.txt")
        self.assertEqual(r.header("Cache-Control"), "max-age=120")
        self.assert_expires(r, 120)

    def test_rule_without_max_age_sends_no_expires(self):
        r = self.get("/nostore.html")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertIsNone(r.header("Expires"))

    def test_304_carries_cache_control_and_expires(self):
        etag = self.get("/style.css").header("ETag")
        r = self.get("/style.css", [("If-None-Match", etag)])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=31536000, immutable")
        self.assert_expires(r, 31536000)


if __name__ == "__main__":
    unittest.main()
