#!/bin/bash
# Boots a small qemu VM with the Debian kernel (which ships ip_vs as modules)
# and runs the lvs crate's kernel tests (tests/kernel.rs) inside it, then
# vrrpd's (vrrpd/tests/ipvs_vm.rs: the vrrpd binary and keepalived 2.2.7 on
# the same keepalived.conf, one after the other, against the VM's ip_vs;
# vrrpd/tests/ipvs_vm_reload.rs: real-server health kept across SIGHUP).
#
# Usage:
#   lvs/vm/run-vm-tests.sh            build the static musl test binary, vrrpd and its VM
#                                     tests, boot, run every kernel test; exit 0 only if
#                                     all ran and passed
#   lvs/vm/run-vm-tests.sh --capture  boot with strace and record ipvsadm's netlink
#                                     traffic into lvs/testdata/ipvsadm/ (see the README there)
#   lvs/vm/run-vm-tests.sh --scale    run the ipvs_scale example (keepalived's 2,277 virtual /
#                                     37,205 real servers) against the VM's kernel, and a fixed
#                                     CPU loop on the host and in the VM to state the slowdown
#
# Environment: LVS_VM_CACHE (kernel cache, default ~/.cache/lvs-vm), TIMEOUT (s, default 900),
# ACCEL (kvm|tcg; default kvm only where kvm_intel/kvm_amd is loaded: the nested /dev/kvm of
# some sandboxes runs a stock kernel far slower than TCG).
#
# Works non-interactively as root on a fresh Debian machine: missing tools come from apt.
# Adapted from the shared ipvs-vm recipe; the pitfalls it met are kept as comments below.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRATE=$(dirname "$HERE")
WS=$(dirname "$CRATE")
CACHE=${LVS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lvs-vm}
TIMEOUT=${TIMEOUT:-900}
MODE=test
case "${1:-}" in
  "") ;;
  --capture) MODE=capture ;;
  --scale) MODE=scale ;;
  *) echo "usage: $0 [--capture|--scale]" >&2; exit 2 ;;
