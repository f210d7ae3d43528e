/* The probes of notmod check: how a server evaluates conditional requests (RFC 9110 §13), shapes
 * its 304s (§15.4.5), answers HEAD (§9.3.2) and ranges (§14), keeps its content codings apart
 * (§8.4, §8.8.3, §12.5.5), and whether replicas agree on validators (§8.8). Each probe is a row of
 * nm_probes[]: its id, RFC section and level, and the function that builds its request from what
 * the first GET showed and grades the answer. No I/O: the requests go out through the caller's
 * callback (notmod check's over libcurl). */
#ifndef NOTMOD_PROBES_H
#define NOTMOD_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/date.h"
#include "notmod/http1.h"

#define NM_PROBE_MAX_FINDINGS 48
#define NM_PROBE_NOMATCH_TAG "\"notmod-check-no-such-tag\"" /* a tag no server sends */
#define NM_PROBE_BODY_HEAD 16 /* content bytes kept from the start of an answer */
#define NM_PROBE_BODY_TAIL 8  /* and from its end: a gzip member's CRC32 and ISIZE */

enum nm_probe_level {
    NM_PROBE_PASS,
    NM_PROBE_WARN, /* a SHOULD the server misses, or a missed opportunity */
    NM_PROBE_FAIL, /* a MUST the server breaks, or what makes clients keep wrong content */
};

struct nm_probe_finding {
    const char *check; /* the probe's id: "inm.match" */
    enum nm_probe_level level;
    const char *rfc;     /* "9110" */
    const char *section; /* "13.1.2" */
    char text[400];
};

/* What Accept-Encoding: gzip got, as received (not decoded). */
struct nm_probe_variant {
    int status;      /* 0: not asked, or the exchange failed */
    char coding[64]; /* its Content-Encoding lines, "" for identity */
    char etag[256];  /* its ETag lines, "" when absent */
    uint64_t length; /* of its content as sent */
    char hash[NM_HASH_HEX_LEN + 1];
};

/* One target (the URL, or the URL through one backend): what its first GET showed, which the
 * probes build on and the replica comparison reads, and the findings. */
struct nm_probe_report {
    const char *url;
    const char *backend; /* "HOST:PORT" to connect to; NULL: the URL's own host */
    bool reachable;      /* the first GET got a response */
    bool got_200;
    uint64_t length; /* of the first GET's content */
    char hash[NM_HASH_HEX_LEN + 1];
    char etag[256];         /* the ETag lines as received, "" when absent */
    char last_modified[64]; /* the Last-Modified lines as received, "" when absent */
    char coding[64];        /* the Content-Encoding lines as received, "" for identity */
    /* What nm_probe_learn read from the first GET. */
    int64_t now;
    int date_rc; /* nm_cachectl_date of Date: 0, -ENOENT or -EINVAL */
    int64_t date;
    int etag_rc;            /* 0 one valid entity-tag, -ENOENT absent, -EINVAL otherwise */
    bool strong;            /* with etag_rc == 0 */
    char etag_flipped[300]; /* with etag_rc == 0: W/ added to a strong tag, taken off a weak one */
    int lm_rc;              /* nm_cachectl_date of Last-Modified */
    int64_t lm;
    char older[NM_DATE_LEN + 1];  /* a day before Last-Modified, "" when there is no such date */
    bool ranges;                  /* Range: bytes=0-0 got a 206 (set by the range probe) */
    struct nm_probe_variant gzip; /* set by the coding probes, for the replica comparison */
    struct nm_probe_finding findings[NM_PROBE_MAX_FINDINGS];
    size_t n; /* findings past the cap are dropped */
};

/* The first and last bytes of an answer's content, enough to tell a coding's framing. */
struct nm_probe_body {
    unsigned char head[NM_PROBE_BODY_HEAD];
    size_t head_len;
    unsigned char tail[NM_PROBE_BODY_TAIL];
    size_t tail_len;
};

/* Keeps in b the first and last bytes of content that arrives in pieces, in order. */
void nm_probe_body_feed(struct nm_probe_body *b, const void *data, size_t len);

