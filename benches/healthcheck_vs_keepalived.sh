#!/bin/bash
# The same loopback servers, checked every second (3 s timeout) first by
# keepalived's checker process, then by the healthcheck runner: by default
# 10,000 checks, half TCP connects (TCP_CHECK) and half HTTP GETs of a page
# whose MD5 digest is checked (HTTP_GET with digest). Reports, for each
# checker over the same window: CPU % of one core, CPU time per connection,
# RSS, and the connection rate the servers really saw (against the
# configured rate of CHECKS per second); for ours also the runner's own
# attempt rate and scheduling lag (p50/p99/max). As a control, a thread
# that only sleeps to a 1 ms cadence (examples/wake_latency.rs, under the
# same PREFIX) runs through our checker's window: its lateness is the
# machine's, so a lag of ours close to it is the host's, not the runner's.
#
# keepalived's checker exits at start-up without IPVS ("IPVS: Can't
# initialize ipvs: No such file or directory" when the kernel has no ip_vs
# module, as on this host). To let it run its checks anyway, an LD_PRELOAD
# shim (built below from C) fakes only the IPVS generic netlink socket:
# genl_ctrl_resolve("IPVS") gets a dummy family id and every IPVS command is
# answered with an ACK without reaching the kernel. The TCP checks are real.
#
# Ours runs on a tokio runtime of THREADS workers (default 2, as `vrrpd
# run` builds it): the runner's scheduler is one task, each attempt a task
# of its own spread over the workers. THREADS=1 runs everything on one
# thread (a current-thread runtime), as keepalived's checker does.
#
# Usage: benches/healthcheck_vs_keepalived.sh [CHECKS] [SECONDS] [HTTP_PERCENT]
#        (default 10000 30 50; "1000 30 0" is the earlier 1,000 TCP_CHECK run)
# Needs root, gcc and keepalived (apt-get install keepalived). CPU figures
# need a quiet machine: run it twice and compare.
set -euo pipefail

N=${1:-10000}
RUN=${2:-30}
HTTP_PERCENT=${3:-50}
THREADS=${THREADS:-2}
HTTP=$(( N * HTTP_PERCENT / 100 ))
TCP=$(( N - HTTP ))
WARMUP=5
WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/healthcheck-vs-keepalived.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

command -v keepalived >/dev/null || { echo "keepalived not installed" >&2; exit 1; }
# PREFIX="chrt -f 10" runs both checkers with the same command prefix (here
# real-time priority, like keepalived's checker_rt_priority, so that other
# work on a shared machine does not delay their timers).
PREFIX=${PREFIX:-}
# LOAD=/path/to/an/older/load compares another build of the same example.
if [ -z "${LOAD:-}" ]; then
  cargo build --quiet --release -p healthcheck --example load --manifest-path "$WS/Cargo.toml"
  LOAD="$WS/target/release/examples/load"
fi
cargo build --quiet --release --example wake_latency --manifest-path "$WS/Cargo.toml"
PROBE="$WS/target/release/examples/wake_latency"

cat > "$WORK/fakeipvs.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/netlink.h>
struct nl_sock;
static int ipvs_fd = -1, pending;
static struct nlmsghdr last_hdr;
int genl_ctrl_resolve(struct nl_sock *s, const char *name) {
  if (name && strcmp(name, "IPVS") == 0) {
    int (*get_fd)(const struct nl_sock *) = (int (*)(const struct nl_sock *))dlsym(RTLD_DEFAULT, "nl_socket_get_fd");
    ipvs_fd = get_fd ? get_fd(s) : -1;
    return 0x7ff0;
  }
  int (*real)(struct nl_sock *, const char *) = (int (*)(struct nl_sock *, const char *))dlsym(RTLD_NEXT, "genl_ctrl_resolve");
  return real(s, name);
}
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  ssize_t (*real)(int, const struct msghdr *, int) = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
  if (fd != ipvs_fd || ipvs_fd < 0) return real(fd, msg, flags);
  size_t total = 0;
  for (size_t i = 0; i < msg->msg_iovlen; i++) total += msg->msg_iov[i].iov_len;
  if (msg->msg_iovlen > 0 && msg->msg_iov[0].iov_len >= sizeof(struct nlmsghdr)) {
    memcpy(&last_hdr, msg->msg_iov[0].iov_base, sizeof last_hdr);
    pending++;
  }
  return (ssize_t)total;
}
ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  ssize_t (*real)(int, struct msghdr *, int) = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
  if (fd != ipvs_fd || ipvs_fd < 0) return real(fd, msg, flags);
  if (!pending) { errno = EAGAIN; return -1; }
  struct { struct nlmsghdr h; struct nlmsgerr e; } ack;
  memset(&ack, 0, sizeof ack);
  ack.h.nlmsg_len = sizeof ack;
  ack.h.nlmsg_type = NLMSG_ERROR;
  ack.h.nlmsg_seq = last_hdr.nlmsg_seq;
  ack.h.nlmsg_pid = last_hdr.nlmsg_pid;
  ack.e.msg = last_hdr;
  if (msg->msg_iovlen == 0) { errno = EINVAL; return -1; }
  size_t n = msg->msg_iov[0].iov_len < sizeof ack ? msg->msg_iov[0].iov_len : sizeof ack;
  memcpy(msg->msg_iov[0].iov_base, &ack, n);
  if (msg->msg_name && msg->msg_namelen >= sizeof(struct sockaddr_nl)) {
    struct sockaddr_nl *sa = msg->msg_name;
    memset(sa, 0, sizeof *sa);
    sa->nl_family = AF_NETLINK;
    msg->msg_namelen = sizeof *sa;
  }
  msg->msg_controllen = 0;
  msg->msg_flags = n < sizeof ack ? MSG_TRUNC : 0;
  if (!(flags & MSG_PEEK)) pending--;
  return (flags & MSG_TRUNC) ? (ssize_t)sizeof ack : (ssize_t)n;
}
C
gcc -shared -fPIC -O2 -o "$WORK/fakeipvs.so" "$WORK/fakeipvs.c" -ldl

