/* Golden exchanges: each .http file of tests/exchanges has its request bytes go through an
 * in-memory connection over a copy of site/, and the response bytes must equal the file's expected
 * ones. The format is described in tests/exchanges/README.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "notmod/coding.h"
#include "notmod/etag.h"
#include "serve/serve.h"

/* Tue, 14 Nov 2023 22:13:20 GMT: the Date of every response unless `now` says otherwise. */
#define FIXED_NOW 1700000000LL
/* Tue, 14 Nov 2023 22:00:00.123456789 GMT: the mtime of every site file and directory. */
#define FIXED_MTIME 1699999200LL
#define FIXED_MTIME_NSEC 123456789L

#define BIG_NAME "big.txt"
#define BIG_LINES 1600 /* 64-byte lines: 102400 bytes, more than small_file_bytes */
#define MAX_FILE_BYTES (64u << 20)
#define FILE_MARKER_MIN_BYTES 256

static const char *const markers[] = {">>> ", "<<< ", "~~~ ", "=== "};

/* ---- small helpers ------------------------------------------------------------------------- */

static bool starts_with(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

static bool is_marker_line(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
        if (starts_with(p, n, markers[i]))
            return true;
    return false;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int read_file(const char *path, struct nm_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (;;) {
        rc = nm_buf_reserve(out, 65536);
        if (rc < 0)
            break;
        ssize_t n = read(fd, out->ptr + out->len, out->cap - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        out->len += (size_t)n;
    }
    close(fd);
    return rc;
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

/* ---- the site copy ------------------------------------------------------------------------- */

static int copy_tree(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char from[4096], to[4096];
        struct stat st;
        if (join_path(from, sizeof(from), src, e->d_name) < 0 ||
            join_path(to, sizeof(to), dst, e->d_name) < 0) {
            rc = -ENAMETOOLONG;
        } else if (lstat(from, &st) != 0) {
            rc = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            rc = mkdir(to, 0755) == 0 ? copy_tree(from, to) : -errno;
        } else if (S_ISREG(st.st_mode)) {
            struct nm_buf b;
            nm_buf_init(&b, MAX_FILE_BYTES);
            rc = read_file(from, &b);
            if (rc == 0)
                rc = write_file(to, b.ptr, b.len);
            nm_buf_cleanup(&b);
        }
    }
    closedir(d);
    return rc;
}

/* Numbered 64-byte lines: no run of 256 bytes occurs twice, so a body cut from the file is found
 * at one offset only when --update writes a file marker. */
static int make_big_file(const char *dir)
{
    struct nm_buf b;
    nm_buf_init(&b, MAX_FILE_BYTES);
    int rc = 0;
    for (unsigned i = 0; i < BIG_LINES && rc == 0; i++)
        rc = nm_buf_appendf(&b, "%05u abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU\n",
                            i);
    char path[4096];
    if (rc == 0)
        rc = join_path(path, sizeof(path), dir, BIG_NAME);
    if (rc == 0)
        rc = write_file(path, b.ptr, b.len);
    nm_buf_cleanup(&b);
    return rc;
}

/* Files before their directory, since creating nothing afterwards keeps every mtime fixed. */
static int touch_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        struct stat st;
        if (join_path(path, sizeof(path), dir, e->d_name) < 0)
            rc = -ENAMETOOLONG;
        else if (lstat(path, &st) != 0)
            rc = -errno;
        else if (S_ISDIR(st.st_mode))
            rc = touch_tree(path);
        else {
            struct timespec ts[2] = {{FIXED_MTIME, FIXED_MTIME_NSEC},
                                     {FIXED_MTIME, FIXED_MTIME_NSEC}};
            rc = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
        }
    }
    closedir(d);
    struct timespec ts[2] = {{FIXED_MTIME, FIXED_MTIME_NSEC}, {FIXED_MTIME, FIXED_MTIME_NSEC}};
    if (rc == 0 && utimensat(AT_FDCWD, dir, ts, 0) != 0)
        rc = -errno;
    return rc;
}

static int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        struct stat st;
        if (join_path(path, sizeof(path), dir, e->d_name) < 0)
            continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    return rmdir(dir) == 0 ? 0 : -errno;
}

/* ---- one golden file ----------------------------------------------------------------------- */

