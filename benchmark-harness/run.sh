#!/usr/bin/env bash
# The benchmarks, in one command: ./benchmark-harness/run.sh
#
# Builds target/release/portcullis, starts on 127.0.0.1 a docker-registry upstream holding the
# signed fixture images and a 1 GiB blob, and four proxies in front of it (nginx as a plain
# reverse proxy, docker-registry in proxy mode, portcullis without policy, portcullis with enforce
# rules), measures warm manifest throughput, blob throughput, peak memory, cold verified pulls (on
# loopback, and from a registry 20 ms away: benchmark-harness/remote.sh) and 500 concurrent cold
# pulls, the content store (cold and warm blobs, nginx sending the stored
# file, 50 concurrent cold pulls of one blob: benchmark-harness/store.sh), the pull ledger's
# recording cost and its audit report over 1 000 000 records on SQLite and on a PostgreSQL server
# started for the run (benchmark-harness/ledger.sh), the SBOM inventory's ingest cost and its
# answers over 10 000 images × 300 packages (benchmark-harness/inventory.sh), and writes
# docs/benchmarks.md (and the same summary to stdout).
#
# Everything lives in a temp dir and every process it starts is stopped by PID on exit. Installs
# docker-registry, nginx, wrk and postgresql with apt-get when missing (needs root or sudo then).
# Needs about 4 GiB free under $TMPDIR (the blob, and its copies in the upstream,
# distribution-proxy and the portcullis stores; the burst's two blobs).
#
# Knobs for quick trial runs (the committed report uses the defaults):
#   BENCH_WRK_DURATION=10s  BENCH_BLOB_MIB=1024  BENCH_COLD_SAMPLES=11  BENCH_BURST=500
#   BENCH_OUT=docs/benchmarks.md  BENCH_KEEP=1 (keep the temp dir)  BENCH_NO_BUILD=1  BENCH_BIN=path
#   BENCH_LEDGER_ROUNDS=5  BENCH_LEDGER_ROWS=1000000  BENCH_STORE_BURST_MIB=256  BENCH_STORE_BURST_CLIENTS=50
#   BENCH_REMOTE_RTT_MS=20  BENCH_REMOTE_SAMPLES=9  BENCH_INVENTORY_ROUNDS=5  BENCH_INVENTORY_IMAGES=10000
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WRK_DURATION=${BENCH_WRK_DURATION:-10s}
BLOB_MIB=${BENCH_BLOB_MIB:-1024}
BLOB_RUNS=3
COLD_SAMPLES=${BENCH_COLD_SAMPLES:-11}
BURST=${BENCH_BURST:-500}
OUT=${BENCH_OUT:-docs/benchmarks.md}
# shellcheck source=benchmark-harness/lib.sh
. "$ROOT/benchmark-harness/lib.sh"
# shellcheck source=benchmark-harness/ledger.sh
. "$ROOT/benchmark-harness/ledger.sh"
# shellcheck source=benchmark-harness/inventory.sh
. "$ROOT/benchmark-harness/inventory.sh"
# shellcheck source=benchmark-harness/store.sh
. "$ROOT/benchmark-harness/store.sh"
# shellcheck source=benchmark-harness/remote.sh
. "$ROOT/benchmark-harness/remote.sh"

# === packages and build ===

ensure_packages docker-registry nginx wrk curl python3 postgresql

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  log "cargo build --release --locked"
  cargo build --release --locked
  log "cargo bench --bench verdict_memory --no-run"
  # A bench that does not build is reported as not measured, which fails its target.
  cargo bench --locked --bench verdict_memory --no-run || log "verdict_memory bench does not build; not measured"
  cargo bench --locked --bench ledger_audit --no-run || log "ledger_audit bench does not build; not measured"
  cargo bench --locked --bench inventory --no-run || log "inventory bench does not build; not measured"
fi
BIN=${BENCH_BIN:-$ROOT/target/release/portcullis}
[ -x "$BIN" ] || die "$BIN missing"

# === processes ===

SECONDS=0
new_workdir portcullis-bench
RES=$WORK/results
mkdir -p "$RES"/{wrk,blob,rss,cold,burst}

# === upstream with the fixtures and a big blob ===

read -r UP_PORT DP_PORT NGINX_PORT NGINX_DEFAULT_PORT < <("${HELPER[@]}" ports 4)
start_upstream "$UP_PORT"
push_fixtures

