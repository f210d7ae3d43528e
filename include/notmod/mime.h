/* Content-Type from a file name: /etc/mime.types where present, built-in defaults otherwise. */
#ifndef NOTMOD_MIME_H
#define NOTMOD_MIME_H

struct nm_mime_table;

/* Builds a table from the built-in defaults, then the entries of `path` (mime.types format:
 * "type ext ext ...", '#' comments) override them. A missing or unreadable file is not an
 * error: the defaults stand. path may be NULL. Returns 0 and *out, or -ENOMEM. */
int nm_mime_table_new(const char *path, struct nm_mime_table **out);

/* No-op for NULL. */
void nm_mime_table_free(struct nm_mime_table *t);

/* The full Content-Type value for a file name, by its last extension, case-insensitively:
 * "text/css; charset=utf-8". Text types, JavaScript and JSON get "; charset=utf-8". Unknown
 * extensions get "application/octet-stream". The string lives as long as the table. */
const char *nm_mime_lookup(const struct nm_mime_table *t, const char *name);

#endif