struct golden {
    struct nm_buf request;
    struct nm_buf expected;
    bool expect_closed;
    bool has_end;
    size_t response_at; /* offset of the "<<< response" line in the file text */
    struct nm_config cfg;
    size_t feed_bytes; /* bytes appended per read; 0 for all that fits */
    struct {
        char path[256];
        int64_t sec;
        long nsec;
    } mtimes[8];
    size_t n_mtimes;
    char files[16][256]; /* empty files made in the site copy for this exchange only */
    size_t n_files;
    int64_t now;
};

static void golden_init(struct golden *g)
{
    memset(g, 0, sizeof(*g));
    nm_buf_init(&g->request, MAX_FILE_BYTES);
    nm_buf_init(&g->expected, MAX_FILE_BYTES);
    nm_config_init(&g->cfg);
    g->cfg.index_name = strdup("index.html");
    g->now = FIXED_NOW;
}

static void golden_cleanup(struct golden *g)
{
    nm_buf_cleanup(&g->request);
    nm_buf_cleanup(&g->expected);
    nm_config_cleanup(&g->cfg);
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
        return -EINVAL;
    *out = s[0] == '1';
    return 0;
}

static int append_raw(struct nm_buf *b, const char *p, const char *end);

/* One key=value of a "# config:" line. */
static int apply_setting(struct golden *g, const char *key, const char *val)
{
    struct nm_config *cfg = &g->cfg;
    uint64_t n;
    if (strcmp(key, "etag") == 0) {
        if (strcmp(val, "content") == 0)
            cfg->etag_mode = NM_ETAG_CONTENT;
        else if (strcmp(val, "metadata") == 0)
            cfg->etag_mode = NM_ETAG_METADATA;
        else if (strcmp(val, "off") == 0)
            cfg->etag_mode = NM_ETAG_OFF;
        else if (strncmp(val, "version:", 8) == 0) {
            cfg->etag_mode = NM_ETAG_VERSION;
            int rc = nm_etag_make_version(nm_slice_from_cstr(val + 8), cfg->etag_version,
                                          sizeof(cfg->etag_version));
            return rc < 0 ? rc : 0;
        } else
            return -EINVAL;
        return 0;
    }
    if (strcmp(key, "ims") == 0) {
        if (strcmp(val, "rfc") == 0)
            cfg->ims_mode = NM_IMS_RFC;
        else if (strcmp(val, "exact") == 0)
            cfg->ims_mode = NM_IMS_EXACT;
        else
            return -EINVAL;
        return 0;
    }
    if (strcmp(key, "precompressed") == 0) {
        /* "off", or a comma list of codings in order of preference, as --precompressed. */
        cfg->n_precompressed = 0;
        for (const char *p = val; strcmp(val, "off") != 0 && *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            enum nm_coding c;
            if (cfg->n_precompressed == NM_CODING_COUNT ||
                nm_coding_parse(nm_slice_make(p, len), &c) < 0 || c == NM_CODING_IDENTITY)
                return -EINVAL;
            cfg->precompressed[cfg->n_precompressed++] = c;
            p += len + (comma ? 1 : 0);
        }
        return 0;
    }
    if (strcmp(key, "list_dirs") == 0)
        return parse_bool(val, &cfg->list_dirs);
    if (strcmp(key, "dotfiles") == 0)
        return parse_bool(val, &cfg->allow_dotfiles);
    if (strcmp(key, "expires") == 0)
        return parse_bool(val, &cfg->expires);
    if (strcmp(key, "index") == 0) {
        free(cfg->index_name);
        cfg->index_name = strdup(val);
        return cfg->index_name ? 0 : -ENOMEM;
    }
    if (strcmp(key, "cache") == 0) {
        const char *eq = strchr(val, '=');
        if (!eq || eq == val || cfg->n_rules == NM_CONFIG_MAX_RULES)
            return -EINVAL;
        struct nm_cache_rule *r = &cfg->rules[cfg->n_rules];
        r->glob = strndup(val, (size_t)(eq - val));
        r->value = strdup(eq + 1);
        cfg->n_rules++;
        return r->glob && r->value ? 0 : -ENOMEM;
    }
    if (strcmp(key, "file") == 0) {
        /* file=/PATH, written with the escapes of a raw line, so that a name may hold what a
         * golden file or a config value cannot: SP, '"', a newline, bytes that are not UTF-8. */
        if (g->n_files == sizeof(g->files) / sizeof(g->files[0]))
            return -EINVAL;
        struct nm_buf b;
        nm_buf_init(&b, sizeof(g->files[0]) - 1);
        int rc = append_raw(&b, val, val + strlen(val));
        if (rc == 0 && (b.len < 2 || b.ptr[0] != '/' || memchr(b.ptr, '\0', b.len)))
            rc = -EINVAL;
        if (rc == 0) {
            memcpy(g->files[g->n_files], b.ptr, b.len);
            g->files[g->n_files++][b.len] = '\0';
        }
        nm_buf_cleanup(&b);
        return rc;
    }
    if (strcmp(key, "mtime") == 0) {
        /* mtime=/path:SECONDS[.NANOSECONDS] */
        const char *colon = strrchr(val, ':');
        if (!colon || val[0] != '/' || g->n_mtimes == sizeof(g->mtimes) / sizeof(g->mtimes[0]) ||
            (size_t)(colon - val) >= sizeof(g->mtimes[0].path))
            return -EINVAL;
        char num[64];
        snprintf(num, sizeof(num), "%s", colon + 1);
        char *dot = strchr(num, '.');
        uint64_t ns = 0;
        if (dot) {
            *dot = '\0';
            if (parse_u64(dot + 1, &ns) < 0 || ns > 999999999)
                return -EINVAL;
        }
        if (parse_u64(num, &n) < 0)
            return -EINVAL;
        snprintf(g->mtimes[g->n_mtimes].path, sizeof(g->mtimes[0].path), "%.*s", (int)(colon - val),
                 val);
        g->mtimes[g->n_mtimes].sec = (int64_t)n;
        g->mtimes[g->n_mtimes].nsec = (long)ns;
        g->n_mtimes++;
        return 0;
    }
    if (parse_u64(val, &n) < 0)
        return -EINVAL;
    if (strcmp(key, "max_age") == 0)
        cfg->max_age = (int64_t)n;
    else if (strcmp(key, "max_target") == 0)
        cfg->max_target_bytes = (size_t)n;
    else if (strcmp(key, "max_head") == 0)
        cfg->max_head_bytes = (size_t)n;
    else if (strcmp(key, "max_discard") == 0)
        cfg->max_discard_bytes = n;
    else if (strcmp(key, "small_file") == 0)
        cfg->small_file_bytes = (size_t)n;
    else if (strcmp(key, "now") == 0)
        g->now = (int64_t)n;
    else if (strcmp(key, "feed") == 0)
        g->feed_bytes = (size_t)n;
    else
        return -EINVAL;
    return 0;
}