/* An answer as the grading sees it; the pointers borrow from the exchange. */
struct nm_probe_answer {
    int err;           /* 0, or the exchange's negative errno */
    const char *error; /* with err: what went wrong, for people */
    int status;
    const char *reason;
    const struct nm_http1_field *fields;
    size_t n_fields;
    uint64_t body_bytes;       /* content received; of a raw exchange, the bytes after the head */
    struct nm_probe_body body; /* of a VIA_PERFORM answer (all zero otherwise) */
    /* Of a VIA_PERFORM answer, the hash of its content as sent; of a VIA_DECODED one, of its
     * decoded content; "" otherwise. */
    char hash[NM_HASH_HEX_LEN + 1];
};

/* Which exchange a probe grades. */
enum nm_probe_via {
    NM_PROBE_VIA_GET,     /* the first GET, whatever came of it */
    NM_PROBE_VIA_200,     /* the first GET's 200 */
    NM_PROBE_VIA_PERFORM, /* a request of its own, on a fresh connection */
    NM_PROBE_VIA_RAW,     /* the bytes of a 304 as sent (nm_client_raw); the runner sends one raw
                             request a target and gives its answer to every VIA_RAW probe */
    NM_PROBE_VIA_DECODED, /* as VIA_PERFORM, but the Accept-Encoding line is the client's own:
                             the content arrives decoded. A content coding that does not decode
                             fails the exchange with -EBADMSG, keeping status and fields */
};

/* What a probe works with. */
struct nm_probe_ctx {
    struct nm_probe_report *r;          /* read by nm_probe_learn; findings go here */
    const struct nm_probe_answer *base; /* the first GET's answer */
    /* Sends a request (method "GET" or "HEAD", extra field lines fields[0..n)) the way `via`
     * says and writes the answer, which lives until the next call. */
    void (*send)(void *io, enum nm_probe_via via, const char *method,
                 const struct nm_http1_field *fields, size_t n, struct nm_probe_answer *out);
    void *io;
    const char *decodes; /* the codings VIA_DECODED decodes ("gzip, br"); NULL: none */
};

/* One probe: a row of the table. */
struct nm_probe {
    const char *id;
    const char *rfc;
    const char *section;       /* the requirement its findings rest on; a finding may name a
                                  nearer one */
    enum nm_probe_level level; /* of a miss: FAIL for a MUST, WARN for a SHOULD */
    enum nm_probe_via via;
    int want;        /* conditional requests: the status that passes */
    const char *why; /* conditional requests: what any other status means */
    /* Sends its request when it applies to the target (through c->send) and adds its findings
     * to c->r; a probe that does not apply adds none. */
    void (*run)(const struct nm_probe *p, struct nm_probe_ctx *c);
};

/* Every probe, in the order its findings are reported. */
extern const struct nm_probe nm_probes[];
extern const size_t nm_probes_count;

/* The probe with this id, or NULL. */
const struct nm_probe *nm_probe_find(const char *id);

/* Reads what the probes build on from the first GET's answer (base, received at `now`): whether
 * it was reached and answered 200, its length, the Date, ETag, Last-Modified and
 * Content-Encoding. Leaves url,
 * backend, hash and the findings alone. */
void nm_probe_learn(struct nm_probe_report *r, const struct nm_probe_answer *base, int64_t now);

/* Runs probe p on a target nm_probe_learn has read. Only VIA_GET probes run when the first GET
 * did not answer 200. */
void nm_probe_run(const struct nm_probe *p, struct nm_probe_ctx *c);

/* Compares the reports of one URL fetched through each backend (replicas.etag, .last-modified,
 * .content, and .coding: the coding, ETag, length and hash of what Accept-Encoding: gzip got,
 * among the reports whose gzip.status is 200); a report whose backend is NULL is the URL's own
 * host, named so in the findings. The findings go to out. Returns false when fewer than two
 * answered 200 (a FAIL), true when the comparison was made. */
bool nm_probe_compare_replicas(const struct nm_probe_report *reports, size_t n,
                               struct nm_probe_report *out);

/* The report whose ETag the others are asked to revalidate: the first that answered 200 with an
 * ETag. Returns its index, or -1 when there is none. */
int nm_probe_replica_reference(const struct nm_probe_report *reports, size_t n);

/* Grades replicas.revalidate: status[i] is what reports[i] answered to If-None-Match with the
 * reference's ETag (0: no answer), for each reachable report but the reference. */
void nm_probe_grade_revalidation(const struct nm_probe_report *reports, size_t n, size_t ref,
                                 const int *status, struct nm_probe_report *out);

#endif
