"""What `make install` lays out, checked from the build tree: the man pages made from
docs/usage.md (each renders, and names every option --help prints), the bash completion made from
--help, the installed tree in a DESTDIR (binary, libnotmod static and shared with its soname and
only the public nm_* API exported, headers, notmod.pc, units), and examples/embed/ built against
that install through pkg-config, answering a conditional request with a 304."""

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from launch import notmod_binary, require_binary, run, tool

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("NOTMOD_BUILD_DIR", "")


def check_docs():
    """scripts/check-docs as a module: the one reader of --help's commands and options."""
    path = os.path.join(TOP, "scripts", "check-docs")
    loader = importlib.machinery.SourceFileLoader("check_docs", path)
    spec = importlib.util.spec_from_loader("check_docs", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


CD = check_docs()


def build_dir():
    if not BUILD or not os.path.isdir(BUILD):
        raise AssertionError("NOTMOD_BUILD_DIR does not name the build directory: %r (run "
                             "through ctest)" % BUILD)
    return BUILD


def commands():
    return CD.commands_of(CD.help_text(notmod_binary(), "--help"))


def render(page):
    """(text, warnings) of a man page as man shows it, with overstriking removed."""
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="100", MAN_KEEP_FORMATTING="")
    r = subprocess.run([tool("man"), "--warnings", "-l", page], capture_output=True, env=env,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("man -l %s exited %d: %s" % (page, r.returncode, r.stderr))
    text = re.sub(r".\x08", "", r.stdout.decode("utf-8", "replace"))
    return text.replace("\u2010", "-").replace("\u2212", "-"), r.stderr.decode()


@require_binary
class ManPages(unittest.TestCase):
    def page(self, name):
        return os.path.join(build_dir(), "man", name)

    def test_every_command_has_a_page_and_notmod_1_lists_them(self):
        text, _ = render(self.page("notmod.1"))
        for cmd in commands():
            self.assertTrue(os.path.exists(self.page("notmod-%s.1" % cmd)), cmd)
            self.assertIn("notmod-%s(1)" % cmd, text)

    def test_every_page_renders_without_warnings(self):
        for name in ["notmod.1"] + ["notmod-%s.1" % c for c in commands()]:
            text, warnings = render(self.page(name))
            self.assertEqual(warnings, "", name)
            self.assertIn("NAME", text, name)
            self.assertIn("DESCRIPTION", text, name)

    def test_every_page_names_every_option_its_help_prints(self):
        for cmd in commands():
            text, _ = render(self.page("notmod-%s.1" % cmd))
            words = set(re.findall(r"(?<![\w-])--?[A-Za-z0-9][A-Za-z0-9-]*", text))
            printed = CD.options_of(CD.help_text(notmod_binary(), cmd, "--help"))
            self.assertTrue(printed, cmd)
            missing = [o for o in printed if o not in words]
            self.assertEqual(missing, [], "notmod-%s.1 lacks options --help prints" % cmd)

    def test_the_serve_page_shows_the_synopsis_and_a_table_entry_as_written(self):
        text, _ = render(self.page("notmod-serve.1"))
        self.assertIn("notmod serve [OPTIONS] [DIR]", text)
        self.assertRegex(text, r"--max-connections N\n\s+\S")


def complete(words):
    """COMPREPLY of the generated completion for a command line ending in words[-1]."""
    script = os.path.join(build_dir(), "completion", "notmod")
    line = " ".join("'%s'" % w for w in words)
    prog = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _notmod; printf "%%s\\n" '
            '"${COMPREPLY[@]}"' % (script, line, len(words) - 1))
    r = subprocess.run([tool("bash"), "--norc", "-c", prog], capture_output=True, text=True,
                       timeout=30, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise AssertionError("completion failed: %s" % r.stderr)
    return set(r.stdout.split())


@require_binary
class Completion(unittest.TestCase):
    def test_the_first_word_completes_to_every_command(self):
        self.assertEqual(complete(["notmod", ""]) - {"--help", "--version"}, set(commands()))
        self.assertEqual(complete(["notmod", "se"]), {"serve"})

    def test_each_command_completes_every_option_its_help_prints(self):
        for cmd in commands():
            printed = CD.options_of(CD.help_text(notmod_binary(), cmd, "--help"))
            got = complete(["notmod", cmd, "-"])
            self.assertEqual(set(printed) - got, set(), cmd)
        self.assertEqual(complete(["notmod", "serve", "--max-c"]), {"--max-connections"})


def readelf_dynamic(lib):
    return subprocess.run(["readelf", "-d", lib], capture_output=True, text=True,
                          check=True, timeout=30).stdout


@require_binary
class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.destdir = tempfile.mkdtemp(prefix="notmod-destdir-")
        env = dict(os.environ, DESTDIR=cls.destdir)
        r = subprocess.run([tool("cmake"), "--install", build_dir(), "--prefix", "/usr"],
                           capture_output=True, text=True, env=env, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(cls.destdir, True)
            raise AssertionError("cmake --install failed:\n%s%s" % (r.stdout, r.stderr))
        cls.usr = os.path.join(cls.destdir, "usr")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, True)

    def path(self, rel):
        return os.path.join(self.usr, rel)

    def test_the_tree_has_the_binary_libraries_headers_pages_completion_and_units(self):
        want = ["bin/notmod", "lib/libnotmod.a", "lib/libnotmod.so", "lib/libnotmod.so.0",
                "lib/libnotmod.so.0.1.0", "lib/pkgconfig/notmod.pc",
                "share/bash-completion/completions/notmod",
                "lib/systemd/system/notmod.service", "lib/systemd/system/notmod.socket",
                "share/man/man1/notmod.1"]
        want += ["share/man/man1/notmod-%s.1" % c for c in commands()]
        want += ["include/notmod/" + h for h in os.listdir(os.path.join(TOP, "include/notmod"))]
        for rel in want:
            self.assertTrue(os.path.exists(self.path(rel)), rel)
        self.assertEqual(os.readlink(self.path("lib/libnotmod.so")), "libnotmod.so.0")
        self.assertEqual(os.readlink(self.path("lib/libnotmod.so.0")), "libnotmod.so.0.1.0")
        r = subprocess.run([self.path("bin/notmod"), "--version"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), run(["--version"], text=True).stdout.strip())

    def test_the_shared_library_has_its_soname_and_exports_only_the_public_api(self):
        lib = self.path("lib/libnotmod.so.0.1.0")
        self.assertIn("Library soname: [libnotmod.so.0]", readelf_dynamic(lib))
        out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        exported = {line.split()[-1].split("@")[0] for line in out.splitlines()
                    if line.split()[1] in ("T", "D", "B", "R")}
        self.assertTrue(exported)
        self.assertEqual({s for s in exported if not s.startswith("nm_") or
                          s.startswith("nm__")}, set())
        declared = set()
        for h in os.listdir(os.path.join(TOP, "include/notmod")):
            with open(os.path.join(TOP, "include/notmod", h)) as f:
                declared |= set(re.findall(r"\b(nm_\w+)\s*\(", f.read()))
        self.assertEqual(exported - declared, set(), "exported but not in include/notmod/")
        for fn in ("nm_http1_parse_request", "nm_precond_evaluate", "nm_etag_parse",
                   "nm_date_format"):
            self.assertIn(fn, exported)

    def test_the_units_run_the_installed_binary_hardened(self):
        with open(self.path("lib/systemd/system/notmod.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/notmod serve", unit)
        for line in ("Type=notify", "DynamicUser=yes", "ProtectSystem=strict",
                     "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                     "CacheDirectory=notmod", "ReadOnlyPaths=/srv/www",
                     "CapabilityBoundingSet=\n"):
            self.assertIn(line, unit)
        # systemd's own reading of the units (systemd is installed with the test packages),
        # with ExecStart pointed at a binary that exists here.
        units = tempfile.mkdtemp(prefix="notmod-units-")
        self.addCleanup(shutil.rmtree, units, True)
        with open(os.path.join(units, "notmod.service"), "w") as f:
            f.write(unit.replace("/usr/bin/notmod", notmod_binary()))
        shutil.copy(self.path("lib/systemd/system/notmod.socket"), units)
        analyze = tool("systemd-analyze")
        r = subprocess.run([analyze, "verify", "--man=no", "notmod.service", "notmod.socket"],
                           capture_output=True, text=True, cwd=units, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20",
                            "notmod.service"], capture_output=True, text=True, cwd=units,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_pkg_config_names_the_install_and_the_embed_example_answers_304(self):
        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=self.destdir,
                   PKG_CONFIG_LIBDIR=self.path("lib/pkgconfig"))
        pc = subprocess.run([tool("pkg-config"), "--cflags", "--libs", "notmod"],
                            capture_output=True, text=True, env=env, timeout=30, check=True)
        self.assertIn("-I%s/include" % self.usr, pc.stdout)
        self.assertIn("-L%s/lib" % self.usr, pc.stdout)
        work = tempfile.mkdtemp(prefix="notmod-embed-")
        self.addCleanup(shutil.rmtree, work, True)
        shutil.copytree(os.path.join(TOP, "examples", "embed"), work, dirs_exist_ok=True)
        cflags = "-O2 -Wall -Wextra -Werror"
        # A libnotmod built with the sanitizers needs their runtimes first in the program too.
        if "libasan" in readelf_dynamic(self.path("lib/libnotmod.so.0.1.0")):
            cflags += " -fsanitize=address,undefined"
        r = subprocess.run([tool("make"), "-C", work, "CFLAGS=" + cflags], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        answer = os.path.join(work, "answer")
        needed = readelf_dynamic(answer)
        self.assertIn("Shared library: [libnotmod.so.0]", needed)  # the shared one, not the .a
        run_env = dict(os.environ, LD_LIBRARY_PATH=self.path("lib"))
        ldd = subprocess.run(["ldd", answer], capture_output=True, text=True, env=run_env,
                             timeout=30).stdout
        self.assertIn(self.path("lib/libnotmod.so.0"), ldd)

        def ask(*fields):
            head = "GET /hello.txt HTTP/1.1\r\nHost: example\r\n%s\r\n" % "".join(
                "%s: %s\r\n" % f for f in fields)
            p = subprocess.run([answer, '"v1"', "1700000000"], input=head.encode(),
                               capture_output=True, env=run_env, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.decode()

        self.assertTrue(ask().startswith("HTTP/1.1 200 OK\r\n"))
        self.assertTrue(ask().endswith("\r\n\r\nhello\n"))
        not_modified = ask(("If-None-Match", 'W/"v0", "v1"'))
        self.assertTrue(not_modified.startswith("HTTP/1.1 304 Not Modified\r\n"), not_modified)
        self.assertIn('ETag: "v1"\r\n', not_modified)
        self.assertNotIn("Content-Length", not_modified)
        self.assertTrue(ask(("If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT"))
                        .startswith("HTTP/1.1 304 "))
        self.assertTrue(ask(("If-None-Match", '"v2"')).startswith("HTTP/1.1 200 "))
        self.assertTrue(ask(("If-Match", '"v2"')).startswith("HTTP/1.1 412 "))


if __name__ == "__main__":
    unittest.main()
