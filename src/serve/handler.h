/* The handler: decides the response to a request for the site's tree (RFC 9110: methods, target
 * resolution, conditional requests §13, ranges §14, status codes §15) without knowing the
 * protocol that carried it: the HTTP/1.1 connection calls it, and HTTP/2 will. */
#ifndef NOTMOD_HANDLER_H
#define NOTMOD_HANDLER_H

#include <stdbool.h>

#include "notmod/method.h"
#include "notmod/slice.h"
#include "response.h"
#include "site.h"

/* A request as the handler reads it. Each field holds every line received with its name (RFC
 * 9110 §5.3), n_lines 0 when absent. Slices borrow from the caller, until nm_handler_respond
 * returns. */
struct nm_handler_request {
    enum nm_method method;
    struct nm_slice target; /* origin-form, absolute-form or "*" (RFC 9112 §3.2) */
    struct nm_field if_match;
    struct nm_field if_none_match;
    struct nm_field if_modified_since;
    struct nm_field if_unmodified_since;
    struct nm_field if_range;
    struct nm_field range;
    struct nm_field accept_encoding; /* RFC 9110 §12.5.3: which precompressed variant, if any */
    /* Fetch §3.2.2: an OPTIONS with both is a CORS preflight. */
    struct nm_field origin;
    struct nm_field access_control_request_method;
};

/* The fields of a request the handler reads, however the framing carried them: their names in
 * lower case (as HTTP/2 sends them; HTTP/1.1 compares without case), the i-th stored in
 * nm_handler_request_field(req, i). */
#define NM_HANDLER_FIELDS 9
extern const struct nm_slice nm_handler_field_names[NM_HANDLER_FIELDS];

/* The field of req named nm_handler_field_names[i], i < NM_HANDLER_FIELDS. */
struct nm_field *nm_handler_request_field(struct nm_handler_request *req, size_t i);

/* Describes the response to `req` in *resp (from nm_response_init): GET and HEAD of a file (200,
 * 206, 304, 412, 416), of a directory (its index file, a listing, or 404), a redirect (301) from a
 * directory's path without its slash, OPTIONS (204), 405 for other known methods and 501 for
 * unknown ones, 400/414 for targets that do not make a path, 403/404/500/503 for files that
 * cannot be served. A file X with current sidecars (X.br, X.zst, X.gz of the codings in
 * cfg->precompressed, each not older than X or recording X's content hash; none while X's hash is
 * pending) has variants: Accept-Encoding picks one (nm_coding_negotiate; 406 when neither
 * identity nor any sidecar is acceptable), which is answered as its own representation (its own
 * ETag, Last-Modified, length, ranges and preconditions) with X's Content-Type and Cache-Control
 * and Content-Encoding; every response for such an X carries "Vary: Accept-Encoding" as its last
 * field. With site->fly and cfg->compress (content ETags), a compressible X of 256 bytes up to
 * cfg->compress_max_bytes also has the variants the cache made of its current version, for
 * codings without a current sidecar (a sidecar wins), answered the same way with the hash of the
 * coded bytes as their strong ETag; the coding the request prefers is asked of the cache when it
 * is not ready, and meanwhile identity or a sidecar is sent. Every response for such an X carries
 * the Vary field too, from the first one on (the last field but for the path rules' fields). The
 * config file's path rules (cfg->path_rules, matched against the normalized path) add their
 * header fields after all the others on every GET and HEAD response (200, 206, 304, errors),
 * turn variants and listings on or off, answer a path that names nothing with the first of their
 * try_files that names a file (as that file, with its validators), and replace the text of an
 * error (not 412 or 416) of a GET or HEAD with an error page (rule's, else cfg->error_pages):
 * the page's bytes and Content-Type with the error status, "Cache-Control: no-cache", no ETag,
 * no Last-Modified. A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) for
 * a path whose rules set Access-Control-Allow-Origin is a 204 with the rules' fields and no
 * Allow; any other OPTIONS is a 204 with Allow. Dot files are 404 unless cfg->allow_dotfiles. A
 * HEAD response has the fields of the GET and no content. Follows a moved root first
 * (nm_site_follow_root). With resp->use_block, a 200 or 304 of a version answered that way
 * before (same configuration serial, itself or as a variant; not racy, no Expires, Last-Modified
 * not clamped to Date, tag not pending) carries the fields that depend only on the version as
 * resp->block, the very bytes its first such response's fields render to, and only the rest as
 * fields. Returns 0, or -EMSGSIZE when the description does not fit (never for the
 * responses above); resp holds file references either way, until nm_response_cleanup. */
int nm_handler_respond(struct nm_site *site, const struct nm_handler_request *req,
                       struct nm_response *resp);

/* Describes an error response: `status`, a text/plain body "<status> <phrase>[: <why>]\n" (none
 * when head_only, as for a HEAD request, RFC 9110 §9.3.2). Returns 0. */
int nm_handler_respond_error(struct nm_response *resp, int status, const char *why, bool head_only);

#endif