esac
log() { echo "[lvs-vm] $*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T_START=$(now_ms)

# 0. host tools -----------------------------------------------------------------
PKGS=(qemu-system-x86 busybox-static ipvsadm cpio kmod xz-utils zstd)
[ "$MODE" = test ] && PKGS+=(keepalived binutils)
[ "$MODE" = capture ] && PKGS+=(strace)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install ${missing[*]}"; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=/usr/bin/busybox
if ldd "$BUSYBOX" >/dev/null 2>&1; then log "$BUSYBOX is not static (busybox-static missing?)"; exit 1; fi

# ACCEL: real VT-x/AMD-V only
if [ -z "${ACCEL:-}" ]; then
  ACCEL=tcg
  if { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ]; then ACCEL=kvm; fi
fi

# 1. static test binary ----------------------------------------------------------------
TARGET=x86_64-unknown-linux-musl
if [ "$MODE" = test ]; then
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
  fi
  T0=$(now_ms)
  BUILD_JSON=$(cd "$WS" && cargo test -p lvs --target "$TARGET" --test kernel --no-run --message-format=json)
  BIN=$(printf '%s\n' "$BUILD_JSON" | grep -o '"executable":"[^"]*/deps/kernel-[0-9a-f]*"' | tail -1 | cut -d'"' -f4)
  [ -n "$BIN" ] && [ -x "$BIN" ] || { log "could not find the kernel test binary"; exit 1; }
  T_BUILD=$(( $(now_ms) - T0 ))
  # the binary is static: list its tests on the host to know how many must run in the VM
  EXPECTED_LVS=$("$BIN" --list 2>/dev/null | grep -c ': test$' || true)
  [ "$EXPECTED_LVS" -gt 0 ] || { log "the kernel test binary lists no tests"; exit 1; }
  # vrrpd and its VM tests: ordinary (glibc) builds, copied with their libraries
  T0=$(now_ms)
  VBUILD_JSON=$(cd "$WS" && cargo test -p vrrpd --test ipvs_vm --test ipvs_vm_reload --no-run --message-format=json)
  VBIN=$(printf '%s\n' "$VBUILD_JSON" | grep -o '"executable":"[^"]*/deps/ipvs_vm-[0-9a-f]*"' | tail -1 | cut -d'"' -f4)
  VBIN2=$(printf '%s\n' "$VBUILD_JSON" | grep -o '"executable":"[^"]*/deps/ipvs_vm_reload-[0-9a-f]*"' | tail -1 | cut -d'"' -f4)
  [ -n "$VBIN2" ] && [ -x "$VBIN2" ] || { log "could not find vrrpd's VM reload tests"; exit 1; }
  EXPECTED_RELOAD=$("$VBIN2" --list 2>/dev/null | grep -c ': test$' || true)
  [ "$EXPECTED_RELOAD" -gt 0 ] || { log "vrrpd's VM reload test binary lists no tests"; exit 1; }
  VRRPD=$(printf '%s\n' "$VBUILD_JSON" | grep -o '"executable":"[^"]*/vrrpd"' | tail -1 | cut -d'"' -f4)
  [ -n "$VBIN" ] && [ -x "$VBIN" ] && [ -n "$VRRPD" ] && [ -x "$VRRPD" ] || { log "could not find vrrpd or its VM tests"; exit 1; }
  EXPECTED_VRRPD=$("$VBIN" --list 2>/dev/null | grep -c ': test$' || true)
  [ "$EXPECTED_VRRPD" -gt 0 ] || { log "vrrpd's VM test binary lists no tests"; exit 1; }
  EXPECTED=$((EXPECTED_LVS + EXPECTED_VRRPD + EXPECTED_RELOAD))
  T_BUILD=$((T_BUILD + $(now_ms) - T0))
  log "test binaries $BIN ($EXPECTED_LVS kernel tests), $VBIN ($EXPECTED_VRRPD vrrpd tests), build ${T_BUILD}ms"
fi
if [ "$MODE" = scale ]; then
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
  fi
  T0=$(now_ms)
  (cd "$WS" && cargo build --release -p lvs --example ipvs_scale --target "$TARGET")
  SCALE_BIN=$WS/target/$TARGET/release/examples/ipvs_scale
  # the daemon itself on the same size: keepalived's 2.3.0 case generated as a keepalived.conf,
  # imported; its TCP_CHECKs fail slowly (5 retries 10 min apart) on the VM's unreachable
  # real servers, so every real server stays in the table while they run
  (cd "$WS" && cargo build --release -p vrrpd)
  SCALE_VRRPD=$WS/target/release/vrrpd
  mkdir -p "$CACHE"
  python3 "$WS/benches/keepalived_scale_conf.py" --failing-slowly 2277 37205 > "$CACHE/scale.conf"
  "$SCALE_VRRPD" import-keepalived "$CACHE/scale.conf" -o "$CACHE/scale.toml" 2>/dev/null
  T_BUILD=$(( $(now_ms) - T0 ))
  HOST_CAL=$("$SCALE_BIN" --calibrate)
  log "host $HOST_CAL"
fi

# 2. kernel: whatever linux-image-amd64 currently depends on, cached ------------------------------
mkdir -p "$CACHE"
cd "$CACHE"
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
PKG=$(kernel_pkg)
if [ -z "$PKG" ] && [ "$(id -u)" = 0 ]; then apt-get update -q; PKG=$(kernel_pkg); fi
[ -n "$PKG" ] || { log "apt-cache knows no linux-image-amd64 (run apt-get update)"; exit 1; }
K=${PKG#linux-image-}
if [ ! -f "kernel/boot/vmlinuz-$K" ]; then
  log "downloading $PKG"
  rm -f "$PKG"_*.deb
  apt-get download "$PKG" 2>&1 | grep -v 'Download is performed unsandboxed' >&2 || true
  ls "$PKG"_*.deb >/dev/null 2>&1 || { log "apt-get download $PKG failed"; exit 1; }
  rm -rf kernel; dpkg-deb -x "$PKG"_*.deb kernel; rm -f "$PKG"_*.deb
fi
M=kernel/lib/modules/$K
# the uncompressed ELF vmlinux boots via PVH and skips the in-guest xz decompress (~4.5 s under TCG)
if [ ! -s "vmlinux-$K" ]; then
  off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "kernel/boot/vmlinuz-$K" | head -1 | cut -d: -f1 || true)
  if [ -n "$off" ]; then tail -c +$((off + 1)) "kernel/boot/vmlinuz-$K" | xz -dcq > "vmlinux-$K" 2>/dev/null || true; fi
fi
KIMG=kernel/boot/vmlinuz-$K
[ "$(head -c4 "vmlinux-$K" 2>/dev/null)" = $'\x7fELF' ] && KIMG=vmlinux-$K
[ -f "$M/modules.dep" ] || depmod -b kernel "$K" # the .deb ships no modules.dep

# 3. modules: ip_vs and every scheduler module the kernel ships ---------------------------------
SCHEDULERS=$(find "$M/kernel/net/netfilter/ipvs" -name 'ip_vs_*.ko*' -printf '%f\n' |
  sed 's/\.ko.*$//; s/^ip_vs_//' | grep -vxE 'ftp|pe_sip' | sort | tr '\n' ' ')
SCHEDULERS=${SCHEDULERS% }
[ -n "$SCHEDULERS" ] || { log "no ip_vs scheduler modules in $M"; exit 1; }
# module load order: dependencies (deepest first) then the module; libcrc32c only soft-depends on crc32c
order() {
  for m in "$@"; do
    awk -v m="$m" '{k=$1; sub(/:$/,"",k)} k~("/"m"\\.ko") {for(i=NF;i>1;i--) print $i; print k; f=1}
      END{exit !f}' "$M/modules.dep" || { log "module $m not found"; return 1; }
  done | awk '!s[$0]++'
}
MODNAMES=(crc32c_generic ip_vs)
# vrrpd's export_routes test puts its real servers on a dummy link
[ "$MODE" = test ] && MODNAMES+=(dummy)
for s in $SCHEDULERS; do MODNAMES+=("ip_vs_$s"); done
MODS=$(order "${MODNAMES[@]}")

# 4. initramfs ----------------------------------------------------------------------------
T0=$(now_ms)
R=$CACHE/root
rm -rf "$R"; mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,mods}
cp "$BUSYBOX" "$R/bin/busybox"
for a in sh mount insmod cat echo poweroff dd printf sleep ip grep wc awk test; do ln -s busybox "$R/bin/$a"; done
for f in $MODS; do
  base=$(basename "${f%.ko*}")
  case $f in
    *.xz) xz -dc "$M/$f" ;; *.zst) zstd -dqc "$M/$f" ;; *.gz) gzip -dc "$M/$f" ;; *) cat "$M/$f" ;;
  esac > "$R/mods/$base.ko"
  echo "insmod /mods/$base.ko"
