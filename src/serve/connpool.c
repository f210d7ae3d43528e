/* A worker's pool of connection states (connpool.h). */
#include "connpool.h"

#include <errno.h>
#include <stdlib.h>

void nm_connpool_init(struct nm_connpool *p, struct nm_site *site, unsigned max_spare,
                      unsigned max_used)
{
    *p = (struct nm_connpool){.site = site, .max_spare = max_spare, .max_used = max_used};
}

static void free_state(struct nm_connpool_state *s)
{
    nm_conn_cleanup(&s->conn);
    free(s);
}

void nm_connpool_cleanup(struct nm_connpool *p)
{
    while (p->spare) {
        struct nm_connpool_state *s = p->spare;
        p->spare = s->next;
        free_state(s);
    }
    p->n_spare = 0;
}

int nm_connpool_take(struct nm_connpool *p, const struct nm_conn_peer *peer,
                     struct nm_connpool_state **out)
{
    if (p->max_used && p->n_used >= p->max_used)
        return -ENOMEM;
    struct nm_connpool_state *s = p->spare;
    if (s) {
        p->spare = s->next;
        p->n_spare--;
    } else {
        s = malloc(sizeof(*s));
        if (!s)
            return -ENOMEM;
        nm_conn_init(&s->conn, p->site, NULL);
    }
    nm_conn_reuse(&s->conn, peer);
    s->tail.len = 0;
    s->next = NULL;
    if (++p->n_used > p->peak)
        p->peak = p->n_used;
    *out = s;
    return 0;
}

void nm_connpool_give(struct nm_connpool *p, struct nm_connpool_state *s)
{
    p->n_used--;
    if (!nm_conn_is_drained(&s->conn)) {
        /* Queued file references and partial input go; the empty machine stays usable. */
        nm_conn_cleanup(&s->conn);
        nm_conn_init(&s->conn, p->site, NULL);
    }
    if (p->n_spare >= p->max_spare || p->n_used + p->n_spare >= p->peak) {
        free_state(s);
        return;
    }
    s->next = p->spare;
    p->spare = s;
    p->n_spare++;
}

void nm_connpool_trim(struct nm_connpool *p)
{
    while (p->spare && p->n_used + p->n_spare > p->peak) {
        struct nm_connpool_state *s = p->spare;
        p->spare = s->next;
        p->n_spare--;
        free_state(s);
    }
    p->peak = p->n_used;
}