"$LOAD" serve --tcp "$TCP" --http "$HTTP" --ports-file "$WORK/ports" &
PIDS+=($!)
for _ in $(seq 600); do [ -f "$WORK/ports.accepts" ] && break; sleep 0.1; done
[ -f "$WORK/ports.accepts" ] || { echo "server did not start" >&2; exit 1; }

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # utime + stime, USER_HZ=100
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
accepts() { cat "$WORK/ports.accepts"; }
# Prints "cpu_percent=.. cpu_us_per_connect=.. rss_kib=.. connects_per_sec=.."
# for pid $1 over RUN s.
measure() {
  local pid=$1 t0 a0 t1 a1
  sleep "$WARMUP"
  t0=$(ticks "$pid"); a0=$(accepts)
  sleep "$RUN"
  t1=$(ticks "$pid"); a1=$(accepts)
  awk -v d=$((t1 - t0)) -v s="$RUN" -v c=$((a1 - a0)) -v r="$(rss "$pid")" -v n="$N" 'BEGIN {
    printf "cpu_percent=%.1f cpu_us_per_connect=%.1f rss_kib=%d connects_per_sec=%.0f vs_configured=%+.2f%%\n",
      d / s, d * 10000 / (c > 0 ? c : 1), r, c / s, (c / s / n - 1) * 100 }'
}

# keepalived: one virtual server, N real servers, each with a TCP_CHECK or
# an HTTP_GET whose digest is the served page's (load.rs PAGE).
DIGEST=$(printf '<html><body>ok</body></html>\n' | md5sum | cut -d' ' -f1)
{
  echo 'global_defs { router_id healthcheck_bench }'
  echo 'virtual_server 127.0.0.1 9 {'
  echo '  delay_loop 1'
  echo '  lb_algo rr'
  echo '  lb_kind NAT'
  echo '  protocol TCP'
  while read -r kind port; do
    echo "  real_server 127.0.0.1 $port { weight 1"
    if [ "$kind" = http ]; then
      echo "    HTTP_GET { url { path / digest $DIGEST } connect_timeout 3 retry 1 delay_before_retry 1 }"
    else
      echo '    TCP_CHECK { connect_timeout 3 retry 1 delay_before_retry 1 }'
    fi
    echo '  }'
  done < "$WORK/ports"
  echo '}'
} > "$WORK/keepalived.conf"

LD_PRELOAD="$WORK/fakeipvs.so" $PREFIX keepalived -C -n -l -f "$WORK/keepalived.conf" \
  -p "$WORK/keepalived.pid" -c "$WORK/checkers.pid" > "$WORK/keepalived.log" 2>&1 &
KA=$!
PIDS+=($KA)
for _ in $(seq 300); do [ -s "$WORK/checkers.pid" ] && break; sleep 0.1; done
CHECKER=$(cat "$WORK/checkers.pid" 2>/dev/null || true)
if [ -z "$CHECKER" ] || ! kill -0 "$CHECKER" 2>/dev/null; then
  echo "keepalived checker did not start:" >&2
  tail -20 "$WORK/keepalived.log" >&2
  exit 1
fi
KA_RESULT=$(measure "$CHECKER")
kill -TERM "$KA"
wait "$KA" 2>/dev/null || true
sleep 1

$PREFIX "$LOAD" check --ports-file "$WORK/ports" --interval-ms 1000 --duration-secs $((WARMUP + RUN + 2)) \
  --warmup-secs 1 --threads "$THREADS" > "$WORK/ours" &
OURS=$!
PIDS+=($OURS)
$PREFIX "$PROBE" $((WARMUP + RUN)) 1 > "$WORK/host_lag" &
PROBE_PID=$!
PIDS+=($PROBE_PID)
OUR_RESULT=$(measure "$OURS")
wait "$OURS" || true
wait "$PROBE_PID" || true

KA_FAILED=$(grep -c -i 'fail\|timeout' "$WORK/keepalived.log" || true)
echo "keepalived $(keepalived --version 2>&1 | head -1 | awk '{print $2}') checker, $TCP TCP_CHECK + $HTTP HTTP_GET (digest): $KA_RESULT log_failure_lines=$KA_FAILED"
echo "healthcheck runner ($THREADS threads), $TCP TCP + $HTTP HTTP (digest): $OUR_RESULT"
echo "healthcheck self-report: $(cat "$WORK/ours")"
echo "host control, a thread sleeping to a 1 ms cadence in the same window (prefix '${PREFIX}'): $(cat "$WORK/host_lag")"
echo "host: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg), prefix '${PREFIX}'"
