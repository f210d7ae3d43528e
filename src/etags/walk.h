/* The startup walk (nm_hashing_prehash): one idle-priority thread that gives every large file
 * of the served tree its hash, and counts the jobs it waits for in h->bg_outstanding. */
#ifndef NOTMOD_WALK_H
#define NOTMOD_WALK_H

#include "internal.h"

/* The walk stops waiting for e once its version settles, fails or is replaced: a no-op unless
 * e->walk_waits. Under the hashing lock. */
void nm__walk_release(struct nm_hashing *h, struct nm_memo_entry *e);

/* Joins the walker, if one started (h->stop is set and h->space broadcast first), and closes its
 * root. */
void nm__walk_stop(struct nm_hashing *h);

#endif
