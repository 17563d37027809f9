#!/bin/bash
# 1,000 real loopback servers (500 TCP listeners, 500 hyper HTTP servers) in
# one process, checked every second by the healthcheck runner in another
# (TCP connect / HTTP GET with MD5 digest). Reports the checker's CPU % and
# RSS over a steady-state window, measured from /proc by the checker itself
# and cross-checked with ps.
#
# Usage: benches/healthcheck_1000.sh [TCP_SERVERS] [HTTP_SERVERS] [SECONDS] [THREADS]
# Defaults: 500 500 30 1 (a single-threaded runtime, like keepalived's checker).
set -euo pipefail

TCP=${1:-500}
HTTP=${2:-500}
SECONDS_RUN=${3:-30}
THREADS=${4:-1}
WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/healthcheck-bench.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Each check holds a socket for a moment; servers hold one per listener.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --quiet --release -p healthcheck --example load --manifest-path "$WS/Cargo.toml"
LOAD="$WS/target/release/examples/load"

"$LOAD" serve --tcp "$TCP" --http "$HTTP" --ports-file "$WORK/ports" &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$WORK/ports" ] && break; sleep 0.1; done
[ -f "$WORK/ports" ] || { echo "server did not start" >&2; exit 1; }

"$LOAD" check --ports-file "$WORK/ports" --interval-ms 1000 --duration-secs "$SECONDS_RUN" \
  --warmup-secs 5 --threads "$THREADS" > "$WORK/result" &
CHECK_PID=$!
sleep $((5 + SECONDS_RUN / 2))
PS_LINE=$(ps -o %cpu=,rss= -p "$CHECK_PID" || true)
wait "$CHECK_PID"

echo "healthcheck_1000: $(cat "$WORK/result")"
echo "healthcheck_1000: ps mid-run (lifetime %cpu, rss KiB): $PS_LINE"
echo "healthcheck_1000: host $(nproc) cores, $(uname -r)"
