/* HTML directory listings: names as HTML text (HTML 5 §13.1.3) and as relative references
 * (RFC 3986 §4.2), from the sorted entries nm_dir_read gives. */
#include "listing.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "notmod/date.h"
#include "notmod/path.h"
#include "notmod/utf8.h"

/* A file name or path as HTML text. The page says it is UTF-8, and a name is only bytes: each
 * byte that is not part of well-formed UTF-8 is shown as U+FFFD (what a browser would decode it
 * to, without relying on one), and a C0 control or DEL as its control picture (U+2400 + code,
 * U+2421), so a name holding a newline stays visible and on its line. Markup characters are
 * escaped (both quotes too, so the text is safe inside an attribute). */
static int put_html_text(struct nm_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    int rc = 0;
    while (left > 0 && rc == 0) {
        unsigned char c = *p;
        size_t len = nm_utf8_sequence_len(p, left);
        if (len == 0) {
            rc = nm_buf_append_str(b, "\xef\xbf\xbd");
            len = 1;
        } else if (c < 0x20 || c == 0x7f) {
            char pic[3] = {'\xe2', '\x90', (char)(c == 0x7f ? 0xa1 : 0x80 + c)};
            rc = nm_buf_append(b, pic, sizeof(pic));
        } else if (c == '<') {
            rc = nm_buf_append_str(b, "&lt;");
        } else if (c == '>') {
            rc = nm_buf_append_str(b, "&gt;");
        } else if (c == '&') {
            rc = nm_buf_append_str(b, "&amp;");
        } else if (c == '"') {
            rc = nm_buf_append_str(b, "&quot;");
        } else if (c == '\'') {
            rc = nm_buf_append_str(b, "&#39;");
        } else {
            rc = nm_buf_append(b, p, len);
        }
        p += len;
        left -= len;
    }
    return rc;
}

/* RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@". Two sub-delims are
 * encoded all the same: the single quote, so that no quote of any kind reaches an attribute, and
 * ';', which RFC 2396 §3.3 made a parameter delimiter that older URL code still drops. */
static bool is_href_byte(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&()*+,=:@", c) != NULL;
}

/* A directory entry as a link (RFC 3986 §4.2): "./" and the name as one percent-encoded path
 * segment. A name such as "javascript:alert(1)" or "a:b" would otherwise be read as a URI with a
 * scheme; after "./" the colon is inside a path segment, and the reference stays a relative path
 * in this directory. Every byte outside pchar ('%', '#', '?', SP, quotes, '<', '>', controls,
 * non-ASCII) becomes %XX; a directory keeps its trailing slash. Writes a NUL-terminated string to
 * out, which holds 3 * strlen(name) + 4 bytes. */
static void make_href(const char *name, bool is_dir, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    out[n++] = '.';
    out[n++] = '/';
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if (is_href_byte(*s)) {
            out[n++] = (char)*s;
        } else {
            out[n++] = '%';
            out[n++] = hex[*s >> 4];
            out[n++] = hex[*s & 0x0f];
        }
    }
    if (is_dir)
        out[n++] = '/';
    out[n] = '\0';
}

/* Whether a request for href (from make_href) reaches the entry `name`: nm_path_normalize refuses
 * some bytes a file name may hold (a control byte such as a newline), and a link that can only
 * answer 400 is not written. */
static bool href_reaches(const char *href, bool is_dir, const char *name)
{
    char norm[NAME_MAX + 3];
    size_t len = strlen(name);
    int n = nm_path_normalize(nm_slice_from_cstr(href + 1), norm, sizeof(norm));
    return n > 0 && (size_t)n == len + 1 + is_dir && norm[0] == '/' &&
           memcmp(norm + 1, name, len) == 0;
}

static int put_head(struct nm_buf *out, const char *path)
{
    int rc = nm_buf_append_str(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                                    "<title>Index of ");
    rc = rc ? rc : put_html_text(out, path);
    rc = rc ? rc : nm_buf_append_str(out, "</title></head>\n<body><h1>Index of ");
    rc = rc ? rc : put_html_text(out, path);
    rc = rc ? rc
            : nm_buf_append_str(out, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th>"
                                     "<th>Modified</th></tr>\n");
    if (rc == 0 && strcmp(path, "/") != 0)
        rc = nm_buf_append_str(out, "<tr><td><a href=\"../\">../</a></td></tr>\n");
    return rc;
}

/* One row: the name (a link when one reaches it), the size or "-" for a directory, the mtime;
 * without st, the name alone and empty cells. */
static int put_row(struct nm_buf *out, const char *name, const struct stat *st)
{
    bool is_dir = st && S_ISDIR(st->st_mode);
    char href[3 * NAME_MAX + 4];
    make_href(name, is_dir, href);
    bool linked = href_reaches(href, is_dir, name);
    char when[NM_DATE_LEN + 1];
    if (st)
        nm_date_format(st->st_mtim.tv_sec > 0 ? st->st_mtim.tv_sec : 0, when);
    int rc = nm_buf_append_str(out, "<tr><td>");
    if (rc == 0 && linked) {
        /* '&' is the one markup character pchar keeps. */
        rc = nm_buf_append_str(out, "<a href=\"");
        rc = rc ? rc : put_html_text(out, href);
        rc = rc ? rc : nm_buf_append_str(out, "\">");
    }
    rc = rc ? rc : put_html_text(out, name);
    rc = rc ? rc : nm_buf_append_str(out, is_dir ? "/" : "");
    rc = rc ? rc : nm_buf_append_str(out, linked ? "</a></td>" : "</td>");
    if (rc == 0 && !st)
        rc = nm_buf_append_str(out, "<td></td><td></td></tr>\n");
    else if (rc == 0 && is_dir)
        rc = nm_buf_appendf(out, "<td>-</td><td>%s</td></tr>\n", when);
    else if (rc == 0)
        rc = nm_buf_appendf(out, "<td>%lld</td><td>%s</td></tr>\n", (long long)st->st_size, when);
    return rc;
}

