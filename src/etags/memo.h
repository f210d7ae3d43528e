/* The memo: one entry per file (dev, ino), holding the last version seen and its hash or job,
 * in a chained hash table with insertion order for eviction. Every function here runs under the
 * hashing lock, except where it says it takes the lock itself. */
#ifndef NOTMOD_MEMO_H
#define NOTMOD_MEMO_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* An empty table for h->opt.max_entries entries. Returns 0 or -ENOMEM. */
int nm__memo_init(struct nm_hashing *h);

/* Frees every entry and the table. */
void nm__memo_cleanup(struct nm_hashing *h);

/* The entry of (dev, ino), or NULL. */
struct nm_memo_entry *nm__memo_get(struct nm_hashing *h, uint64_t dev, uint64_t ino);

/* The entry of v's (dev, ino), created for v when there is none: when the memo is full the
 * oldest entry without a pending job goes first. NULL when every entry is pending or on
 * -ENOMEM. */
struct nm_memo_entry *nm__memo_put(struct nm_hashing *h, const struct nm_file_version *v);

/* Removes and frees e, releasing the walk's wait on it. */
void nm__memo_unlink(struct nm_hashing *h, struct nm_memo_entry *e);

/* True when e describes v: the same version, or v is the version before our attribute write. */
bool nm__memo_describes(const struct nm_memo_entry *e, const struct nm_file_version *v);

/* v's hash from the store, else from fd's attribute, and where it came from. Returns 0, or
 * -ENOENT (always when fd < 0). Takes no lock. */
int nm__persisted_find(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                       struct nm_hash128 *out, enum nm_hash_source *source);

/* Publishes a hash of v computed from fd and writes the attribute when the options say so and v
 * is not racy (or writes the store record instead when there is a store); the entry then follows
 * the ctime the write made, and that version goes to *now_v (which may be NULL; v when nothing was
 * written). With only_if_pending, a hash whose entry no longer waits for v is counted as discarded
 * and dropped. Takes the lock itself. */
void nm__memo_settle(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                     struct nm_hash128 hash, bool only_if_pending, struct nm_file_version *now_v);

#endif
