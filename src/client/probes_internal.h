/* What the probe files share inside src/client: findings, field access and the coding probes the
 * table names. Not for use outside the probes. */
#ifndef NOTMOD_CLIENT_PROBES_INTERNAL_H
#define NOTMOD_CLIENT_PROBES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "probes.h"

/* A header line for a probe's request. */
#define LINE(name, value) ((struct nm_http1_field){NM_SLICE_LIT(name), nm_slice_from_cstr(value)})
/* A finding at `level` resting on `section`, where the probe's own row does not say it. */
__attribute__((format(printf, 5, 6))) void nm__probe_add(struct nm_probe_report *r,
                                                         const struct nm_probe *p,
                                                         enum nm_probe_level level,
                                                         const char *section, const char *fmt, ...);

/* The probe's requirement is met, or missed (a finding at its row's level). */
__attribute__((format(printf, 3, 4))) void
nm__probe_pass(struct nm_probe_report *r, const struct nm_probe *p, const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void
nm__probe_miss(struct nm_probe_report *r, const struct nm_probe *p, const char *fmt, ...);

/* All lines of field `name` of answer a (lines must hold NM_CACHECTL_MAX_LINES). */
struct nm_field nm__probe_field(const struct nm_probe_answer *a, const char *name,
                                struct nm_slice *lines);

/* The lines of a field joined with ", " as a C string in out ("" when absent); true when
 * present. */
bool nm__probe_value_of(const struct nm_probe_answer *a, const char *name, char *out, size_t cap);

/* The Accept-Encoding probes (probes_coding.c). */
void nm__probe_coding_etag(const struct nm_probe *p, struct nm_probe_ctx *c);
void nm__probe_coding_vary(const struct nm_probe *p, struct nm_probe_ctx *c);
void nm__probe_coding_304(const struct nm_probe *p, struct nm_probe_ctx *c);
void nm__probe_coding_304_vary(const struct nm_probe *p, struct nm_probe_ctx *c);
void nm__probe_coding_if_range(const struct nm_probe *p, struct nm_probe_ctx *c);
void nm__probe_coding_body(const struct nm_probe *p, struct nm_probe_ctx *c);

#endif
