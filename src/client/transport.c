/* HTTP/1.1 exchanges over libcurl, keeping the final response's header lines and the clock
 * readings of RFC 9111 §4.2.3 (request_time, response_time). */
#include "transport.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notmod/http1.h"
#include "notmod/token.h"

int nm_client_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

void nm_client_global_cleanup(void)
{
    curl_global_cleanup();
}

int nm_client_init(struct nm_client *c)
{
    c->easy = curl_easy_init();
    return c->easy ? 0 : -ENOMEM;
}

void nm_client_cleanup(struct nm_client *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    c->easy = NULL;
}

void nm_client_response_init(struct nm_client_response *r)
{
    memset(r, 0, sizeof(*r));
    nm_buf_init(&r->head, NM_CLIENT_MAX_HEAD_BYTES);
}

void nm_client_response_cleanup(struct nm_client_response *r)
{
    nm_buf_cleanup(&r->head);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* State shared with libcurl's callbacks during one exchange. */
struct exchange {
    const struct nm_client_request *req;
    struct nm_client_response *resp;
    int head_err;
    int body_err;
    int progress_err;
    struct nm_client_head head;
};

/* Parses the head collected in r->head at its empty line. Returns 0, or -EBADMSG. */
static int end_head(struct nm_client_head *hd, struct nm_client_response *r)
{
    struct nm_http1_response h;
    if (nm_http1_parse_response(r->head.ptr, r->head.len, r->headers, NM_CLIENT_MAX_HEADERS, &h) <=
        0)
        return -EBADMSG;
    if (nm_http1_response_is_interim(&h)) {
        /* RFC 9110 §15.2: an interim response's fields are not the final ones. */
        r->head.len = 0;
        hd->lines = 0;
        return 0;
    }
    r->n_headers = h.n_fields;
    size_t n = h.reason.len < sizeof(r->reason) ? h.reason.len : sizeof(r->reason) - 1;
    memcpy(r->reason, h.reason.ptr, n);
    r->reason[n] = '\0';
    hd->status = h.status;
    hd->done = true;
    r->response_time = now_s();
    return 0;
}

int nm_client_head_line(struct nm_client_head *hd, struct nm_client_response *r,
                        struct nm_slice line)
{
    bool status_line = line.len >= 5 && memcmp(line.ptr, "HTTP/", 5) == 0;
    if (line.len > 0 && line.ptr[line.len - 1] == '\n')
        line.len--;
    if (line.len > 0 && line.ptr[line.len - 1] == '\r')
        line.len--;
    /* RFC 9112 §2.2: a bare CR is refused, never taken for a line end (trimming a folded line
     * would otherwise bring one to its end). */
    if (memchr(line.ptr, '\r', line.len) != NULL)
        return -EBADMSG;
    if (status_line) {
        r->head.len = 0;
        r->n_headers = 0;
        r->reason[0] = '\0';
        hd->lines = 0;
        hd->done = false;
        hd->status = 0;
    } else if (hd->done) {
        /* RFC 9110 §6.5.1: trailer fields are kept apart from the header section. */
        return 0;
    }
    int rc;
    if (line.len > 0 && nm_token_is_ows((unsigned char)line.ptr[0]) && hd->lines > 1) {
        /* obs-fold: RFC 9112 §5.2 has a user agent replace it with SP before parsing. */
        r->head.len--;
        line = nm_slice_trim_ows(line);
        rc = nm_buf_append(&r->head, " ", 1);
        if (rc == 0)
            rc = nm_buf_append(&r->head, line.ptr, line.len);
    } else {
        rc = nm_buf_append(&r->head, line.ptr, line.len);
        hd->lines++;
    }
    if (rc == 0)
        rc = nm_buf_append(&r->head, "\n", 1);
    if (rc == 0 && line.len == 0)
        rc = end_head(hd, r);
    return rc;
}

/* libcurl hands over each line of each head it reads. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct exchange *x = ud;
    size_t len = size * nmemb;
    int rc = nm_client_head_line(&x->head, x->resp, nm_slice_make(data, len));
    if (rc < 0) {
        x->head_err = rc;
        return 0;
    }
    return len;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct exchange *x = ud;
    size_t len = size * nmemb;
    if (x->req->on_body) {
        int rc = x->req->on_body(x->req->ctx, data, len);
        if (rc < 0) {
            x->body_err = rc;
            return 0;
        }
    }
    x->resp->body_bytes += len;
    return len;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    struct exchange *x = ud;
    if (!x->req->on_progress)
        return 0;
    int rc = x->req->on_progress(x->req->ctx, (uint64_t)dlnow, (uint64_t)dltotal);
    if (rc < 0) {
        x->progress_err = rc;
        return 1;
    }
    return 0;
}

static int map_error(CURLcode code)
{
    switch (code) {
    case CURLE_URL_MALFORMAT:
        return -EINVAL;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EPROTONOSUPPORT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return -ECONNRESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
        return -EPROTO;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return -EBADMSG;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static int set_connect_to(CURL *easy, const char *url, const char *connect_to,
                          struct curl_slist **list, char *error)
{
    if (!connect_to)
        return 0;
    char host[256];
    unsigned port;
    if (nm_client_url_authority(url, host, sizeof(host), &port) != 0) {
        snprintf(error, NM_CLIENT_ERROR_MAX, "cannot parse the URL");
        return -EINVAL;
    }
    char spec[600];
    snprintf(spec, sizeof(spec), "%s:%u:%s", host, port, connect_to);
    struct curl_slist *l = curl_slist_append(NULL, spec);
    if (!l)
        return -ENOMEM;
    *list = l;
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, l);
    return 0;
}

int nm_client_perform(struct nm_client *c, const struct nm_client_request *req,
                      struct nm_client_response *resp)
{
    CURL *easy = c->easy;
    struct curl_slist *hdrs = NULL, *conn = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct exchange x = {.req = req, .resp = resp};
    int rc = 0;

    resp->head.len = 0;
    resp->n_headers = 0;
    resp->status = 0;
    resp->reason[0] = '\0';
    resp->body_bytes = 0;
    resp->local_error = false;
    resp->error[0] = '\0';

    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "notmod/" NM_VERSION);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, req->on_progress ? 0L : 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                     req->stall_timeout_s > 0 ? req->stall_timeout_s : 30L);
    if (req->timeout_ms > 0)
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (req->fresh_connection) {
        curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->accept_encoding)
        curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, req->accept_encoding);
    if (strcmp(req->method, "HEAD") == 0)
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    else if (strcmp(req->method, "GET") == 0)
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);

    for (size_t i = 0; i < req->n_headers; i++) {
        char line[8192];
        const struct nm_http1_field *h = &req->headers[i];
        int n = snprintf(line, sizeof(line), "%.*s: %.*s", (int)h->name.len, h->name.ptr,
                         (int)h->value.len, h->value.ptr);
        if (n < 0 || (size_t)n >= sizeof(line) || memchr(line, '\r', (size_t)n) ||
            memchr(line, '\n', (size_t)n)) {
            snprintf(resp->error, sizeof(resp->error), "request header line is invalid");
            rc = -EINVAL;
            goto out;
        }
        struct curl_slist *l = curl_slist_append(hdrs, line);
        if (!l) {
            rc = -ENOMEM;
            goto out;
        }
        hdrs = l;
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
    rc = set_connect_to(easy, req->url, req->connect_to, &conn, resp->error);
    if (rc < 0)
        goto out;

    resp->request_time = now_s();
    resp->response_time = resp->request_time;
    CURLcode code = curl_easy_perform(easy);
    if (x.head.done) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        resp->status = (int)status;
    }
    if (x.body_err < 0) {
        rc = x.body_err;
        resp->local_error = true;
        snprintf(resp->error, sizeof(resp->error), "%s", strerror(-rc));
    } else if (x.progress_err < 0) {
        rc = x.progress_err;
        snprintf(resp->error, sizeof(resp->error), "%s", strerror(-rc));
    } else if (x.head_err == -EBADMSG) {
        rc = -EBADMSG;
        snprintf(resp->error, sizeof(resp->error), "malformed response header section");
    } else if (x.head_err < 0) {
        rc = -EMSGSIZE;
        snprintf(resp->error, sizeof(resp->error), "response header section over %u bytes",
                 NM_CLIENT_MAX_HEAD_BYTES);
    } else if (code != CURLE_OK) {
        rc = map_error(code);
        snprintf(resp->error, sizeof(resp->error), "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(code));
    }
    if (rc < 0 && !x.head.done)
        resp->status = 0;

out:
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, NULL);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(conn);
    return rc;
}

static int wait_socket(curl_socket_t fd, bool for_recv, long timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = for_recv ? POLLIN : POLLOUT};
    int n = poll(&p, 1, (int)timeout_ms);
    return n < 0 ? -errno : n;
}

static long elapsed_ms(const struct timespec *start)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)((t.tv_sec - start->tv_sec) * 1000 + (t.tv_nsec - start->tv_nsec) / 1000000);
}

static int build_raw_request(const char *url, const char *method, const struct nm_http1_field *h,
                             size_t n, struct nm_buf *req)
{
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *host = NULL, *path = NULL, *query = NULL, *port = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto out;
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    rc = nm_buf_appendf(req, "%s %s%s%s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: notmod/%s\r\n",
                        method, path, query ? "?" : "", query ? query : "", host, port ? ":" : "",
                        port ? port : "", NM_VERSION);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = nm_buf_appendf(req, "%.*s: %.*s\r\n", (int)h[i].name.len, h[i].name.ptr,
                            (int)h[i].value.len, h[i].value.ptr);
    if (rc == 0)
        rc = nm_buf_append_str(req, "Connection: close\r\n\r\n");
out:
    curl_free(host);
    curl_free(path);
    curl_free(query);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static bool head_complete(const struct nm_buf *b)
{
    return b->len >= 4 && memmem(b->ptr, b->len, "\r\n\r\n", 4) != NULL;
}

int nm_client_raw(const char *url, const char *connect_to, const char *method,
                  const struct nm_http1_field *headers, size_t n_headers, long timeout_ms,
                  struct nm_buf *out, char error[NM_CLIENT_ERROR_MAX])
{
    struct nm_buf req;
    struct curl_slist *conn = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct timespec start;
    int rc;

    error[0] = '\0';
    nm_buf_init(&req, 64 * 1024);
    rc = build_raw_request(url, method, headers, n_headers, &req);
    if (rc < 0) {
        snprintf(error, NM_CLIENT_ERROR_MAX, "cannot build the request");
        nm_buf_cleanup(&req);
        return rc;
    }
    CURL *easy = curl_easy_init();
    if (!easy) {
        nm_buf_cleanup(&req);
        return -ENOMEM;
    }
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    rc = set_connect_to(easy, url, connect_to, &conn, error);
    if (rc < 0)
        goto out;
    CURLcode code = curl_easy_perform(easy);
    if (code != CURLE_OK) {
        rc = map_error(code);
        snprintf(error, NM_CLIENT_ERROR_MAX, "%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
        goto out;
    }
    curl_socket_t fd;
    if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
        rc = -EIO;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    size_t sent = 0;
    while (sent < req.len) {
        size_t n = 0;
        code = curl_easy_send(easy, req.ptr + sent, req.len - sent, &n);
        if (code == CURLE_AGAIN) {
            long left = timeout_ms - elapsed_ms(&start);
            if (left <= 0 || wait_socket(fd, false, left) <= 0) {
                rc = -ETIMEDOUT;
                snprintf(error, NM_CLIENT_ERROR_MAX, "timed out sending the request");
                goto out;
            }
            continue;
        }
        if (code != CURLE_OK) {
            rc = -ECONNRESET;
            snprintf(error, NM_CLIENT_ERROR_MAX, "%s", curl_easy_strerror(code));
            goto out;
        }
        sent += n;
    }
    for (;;) {
        size_t room = out->max_cap - out->len;
        if (room == 0 || nm_buf_reserve(out, room < 4096 ? room : 4096) < 0)
            break;
        size_t n = 0;
        code = curl_easy_recv(easy, out->ptr + out->len, out->cap - out->len, &n);
        if (code == CURLE_AGAIN) {
            long left = timeout_ms - elapsed_ms(&start);
            long wait = head_complete(out) ? (left < 500 ? left : 500) : left;
            if (wait <= 0 || wait_socket(fd, true, wait) <= 0)
                break;
            continue;
        }
        if (code != CURLE_OK || n == 0)
            break;
        out->len += n;
    }
    rc = 0;
    if (out->len == 0) {
        rc = -ECONNRESET;
        snprintf(error, NM_CLIENT_ERROR_MAX, "the server sent nothing");
    }

out:
    curl_easy_cleanup(easy);
    curl_slist_free_all(conn);
    nm_buf_cleanup(&req);
    return rc;
}

int nm_client_parse_header_option(const char *arg, struct nm_http1_field *h)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        return -EINVAL;
    for (const char *p = arg; p < colon; p++)
        if (!nm_token_is_tchar((unsigned char)*p))
            return -EINVAL;
    /* RFC 9110 §5.5: field values hold no control characters but HTAB. */
    for (const char *p = colon + 1; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return -EINVAL;
    h->name = nm_slice_make(arg, (size_t)(colon - arg));
    h->value = nm_slice_trim_ows(nm_slice_from_cstr(colon + 1));
    static const char *const managed[] = {"If-None-Match",       "If-Modified-Since", "If-Match",
                                          "If-Unmodified-Since", "If-Range",          "Range"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (nm_slice_case_eq(h->name, nm_slice_from_cstr(managed[i])))
            return -EPERM;
    return 0;
}

int nm_client_parse_backends(char *list, const char **out, size_t cap, size_t *n)
{
    size_t before = *n;
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        uint64_t port;
        if (!colon || colon == t || nm_parse_u64(colon + 1, 65535, &port) != 0 || port == 0 ||
            *n == cap) {
            *n = before;
            return -EINVAL;
        }
        out[(*n)++] = t;
    }
    if (*n == before)
        return -EINVAL;
    return 0;
}

int nm_client_parse_response(struct nm_slice raw, int *status, struct nm_http1_field *hdrs,
                             size_t cap, size_t *n_hdrs, size_t *head_len)
{
    struct nm_http1_response h;
    int n = nm_http1_parse_response(raw.ptr, raw.len, hdrs, cap, &h);
    if (n <= 0)
        return -EBADMSG;
    *status = h.status;
    *n_hdrs = h.n_fields;
    *head_len = (size_t)n;
    return 0;
}

const char *nm_client_accept_encoding(void)
{
    /* The order of libcurl's own list for CURLOPT_ACCEPT_ENCODING "". */
    static char list[64];
    if (list[0])
        return list;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    size_t n = 0;
    if (v->features & CURL_VERSION_LIBZ)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "deflate, gzip");
    if (v->features & CURL_VERSION_BROTLI)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%sbr", n ? ", " : "");
    if (v->features & CURL_VERSION_ZSTD)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%szstd", n ? ", " : "");
    return n ? list : NULL;
}

