/* notmod check URL...: a validator linter. Runs the probes of src/client/probes.c against each
 * URL (and each backend with --backends): the options, the exchanges that carry the probes over
 * libcurl, and the report as a table or JSON. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "cliutil.h"
#include "commands.h"
#include "notmod/json.h"

#define MAX_BACKENDS 16
#define PASS NM_PROBE_PASS
#define WARN NM_PROBE_WARN
#define FAIL NM_PROBE_FAIL

static const char *const level_names[] = {"PASS", "WARN", "FAIL"};

struct opts {
    bool json;
    long timeout_s;
    const char *backends[MAX_BACKENDS]; /* point into backends_buf */
    size_t n_backends;
    char backends_buf[2048]; /* every --backends value, each after the one before */
    size_t backends_used;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: notmod check [OPTIONS] URL...\n\n"
            "Lints how a server handles validators: fetches each URL, then sends conditional\n"
            "requests (If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since,\n"
            "Range with If-Range), a HEAD, a raw request to see the bytes of its 304, and\n"
            "Accept-Encoding requests to see whether its codings keep apart and decode to\n"
            "the identity content.\n"
            "Each finding is PASS, WARN or FAIL with the RFC section it rests on.\n\n"
            "options:\n"
            "      --backends HOST:PORT,...  send every request to each backend too (with the\n"
            "                         URL's Host) and report where ETag, Last-Modified,\n"
            "                         content or the gzip variant disagree, and whether one "
            "replica's ETag gets a\n"
            "                         304 from the others; one backend is compared with the\n"
            "                         URL's own host\n"
            "      --json             machine-readable output\n"
            "      --timeout SECS     per request (default 10)\n"
            "  -h, --help             this text\n\n"
            "exit status: 0 no FAIL, 1 at least one FAIL, 2 usage, 4 a URL or backend could not\n"
            "be fetched at all\n");
}

/* The exchanges: one client and the responses it fills. */
struct runner {
    long timeout_s; /* per request */
    struct nm_client client;
    struct nm_client_response base;  /* the first GET's */
    struct nm_client_response other; /* each probe's */
};

static int runner_init(struct runner *pr, long timeout_s)
{
    pr->timeout_s = timeout_s;
    nm_client_response_init(&pr->base);
    nm_client_response_init(&pr->other);
    int rc = nm_client_init(&pr->client);
    if (rc < 0) {
        nm_client_response_cleanup(&pr->base);
        nm_client_response_cleanup(&pr->other);
    }
    return rc;
}

static void runner_cleanup(struct runner *pr)
{
    nm_client_cleanup(&pr->client);
    nm_client_response_cleanup(&pr->base);
    nm_client_response_cleanup(&pr->other);
}

/* The exchanges of one target. */
struct exchange {
    struct runner *pr;
    const struct nm_probe_report *r;
    bool have_raw; /* the raw 304 is in raw_answer */
    struct nm_buf raw;
    struct nm_http1_field raw_fields[NM_CLIENT_MAX_HEADERS];
    char raw_error[NM_CLIENT_ERROR_MAX];
    struct nm_probe_answer raw_answer;
};

/* Where an exchange's content goes: its hash and its first and last bytes. */
struct body_sink {
    struct nm_hash_stream *hash; /* NULL: not hashed */
    struct nm_probe_body body;
};

static int on_body(void *ctx, const void *data, size_t len)
{
    struct body_sink *sink = ctx;
    if (sink->hash)
        nm_hash_stream_update(sink->hash, data, len);
    nm_probe_body_feed(&sink->body, data, len);
    return 0;
}

static void answer_of(const struct nm_client_response *resp, int rc, struct nm_probe_answer *a)
{
    *a = (struct nm_probe_answer){
        .err = rc,
        .error = resp->error,
        .status = rc < 0 ? 0 : resp->status,
        .reason = resp->reason,
        .fields = resp->headers,
        .n_fields = rc < 0 ? 0 : resp->n_headers,
        .body_bytes = resp->body_bytes,
    };
}

