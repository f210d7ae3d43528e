"""Paths: traversal encodings over raw sockets, symlinks, dotfiles, directories and listings."""

import html.parser
import os
import re
import shutil
import time
import unittest
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from launch import (Conn, ServerTestCase, Site, fetch, require_binary, serve_for_test,
                    shared_tempdir)

INNER = b"inner file\n"

# (request-target, expected status). The site's parent holds secret.txt, which no target may
# reach; the root has no index.html, so the root itself is 404.
TRAVERSALS = [
    ("/../secret.txt", 404),
    ("/../../secret.txt", 404),
    ("/../../../../../../../../secret.txt", 404),
    ("/sub/../../secret.txt", 404),
    ("/./../secret.txt", 404),
    ("//../secret.txt", 404),
    ("/sub/./../../secret.txt", 404),
    ("/%2e%2e/secret.txt", 404),
    ("/%2E%2E/secret.txt", 404),
    ("/.%2e/secret.txt", 404),
    ("/%2e./secret.txt", 404),
    ("/..%2fsecret.txt", 400),
    ("/%2e%2e%2fsecret.txt", 400),
    ("/%2e%2e%2Fsecret.txt", 400),
    ("/sub%2f..%2f..%2fsecret.txt", 400),
    ("/sub/..%2f../secret.txt", 400),
    ("/%252e%252e/secret.txt", 404),
    ("/%252e%252e%252fsecret.txt", 404),
    ("/..%252f..%252fsecret.txt", 404),
    ("/..\\secret.txt", 404),
    ("/\\..\\..\\secret.txt", 404),
    ("/..%5csecret.txt", 404),
    ("/%5c..%5c..%5csecret.txt", 404),
    ("/..%00/secret.txt", 400),
    ("/secret.txt%00.html", 400),
    ("/%00../secret.txt", 400),
    ("/%c0%ae%c0%ae/secret.txt", 404),
    ("/%c0%ae%c0%ae%c0%afsecret.txt", 404),
    ("/..%c0%afsecret.txt", 404),
    ("/%e0%80%ae%e0%80%ae/secret.txt", 404),
    ("/%c1%9c../secret.txt", 404),
    ("/.../secret.txt", 404),
    ("/..;/secret.txt", 404),
    ("/%2e%2e;/secret.txt", 404),
    ("/%%32%65%%32%65/secret.txt", 400),
    ("/%2", 400),
    ("/%zz/secret.txt", 400),
    ("/%2e%2e", 404),
    ("/..?/../secret.txt", 404),
    ("/../site/../secret.txt", 404),
    ("http://x/../../secret.txt", 404),
    ("http://x/%2e%2e/%2e%2e/secret.txt", 404),
    ("HTTP://x/..%2fsecret.txt", 400),
    ("http://../secret.txt", 404),
    ("https://x/sub/../../../secret.txt", 404),
    ("secret.txt", 400),
    ("../secret.txt", 400),
]


def populate_paths(site):
    site.write("alive.txt", b"alive\n")
    site.write("inner.txt", INNER)
    site.write("sub/file.txt", b"in sub\n")
    site.write("dir/index.html", b"<p>index of dir</p>\n")
    site.write("noindex/one.txt", b"1\n")
    site.write("noindex/<b>&'.txt", b"tricky\n")
    site.write("noindex/.hidden-in-list", b"h\n")
    site.mkdir("noindex/child")
    site.write(".hidden", b"dotfile\n")
    site.write(".git/config", b"[core]\n")
    site.write("sub/.env", b"KEY=1\n")
    site.write(".well-known/acme.txt", b"token\n")
    site.write("with space.txt", b"spaced\n")
    site.write("100%.txt", b"percent\n")
    site.write("sp ace/index.html", b"x\n")
    site.write("per%cent/index.html", b"y\n")
    site.write("q?mark/index.html", b"z\n")
    os.symlink("inner.txt", site.path("link-in"))
    os.symlink("../inner.txt", site.path("sub/link-up-in"))
    os.symlink(site.path("inner.txt"), site.path("link-in-absolute"))
    os.symlink("../secret.txt", site.path("link-out"))
    os.symlink(os.path.join(site.base, "secret.txt"), site.path("link-out-absolute"))
    os.mkdir(os.path.join(site.base, "outdir"))
    with open(os.path.join(site.base, "outdir", "secret.txt"), "wb") as f:
        f.write(Site.SECRET)
    os.symlink("../outdir", site.path("dirlink-out"))
    os.symlink("nowhere", site.path("dangling"))
    os.symlink("loop-b", site.path("loop-a"))
    os.symlink("loop-a", site.path("loop-b"))