int nm_client_url_resolve(const char *base, struct nm_slice ref, char *out, size_t cap)
{
    char r[NM_CLIENT_URL_MAX];
    if (ref.len == 0 || ref.len >= sizeof(r))
        return ref.len ? -ENAMETOOLONG : -EINVAL;
    memcpy(r, ref.ptr, ref.len);
    r[ref.len] = '\0';
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *full = NULL;
    int rc = -EINVAL;
    /* RFC 9110 §10.2.2: a relative Location is resolved against the request's URL. */
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, r, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK)
        rc = nm_client_url_normalize(full, out, cap);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

int nm_client_url_normalize(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *scheme = NULL, *host = NULL, *full = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
        goto out;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        rc = -EPROTONOSUPPORT;
        goto out;
    }
    /* RFC 3986 §6.2.2.1: the host is case-insensitive; one spelling makes one cache key. */
    for (char *c = host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    if (curl_url_set(u, CURLUPART_HOST, host, 0) != CURLUE_OK)
        goto out;
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
        goto out;
    rc = -ENAMETOOLONG;
    if (strlen(full) >= cap)
        goto out;
    memcpy(out, full, strlen(full) + 1);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

int nm_client_url_authority(const char *url, char *host, size_t cap, unsigned *port)
{
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *h = NULL, *p = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK && strlen(h) < cap) {
        memcpy(host, h, strlen(h) + 1);
        *port = (unsigned)strtoul(p, NULL, 10);
        rc = 0;
    }
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}
