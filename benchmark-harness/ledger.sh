# The pull ledger's benchmarks, for benchmark-harness/run.sh; sourced, not run (reads BIN, WORK,
# RES, ROOT, KEYED_DIGEST, ACCEPT, WRK_DURATION and the helpers of lib.sh).
#
# ledger_warm: the same binary and enforce configuration twice, one with `ledger: { enabled:
# false }`, both idle but the one measured; `wrk -c64` by digest, alternating on/off for
# LEDGER_ROUNDS rounds so that drift on the shared machine hits both alike. Each side's ledger
# metrics are kept: the "on" side must have written records, the "off" side none.
#
# ledger_audit: `cargo bench --bench ledger_audit` seeds LEDGER_ROWS aggregated pull records across
# 10 000 images into SQLite (kept) and a PostgreSQL server started here (stopped after), times the
# report in process, then the real `portcullis audit --since 7d --json` command is run
# LEDGER_CLI_RUNS times on each database and timed from outside (process start to exit).

LEDGER_ROUNDS=${BENCH_LEDGER_ROUNDS:-5}
LEDGER_ROWS=${BENCH_LEDGER_ROWS:-1000000}
LEDGER_CLI_RUNS=5

ledger_warm() {
  local side url admin i out
  mkdir -p "$RES/ledger"
  PC_EXTRA_CONFIG="" start_portcullis ledger-on enforce
  local on_pid=$PC_PID on_url=$PC_URL on_admin=$PC_ADMIN
  PC_EXTRA_CONFIG="ledger: { enabled: false }" start_portcullis ledger-off enforce
  local off_pid=$PC_PID off_url=$PC_URL off_admin=$PC_ADMIN
  for url in "$on_url" "$off_url"; do
    code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$url/v2/keyed/app/manifests/$KEYED_DIGEST")
    [ "$code" = 200 ] || die "ledger: priming GET on $url answered $code"
  done
  for ((i = 0; i < LEDGER_ROUNDS; i++)); do
    for side in on off; do
      url=$on_url
      [ "$side" = off ] && url=$off_url
      out=$RES/ledger/wrk__${side}__$i.txt
      timeout 120 wrk -t2 -c64 -d"$WRK_DURATION" --timeout 5s --latency -H "Accept: $ACCEPT" \
        "$url/v2/keyed/app/manifests/$KEYED_DIGEST" >"$out" 2>&1 || log "wrk ledger-$side round $i failed"
      log "wrk ledger-$side round $i: $(awk '/Requests\/sec/ {print $2}' "$out") req/s"
    done
  done
  # What each side recorded: after the writer's flush interval, so that the "on" side's counter
  # includes the last batch.
  sleep 2
  curl -fsS --max-time 10 "$on_admin/metrics" >"$RES/ledger/on.metrics" || true
  curl -fsS --max-time 10 "$off_admin/metrics" >"$RES/ledger/off.metrics" || true
  stop_pid "$on_pid"
  stop_pid "$off_pid"
}

# time_ms OUT ERR CMD...: runs CMD with its stdout in OUT and stderr in ERR, prints its wall time
# in ms; fails when CMD fails.
time_ms() {
  local out=$1 err=$2 t0 t1
  shift 2
  t0=$(date +%s%N)
  "$@" >"$out" 2>"$err" || return 1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

ledger_audit() {
  local dir=$WORK/ledger-audit db name i ms
  mkdir -p "$dir/state" "$RES/ledger"
  # shellcheck source=scripts/postgres.sh
  . "$ROOT/scripts/postgres.sh"
  start_postgres || log "ledger: no PostgreSQL server here (needs root and the postgresql package): not measured"
  log "cargo bench --bench ledger_audit ($LEDGER_ROWS rows)"
  LEDGER_ROWS=$LEDGER_ROWS LEDGER_SQLITE_PATH=$dir/state/portcullis.db \
    PORTCULLIS_BENCH_POSTGRES_URL=${POSTGRES_URL:+$POSTGRES_URL/postgres} \
    timeout 1800 cargo bench --locked --bench ledger_audit >"$RES/ledger/bench.txt" 2>&1 ||
    log "ledger_audit bench failed (see report: not measured, which fails its target)"
  echo "$LEDGER_ROWS" >"$RES/ledger/rows.txt"
  for db in sqlite postgresql; do
    name=$dir/$db.yaml
    [ "$db" = sqlite ] || [ -n "$POSTGRES_URL" ] || continue
    # `portcullis audit` reads the whole configuration; it opens only the database.
    printf '%s\n' 'listen: 127.0.0.1:5000' 'admin_listen: 127.0.0.1:9095' \
      'default_upstream: r.local' 'upstreams: { r.local: { url: "http://127.0.0.1:5001" } }' \
      "state_dir: $dir/state" >"$name"
    if [ "$db" = sqlite ]; then
      echo 'database: sqlite' >>"$name"
    else
      echo "database: { url: \"$POSTGRES_URL/postgres\" }" >>"$name"
    fi
    : >"$RES/ledger/cli__$db.txt"
    for ((i = 0; i < LEDGER_CLI_RUNS; i++)); do
      ms=$(time_ms "$RES/ledger/cli__$db.json" "$RES/ledger/cli__$db.err" "$BIN" audit --config "$name" --since 7d --json) ||
        { log "portcullis audit on $db failed: $(head -3 "$RES/ledger/cli__$db.err")"; break; }
      echo "$ms" >>"$RES/ledger/cli__$db.txt"
    done
    log "portcullis audit --since 7d on $db: $(tr '\n' ' ' <"$RES/ledger/cli__$db.txt")ms"
  done
  stop_postgres
}
