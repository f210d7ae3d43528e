/* The on-disk private cache of notmod get (RFC 9111 §3): per URL, a metadata file (status, the
 * request and response times, the response header lines, the request header lines the response
 * varies on, the body's length and hash) and a body file. Every write goes to a temporary file
 * in the cache directory that is renamed into place, so a failed or interrupted transfer never
 * damages an entry. */
#ifndef NOTMOD_STORE_H
#define NOTMOD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/cachectl.h"

#define NM_STORE_MAX_META_BYTES (1u << 20) /* cap on one metadata file */
#define NM_STORE_MAX_HEADERS 256           /* response header lines kept per entry */
#define NM_STORE_MAX_REQUEST 32            /* request header lines kept for Vary */
#define NM_STORE_HASH_LEN 32               /* hex digits of an XXH3-128 hash */
#define NM_STORE_NAME_MAX 64               /* longest file name inside the directory */

struct nm_store {
    char *dir; /* heap copy of the directory path */
};

/* Uses `dir` as the cache directory, creating it and its parents (mode 0700) when missing.
 * Returns 0 or a negative errno (-ENOTDIR, -EACCES, ...). */
int nm_store_open(struct nm_store *s, const char *dir);
void nm_store_cleanup(struct nm_store *s);

/* One stored response. A loaded entry's slices borrow from `text`; an entry being built for
 * nm_store_commit or nm_store_save may borrow from anywhere that outlives the call. */
struct nm_store_entry {
    struct nm_slice url;
    int status;
    int64_t request_time;  /* seconds since the epoch */
    int64_t response_time; /* seconds since the epoch */
    uint64_t body_len;
    char body_hash[NM_STORE_HASH_LEN + 1];
    char body_name[NM_STORE_NAME_MAX];
    struct nm_http1_field headers[NM_STORE_MAX_HEADERS];
    size_t n_headers;
    struct nm_http1_field request[NM_STORE_MAX_REQUEST];
    size_t n_request;
    struct nm_buf text;
};

/* An empty entry; _cleanup frees what a load allocated, and the entry can be reused. */
void nm_store_entry_init(struct nm_store_entry *e);
void nm_store_entry_cleanup(struct nm_store_entry *e);

/* Loads the entry for `url` into e. Returns 0, -ENOENT when there is none, -EBADMSG when it is
 * corrupt (unreadable metadata, metadata of another URL, a body missing or of the wrong size),
 * or another negative errno. On failure e is left empty. */
int nm_store_load(struct nm_store *s, const char *url, struct nm_store_entry *e);

/* Opens the entry's body read-only and returns the descriptor, or a negative errno (-EBADMSG
 * when its size is not body_len). */
int nm_store_body_open(const struct nm_store *s, const struct nm_store_entry *e);

/* Hashes everything readable from fd (from its current offset) into a NUL-terminated hex string;
 * writes the byte count to *len when len is not NULL. Returns 0 or a negative errno. */
int nm_store_hash_fd(int fd, char hash[NM_STORE_HASH_LEN + 1], uint64_t *len);

/* A temporary file in the cache directory that receives a body as it arrives. */
struct nm_store_spool {
    int fd;
    uint64_t len;
    char name[NM_STORE_NAME_MAX];
    char hash[NM_STORE_HASH_LEN + 1]; /* set by _finish */
    void *state;                      /* running hash */
};

/* Creates the spool file. Returns 0 or a negative errno. */
int nm_store_spool_begin(struct nm_store *s, struct nm_store_spool *sp);

/* Appends bytes. Returns 0 or a negative errno. */
int nm_store_spool_write(struct nm_store_spool *sp, const void *data, size_t len);

/* Flushes the spool to disk and fixes its hash and length. Returns 0 or a negative errno. */
int nm_store_spool_finish(struct nm_store_spool *sp);

/* Opens the spooled bytes read-only from the start. Returns a descriptor or a negative errno. */
int nm_store_spool_open(const struct nm_store *s, const struct nm_store_spool *sp);

/* Closes and deletes the spool file if it still exists; safe to call twice. */
void nm_store_spool_discard(struct nm_store *s, struct nm_store_spool *sp);

/* Makes a finished spool the body of a new entry for e->url: the spool becomes a new body file,
 * e's body fields are set from it, the metadata is written to a temporary file and renamed over
 * the old one, and then the previous entry's body file (if any) is deleted, with what runs killed
 * mid-write left behind untouched for 10 minutes: temporary files, and bodies of this URL that
 * no metadata names. Returns 0 with the spool consumed, or a negative errno with the previous entry
 * intact and the spool left as it was. Header values with CR, LF or NUL are refused (-EINVAL). */
int nm_store_commit(struct nm_store *s, struct nm_store_entry *e, struct nm_store_spool *sp);

/* Rewrites e's metadata (freshening after a 304), atomically; the body file is kept. */
int nm_store_save(struct nm_store *s, const struct nm_store_entry *e);

/* The metadata file's text, for nm_store_load and nm_store_save and their tests: parses e->text
 * (filled by the caller) into e's other fields, its slices borrowing from e->text. Returns 0, or
 * -EBADMSG for text that is not a whole, well-formed metadata file. */
int nm_store_meta_parse(struct nm_store_entry *e);

/* Appends e's metadata text to b; what it writes parses back to an entry equal to e. Returns 0,
 * -EINVAL for an entry that cannot be stored (an empty URL, a body name that is not a file name
 * of the store, a body hash that is not NM_STORE_HASH_LEN lowercase hex digits, a status outside
 * 100..999, a time outside 0..10^18-1, a header name that is not a token, a value with CR, LF or
 * NUL), or -EMSGSIZE / -ENOMEM from b. */
int nm_store_meta_render(const struct nm_store_entry *e, struct nm_buf *b);

/* Deletes the entry for url and its body. Returns 0, -ENOENT, or a negative errno. */
int nm_store_remove(struct nm_store *s, const char *url);

/* Calls fn for each entry in the directory: with err == 0 and the loaded entry, or with a
 * negative errno and e == NULL for one that cannot be loaded (`name` is its metadata file).
 * Stops early and returns fn's value when fn returns non-zero; returns 0 otherwise. */
int nm_store_foreach(struct nm_store *s,
                     int (*fn)(void *ctx, const struct nm_store_entry *e, int err,
                               const char *name),
                     void *ctx);

/* Deletes every entry, body, and left-over temporary file of the cache. Writes the number of
 * entries removed to *removed. Returns 0 or a negative errno. */
int nm_store_clear(struct nm_store *s, size_t *removed);

#endif
