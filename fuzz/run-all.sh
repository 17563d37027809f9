#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS each (default 30), then
# prints executions, CPU seconds and corpus size per target. Exits non-zero
# if any target crashes, hangs (a single input over 10 s) or fails to build.
#
#   fuzz/run-all.sh [--jobs N] [--asan] [--only "t1 t2:S2"] [SECONDS]
#
#   --jobs N   run N targets at a time (default 1; each target uses one core)
#   --asan     build with AddressSanitizer (slower; the crates are safe Rust,
#              their dependencies are not)
#   --only     a subset of the targets; TARGET:S runs that one for S
#              seconds instead of SECONDS (to top a campaign up)
#   --ledger F append each target's result line to F, with the UTC time and
#              the commit fuzzed (a campaign spread over several runs adds
#              up its CPU seconds there: fuzz/campaign.log)
#
# The nightly toolchain and cargo-fuzz are installed when missing
# (cargo install --locked; both are cached in ~/.cargo and ~/.rustup).
# Corpora grow in fuzz/corpus/TARGET across runs (git-ignored), crashes land
# in fuzz/artifacts/TARGET; seeds are regenerated into fuzz/target/seeds on
# every run (fuzz/seeds.py) and fuzz/regressions/TARGET (committed) is
# always read. For the closing campaign: `fuzz/run-all.sh --jobs 2 3600`.
set -euo pipefail
cd "$(dirname "$0")"

jobs=1
sanitizer=(--sanitizer none)
only=""
ledger=""
seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --asan) sanitizer=(); shift ;;
    --only) only="$2"; shift 2 ;;
    --ledger) ledger="$(realpath -m "$2")"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$(basename "$0")"; exit 0 ;;
    *) seconds="$1"; shift ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "run-all.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2; }

T0=$(date +%s)
stamp() { echo "== [fuzz $(( $(date +%s) - T0 )) s] $*"; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  stamp "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  stamp "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=$(cargo +nightly fuzz list)
declare -A seconds_of
if [ -n "$only" ]; then
  names=""
  for item in $only; do
    t="${item%%:*}"
    grep -qx "$t" <<<"$targets" || { echo "run-all.sh: no target '$t' (have: $(echo $targets))" >&2; exit 2; }
    if [ "$item" != "$t" ]; then
      [[ "${item#*:}" =~ ^[0-9]+$ ]] || { echo "run-all.sh: '$item': seconds must be a number" >&2; exit 2; }
      seconds_of[$t]="${item#*:}"
    fi
    names="$names $t"
  done
  targets="${names# }"
fi
for t in $targets; do
  [ -n "${seconds_of[$t]:-}" ] || seconds_of[$t]="$seconds"
done

stamp "building $(echo "$targets" | wc -w) targets (debug assertions on)"
one=""
[ "$(echo "$targets" | wc -w)" = 1 ] && one="$targets"
cargo +nightly fuzz build --debug-assertions "${sanitizer[@]}" $one

seeds=target/seeds
rm -rf "$seeds"
python3 seeds.py "$seeds"
logs=target/fuzz-logs
mkdir -p "$logs"

run_one() {
  local t="$1"
  local corpus="corpus/$t"
  mkdir -p "$corpus" "$seeds/$t" "artifacts/$t"
  local dirs=("$corpus" "$seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  local extra=()
  [ -f "$seeds/$t.dict" ] && extra+=("-dict=$seeds/$t.dict")
  # -timeout: one input running 10 s is a hang, reported as a failure.
  cargo +nightly fuzz run --debug-assertions "${sanitizer[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="${seconds_of[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${extra[@]}" >"$logs/$t.log" 2>&1 && echo 0 >"$logs/$t.rc" || echo $? >"$logs/$t.rc"
  # CPU seconds (user + system) of this subshell's children: the fuzzer
  # and cargo's start, however busy the machine is. `times` runs here, not
  # in a pipeline, whose subshell has no children.
  times >"$logs/$t.cpu"
  tail -1 "$logs/$t.cpu" | awk '{ split($1, u, "m"); split($2, s, "m");
    printf "%.0f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' >"$logs/$t.cpu.tmp"
  mv "$logs/$t.cpu.tmp" "$logs/$t.cpu"
}

summary() {
  local t="$1" rc="$2" log="$logs/$1.log"
  local runs secs cpu files bytes result
  # A crashed run prints no final statistics: take the last status line.
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1 || true)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1 || true)
  files=$(find "corpus/$t" -type f | wc -l)
  bytes=$(du -sb "corpus/$t" | cut -f1)
  cpu=$(cat "$logs/$t.cpu" 2>/dev/null || echo "?")
  if [ "$rc" = 0 ]; then result=ok; else result="FAILED (exit $rc)"; fi
  printf '%-18s %12s runs %6s s %6s cpu-s %8s exec/s  corpus %6s files %9s bytes  %s\n' \
    "$t" "${runs:-?}" "${secs:-?}" "$cpu" "$(( ${runs:-0} / ${secs:-1} ))" "$files" "$bytes" "$result"
}

stamp "running each target for $seconds s (or its own), $jobs at a time (logs in fuzz/$logs)"
declare -A rc_of
running=0
for t in $targets; do
  rm -f "$logs/$t.rc"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
failed=0
for t in $targets; do
  rc_of[$t]=$(cat "$logs/$t.rc" 2>/dev/null || echo "?")
  [ "${rc_of[$t]}" = 0 ] || failed=1
done

stamp "results"
for t in $targets; do
  summary "$t" "${rc_of[$t]}"
done | tee target/fuzz-summary.txt
if [ -n "$ledger" ]; then
  commit=$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain -- .. 2>/dev/null | grep -v '^??' | grep -q . && echo "+dirty" || true)
  now=$(date -u +%Y-%m-%dT%H:%MZ)
  for t in $targets; do
    grep "^$t " target/fuzz-summary.txt | sed "s/^/$now ${commit}${dirty} ${seconds_of[$t]}s-wall /" >>"$ledger"
  done
fi
if [ "$failed" != 0 ]; then
  for t in $targets; do
    [ "${rc_of[$t]}" = 0 ] && continue
    echo "---- $t: end of fuzz/$logs/$t.log"
    grep -v '^#[0-9]' "$logs/$t.log" | tail -40
    for a in artifacts/"$t"/*; do
      [ -f "$a" ] || continue
      echo "---- $t: input fuzz/$a (reproduce: cargo +nightly fuzz run $t $a)"
      head -c 512 "$a" | od -An -c | head -20
    done
  done
  exit 1
fi
