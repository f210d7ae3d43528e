/* One fetch run end to end against a real temporary store and canned answers: fresh hits,
 * revalidation, 304s for other representations, stale-if-error, no-store, variants, resuming and
 * redirects. */
#include "client/fetch.h"
#include "fixture.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct canned {
    int err; /* what perform returns */
    int status;
    const char *headers;
    const char *body;
};

struct world {
    char dir[64];
    struct nm_store store;
    const struct canned *answers; /* one per exchange */
    size_t n_answers, sent;
    char sent_inm[16][64];   /* If-None-Match of each request, "" when none */
    char sent_range[16][64]; /* Range of each request, "" when none */
    char sent_url[16][64];
    const char *sent_accept;
    enum nm_fetch_event events[32];
    size_t n_events;
    char delivered[256];
    int deliveries;
};

static int w_perform(void *ctx, struct nm_client_request *req, struct nm_client_response *resp)
{
    struct world *w = ctx;
    cr_assert_lt(w->sent, w->n_answers, "more requests than canned answers");
    const struct canned *c = &w->answers[w->sent];
    cr_assert_lt(w->sent, 16);
    w->sent_inm[w->sent][0] = w->sent_range[w->sent][0] = '\0';
    snprintf(w->sent_url[w->sent], sizeof(w->sent_url[0]), "%s", req->url);
    w->sent_accept = req->accept_encoding;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct nm_http1_field *h = &req->headers[i];
        if (nm_slice_eq(h->name, NM_SLICE_LIT("If-None-Match")))
            snprintf(w->sent_inm[w->sent], sizeof(w->sent_inm[0]), "%.*s", (int)h->value.len,
                     h->value.ptr);
        if (nm_slice_eq(h->name, NM_SLICE_LIT("Range")))
            snprintf(w->sent_range[w->sent], sizeof(w->sent_range[0]), "%.*s", (int)h->value.len,
                     h->value.ptr);
    }
    w->sent++;
    resp->status = c->status;
    snprintf(resp->reason, sizeof(resp->reason), "%s", c->status == 304 ? "Not Modified" : "OK");
    resp->n_headers = fields_of(c->headers, resp->headers, NM_CLIENT_MAX_HEADERS);
    resp->request_time = resp->response_time = time(NULL);
    resp->local_error = false;
    snprintf(resp->error, sizeof(resp->error), "%s", c->err ? strerror(-c->err) : "");
    /* A failure after a body part: the transfer was cut short. */
    if (c->body)
        cr_assert_eq(req->on_body(req->ctx, c->body, strlen(c->body)), 0);
    return c->err;
}

static int w_progress(void *ctx, uint64_t received, uint64_t total)
{
    (void)ctx, (void)received, (void)total;
    return 0;
}

static void w_note(void *ctx, const struct nm_fetch_note *n)
{
    struct world *w = ctx;
    if (w->n_events < sizeof(w->events) / sizeof(w->events[0]))
        w->events[w->n_events++] = n->event;
}

static int w_deliver(void *ctx, int fd, uint64_t len, const char *hash)
{
    struct world *w = ctx;
    (void)hash;
    cr_assert_lt(len, sizeof(w->delivered));
    ssize_t got = read(fd, w->delivered, sizeof(w->delivered) - 1);
    cr_assert_eq(got, (ssize_t)len);
    w->delivered[got] = '\0';
    w->deliveries++;
    return 0;
}

static const struct nm_fetch_hooks w_hooks = {
    .perform = w_perform, .progress = w_progress, .note = w_note, .deliver = w_deliver};

static struct world world;
static const char *run_accept; /* the Accept-Encoding of the next runs */

static void world_setup(void)
{
    memset(&world, 0, sizeof(world));
    run_accept = NULL;
    snprintf(world.dir, sizeof(world.dir), "/tmp/nm-policy-XXXXXX");
    cr_assert_not_null(mkdtemp(world.dir));
    cr_assert_eq(nm_store_open(&world.store, world.dir), 0);
}

static void world_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q '\\.tmp$'", world.dir);
    cr_expect_neq(system(cmd), 0, "a run left a temporary file");
    size_t n;
    cr_assert_eq(nm_store_clear(&world.store, &n), 0);
    nm_store_cleanup(&world.store);
    cr_assert_eq(rmdir(world.dir), 0, "the run left files behind");
}

