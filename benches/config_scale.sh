#!/bin/bash
# keepalived's largest published IPVS configuration (2,277 virtual servers,
# 38,709 real servers with TCP_CHECK, over TCP, UDP and fwmark; written by
# benches/keepalived_scale_conf.py): how long `vrrpd import-keepalived` and
# `vrrpd check` take and how much memory they use, next to `keepalived -t`
# on the same file in the same run (the control; keepalived 2.4.3 was
# measured elsewhere at 0.45 s and 23 MB, 2.2.7 is what Debian ships).
#
# Runs alternate between the three commands; each figure is the median of
# RUNS runs, from /usr/bin/time: wall clock, CPU (user + system) and peak
# RSS. CPU time is the figure to trust on a loaded machine: wall clock
# includes waiting for a core.
#
# Usage: benches/config_scale.sh [RUNS]   (default 9)
# Needs keepalived (apt-get install keepalived), python3, /usr/bin/time.
set -euo pipefail

RUNS=${1:-9}
WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/config-scale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

command -v keepalived >/dev/null || { echo "keepalived not installed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not installed (apt-get install time)" >&2; exit 1; }
cargo build --quiet --release -p vrrpd --manifest-path "$WS/Cargo.toml"
VRRPD="$WS/target/release/vrrpd"

python3 "$WS/benches/keepalived_scale_conf.py" > "$WORK/keepalived.conf" 2>/dev/null
"$VRRPD" import-keepalived "$WORK/keepalived.conf" -o "$WORK/vrrpd.toml" 2>/dev/null
"$VRRPD" check -c "$WORK/vrrpd.toml" > /dev/null
keepalived -t -f "$WORK/keepalived.conf" > /dev/null 2>&1 || true

# One run: "wall_s cpu_s rss_kb", appended to $1.
measure() {
  local out=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > /dev/null 2>&1 || true
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$WORK/time" >> "$out"
}

for _ in $(seq "$RUNS"); do
  measure "$WORK/keepalived" keepalived -t -f "$WORK/keepalived.conf"
  measure "$WORK/import" "$VRRPD" import-keepalived "$WORK/keepalived.conf" -o "$WORK/out.toml"
  measure "$WORK/check" "$VRRPD" check -c "$WORK/vrrpd.toml"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() {
  local name=$1 file=$2
  local wall cpu rss
  wall=$(cut -d' ' -f1 "$file" | median)
  cpu=$(cut -d' ' -f2 "$file" | median)
  rss=$(cut -d' ' -f3 "$file" | median)
  printf "| %-40s | %8s s | %8s s | %7.1f MB |\n" "$name" "$wall" "$cpu" "$(echo "$rss / 1024" | bc -l)"
}

echo "$(grep -c '^virtual_server' "$WORK/keepalived.conf") virtual servers, $(grep -c 'real_server' "$WORK/keepalived.conf") real servers, $(wc -c < "$WORK/keepalived.conf") bytes; $RUNS runs each, medians; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "| command                                  |     wall   |  CPU (u+s) |  peak RSS  |"
echo "| ---------------------------------------- | ---------- | ---------- | ---------- |"
row "keepalived -t ($(keepalived --version 2>&1 | head -1 | awk '{print $2}'), control)" "$WORK/keepalived"
row "vrrpd import-keepalived" "$WORK/import"
row "vrrpd check" "$WORK/check"
echo "targets: no more time than keepalived 2.4.3's keepalived -t (0.45 s) nor than the control; at most 2x its memory (46 MB)"