/* "# config: key=value key="value with spaces" ..." */
static int parse_config_line(struct golden *g, const char *p, const char *end)
{
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        const char *k = p;
        while (p < end && *p != '=' && *p != ' ')
            p++;
        if (p == end || *p != '=' || p == k)
            return -EINVAL;
        char key[64], val[512];
        if ((size_t)(p - k) >= sizeof(key))
            return -EINVAL;
        snprintf(key, sizeof(key), "%.*s", (int)(p - k), k);
        p++;
        const char *v = p;
        if (p < end && *p == '"') {
            v = ++p;
            while (p < end && *p != '"')
                p++;
            if (p == end)
                return -EINVAL;
        } else {
            while (p < end && *p != ' ')
                p++;
        }
        if ((size_t)(p - v) >= sizeof(val))
            return -EINVAL;
        snprintf(val, sizeof(val), "%.*s", (int)(p - v), v);
        if (p < end && *p == '"')
            p++;
        int rc = apply_setting(g, key, val);
        if (rc < 0) {
            fprintf(stderr, "bad setting %s=%s\n", key, val);
            return rc;
        }
    }
    return 0;
}

/* A raw line: escapes \\ \r \n \t \0 \xHH; the line's own end is not part of the bytes. */
static int append_raw(struct nm_buf *b, const char *p, const char *end)
{
    int rc = 0;
    while (p < end && rc == 0) {
        if (*p != '\\') {
            rc = nm_buf_append(b, p++, 1);
            continue;
        }
        if (++p == end)
            return -EINVAL;
        char c;
        switch (*p++) {
        case '\\':
            c = '\\';
            break;
        case 'r':
            c = '\r';
            break;
        case 'n':
            c = '\n';
            break;
        case 't':
            c = '\t';
            break;
        case '0':
            c = '\0';
            break;
        case 'x': {
            int hi = p < end ? nm_hex_digit_value((unsigned char)p[0]) : -1;
            int lo = p + 1 < end ? nm_hex_digit_value((unsigned char)p[1]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi * 16 + lo);
            p += 2;
            break;
        }
        default:
            return -EINVAL;
        }
        rc = nm_buf_append(b, &c, 1);
    }
    return rc;
}

