/* Content-Type by file extension (RFC 9110 §8.3): built-in defaults, /etc/mime.types on top,
 * a sorted array searched with bsearch. */
#include "mime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notmod/token.h"

#define OCTET_STREAM "application/octet-stream"

/* Longest extension and media type taken from a mime.types file; longer tokens are skipped. */
#define EXT_MAX 31
#define TYPE_MAX 127
/* A bound on what a junk file can make us allocate. */
#define FILE_ENTRIES_MAX 65536

struct mime_default {
    const char *ext;
    const char *type;
    bool pinned; /* wins over the file */
};

/* RFC 9239 makes text/javascript the one JavaScript type; older mime.types files still say
 * application/javascript, so js and mjs are pinned. */
static const struct mime_default defaults[] = {
    {"apng", "image/apng", false},
    {"atom", "application/atom+xml", false},
    {"avif", "image/avif", false},
    {"bmp", "image/bmp", false},
    {"br", "application/x-brotli", false},
    {"css", "text/css", false},
    {"csv", "text/csv", false},
    {"flac", "audio/flac", false},
    {"gif", "image/gif", false},
    {"gz", "application/gzip", false},
    {"htm", "text/html", false},
    {"html", "text/html", false},
    {"ico", "image/vnd.microsoft.icon", false},
    {"jpeg", "image/jpeg", false},
    {"jpg", "image/jpeg", false},
    {"js", "text/javascript", true},
    {"json", "application/json", false},
    {"jsonld", "application/ld+json", false},
    {"m4a", "audio/mp4", false},
    {"map", "application/json", false},
    {"md", "text/markdown", false},
    {"mjs", "text/javascript", true},
    {"mp3", "audio/mpeg", false},
    {"mp4", "video/mp4", false},
    {"oga", "audio/ogg", false},
    {"ogg", "audio/ogg", false},
    {"ogv", "video/ogg", false},
    {"opus", "audio/ogg", false},
    {"otf", "font/otf", false},
    {"pdf", "application/pdf", false},
    {"png", "image/png", false},
    {"rss", "application/rss+xml", false},
    {"svg", "image/svg+xml", false},
    {"tar", "application/x-tar", false},
    {"ttf", "font/ttf", false},
    {"txt", "text/plain", false},
    {"vtt", "text/vtt", false},
    {"wasm", "application/wasm", false},
    {"wav", "audio/wav", false},
    {"webm", "video/webm", false},
    {"webmanifest", "application/manifest+json", false},
    {"webp", "image/webp", false},
    {"woff", "font/woff", false},
    {"woff2", "font/woff2", false},
    {"xhtml", "application/xhtml+xml", false},
    {"xml", "application/xml", false},
    {"zip", "application/zip", false},
    {"zst", "application/zstd", false},
};

/* Ranks for the same extension: a file entry beats a default, a pinned default beats both. */
enum rank {
    RANK_DEFAULT = 0,
    RANK_FILE = 1,
    RANK_PINNED = 2,
};

struct entry {
    char ext[EXT_MAX + 1]; /* lower case */
    size_t type_off;       /* into the table's string arena */
    unsigned rank;
    size_t seq; /* later lines of the file win */
};

struct nm_mime_table {
    struct entry *entries;
    size_t n_entries;
    size_t cap_entries;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    size_t builtin_end; /* the defaults' types are arena[0..builtin_end), the file's come after */
    size_t n_from_file;
};

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool has_charset_param(const char *type)
{
    const char *semi = strchr(type, ';');
    for (const char *s = semi; s && *s; s++)
        if (strncasecmp(s, "charset=", 8) == 0)
            return true;
    return false;
}

/* RFC 9110 §8.3.2: charset names the text encoding. JSON is UTF-8 by RFC 8259 §8.1, and
 * saying so keeps old clients from guessing; SVG and other XML declare their own encoding. */
static bool wants_charset(const char *type)
{
    static const char *const utf8_types[] = {
        "application/javascript",
        "application/json",
        "application/manifest+json",
    };
    size_t n = strcspn(type, "; \t");
    if (n >= 5 && strncasecmp(type, "text/", 5) == 0)
        return true;
    for (size_t i = 0; i < sizeof(utf8_types) / sizeof(utf8_types[0]); i++)
        if (strlen(utf8_types[i]) == n && strncasecmp(type, utf8_types[i], n) == 0)
            return true;
    return false;
}

