# The SBOM inventory's benchmarks, for benchmark-harness/run.sh; sourced, not run (reads BIN,
# WORK, RES, ROOT, KEYED_DIGEST, ACCEPT, WRK_DURATION and the helpers of lib.sh).
#
# inventory_warm: warm manifest throughput with SBOM ingest on (the default) against the same
# binary and configuration with `inventory: { ingest: false }`, alternating for
# INVENTORY_ROUNDS rounds (lib.sh's on_off_warm). The "on" side must have ingested the primed
# digest (portcullis_inventory_ingests_total), the "off" side nothing; every warm request on
# the "on" side offers its digest to the ingest.
#
# inventory_bench: `cargo bench --bench inventory` seeds INVENTORY_IMAGES images × 300 packages
# and LEDGER_ROWS pull records into SQLite and a PostgreSQL server started here (stopped after),
# then times queries by package and range, an advisory with 20 ranges and the ingest of a 10 MB
# SBOM, in process.

INVENTORY_ROUNDS=${BENCH_INVENTORY_ROUNDS:-5}
INVENTORY_IMAGES=${BENCH_INVENTORY_IMAGES:-10000}

inventory_warm() {
  on_off_warm inventory "inventory: { ingest: false }" "$INVENTORY_ROUNDS"
}

inventory_bench() {
  mkdir -p "$RES/inventory"
  # shellcheck source=scripts/postgres.sh
  . "$ROOT/scripts/postgres.sh"
  start_postgres "${BENCH_POSTGRES_SETTINGS[@]}" || log "inventory: no PostgreSQL server here (needs root and the postgresql package): not measured"
  log "cargo bench --bench inventory ($INVENTORY_IMAGES images, $LEDGER_ROWS pull records)"
  INVENTORY_IMAGES=$INVENTORY_IMAGES LEDGER_ROWS=$LEDGER_ROWS \
    PORTCULLIS_BENCH_POSTGRES_URL=${POSTGRES_URL:+$POSTGRES_URL/postgres} \
    timeout 3600 cargo bench --locked --bench inventory >"$RES/inventory/bench.txt" 2>&1 ||
    log "inventory bench failed (see report: not measured, which fails its target)"
  echo "$INVENTORY_IMAGES $LEDGER_ROWS" >"$RES/inventory/size.txt"
  grep '^inventory ' "$RES/inventory/bench.txt" >&2 || true
  stop_postgres
}
