# Cold pulls from a registry REMOTE_RTT_MS away (sourced by run.sh; results under $RES/remote).
#
# The fault shaper (benchmark-harness/fault_shaper.py) with --delay-ms stands between portcullis
# and the upstream: every request costs one round trip. Two variants: `tags`, the upstream as it
# is (docker-registry has no referrers API: bundles are found through the referrers tag schema),
# and `api`, the shaper answering the referrers API as an OCI 1.1 registry does. For each image
# kind (key-legacy: a legacy `.sig`; keyless-bundle: a bundle referrer) and REMOTE_SAMPLES
# samples, a new portcullis process without policy and one with the enforce rules each pull
# another image of the same repository first (the connection opened, the upstream's referrers
# support learnt), then the measured image by digest. Kept per pull: curl's time, the shaper's
# log of the pull's upstream requests (arrival and answer times, for the round-trip depth).

REMOTE_RTT_MS=${BENCH_REMOTE_RTT_MS:-20}
REMOTE_SAMPLES=${BENCH_REMOTE_SAMPLES:-9}

remote_cold() {
  local variant port pid flag i img path prime kind name base code
  mkdir -p "$RES/remote"
  echo "$REMOTE_RTT_MS" >"$RES/remote/rtt_ms.txt"
  for variant in tags api; do
    read -r port < <("${HELPER[@]}" ports 1)
    flag=()
    [ "$variant" = api ] && flag=(--referrers-api)
    start "shaper-$variant" python3 "$ROOT/benchmark-harness/fault_shaper.py" --listen "$port" \
      --upstream "$UP" --delay-ms "$REMOTE_RTT_MS" "${flag[@]}"
    pid=$LAST_PID
    wait_http "http://127.0.0.1:$port/_shaper/stats" "$pid" "shaper-$variant"
    for ((i = 0; i < REMOTE_SAMPLES; i++)); do
      for img in key-legacy keyless-bundle; do
        cold_pair "$img"
        for kind in none enforce; do
          name=portcullis
          [ "$kind" = enforce ] && name=portcullis-enforce
          PC_UPSTREAM=http://127.0.0.1:$port PC_EXTRA_CONFIG=$PULL_ONLY start_portcullis "remote-$name" "$kind"
          base=$RES/remote/${variant}__${name}__${img}__$i
          code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$PC_URL/v2/$prime")
          [ "$code" = 200 ] || die "remote $name: priming GET $prime answered $code"
          curl -fsS --max-time 10 -X POST -o /dev/null "http://127.0.0.1:$port/_shaper/log/clear"
          curl -sS --max-time 60 -o /dev/null -w '%{http_code} %{time_total}\n' -H "Accept: $ACCEPT" \
            "$PC_URL/v2/$path" >"$base.curl"
          curl -fsS --max-time 10 "http://127.0.0.1:$port/_shaper/log" >"$base.log.json"
          stop_pid "$PC_PID"
        done
      done
    done
    stop_pid "$pid"
  done
  log "remote cold pulls (${REMOTE_RTT_MS} ms round trips): $REMOTE_SAMPLES samples each"
}
