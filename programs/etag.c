/* notmod etag: prints the content ETag the server would send for files, stores it ahead of time
 * in the user.notmod.etag attribute, or writes a manifest of a tree (docs/etags.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cliutil.h"
#include "commands.h"
#include "etags/etags.h"
#include "notmod/date.h"
#include "notmod/path.h"
#include "serve/serve.h"

static const char usage_text[] =
    "usage: notmod etag [OPTIONS] PATH...\n"
    "\n"
    "Prints the ETag `notmod serve` sends for each file (directories are walked), one\n"
    "'ETAG PATH' line each: XXH3-128 of the bytes, base64url, quoted (docs/etags.md).\n"
    "\n"
    "  --write             store each ETag in the file's user.notmod.etag attribute, so a\n"
    "                      server starts without hashing (waits out files changed < 2 s ago)\n"
    "  --manifest[=FILE]   write a manifest of the one directory given instead (path, size,\n"
    "                      ETag, Last-Modified), to FILE or stdout; for --etag-manifest\n"
    "  --rehash            hash every file even when its attribute is valid\n"
    "  -h, --help          this text\n";

enum {
    OPT_WRITE = 256,
    OPT_MANIFEST,
    OPT_REHASH,
};

static const struct option options[] = {
    {"write", no_argument, NULL, OPT_WRITE},
    {"manifest", optional_argument, NULL, OPT_MANIFEST},
    {"rehash", no_argument, NULL, OPT_REHASH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct run {
    struct nm_hashing_file_options fo;
    struct nm_manifest *manifest; /* NULL unless --manifest */
    int failures;
    unsigned long files, hashed, from_xattr, written;
};

static void fail(struct run *r, const char *path, const char *what)
{
    fprintf(stderr, "notmod etag: %s: %s\n", path, what);
    r->failures++;
}

/* One regular file: print its tag, or add it to the manifest under its URL path. */
static void do_file(struct run *r, int fd, const char *shown, const char *url)
{
    struct nm_hash128 h;
    enum nm_hash_source src;
    struct nm_file_version v;
    int stored;
    int rc = nm_hashing_hash_file(fd, &r->fo, &h, &src, &v, &stored);
    if (rc == -EAGAIN) {
        fail(r, shown, "kept changing while it was read; try again");
        return;
    }
    if (rc < 0) {
        fail(r, shown, strerror(-rc));
        return;
    }
    if (stored < 0) {
        char why[160];
        snprintf(why, sizeof(why), "ETag not stored: %s",
                 stored == -EAGAIN ? "changed less than 2 s ago" : strerror(-stored));
        fail(r, shown, why);
    }
    r->files++;
    r->hashed += src == NM_HASH_HASHED;
    r->from_xattr += src == NM_HASH_XATTR;
    r->written += stored > 0;
    if (r->manifest) {
        int64_t lm = v.mtime_ns / 1000000000;
        if (lm < 0)
            lm = 0;
        if (lm > NM_DATE_MAX)
            lm = NM_DATE_MAX;
        rc = nm_manifest_add(r->manifest, url, v.size, h.hi, h.lo, lm);
        if (rc < 0)
            fail(r, shown,
                 rc == -EINVAL ? "cannot be named by a URL path; left out" : strerror(-rc));
        return;
    }
    char tag[NM_ETAG_MAX + 1];
    nm_hashing_format_etag(h, tag, sizeof(tag));
    printf("%s %s\n", tag, shown);
}

/* Walks a directory in name order; symlinks to files are followed, to directories not. */
static void do_dir(struct run *r, int dirfd, const char *shown, const char *url, int depth)
{
    struct nm_dir d;
    /* Every entry: a tree the server serves has no cap on a directory's size either. */
    int n = nm_dir_read(dirfd, SIZE_MAX, &d);
    if (n < 0) {
        fail(r, shown, strerror(-n));
        close(dirfd);
        return;
    }
    for (size_t i = 0; i < d.count; i++) {
        const char *name = d.entries[i].name;
        char child[PATH_MAX], child_url[PATH_MAX];
        int a = snprintf(child, sizeof(child), "%s%s%s", shown,
                         shown[strlen(shown) - 1] == '/' ? "" : "/", name);
        int b = snprintf(child_url, sizeof(child_url), "%s/%s", url, name);
        if (a < 0 || (size_t)a >= sizeof(child) || b < 0 || (size_t)b >= sizeof(child_url)) {
            fail(r, name, "path too long");
            continue;
        }
        struct stat lst;
        if (fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) != 0) {
            fail(r, child, strerror(errno));
            continue;
        }
        if (S_ISDIR(lst.st_mode)) {
            if (depth >= 64) {
                fail(r, child, "too deep");
                continue;
            }
            int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                fail(r, child, strerror(errno));
            else
                do_dir(r, sub, child, child_url, depth + 1);
            continue;
        }
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            if (!S_ISLNK(lst.st_mode) || errno != ENOENT)
                fail(r, child, strerror(errno));
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            do_file(r, fd, child, child_url);
        close(fd);
    }
    nm_dir_free(&d);
    close(dirfd);
}

