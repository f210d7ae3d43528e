# Sourced by the bench scripts: the notmod binary, a work directory nginx's workers can enter,
# and a cleanup that stops every process listed in pids and removes the directory.
top=$(cd "$(dirname "$0")/.." && pwd)
notmod=${NOTMOD:-$top/build/release/notmod}
work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as nobody
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
