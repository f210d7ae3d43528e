/* The ETag store file: a header record, then n_sets sets of NM_ETAG_STORE_WAYS records. A key's
 * set is fixed by (root_dev, root_ino, dev, ino); a record is one pwrite inside one 4 KiB page,
 * and a checksum tells a whole record from a torn one. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD NM_ETAG_STORE_RECORD_BYTES
#define SUM_AT (RECORD - 8)
#define MAGIC "NMET"
#define HEADER_MAGIC "notmod-etag-store 1\n"
#define N_LOCKS 64

_Static_assert(4096 % RECORD == 0, "a record never straddles a page");

struct nm_etag_store {
    int fd;
    size_t n_sets;
    pthread_mutex_t locks[N_LOCKS]; /* writers of set i hold locks[i % N_LOCKS] */
};

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t checksum(const uint8_t *p)
{
    return nm_hash_bytes(p, SUM_AT).hi;
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int nm_etag_store_encode(const struct nm_etag_store_record *r, uint8_t out[RECORD])
{
    const struct nm_etag_store_key *k = &r->key;
    if (k->mtime_ns < 0 || k->ctime_ns < 0 || r->stored_ns < 0)
        return -EINVAL;
    memset(out, 0, RECORD);
    memcpy(out, MAGIC, 4);
    out[4] = 1; /* the format's version, a little-endian u32 */
    const uint64_t f[] = {k->root_dev,
                          k->root_ino,
                          k->dev,
                          k->ino,
                          k->size,
                          (uint64_t)k->mtime_ns,
                          (uint64_t)k->ctime_ns,
                          r->hash.hi,
                          r->hash.lo,
                          (uint64_t)r->stored_ns};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        put64(out + 8 + 8 * i, f[i]);
    put64(out + SUM_AT, checksum(out));
    return 0;
}

int nm_etag_store_decode(const uint8_t *p, size_t len, struct nm_etag_store_record *out)
{
    if (len != RECORD || memcmp(p, MAGIC, 4) != 0 || p[4] != 1 || !is_zero(p + 5, 3) ||
        !is_zero(p + 88, SUM_AT - 88) || get64(p + SUM_AT) != checksum(p))
        return -EBADMSG;
    struct nm_etag_store_record r;
    uint64_t f[10];
    for (size_t i = 0; i < 10; i++)
        f[i] = get64(p + 8 + 8 * i);
    if (f[5] > INT64_MAX || f[6] > INT64_MAX || f[9] > INT64_MAX)
        return -EBADMSG;
    r.key = (struct nm_etag_store_key){f[0], f[1], f[2], f[3], f[4], (int64_t)f[5], (int64_t)f[6]};
    r.hash.hi = f[7];
    r.hash.lo = f[8];
    r.stored_ns = (int64_t)f[9];
    *out = r;
    return 0;
}

/* ---- the file -------------------------------------------------------------------------------- */

static void encode_header(size_t n_sets, uint8_t out[RECORD])
{
    memset(out, 0, RECORD);
    memcpy(out, HEADER_MAGIC, sizeof(HEADER_MAGIC) - 1);
    put64(out + 24, (uint64_t)n_sets);
    put64(out + 32, NM_ETAG_STORE_WAYS);
    put64(out + SUM_AT, checksum(out));
}

static off_t file_bytes(size_t n_sets)
{
    return (off_t)RECORD * (off_t)(1 + n_sets * NM_ETAG_STORE_WAYS);
}

/* The open file fits n_sets: its header says so and it has the size that goes with it; and it is
 * this user's own. */
static bool fits(int fd, size_t n_sets)
{
    uint8_t want[RECORD], have[RECORD];
    struct stat st;
    encode_header(n_sets, want);
    /* A file another user could have written might hold records planted for this one. */
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_size == file_bytes(n_sets) &&
           pread(fd, have, RECORD, 0) == RECORD && memcmp(want, have, RECORD) == 0;
}

/* An empty store of n_sets written beside the old one and renamed over it: a crash leaves the
 * old file or the new one, and a temporary file that the next creation replaces. */
static int create(const char *dir, size_t n_sets)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s/" NM_ETAG_STORE_FILE ".tmp%ld", dir, (long)getpid());
    int m = snprintf(final, sizeof(final), "%s/" NM_ETAG_STORE_FILE, dir);
    if (n < 0 || (size_t)n >= sizeof(tmp) || m < 0 || (size_t)m >= sizeof(final))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    uint8_t header[RECORD];
    encode_header(n_sets, header);
    int rc = 0;
    if (pwrite(fd, header, RECORD, 0) != RECORD)
        rc = errno ? -errno : -EIO;
    else if (ftruncate(fd, file_bytes(n_sets)) != 0 || fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, final) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int nm_etag_store_open(const char *dir, size_t max_records, struct nm_etag_store **out)
{
    if (max_records > NM_ETAG_STORE_MAX_RECORDS)
        max_records = NM_ETAG_STORE_MAX_RECORDS;
    size_t n_sets = max_records / NM_ETAG_STORE_WAYS;
    if (n_sets == 0)
        n_sets = 1;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/" NM_ETAG_STORE_FILE, dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && !fits(fd, n_sets)) {
            close(fd);
            fd = -1;
        } else if (fd < 0 && errno != ENOENT && errno != ELOOP) {
            return -errno;
        }
        if (fd < 0 && attempt == 0) {
            int rc = create(dir, n_sets);
            if (rc < 0)
                return rc;
        }
    }
    if (fd < 0)
        return -EAGAIN; /* another process keeps replacing it with another size */
    struct nm_etag_store *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    s->fd = fd;
    s->n_sets = n_sets;
    for (size_t i = 0; i < N_LOCKS; i++)
        pthread_mutex_init(&s->locks[i], NULL);
    *out = s;
    return 0;
}

