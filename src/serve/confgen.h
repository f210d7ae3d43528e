/* Config generations: the settings a reload (SIGHUP) swaps in while workers keep serving. Each
 * worker holds the generation it serves with and moves to the newest between requests; a
 * generation is freed when the last holder lets it go. */
#ifndef NOTMOD_CONFGEN_H
#define NOTMOD_CONFGEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "listen.h"

struct nm_confgen {
    atomic_uint refs;
    uint64_t seq;          /* 1 for the first generation, then one more per reload */
    struct nm_config *cfg; /* read-only while anyone holds the generation */
    bool owns_cfg;         /* cleaned up and freed with the generation */
    /* The listening sockets of this generation (each worker takes its own from them): a reload
     * moves the sockets of the addresses it keeps into its own set, so what is left here when
     * the generation is freed (no worker watches it any more) is what the reload removed, and
     * is closed then; the set itself is freed with it when owned. */
    struct nm_listeners *listeners;
    bool owns_listeners;
};

/* The current generation of a server: the main thread publishes, the workers take. */
struct nm_confgen_slot {
    pthread_mutex_t lock;
    struct nm_confgen *current; /* the slot holds a reference */
    atomic_uint_fast64_t seq;   /* current->seq, readable without the lock */
};

/* Wraps cfg in a generation with one reference (the caller's), with no listeners. With owns_cfg,
 * the last release runs nm_config_cleanup and free on cfg, and nm_listen_cleanup on the listeners
 * the caller set (and free with owns_listeners). Returns NULL without memory (cfg untouched).
 */
struct nm_confgen *nm_confgen_new(struct nm_config *cfg, bool owns_cfg);

struct nm_confgen *nm_confgen_acquire(struct nm_confgen *g);

/* Drops a reference; the last one frees the generation (and cfg when owned). NULL is a no-op. */
void nm_confgen_release(struct nm_confgen *g);

/* Starts the slot with g as generation 1, taking the caller's reference to it. */
void nm_confgen_slot_init(struct nm_confgen_slot *slot, struct nm_confgen *g);

/* Releases the slot's reference to its current generation. */
void nm_confgen_slot_cleanup(struct nm_confgen_slot *slot);

/* Publishes g as the next generation (taking the caller's reference, setting g->seq) and drops
 * the slot's reference to the previous one, which lives on in those that hold it. */
void nm_confgen_slot_publish(struct nm_confgen_slot *slot, struct nm_confgen *g);

/* Whether a generation newer than `seq` has been published (one atomic load, no lock). */
bool nm_confgen_slot_is_newer(struct nm_confgen_slot *slot, uint64_t seq);

/* A new reference to the current generation. */
struct nm_confgen *nm_confgen_slot_take(struct nm_confgen_slot *slot);

#endif
