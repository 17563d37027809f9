#!/bin/bash
# Many VRRPv3 instances at a 10 ms advertisement interval between two
# namespaced nodes, ours (examples/vrrp_many.rs) against keepalived 2.2.7
# (issue 3, performance). Node A has priority 200, node B priority 100.
#
# For each case: start A, after GAP s start B, let the election settle for
# SETTLE s, then measure for RUN s:
#   - CPU % of each node's process(es) from /proc/PID/stat utime+stime
#     (keepalived: parent + VRRP child), RSS from VmRSS (summed likewise);
#   - transitions in the window (any is spurious: A stays master, B backup):
#     ours from vrrp_many's own key=value totals (its event stream),
#     keepalived from "Entering MASTER/BACKUP/FAULT STATE" log lines;
#   - advertisements per second each node put on the wire (bridge port
#     counters), to show the interval really held;
#   - how busy the whole host was (/proc/stat), since the machine is shared;
#   - a host-stall control: how often a thread doing nothing but sleeping
#     to a 10 ms cadence woke over 26 ms late in the same window
#     (wake_latency);
#   - the cost floor (issue 14), measured in the same window under the same
#     PREFIX: benches/vrrp_floor.c, compiled here with gcc, sends the same
#     COUNT advertisements (same bytes: VRRPv3, same source, VRIDs, priority,
#     interval and addresses) with one sendmmsg every 10 ms from the master's
#     namespace, out of a second interface (eth1, on a second bridge) to a
#     sink namespace where the same program reads them with recvmmsg: the
#     packets take the same kernel path as the master's (raw socket, IP,
#     veth, bridge, delivery to a joined raw socket) without disturbing the
#     two nodes. Its sender's CPU is the master's floor, its sink's the
#     backup's; the summary gives master / floor. The sink also counts the
#     gaps over 26.09 ms between the kernel receive stamps of the floor's
#     VRID 1 advertisements: the LAN going quiet (a stalled sender, packet
#     processing deferred to ksoftirqd on a busy host) is a second
#     host-stall control, one the sleeping probe cannot see.
# Cases: ours with 255 and 60 instances, keepalived with 60 and 100.
# ours-255 has no virtual addresses (255 do not fit beside the nodes in
# one /24); the other cases have one /24 VIP per instance from 192.0.2.10.
#
# Usage (root): benches/vrrp_scale.sh [RUN_SECONDS] [SETTLE_SECONDS]   (default 60 10)
#   VRRP_SCALE_CASES="ours:255 ours:60 keepalived:60 keepalived:100"  (the default)
#   VRRP_SCALE_KEEP=1  keeps the logs directory.
#   VRRP_SCALE_PREFIX="chrt -f 50"  runs both programs under that command.
#   VRRP_SCALE_OURS=PATH  measures that vrrp_many binary instead of the one built.
# Everything runs in three private namespaces (a bridge and two nodes on
# 192.0.2.0/24, IPv6 off); they are deleted on exit, even on failure.
set -euo pipefail

RUN=${1:-60}
SETTLE=${2:-10}
GAP=2
CASES=${VRRP_SCALE_CASES:-"ours:255 ours:60 keepalived:60 keepalived:100"}
# A command both programs run under, the same for both, e.g. "chrt -f 50"
# for real-time scheduling (keepalived's vrrp_rt_priority).
PREFIX=${VRRP_SCALE_PREFIX:-}
WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HZ=$(getconf CLK_TCK)