done > "$R/mods/load.sh"
copy_dyn() { # a dynamically linked host binary and its libraries
  cp "$1" "$R/sbin/"
  for l in $(ldd "$1" | grep -o '/[^ ]*'); do cp --parents -L "$l" "$R/"; done
}
copy_dyn "$(command -v ipvsadm)"
if [ "$MODE" = test ]; then
  cp "$BIN" "$R/bin/kernel-tests"
  copy_dyn "$(command -v keepalived)"
  copy_dyn "$VRRPD"; strip "$R/sbin/vrrpd"
  copy_dyn "$(command -v ip)" # iproute2's: busybox's does not print a route's protocol
  copy_dyn "$VBIN"; mv "$R/sbin/$(basename "$VBIN")" "$R/sbin/vrrpd-vm-tests"; strip "$R/sbin/vrrpd-vm-tests"
  copy_dyn "$VBIN2"; mv "$R/sbin/$(basename "$VBIN2")" "$R/sbin/vrrpd-vm-reload-tests"; strip "$R/sbin/vrrpd-vm-reload-tests"
  mkdir -p "$R/vrrpd-vm" "$R/etc"
  cp "$WS"/vrrpd/tests/data/ipvs-vm/* "$R/vrrpd-vm/"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
  echo 'root:x:0:' > "$R/etc/group"
  echo 'ipvs-vm' > "$R/etc/hostname"
elif [ "$MODE" = scale ]; then
  cp "$SCALE_BIN" "$R/bin/ipvs-scale"
  copy_dyn "$SCALE_VRRPD"; strip "$R/sbin/vrrpd"
  cp "$CACHE/scale.toml" "$R/scale.toml"
  mkdir -p "$R/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
  echo 'root:x:0:' > "$R/etc/group"
else
  copy_dyn "$(command -v strace)"
  cp "$HERE/capture-commands.txt" "$R/capture-commands.txt"
fi
cat > "$R/init" <<INIT
#!/bin/sh
export PATH=/bin:/sbin MODE=$MODE LVS_VM_TEST=1 LVS_VM_SCHEDULERS="$SCHEDULERS" RUST_BACKTRACE=1
export VRRPD_VM_BIN=/sbin/vrrpd VRRPD_VM_DATA=/vrrpd-vm
INIT
cat >> "$R/init" <<'INIT'
echo  # the firmware leaves the console mid-line
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
# without lo up there is no local FIB table and DR destinations fail with EINVAL
ip link set lo up
rc=0
. /mods/load.sh || rc=1
if [ "$MODE" = test ]; then
  /bin/kernel-tests --test-threads=1 --nocapture || rc=1
  mkdir -p /run /var/run
  /sbin/vrrpd-vm-tests --test-threads=1 --nocapture || rc=1
  /sbin/vrrpd-vm-reload-tests --test-threads=1 --nocapture || rc=1
elif [ "$MODE" = scale ]; then
  /bin/ipvs-scale --calibrate || rc=1
  m0=$(awk '/^(MemFree|Slab):/ { printf "%s%s ", $1, $2 }' /proc/meminfo)
  /bin/ipvs-scale --kernel --rounds 2 || rc=1
  m1=$(awk '/^(MemFree|Slab):/ { printf "%s%s ", $1, $2 }' /proc/meminfo)
  echo "kernel ipvsadm_lines=$(ipvsadm -Sn | wc -l) meminfo_kib before: $m0 after: $m1"
  /bin/ipvs-scale --calibrate || rc=1
  # the vrrpd daemon on the same size: start-up programming, then a reload with no change
  ipvsadm -C; mkdir -p /run /var/run
  up() { cut -d' ' -f1 /proc/uptime; }
  cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' /proc/$1/stat; }
  mem() { awk '/^Vm(HWM|RSS):/ { printf "%s=%s ", $1, $2 }' /proc/$1/status; }
  # waits (up to 10 min) until the log has $2 lines matching $1, or the daemon is gone
  wait_log() { n=0; while [ "$(grep -c "$1" /tmp/scale.log)" -lt "$2" ] && kill -0 $pid 2>/dev/null && [ $n -lt 3000 ]; do sleep 0.2; n=$((n+1)); done; }
  # waits (up to 10 min) until the daemon used less than half the CPU over 4 s: programming
  # done, checks started (the status refresh every second keeps it from ever being idle)
  settle() { n=0; a=$(cpu $pid); while [ $n -lt 150 ]; do sleep 4; b=$(cpu $pid); share=$(awk -v a=$a -v b=$b 'BEGIN { printf "%.0f", (b - a) * 25 }'); [ "$share" -lt 50 ] && break; a=$b; n=$((n+1)); done; }
  t0=$(up)
  /sbin/vrrpd --log-format json run -c /scale.toml > /tmp/scale.log 2>&1 &
  pid=$!
  wait_log 'vrrpd running' 1
  t1=$(up); c1=$(cpu $pid)
  echo "daemon startup: programmed_s=$(awk -v a=$t0 -v b=$t1 'BEGIN { print b - a }') cpu_s=$c1 ipvsadm_lines=$(ipvsadm -Sn | wc -l) $(mem $pid)"
  settle
  echo "daemon settled: after_s=$(awk -v a=$t0 -v b=$(up) 'BEGIN { print b - a }') cpu_s=$(cpu $pid) cpu_share_last_4s=$share% $(mem $pid)ipvsadm_lines=$(ipvsadm -Sn | wc -l)"
  t2=$(up); c2=$(cpu $pid)
  kill -HUP $pid
  wait_log 'reload finished' 1
  t3=$(up); c3=$(cpu $pid)
  echo "daemon reload: wall_s=$(awk -v a=$t2 -v b=$t3 'BEGIN { print b - a }') cpu_s=$(awk -v a=$c2 -v b=$c3 'BEGIN { print b - a }') $(mem $pid)"
  settle
  echo "daemon reload settled: cpu_share_last_4s=$share% $(mem $pid)ipvsadm_lines=$(ipvsadm -Sn | wc -l)"
  grep 'reload finished' /tmp/scale.log | grep -q '"applied":true' || { echo "daemon: reload not applied"; rc=1; }
  kill -TERM $pid; wait $pid || rc=1
  echo "daemon stopped: ipvsadm_lines=$(ipvsadm -Sn | wc -l)"
  grep -iE 'error|warn' /tmp/scale.log | head -5
else
  # each line: name|ipvsadm arguments; the state accumulates from line to line
  while IFS='|' read -r name args; do
    case "$name" in ''|'#'*) continue ;; esac
    echo "=== BEGIN $name ipvsadm $args"
    eval strace -x -e trace=sendmsg,recvmsg -e write=all -e read=all -o /tmp/trace ipvsadm $args || rc=1
    cat /tmp/trace
    echo "=== END $name"
  done < /capture-commands.txt
  echo "=== SAVE"; ipvsadm -Sn; echo "=== LIST"; ipvsadm -Ln
fi
echo "LVS-VM-RESULT rc=$rc"
printf "\\$(printf %o $rc)" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null  # isa-debug-exit
poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz
T_INITRD=$(( $(now_ms) - T0 ))

# 5. boot: isa-debug-exit makes qemu exit with (guest_rc<<1)|1, so 1 == pass ---------------------
T0=$(now_ms)
set +e
MEM=512
[ "$MODE" = scale ] && MEM=1024
[ "$MODE" = test ] && MEM=768
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m "$MEM" -smp 1 -nographic -no-reboot -nic none \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$KIMG" -initrd initrd.gz \
  -append 'console=ttyS0 panic=-1 quiet loglevel=1' </dev/null > console.raw 2>&1
Q=$?
set -e
T_BOOT=$(( $(now_ms) - T0 ))
tr -d '\r' < console.raw > console.log

if [ "$MODE" = capture ]; then
  OUT=$CRATE/testdata/ipvsadm
  mkdir -p "$OUT"
  # one file per command; recvmsg(MSG_PEEK) calls are dropped (libnl peeks, then reads the same bytes)
  awk -v out="$OUT" '
    index($0, "=== BEGIN ") { line = substr($0, index($0, "=== BEGIN ")); split(line, w, " ")
      f = out "/" w[3] ".strace"; sub(/^=== BEGIN [^ ]+ /, "", line); print "# " line > f; skip = 0; next }
    /^=== END / { close(f); f = ""; next }
    /^(sendmsg|recvmsg)\(/ { skip = ($0 ~ /MSG_PEEK/) }
    f != "" && !skip { print > f }' console.log
  sed -n '/^=== SAVE/,/^=== LIST/p' console.log | sed '1d;$d' > "$OUT/final-save.txt"
  sed -n '/^=== LIST/,/^LVS-VM-RESULT/p' console.log | sed '1d;$d' > "$OUT/final-list.txt"
  echo "$PKG ($K), ipvsadm $(dpkg-query -W -f='${Version}' ipvsadm), libnl-genl $(dpkg-query -W -f='${Version}' libnl-genl-3-200 2>/dev/null)" > "$OUT/captured-with.txt"
  log "captured into $OUT"
fi

log "qemu exit=$Q accel=$ACCEL kernel=$PKG schedulers=[$SCHEDULERS]"
[ "$MODE" = test ] && sed -n '/^running [0-9]* tests/,/^LVS-VM-RESULT/p' console.log
if [ "$MODE" = scale ]; then
  grep -E '^(kernel |calibrate|daemon)' console.log
  VM_CAL=$(grep '^calibrate' console.log | head -1)
  slow() { # field name: VM value / host value
    local h v
    h=$(printf '%s\n' "$HOST_CAL" | grep -o "$1=[0-9.]*" | cut -d= -f2)
    v=$(printf '%s\n' "$VM_CAL" | grep -o "$1=[0-9.]*" | cut -d= -f2)
    awk -v h="$h" -v v="$v" 'BEGIN { if (h > 0) printf "%.1fx", v / h; else print "?" }'
  }
  log "emulation slowdown (VM / host): integer loop $(slow loop_ms), system calls $(slow syscalls_ms)"
fi
fail=0
[ "$Q" -eq 1 ] || { log "qemu exited $Q (1 = guest passed)"; fail=1; }
grep -q '^LVS-VM-RESULT rc=0' console.log || { log "guest reported failure"; fail=1; }
if [ "$MODE" = test ]; then
  # markers share lines with libtest's progress output (and the odd kernel message)
  RAN=$(grep -o 'LVS-KERNEL-TEST-RAN [A-Za-z0-9_]*' console.log | sort -u | wc -l)
  log "kernel tests that ran against ip_vs: $RAN of $EXPECTED"
  [ "$RAN" -gt 0 ] && [ "$RAN" -eq "$EXPECTED" ] || { log "not every kernel test ran in the VM"; fail=1; }
  grep -q "^test result: ok. $EXPECTED_LVS passed" console.log || { log "libtest did not report $EXPECTED_LVS kernel tests passed"; fail=1; }
  grep -q "^test result: ok. $EXPECTED_VRRPD passed" console.log || { log "libtest did not report $EXPECTED_VRRPD vrrpd tests passed"; fail=1; }
  grep -q "^test result: ok. $EXPECTED_RELOAD passed" console.log || { log "libtest did not report $EXPECTED_RELOAD vrrpd reload tests passed"; fail=1; }
  # the /metrics text the export test scraped, with IPVS counters: Prometheus' own checker
  sed -n '/^VRRPD-METRICS-BEGIN$/,/^VRRPD-METRICS-END$/p' console.log | sed '1d;$d' > metrics.txt
  if [ ! -s metrics.txt ]; then log "no /metrics text from the VM"; fail=1
  elif ! command -v promtool >/dev/null; then log "promtool (Debian's prometheus) is needed to check /metrics"; fail=1
  elif ! promtool check metrics < metrics.txt >&2; then log "promtool check metrics failed on the VM's /metrics"; fail=1
  else log "promtool check metrics: $(grep -c '^lvs_' metrics.txt) lvs samples passed"; fi
fi
if [ "$fail" -ne 0 ]; then
  log "console log follows"; cat console.log >&2
  exit 1
fi
log "timings: build=${T_BUILD:-0}ms initramfs=${T_INITRD}ms boot+tests=${T_BOOT}ms total=$(( $(now_ms) - T_START ))ms"
log "PASS"
