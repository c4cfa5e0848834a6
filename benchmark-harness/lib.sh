# Shared set-up for benchmark-harness/run.sh and benchmark-harness/soak.sh; sourced, not run.
#
# Expects ROOT (the repository) to be set. Provides: log/die, ensure_packages, new_workdir (WORK,
# PIDS and the exit trap that stops every process started here by PID), start, stop_pid,
# wait_http, vmhwm, registry_config, start_upstream, push_fixtures, push_blob, cold_pair, digest_of,
# start_portcullis.
#
# Knobs read here: BENCH_KEEP=1 keeps the temp dir; LOG_TAG names the log prefix.

FIX=$ROOT/tests/fixtures/sigstore
HELPER=(python3 "$ROOT/benchmark-harness/report.py")
# The benchmarks' PostgreSQL server: initdb's defaults, except its buffer cache (128 MB by
# default, sized to start anywhere), set as for a server holding the 2 GB the inventory's
# benchmark seeds (docs/benchmarks.md says so beside the rows).
BENCH_POSTGRES_SETTINGS=(shared_buffers=1GB)
ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
ISSUER=https://token.actions.githubusercontent.com
IDENTITY=https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main

log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ensure_packages PKG...: installs the Debian packages that are missing (needs root or sudo then).
ensure_packages() {
  local p missing=() sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "installing: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# new_workdir PREFIX: a temp dir in WORK (logs in WORK/logs) and the exit trap.
new_workdir() {
  WORK=$(mktemp -d -t "$1.XXXXXX")
  mkdir -p "$WORK/logs"
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# stop_pid PID: SIGTERM, up to 15 s, then SIGKILL; reaps it and forgets it.
stop_pid() {
  local pid=$1 i state
  if kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 150; i++)); do
      state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
      [ -z "$state" ] || [ "$state" = Z ] && break
      sleep 0.1
    done
    [ -z "$state" ] || [ "$state" = Z ] || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  ! declare -F stop_postgres >/dev/null || stop_postgres
  if [ -n "${BENCH_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

# start NAME CMD...: runs CMD in the background, output to logs/NAME.log; PID in LAST_PID.
start() {
  local name=$1
  shift
  "$@" >"$WORK/logs/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# wait_http URL PID NAME [SECONDS]: until URL answers 2xx, the process dies, or the time is up.
wait_http() {
  local url=$1 pid=$2 name=$3 limit=${4:-20} deadline
  deadline=$((SECONDS + limit))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/logs/$name.log" >&2; die "$name exited"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$WORK/logs/$name.log" >&2; die "$name not ready after ${limit}s"; }
    sleep 0.1
  done
}

# vmhwm PID: peak resident set in KiB.
vmhwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

registry_config() { # FILE DATA_DIR PORT [REMOTE]
  {
    echo "version: 0.1"
    echo "log: {level: error, accesslog: {disabled: true}}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $2}"
    echo "  cache: {blobdescriptor: inmemory}"
    [ -n "${4:-}" ] || echo "  delete: {enabled: true}"
    echo "http: {addr: 127.0.0.1:$3}"
    [ -z "${4:-}" ] || echo "proxy: {remoteurl: $4}"
  } >"$1"
}

# start_upstream PORT: the docker-registry upstream on 127.0.0.1:PORT; sets UP and UP_PID.
start_upstream() {
  UP=127.0.0.1:$1
  registry_config "$WORK/upstream.yml" "$WORK/upstream-data" "$1"
  start upstream docker-registry serve "$WORK/upstream.yml"
  UP_PID=$LAST_PID
  wait_http "http://$UP/v2/" "$UP_PID" upstream
  log "upstream docker-registry on $UP"
}

# push_fixtures: the signed fixture plan into keyed/app and keyless/app of the upstream UP.
push_fixtures() {
  local repo
  for repo in keyed/app keyless/app; do
    "${HELPER[@]}" push-plan "$UP" "$repo" "$FIX"
  done
  log "pushed the fixture plan into keyed/app and keyless/app"
}

# digest_of IMAGE: the fixture image's manifest digest.
# push_blob FILE: uploads FILE to keyed/app on the upstream; prints its digest.
push_blob() {
  local file=$1 digest location sep code
  digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
  location=$(curl -fsS --max-time 30 -X POST -D - -o /dev/null "http://$UP/v2/keyed/app/blobs/uploads/" |
    awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
  [ -n "$location" ] || die "no upload Location"
  case $location in /*) location=http://$UP$location ;; esac
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  code=$(curl -sS --max-time 600 -o /dev/null -w '%{http_code}' -T "$file" \
    -H 'Content-Type: application/octet-stream' "$location${sep}digest=$digest")
  [ "$code" = 201 ] || die "blob upload answered $code"
  echo "$digest"
}

# cold_pair IMAGE: the measured manifest (`path`) of a cold-pull sample of IMAGE (key-legacy or
# keyless-bundle) by digest, and the other signed image of its repository pulled first (`prime`).
cold_pair() {
  if [ "$1" = key-legacy ]; then
    path=keyed/app/manifests/$(digest_of key-legacy) prime=keyed/app/manifests/$(digest_of key-bundle)
  else
    path=keyless/app/manifests/$(digest_of keyless-bundle) prime=keyless/app/manifests/$(digest_of keyless-legacy)
  fi
}

digest_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["digest"])' "$FIX/registry/images.json" "$1"; }

# start_portcullis NAME none|enforce: a fresh process of BIN on fresh ports; sets PC_PID PC_URL
# PC_ADMIN. The upstream is http://$UP unless PC_UPSTREAM says otherwise; PC_EXTRA_CONFIG (YAML
# lines) is appended to the configuration.
start_portcullis() {
  local name=$1 kind=$2 api admin dir=$WORK/$1
  read -r api admin < <("${HELPER[@]}" ports 2)
  # Every process starts cold: no store, manifests or ledger left by an earlier one of this name.
  rm -rf "$dir/state"
  mkdir -p "$dir"
  {
    echo "listen: 127.0.0.1:$api"
    echo "admin_listen: 127.0.0.1:$admin"
    echo "state_dir: $dir/state"
    echo "default_upstream: local"
    echo "upstreams:"
    echo "  local: { url: \"${PC_UPSTREAM:-http://$UP}\" }"
    echo "unmatched: allow"
    if [ "$kind" = none ]; then
      echo "policies: []"
    else
      echo "trusted_root: $FIX/trusted_root.json"
      echo "policies:"
      echo "  - name: keyed"
      echo "    match: [\"local/keyed/*\"]"
      echo "    mode: enforce"
      echo "    attestors:"
      echo "      - key: { public_key: $FIX/cosign.pub }"
      echo "  - name: keyless"
      echo "    match: [\"local/keyless/*\"]"
      echo "    mode: enforce"
      echo "    attestors:"
      echo "      - keyless: { subject: \"$IDENTITY\", issuer: \"$ISSUER\" }"
    fi
    [ -z "${PC_EXTRA_CONFIG:-}" ] || printf '%s\n' "$PC_EXTRA_CONFIG"
  } >"$dir/portcullis.yaml"
  start "$name" "$BIN" serve --config "$dir/portcullis.yaml"
  PC_PID=$LAST_PID
  PC_URL=http://127.0.0.1:$api
  PC_ADMIN=http://127.0.0.1:$admin
  wait_http "$PC_ADMIN/readyz" "$PC_PID" "$name"
}

# on_off_warm SECTION OFF_CONFIG ROUNDS: the same binary and enforce configuration twice, the
# second with OFF_CONFIG added, both idle but the one measured; `wrk -c64` by digest on the warm
# keyed manifest, alternating on/off for ROUNDS rounds so that drift on the shared machine hits
# both alike. Writes RES/SECTION/wrk__{on,off}__<round>.txt and each side's metrics
# (RES/SECTION/{on,off}.metrics).
on_off_warm() {
  local section=$1 off_config=$2 rounds=$3
  local side url i out
  mkdir -p "$RES/$section"
  PC_EXTRA_CONFIG="" start_portcullis "$section-on" enforce
  local on_pid=$PC_PID on_url=$PC_URL on_admin=$PC_ADMIN
  PC_EXTRA_CONFIG="$off_config" start_portcullis "$section-off" enforce
  local off_pid=$PC_PID off_url=$PC_URL off_admin=$PC_ADMIN
  for url in "$on_url" "$off_url"; do
    code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$url/v2/keyed/app/manifests/$KEYED_DIGEST")
    [ "$code" = 200 ] || die "$section: priming GET on $url answered $code"
  done
  for ((i = 0; i < rounds; i++)); do
    for side in on off; do
      url=$on_url
      [ "$side" = off ] && url=$off_url
      out=$RES/$section/wrk__${side}__$i.txt
      timeout 120 wrk -t2 -c64 -d"$WRK_DURATION" --timeout 5s --latency -H "Accept: $ACCEPT" \
        "$url/v2/keyed/app/manifests/$KEYED_DIGEST" >"$out" 2>&1 || log "wrk $section-$side round $i failed"
      log "wrk $section-$side round $i: $(awk '/Requests\/sec/ {print $2}' "$out") req/s"
    done
  done
  # What each side did: after the ledger writer's flush interval, so that the "on" side's
  # counters include the last batch.
  sleep 2
  curl -fsS --max-time 10 "$on_admin/metrics" >"$RES/$section/on.metrics" || true
  curl -fsS --max-time 10 "$off_admin/metrics" >"$RES/$section/off.metrics" || true
  stop_pid "$on_pid"
  stop_pid "$off_pid"
}