void nm_etag_store_free(struct nm_etag_store *s)
{
    if (!s)
        return;
    close(s->fd);
    for (size_t i = 0; i < N_LOCKS; i++)
        pthread_mutex_destroy(&s->locks[i]);
    free(s);
}

size_t nm_etag_store_capacity(const struct nm_etag_store *s)
{
    return s->n_sets * NM_ETAG_STORE_WAYS;
}

static size_t set_of(const struct nm_etag_store *s, const struct nm_etag_store_key *k)
{
    uint64_t id[4] = {k->root_dev, k->root_ino, k->dev, k->ino};
    return (size_t)(nm_hash_bytes(id, sizeof(id)).lo % s->n_sets);
}

static off_t set_offset(size_t set)
{
    return (off_t)RECORD * (off_t)(1 + set * NM_ETAG_STORE_WAYS);
}

static bool same_file(const struct nm_etag_store_key *a, const struct nm_etag_store_key *b)
{
    return a->root_dev == b->root_dev && a->root_ino == b->root_ino && a->dev == b->dev &&
           a->ino == b->ino;
}

static bool same_key(const struct nm_etag_store_key *a, const struct nm_etag_store_key *b)
{
    return same_file(a, b) && a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns;
}

/* Reads a whole set. Returns 0 or -errno. */
static int read_set(struct nm_etag_store *s, size_t set, uint8_t buf[RECORD * NM_ETAG_STORE_WAYS])
{
    ssize_t n = pread(s->fd, buf, RECORD * NM_ETAG_STORE_WAYS, set_offset(set));
    if (n < 0)
        return -errno;
    if (n < RECORD * NM_ETAG_STORE_WAYS) /* the file was cut short: the rest reads as empty */
        memset(buf + n, 0, (size_t)(RECORD * NM_ETAG_STORE_WAYS - n));
    return 0;
}

int nm_etag_store_get(struct nm_etag_store *s, const struct nm_etag_store_key *key,
                      struct nm_hash128 *out)
{
    uint8_t buf[RECORD * NM_ETAG_STORE_WAYS];
    int rc = read_set(s, set_of(s, key), buf);
    if (rc < 0)
        return rc;
    for (size_t w = 0; w < NM_ETAG_STORE_WAYS; w++) {
        struct nm_etag_store_record r;
        if (nm_etag_store_decode(buf + w * RECORD, RECORD, &r) == 0 && same_key(&r.key, key)) {
            *out = r.hash;
            return 0;
        }
    }
    return -ENOENT;
}

int nm_etag_store_put(struct nm_etag_store *s, const struct nm_etag_store_key *key,
                      struct nm_hash128 hash)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct nm_etag_store_record rec = {*key, hash, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec};
    uint8_t rec_bytes[RECORD];
    int rc = nm_etag_store_encode(&rec, rec_bytes);
    if (rc < 0)
        return rc;
    size_t set = set_of(s, key);
    pthread_mutex_t *lock = &s->locks[set % N_LOCKS];
    pthread_mutex_lock(lock);
    uint8_t buf[RECORD * NM_ETAG_STORE_WAYS];
    rc = read_set(s, set, buf);
    if (rc < 0)
        goto out_unlock;
    /* The way to write: this file's record, else a free one, else the oldest. */
    size_t way = NM_ETAG_STORE_WAYS, free_way = NM_ETAG_STORE_WAYS, oldest = 0;
    int64_t oldest_ns = INT64_MAX;
    for (size_t w = 0; w < NM_ETAG_STORE_WAYS && way == NM_ETAG_STORE_WAYS; w++) {
        struct nm_etag_store_record r;
        if (nm_etag_store_decode(buf + w * RECORD, RECORD, &r) != 0) {
            if (free_way == NM_ETAG_STORE_WAYS)
                free_way = w;
        } else if (same_file(&r.key, key)) {
            way = w;
        } else if (r.stored_ns < oldest_ns) {
            oldest_ns = r.stored_ns;
            oldest = w;
        }
    }
    if (way == NM_ETAG_STORE_WAYS)
        way = free_way != NM_ETAG_STORE_WAYS ? free_way : oldest;
    ssize_t n = pwrite(s->fd, rec_bytes, RECORD, set_offset(set) + (off_t)(way * RECORD));
    if (n < 0)
        rc = -errno;
    else if (n != RECORD)
        rc = -EIO;
out_unlock:
    pthread_mutex_unlock(lock);
    return rc;
}
