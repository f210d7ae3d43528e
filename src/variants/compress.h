/* notmod compress's work over a tree: sidecars x.ext.br, x.ext.zst, x.ext.gz beside each
 * compressible file, written atomically (temporary file, fsync, record, rename) and only when
 * they save enough; a sidecar whose record matches its source is left alone. */
#ifndef NOTMOD_VARIANTS_COMPRESS_H
#define NOTMOD_VARIANTS_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "notmod/coding.h"

#define NM_VARIANTS_MIN_SIZE_DEFAULT 256
#define NM_VARIANTS_MIN_SAVING_DEFAULT 5
/* Sources larger than this are read into memory by no one: they are skipped for size. */
#define NM_VARIANTS_MAX_SOURCE_BYTES ((uint64_t)1 << 30)

/* What one run saw. bytes_before is the size of every source considered for compression (type
 * and size fit); bytes_after what is served for them with the best sidecar kept or written
 * (the source's size where none is). */
struct nm_variants_compress_counts {
    uint64_t files_seen;     /* regular files, sidecars excepted */
    uint64_t written;        /* sidecars written */
    uint64_t up_to_date;     /* sidecars already current, left alone */
    uint64_t skipped_type;   /* files of a type not worth compressing */
    uint64_t skipped_size;   /* files under min_size_bytes (or over the maximum) */
    uint64_t skipped_saving; /* sidecars not written: they would not save min_saving_pct */
    uint64_t removed;        /* stale sidecars removed because they no longer save enough */
    uint64_t failed;         /* files that failed (reported through on_error) */
    uint64_t bytes_before;
    uint64_t bytes_after;
};

struct nm_variants_compress_options {
    unsigned codings;        /* NM_CODING_BIT of each coding to write; identity is ignored */
    int level;               /* NM_VARIANTS_LEVEL_DEFAULT, or clamped per coding (codec.h) */
    unsigned min_saving_pct; /* a sidecar must be at most (100 - this)% of the source */
    uint64_t min_size_bytes; /* smaller sources get no sidecar */
    /* Called for each failed file or directory with its path and the negative errno; may be
     * NULL. The walk goes on. */
    void (*on_error)(void *arg, const char *path, int err);
    /* Called after each regular file with its path and the counts so far; may be NULL. */
    void (*on_file)(void *arg, const char *path, const struct nm_variants_compress_counts *c);
    void *arg;
};

/* Whether a file name's extension marks a type worth compressing: text (html htm css txt csv md
 * xhtml ics vtt), JavaScript (js mjs cjs map), JSON (json jsonld webmanifest), XML and SVG (xml
 * svg rss atom xsl), wasm, and uncompressed fonts (ttf otf eot); case-insensitive. woff and woff2
 * are compressed already. */
bool nm_variants_compress_is_compressible_name(const char *name);

/* Whether a name is a sidecar's: it ends in ".br", ".zst" or ".gz". */
bool nm_variants_compress_is_sidecar_name(const char *name);

/* Walks the tree under path (a directory, or one regular file) without following symlinks, and
 * writes, keeps or removes the sidecars of every compressible regular file, adding to *counts.
 * Hidden entries (names starting with '.') and sidecars are skipped. A sidecar is written as
 * ".<sidecar>.tmp.<pid>" in the same directory, fsync'd, given its record (a file system without
 * user attributes leaves it without one), then renamed over the sidecar: no reader sees a partial
 * one, and no temporary file outlives a call that returns. A sidecar already current for its
 * source (nm_variants_sidecar_is_current) is left alone; one that is not, and would no longer save
 * min_saving_pct (or whose source is now under min_size_bytes), is removed. Returns 0 when every
 * file went through, or the negative errno of the first failure (the walk goes on past it). */
int nm_variants_compress_tree(const char *path, const struct nm_variants_compress_options *o,
                              struct nm_variants_compress_counts *counts);

#endif
