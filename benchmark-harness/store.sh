# The content store's rows of the benchmark (sourced by run.sh, which has started the upstream,
# the proxies and portcullis without policy as PC0; results under $RES/store):
#
# store_static: nginx serving the 1 GiB blob as a static file straight from portcullis's own
#   store directory (the limit of this machine for a file sent over HTTP), BLOB_RUNS fetches;
#   run.sh keeps each target's priming fetch as its cold figure (portcullis and
#   distribution-proxy fill their stores then).
# store_burst: two fresh STORE_BURST_MIB blobs pushed to the upstream; one cold pull of the first
#   through portcullis alone, then STORE_BURST_CLIENTS concurrent cold pulls of the second. Every
#   client must get the whole blob; portcullis's metrics say how many upstream blob requests and
#   store fills the burst cost, and how many requests waited on the fill.

STORE_BURST_MIB=${BENCH_STORE_BURST_MIB:-256}
STORE_BURST_CLIENTS=${BENCH_STORE_BURST_CLIENTS:-50}

store_static() { # STORE_DIR (portcullis's state_dir/store)
  local store=$1 port prefix=$WORK/nginx-static i code speed size
  mkdir -p "$RES/store" "$prefix"/{logs,tmp}
  read -r port < <("${HELPER[@]}" ports 1)
  {
    echo "worker_processes auto;"
    echo "daemon off;"
    echo "pid $prefix/nginx.pid;"
    echo "error_log $prefix/logs/error.log warn;"
    [ "$(id -u)" -ne 0 ] || echo "user root;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  sendfile on;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $prefix/tmp/$t;"; done
    echo "  server {"
    echo "    listen 127.0.0.1:$port;"
    echo "    location = /ping { return 200; }"
    # Quoted: a bare `{64}` would open a block.
    echo "    location ~ \"^/v2/keyed/app/blobs/sha256:(?<hex>[0-9a-f]{64})\$\" {"
    echo "      default_type application/octet-stream;"
    echo "      alias $store/blobs/sha256/\$hex;"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$prefix/nginx.conf"
  start nginx-static nginx -e "$prefix/logs/error.log" -p "$prefix" -c "$prefix/nginx.conf"
  local pid=$LAST_PID
  wait_http "http://127.0.0.1:$port/ping" "$pid" nginx-static
  : >"$RES/store/nginx-static.txt"
  for ((i = 0; i < BLOB_RUNS; i++)); do
    read -r code speed size < <(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{speed_download} %{size_download}\n' \
      "http://127.0.0.1:$port/v2/keyed/app/blobs/$BLOB_DIGEST")
    [ "$code" = 200 ] && [ "$size" = "$BLOB_SIZE" ] || die "nginx-static: blob GET answered $code with $size bytes"
    echo "$speed" >>"$RES/store/nginx-static.txt"
  done
  log "blob nginx-static (portcullis's store file): $(tr '\n' ' ' <"$RES/store/nginx-static.txt")bytes/s"
  stop_pid "$pid"
}

store_burst() { # URL ADMIN
  local url=$1 admin=$2 single burst t0 t1 i pids=()
  mkdir -p "$RES/store/burst"
  log "pushing two fresh ${STORE_BURST_MIB} MiB blobs for the burst"
  head -c "${STORE_BURST_MIB}M" /dev/urandom >"$WORK/burst-single.bin"
  head -c "${STORE_BURST_MIB}M" /dev/urandom >"$WORK/burst.bin"
  single=$(push_blob "$WORK/burst-single.bin")
  burst=$(push_blob "$WORK/burst.bin")
  rm -f "$WORK/burst-single.bin" "$WORK/burst.bin"
  echo "$STORE_BURST_MIB $STORE_BURST_CLIENTS" >"$RES/store/burst/shape.txt"
  curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' \
    "$url/v2/keyed/app/blobs/$single" >"$RES/store/burst/single.txt"
  curl -fsS --max-time 10 "$admin/metrics" >"$RES/store/burst/before.metrics"
  t0=$(date +%s%N)
  for ((i = 0; i < STORE_BURST_CLIENTS; i++)); do
    curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' \
      "$url/v2/keyed/app/blobs/$burst" >"$RES/store/burst/client_$i.txt" 2>&1 &
    pids+=($!)
  done
  # Only the clients: the proxies are background jobs of this shell too.
  wait "${pids[@]}" || true
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000)) >"$RES/store/burst/wall_ms.txt"
  curl -fsS --max-time 10 "$admin/metrics" >"$RES/store/burst/after.metrics"
  echo "$((STORE_BURST_MIB * 1048576))" >"$RES/store/burst/size.txt"
  log "store burst: one cold pull $(cut -d' ' -f3 "$RES/store/burst/single.txt") s; $STORE_BURST_CLIENTS concurrent: $(cat "$RES/store/burst/wall_ms.txt") ms"
}