/* One request to the target on a fresh connection, so a stray 304 body cannot spoil the next
 * answer; the body goes to `sink` (NULL: discarded), decoded when accept_encoding is set.
 * Returns nm_client_perform's result. */
static int perform(struct exchange *x, const char *method, const struct nm_http1_field *fields,
                   size_t n, const char *accept_encoding, struct body_sink *sink,
                   struct nm_client_response *resp)
{
    struct runner *pr = x->pr;
    struct nm_client_request req = {
        .method = method,
        .url = x->r->url,
        .headers = fields,
        .n_headers = n,
        .connect_to = x->r->backend,
        .connect_timeout_ms = pr->timeout_s * 1000,
        .stall_timeout_s = pr->timeout_s,
        .timeout_ms = pr->timeout_s * 1000,
        .fresh_connection = true,
        .accept_encoding = accept_encoding,
        .on_body = sink ? on_body : NULL,
        .ctx = sink,
    };
    return nm_client_perform(&pr->client, &req, resp);
}

/* The bytes of a 304 as the server sends them, read from the socket. */
static void raw_exchange(struct exchange *x, const char *method,
                         const struct nm_http1_field *fields, size_t n_fields)
{
    size_t n = 0, head_len = 0;
    int status = 0;
    int rc = nm_client_raw(x->r->url, x->r->backend, method, fields, n_fields,
                           x->pr->timeout_s * 1000, &x->raw, x->raw_error);
    if (rc == 0)
        rc = nm_client_parse_response(nm_buf_slice(&x->raw), &status, x->raw_fields,
                                      NM_CLIENT_MAX_HEADERS, &n, &head_len);
    x->raw_answer = (struct nm_probe_answer){
        .err = rc,
        .error = rc == -EBADMSG ? "not an HTTP/1.x response" : x->raw_error,
        .status = status,
        .fields = x->raw_fields,
        .n_fields = rc < 0 ? 0 : n,
        .body_bytes = rc < 0 ? 0 : x->raw.len - head_len,
    };
    x->have_raw = true;
}

static void send_probe(void *io, enum nm_probe_via via, const char *method,
                       const struct nm_http1_field *fields, size_t n, struct nm_probe_answer *out)
{
    struct exchange *x = io;
    if (via != NM_PROBE_VIA_RAW) {
        struct nm_http1_field rest[8];
        size_t n_rest = 0;
        char coding[64] = "";
        /* VIA_DECODED: the Accept-Encoding line goes to libcurl, which then decodes. */
        for (size_t i = 0; i < n; i++) {
            if (via == NM_PROBE_VIA_DECODED &&
                nm_slice_case_eq(fields[i].name, NM_SLICE_LIT("Accept-Encoding")))
                snprintf(coding, sizeof(coding), "%.*s", (int)fields[i].value.len,
                         fields[i].value.ptr);
            else if (n_rest < sizeof(rest) / sizeof(rest[0]))
                rest[n_rest++] = fields[i];
        }
        struct body_sink sink = {0};
        bool hashed = nm_hash_stream_new(&sink.hash) == 0;
        int rc = perform(x, method, rest, n_rest, coding[0] ? coding : NULL, &sink, &x->pr->other);
        answer_of(&x->pr->other, rc, out);
        if (via == NM_PROBE_VIA_DECODED && rc == -EBADMSG && x->pr->other.status) {
            /* The header section arrived; the content did not decode. */
            out->status = x->pr->other.status;
            out->n_fields = x->pr->other.n_headers;
        }
        out->body = sink.body;
        if (hashed) {
            nm_hash_format_hex(nm_hash_stream_digest(sink.hash), out->hash);
            nm_hash_stream_free(sink.hash);
        }
        return;
    }
    if (!x->have_raw)
        raw_exchange(x, method, fields, n);
    *out = x->raw_answer;
}

