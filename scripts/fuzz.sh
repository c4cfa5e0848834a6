#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60), starting from
# its committed seed corpus (fuzz/corpus/<target>/, real fixture documents). Fails when any
# target crashes, hangs (-timeout, seconds per input) or goes over its memory bound
# (-rss_limit_mb, which is also the largest single allocation allowed); the input that did it is
# left in fuzz/artifacts/<target>/.
#
#     scripts/fuzz.sh [SECONDS]
#
# FUZZ_SANITIZER picks cargo fuzz's sanitizer (default `address`). CI uses `none`: the crate
# forbids unsafe code, so panics, hangs and the memory bound are what the run can find, and the
# build is much faster without AddressSanitizer.
#
# libFuzzer needs nightly compiler flags (-Zsanitizer=address, coverage instrumentation): the
# stable toolchain accepts them under RUSTC_BOOTSTRAP=1, set here for cargo fuzz alone. Fuzz
# builds use their own flags, so they live in their own target directory (fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
target_dir="$PWD/fuzz/target"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

started=$(date +%s)
cargo fuzz build -s "$sanitizer" --target-dir "$target_dir"
echo "fuzz: built in $(( $(date +%s) - started )) s"

failed=()
targets=$(cargo fuzz list)
for t in $targets; do
  # libFuzzer adds new inputs to the first corpus directory: a scratch copy, not the seeds.
  work="$target_dir/corpus/$t"
  log="$target_dir/logs/$t.log"
  mkdir -p "$work" "$(dirname "$log")"
  t0=$(date +%s)
  if cargo fuzz run -s "$sanitizer" --target-dir "$target_dir" "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
  printf 'fuzz: %-16s %s, %s s, %s runs, corpus %s\n' "$t" "$status" "$(( $(date +%s) - t0 ))" \
    "${runs:-?}" "$(ls "$work" | wc -l)"
  if [ "$status" = FAILED ]; then
    tail -40 "$log"
  fi
done

echo "fuzz: $(( $(date +%s) - started )) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