/* Runs one notmod get of the test URL with these answers. */
static enum nm_fetch_result run(struct nm_policy p, const struct canned *answers, size_t n)
{
    struct nm_fetch_hooks hooks = w_hooks;
    hooks.ctx = &world;
    world.answers = answers;
    world.n_answers = n;
    world.sent = world.n_events = 0;
    world.deliveries = 0;
    world.delivered[0] = '\0';
    struct nm_fetch f = {
        .policy = p,
        .url = "http://example.test/a",
        .store = &world.store,
        .hooks = &hooks,
        .accept_encoding = run_accept,
    };
    return nm_fetch_run(&f);
}

static bool happened(enum nm_fetch_event e)
{
    for (size_t i = 0; i < world.n_events; i++)
        if (world.events[i] == e)
            return true;
    return false;
}

TestSuite(fetch, .init = world_setup, .fini = world_teardown);

Test(fetch, a_fresh_stored_response_answers_without_a_request)
{
    static const struct canned first[] = {{0, 200, "Cache-Control: max-age=600", "hello"}};
    cr_assert_eq(run((struct nm_policy){.heuristic = true}, first, 1), NM_FETCH_DELIVERED);
    cr_assert(happened(NM_FETCH_EVENT_STORED));
    cr_assert_eq(run((struct nm_policy){.heuristic = true}, NULL, 0), NM_FETCH_DELIVERED);
    cr_assert_eq(world.sent, 0);
    cr_assert(happened(NM_FETCH_EVENT_FRESH));
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_stale_stored_response_is_revalidated_and_a_304_delivers_the_stored_body)
{
    static const struct canned first[] = {
        {0, 200, "ETag: \"v1\"\nCache-Control: max-age=0", "old"}};
    static const struct canned second[] = {
        {0, 304, "ETag: \"v1\"\nCache-Control: max-age=600", NULL}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_FETCH_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"v1\"");
    cr_assert(happened(NM_FETCH_EVENT_FRESHENED));
    cr_assert_str_eq(world.delivered, "old");
    /* Freshened by the 304's max-age: the next run sends nothing. */
    cr_assert_eq(run((struct nm_policy){0}, NULL, 0), NM_FETCH_DELIVERED);
    cr_assert_eq(world.sent, 0);
}

Test(fetch, a_304_for_another_representation_leads_to_a_fetch_without_conditions)
{
    static const struct canned first[] = {{0, 200, "ETag: \"w1\"", "first"}};
    static const struct canned second[] = {{0, 304, "ETag: \"w2\"", NULL},
                                           {0, 200, "ETag: \"w2\"", "second"}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_FETCH_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 2), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"w1\"");
    cr_assert_str_eq(world.sent_inm[1], "");
    cr_assert(happened(NM_FETCH_EVENT_MISMATCH));
    cr_assert_str_eq(world.delivered, "second");
}