KEYED_DIGEST=$(digest_of key-legacy)

log "generating and pushing a ${BLOB_MIB} MiB random blob"
head -c "${BLOB_MIB}M" /dev/urandom >"$WORK/blob.bin"
BLOB_SIZE=$(stat -c %s "$WORK/blob.bin")
BLOB_DIGEST=$(push_blob "$WORK/blob.bin")
rm -f "$WORK/blob.bin"

# === the four proxies ===

# start_nginx NAME PORT EXTRA: nginx as a plain reverse proxy to the upstream, with the proxy
# directives EXTRA added to its location; NGINX_PID is the master's.
start_nginx() {
  local name=$1 port=$2 extra=$3 prefix=$WORK/$1
  mkdir -p "$prefix"/{logs,tmp}
  {
    echo "worker_processes auto;"
    echo "daemon off;"
    echo "pid $prefix/nginx.pid;"
    echo "error_log $prefix/logs/error.log warn;"
    # As root, workers would run as nobody and could not use the temp dir; stay root then.
    [ "$(id -u)" -ne 0 ] || echo "user root;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $prefix/tmp/$t;"; done
    echo "  upstream registry { server $UP; keepalive 64; }"
    echo "  server {"
    echo "    listen 127.0.0.1:$port;"
    echo "    client_max_body_size 0;"
    echo "    location / {"
    echo "      proxy_pass http://registry;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$http_host;"
    [ -z "$extra" ] || echo "      $extra"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$prefix/nginx.conf"
  start "$name" nginx -e "$prefix/logs/error.log" -p "$prefix" -c "$prefix/nginx.conf"
  NGINX_PID=$LAST_PID
  wait_http "http://127.0.0.1:$port/v2/" "$NGINX_PID" "$name"
}

# The baseline: response buffers sized for blobs, in memory only. With nginx's defaults (8 buffers
# of one page, spooling to a temp file) it streams blobs at about half the rate on this machine;
# that variant is measured too, for blobs only, as nginx-defaults.
start_nginx nginx "$NGINX_PORT" \
  "proxy_buffer_size 256k; proxy_buffers 16 256k; proxy_busy_buffers_size 512k; proxy_max_temp_file_size 0;"
NGINX_MAIN_PID=$NGINX_PID
start_nginx nginx-defaults "$NGINX_DEFAULT_PORT" ""
NGINX_DEFAULT_PID=$NGINX_PID

registry_config "$WORK/dproxy.yml" "$WORK/dproxy-data" "$DP_PORT" "http://$UP"
start distribution-proxy docker-registry serve "$WORK/dproxy.yml"
DP_PID=$LAST_PID
wait_http "http://127.0.0.1:$DP_PORT/v2/" "$DP_PID" distribution-proxy

start_portcullis portcullis none
PC0_PID=$PC_PID PC0_URL=$PC_URL PC0_ADMIN=$PC_ADMIN
start_portcullis portcullis-enforce enforce
PC1_PID=$PC_PID PC1_URL=$PC_URL PC1_ADMIN=$PC_ADMIN

# upstream = the upstream registry itself, as a reference for what the proxies are bounded by.
TARGETS=(upstream nginx distribution-proxy portcullis portcullis-enforce)
# nginx-defaults differs from nginx only in response buffering: measured for blobs only.
BLOB_TARGETS=(upstream nginx nginx-defaults distribution-proxy portcullis portcullis-enforce)
declare -A URL=(
  [upstream]=http://$UP [nginx]=http://127.0.0.1:$NGINX_PORT [nginx-defaults]=http://127.0.0.1:$NGINX_DEFAULT_PORT
  [distribution-proxy]=http://127.0.0.1:$DP_PORT
  [portcullis]=$PC0_URL [portcullis-enforce]=$PC1_URL
)
declare -A PID=(
  [upstream]=$UP_PID [nginx]=$NGINX_MAIN_PID [nginx-defaults]=$NGINX_DEFAULT_PID [distribution-proxy]=$DP_PID [portcullis]=$PC0_PID [portcullis-enforce]=$PC1_PID
)
log "nginx ${URL[nginx]}, distribution-proxy ${URL[distribution-proxy]}, portcullis $PC0_URL, portcullis-enforce $PC1_URL"

# Each target must answer the manifest by digest and by tag with the right digest (this is also
# the priming request).
for t in "${TARGETS[@]}"; do
  for ref in "$KEYED_DIGEST" key-legacy; do
    hdr=$(curl -sS --max-time 30 -o /dev/null -D - -H "Accept: $ACCEPT" "${URL[$t]}/v2/keyed/app/manifests/$ref" | tr -d '\r' || true)
    status=$(head -1 <<<"$hdr" | awk '{print $2}')
    got=$(awk 'tolower($1) == "docker-content-digest:" {print $2}' <<<"$hdr")
    [ "$status" = 200 ] && [ "$got" = "$KEYED_DIGEST" ] ||
      die "$t: GET keyed/app/manifests/$ref answered $status with digest '$got'"
  done
done
log "every target serves keyed/app@$KEYED_DIGEST by digest and tag"

# === blob throughput ===

# Run 0 primes (distribution-proxy copies the blob into its own storage then); the measured runs
# go round the targets so that drift on the shared machine hits each alike.
for ((i = 0; i <= BLOB_RUNS; i++)); do
  for t in "${BLOB_TARGETS[@]}"; do
    [ "$i" -gt 0 ] || : >"$RES/blob/$t.txt"
    read -r code speed size < <(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{speed_download} %{size_download}\n' \
      "${URL[$t]}/v2/keyed/app/blobs/$BLOB_DIGEST")
    [ "$code" = 200 ] && [ "$size" = "$BLOB_SIZE" ] || die "$t: blob GET answered $code with $size bytes"
    if [ "$i" -eq 0 ]; then echo "$speed" >"$RES/blob/${t}__cold.txt"; else echo "$speed" >>"$RES/blob/$t.txt"; fi
  done
done
for t in "${BLOB_TARGETS[@]}"; do log "blob $t: $(tr '\n' ' ' <"$RES/blob/$t.txt")bytes/s"; done

rss_of() { # TARGET
  if [ "$1" = nginx ] || [ "$1" = nginx-defaults ]; then
    local max=0 w v
    for w in $(pgrep -P "${PID[$1]}"); do
      v=$(vmhwm "$w" 2>/dev/null || echo 0)
      [ "${v:-0}" -gt "$max" ] && max=$v
    done
    echo "$max"
  else
    vmhwm "${PID[$1]}"
  fi
}
for t in "${BLOB_TARGETS[@]}"; do rss_of "$t" >"$RES/rss/${t}__after_blob.txt"; done

# === warm manifests ===

for mode in digest tag; do
  ref=$KEYED_DIGEST
  [ "$mode" = tag ] && ref=key-legacy
  for c in 16 64; do
    for t in "${TARGETS[@]}"; do
      out=$RES/wrk/${t}__${mode}__${c}.txt
      admin=""
      [ "$t" = portcullis ] && admin=$PC0_ADMIN
      [ "$t" = portcullis-enforce ] && admin=$PC1_ADMIN
      # portcullis's upstream traffic during this run alone: metrics before and after it.
      [ -z "$admin" ] || curl -fsS --max-time 10 "$admin/metrics" >"$out.metrics0" || true
      timeout 120 wrk -t2 -c"$c" -d"$WRK_DURATION" --timeout 5s --latency -H "Accept: $ACCEPT" \
        "${URL[$t]}/v2/keyed/app/manifests/$ref" >"$out" 2>&1 || log "wrk $t $mode $c failed"
      [ -z "$admin" ] || curl -fsS --max-time 10 "$admin/metrics" >"$out.metrics" || true
      log "wrk $t by $mode c=$c: $(awk '/Requests\/sec/ {print $2}' "$out") req/s"
    done
  done
done

for t in "${BLOB_TARGETS[@]}"; do rss_of "$t" >"$RES/rss/${t}__end.txt"; done

# === the content store (benchmark-harness/store.sh) ===

store_static "$WORK/portcullis/state/store"
store_burst "$PC0_URL" "$PC0_ADMIN"
mkdir -p "$RES/warm"
curl -fsS --max-time 10 "$PC0_ADMIN/metrics" >"$RES/warm/portcullis.metrics" || true
curl -fsS --max-time 10 "$PC1_ADMIN/metrics" >"$RES/warm/portcullis-enforce.metrics" || true
stop_pid "$PC0_PID"
stop_pid "$PC1_PID"

# === the ledger's recording cost (benchmark-harness/ledger.sh) ===

ledger_warm

# === the SBOM ingest's cost on the request path (benchmark-harness/inventory.sh) ===

inventory_warm

# === cold verified pulls ===

# The cold, remote and burst processes run with SBOM ingest off, so that the upstream requests
# counted after a pull are the pull's own: ingest's look-ups start after the response, once per
# new digest, and would race with the scrape (tests/hermetic/inventory.rs counts what they add).
PULL_ONLY="inventory: { ingest: false }"

# Each sample is a new process, so every cache is empty. Two variants:
#   first:  the measured GET is the process's first request (includes opening the upstream
#           connection and any one-time initialisation);
#   primed: one verified pull of another signed image under the same rule first (same repository,
#           other digest), so the measured GET is a cold digest on a warmed-up proxy.
# The no-policy process gets the same two requests. Metrics are scraped before and after the
# measured GET; the report uses the difference.
scrape() { curl -fsS --max-time 10 "$PC_ADMIN/metrics"; }
for ((i = 0; i < COLD_SAMPLES; i++)); do
  for img in key-legacy keyless-bundle; do
    cold_pair "$img"
    for variant in first primed; do
      mkdir -p "$RES/cold/$variant"
      for kind in none enforce; do
        name=portcullis
        [ "$kind" = enforce ] && name=portcullis-enforce
        PC_EXTRA_CONFIG=$PULL_ONLY start_portcullis "cold-$name" "$kind"
        base=$RES/cold/$variant/${name}__${img}__$i
        if [ "$variant" = primed ]; then
          code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$PC_URL/v2/$prime")
          [ "$code" = 200 ] || die "$name: priming GET $prime answered $code"
        fi
        scrape >"$base.metrics0"
        curl -sS --max-time 60 -o /dev/null -w '%{http_code} %{time_total}\n' -H "Accept: $ACCEPT" \
          "$PC_URL/v2/$path" >"$base.curl"
        scrape >"$base.metrics"
        stop_pid "$PC_PID"
      done
    done
  done
done
log "cold pulls: $COLD_SAMPLES samples each"

# === cold pulls from a remote registry (benchmark-harness/remote.sh) ===

remote_cold

# === concurrent cold pulls ===

PC_EXTRA_CONFIG=$PULL_ONLY start_portcullis burst enforce
"${HELPER[@]}" burst "$PC_URL/v2/keyed/app/manifests/$KEYED_DIGEST" "$BURST" "$ACCEPT" "$RES/burst/result.json" >&2
scrape >"$RES/burst/metrics.txt"
stop_pid "$PC_PID"

# === the verdict-memory bench (benches/verdict_memory.rs) ===

RUNTIME=$SECONDS
log "cargo bench --bench verdict_memory"
timeout 900 cargo bench --locked --bench verdict_memory >"$RES/verdict_memory.txt" 2>&1 ||
  log "verdict_memory bench failed (see report: not measured, which fails its target)"

# === the audit report over a large ledger (benchmark-harness/ledger.sh) ===

ledger_audit

# === the inventory's answers over a large inventory (benchmark-harness/inventory.sh) ===

inventory_bench

# === report ===

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || rev="$rev+uncommitted"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "mem=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')"
  echo "distribution=$(docker-registry --version | awk '{print $3}')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "curl=$(curl --version | head -1 | awk '{print $2}')"
  echo "python=$(python3 -c 'import platform; print(platform.python_version())')"
  echo "portcullis_version=$("$BIN" --version 2>/dev/null | head -1)"
  echo "portcullis_rev=$rev"
  echo "warm_digest=$KEYED_DIGEST"
  echo "wrk_duration=$WRK_DURATION"
  echo "blob_size=$((BLOB_SIZE / 1048576)) MiB"
  echo "blob_runs=$BLOB_RUNS"
  echo "cold_samples=$COLD_SAMPLES"
  echo "burst=$BURST"
  echo "burst_image=key-legacy"
  echo "runtime=$((RUNTIME / 60)) min $((RUNTIME % 60)) s"
} >"$RES/meta.txt"
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
"${HELPER[@]}" report "$RES" "$OUT"
