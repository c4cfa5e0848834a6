#!/usr/bin/env bash
# The soak benchmark: ./benchmark-harness/soak.sh [MINUTES]   (default 10)
#
# Builds target/release/portcullis and starts on 127.0.0.1 a docker-registry upstream holding the
# signed fixture images, the fault shaper in front of it (benchmark-harness/fault_shaper.py: 503,
# 429, stalls, slow bodies, connection resets) and portcullis with enforce rules in front of the
# shaper, with short verdict TTLs and timeouts. benchmark-harness/soak_load.py first takes each
# request's decision from a single request with the shaper passing everything, then sends MINUTES
# of mixed warm, cold and faulting load from several workers, checks every answer against those
# decisions, samples portcullis's RSS, open fds and /metrics every 10 s, and writes docs/soak.md
# (and prints it).
#
# Exits non-zero on a decision that differs from the single request's (other than a fault
# answer: 429, 502, 503, 504, or a client-side error), or when RSS or open fds grow beyond the
# bounds (last-third median RSS > 1.2 x the first third's; fds > +50).
#
# Everything lives in a temp dir and every process it starts is stopped by PID on exit. Installs
# docker-registry with apt-get when missing (needs root or sudo then).
#
# Knobs: SOAK_OUT=docs/soak.md  BENCH_KEEP=1 (keep the temp dir)  BENCH_NO_BUILD=1  BENCH_BIN=path
#   SOAK_FAULTS="--p-503 0.03 --p-429 0.02 --p-stall 0.01 --p-drip 0.02 --p-reset 0.02"
#   SOAK_WORKERS="--warm-workers 4 --tag-workers 2 --blob-workers 2"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=soak
# shellcheck source=benchmark-harness/lib.sh
. "$ROOT/benchmark-harness/lib.sh"

MINUTES=${1:-10}
[[ "$MINUTES" =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 1 ] && [ "$MINUTES" -le 240 ] || die "MINUTES must be 1..240"
OUT=${SOAK_OUT:-docs/soak.md}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
FAULTS=${SOAK_FAULTS:---p-503 0.03 --p-429 0.02 --p-stall 0.01 --p-drip 0.02 --p-reset 0.02}
WORKERS=${SOAK_WORKERS:---warm-workers 4 --tag-workers 2 --blob-workers 2}
STALL_S=5
DRIP_S=3
PC_CACHE="cache: { verdict_ttl: 2s, failure_ttl: 1s }"
PC_TIMEOUTS="timeouts: { connect: 1s, response_header: 2s, read_idle: 2s, exchange: 2s, signature_lookup: 3s }"

ensure_packages docker-registry curl python3

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  log "cargo build --release --locked"
  cargo build --release --locked
fi
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
[ -x "$BIN" ] || die "$BIN missing"

new_workdir portcullis-soak

read -r UP_PORT SHAPER_PORT < <("${HELPER[@]}" ports 2)
start_upstream "$UP_PORT"
push_fixtures

# shellcheck disable=SC2086 # FAULTS is a list of options
start shaper python3 "$ROOT/benchmark-harness/fault_shaper.py" --listen "$SHAPER_PORT" --upstream "$UP" \
  --stall-seconds "$STALL_S" --drip-seconds "$DRIP_S" $FAULTS
SHAPER_PID=$LAST_PID
SHAPER=http://127.0.0.1:$SHAPER_PORT
wait_http "$SHAPER/v2/" "$SHAPER_PID" shaper
log "fault shaper on $SHAPER (pass mode until the baseline is taken)"

PC_UPSTREAM=$SHAPER
PC_EXTRA_CONFIG="$PC_CACHE
$PC_TIMEOUTS"
start_portcullis portcullis enforce
log "portcullis on $PC_URL (admin $PC_ADMIN), pid $PC_PID"

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || rev="$rev+uncommitted"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "mem=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "distribution=$(docker-registry --version | awk '{print $3}')"
  echo "python=$(python3 -c 'import platform; print(platform.python_version())')"
  echo "portcullis_version=$("$BIN" --version 2>/dev/null | head -1)"
  echo "portcullis_rev=$rev"
  echo "pc_cache=$PC_CACHE"
  echo "pc_timeouts=$PC_TIMEOUTS"
  echo "shaper_probs=$(sed -E 's/--p-([a-z0-9]+) ([0-9.]+)/\1 \2/g; s/ ([a-z0-9]+ [0-9.]+)/, \1/g' <<<"$FAULTS")"
  echo "stall_seconds=$STALL_S"
  echo "drip_seconds=$DRIP_S"
} >"$WORK/meta.txt"

log "soaking for $MINUTES min"
rc=0
# shellcheck disable=SC2086 # WORKERS is a list of options
timeout $((MINUTES * 60 + 300)) python3 "$ROOT/benchmark-harness/soak_load.py" \
  --proxy "$PC_URL" --admin "$PC_ADMIN" --pid "$PC_PID" --shaper "$SHAPER" --fixtures "$FIX" \
  --seconds $((MINUTES * 60)) --meta "$WORK/meta.txt" --out "$OUT" --raw "$WORK/raw.json" $WORKERS || rc=$?
kill -0 "$PC_PID" 2>/dev/null || { tail -20 "$WORK/logs/portcullis.log" >&2; die "portcullis exited during the soak"; }
if [ "$rc" -ne 0 ]; then
  log "soak FAILED (rc $rc); portcullis log tail:"
  grep -v '"portcullis::audit"\|portcullis::audit' "$WORK/logs/portcullis.log" | tail -20 >&2 || true
fi
exit "$rc"
