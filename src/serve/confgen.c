/* Config generations: reference counts and the slot a reload publishes into. */
#include "confgen.h"

#include <stdlib.h>

struct nm_confgen *nm_confgen_new(struct nm_config *cfg, bool owns_cfg)
{
    struct nm_confgen *g = malloc(sizeof(*g));
    if (!g)
        return NULL;
    atomic_init(&g->refs, 1);
    g->seq = 0;
    g->cfg = cfg;
    g->owns_cfg = owns_cfg;
    g->listeners = NULL;
    g->owns_listeners = false;
    return g;
}

struct nm_confgen *nm_confgen_acquire(struct nm_confgen *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

void nm_confgen_release(struct nm_confgen *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    if (g->listeners)
        nm_listen_cleanup(g->listeners);
    if (g->owns_listeners)
        free(g->listeners);
    if (g->owns_cfg) {
        nm_config_cleanup(g->cfg);
        free(g->cfg);
    }
    free(g);
}

void nm_confgen_slot_init(struct nm_confgen_slot *slot, struct nm_confgen *g)
{
    pthread_mutex_init(&slot->lock, NULL);
    g->seq = 1;
    slot->current = g;
    atomic_init(&slot->seq, 1);
}

void nm_confgen_slot_cleanup(struct nm_confgen_slot *slot)
{
    nm_confgen_release(slot->current);
    slot->current = NULL;
    pthread_mutex_destroy(&slot->lock);
}

void nm_confgen_slot_publish(struct nm_confgen_slot *slot, struct nm_confgen *g)
{
    pthread_mutex_lock(&slot->lock);
    struct nm_confgen *old = slot->current;
    g->seq = old->seq + 1;
    slot->current = g;
    atomic_store(&slot->seq, g->seq);
    pthread_mutex_unlock(&slot->lock);
    nm_confgen_release(old);
}

bool nm_confgen_slot_is_newer(struct nm_confgen_slot *slot, uint64_t seq)
{
    return atomic_load(&slot->seq) != seq;
}

struct nm_confgen *nm_confgen_slot_take(struct nm_confgen_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    struct nm_confgen *g = nm_confgen_acquire(slot->current);
    pthread_mutex_unlock(&slot->lock);
    return g;
}
