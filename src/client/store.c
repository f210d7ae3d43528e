/* On-disk private cache: metadata and body files, written to temporaries and renamed into
 * place (RFC 9111 §3 storage, §4.3.4 updates).
 *
 * <key>.meta, key = hex XXH3-128 of the URL, is text, one item per line:
 *   notmod-cache 1
 *   url <url>
 *   status <code>
 *   request-time <seconds>            response-time <seconds>
 *   body <key>-<random>.body <length> <hex XXH3-128 of the body>
 *   request <Name>: <value>           (the request fields named by Vary, in order)
 *   header <Name>: <value>            (the stored response fields, in order)
 *   end
 * Temporary files end in .tmp; anything that does not parse is corrupt (-EBADMSG). */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "notmod/token.h"

#define META_MAGIC "notmod-cache 1"

int nm_store_open(struct nm_store *s, const char *dir)
{
    int rc = nm_dir_make_private(dir);
    if (rc < 0)
        return rc;
    char *copy = strdup(dir);
    if (!copy)
        return -ENOMEM;
    s->dir = copy;
    return 0;
}

void nm_store_cleanup(struct nm_store *s)
{
    free(s->dir);
    s->dir = NULL;
}

void nm_store_entry_init(struct nm_store_entry *e)
{
    memset(e, 0, sizeof(*e));
    nm_buf_init(&e->text, NM_STORE_MAX_META_BYTES);
}

void nm_store_entry_cleanup(struct nm_store_entry *e)
{
    nm_buf_cleanup(&e->text);
    struct nm_buf text = e->text;
    memset(e, 0, sizeof(*e));
    e->text = text;
}

_Static_assert(NM_STORE_HASH_LEN == NM_HASH_HEX_LEN, "keys and body hashes are hex XXH3-128");

static void url_key(const char *url, size_t len, char out[NM_STORE_HASH_LEN + 1])
{
    nm_hash_format_hex(nm_hash_bytes(url, len), out);
}

static int path_of(const struct nm_store *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int fsync_dir(const struct nm_store *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    /* Some file systems cannot sync a directory; the rename itself is still atomic. */
    return rc == -EINVAL ? 0 : rc;
}

static int read_all(int fd, struct nm_buf *b)
{
    for (;;) {
        int rc = nm_buf_reserve(b, 4096);
        if (rc < 0)
            return rc == -EMSGSIZE ? -EBADMSG : rc;
        ssize_t n = read(fd, b->ptr + b->len, b->cap - b->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return 0;
        b->len += (size_t)n;
    }
}

static bool valid_value(struct nm_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == '\0')
            return false;
    return true;
}

static bool valid_file_name(const char *s)
{
    if (!*s || strlen(s) >= NM_STORE_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || *s == '-' || *s == '.' ||
              (*s >= 'a' && *s <= 'z')))
            return false;
    return true;
}

