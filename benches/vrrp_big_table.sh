#!/bin/bash
# A master's advertisements beside a large routing table: keepalived users
# write `virtual_routes` without a table, so they go in main, and a gateway
# that also runs a BGP engine may have a full table there. The driver
# follows the kernel's routes to heal its own (a notice as they come, a
# re-read every 5 s); this measures what that costs the VRRP loop.
#
# `vrrpd run` (release build) is master of one VRRPv3 instance at 100 ms
# adverts with one virtual route in main. N blackhole host routes
# (2001:db8:1::/48, never used to send) are loaded in one of two tables,
# one phase each, in the same run:
#   control: table 200, which the driver does not follow;
#   main:    main, beside the virtual route.
# A peer namespace on the same bridge captures every advertisement with
# its kernel receive time. Reported per phase: the interval between
# consecutive advertisements (ideal 100 ms) as p50 / p99 / p99.9 / max,
# how many exceeded 200 ms and 341 ms (Master_Down_Interval of a backup at
# priority 100: a spurious takeover), the daemon's CPU time and resident
# memory over the phase, and whether the virtual route is in place.
#
# With KEEPALIVED=1, a third phase runs keepalived (the same
# keepalived.conf, main table) in vrrpd's place, for comparison.
#
# Usage (root): benches/vrrp_big_table.sh [N] [SECONDS]   (default 500000 60)
#   VRRPD=PATH  measures that vrrpd binary instead of the one built.
#   KEEPALIVED=1  adds the keepalived phase.
# Everything runs in private namespaces (deleted on exit, even on failure).
set -euo pipefail

N=${1:-500000}
SECS=${2:-60}
cd "$(dirname "$0")/.."
if [ -z "${VRRPD:-}" ]; then
  cargo build -q --release -p vrrpd
  VRRPD=$PWD/target/release/vrrpd
fi
D=$(mktemp -d /tmp/vrrp-big-table.XXXX)

cleanup() {
  pkill -f "vrrpd run -c $D/" 2>/dev/null || true
  pkill -f "keepalived -n -l -f $D/" 2>/dev/null || true
  pkill -f "tcpdump -i eth0 -n -tt -l ip proto 112" 2>/dev/null || true
  sleep 0.3
  for n in bt-a bt-b bt-br; do ip netns del $n 2>/dev/null || true; done
}
trap 'cleanup; rm -rf "$D"' EXIT

# The daemon's CPU seconds (user + system) and resident KiB, from /proc.
cpu_of() { awk '{print ($14 + $15) / 100}' /proc/$1/stat; }
rss_of() { awk '/VmRSS/ {print $2}' /proc/$1/status; }

python3 - "$N" > $D/routes <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"route add blackhole 2001:db8:1::{i // 65536:x}:{i % 65536:x}/128 table TABLE")
PY

cat > $D/keepalived.conf <<CONF
global_defs {
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 71
  priority 200
  advert_int 0.1
  virtual_ipaddress {
    192.0.2.71/24
  }
  virtual_routes {
    198.51.100.0/24 via 192.0.2.254 dev eth0
  }
}
CONF
"$VRRPD" import-keepalived $D/keepalived.conf > $D/vrrpd.toml 2> $D/import.log

phase() {
  local name=$1 table=$2 daemon=${3:-vrrpd}
  cleanup
  for n in bt-a bt-b bt-br; do ip netns add $n; done
  ip -n bt-br link add br0 type bridge
  ip -n bt-br link set br0 up
  for n in a b; do
    ip link add eth0 netns bt-$n type veth peer name veth-$n netns bt-br
    ip -n bt-br link set dev veth-$n master br0 up
    ip -n bt-$n link set lo up
    ip -n bt-$n link set eth0 up
  done
  ip -n bt-a addr add 192.0.2.1/24 dev eth0
  ip -n bt-b addr add 192.0.2.2/24 dev eth0
  local t0=$(date +%s.%N)
  sed "s/TABLE/$table/" $D/routes | ip -n bt-a -batch -
  local loaded=$(echo "$(date +%s.%N) - $t0" | bc)
  ip netns exec bt-b tcpdump -i eth0 -n -tt -l ip proto 112 > $D/adverts.$name 2>/dev/null &
  sleep 0.5
  if [ "$daemon" = keepalived ]; then
    # -n: foreground, one process (--vrrp: no checker child).
    ip netns exec bt-a keepalived -n -l -f $D/keepalived.conf --vrrp -p $D/ka.pid -r $D/ka-vrrp.pid \
      > $D/keepalived.log 2>&1 &
  else
    ip netns exec bt-a "$VRRPD" run -c $D/vrrpd.toml --name bt > $D/vrrpd.$name.log 2>&1 &
  fi
  local pid=$!
  sleep 3   # start-up (it reads the tables it follows once) and election
  # keepalived's VRRP work is done by its child process.
  local measured=$pid
  [ "$daemon" = keepalived ] && measured=$(cat $D/ka-vrrp.pid)
  local cpu0=$(cpu_of $measured) lines0=$(wc -l < $D/adverts.$name)
  sleep "$SECS"
  local cpu1=$(cpu_of $measured) rss=$(rss_of $measured)
  local route=$(ip -n bt-a route show 198.51.100.0/24 | grep -c 'via 192.0.2.254' || true)
  tail -n +$((lines0 + 1)) $D/adverts.$name | awk '{print $1}' | python3 -c '
import sys
name, loaded, cpu, rss, route = sys.argv[1:6]
t = [float(l) for l in sys.stdin if l.strip()]
iv = sorted((b - a) * 1000 for a, b in zip(t, t[1:]))
if not iv:
    print(f"{name:8} no advertisements"); sys.exit(1)
q = lambda p: iv[min(len(iv) - 1, int(p * len(iv)))]
place = "in place" if route == "1" else "MISSING"
print(f"{name:8} loaded in {float(loaded):5.1f} s  adverts {len(t):5}  interval ms p50 {q(.5):6.1f} p99 {q(.99):6.1f} "
      f"p99.9 {q(.999):6.1f} max {iv[-1]:6.1f}  >200 ms {sum(i > 200 for i in iv)}  >341 ms {sum(i > 341 for i in iv)}  "
      f"cpu {float(cpu):5.2f} s  rss {int(rss) // 1024} MiB  virtual route {place}")
' "$name" "$loaded" "$(echo "$cpu1 - $cpu0" | bc)" "$rss" "$route"
  kill $pid
  wait $pid 2>/dev/null || true
}

echo "vrrpd: $VRRPD; $N routes; $SECS s a phase; 100 ms adverts"
phase control 200
phase main main
if [ "${KEEPALIVED:-0}" = 1 ]; then
  phase keepalived main keepalived
fi