/* The first GET, its content hashed into r->hash. */
static int first_get(struct exchange *x, struct nm_probe_report *r)
{
    struct body_sink sink = {0};
    int rc = nm_hash_stream_new(&sink.hash);
    if (rc < 0) {
        snprintf(x->pr->base.error, sizeof(x->pr->base.error), "%s", strerror(-rc));
        return rc;
    }
    rc = perform(x, "GET", NULL, 0, NULL, &sink, &x->pr->base);
    nm_hash_format_hex(nm_hash_stream_digest(sink.hash), r->hash);
    nm_hash_stream_free(sink.hash);
    return rc;
}

/* GETs r's URL (through its backend) and runs every probe. */
static void check_target(struct runner *pr, struct nm_probe_report *r)
{
    struct exchange x = {.pr = pr, .r = r};
    nm_buf_init(&x.raw, 256 * 1024);
    struct nm_probe_answer base;
    int rc = first_get(&x, r);
    answer_of(&pr->base, rc, &base);
    nm_probe_learn(r, &base, time(NULL));
    struct nm_probe_ctx c = {.r = r,
                             .base = &base,
                             .send = send_probe,
                             .io = &x,
                             .decodes = nm_client_accept_encoding()};
    for (size_t i = 0; i < nm_probes_count; i++)
        nm_probe_run(&nm_probes[i], &c);
    nm_buf_cleanup(&x.raw);
}

/* Compares one URL's reports, one per backend, and sends one backend's ETag to every other. */
static void check_replicas(struct runner *pr, const struct nm_probe_report *reports, size_t n,
                           struct nm_probe_report *out)
{
    if (!nm_probe_compare_replicas(reports, n, out))
        return;
    int ref = nm_probe_replica_reference(reports, n);
    if (ref < 0)
        return;
    int *status = calloc(n, sizeof(*status));
    if (!status)
        return;
    /* The revalidation a client makes when the balancer sends it elsewhere. */
    for (size_t i = 0; i < n; i++) {
        if ((int)i == ref || !reports[i].reachable)
            continue;
        struct exchange x = {.pr = pr, .r = &reports[i]};
        struct nm_http1_field inm = {NM_SLICE_LIT("If-None-Match"),
                                     nm_slice_from_cstr(reports[ref].etag)};
        status[i] = perform(&x, "GET", &inm, 1, NULL, NULL, &pr->other) < 0 ? 0 : pr->other.status;
    }
    nm_probe_grade_revalidation(reports, n, (size_t)ref, status, out);
    free(status);
}

static void json_str(const char *s)
{
    struct nm_slice in = nm_slice_from_cstr(s);
    char piece[256];
    putchar('"');
    while (in.len > 0) {
        size_t used;
        fwrite(piece, 1, nm_json_escape(in, piece, sizeof(piece), &used), stdout);
        in.ptr += used;
        in.len -= used;
    }
    putchar('"');
}

static void print_json_findings(const struct nm_probe_report *r)
{
    printf("[");
    for (size_t i = 0; i < r->n; i++) {
        const struct nm_probe_finding *f = &r->findings[i];
        printf("%s\n      {\"check\": ", i ? "," : "");
        json_str(f->check);
        printf(", \"result\": \"%s\", \"rfc\": \"RFC %s\", \"section\": ", level_names[f->level],
               f->rfc);
        json_str(f->section);
        printf(", \"message\": ");
        json_str(f->text);
        printf("}");
    }
    printf("%s]", r->n ? "\n    " : "");
}