static bool valid_hash(const char *s)
{
    size_t n = 0;
    for (; (s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'); n++)
        ;
    return n == NM_STORE_HASH_LEN && s[n] == '\0';
}

/* The times a metadata file holds: the 18 digits parse_i64 reads. */
static bool valid_time(int64_t t)
{
    return t >= 0 && t < INT64_C(1000000000000000000);
}

static bool parse_i64(struct nm_slice s, int64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return true;
}

/* "Name: value" into a header; false when malformed. */
static bool parse_header_line(struct nm_slice s, struct nm_http1_field *h)
{
    const char *colon = memchr(s.ptr, ':', s.len);
    if (!colon)
        return false;
    h->name = nm_slice_make(s.ptr, (size_t)(colon - s.ptr));
    h->value = nm_slice_make(colon + 1, s.len - h->name.len - 1);
    if (h->value.len > 0 && h->value.ptr[0] == ' ') {
        h->value.ptr++;
        h->value.len--;
    }
    return nm_token_is_token(h->name) && valid_value(h->value);
}

static bool starts(struct nm_slice line, const char *word, struct nm_slice *rest)
{
    size_t n = strlen(word);
    if (line.len <= n || memcmp(line.ptr, word, n) != 0 || line.ptr[n] != ' ')
        return false;
    *rest = nm_slice_make(line.ptr + n + 1, line.len - n - 1);
    return true;
}

int nm_store_meta_parse(struct nm_store_entry *e)
{
    struct nm_slice text = nm_buf_slice(&e->text);
    size_t pos = 0, lineno = 0;
    bool ended = false, have_url = false, have_body = false, have_status = false;
    bool have_req_t = false, have_resp_t = false;
    while (pos < text.len) {
        const char *nl = memchr(text.ptr + pos, '\n', text.len - pos);
        if (!nl || ended)
            return -EBADMSG;
        struct nm_slice line = nm_slice_make(text.ptr + pos, (size_t)(nl - (text.ptr + pos)));
        pos = (size_t)(nl - text.ptr) + 1;
        struct nm_slice rest;
        int64_t v;
        if (lineno++ == 0) {
            if (!nm_slice_eq(line, NM_SLICE_LIT(META_MAGIC)))
                return -EBADMSG;
        } else if (nm_slice_eq(line, NM_SLICE_LIT("end"))) {
            ended = true;
        } else if (starts(line, "url", &rest)) {
            if (!valid_value(rest) || rest.len == 0)
                return -EBADMSG;
            e->url = rest;
            have_url = true;
        } else if (starts(line, "status", &rest)) {
            if (!parse_i64(rest, &v) || v < 100 || v > 999)
                return -EBADMSG;
            e->status = (int)v;
            have_status = true;
        } else if (starts(line, "request-time", &rest)) {
            if (!parse_i64(rest, &e->request_time))
                return -EBADMSG;
            have_req_t = true;
        } else if (starts(line, "response-time", &rest)) {
            if (!parse_i64(rest, &e->response_time))
                return -EBADMSG;
            have_resp_t = true;
        } else if (starts(line, "body", &rest)) {
            char tmp[NM_STORE_NAME_MAX + NM_STORE_HASH_LEN + 48];
            if (rest.len >= sizeof(tmp))
                return -EBADMSG;
            memcpy(tmp, rest.ptr, rest.len);
            tmp[rest.len] = '\0';
            char name[NM_STORE_NAME_MAX], hash[NM_STORE_HASH_LEN + 16];
            unsigned long long len;
            char extra;
            if (sscanf(tmp, "%63s %llu %40s %c", name, &len, hash, &extra) != 3 ||
                !valid_hash(hash) || !valid_file_name(name))
                return -EBADMSG;
            snprintf(e->body_name, sizeof(e->body_name), "%s", name);
            memcpy(e->body_hash, hash, NM_STORE_HASH_LEN + 1);
            e->body_len = len;
            have_body = true;
        } else if (starts(line, "request", &rest)) {
            if (e->n_request == NM_STORE_MAX_REQUEST ||
                !parse_header_line(rest, &e->request[e->n_request]))
                return -EBADMSG;
            e->n_request++;
        } else if (starts(line, "header", &rest)) {
            if (e->n_headers == NM_STORE_MAX_HEADERS ||
                !parse_header_line(rest, &e->headers[e->n_headers]))
                return -EBADMSG;
            e->n_headers++;
        } else {
            return -EBADMSG;
        }
    }
    if (!ended || !have_url || !have_body || !have_status || !have_req_t || !have_resp_t)
        return -EBADMSG;
    return 0;
}

static int load_meta_file(struct nm_store *s, const char *name, struct nm_store_entry *e)
{
    char path[PATH_MAX];
    int rc = path_of(s, name, path, sizeof(path));
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    nm_store_entry_cleanup(e);
    rc = read_all(fd, &e->text);
    close(fd);
    if (rc == 0)
        rc = nm_store_meta_parse(e);
    if (rc == 0) {
        /* The body must exist with the recorded size. */
        int bfd = nm_store_body_open(s, e);
        if (bfd < 0)
            rc = bfd == -ENOENT ? -EBADMSG : bfd;
        else
            close(bfd);
    }
    if (rc < 0)
        nm_store_entry_cleanup(e);
    return rc;
}

int nm_store_load(struct nm_store *s, const char *url, struct nm_store_entry *e)
{
    char key[NM_STORE_HASH_LEN + 1], name[NM_STORE_NAME_MAX];
    url_key(url, strlen(url), key);
    snprintf(name, sizeof(name), "%s.meta", key);
    int rc = load_meta_file(s, name, e);
    if (rc == 0 && !nm_slice_eq(e->url, nm_slice_from_cstr(url))) {
        nm_store_entry_cleanup(e);
        return -EBADMSG;
    }
    return rc;
}

int nm_store_body_open(const struct nm_store *s, const struct nm_store_entry *e)
{
    char path[PATH_MAX];
    int rc = path_of(s, e->body_name, path, sizeof(path));
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->body_len) {
        close(fd);
        return -EBADMSG;
    }
    return fd;
}

int nm_store_hash_fd(int fd, char hash[NM_STORE_HASH_LEN + 1], uint64_t *len)
{
    struct nm_hash_stream *st;
    int rc = nm_hash_stream_new(&st);
    if (rc < 0)
        return rc;
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        nm_hash_stream_update(st, buf, (size_t)n);
        total += (uint64_t)n;
    }
    if (rc == 0) {
        nm_hash_format_hex(nm_hash_stream_digest(st), hash);
        if (len)
            *len = total;
    }
    nm_hash_stream_free(st);
    return rc;
}

