/* Reading a directory: its entry names, sorted, with the type readdir reports, so that every
 * listing and walk sees a directory in the same order; and making the private directories the
 * on-disk caches live in. */
#ifndef NOTMOD_DIR_H
#define NOTMOD_DIR_H

#include <stddef.h>

struct nm_dir_entry {
    const char *name;   /* NUL-terminated; lives until nm_dir_free */
    unsigned char type; /* d_type: DT_REG, DT_DIR, DT_LNK, ..., or DT_UNKNOWN (then stat it) */
};

struct nm_dir {
    struct nm_dir_entry *entries; /* sorted by strcmp of the names */
    size_t count;
    char *names; /* storage of every name */
};

/* Reads the entries of the directory dir_fd names, except "." and "..", sorted by name (byte
 * order). dir_fd may be an O_PATH descriptor; it is not moved, closed or read from (the
 * directory is opened again for reading), so the caller keeps using it, with fstatat say.
 * Returns the number of entries, -EMSGSIZE when the directory holds more than max_entries (INT_MAX
 * at most), -ENOMEM, or the negative errno of opening or reading the directory; *out is written
 * only on success and is released with nm_dir_free. */
int nm_dir_read(int dir_fd, size_t max_entries, struct nm_dir *out);

/* Frees what nm_dir_read gave; *d is empty afterwards. A zeroed nm_dir is a no-op. */
void nm_dir_free(struct nm_dir *d);

/* Makes path a directory, creating it and its missing parents with mode 0700, and checks that
 * this process may write in it. Returns 0, -ENOTDIR when path names something else,
 * -ENAMETOOLONG, or the negative errno of mkdir, stat or access (-EACCES, -EROFS ...). */
int nm_dir_make_private(const char *path);

#endif