class TraversalMixin:
    def test_traversal_encodings_never_reach_the_secret(self):
        for target, status in TRAVERSALS:
            with self.subTest(target=target):
                with Conn(self.port) as c:
                    r = c.request(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode())
                self.assertNotIn(b"TOP-SECRET", r.body)
                self.assertEqual(r.status, status, target)
        self.assert_alive()

    def test_at_least_thirty_traversal_encodings_are_tried(self):
        self.assertGreaterEqual(len(TRAVERSALS), 30)


@require_binary
class PathsDefault(TraversalMixin, ServerTestCase):
    @classmethod
    def populate(cls, site):
        populate_paths(site)
        os.mkfifo(site.path("pipe"))

    def test_a_fifo_is_refused_without_being_opened(self):
        # Opening a FIFO with no writer would block or consume a writer's data: its type is
        # looked at first, so the answer is an immediate 403.
        started = time.monotonic()
        self.assertEqual(self.get("/pipe").status, 403)
        self.assertLess(time.monotonic() - started, 5)
        self.assert_alive()

    def test_symlink_to_a_file_inside_is_served(self):
        for target in ("/link-in", "/sub/link-up-in"):
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual((r.status, r.body), (200, INNER))

    def test_absolute_symlink_to_a_file_inside_is_served(self):
        r = self.get("/link-in-absolute")
        self.assertEqual((r.status, r.body), (200, INNER))

    def test_symlink_to_a_file_outside_is_404_like_a_missing_one(self):
        # The same answer whether the outside target exists or not: nothing about it is told.
        os.symlink("../no-such-file", self.site.path("link-out-missing"))
        for target in ("/link-out", "/link-out-absolute", "/dirlink-out/secret.txt",
                       "/link-out-missing"):
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 404)
                self.assertNotIn(b"TOP-SECRET", r.body)

    def test_symlink_out_of_the_root_to_a_loop_is_404_like_a_missing_one(self):
        # Whatever the target: a loop outside answers as a missing file, not 403.
        os.symlink("loop-out-b", os.path.join(self.site.base, "loop-out-a"))
        os.symlink("loop-out-a", os.path.join(self.site.base, "loop-out-b"))
        os.symlink("../loop-out-a", self.site.path("link-out-loop"))
        os.symlink(os.path.join(self.site.base, "loop-out-a"),
                   self.site.path("link-out-loop-absolute"))
        os.symlink("../secret.txt/x", self.site.path("link-out-through-a-file"))
        for target in ("/link-out-loop", "/link-out-loop-absolute", "/link-out-loop/x",
                       "/link-out-through-a-file"):
            with self.subTest(target=target):
                self.assertEqual(self.get(target).status, 404)
        self.assert_alive()

    def test_symlink_out_of_the_root_to_an_unreadable_place_is_404_like_a_missing_one(self):
        # As nobody, for whom a directory beside the root is closed: 404, not 403.
        base = shared_tempdir("notmod-paths-")
        self.addCleanup(shutil.rmtree, base, True)
        root = os.path.join(base, "site")
        os.mkdir(root, 0o755)
        os.mkdir(os.path.join(base, "private"), 0o700)
        with open(os.path.join(base, "private", "x.txt"), "wb") as f:
            f.write(Site.SECRET)
        with open(os.path.join(root, "inner.txt"), "wb") as f:
            f.write(INNER)
        os.chmod(os.path.join(root, "inner.txt"), 0o644)
        os.symlink("../private/x.txt", os.path.join(root, "link-out-private"))
        os.symlink(os.path.join(base, "private", "x.txt"),
                   os.path.join(root, "link-out-private-absolute"))
        os.symlink("../private", os.path.join(root, "dirlink-out-private"))
        srv = serve_for_test(self, root, as_nobody=True)
        self.assertEqual(fetch(srv.port, "/inner.txt").status, 200)
        for target in ("/link-out-private", "/link-out-private-absolute",
                       "/dirlink-out-private/x.txt", "/dirlink-out-private/"):
            with self.subTest(target=target):
                r = fetch(srv.port, target)
                self.assertEqual(r.status, 404)
                self.assertNotIn(b"TOP-SECRET", r.body)

    def test_listing_tells_nothing_about_a_link_out_of_the_root(self):
        srv = self.start_server(["--list-dirs"])
        with Conn(srv.port) as c:
            r = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 200)
        self.assertIn(b">link-out</a></td><td></td><td></td></tr>", r.body)
        self.assertIn(b">link-out-absolute</a></td><td></td><td></td></tr>", r.body)
        self.assertIn(b">link-in</a></td><td>%d</td>" % len(INNER), r.body)

    def test_dangling_and_looping_symlinks_do_not_serve(self):
        self.assertEqual(self.get("/dangling").status, 404)
        self.assertIn(self.get("/loop-a").status, (403, 404))
        self.assert_alive()

    def test_dotfiles_are_404_by_default(self):
        for target in ("/.hidden", "/.git/config", "/sub/.env", "/%2ehidden", "/.git/"):
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 404)

    def test_well_known_is_not_hidden(self):
        r = self.get("/.well-known/acme.txt")
        self.assertEqual((r.status, r.body), (200, b"token\n"))

    def test_directory_without_slash_redirects(self):
        r = self.get("/dir")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/dir/")
        r = self.get("/dir?x=1&y=2")
        self.assertEqual(r.header("Location"), "/dir/?x=1&y=2")
        r = self.get("/with%20space.txt/..", [])
        self.assertEqual(r.status, 404)

    def test_redirect_location_is_percent_encoded(self):
        cases = [("/sp%20ace", "/sp%20ace/"), ("/per%25cent", "/per%25cent/"),
                 ("/q%3Fmark", "/q%3Fmark/"), ("/sp%20ace?a=b%20c", "/sp%20ace/?a=b%20c"),
                 ("/sub/../dir", "/dir/")]
        for target, location in cases:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual((r.status, r.header("Location")), (301, location))

    def test_directory_with_slash_serves_its_index(self):
        r = self.get("/dir/")
        self.assertEqual((r.status, r.body), (200, b"<p>index of dir</p>\n"))
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        etag = r.header("ETag")
        self.assertEqual(self.get("/dir/", [("If-None-Match", etag)]).status, 304)

    def test_directory_without_index_is_404(self):
        self.assertEqual(self.get("/noindex/").status, 404)
        self.assertEqual(self.get("/").status, 404)

    def test_index_option_names_the_index_file(self):
        self.site.write("custom/home.htm", b"home\n")
        srv = self.start_server(["--index", "home.htm"])
        with Conn(srv.port) as c:
            r = c.request(b"GET /custom/ HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual((r.status, r.body), (200, b"home\n"))
            r = c.request(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 404)
        srv = self.start_server(["--index", ""])
        with Conn(srv.port) as c:
            r = c.request(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 404)
            r = c.request(b"GET /dir/index.html HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 200)

    def test_file_with_trailing_slash_is_404(self):
        self.assertEqual(self.get("/inner.txt/").status, 404)

    def test_percent_encoded_names_are_decoded(self):
        self.assertEqual(self.get("/with%20space.txt").body, b"spaced\n")
        self.assertEqual(self.get("/100%25.txt").body, b"percent\n")
        self.assertEqual(self.get("/%69nner.txt").body, INNER)
        self.assertEqual(self.get("/inner.txt?v=3").body, INNER)


@require_binary
class PathsPermissive(TraversalMixin, ServerTestCase):
    SERVER_OPTIONS = ("--follow-symlinks", "all", "--dotfiles", "allow")

    @classmethod
    def populate(cls, site):
        populate_paths(site)

    def test_symlink_to_a_file_outside_is_served_with_follow_all(self):
        r = self.get("/link-out")
        self.assertEqual((r.status, r.body), (200, Site.SECRET))
        r = self.get("/dirlink-out/secret.txt")
        self.assertEqual((r.status, r.body), (200, Site.SECRET))

    def test_dotfiles_are_served_when_allowed(self):
        self.assertEqual(self.get("/.hidden").body, b"dotfile\n")
        self.assertEqual(self.get("/sub/.env").body, b"KEY=1\n")

    def test_listing_shows_dotfiles_when_allowed(self):
        srv = self.start_server(["--list-dirs", "--dotfiles", "allow"])
        with Conn(srv.port) as c:
            r = c.request(b"GET /noindex/ HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 200)
        self.assertIn(b".hidden-in-list", r.body)


# File names that must not turn a listing into a script URL, another scheme, a query, a
# fragment, markup or broken text. Each file holds its own name.
LISTED_NAMES = [
    b"javascript:alert(document.domain)",
    b"<script>",
    b"\"quote'",
    b"a:b",
    b"%41",
    b"with space",
    b"#",
    b"?",
    b"new\nline",
    b"bad\xff\xfe.txt",
    "caf\u00e9".encode(),
    b"&amp;",
]
# A name the server refuses in a request path (a decoded control byte is a 400): listed as
# text, never as a link that could only fail.
UNLINKED_NAMES = {b"new\nline"}
LISTING_TAGS = {"html", "head", "meta", "title", "body", "h1", "table", "tr", "th", "td", "a"}


class ListingParser(html.parser.HTMLParser):
    """Every start tag with its attributes, the href of each link, and the text of each cell."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.links = []  # (href, text)
        self.cells = []
        self._link = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if tag == "a":
            self._link = [dict(attrs).get("href"), ""]
        elif tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "a" and self._link is not None:
            self.links.append(tuple(self._link))
            self._link = None
        elif tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._link is not None:
            self._link[1] += data
        if self._cell is not None:
            self._cell += data


@require_binary
class Listings(ServerTestCase):
    SERVER_OPTIONS = ("--list-dirs",)

    @classmethod
    def populate(cls, site):
        populate_paths(site)
        site.mkdir("names")
        for name in LISTED_NAMES:
            with open(os.path.join(os.fsencode(site.path("names")), name), "wb") as f:
                f.write(b"file " + name)
        site.mkdir("names/sub dir")
        site.write("app.js", b"var x;\n")
        site.write("blob.unknownext", b"?\n")

    def test_every_listed_name_is_a_relative_same_origin_link_to_its_file(self):
        origin = "http://127.0.0.1:%d" % self.port
        url = origin + "/names/"
        r = self.get("/names/")
        self.assertEqual(r.status, 200)
        text = r.body.decode("utf-8")  # strict: the page is valid UTF-8 whatever the names
        parser = ListingParser()
        parser.feed(text)
        parser.close()
        for tag, attrs in parser.tags:
            self.assertIn(tag, LISTING_TAGS, "unexpected element")
            names = {a for a, _ in attrs}
            self.assertLessEqual(names, {"href", "charset"}, (tag, attrs))
        linked = set()
        for href, label in parser.links:
            with self.subTest(href=href):
                self.assertTrue(href.startswith("./") or href == "../", href)
                parts = urlsplit(urljoin(url, href))
                self.assertEqual((parts.scheme, parts.netloc), ("http", "127.0.0.1:%d" % self.port))
                self.assertEqual((parts.query, parts.fragment), ("", ""))
                if href == "../":
                    self.assertEqual(parts.path, "/")
                    continue
                self.assertTrue(parts.path.startswith("/names/"), parts.path)
                name = unquote_to_bytes(parts.path[len("/names/"):])
                if name.endswith(b"/"):
                    self.assertEqual(name, b"sub dir/")
                    continue
                self.assertIn(name, LISTED_NAMES)
                linked.add(name)
                self.assertEqual(label, name.decode("utf-8", "replace"))
                got = self.get(parts.path)
                self.assertEqual((got.status, got.body), (200, b"file " + name))
        self.assertEqual(linked, set(LISTED_NAMES) - UNLINKED_NAMES)
        # The name that cannot be requested is shown, its newline as a visible control picture.
        self.assertIn("new\u240aline", parser.cells)
        self.assertNotIn("new\nline", text)
        self.assertIn("bad\ufffd\ufffd.txt", parser.cells)
        self.assertNotIn("<script>", text)

    def test_listings_and_built_in_types_carry_nosniff(self):
        self.assertEqual(self.get("/names/").header("X-Content-Type-Options"), "nosniff")
        # js is always the built-in text/javascript, whatever /etc/mime.types says.
        r = self.get("/app.js")
        self.assertTrue(r.header("Content-Type").startswith("text/javascript"))
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        # No entry anywhere: the octet-stream fallback is not vouched for.
        r = self.get("/blob.unknownext")
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertIsNone(r.header("X-Content-Type-Options"))

    def test_listing_is_html_with_the_entries(self):
        r = self.get("/noindex/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        body = r.body.decode()
        self.assertIn('href="./one.txt"', body)
        self.assertIn('href="./child/"', body)
        self.assertNotIn(".hidden-in-list", body)
        self.assertIn("&lt;b&gt;&amp;&#39;.txt", body)
        self.assertIn('href="./%3Cb%3E&amp;%27.txt"', body)
        self.assertNotIn("<b>", body)

    def test_listing_tag_follows_the_entries(self):
        first = self.get("/noindex/")
        etag = first.header("ETag")
        self.assertRegex(etag, r'^"[^"]+"$')
        self.assertEqual(self.get("/noindex/", [("If-None-Match", etag)]).status, 304)
        dir_mtime = os.stat(self.site.path("noindex")).st_mtime_ns
        # Same entries, one size changes: the directory's own mtime does not move.
        with open(self.site.path("noindex/one.txt"), "ab") as f:
            f.write(b"more\n")
        self.assertEqual(os.stat(self.site.path("noindex")).st_mtime_ns, dir_mtime)
        # A worker keeps a page for the second it was made in (docs/usage.md, --list-dirs): an
        # entry's new size shows from the next second on.
        time.sleep(1.05)
        r = self.get("/noindex/", [("If-None-Match", etag)])
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.header("ETag"), etag)
        self.assertEqual(self.get("/noindex/", [("If-None-Match", r.header("ETag"))]).status,
                         304)

    def test_index_wins_over_listing(self):
        self.assertEqual(self.get("/dir/").body, b"<p>index of dir</p>\n")

    def test_root_listing_has_no_parent_link(self):
        body = self.get("/").body.decode()
        self.assertNotIn('href="../"', body)
        self.assertIn('href="../"', self.get("/noindex/").body.decode())
        self.assertIsNone(re.search(r"secret", body))


if __name__ == "__main__":
    unittest.main()
