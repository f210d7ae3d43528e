/* The metrics listener: a blocking accept loop on its own thread, apart from the workers, so a
 * scrape never waits behind client traffic and client traffic never waits for a scrape. */
#include "scrape.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "notmod/http1.h"

#define HEAD_MAX 8192
#define IO_TIMEOUT_S 2

struct nm_scrape {
    int fd;
    int stop_pipe[2];
    pthread_t thread;
    bool started;
    const struct nm_metrics *metrics;
    nm_scrape_gauges_fn gauges;
    void *arg;
    struct nm_buf body;
    char url[80];
    char head[HEAD_MAX];
    struct nm_http1_request req;
};

/* The status page: no external asset; it polls /metrics once a second. */
static const char status_page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>notmod status</title>\n<style>\n"
    "body{font:16px system-ui,sans-serif;margin:2em;background:#fafafa;color:#222}\n"
    ".tiles{display:flex;gap:1.5em;flex-wrap:wrap}\n"
    ".tile{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em 1.5em;"
    "min-width:12em}\n"
    ".tile b{display:block;font-size:2.4em;font-variant-numeric:tabular-nums}\n"
    "#bars{display:flex;align-items:flex-end;gap:2px;height:120px;margin-top:1.5em;"
    "background:#fff;border:1px solid #ddd;padding:4px}\n"
    "#bars div{flex:1;background:#3a7;min-height:1px}\n"
    "</style></head><body>\n<h1>notmod</h1>\n<div class=\"tiles\">\n"
    "<div class=\"tile\">requests/s<b id=\"rate\">-</b></div>\n"
    "<div class=\"tile\">304 ratio<b id=\"ratio\">-</b></div>\n"
    "<div class=\"tile\">requests<b id=\"total\">-</b></div>\n"
    "<div class=\"tile\">open connections<b id=\"open\">-</b></div>\n"
    "</div>\n<div id=\"bars\"></div>\n<p id=\"state\">waiting for /metrics</p>\n<script>\n"
    "let last=null;const hist=[];\n"
    "function sum(text,name){let t=0;for(const l of text.split('\\n')){"
    "if(l.startsWith(name+' ')||l.startsWith(name+'{'))t+=Number(l.split(' ').pop())}return t}\n"
    "async function poll(){try{const r=await fetch('/metrics',{cache:'no-store'});"
    "const x=await r.text();const now=performance.now();"
    "const total=sum(x,'notmod_requests_total'),nm=sum(x,'notmod_not_modified_total');"
    "document.getElementById('total').textContent=total;"
    "document.getElementById('open').textContent=sum(x,'notmod_open_connections');"
    "document.getElementById('ratio').textContent=total?(100*nm/total).toFixed(1)+' %':'-';"
    "if(last){const rate=(total-last.total)*1000/(now-last.now);"
    "document.getElementById('rate').textContent=rate.toFixed(1);hist.push(rate);"
    "if(hist.length>60)hist.shift();const max=Math.max(1,...hist);"
    "document.getElementById('bars').innerHTML=hist.map(v=>"
    "'<div style=\"height:'+(100*v/max)+'%\"></div>').join('')}"
    "last={total,now};document.getElementById('state').textContent='live';"
    "}catch(e){document.getElementById('state').textContent='no answer from /metrics'}}\n"
    "poll();setInterval(poll,1000);\n</script></body></html>\n";

int nm_scrape_bind(const char *spec, struct nm_scrape **out, char *err, size_t err_cap)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    size_t hl = colon ? (size_t)(colon - spec) : 0;
    if (!colon || hl >= sizeof(host) || !colon[1]) {
        snprintf(err, err_cap, "invalid metrics address '%s' (want HOST:PORT)", spec);
        return -EINVAL;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    char *h = host;
    if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    if (getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &ai) != 0) {
        snprintf(err, err_cap, "invalid metrics address '%s' (want a numeric HOST:PORT)", spec);
        return -EINVAL;
    }
    struct nm_scrape *s = calloc(1, sizeof(*s));
    int rc = s ? 0 : -ENOMEM;
    int fd = rc ? -1 : socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0 && (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0))
        rc = -errno;
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot listen on metrics address %s: %s", spec, strerror(-rc));
        if (fd >= 0)
            close(fd);
        free(s);
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    char num[INET6_ADDRSTRLEN] = "", port[8] = "";
    getnameinfo((struct sockaddr *)&ss, len, num, sizeof(num), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(s->url, sizeof(s->url), ss.ss_family == AF_INET6 ? "http://[%s]:%s/" : "http://%s:%s/",
             num, port);
    s->fd = fd;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    nm_buf_init(&s->body, (size_t)4 << 20);
    *out = s;
    return 0;
}

const char *nm_scrape_url(const struct nm_scrape *s)
{
    return s->url;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *type, const char *body, size_t len,
                    bool head_only)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status,
                     status == 200   ? "OK"
                     : status == 404 ? "Not Found"
                                     : "Bad Request",
                     type, len);
    send_all(fd, head, (size_t)n);
    if (!head_only)
        send_all(fd, body, len);
}

static void serve_one(struct nm_scrape *s, int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char *buf = s->head;
    struct nm_http1_request *req = &s->req;
    struct nm_http1_limits limits = {.max_target_bytes = 1024, .max_head_bytes = HEAD_MAX};
    size_t len = 0;
    int n = 0;
    while (n == 0 && len < HEAD_MAX) {
        ssize_t r = recv(fd, buf + len, HEAD_MAX - len, 0);
        if (r <= 0)
            return;
        len += (size_t)r;
        const char *why;
        n = nm_http1_parse_request(buf, len, &limits, req, &why);
    }
    const char *text = "bad request\n";
    if (n <= 0 || (req->method != NM_METHOD_GET && req->method != NM_METHOD_HEAD)) {
        respond(fd, 400, "text/plain", text, strlen(text), false);
        return;
    }
    bool head_only = req->method == NM_METHOD_HEAD;
    struct nm_slice path = req->target;
    const char *q = memchr(path.ptr, '?', path.len);
    if (q)
        path.len = (size_t)(q - path.ptr);
    if (nm_slice_eq(path, NM_SLICE_LIT("/metrics"))) {
        struct nm_metrics_gauges g = {0};
        s->gauges(s->arg, &g);
        s->body.len = 0;
        if (nm_metrics_format(s->metrics, &g, &s->body) == 0) {
            respond(fd, 200, "text/plain; version=0.0.4; charset=utf-8", s->body.ptr, s->body.len,
                    head_only);
            return;
        }
    } else if (nm_slice_eq(path, NM_SLICE_LIT("/status")) || nm_slice_eq(path, NM_SLICE_LIT("/"))) {
        respond(fd, 200, "text/html; charset=utf-8", status_page, sizeof(status_page) - 1,
                head_only);
        return;
    }
    text = "not found: /metrics or /status\n";
    respond(fd, 404, "text/plain", text, strlen(text), head_only);
}

static void *scrape_main(void *arg)
{
    struct nm_scrape *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

int nm_scrape_start(struct nm_scrape *s, const struct nm_metrics *m, nm_scrape_gauges_fn gauges,
                    void *arg)
{
    s->metrics = m;
    s->gauges = gauges;
    s->arg = arg;
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0)
        return -errno;
    if (pthread_create(&s->thread, NULL, scrape_main, s) != 0)
        return -EAGAIN;
    s->started = true;
    return 0;
}

void nm_scrape_free(struct nm_scrape *s)
{
    if (!s)
        return;
    if (s->started) {
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    close(s->fd);
    nm_buf_cleanup(&s->body);
    free(s);
}
