vcl 4.1;
# Varnish in front of notmod replicas, keeping every validator exact (docs/deploy.md, "Varnish in
# front"). Start varnishd with `-p http_gzip_support=off`: with it on, Varnish asks the replicas
# for gzip only, stores that one variant, gunzips it for clients that do not take gzip and then
# sends the replica's strong ETag weakened (W/), so a client's If-Range can never match again and
# br or zstd never reach anyone. Off, Varnish keeps each variant notmod sends (Vary:
# Accept-Encoding) under the Accept-Encoding it was asked with, bytes and strong tag as they are.
# Run by tests/integration/test_cdn.py; the ports below are replaced there.

import directors;

backend node1 { .host = "127.0.0.1"; .port = "8081"; }
backend node2 { .host = "127.0.0.1"; .port = "8082"; }
backend node3 { .host = "127.0.0.1"; .port = "8083"; }

sub vcl_init {
    new nodes = directors.round_robin();
    nodes.add_backend(node1);
    nodes.add_backend(node2);
    nodes.add_backend(node3);
}

sub vcl_recv {
    set req.backend_hint = nodes.backend();
    # Fewer variants to store: a plain list of codings becomes the codings notmod serves that it
    # names, in one order. notmod picks among acceptable codings by its own preference, so the
    # answer is the one the client's header would have got. A header with q-values or `*` is
    # passed on as it is: rewriting it could turn a refusal into an acceptance.
    if (req.http.Accept-Encoding && req.http.Accept-Encoding !~ "[;*]") {
        set req.http.X-Codings = "";
        if (req.http.Accept-Encoding ~ "(?i)(^|,)\s*br\s*(,|$)") {
            set req.http.X-Codings = req.http.X-Codings + ", br";
        }
        if (req.http.Accept-Encoding ~ "(?i)(^|,)\s*zstd\s*(,|$)") {
            set req.http.X-Codings = req.http.X-Codings + ", zstd";
        }
        if (req.http.Accept-Encoding ~ "(?i)(^|,)\s*(x-)?gzip\s*(,|$)") {
            set req.http.X-Codings = req.http.X-Codings + ", gzip";
        }
        if (req.http.X-Codings == "") {
            unset req.http.Accept-Encoding;
        } else {
            set req.http.Accept-Encoding = regsub(req.http.X-Codings, "^, ", "");
        }
        unset req.http.X-Codings;
    }
}

sub vcl_backend_response {
    # No grace: once max-age has passed, the next request waits for the replica's answer (a 304,
    # or the new version), so a changed file reaches clients within max-age.
    set beresp.grace = 0s;
    # Expired objects are kept an hour for conditional fetches: Varnish revalidates them with
    # If-None-Match (and If-Modified-Since) and a replica holding the same bytes answers 304.
    set beresp.keep = 1h;
}