/* Stores the full Content-Type value, with "; charset=utf-8" where it belongs. */
static int arena_add_type(struct nm_mime_table *t, const char *type, size_t *off)
{
    static const char charset[] = "; charset=utf-8";
    size_t tlen = strlen(type);
    size_t extra = wants_charset(type) && !has_charset_param(type) ? sizeof(charset) - 1 : 0;
    size_t need = tlen + extra + 1;

    if (t->arena_cap - t->arena_len < need) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap - t->arena_len < need) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        char *p = realloc(t->arena, cap);
        if (!p)
            return -ENOMEM;
        t->arena = p;
        t->arena_cap = cap;
    }
    *off = t->arena_len;
    memcpy(t->arena + t->arena_len, type, tlen);
    memcpy(t->arena + t->arena_len + tlen, charset, extra);
    t->arena[t->arena_len + tlen + extra] = '\0';
    t->arena_len += need;
    return 0;
}

static int add_entry(struct nm_mime_table *t, const char *ext, size_t ext_len, size_t type_off,
                     unsigned rank)
{
    if (t->n_entries == t->cap_entries) {
        size_t cap = t->cap_entries ? t->cap_entries * 2 : 256;
        struct entry *p = realloc(t->entries, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->entries = p;
        t->cap_entries = cap;
    }
    struct entry *e = &t->entries[t->n_entries];
    for (size_t i = 0; i < ext_len; i++)
        e->ext[i] = lower(ext[i]);
    e->ext[ext_len] = '\0';
    e->type_off = type_off;
    e->rank = rank;
    e->seq = t->n_entries;
    t->n_entries++;
    return 0;
}

/* RFC 9110 §8.3.1: type "/" subtype, both tokens (RFC 9110 §5.6.2). Parameters are not
 * accepted from the file. */
static bool is_valid_type(const char *s, size_t n)
{
    size_t slash = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/') {
            if (slash || i == 0)
                return false;
            slash = i;
        } else if (!nm_token_is_tchar((unsigned char)s[i])) {
            return false;
        }
    }
    return slash && slash + 1 < n;
}

/* An extension is looked up as the text after the last '.', so one holding '.' or '/' could
 * never match ("cwl.json" in Debian's file) and is skipped. */
static bool is_valid_ext(const char *s, size_t n)
{
    if (n == 0 || n > EXT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' || !nm_token_is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

struct parser {
    char tok[TYPE_MAX + 1];
    size_t tok_len;
    bool tok_too_long;
    bool in_comment;
    bool at_first_token; /* the next token is the line's media type */
    bool line_ok;        /* the line's media type was valid */
    char type[TYPE_MAX + 1];
    bool type_stored; /* in the arena at type_off, once the line has an extension */
    size_t type_off;
};

static void start_line(struct parser *p)
{
    p->in_comment = false;
    p->at_first_token = true;
    p->line_ok = false;
    p->type_stored = false;
}

static int end_token(struct nm_mime_table *t, struct parser *p)
{
    int rc = 0;
    if (p->tok_len == 0 && !p->tok_too_long)
        return 0;
    if (p->at_first_token) {
        p->at_first_token = false;
        p->line_ok = !p->tok_too_long && is_valid_type(p->tok, p->tok_len);
        if (p->line_ok) {
            memcpy(p->type, p->tok, p->tok_len);
            p->type[p->tok_len] = '\0';
        }
    } else if (p->line_ok && !p->tok_too_long && is_valid_ext(p->tok, p->tok_len) &&
               t->n_from_file < FILE_ENTRIES_MAX) {
        /* Most lines of Debian's file name a type with no extension: store only used ones. */
        if (!p->type_stored) {
            rc = arena_add_type(t, p->type, &p->type_off);
            p->type_stored = rc == 0;
        }
        if (rc == 0)
            rc = add_entry(t, p->tok, p->tok_len, p->type_off, RANK_FILE);
        t->n_from_file++;
    }
    p->tok_len = 0;
    p->tok_too_long = false;
    return rc;
}

static int feed(struct nm_mime_table *t, struct parser *p, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            int rc = end_token(t, p);
            if (rc < 0)
                return rc;
            start_line(p);
            continue;
        }
        if (p->in_comment)
            continue;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            int rc = end_token(t, p);
            if (rc < 0)
                return rc;
            continue;
        }
        if (c == '#' && p->tok_len == 0 && !p->tok_too_long) {
            p->in_comment = true;
            continue;
        }
        if (p->tok_len < TYPE_MAX)
            p->tok[p->tok_len++] = c;
        else
            p->tok_too_long = true;
    }
    return 0;
}

