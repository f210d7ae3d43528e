/* A worker's pool of connection states: the HTTP/1.1 machine, its buffers and the end of the file
 * part being sent, which a connection holds only while it has work. An idle keep-alive connection
 * holds none; it takes one when bytes arrive and gives it back once drained. The spares kept
 * follow the recent peak, so memory goes back after a burst. */
#ifndef NOTMOD_CONNPOOL_H
#define NOTMOD_CONNPOOL_H

#include <stdbool.h>

#include "conn.h"
#include "send.h"
#include "site.h"

/* One connection's working state. */
struct nm_connpool_state {
    struct nm_conn conn;
    struct nm_send_tail tail;
    struct nm_connpool_state *next; /* among the spares */
};

struct nm_connpool {
    struct nm_site *site;
    struct nm_connpool_state *spare;
    unsigned n_spare;
    unsigned n_used;
    unsigned peak;      /* most in use at once since the last trim */
    unsigned max_spare; /* spares kept at most, whatever the peak */
    unsigned max_used;  /* states in use at once at most; 0: as many as memory allows */
};

/* An empty pool for connections of site (which must outlive it); allocates nothing. */
void nm_connpool_init(struct nm_connpool *p, struct nm_site *site, unsigned max_spare,
                      unsigned max_used);

/* Frees the spares; every state taken must have been given back. */
void nm_connpool_cleanup(struct nm_connpool *p);

/* A state for a connection from peer: a spare when there is one (its buffers kept), else a new
 * one. Its machine is drained, counts requests from 0, and its tail is empty. Returns 0, or
 * -ENOMEM at max_used or when memory runs out (nothing changes then). */
int nm_connpool_take(struct nm_connpool *p, const struct nm_conn_peer *peer,
                     struct nm_connpool_state **out);

/* Gives a state back. A drained one keeps its buffers as a spare while the spares and the states
 * in use stay within the recent peak (and max_spare); any other (its connection closed with work
 * left) first drops what it held, file references included. */
void nm_connpool_give(struct nm_connpool *p, struct nm_connpool_state *s);

/* Frees the spares the peak since the last trim did not need, then starts a new peak: called
 * now and then (a worker's tick), it returns a burst's memory once the burst is over. */
void nm_connpool_trim(struct nm_connpool *p);

#endif
