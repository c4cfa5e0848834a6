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
  on_off_warm ledger "ledger: { enabled: false }" "$LEDGER_ROUNDS"
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
  start_postgres "${BENCH_POSTGRES_SETTINGS[@]}" || log "ledger: no PostgreSQL server here (needs root and the postgresql package): not measured"
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