/* "~~~ file NAME [FIRST-LAST]": bytes of a file of the site copy, both ends inclusive. */
static int append_file_part(struct nm_buf *b, const char *site_dir, const char *p, const char *end)
{
    char spec[512];
    if ((size_t)(end - p) >= sizeof(spec))
        return -EINVAL;
    snprintf(spec, sizeof(spec), "%.*s", (int)(end - p), p);
    char *range = strchr(spec, ' ');
    if (range)
        *range++ = '\0';
    char path[4096];
    struct nm_buf content;
    nm_buf_init(&content, MAX_FILE_BYTES);
    int rc = join_path(path, sizeof(path), site_dir, spec);
    if (rc == 0)
        rc = read_file(path, &content);
    uint64_t first = 0, last = content.len ? content.len - 1 : 0;
    if (rc == 0 && range) {
        char *dash = strchr(range, '-');
        if (!dash)
            rc = -EINVAL;
        else {
            *dash = '\0';
            if (parse_u64(range, &first) < 0 || parse_u64(dash + 1, &last) < 0 || first > last ||
                last >= content.len)
                rc = -EINVAL;
        }
    }
    if (rc == 0 && content.len)
        rc = nm_buf_append(b, content.ptr + first, (size_t)(last - first + 1));
    nm_buf_cleanup(&content);
    return rc;
}

/* With request_only (for --update), parsing stops at the response section. */
static int parse_golden(const char *text, size_t len, const char *site_dir, bool request_only,
                        struct golden *g)
{
    enum { PREAMBLE, REQUEST, RESPONSE, END } part = PREAMBLE;
    bool raw = false;
    const char *p = text, *end = text + len;
    unsigned line_no = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        line_no++;
        if (memchr(p, '\r', n)) {
            fprintf(stderr, "line %u: CR in a golden file (write \\r in a raw part)\n", line_no);
            return -EINVAL;
        }
        struct nm_buf *dst = part == REQUEST ? &g->request : &g->expected;
        if (part == END) {
            if (n > 0)
                rc = -EINVAL;
        } else if (starts_with(p, n, ">>> ")) {
            if (part != PREAMBLE || n != 11 || memcmp(p, ">>> request", 11) != 0)
                rc = -EINVAL;
            part = REQUEST;
            raw = false;
        } else if (starts_with(p, n, "<<< ")) {
            if (part != REQUEST || n != 12 || memcmp(p, "<<< response", 12) != 0)
                rc = -EINVAL;
            part = RESPONSE;
            raw = false;
            g->response_at = (size_t)(p - text);
            if (request_only && rc == 0)
                return 0;
        } else if (starts_with(p, n, "=== ")) {
            if (part != RESPONSE)
                rc = -EINVAL;
            else if (n == 8 && memcmp(p, "=== open", 8) == 0)
                g->expect_closed = false;
            else if (n == 10 && memcmp(p, "=== closed", 10) == 0)
                g->expect_closed = true;
            else
                rc = -EINVAL;
            g->has_end = true;
            part = END;
        } else if (starts_with(p, n, "~~~ ")) {
            if (part == PREAMBLE)
                rc = -EINVAL;
            else if (n == 8 && memcmp(p, "~~~ head", 8) == 0)
                raw = false;
            else if (n == 7 && memcmp(p, "~~~ raw", 7) == 0)
                raw = true;
            else if (starts_with(p, n, "~~~ file "))
                rc = append_file_part(dst, site_dir, p + 9, le);
            else
                rc = -EINVAL;
        } else if (part == PREAMBLE) {
            if (starts_with(p, n, "# config:"))
                rc = parse_config_line(g, p + 9, le);
            else if (n > 0 && p[0] != '#')
                rc = -EINVAL;
        } else if (raw) {
            rc = append_raw(dst, p, le);
        } else {
            rc = nm_buf_append(dst, p, n);
            if (rc == 0)
                rc = nm_buf_append(dst, "\r\n", 2);
        }
        if (rc < 0)
            fprintf(stderr, "line %u: cannot parse: %.*s\n", line_no, (int)n, p);
        p = nl ? nl + 1 : end;
    }
    if (rc == 0 && part == PREAMBLE) {
        fprintf(stderr, "no \">>> request\" line\n");
        rc = -EINVAL;
    }
    return rc;
}