static void print_json(struct nm_probe_report *reports, size_t n, struct nm_probe_report *replicas,
                       size_t n_rep, const size_t counts[3])
{
    printf("{\n  \"tool\": \"notmod check\",\n  \"version\": \"%s\",\n  \"targets\": [",
           NM_VERSION);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n    {\"url\": ", i ? "," : "");
        json_str(reports[i].url);
        printf(", \"backend\": ");
        if (reports[i].backend)
            json_str(reports[i].backend);
        else
            printf("null");
        printf(", \"reachable\": %s,\n    \"findings\": ", reports[i].reachable ? "true" : "false");
        print_json_findings(&reports[i]);
        printf("}");
    }
    printf("\n  ],\n  \"replicas\": [");
    for (size_t i = 0; i < n_rep; i++) {
        printf("%s\n    {\"url\": ", i ? "," : "");
        json_str(replicas[i].url);
        printf(",\n    \"findings\": ");
        print_json_findings(&replicas[i]);
        printf("}");
    }
    printf("%s],\n  \"summary\": {\"pass\": %zu, \"warn\": %zu, \"fail\": %zu}\n}\n",
           n_rep ? "\n  " : "", counts[PASS], counts[WARN], counts[FAIL]);
}

static void print_table(const struct nm_probe_report *r, const char *title)
{
    nm__cli_put_escaped(stdout, title);
    printf("\n");
    printf("  %-6s %-24s %-18s %s\n", "RESULT", "CHECK", "SECTION", "FINDING");
    for (size_t i = 0; i < r->n; i++) {
        const struct nm_probe_finding *f = &r->findings[i];
        char sec[32];
        snprintf(sec, sizeof(sec), "RFC %s §%s", f->rfc, f->section);
        /* "§" is two bytes: pad one more so the columns line up on a terminal. */
        printf("  %-6s %-24s %-19s ", level_names[f->level], f->check, sec);
        /* Findings quote reason phrases and field values the server chose. */
        nm__cli_put_escaped(stdout, f->text);
        printf("\n");
    }
    printf("\n");
}

/* Adds the backends of one --backends value. Each value is kept, so the option may be given
 * more than once. Returns 0, or -EINVAL when the value is malformed or there are too many. */
static int parse_backends(struct opts *o, const char *arg)
{
    size_t len = strlen(arg);
    if (len >= sizeof(o->backends_buf) - o->backends_used)
        return -EINVAL;
    char *copy = o->backends_buf + o->backends_used;
    memcpy(copy, arg, len + 1);
    o->backends_used += len + 1;
    return nm_client_parse_backends(copy, o->backends, MAX_BACKENDS, &o->n_backends);
}

/* Returns 0 to go on, 1 after --help, or -EINVAL after saying what is wrong. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"backends", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->timeout_s = 10;
    optind = 1;
    int c;
    while ((c = nm__cli_getopt("check", argc, argv, "h", longs)) != -1) {
        char *end;
        switch (c) {
        case 'h':
            usage(stdout);
            return 1;
        case 'j':
            o->json = true;
            break;
        case 'b':
            if (parse_backends(o, optarg) < 0) {
                fprintf(stderr,
                        "notmod check: --backends wants HOST:PORT[,HOST:PORT...] (at "
                        "most %d)\n",
                        MAX_BACKENDS);
                return -EINVAL;
            }
            break;
        case 't':
            o->timeout_s = strtol(optarg, &end, 10);
            if (*end || o->timeout_s <= 0 || o->timeout_s > 3600) {
                fprintf(stderr, "notmod check: --timeout wants seconds (1-3600)\n");
                return -EINVAL;
            }
            break;
        default: /* named by nm__cli_getopt */
            return -EINVAL;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "notmod check: expected at least one URL (see notmod check --help)\n");
        return -EINVAL;
    }
    return 0;
}

