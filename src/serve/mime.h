/* Content-Type from a file name (RFC 9110 §8.3): /etc/mime.types where present, built-in
 * defaults otherwise. */
#ifndef NOTMOD_MIME_H
#define NOTMOD_MIME_H

struct nm_mime_table;

/* Builds a table from the built-in defaults (the web's formats: html css js mjs json map txt xml
 * svg png jpg gif webp avif ico woff woff2 ttf otf wasm pdf zip gz br zst mp4 webm mp3 ogg wav
 * csv md webmanifest and a few more), then the entries of `path` (mime.types format: "type ext
 * ext ...", '#' comments, spaces or tabs) override them, a later line winning over an earlier
 * one. Two defaults are never overridden: js and mjs stay text/javascript (RFC 9239), though
 * older mime.types files say application/javascript. Lines whose type is not "token/token",
 * extensions that hold a '.' or are over 31 bytes, and overlong tokens are skipped; junk never
 * fails the call. A missing or unreadable file is not an error: the defaults stand. path may be
 * NULL. Returns 0 and *out, or -ENOMEM. */
int nm_mime_table_new(const char *path, struct nm_mime_table **out);

/* No-op for NULL. */
void nm_mime_table_free(struct nm_mime_table *t);

/* The full Content-Type value for a file name, by the extension after the last '.' of its last
 * path segment, case-insensitively: "archive.tar.gz" is gz, "app.CSS" is "text/css;
 * charset=utf-8". Every text type, application/javascript, application/json and
 * application/manifest+json get "; charset=utf-8" (image/svg+xml and other XML do not: XML
 * declares its own encoding). A name without an extension, a dotfile name such as ".bashrc",
 * a name ending in '.', an unknown extension, or a NULL table or name get
 * "application/octet-stream". The string lives as long as the table. */
const char *nm_mime_lookup(const struct nm_mime_table *t, const char *name);

/* Where a Content-Type value came from. */
enum nm_mime_source {
    NM_MIME_SOURCE_NONE = 0, /* no entry: the application/octet-stream fallback, or not ours */
    NM_MIME_SOURCE_BUILTIN,  /* the built-in defaults, js and mjs included */
    NM_MIME_SOURCE_FILE,     /* a line of the mime.types file given to nm_mime_table_new */
};

/* Where `type` came from, for a value nm_mime_lookup returned from this same table: BUILTIN when
 * the extension's entry is a built-in default (the file did not override it, or it is pinned),
 * FILE when a mime.types line gave it. The value is recognised by its address, not its text: the
 * octet-stream fallback, a copy of a table string, a string of another table, and NULL (type or
 * table) are NONE. Lets a caller vouch only for the types it ships (X-Content-Type-Options).
 * Constant time; no allocation. */
enum nm_mime_source nm_mime_source_of(const struct nm_mime_table *t, const char *type);

#endif