die() { echo "vrrp_scale: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, raw sockets)"
command -v ip >/dev/null || die "ip (iproute2) not found"

TAG="vscale$$"
NS_BR="$TAG-br"
NS_A="$TAG-a"
NS_B="$TAG-b"
NS_S="$TAG-s"
WORK=$(mktemp -d /tmp/vrrp-scale.XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for f in "$WORK"/*-vrrp.pid; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true
  done
  for ns in "$NS_A" "$NS_B" "$NS_S" "$NS_BR"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ "${VRRP_SCALE_KEEP:-0}" = 1 ]; then
    echo "logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -----------------------------------------------------------------
echo "building vrrp_many (release)..." >&2
cargo build --quiet --release --example vrrp_many --example wake_latency --manifest-path "$WS/Cargo.toml"
# VRRP_SCALE_OURS: another build of vrrp_many to measure (e.g. a copy of
# the binary before a change, to compare both under the same load).
OURS="${VRRP_SCALE_OURS:-$WS/target/release/examples/vrrp_many}"
PROBE="$WS/target/release/examples/wake_latency"
command -v gcc >/dev/null || die "gcc not found (it compiles the control, benches/vrrp_floor.c)"
FLOOR="$WORK/vrrp_floor"
gcc -O2 -Wall -o "$FLOOR" "$WS/benches/vrrp_floor.c"
if [[ " $CASES " == *" keepalived:"* ]] && ! command -v keepalived >/dev/null; then
  echo "installing keepalived..." >&2
  apt-get install -y --no-install-recommends keepalived >/dev/null
fi

# --- the LAN ---------------------------------------------------------------
ip netns add "$NS_BR"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip netns add "$NS_S"
for ns in "$NS_BR" "$NS_A" "$NS_B" "$NS_S"; do
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$NS_BR" link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
ip -n "$NS_BR" link set br0 up
i=1
for node in a b; do
  ns="$TAG-$node"
  ip -n "$NS_BR" link add "p$node" type veth peer name eth0 netns "$ns"
  ip -n "$NS_BR" link set "p$node" master br0 up
  ip -n "$ns" addr add "192.0.2.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  i=$((i + 1))
done
# The floor's LAN: the master's eth1 (no address: it sends from the
# master's 192.0.2.1, as the master does) and the sink's eth0 on br1.
ip -n "$NS_BR" link add br1 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
ip -n "$NS_BR" link set br1 up
ip -n "$NS_BR" link add pc type veth peer name eth1 netns "$NS_A"
ip -n "$NS_BR" link set pc master br1 up
ip -n "$NS_A" link set eth1 up
ip -n "$NS_BR" link add ps type veth peer name eth0 netns "$NS_S"
ip -n "$NS_BR" link set ps master br1 up
ip -n "$NS_S" addr add 192.0.2.2/24 dev eth0
ip -n "$NS_S" link set eth0 up

# --- measuring -------------------------------------------------------------
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Packets a node put on the wire: what its bridge port received.
wire() { ip netns exec "$NS_BR" cat "/sys/class/net/p$1/statistics/rx_packets"; }
# busy, total (without steal), and steal: the time the hypervisor ran
# someone else on our vCPUs, which stalls both programs alike.
host_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8, $9 }' /proc/stat; }
now() { date +%s.%N; }
# Packets the kernel dropped at the node's VRRP raw sockets (receive
# buffer full): the last column of /proc/net/raw, protocol 112 = 0x70.
raw_drops() { ip netns exec "$TAG-$1" awk '$2 ~ /:0070$/ { d += $NF } END { print d + 0 }' /proc/net/raw; }
# Nanoseconds the process's threads spent runnable but waiting for a CPU.
rq_wait_ns() { local t=0 p f; for p in "$@"; do for f in /proc/"$p"/task/*/schedstat; do
  t=$((t + $(awk '{ print $2 }' "$f" 2>/dev/null || echo 0))); done; done; echo "$t"; }
sum_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }
sum_rss() { local t=0 p; for p in "$@"; do t=$((t + $(rss_kib "$p"))); done; echo "$t"; }
sum_hwm() { local t=0 p; for p in "$@"; do t=$((t + $(hwm_kib "$p"))); done; echo "$t"; }
pct() { awk -v d="$1" -v hz="$HZ" -v s="$2" 'BEGIN { printf "%.1f", 100 * d / hz / s }'; }
kv() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
# kv_line FILE KEY: the value of KEY=VALUE anywhere in a line (the last).
kv_line() { sed -n "s/.*[ ^]$2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

# same_packets VRID: one advertisement of VRID from the master (bridge
# port pa) and one from the floor (pc): "yes" when TOS, TTL, protocol,
# addresses and the whole VRRP packet are the same bytes, else both in hex.
same_packets() {
  local port pids=()
  for port in pa pc; do
    ip netns exec "$NS_BR" timeout 5 tcpdump -i "$port" -c 1 -s 256 -w "$WORK/adv-$port.pcap" \
      "ip proto 112 and ip[21] = $1" >/dev/null 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" 2>/dev/null || true
  python3 - "$WORK/adv-pa.pcap" "$WORK/adv-pc.pcap" <<'EOF'
import sys
def key(path):
    try:
        frame = open(path, "rb").read()[24 + 16:]
    except OSError:
        return None
    ip = frame[14:]
    if len(ip) < 20:
        return None
    ihl = (ip[0] & 0x0f) * 4
    return bytes([ip[1], ip[8], ip[9]]) + ip[12:20] + ip[ihl:]
a, b = key(sys.argv[1]), key(sys.argv[2])
print("yes" if a is not None and a == b else f"master={a.hex() if a else None} floor={b.hex() if b else None}")
EOF
}

ROWS=()
SUMMARY=()
# stop PID... : SIGTERM, wait up to 15 s, then SIGKILL.
stop() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

keepalived_conf() { # NODE PRIORITY COUNT
  echo "global_defs {"
  echo "  router_id bench_$1"
  echo "  vrrp_version 3"
  echo "}"
  local n
  for n in $(seq "$3"); do
    cat <<EOF
vrrp_instance VI_$n {
  state BACKUP
  interface eth0
  virtual_router_id $n
  priority $2
  advert_int 0.01
  virtual_ipaddress {
    192.0.2.$((9 + n))/24
  }
}
EOF
  done
}

# start_node PROGRAM COUNT NODE PRIORITY SETTLE_FOR_IT -> sets STARTED (pids to watch)
start_node() {
  local program=$1 count=$2 node=$3 prio=$4 settle=$5 ns="$TAG-$3" log="$WORK/$1-$2-$3.log"
  if [ "$program" = ours ]; then
    local vip=()
    [ "$count" -le 100 ] && vip=(--vip-base 192.0.2.10/24)
    ip netns exec "$ns" $PREFIX "$OURS" --interface eth0 --count "$count" --interval-ms 10 \
      --priority "$prio" --settle "$settle" "${vip[@]}" >"$log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
  else
    local base="$WORK/keepalived-$count-$node"
    keepalived_conf "$node" "$prio" "$count" >"$base.conf"
    ip netns exec "$ns" $PREFIX keepalived --dont-fork --log-console --no-syslog --vrrp \
      --use-file="$base.conf" --pid="$base.pid" --vrrp_pid="$base-vrrp.pid" \
      --checkers_pid="$base-checkers.pid" --bfd_pid="$base-bfd.pid" >"$log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
  fi
}

# The keepalived VRRP child, once it has written its pid file.
vrrp_child() {
  local f="$WORK/keepalived-$1-$2-vrrp.pid"
  for _ in $(seq 100); do [ -s "$f" ] && { cat "$f"; return; }; sleep 0.1; done
  die "keepalived on node $2 wrote no VRRP pid file; log: $(tail -n 20 "$WORK/keepalived-$1-$2.log")"
}

transitions_in() { # LOG FROM_LINE -> "total master backup"
  tail -n +"$(($2 + 1))" "$1" | awk '
    /Entering MASTER STATE/ { m++ } /Entering BACKUP STATE/ { b++ } /Entering FAULT STATE/ { f++ }
    END { printf "%d %d %d\n", m + b + f, m, b }'
}

run_case() {
  local program=$1 count=$2
  echo "== $program, $count instances at 10 ms: settle ${SETTLE}s, window ${RUN}s" >&2
  start_node "$program" "$count" a 200 $((GAP + SETTLE))
  local pa=$STARTED
  sleep "$GAP"
  start_node "$program" "$count" b 100 "$SETTLE"
  local pb=$STARTED
  local procs_a=("$pa") procs_b=("$pb")
  if [ "$program" = keepalived ]; then
    procs_a+=("$(vrrp_child "$count" a)")
    procs_b+=("$(vrrp_child "$count" b)")
  fi
  sleep "$SETTLE"
  for p in "${procs_a[@]}" "${procs_b[@]}"; do
    kill -0 "$p" 2>/dev/null || die "$program ($count) exited during settle: $(tail -n 20 "$WORK/$program-$count-"*.log)"
  done
  # The floor, over the same window: started now, measured from t0 to t1.
  local vipbase=()
  if [ "$program" = keepalived ] || [ "$count" -le 100 ]; then vipbase=(192.0.2.10); fi
  ip netns exec "$NS_S" $PREFIX "$FLOOR" sink eth0 $((RUN + 60)) >"$WORK/$program-$count-sink.log" 2>&1 &
  local fsink=$!
  PIDS+=("$fsink")
  ip netns exec "$NS_A" $PREFIX "$FLOOR" send eth1 192.0.2.1 "$count" 200 10 $((RUN + 60)) "${vipbase[@]}" \
    >"$WORK/$program-$count-floor.log" 2>&1 &
  local fsend=$!
  PIDS+=("$fsend")
  sleep 1
  kill -0 "$fsend" 2>/dev/null || die "vrrp_floor send failed: $(cat "$WORK/$program-$count-floor.log")"
  kill -0 "$fsink" 2>/dev/null || die "vrrp_floor sink failed: $(cat "$WORK/$program-$count-sink.log")"
  local same
  same=$(same_packets "$count")
  [ "$same" = yes ] || [ "$program" != ours ] ||
    die "the floor's advertisement of VRID $count differs from the master's: $same"
  local la0=0 lb0=0
  if [ "$program" = keepalived ]; then
    la0=$(wc -l <"$WORK/$program-$count-a.log")
    lb0=$(wc -l <"$WORK/$program-$count-b.log")
  fi
  local t0 ca0 cb0 wa0 wb0 h0
  t0=$(now); ca0=$(sum_ticks "${procs_a[@]}"); cb0=$(sum_ticks "${procs_b[@]}")
  wa0=$(wire a); wb0=$(wire b); h0=$(host_busy)
  local cf0 cs0 wf0
  cf0=$(ticks "$fsend"); cs0=$(ticks "$fsink"); wf0=$(wire c)
  kill -USR1 "$fsink"
  local da0 db0 qa0 qb0
  da0=$(raw_drops a); db0=$(raw_drops b); qa0=$(rq_wait_ns "${procs_a[@]}"); qb0=$(rq_wait_ns "${procs_b[@]}")
  # The control: a thread doing nothing but sleeping to a 10 ms cadence,
  # under the same scheduling as the programs, during the same window.
  $PREFIX "$PROBE" "$RUN" >"$WORK/$program-$count-probe.log" 2>&1 &
  local probe=$!
  sleep "$RUN"
  wait "$probe" || die "wake_latency failed: $(cat "$WORK/$program-$count-probe.log")"
  local stalls
  stalls=$(sed -n 's/.*late_over_26ms=\([0-9]*\).*max_ms=\([0-9.]*\).*/\1 \2/p' "$WORK/$program-$count-probe.log")
  echo "control: $(cat "$WORK/$program-$count-probe.log")" >&2
  local t1 ca1 cb1 wa1 wb1 h1 ra rb secs
  t1=$(now); ca1=$(sum_ticks "${procs_a[@]}"); cb1=$(sum_ticks "${procs_b[@]}")
  wa1=$(wire a); wb1=$(wire b); h1=$(host_busy)
  local cf1 cs1 wf1
  cf1=$(ticks "$fsend"); cs1=$(ticks "$fsink"); wf1=$(wire c)
  kill -TERM "$fsend" "$fsink" 2>/dev/null || true
  wait "$fsend" "$fsink" 2>/dev/null || true
  [ "$cf1" -gt 0 ] || die "vrrp_floor send exited before the end of the window: $(cat "$WORK/$program-$count-floor.log")"
  local lanq lang
  lanq=$(kv_line "$WORK/$program-$count-sink.log" quiet_over_26ms)
  lang=$(kv_line "$WORK/$program-$count-sink.log" max_gap_ms)
  local da1 db1 qa1 qb1
  da1=$(raw_drops a); db1=$(raw_drops b); qa1=$(rq_wait_ns "${procs_a[@]}"); qb1=$(rq_wait_ns "${procs_b[@]}")
  ra=$(sum_rss "${procs_a[@]}"); rb=$(sum_rss "${procs_b[@]}")
  local ha hb
  ha=$(sum_hwm "${procs_a[@]}"); hb=$(sum_hwm "${procs_b[@]}")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  local busy
  busy=$(awk -v h0="$h0" -v h1="$h1" 'BEGIN { split(h0, x, " "); split(h1, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
  local steal
  steal=$(awk -v h0="$h0" -v h1="$h1" 'BEGIN { split(h0, x, " "); split(h1, y, " "); s = y[3] - x[3]; printf "%.0f", 100 * s / (y[2] - x[2] + s) }')
  local ta tb
  if [ "$program" = keepalived ]; then
    ta=$(transitions_in "$WORK/$program-$count-a.log" "$la0")
    tb=$(transitions_in "$WORK/$program-$count-b.log" "$lb0")
    # B first, so that A's priority-0 goodbye is not counted against it.
    stop "$pb"; stop "$pa"
  else
    stop "$pb"; stop "$pa"
    local la="$WORK/$program-$count-a.log" lb="$WORK/$program-$count-b.log"
    grep -q '^totals:' "$la" || die "ours ($count) on A printed no totals: $(tail -n 20 "$la")"
    grep -q '^totals:' "$lb" || die "ours ($count) on B printed no totals: $(tail -n 20 "$lb")"
    ta="$(kv "$la" window_transitions) $(kv "$la" window_to_master) $(kv "$la" window_to_backup)"
    tb="$(kv "$lb" window_transitions) $(kv "$lb" window_to_master) $(kv "$lb" window_to_backup)"
    local lag
    lag=$(( $(kv "$la" events_lagged) + $(kv "$lb" events_lagged) ))
    [ "$lag" = 0 ] || echo "warning: $lag state events lost by the reader; counts are a lower bound" >&2
  fi
  local node procs_cpu rss trans wire_pps drops rq_ms
  for node in a b; do
    if [ "$node" = a ]; then
      procs_cpu=$(pct $((ca1 - ca0)) "$secs"); rss=$ra; trans=$ta
      wire_pps=$(awk -v d=$((wa1 - wa0)) -v s="$secs" 'BEGIN { printf "%.0f", d / s }')
      drops=$((da1 - da0)); rq_ms=$(((qa1 - qa0) / 1000000))
    else
      procs_cpu=$(pct $((cb1 - cb0)) "$secs"); rss=$rb; trans=$tb
      wire_pps=$(awk -v d=$((wb1 - wb0)) -v s="$secs" 'BEGIN { printf "%.0f", d / s }')
      drops=$((db1 - db0)); rq_ms=$(((qb1 - qb0) / 1000000))
    fi
    read -r t_all t_m t_b <<<"$trans"
    ROWS+=("$(printf '%-10s %5s %4s %4s %7s %8s %6s %5s %5s %8s %8s %8s %6s %5s' \
      "$program" "$count" "$node" "$([ "$node" = a ] && echo 200 || echo 100)" \
      "$procs_cpu" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$t_all" "$t_m" "$t_b" "$wire_pps" "$drops" "$rq_ms" "$busy" "$secs")")
    echo "${ROWS[-1]}" >&2
    # Machine-readable too.
    echo "result program=$program instances=$count node=$node cpu_percent=$procs_cpu rss_kib=$rss hwm_kib=$([ "$node" = a ] && echo "$ha" || echo "$hb") window_transitions=$t_all to_master=$t_m to_backup=$t_b wire_adverts_per_s=$wire_pps rx_drops=$drops runqueue_wait_ms=$rq_ms host_busy_percent=$busy steal_percent=$steal probe_wakes_over_26ms=${stalls% *} probe_max_late_ms=${stalls#* } window_s=$secs"
  done
  local fpct spct mpct bpct spur
  fpct=$(pct $((cf1 - cf0)) "$secs"); spct=$(pct $((cs1 - cs0)) "$secs")
  mpct=$(pct $((ca1 - ca0)) "$secs"); bpct=$(pct $((cb1 - cb0)) "$secs")
  read -r spur _ <<<"$ta"; read -r t_all _ <<<"$tb"; spur=$((spur + t_all))
  local fwire
  fwire=$(awk -v d=$((wf1 - wf0)) -v s="$secs" 'BEGIN { printf "%.0f", d / s }')
  echo "floor program=$program instances=$count same_bytes=$same send_cpu_percent=$fpct sink_cpu_percent=$spct wire_adverts_per_s=$fwire lan_quiet_over_26ms=$lanq lan_max_gap_ms=$lang master_over_floor=$(awk -v m="$mpct" -v f="$fpct" 'BEGIN { printf "%.2f", (f > 0 ? m / f : 0) }')"
  SUMMARY+=("$(printf '%-10s %5s %7s %7s %6s %7s %7s %6s %13s %13s %5s %9s %7s %9s' \
    "$program" "$count" "$fpct" "$mpct" \
    "$(awk -v m="$mpct" -v f="$fpct" 'BEGIN { printf "%.2f", (f > 0 ? m / f : 0) }')" \
    "$spct" "$bpct" "$(awk -v m="$mpct" -v b="$bpct" 'BEGIN { printf "%.2f", (m > 0 ? b / m : 0) }')" \
    "$(awk -v h="$ha" -v r="$ra" 'BEGIN { printf "%.1f/%.1f", h / 1024, r / 1024 }')" \
    "$(awk -v h="$hb" -v r="$rb" 'BEGIN { printf "%.1f/%.1f", h / 1024, r / 1024 }')" \
    "$spur" "$((da1 - da0))/$((db1 - db0))" "${stalls% *}" "$lanq/$lang")")
}

echo "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; keepalived: $(keepalived --version 2>&1 | head -n 1 || echo none)"
for c in $CASES; do
  run_case "${c%%:*}" "${c##*:}"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-10s %5s %4s %4s %7s %8s %6s %5s %5s %8s %8s %8s %6s %5s\n' \
  program inst node prio "cpu%" rss_MiB trans "->M" "->B" wire/s rx_drops rq_ms "host%" win_s
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "trans = state transitions in the window (all spurious), ->M / ->B by new state;"
echo "wire/s = advertisements the node sent per second (bridge port counter);"
echo "rx_drops = packets dropped at the node's protocol-112 raw sockets (receive buffer full);"
echo "rq_ms = time the node's threads were runnable but waiting for a CPU (schedstat);"
echo "cpu% of one core (keepalived: parent + VRRP child); host% = whole-host busy share in the window."
echo "probe_wakes_over_26ms = times a thread sleeping to a 10 ms cadence woke more than 26.09 ms"
echo "late in the same window (examples/wake_latency.rs): a master that late is silent for a whole"
echo "Master_Down_Interval at a priority-100 backup, so each such stall can cost 2 transitions per"
echo "instance whatever the program."
echo
echo "Summary (issue 14 targets at 255: master <= 1.25x floor, backup <= master, RSS < 8 MiB, 0 spurious):"
printf '%-10s %5s %7s %7s %6s %7s %7s %6s %13s %13s %5s %9s %7s %9s\n' \
  program inst "floor%" "mast%" "m/fl" "sink%" "back%" "b/m" "A_MiB_hwm/rss" "B_MiB_hwm/rss" spur "drops_a/b" stalls "lanq/max"
for r in "${SUMMARY[@]}"; do echo "$r"; done
echo "floor% = benches/vrrp_floor.c sending the same adverts with one sendmmsg per 10 ms (its CPU);"
echo "sink% = the same program reading them with recvmmsg; mast% / back% = nodes A / B;"
echo "spur = transitions of A and B in the window; stalls = probe wakes over 26 ms late;"
echo "lanq/max = gaps over 26.09 ms between the kernel receive stamps of the floor's successive"
echo "VRID 1 advertisements at its sink, and the longest gap in ms: the LAN itself went quiet"
echo "(a sender stalled or the host deferred packet processing), whatever the programs do."