Test(fetch, a_network_error_is_answered_stale_only_with_stale_if_error)
{
    static const struct canned first[] = {{0, 200, "ETag: \"v1\"", "kept"}};
    static const struct canned down[] = {{-ECONNREFUSED, 0, NULL, NULL}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_FETCH_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, down, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert_eq(world.deliveries, 0);
    cr_assert_eq(run((struct nm_policy){.stale_if_error = true}, down, 1), NM_FETCH_DELIVERED);
    cr_assert(happened(NM_FETCH_EVENT_STALE));
    cr_assert_str_eq(world.delivered, "kept");
}

Test(fetch, a_no_store_answer_is_delivered_and_removes_the_stored_one)
{
    static const struct canned first[] = {{0, 200, "ETag: \"v1\"", "one"}};
    static const struct canned second[] = {{0, 200, "Cache-Control: no-store", "two"}};
    static const struct canned third[] = {{0, 200, NULL, "three"}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_FETCH_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_FETCH_DELIVERED);
    cr_assert(happened(NM_FETCH_EVENT_NOT_STORED));
    cr_assert_str_eq(world.delivered, "two");
    cr_assert_eq(run((struct nm_policy){0}, third, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "", "nothing stored: no conditions");
}

Test(fetch, an_error_status_or_a_stray_304_delivers_nothing)
{
    static const struct canned missing[] = {{0, 404, NULL, "not found"}};
    static const struct canned stray[] = {{0, 304, NULL, NULL}};
    cr_assert_eq(run((struct nm_policy){0}, missing, 1), NM_FETCH_FAILED_HTTP);
    cr_assert(happened(NM_FETCH_EVENT_HTTP));
    cr_assert_eq(run((struct nm_policy){0}, stray, 1), NM_FETCH_FAILED_HTTP);
    cr_assert(happened(NM_FETCH_EVENT_STRAY_304));
    cr_assert_eq(world.deliveries, 0);
}

Test(fetch, a_coded_variant_is_stored_with_the_accept_encoding_sent_and_revalidated_by_its_tag)
{
    static const struct canned first[] = {
        {0, 200, "ETag: \"gz\"\nContent-Encoding: gzip\nVary: Accept-Encoding", "decoded"}};
    static const struct canned second[] = {{0, 304, "ETag: \"gz\"", NULL}};
    run_accept = "deflate, gzip";
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_accept, "deflate, gzip");
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"gz\"", "the stored variant's tag");
    cr_assert(happened(NM_FETCH_EVENT_FRESHENED));
    cr_assert_str_eq(world.delivered, "decoded");
    /* Another Accept-Encoding: the variant does not match (Vary), no conditions. */
    static const struct canned third[] = {{0, 200, "ETag: \"id\"", "identity"}};
    run_accept = NULL;
    cr_assert_eq(run((struct nm_policy){0}, third, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "");
}

Test(fetch, a_200_cut_short_is_resumed_and_a_matching_206_completes_it)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "hel"}};
    static const struct canned rest[] = {{0, 206, "ETag: \"s\"\nContent-Range: bytes 3-4/5", "lo"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert(happened(NM_FETCH_EVENT_PARTIAL_KEPT));
    cr_assert_eq(world.deliveries, 0);
    cr_assert_eq(run((struct nm_policy){0}, rest, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert(happened(NM_FETCH_EVENT_RESUMED));
    cr_assert_str_eq(world.delivered, "hello");
    static const struct canned again[] = {{0, 304, "ETag: \"s\"", NULL}};
    cr_assert_eq(run((struct nm_policy){0}, again, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "", "the partial body is gone");
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_resumed_transfer_cut_short_again_grows_the_partial_body)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "he"}};
    static const struct canned more[] = {
        {-ECONNRESET, 206, "ETag: \"s\"\nContent-Range: bytes 2-4/5", "l"}};
    static const struct canned rest[] = {{0, 206, "ETag: \"s\"\nContent-Range: bytes 3-4/5", "lo"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, more, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert_str_eq(world.sent_range[0], "bytes=2-");
    cr_assert(happened(NM_FETCH_EVENT_PARTIAL_KEPT));
    cr_assert_eq(run((struct nm_policy){0}, rest, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_206_of_another_version_or_a_200_restarts_from_byte_0)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "hel"}};
    static const struct canned other[] = {{0, 206, "ETag: \"t\"\nContent-Range: bytes 3-4/5", "XY"},
                                          {0, 200, "ETag: \"t\"", "world"}};
    static const struct canned whole[] = {{0, 200, "ETag: \"u\"", "fresh"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, other, 2), NM_FETCH_DELIVERED);
    cr_assert(happened(NM_FETCH_EVENT_RESUME_REFUSED));
    cr_assert_str_eq(world.sent_range[1], "");
    cr_assert_str_eq(world.delivered, "world");
    cr_assert_eq(run((struct nm_policy){.reload = true}, cut, 1), NM_FETCH_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, whole, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert_str_eq(world.delivered, "fresh");
}

Test(fetch, redirects_are_followed_only_when_asked_and_a_fresh_301_is_reused)
{
    static const struct canned moved[] = {
        {0, 301, "Location: /b\nCache-Control: max-age=600", NULL}, {0, 200, NULL, "at b"}};
    cr_assert_eq(run((struct nm_policy){0}, moved, 1), NM_FETCH_FAILED_HTTP);
    cr_assert_eq(run((struct nm_policy){.follow = true}, moved, 2), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_url[1], "http://example.test/b");
    cr_assert_str_eq(world.delivered, "at b");
    static const struct canned b_only[] = {{0, 200, NULL, "at b again"}};
    cr_assert_eq(run((struct nm_policy){.follow = true}, b_only, 1), NM_FETCH_DELIVERED);
    cr_assert_str_eq(world.sent_url[0], "http://example.test/b", "the 301 came from the store");
    static const struct canned loop[] = {{0, 302, "Location: /c", NULL}};
    struct canned loops[NM_POLICY_MAX_REDIRECTS + 1];
    for (size_t i = 0; i < NM_POLICY_MAX_REDIRECTS + 1; i++)
        loops[i] = loop[0];
    cr_assert_eq(
        run((struct nm_policy){.follow = true, .reload = true}, loops, NM_POLICY_MAX_REDIRECTS + 1),
        NM_FETCH_FAILED_HTTP);
    cr_assert(happened(NM_FETCH_EVENT_TOO_MANY_REDIRECTS));
}
