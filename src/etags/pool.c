/* The hashing pool: jobs queued one per version, run by low-priority threads that hash without
 * the lock and publish through the memo. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "memo.h"
#include "walk.h"

#define FAILED_RETRY_NS (30 * 1000000000LL)
#define MAX_DEMAND_JOBS 4096

#define IOPRIO_WHO_PROCESS_ 1
#define IOPRIO_CLASS_BE_ 2
#define IOPRIO_CLASS_IDLE_ 3
#define IOPRIO_VALUE(cls, data) (((cls) << 13) | (data))

static void push_job(struct nm_job_queue *q, struct nm_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static struct nm_job *pop_job(struct nm_job_queue *q)
{
    struct nm_job *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    j->next = NULL;
    return j;
}

static bool remove_job(struct nm_job_queue *q, struct nm_job *j)
{
    struct nm_job **pp = &q->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return false;
    *pp = j->next;
    if (q->tail == j)
        q->tail = prev;
    q->n--;
    j->next = NULL;
    return true;
}

/* Frees e's job while it waits in a queue; one a thread has taken ends in finish_job. */
static void drop_job(struct nm_hashing *h, struct nm_memo_entry *e)
{
    if (e->job && (remove_job(&h->demand, e->job) || remove_job(&h->background, e->job) ||
                   remove_job(&h->delayed, e->job))) {
        close(e->job->fd);
        free(e->job);
    }
    e->job = NULL;
}

struct nm_memo_entry *nm__pool_queue(struct nm_hashing *h, struct nm_memo_entry *e,
                                     const struct nm_file_version *v, int fd, bool background)
{
    if (e && e->state == NM_MEMO_PENDING)
        drop_job(h, e);
    if (e)
        nm__walk_release(h, e);
    else
        e = nm__memo_put(h, v);
    struct nm_job *j = e ? calloc(1, sizeof(*j)) : NULL;
    if (!j)
        return NULL;
    e->v = *v;
    j->v = *v;
    j->fd = fd;
    j->background = background;
    e->state = NM_MEMO_PENDING;
    e->job = j;
    e->has_prev_ctime = false;
    e->persisting = false;
    push_job(background ? &h->background : &h->demand, j);
    pthread_cond_signal(&h->work);
    return e;
}

int nm_hashing_request(struct nm_hashing *h, int fd, const struct nm_file_version *v)
{
    if (h->n_threads == 0)
        return -ENOTSUP;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, v->dev, v->ino);
    if (e && nm__memo_describes(e, v)) {
        if (e->state == NM_MEMO_HASHED)
            goto out;
        if (e->state == NM_MEMO_PENDING) {
            /* Someone is waiting now: a walk's job moves ahead of the rest of the walk. */
            if (e->job && remove_job(&h->background, e->job))
                push_job(&h->demand, e->job);
            goto out;
        }
        if (nm_hashing_now_ns() - e->failed_at_ns < FAILED_RETRY_NS) {
            rc = -EIO;
            goto out;
        }
    }
    if (h->demand.n >= MAX_DEMAND_JOBS) {
        rc = -EBUSY;
        goto out;
    }
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) {
        rc = -errno;
        goto out;
    }
    if (!nm__pool_queue(h, e, v, dupfd, false)) {
        close(dupfd);
        rc = -ENOMEM;
    }
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

enum job_end { END_HASHED, END_CHANGED, END_FAILED, END_STOPPED, END_SKIPPED };

static void finish_job(struct nm_hashing *h, struct nm_job *j, enum job_end how)
{
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, j->v.dev, j->v.ino);
    if (e && e->job == j)
        e->job = NULL;
    if (e && e->state == NM_MEMO_PENDING && nm_hashing_version_equal(&e->v, &j->v)) {
        if (how == END_FAILED) {
            nm__walk_release(h, e);
            e->state = NM_MEMO_FAILED;
            e->failed_at_ns = nm_hashing_now_ns();
        } else if (how != END_HASHED && how != END_SKIPPED) {
            nm__memo_unlink(h, e);
        }
    }
    pthread_cond_broadcast(&h->space);
    pthread_mutex_unlock(&h->lock);
    if (how == END_CHANGED)
        nm__hashing_count(&h->discarded, 1);
    atomic_fetch_add_explicit(&h->generation, 1, memory_order_release);
    close(j->fd);
    free(j);
}