static void do_path(struct run *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        fail(r, path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(r, path, strerror(errno));
        close(fd);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        do_dir(r, fd, path, "", 0); /* do_dir owns fd */
        return;
    }
    if (!S_ISREG(st.st_mode))
        fail(r, path, "not a regular file");
    else if (r->manifest)
        fail(r, path, "--manifest wants a directory");
    else
        do_file(r, fd, path, NULL);
    close(fd);
}

/* Writes the manifest to FILE through a temporary name and rename, or to stdout. */
static int write_manifest(struct run *r, const char *file)
{
    int rc = nm_manifest_sort(r->manifest);
    if (rc < 0) {
        fprintf(stderr, "notmod etag: two files share a URL path\n");
        return NM_EXIT_FAILURE;
    }
    struct nm_buf out;
    nm_buf_init(&out, (size_t)1 << 32);
    rc = nm_manifest_format(r->manifest, &out);
    if (rc < 0) {
        fprintf(stderr, "notmod etag: cannot format the manifest: %s\n", strerror(-rc));
        nm_buf_cleanup(&out);
        return NM_EXIT_FAILURE;
    }
    char tmp[PATH_MAX];
    FILE *f = stdout;
    if (file) {
        snprintf(tmp, sizeof(tmp), "%s.tmp%ld", file, (long)getpid());
        f = fopen(tmp, "wbx");
        if (!f) {
            fprintf(stderr, "notmod etag: %s: %s\n", tmp, strerror(errno));
            nm_buf_cleanup(&out);
            return NM_EXIT_FAILURE;
        }
    }
    bool ok = fwrite(out.ptr, 1, out.len, f) == out.len;
    ok = (file ? fclose(f) == 0 : fflush(f) == 0) && ok;
    nm_buf_cleanup(&out);
    if (file && (!ok || rename(tmp, file) != 0)) {
        fprintf(stderr, "notmod etag: cannot write %s: %s\n", file, strerror(errno));
        unlink(tmp);
        return NM_EXIT_FAILURE;
    }
    if (!ok) {
        fprintf(stderr, "notmod etag: cannot write the manifest: %s\n", strerror(errno));
        return NM_EXIT_FAILURE;
    }
    return NM_EXIT_OK;
}

int nm_cmd_etag(int argc, char **argv)
{
    struct nm_config defaults;
    nm_config_init(&defaults);
    struct run r = {.fo = {.small_file_bytes = defaults.small_file_bytes}};
    nm_config_cleanup(&defaults);
    bool manifest = false;
    const char *manifest_file = NULL;
    int opt;
    optind = 1;
    while ((opt = nm__cli_getopt("etag", argc, argv, "h", options)) != -1) {
        switch (opt) {
        case OPT_WRITE:
            r.fo.persist = true;
            break;
        case OPT_MANIFEST:
            manifest = true;
            manifest_file = optarg;
            break;
        case OPT_REHASH:
            r.fo.rehash = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return NM_EXIT_OK;
        default:
            return NM_EXIT_USAGE; /* named by nm__cli_getopt */
        }
    }
    if (optind == argc) {
        fprintf(stderr, "notmod etag: no PATH given\nTry 'notmod etag --help'.\n");
        return NM_EXIT_USAGE;
    }
    if (manifest && argc - optind != 1) {
        fprintf(stderr, "notmod etag: --manifest takes one directory, the root the server "
                        "serves\nTry 'notmod etag --help'.\n");
        return NM_EXIT_USAGE;
    }
    if (manifest && nm_manifest_new(&r.manifest) < 0) {
        perror("notmod etag");
        return NM_EXIT_FAILURE;
    }
    for (int i = optind; i < argc; i++)
        do_path(&r, argv[i]);
    int status = r.failures ? NM_EXIT_FAILURE : NM_EXIT_OK;
    if (r.manifest) {
        int ws = write_manifest(&r, manifest_file);
        if (ws != NM_EXIT_OK)
            status = ws;
        nm_manifest_free(r.manifest);
    }
    if (fflush(stdout) != 0)
        status = NM_EXIT_FAILURE;
    if (r.fo.persist)
        fprintf(stderr, "notmod etag: %lu files, %lu hashed, %lu from attributes, %lu stored\n",
                r.files, r.hashed, r.from_xattr, r.written);
    return status;
}
