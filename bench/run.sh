#!/usr/bin/env bash
# HTTP throughput, notmod and nginx side by side on loopback, in the same run: the same files,
# one worker each, keep-alive, access logs off. Prints a Markdown table of medians and ratios.
# Usage: bench/run.sh [RUNS] [SECONDS]   (defaults 5 runs of 5 s per scenario and server)
set -euo pipefail
runs=${1:-5}
secs=${2:-5}
source "$(dirname "$0")/common.sh"

for tool in wrk nginx; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench: $tool is missing (scripts/install-deps)" >&2; exit 1; }
done
[ -x "$notmod" ] || { echo "bench: build the release binary first (make release)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/site"
head -c 4096 /dev/urandom | base64 -w 76 | head -c 4096 >"$work/site/small.txt"
head -c $((1024 * 1024)) /dev/urandom >"$work/site/big.bin"
# Files just written are "racy" for two seconds (a same-tick rewrite could hide from stat), and
# notmod re-reads them until then; a deployed site's files are older.
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
    types { text/plain txt; application/octet-stream bin; }
    server {
        listen 127.0.0.1:$np;
        root $work/site;
        etag on;
    }
}
CONF
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

"$notmod" serve --workers 1 --access-log off --listen 127.0.0.1:0 "$work/site" >"$work/notmod.out" 2>"$work/notmod.err" &
notmod_pid=$!
pids+=($notmod_pid)
for _ in $(seq 50); do grep -q http "$work/notmod.err" 2>/dev/null && break; sleep 0.1; done
mp=$(grep -o '127.0.0.1:[0-9]*' "$work/notmod.err" | head -n 1 | cut -d: -f2)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$np/small.txt" && break; sleep 0.1; done

etag_of() { curl -sI "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }

# wrk prints "Requests/sec: N"; one number per run.
measure() { # url [header]
    local args=(-t1 -c32 -d"${secs}s" --latency)
    [ -n "${2:-}" ] && args+=(-H "$2")
    wrk "${args[@]}" "$1" | awk '/Requests\/sec/{print $2}'
}

median() { sort -n | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

echo "| scenario | notmod req/s | nginx req/s | notmod / nginx |"
echo "|---|---:|---:|---:|"
for scenario in "304 If-None-Match, 4 KiB file|small.txt|inm" "200, 4 KiB file|small.txt|" "200, 1 MiB file|big.bin|"; do
    IFS='|' read -r name file kind <<<"$scenario"
    m_hdr=""; n_hdr=""
    if [ "$kind" = inm ]; then
        m_hdr="If-None-Match: $(etag_of "http://127.0.0.1:$mp/$file")"
        n_hdr="If-None-Match: $(etag_of "http://127.0.0.1:$np/$file")"
    fi
    # Both servers must answer the same thing, or the comparison means nothing.
    for pair in "$mp|$m_hdr" "$np|$n_hdr"; do
        IFS='|' read -r port hdr <<<"$pair"
        got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' ${hdr:+-H "$hdr"} "http://127.0.0.1:$port/$file")
        want="200 $(stat -c %s "$work/site/$file")"
        [ "$kind" = inm ] && want="304 0"
        [ "$got" = "$want" ] || { echo "bench: port $port answered '$got' for $file, want '$want'" >&2; exit 1; }
    done
    : >"$work/m"; : >"$work/n"
    for _ in $(seq "$runs"); do
        # Alternate the servers within each run so drift on a shared machine hits both.
        measure "http://127.0.0.1:$mp/$file" "$m_hdr" >>"$work/m"
        measure "http://127.0.0.1:$np/$file" "$n_hdr" >>"$work/n"
    done
    m=$(median <"$work/m"); n=$(median <"$work/n")
    printf '| %s | %.0f | %.0f | %.2f |\n' "$name" "$m" "$n" "$(awk -v a="$m" -v b="$n" 'BEGIN{print a/b}')"
done

rss_kib() { awk '/^VmRSS/{s+=$2} END{print s}' "$@"; }
nginx_procs=$(pgrep -f "nginx.*$work/nginx" | sed 's|.*|/proc/&/status|')
echo
echo "Resident memory after the runs: notmod $(rss_kib /proc/$notmod_pid/status) KiB," \
     "nginx $(rss_kib $nginx_procs) KiB (master and worker)."