/* Reads in fixed chunks so that no line, however long, needs a buffer of its size. A read
 * error keeps what was read so far, like a missing file keeps the defaults. */
static int load_file(struct nm_mime_table *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    struct parser p = {.tok_len = 0};
    start_line(&p);
    char buf[4096];
    int rc = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        rc = feed(t, &p, buf, n);
        if (rc < 0)
            goto out_close;
    }
    rc = end_token(t, &p);
out_close:
    fclose(f);
    return rc;
}

static int compare_entries(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->ext, y->ext);
    if (c)
        return c;
    if (x->rank != y->rank)
        return x->rank > y->rank ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq > y->seq ? -1 : 1;
    return 0;
}

/* After sorting, the winner for each extension comes first; the rest are dropped. */
static void sort_and_dedup(struct nm_mime_table *t)
{
    if (t->n_entries == 0)
        return;
    qsort(t->entries, t->n_entries, sizeof(t->entries[0]), compare_entries);
    size_t w = 1;
    for (size_t r = 1; r < t->n_entries; r++)
        if (strcmp(t->entries[r].ext, t->entries[w - 1].ext) != 0)
            t->entries[w++] = t->entries[r];
    t->n_entries = w;
}

int nm_mime_table_new(const char *path, struct nm_mime_table **out)
{
    struct nm_mime_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    int rc;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        size_t off;
        rc = arena_add_type(t, defaults[i].type, &off);
        if (rc < 0)
            goto fail_free_table;
        rc = add_entry(t, defaults[i].ext, strlen(defaults[i].ext), off,
                       defaults[i].pinned ? RANK_PINNED : RANK_DEFAULT);
        if (rc < 0)
            goto fail_free_table;
    }
    t->builtin_end = t->arena_len;
    if (path) {
        rc = load_file(t, path);
        if (rc < 0)
            goto fail_free_table;
    }
    sort_and_dedup(t);
    *out = t;
    return 0;

fail_free_table:
    nm_mime_table_free(t);
    return rc;
}

void nm_mime_table_free(struct nm_mime_table *t)
{
    if (!t)
        return;
    free(t->entries);
    free(t->arena);
    free(t);
}

static int compare_key(const void *key, const void *elem)
{
    return strcmp(key, ((const struct entry *)elem)->ext);
}

const char *nm_mime_lookup(const struct nm_mime_table *t, const char *name)
{
    if (!t || !name)
        return OCTET_STREAM;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    /* ".bashrc" is a name, not an extension; "file." has an empty one. */
    if (!dot || dot == base || dot[1] == '\0')
        return OCTET_STREAM;
    const char *ext = dot + 1;
    size_t n = strlen(ext);
    if (n > EXT_MAX)
        return OCTET_STREAM;
    char key[EXT_MAX + 1];
    for (size_t i = 0; i < n; i++)
        key[i] = lower(ext[i]);
    key[n] = '\0';
    const struct entry *e =
        bsearch(key, t->entries, t->n_entries, sizeof(t->entries[0]), compare_key);
    return e ? t->arena + e->type_off : OCTET_STREAM;
}

enum nm_mime_source nm_mime_source_of(const struct nm_mime_table *t, const char *type)
{
    if (!t || !type || !t->arena)
        return NM_MIME_SOURCE_NONE;
    /* Compared as integers: pointers into different objects have no order in C. */
    uintptr_t p = (uintptr_t)type, base = (uintptr_t)t->arena;
    if (p < base || p >= base + t->arena_len)
        return NM_MIME_SOURCE_NONE;
    return p - base < t->builtin_end ? NM_MIME_SOURCE_BUILTIN : NM_MIME_SOURCE_FILE;
}
