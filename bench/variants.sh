#!/usr/bin/env bash
# Precompressed variants: bytes on the wire per coding for the example site and a 1 MiB
# JavaScript bundle, the CPU time of `notmod compress` over them, and the server CPU per request
# of a gzip 304 and a gzip 200 next to nginx's gzip_static in the same run. Loopback only; wrk on
# one CPU, the servers on the other. Prints Markdown tables of medians and ratios.
# Usage: bench/variants.sh [RUNS] [SECONDS]   (defaults 3 runs of 5 s per scenario and server)
set -euo pipefail
runs=${1:-3}
secs=${2:-5}
source "$(dirname "$0")/common.sh"

for tool in wrk nginx taskset curl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench: $tool is missing (scripts/install-deps)" >&2; exit 1; }
done
[ -x "$notmod" ] || { echo "bench: build the release binary first (make release)" >&2; exit 1; }
/usr/sbin/nginx -V 2>&1 | grep -q -- --with-http_gzip_static_module ||
    { echo "bench: this nginx has no gzip_static module" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench: needs two CPUs (wrk on one, the servers on the other)" >&2; exit 1; }
load_cpu=0
server_cpu=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2f", a/b }'; }

# The inputs: the example site, and a real-size bundle made deterministically from the
# JavaScript of the installed playwright-core (every .js file under 500 KB, in name order,
# cut at 1 MiB).
pw=$top/tests/browser/node_modules/playwright-core
[ -d "$pw/lib" ] || { echo "bench: $pw is missing (npm ci in tests/browser)" >&2; exit 1; }
mkdir -p "$work/src/site" "$work/src/bundle"
cp -r "$top/examples/site/." "$work/src/site/"
(cd "$pw" && find lib -name '*.js' -size -500k | LC_ALL=C sort | xargs cat) >"$work/all.js"
truncate -s $((1024 * 1024)) "$work/all.js"
mv "$work/all.js" "$work/src/bundle/bundle.js"
pw_version=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$pw/package.json" | head -n 1)

# CPU time of `notmod compress` (user + system, default levels: gzip 9, zstd 19, brotli 11),
# over a fresh copy each run so that every sidecar is written.
echo "## notmod compress, CPU time (median of $runs runs, pinned to one CPU)"
echo
echo "| input | bytes | user+sys (s) | wall (s) |"
echo "|---|---:|---:|---:|"
for job in "site|site|gzip,zstd,br" "bundle|bundle|gzip,zstd,br" "bundle|bundle, gzip only|gzip" \
           "bundle|bundle, zstd only|zstd" "bundle|bundle, br only|br"; do
    IFS='|' read -r input label codings <<<"$job"
    : >"$work/cpu"; : >"$work/wall"
    for _ in $(seq "$runs"); do
        rm -rf "$work/c"; cp -r "$work/src/$input" "$work/c"
        /usr/bin/time -f '%U %S %e' -o "$work/t" \
            taskset -c "$server_cpu" "$notmod" compress -q --codings "$codings" "$work/c"
        awk '{print $1+$2}' "$work/t" >>"$work/cpu"
        awk '{print $3}' "$work/t" >>"$work/wall"
    done
    bytes=$(find "$work/src/$input" -type f -printf '%s\n' | awk '{s+=$1} END{print s}')
    printf '| %s | %d | %.2f | %.2f |\n' "$label" "$bytes" "$(median <"$work/cpu")" "$(median <"$work/wall")"
done
echo

# The served tree: both inputs with the sidecars `notmod compress` writes.
mkdir -p "$work/www"
cp -r "$work/src/site/." "$work/www/"
cp "$work/src/bundle/bundle.js" "$work/www/js/bundle.js"
"$notmod" compress -q "$work/www"
# Files just written are racy for two seconds (docs/etags.md); a deployed site's are older.
sleep 3

np=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { text/html html; text/css css; text/javascript js; image/svg+xml svg; }
    server {
        listen 127.0.0.1:$np;
        root $work/www;
        etag on;
        gzip_static on;
        gzip_vary on;
    }
}
CONF
taskset -c "$server_cpu" /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx_master=$!

taskset -c "$server_cpu" "$notmod" serve --workers 1 --access-log off --listen 127.0.0.1:0 "$work/www" \
    >"$work/notmod.out" 2>"$work/notmod.err" &
notmod_pid=$!
pids+=($notmod_pid)
for _ in $(seq 50); do grep -q http "$work/notmod.err" 2>/dev/null && break; sleep 0.1; done
mp=$(grep -o '127.0.0.1:[0-9]*' "$work/notmod.err" | head -n 1 | cut -d: -f2)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$np/index.html" && break; sleep 0.1; done
nginx_pids="$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"