/* Runs one job; returns false when it went back to wait out its racy window. */
static bool run_job(struct nm_hashing *h, struct nm_job *j)
{
    struct stat st;
    struct nm_file_version cur;
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, j->v.dev, j->v.ino);
    bool wanted = e && e->state == NM_MEMO_PENDING && nm_hashing_version_equal(&e->v, &j->v);
    if (e && e->job == j)
        e->job = NULL;
    pthread_mutex_unlock(&h->lock);
    if (!wanted) {
        finish_job(h, j, END_SKIPPED);
        return true;
    }
    if (fstat(j->fd, &st) != 0) {
        finish_job(h, j, END_FAILED);
        return true;
    }
    nm_hashing_version_of(&st, &cur);
    if (!nm_hashing_version_equal(&cur, &j->v)) {
        finish_job(h, j, END_CHANGED);
        return true;
    }
    int64_t now = nm_hashing_now_ns();
    if (nm_hashing_is_racy(&cur, now)) {
        /* Hashing now could describe bytes that a same-tick write changes unseen: wait until a
         * later write is bound to move the timestamps. */
        j->not_before_ns = cur.ctime_ns + NM_HASHING_RACY_NS + 1000000;
        pthread_mutex_lock(&h->lock);
        e = nm__memo_get(h, j->v.dev, j->v.ino);
        if (e && e->state == NM_MEMO_PENDING && nm_hashing_version_equal(&e->v, &j->v))
            e->job = j;
        push_job(&h->delayed, j);
        pthread_mutex_unlock(&h->lock);
        nm__hashing_count(&h->waited_racy, 1);
        return false;
    }
    struct nm_hash128 hash;
    int rc = nm_hash_fd(j->fd, j->v.size, &h->stop, &hash);
    if (rc == -ECANCELED) {
        finish_job(h, j, END_STOPPED);
        return true;
    }
    if (rc == 0 && fstat(j->fd, &st) == 0) {
        nm_hashing_version_of(&st, &cur);
        if (!nm_hashing_version_equal(&cur, &j->v))
            rc = -EAGAIN;
    }
    if (rc == -EAGAIN) {
        finish_job(h, j, END_CHANGED);
        return true;
    }
    if (rc < 0) {
        finish_job(h, j, END_FAILED);
        return true;
    }
    nm__hashing_count(&h->hashed_files, 1);
    nm__hashing_count(&h->hashed_bytes, j->v.size);
    nm__memo_settle(h, j->fd, &j->v, hash, true, NULL);
    finish_job(h, j, END_HASHED);
    return true;
}

void nm__pool_lower_priority(bool idle)
{
    pid_t tid = gettid();
    if (idle) {
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
        syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS_, tid, IOPRIO_VALUE(IOPRIO_CLASS_IDLE_, 0));
    } else {
        setpriority(PRIO_PROCESS, (id_t)tid, 19);
        syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS_, tid, IOPRIO_VALUE(IOPRIO_CLASS_BE_, 7));
    }
}

static void *pool_main(void *arg)
{
    struct nm_hashing *h = arg;
    if (h->opt.low_priority)
        nm__pool_lower_priority(false);
    pthread_mutex_lock(&h->lock);
    while (!atomic_load(&h->stop)) {
        int64_t now = nm_hashing_now_ns(), next = INT64_MAX;
        for (struct nm_job *d = h->delayed.head, *nx; d; d = nx) {
            nx = d->next;
            if (d->not_before_ns <= now) {
                remove_job(&h->delayed, d);
                push_job(d->background ? &h->background : &h->demand, d);
            } else if (d->not_before_ns < next) {
                next = d->not_before_ns;
            }
        }
        struct nm_job *j = pop_job(&h->demand);
        if (!j)
            j = pop_job(&h->background);
        if (j) {
            pthread_mutex_unlock(&h->lock);
            run_job(h, j);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&h->work, &h->lock);
        } else {
            struct timespec until = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            pthread_cond_timedwait(&h->work, &h->lock, &until);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void close_jobs(struct nm_job_queue *q)
{
    while (q->head) {
        struct nm_job *j = q->head;
        q->head = j->next;
        close(j->fd);
        free(j);
    }
    q->tail = NULL;
    q->n = 0;
}

int nm__pool_start(struct nm_hashing *h)
{
    if (h->opt.threads == 0)
        return 0;
    h->threads = calloc(h->opt.threads, sizeof(*h->threads));
    if (!h->threads)
        return -ENOMEM;
    for (unsigned i = 0; i < h->opt.threads; i++) {
        if (pthread_create(&h->threads[i], NULL, pool_main, h) != 0)
            return -EAGAIN;
        h->n_threads++;
    }
    return 0;
}

void nm__pool_stop(struct nm_hashing *h)
{
    for (unsigned i = 0; i < h->n_threads; i++)
        pthread_join(h->threads[i], NULL);
    free(h->threads);
    h->threads = NULL;
    h->n_threads = 0;
    close_jobs(&h->demand);
    close_jobs(&h->background);
    close_jobs(&h->delayed);
}