/* ---- running ------------------------------------------------------------------------------- */

static int set_mtimes(const char *site_dir, const struct golden *g)
{
    int rc = touch_tree(site_dir);
    for (size_t i = 0; i < g->n_mtimes && rc == 0; i++) {
        char path[4096];
        if (join_path(path, sizeof(path), site_dir, g->mtimes[i].path + 1) < 0)
            return -ENAMETOOLONG;
        struct timespec ts[2] = {{g->mtimes[i].sec, g->mtimes[i].nsec},
                                 {g->mtimes[i].sec, g->mtimes[i].nsec}};
        if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0)
            rc = -errno;
    }
    return rc;
}

/* Feeds the request as a socket would (as much as the input buffer has room for, or feed_bytes
 * at a time), processing and draining after each read, until nothing moves. */
static int run_exchange(struct golden *g, const char *site_dir, const struct nm_mime_table *mime,
                        struct nm_buf *out, bool *closed)
{
    int root_fd = open(site_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return -errno;
    free(g->cfg.root);
    g->cfg.root = strdup(site_dir);
    struct nm_site site;
    int rc = nm_site_init(&site, &g->cfg, mime, root_fd);
    if (rc < 0)
        goto fail_close_root;
    site.boundary_key = 0x676f6c64656e; /* multipart boundaries as the golden files have them */
    nm_site_set_time(&site, g->now);
    struct nm_conn c;
    nm_conn_init(&c, &site, "192.0.2.1");
    size_t off = 0;
    for (unsigned rounds = 0; rounds < 1000000; rounds++) {
        size_t take = g->request.len - off;
        size_t room = c.in.max_cap - c.in.len;
        if (take > room)
            take = room;
        if (g->feed_bytes && take > g->feed_bytes)
            take = g->feed_bytes;
        if (c.state == NM_CONN_CLOSING)
            take = 0;
        if (take) {
            rc = nm_buf_append(&c.in, g->request.ptr + off, take);
            if (rc < 0)
                break;
            off += take;
        }
        rc = nm_conn_process(&c);
        if (rc < 0)
            break;
        size_t before = out->len;
        rc = nm_conn_drain(&c, out);
        if (rc < 0 || nm_conn_is_done(&c))
            break;
        if (take == 0 && out->len == before)
            break;
    }
    *closed = nm_conn_is_done(&c);
    nm_conn_cleanup(&c);
    nm_site_cleanup(&site);
fail_close_root:
    close(root_fd);
    return rc;
}

/* ---- rendering actual output in the golden format (for --update and failure reports) --------- */

static int render_raw(struct nm_buf *b, const char *p, size_t n)
{
    int rc = nm_buf_append_str(b, "~~~ raw\n");
    bool line_start = true;
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)p[i];
        if (line_start && is_marker_line(p + i, n - i))
            rc = nm_buf_appendf(b, "\\x%02x", c);
        else if (c == '\\')
            rc = nm_buf_append_str(b, "\\\\");
        else if (c == '\r')
            rc = nm_buf_append_str(b, "\\r");
        else if (c == '\n')
            rc = nm_buf_append_str(b, "\\n\n");
        else if (c == '\t')
            rc = nm_buf_append_str(b, "\\t");
        else if (c < 0x20 || c >= 0x7f)
            rc = nm_buf_appendf(b, "\\x%02x", c);
        else
            rc = nm_buf_append(b, &p[i], 1);
        line_start = c == '\n';
    }
    if (rc == 0 && n > 0 && p[n - 1] != '\n')
        rc = nm_buf_append_str(b, "\n");
    return rc;
}

/* A head renders as lines when every line is printable, CRLF-terminated and no marker. */
static bool head_is_plain(const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (!cr || cr + 1 == end || cr[1] != '\n' || is_marker_line(p, (size_t)(cr - p)))
            return false;
        for (const char *q = p; q < cr; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
                return false;
        p = cr + 2;
    }
    return true;
}

static uint64_t content_length_of(const char *head, size_t n, bool *found)
{
    const char *p = head, *end = head + n;
    *found = false;
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        size_t len = cr ? (size_t)(cr - p) : (size_t)(end - p);
        if (len > 16 && strncasecmp(p, "content-length: ", 16) == 0) {
            *found = true;
            return strtoull(p + 16, NULL, 10);
        }
        p += len + 2;
    }
    return 0;
}