# Bytes on the wire per coding, as notmod serves them (head + body; the body as sent, not
# decoded). Only notmod serves br and zstd sidecars, so this table is notmod's alone.
echo "## Bytes on the wire per coding (notmod, sidecars from notmod compress)"
echo
echo "| resource | identity | gzip | br | zstd | br / identity |"
echo "|---|---:|---:|---:|---:|---:|"
wire() { # path coding -> "head body coding-sent"
    curl -s -o /dev/null -H "Accept-Encoding: $2" -D "$work/h" \
        -w '%{size_header} %{size_download}' "http://127.0.0.1:$mp$1"
    echo " $(tr -d '\r' <"$work/h" | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')"
}
declare -A total
for path in /index.html /css/site.css /js/site.js /img/logo.svg SITE /js/bundle.js; do
    row=()
    for coding in identity gzip br zstd; do
        if [ "$path" = SITE ]; then
            row+=("${total[$coding]}")
            continue
        fi
        read -r head body sent < <(wire "$path" "$coding")
        want=$coding; [ "$coding" = identity ] && want=""
        [ "$sent" = "$want" ] || { echo "bench: $path with $coding came as '$sent'" >&2; exit 1; }
        row+=("$((head + body))")
        [ "$path" != /js/bundle.js ] && total[$coding]=$(( ${total[$coding]:-0} + head + body ))
    done
    name=$path; [ "$path" = SITE ] && name="examples/site, all 4 files"
    [ "$path" = /js/bundle.js ] && name="1 MiB bundle (playwright-core $pw_version JS)"
    printf '| %s | %d | %d | %d | %d | %s |\n' "$name" "${row[@]}" "$(ratio "${row[2]}" "${row[0]}")"
done
echo

# Server CPU per request: /proc/PID/stat utime+stime (every thread, or nginx's master and
# worker) across one wrk run, divided by the requests wrk completed.
ticks() { for p in "$@"; do awk '{print $14+$15}' "/proc/$p/stat"; done | awk '{s+=$1} END{print s}'; }
hz=$(getconf CLK_TCK)
measure() { # url pids... -> "requests/s cpu-us-per-request"
    local url=$1; shift
    local t0 t1 out
    t0=$(ticks "$@")
    out=$(taskset -c "$load_cpu" wrk -t1 -c32 -d"${secs}s" -H 'Accept-Encoding: gzip' \
          ${inm:+-H "If-None-Match: $inm"} "$url")
    t1=$(ticks "$@")
    local n rps
    n=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    awk -v n="$n" -v r="$rps" -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN{ printf "%s %.3f\n", r, d / hz * 1e6 / n }'
}
etag_gz() { curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }

echo "## gzip variant of /css/site.css, server CPU per request (median of $runs runs of ${secs} s)"
echo
echo "| scenario | notmod req/s | nginx req/s | notmod CPU µs/req | nginx CPU µs/req | CPU notmod / nginx |"
echo "|---|---:|---:|---:|---:|---:|"
gz_size=$(stat -c %s "$work/www/css/site.css.gz")
for kind in 304 200; do
    m_inm=""; n_inm=""
    if [ "$kind" = 304 ]; then
        m_inm=$(etag_gz "http://127.0.0.1:$mp/css/site.css")
        n_inm=$(etag_gz "http://127.0.0.1:$np/css/site.css")
    fi
    # Both servers must answer the same thing, or the comparison means nothing.
    for pair in "$mp|$m_inm" "$np|$n_inm"; do
        IFS='|' read -r port tag <<<"$pair"
        got=$(curl -s -o /dev/null -D "$work/h" -H 'Accept-Encoding: gzip' ${tag:+-H "If-None-Match: $tag"} \
              -w '%{http_code} %{size_download}' "http://127.0.0.1:$port/css/site.css")
        enc=$(tr -d '\r' <"$work/h" | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
        vary=$(tr -d '\r' <"$work/h" | awk -F': ' 'tolower($1)=="vary"{print $2}')
        want="200 $gz_size gzip"; [ "$kind" = 304 ] && want="304 0 "
        [ "$kind" = 304 ] && enc=""
        [ "$got $enc" = "$want" ] && [ "$vary" = "Accept-Encoding" ] ||
            { echo "bench: port $port answered '$got $enc' (Vary '$vary'), want '$want'" >&2; exit 1; }
    done
    : >"$work/m"; : >"$work/n"
    for _ in $(seq "$runs"); do
        # Alternate the servers within each run so drift on a shared machine hits both.
        inm=$m_inm measure "http://127.0.0.1:$mp/css/site.css" "$notmod_pid" >>"$work/m"
        inm=$n_inm measure "http://127.0.0.1:$np/css/site.css" $nginx_pids >>"$work/n"
    done
    mr=$(cut -d' ' -f1 "$work/m" | median); mc=$(cut -d' ' -f2 "$work/m" | median)
    nr=$(cut -d' ' -f1 "$work/n" | median); nc=$(cut -d' ' -f2 "$work/n" | median)
    name="gzip $kind, site.css ($gz_size-byte .gz)"
    [ "$kind" = 304 ] && name="gzip 304 If-None-Match, site.css"
    printf '| %s | %.0f | %.0f | %.2f | %.2f | %s |\n' "$name" "$mr" "$nr" "$mc" "$nc" "$(ratio "$mc" "$nc")"
done
