/* /etc/mime.types reading (src/serve/mime.c) on arbitrary file contents. Every type a lookup
 * gives is "type/subtype" of tokens (RFC 9110 §8.3.1), with at most the "; charset=utf-8" the
 * table adds; and the file's lines are read as a plain model reads them: for each extension of
 * a line whose type is valid, the last such line gives its type (js and mjs excepted, pinned to
 * text/javascript), and a lookup of that extension in any case answers it, from the file. */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "notmod/token.h"
#include "serve/serve.h"

#define MAX_EXTS 64
#define TYPE_MAX 127
#define EXT_MAX 31

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

static bool all_tchar(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!nm_token_is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* "type/subtype", then nothing or "; charset=utf-8". */
static void check_content_type(const char *v)
{
    const char *slash = strchr(v, '/');
    nm_fuzz_check(slash != NULL);
    size_t sub = strcspn(slash + 1, ";");
    nm_fuzz_check(all_tchar(v, (size_t)(slash - v)) && all_tchar(slash + 1, sub));
    const char *rest = slash + 1 + sub;
    nm_fuzz_check(*rest == '\0' || strcmp(rest, "; charset=utf-8") == 0);
}

struct model {
    char ext[MAX_EXTS][EXT_MAX + 1];
    struct {
        const char *ptr;
        size_t len;
    } type[MAX_EXTS];
    size_t n;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void model_add(struct model *m, const char *ext, size_t n, const char *type, size_t tlen)
{
    char low[EXT_MAX + 1];
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)ext[i]);
    low[n] = '\0';
    size_t i = 0;
    while (i < m->n && strcmp(m->ext[i], low) != 0)
        i++;
    if (i == m->n) {
        if (m->n == MAX_EXTS)
            return;
        memcpy(m->ext[m->n++], low, n + 1);
    }
    m->type[i].ptr = type;
    m->type[i].len = tlen;
}

/* Reads the file line by line, tokens split at whitespace, a token starting with '#' ending
 * the line. */
static void model_read(struct model *m, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *type = NULL;
        size_t tlen = 0;
        bool first = true, ok = false;
        while (p < line_end) {
            while (p < line_end && is_space(*p))
                p++;
            if (p == line_end || *p == '#')
                break;
            const char *tok = p;
            while (p < line_end && !is_space(*p))
                p++;
            size_t n = (size_t)(p - tok);
            if (first) {
                first = false;
                const char *slash = memchr(tok, '/', n);
                ok = n <= TYPE_MAX && slash && all_tchar(tok, (size_t)(slash - tok)) &&
                     all_tchar(slash + 1, n - (size_t)(slash - tok) - 1);
                type = tok;
                tlen = n;
            } else if (ok && n <= EXT_MAX && all_tchar(tok, n) && !memchr(tok, '.', n)) {
                model_add(m, tok, n, type, tlen);
            }
        }
        p = nl ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/notmod-fuzz-mime-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        int fd = mkstemp(path);
        nm_fuzz_check(fd >= 0);
        close(fd);
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    nm_fuzz_check(f != NULL);
    nm_fuzz_check(fwrite(data, 1, size, f) == size);
    nm_fuzz_check(fclose(f) == 0);

    struct nm_mime_table *t = NULL;
    nm_fuzz_check(nm_mime_table_new(path, &t) == 0 && t != NULL);
    static struct model m;
    m.n = 0;
    model_read(&m, (const char *)data, size);
    char name[EXT_MAX + 8];
    for (size_t i = 0; i < m.n; i++) {
        /* The extension as written in the file in a mixed case: lookups ignore case. */
        snprintf(name, sizeof(name), "f.%s", m.ext[i]);
        if (i & 1)
            name[2] = (char)toupper((unsigned char)name[2]);
        const char *v = nm_mime_lookup(t, name);
        check_content_type(v);
        if (strcmp(m.ext[i], "js") == 0 || strcmp(m.ext[i], "mjs") == 0) {
            nm_fuzz_check(strncmp(v, "text/javascript", 15) == 0);
            nm_fuzz_check(nm_mime_source_of(t, v) == NM_MIME_SOURCE_BUILTIN);
            continue;
        }
        nm_fuzz_check(strncmp(v, m.type[i].ptr, m.type[i].len) == 0);
        nm_fuzz_check(v[m.type[i].len] == '\0' || v[m.type[i].len] == ';');
        nm_fuzz_check(nm_mime_source_of(t, v) == NM_MIME_SOURCE_FILE);
    }
    static const char *const names[] = {"index.html", "a.css", "x.tar.gz", "noext", ".bashrc",
                                        "a.",         "a.JS",  "b.woff2",  "c.svg", "d.json"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        check_content_type(nm_mime_lookup(t, names[i]));
    nm_mime_table_free(t);
    return 0;
}