/* What an entry shows, stat-ed without looking outside the directory: a symlink is followed
 * only while it resolves beneath dir_fd (openat2 RESOLVE_BENEATH), so the size and mtime of a
 * file out of the root are never shown. A link that leaves the directory, even to somewhere
 * else in the root, or any link without openat2, is a plain name (*shown false). Returns false
 * for an entry gone meanwhile. */
static bool stat_entry(int dir_fd, const char *name, struct stat *st, bool *shown)
{
    if (fstatat(dir_fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return false;
    *shown = true;
    if (!S_ISLNK(st->st_mode))
        return true;
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dir_fd, name, &how, sizeof(how));
    if (fd < 0) {
        *shown = false;
        return true;
    }
    *shown = fstat((int)fd, st) == 0;
    close((int)fd);
    return true;
}

int nm_listing_render(int dir_fd, const char *path, bool allow_dotfiles, struct nm_buf *out)
{
    struct nm_dir d;
    int rc = nm_dir_read(dir_fd, SIZE_MAX, &d);
    if (rc < 0)
        return rc;
    rc = put_head(out, path);
    for (size_t i = 0; i < d.count && rc == 0; i++) {
        const char *name = d.entries[i].name;
        struct stat st;
        bool shown;
        if ((name[0] == '.' && !allow_dotfiles) || strlen(name) > NAME_MAX ||
            !stat_entry(dir_fd, name, &st, &shown))
            continue;
        rc = put_row(out, name, shown ? &st : NULL);
    }
    rc = rc ? rc : nm_buf_append_str(out, "</table>\n</body></html>\n");
    nm_dir_free(&d);
    return rc;
}

/* ---- the cache of pages ---- */

struct page_slot {
    struct nm_file *page; /* NULL when the slot is free */
    char *path;
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns, ctime_ns;
    int64_t made;  /* the second it was made in */
    uint64_t used; /* lc->clock when last found or put */
};

struct nm_listing_cache {
    size_t max_bytes;
    size_t bytes;
    uint64_t clock;
    struct page_slot slots[NM_LISTING_CACHE_MAX];
};

int nm_listing_cache_new(size_t max_bytes, struct nm_listing_cache **out)
{
    struct nm_listing_cache *lc = calloc(1, sizeof(*lc));
    if (!lc)
        return -ENOMEM;
    lc->max_bytes = max_bytes;
    *out = lc;
    return 0;
}

static void drop_slot(struct nm_listing_cache *lc, struct page_slot *s)
{
    lc->bytes -= s->page->size;
    nm_file_release(s->page);
    free(s->path);
    *s = (struct page_slot){0};
}

void nm_listing_cache_free(struct nm_listing_cache *lc)
{
    if (!lc)
        return;
    for (size_t i = 0; i < NM_LISTING_CACHE_MAX; i++)
        if (lc->slots[i].page)
            drop_slot(lc, &lc->slots[i]);
    free(lc);
}

static bool slot_is_for(const struct page_slot *s, const struct nm_file *dir, const char *path)
{
    return s->page && s->dev == dir->dev && s->ino == dir->ino && strcmp(s->path, path) == 0;
}

struct nm_file *nm_listing_cache_find(struct nm_listing_cache *lc, const struct nm_file *dir,
                                      const char *path, int64_t now)
{
    for (size_t i = 0; i < NM_LISTING_CACHE_MAX; i++) {
        struct page_slot *s = &lc->slots[i];
        if (!slot_is_for(s, dir, path))
            continue;
        if (s->mtime_ns != dir->mtime_ns || s->ctime_ns != dir->ctime_ns || s->made != now) {
            drop_slot(lc, s);
            return NULL;
        }
        s->used = ++lc->clock;
        return nm_file_acquire(s->page);
    }
    return NULL;
}

void nm_listing_cache_put(struct nm_listing_cache *lc, const struct nm_file *dir, const char *path,
                          struct nm_file *page, int64_t now)
{
    if (page->size > lc->max_bytes)
        return;
    for (size_t i = 0; i < NM_LISTING_CACHE_MAX; i++)
        if (lc->slots[i].page && strcmp(lc->slots[i].path, path) == 0)
            drop_slot(lc, &lc->slots[i]);
    char *copy = strdup(path);
    if (!copy)
        return;
    struct page_slot *free_slot = NULL;
    for (;;) {
        struct page_slot *oldest = NULL;
        free_slot = NULL;
        for (size_t i = 0; i < NM_LISTING_CACHE_MAX; i++) {
            struct page_slot *s = &lc->slots[i];
            if (!s->page)
                free_slot = free_slot ? free_slot : s;
            else if (!oldest || s->used < oldest->used)
                oldest = s;
        }
        if (free_slot && lc->bytes + page->size <= lc->max_bytes)
            break;
        drop_slot(lc, oldest); /* something is kept, or the page would fit */
    }
    *free_slot = (struct page_slot){
        .page = nm_file_acquire(page),
        .path = copy,
        .dev = dir->dev,
        .ino = dir->ino,
        .mtime_ns = dir->mtime_ns,
        .ctime_ns = dir->ctime_ns,
        .made = now,
        .used = ++lc->clock,
    };
    lc->bytes += page->size;
}

size_t nm_listing_cache_bytes(const struct nm_listing_cache *lc)
{
    return lc->bytes;
}