/* Prints every report, table or JSON, and returns the exit status they make. */
static int report(const struct opts *o, struct nm_probe_report *reports, size_t n_reports,
                  struct nm_probe_report *replicas, size_t n_rep)
{
    size_t counts[3] = {0};
    bool unreachable = false;
    for (size_t i = 0; i < n_reports; i++) {
        unreachable |= !reports[i].reachable;
        for (size_t k = 0; k < reports[i].n; k++)
            counts[reports[i].findings[k].level]++;
    }
    for (size_t i = 0; i < n_rep; i++)
        for (size_t k = 0; k < replicas[i].n; k++)
            counts[replicas[i].findings[k].level]++;
    if (o->json) {
        print_json(reports, n_reports, replicas, n_rep, counts);
    } else {
        for (size_t i = 0; i < n_reports; i++) {
            char title[NM_CLIENT_URL_MAX + 64];
            if (reports[i].backend)
                snprintf(title, sizeof(title), "%s (backend %s)", reports[i].url,
                         reports[i].backend);
            else
                snprintf(title, sizeof(title), "%s", reports[i].url);
            print_table(&reports[i], title);
        }
        for (size_t i = 0; i < n_rep; i++) {
            char title[NM_CLIENT_URL_MAX + 64];
            snprintf(title, sizeof(title), "%s (replicas compared)", replicas[i].url);
            print_table(&replicas[i], title);
        }
        printf("summary: %zu PASS, %zu WARN, %zu FAIL\n", counts[PASS], counts[WARN], counts[FAIL]);
    }
    return unreachable ? NM_EXIT_NETWORK : counts[FAIL] ? NM_EXIT_FAILURE : NM_EXIT_OK;
}

/* Checks every URL (through every backend) and reports. Returns the exit status. */
static int check_all(const struct opts *o, char (*urls)[NM_CLIENT_URL_MAX], size_t n_urls)
{
    /* One backend is compared with the URL's own host: the first report of each URL. */
    size_t front = o->n_backends == 1;
    size_t per_url = o->n_backends ? front + o->n_backends : 1;
    size_t n_reports = n_urls * per_url;
    struct nm_probe_report *reports = calloc(n_reports, sizeof(*reports));
    struct nm_probe_report *replicas = calloc(n_urls, sizeof(*replicas));
    struct runner pr;
    int status = NM_EXIT_FAILURE;
    if (!reports || !replicas || runner_init(&pr, o->timeout_s) < 0)
        goto out_free;
    for (size_t u = 0; u < n_urls; u++) {
        for (size_t b = 0; b < per_url; b++) {
            struct nm_probe_report *r = &reports[u * per_url + b];
            r->url = urls[u];
            r->backend = o->n_backends && b >= front ? o->backends[b - front] : NULL;
            check_target(&pr, r);
        }
        if (o->n_backends) {
            replicas[u].url = urls[u];
            check_replicas(&pr, &reports[u * per_url], per_url, &replicas[u]);
        }
    }
    status = report(o, reports, n_reports, replicas, o->n_backends ? n_urls : 0);
    runner_cleanup(&pr);
out_free:
    free(reports);
    free(replicas);
    return status;
}

int nm_cmd_check(int argc, char **argv)
{
    struct opts *o = calloc(1, sizeof(*o));
    if (!o)
        return NM_EXIT_FAILURE;
    int status = NM_EXIT_USAGE;
    int rc = parse_opts(argc, argv, o);
    if (rc != 0) {
        status = rc > 0 ? NM_EXIT_OK : NM_EXIT_USAGE;
        goto out_opts;
    }
    size_t n_urls = (size_t)(argc - optind);
    char(*urls)[NM_CLIENT_URL_MAX] = calloc(n_urls, sizeof(*urls));
    if (!urls) {
        status = NM_EXIT_FAILURE;
        goto out_opts;
    }
    if (nm_client_global_init() < 0) {
        status = NM_EXIT_FAILURE;
        goto out_urls;
    }
    for (size_t i = 0; i < n_urls; i++) {
        if (nm_client_url_normalize(argv[optind + (int)i], urls[i], sizeof(urls[i])) < 0) {
            fprintf(stderr, "notmod check: '%s' is not a valid http or https URL\n",
                    argv[optind + (int)i]);
            goto out_global;
        }
    }
    status = check_all(o, urls, n_urls);
out_global:
    nm_client_global_cleanup();
out_urls:
    free(urls);
out_opts:
    free(o);
    return status;
}