int nm_store_spool_begin(struct nm_store *s, struct nm_store_spool *sp)
{
    *sp = (struct nm_store_spool){.fd = -1};
    char path[PATH_MAX];
    int rc = path_of(s, "spool-XXXXXX.tmp", path, sizeof(path));
    if (rc < 0)
        return rc;
    struct nm_hash_stream *st;
    rc = nm_hash_stream_new(&st);
    if (rc < 0)
        return rc;
    int fd = mkostemps(path, 4, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        nm_hash_stream_free(st);
        return rc;
    }
    snprintf(sp->name, sizeof(sp->name), "%s", strrchr(path, '/') + 1);
    sp->fd = fd;
    sp->state = st;
    return 0;
}

int nm_store_spool_write(struct nm_store_spool *sp, const void *data, size_t len)
{
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(sp->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        left -= (size_t)n;
    }
    nm_hash_stream_update(sp->state, data, len);
    sp->len += len;
    return 0;
}

int nm_store_spool_finish(struct nm_store_spool *sp)
{
    if (fsync(sp->fd) != 0)
        return -errno;
    nm_hash_format_hex(nm_hash_stream_digest(sp->state), sp->hash);
    return 0;
}

int nm_store_spool_open(const struct nm_store *s, const struct nm_store_spool *sp)
{
    char path[PATH_MAX];
    int rc = path_of(s, sp->name, path, sizeof(path));
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static void spool_close(struct nm_store_spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    nm_hash_stream_free(sp->state);
    sp->state = NULL;
}

void nm_store_spool_discard(struct nm_store *s, struct nm_store_spool *sp)
{
    spool_close(sp);
    if (sp->name[0]) {
        char path[PATH_MAX];
        if (path_of(s, sp->name, path, sizeof(path)) == 0)
            unlink(path);
    }
    sp->name[0] = '\0';
}

static int append_header(struct nm_buf *b, const char *kind, const struct nm_http1_field *h)
{
    if (!nm_token_is_token(h->name) || !valid_value(h->value))
        return -EINVAL;
    return nm_buf_appendf(b, "%s %.*s: %.*s\n", kind, (int)h->name.len, h->name.ptr,
                          (int)h->value.len, h->value.ptr);
}

int nm_store_meta_render(const struct nm_store_entry *e, struct nm_buf *b)
{
    if (e->url.len == 0 || !valid_value(e->url) || !valid_file_name(e->body_name) ||
        e->status < 100 || e->status > 999 || !valid_time(e->request_time) ||
        !valid_time(e->response_time) || !valid_hash(e->body_hash))
        return -EINVAL;
    int rc = nm_buf_appendf(b,
                            META_MAGIC "\nurl %.*s\nstatus %d\nrequest-time %" PRId64
                                       "\nresponse-time %" PRId64 "\nbody %s %" PRIu64 " %s\n",
                            (int)e->url.len, e->url.ptr, e->status, e->request_time,
                            e->response_time, e->body_name, e->body_len, e->body_hash);
    for (size_t i = 0; rc == 0 && i < e->n_request; i++)
        rc = append_header(b, "request", &e->request[i]);
    for (size_t i = 0; rc == 0 && i < e->n_headers; i++)
        rc = append_header(b, "header", &e->headers[i]);
    if (rc == 0)
        rc = nm_buf_append_str(b, "end\n");
    return rc;
}

/* Writes bytes to a temporary file and renames it to `name`. */
static int write_atomic(struct nm_store *s, const char *name, struct nm_slice data)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    int rc = path_of(s, "meta-XXXXXX.tmp", tmp, sizeof(tmp));
    if (rc == 0)
        rc = path_of(s, name, final, sizeof(final));
    if (rc < 0)
        return rc;
    int fd = mkostemps(tmp, 4, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < data.len) {
        ssize_t n = write(fd, data.ptr + off, data.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto fail_unlink;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp, final) != 0) {
        rc = -errno;
        goto fail_unlink;
    }
    return fsync_dir(s);

fail_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

static int save_meta(struct nm_store *s, const struct nm_store_entry *e)
{
    char key[NM_STORE_HASH_LEN + 1], name[NM_STORE_NAME_MAX];
    url_key(e->url.ptr, e->url.len, key);
    snprintf(name, sizeof(name), "%s.meta", key);
    struct nm_buf b;
    nm_buf_init(&b, NM_STORE_MAX_META_BYTES);
    int rc = nm_store_meta_render(e, &b);
    if (rc == 0)
        rc = write_atomic(s, name, nm_buf_slice(&b));
    nm_buf_cleanup(&b);
    return rc == -EMSGSIZE ? -EINVAL : rc;
}

int nm_store_save(struct nm_store *s, const struct nm_store_entry *e)
{
    return save_meta(s, e);
}

static void remove_file(struct nm_store *s, const char *name)
{
    char path[PATH_MAX];
    if (name[0] && path_of(s, name, path, sizeof(path)) == 0)
        unlink(path);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* What a run killed mid-write leaves (the store's writes are temporary file and rename, so never
 * a damaged entry): temporary files, and a body renamed into place whose metadata was never
 * written. Removed when untouched for STALE_SECONDS: a live download writes its spool far more
 * often (the transport gives up after 30 s without bytes), and a body waits for its metadata
 * only the moment between two renames. Bodies are those of `key` other than `keep`. */
#define STALE_SECONDS 600

static void remove_leftovers(struct nm_store *s, const char *key, const char *keep)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    time_t now = time(NULL);
    size_t key_len = strlen(key);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        bool tmp =
            has_suffix(n, ".tmp") && (strncmp(n, "spool-", 6) == 0 || strncmp(n, "meta-", 5) == 0);
        bool body = has_suffix(n, ".body") && strncmp(n, key, key_len) == 0 && n[key_len] == '-' &&
                    strcmp(n, keep) != 0;
        struct stat st;
        if ((tmp || body) && fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && now - st.st_mtime > STALE_SECONDS)
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

int nm_store_commit(struct nm_store *s, struct nm_store_entry *e, struct nm_store_spool *sp)
{
    char key[NM_STORE_HASH_LEN + 1], body[NM_STORE_NAME_MAX], from[PATH_MAX], to[PATH_MAX];
    char old_body[NM_STORE_NAME_MAX] = "", url[PATH_MAX];
    uint64_t rnd = 0;
    int rc;

    /* The previous entry's body, to delete once the new metadata is in place. */
    struct nm_store_entry *old = malloc(sizeof(*old));
    if (!old)
        return -ENOMEM;
    nm_store_entry_init(old);
    if (e->url.len < sizeof(url)) {
        memcpy(url, e->url.ptr, e->url.len);
        url[e->url.len] = '\0';
        if (nm_store_load(s, url, old) == 0)
            snprintf(old_body, sizeof(old_body), "%s", old->body_name);
    }
    nm_store_entry_cleanup(old);
    free(old);

    url_key(e->url.ptr, e->url.len, key);
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)sp;
    snprintf(body, sizeof(body), "%s-%016" PRIx64 ".body", key, rnd);
    rc = path_of(s, sp->name, from, sizeof(from));
    if (rc == 0)
        rc = path_of(s, body, to, sizeof(to));
    if (rc < 0)
        return rc;
    if (rename(from, to) != 0)
        return -errno;
    char saved_name[NM_STORE_NAME_MAX], saved_hash[NM_STORE_HASH_LEN + 1];
    uint64_t saved_len = e->body_len;
    memcpy(saved_name, e->body_name, sizeof(saved_name));
    memcpy(saved_hash, e->body_hash, sizeof(saved_hash));
    snprintf(e->body_name, sizeof(e->body_name), "%s", body);
    memcpy(e->body_hash, sp->hash, sizeof(e->body_hash));
    e->body_len = sp->len;
    rc = save_meta(s, e);
    if (rc < 0) {
        /* Give the bytes back to the spool so the caller can still deliver them. */
        if (rename(to, from) != 0)
            unlink(to);
        memcpy(e->body_name, saved_name, sizeof(saved_name));
        memcpy(e->body_hash, saved_hash, sizeof(saved_hash));
        e->body_len = saved_len;
        return rc;
    }
    spool_close(sp);
    sp->name[0] = '\0';
    if (old_body[0] && strcmp(old_body, body) != 0)
        remove_file(s, old_body);
    remove_leftovers(s, key, body);
    return 0;
}

int nm_store_remove(struct nm_store *s, const char *url)
{
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    nm_store_entry_init(e);
    char key[NM_STORE_HASH_LEN + 1], name[NM_STORE_NAME_MAX];
    url_key(url, strlen(url), key);
    snprintf(name, sizeof(name), "%s.meta", key);
    int rc = nm_store_load(s, url, e);
    char path[PATH_MAX];
    if (rc == 0 || rc == -EBADMSG) {
        if (rc == 0)
            remove_file(s, e->body_name);
        rc = path_of(s, name, path, sizeof(path));
        if (rc == 0 && unlink(path) != 0)
            rc = -errno;
    }
    nm_store_entry_cleanup(e);
    free(e);
    return rc;
}

int nm_store_foreach(struct nm_store *s,
                     int (*fn)(void *ctx, const struct nm_store_entry *e, int err,
                               const char *name),
                     void *ctx)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -errno;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e) {
        closedir(d);
        return -ENOMEM;
    }
    nm_store_entry_init(e);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!has_suffix(de->d_name, ".meta") || strlen(de->d_name) >= NM_STORE_NAME_MAX)
            continue;
        char name[NM_STORE_NAME_MAX];
        memcpy(name, de->d_name, strlen(de->d_name) + 1);
        int err = load_meta_file(s, name, e);
        rc = fn(ctx, err == 0 ? e : NULL, err, name);
        nm_store_entry_cleanup(e);
    }
    nm_store_entry_cleanup(e);
    nm_buf_cleanup(&e->text);
    free(e);
    closedir(d);
    return rc;
}

int nm_store_clear(struct nm_store *s, size_t *removed)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -errno;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        bool meta = has_suffix(de->d_name, ".meta");
        if (!meta && !has_suffix(de->d_name, ".body") && !has_suffix(de->d_name, ".tmp"))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0) {
            if (errno != ENOENT)
                rc = -errno;
            continue;
        }
        if (meta)
            n++;
    }
    closedir(d);
    if (rc == 0)
        *removed = n;
    return rc;
}
