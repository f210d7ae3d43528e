/* A conditional GET answered with libnotmod alone: reads one HTTP/1.1 request head on standard
 * input and writes the response for one resource, the bytes "hello\n" with the validators given
 * on the command line, to standard output. The parser, the entity tags, the §13.2.2 decision and
 * the dates are the library's; this file only moves bytes.
 *
 *   usage: answer ETAG LAST-MODIFIED-SECONDS < request
 *   build: cc answer.c $(pkg-config --cflags --libs notmod) -o answer
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <notmod/date.h>
#include <notmod/etag.h>
#include <notmod/http1.h>
#include <notmod/precond.h>

static const char body[] = "hello\n";

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 412:
        return "Precondition Failed";
    default:
        return "Bad Request";
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: answer ETAG LAST-MODIFIED-SECONDS < request\n");
        return 2;
    }
    struct nm_etag tag;
    if (nm_etag_parse(nm_slice_from_cstr(argv[1]), &tag) < 0) {
        fprintf(stderr, "answer: '%s' is not an entity-tag (\"...\" or W/\"...\")\n", argv[1]);
        return 2;
    }
    char *end;
    long long last_modified = strtoll(argv[2], &end, 10);
    if (!*argv[2] || *end) {
        fprintf(stderr, "answer: '%s' is not a number of seconds\n", argv[2]);
        return 2;
    }

    static char head[16384];
    size_t len = fread(head, 1, sizeof(head), stdin);
    static struct nm_http1_request req;
    struct nm_http1_limits limits = {.max_target_bytes = 8192, .max_head_bytes = sizeof(head)};
    const char *why = NULL;
    int n = nm_http1_parse_request(head, len, &limits, &req, &why);
    int64_t now = (int64_t)time(NULL);
    char date[NM_DATE_LEN + 1], modified[NM_DATE_LEN + 1];
    nm_date_format(now, date);
    nm_date_format(last_modified, modified);
    if (n <= 0) {
        int status = n < 0 ? nm_http1_status_of(n) : 400;
        printf("HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: 0\r\n\r\n", status, reason_of(status),
               date);
        fprintf(stderr, "answer: %s\n", why ? why : "the request head is incomplete");
        return 1;
    }

    /* Every line of each conditional field, as RFC 9110 §5.3 combines them. */
    struct nm_slice im[16], inm[16], ims[4], ius[4], ir[4];
    bool over;
    struct nm_precond_request pre = {
        .method = req.method,
        .if_match = nm_http1_collect(&req, NM_SLICE_LIT("If-Match"), im, 16, &over),
        .if_none_match = nm_http1_collect(&req, NM_SLICE_LIT("If-None-Match"), inm, 16, &over),
        .if_modified_since =
            nm_http1_collect(&req, NM_SLICE_LIT("If-Modified-Since"), ims, 4, &over),
        .if_unmodified_since =
            nm_http1_collect(&req, NM_SLICE_LIT("If-Unmodified-Since"), ius, 4, &over),
        .if_range = nm_http1_collect(&req, NM_SLICE_LIT("If-Range"), ir, 4, &over),
        .has_range = nm_http1_find(&req, NM_SLICE_LIT("Range")).ptr != NULL,
    };
    struct nm_precond_resource res = {
        .status = 200,
        .exists = true,
        .etag = &tag,
        .has_last_modified = true,
        .last_modified = last_modified,
        .date = now,
    };
    int status = nm_precond_status(nm_precond_evaluate(&pre, &res, NM_IMS_RFC), 200);
    if (status == 206)
        status = 200; /* no ranges here: the whole body */

    /* RFC 9110 §15.4.5: a 304 carries the validators, never the content's length or type. */
    printf("HTTP/1.1 %d %s\r\nDate: %s\r\nETag: %s\r\nLast-Modified: %s\r\n", status,
           reason_of(status), date, argv[1], modified);
    if (status == 304) {
        printf("\r\n");
        return 0;
    }
    printf("Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
           status == 200 ? strlen(body) : (size_t)0);
    if (status == 200)
        fputs(body, stdout);
    return 0;
}