/* Body bytes that the big file holds at one offset render as a file marker. */
static int render_body(struct nm_buf *b, const char *p, size_t n, const struct nm_buf *big)
{
    if (n >= FILE_MARKER_MIN_BYTES && big->len >= n) {
        const char *hit = memmem(big->ptr, big->len, p, n);
        if (hit) {
            size_t first = (size_t)(hit - big->ptr);
            return nm_buf_appendf(b, "~~~ file " BIG_NAME " %zu-%zu\n", first, first + n - 1);
        }
    }
    return render_raw(b, p, n);
}

/* Splits the output into responses: a head, then Content-Length bytes of body, except for 1xx,
 * 204 and 304, and for a HEAD response (its length is followed directly by the next response). */
static int render_response(struct nm_buf *b, const char *p, size_t n, bool closed,
                           const struct nm_buf *big)
{
    int rc = 0;
    bool raw = false;
    const char *end = p + n;
    while (p < end && rc == 0) {
        const char *eoh = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!eoh || !head_is_plain(p, (size_t)(eoh + 4 - p))) {
            rc = render_raw(b, p, (size_t)(end - p));
            raw = true;
            break;
        }
        size_t head_len = (size_t)(eoh + 4 - p);
        if (raw)
            rc = nm_buf_append_str(b, "~~~ head\n");
        raw = false;
        for (const char *q = p; q < eoh + 2 && rc == 0;) {
            const char *cr = memchr(q, '\r', (size_t)(eoh + 2 - q));
            rc = nm_buf_appendf(b, "%.*s\n", (int)(cr - q), q);
            q = cr + 2;
        }
        if (rc == 0)
            rc = nm_buf_append_str(b, "\n");
        int status = n >= 12 ? atoi(p + 9) : 0;
        bool has_cl;
        uint64_t cl = content_length_of(p, head_len, &has_cl);
        p += head_len;
        size_t left = (size_t)(end - p);
        size_t body = 0;
        if (status >= 200 && status != 204 && status != 304 && has_cl) {
            if (cl <= left && (cl == left || starts_with(p + cl, left - cl, "HTTP/1.1 ")))
                body = (size_t)cl;
            else if (!(left == 0 || starts_with(p, left, "HTTP/1.1 ")))
                body = cl < left ? (size_t)cl : left;
        }
        if (body && rc == 0) {
            rc = render_body(b, p, body, big);
            raw = true;
        }
        p += body;
    }
    if (rc == 0)
        rc = nm_buf_append_str(b, closed ? "=== closed\n" : "=== open\n");
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void show_difference(const struct nm_buf *want, const struct nm_buf *got)
{
    size_t i = 0;
    while (i < want->len && i < got->len && want->ptr[i] == got->ptr[i])
        i++;
    fprintf(stderr, "  first difference at byte %zu (expected %zu bytes, got %zu)\n", i, want->len,
            got->len);
}

/* Rewrites the response section of a golden file when the rendered output differs. */
static int update_file(const char *path, const char *name, const struct nm_buf *text,
                       size_t response_at, const struct nm_buf *rendered)
{
    struct nm_buf next;
    nm_buf_init(&next, MAX_FILE_BYTES);
    int rc = nm_buf_append(&next, text->ptr, response_at);
    if (rc == 0)
        rc = nm_buf_append_str(&next, "<<< response\n");
    if (rc == 0)
        rc = nm_buf_append(&next, rendered->ptr, rendered->len);
    bool same = rc == 0 && next.len == text->len && memcmp(next.ptr, text->ptr, next.len) == 0;
    if (rc == 0 && !same)
        rc = write_file(path, next.ptr, next.len);
    if (rc < 0)
        fprintf(stderr, "ERROR updating %s: %s\n", name, strerror(-rc));
    else if (!same)
        fprintf(stderr, "UPDATED %s\n", name);
    nm_buf_cleanup(&next);
    return rc;
}

static int run_file(const char *dir, const char *name, const char *site_dir,
                    const struct nm_mime_table *mime, const struct nm_buf *big, bool update)
{
    char path[4096];
    if (join_path(path, sizeof(path), dir, name) < 0)
        return 1;
    struct nm_buf text, out, rendered;
    nm_buf_init(&text, MAX_FILE_BYTES);
    nm_buf_init(&out, MAX_FILE_BYTES);
    nm_buf_init(&rendered, MAX_FILE_BYTES);
    struct golden g;
    golden_init(&g);
    bool closed = false;
    int rc = read_file(path, &text);
    if (rc == 0)
        rc = parse_golden(text.ptr, text.len, site_dir, update, &g);
    if (rc == 0 && (!g.response_at || (!g.has_end && !update))) {
        fprintf(stderr,
                "%s: no \"<<< response\" section ending in \"=== open\" or "
                "\"=== closed\"\n",
                name);
        rc = -EINVAL;
    }
    size_t made = 0;
    for (; rc == 0 && made < g.n_files; made++) {
        char file[4096];
        rc = join_path(file, sizeof(file), site_dir, g.files[made] + 1);
        if (rc == 0)
            rc = write_file(file, "", 0);
    }
    if (rc == 0)
        rc = set_mtimes(site_dir, &g);
    if (rc == 0)
        rc = run_exchange(&g, site_dir, mime, &out, &closed);
    for (size_t i = 0; i < made; i++) {
        char file[4096];
        if (join_path(file, sizeof(file), site_dir, g.files[i] + 1) == 0)
            unlink(file);
    }
    if (rc == 0)
        rc = render_response(&rendered, out.ptr, out.len, closed, big);
    int result = 1;
    if (rc < 0) {
        fprintf(stderr, "ERROR %s: %s\n", name, strerror(-rc));
    } else if (update) {
        result = update_file(path, name, &text, g.response_at, &rendered) < 0;
    } else if (g.expected.len == out.len &&
               (out.len == 0 || memcmp(g.expected.ptr, out.ptr, out.len) == 0) &&
               g.expect_closed == closed) {
        result = 0;
    } else {
        fprintf(stderr, "FAIL %s\n", name);
        if (g.expect_closed != closed)
            fprintf(stderr, "  connection %s, expected %s\n", closed ? "closed" : "open",
                    g.expect_closed ? "closed" : "open");
        show_difference(&g.expected, &out);
        fprintf(stderr, "  actual response:\n%.*s\n", (int)rendered.len, rendered.ptr);
    }
    golden_cleanup(&g);
    nm_buf_cleanup(&text);
    nm_buf_cleanup(&out);
    nm_buf_cleanup(&rendered);
    return result;
}

static bool is_selected(const char *name, char **only, int n_only)
{
    if (n_only == 0)
        return true;
    for (int i = 0; i < n_only; i++) {
        size_t k = strlen(only[i]);
        if (strncmp(name, only[i], k) == 0 && (name[k] == '\0' || strcmp(name + k, ".http") == 0))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    bool update = false;
    int a = 1;
    if (a < argc && strcmp(argv[a], "--update") == 0) {
        update = true;
        a++;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: %s [--update] EXCHANGES_DIR [NAME...]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[a++];
    char **only = argv + a;
    int n_only = argc - a;

    char src[4096];
    if (join_path(src, sizeof(src), dir, "site") < 0)
        return 2;
    const char *tmp = getenv("TMPDIR");
    char site_dir[4096];
    snprintf(site_dir, sizeof(site_dir), "%s/notmod-exchanges-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(site_dir)) {
        perror("mkdtemp");
        return 2;
    }
    int status = 2;
    struct nm_mime_table *mime = NULL;
    struct nm_buf big;
    nm_buf_init(&big, MAX_FILE_BYTES);
    char big_path[4096];
    int rc = join_path(big_path, sizeof(big_path), site_dir, BIG_NAME);
    if (rc == 0)
        rc = copy_tree(src, site_dir);
    if (rc == 0)
        rc = make_big_file(site_dir);
    if (rc == 0)
        rc = read_file(big_path, &big);
    if (rc == 0)
        rc = nm_mime_table_new(NULL, &mime);
    if (rc < 0) {
        fprintf(stderr, "cannot set up the site in %s: %s\n", site_dir, strerror(-rc));
        goto out;
    }

    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        goto out;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".http") != 0 ||
            !is_selected(e->d_name, only, n_only))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof(*names));
            if (!p)
                break;
            names = p;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    unsigned failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += (unsigned)run_file(dir, names[i], site_dir, mime, &big, update);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    printf("%zu exchanges, %u failed\n", n, failed);
    status = n == 0 || failed ? 1 : 0;
out:
    nm_buf_cleanup(&big);
    nm_mime_table_free(mime);
    remove_tree(site_dir);
    return status;
}
