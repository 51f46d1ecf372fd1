#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a while (cargo fuzz, libFuzzer, on
# nightly; CI only checks that they build) and prints one line per target: executions,
# corpus size, and any crash (its input is kept in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh              # every target, 120 s each
#   scripts/fuzz.sh 600 preset   # one target, 10 minutes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-120}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(preset answer assignment headers jq_route config_values commit_metadata storm_state dead_letter)
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# Seeds: the sample events, so the preset target starts from real alerts.
mkdir -p fuzz/corpus/preset
cp examples/events/*.json fuzz/corpus/preset/ 2>/dev/null || true
mkdir -p fuzz/corpus/jq_route
for f in examples/events/*.json; do
  for pick in 0 1 2 3 4; do
    { printf "\\x0$pick"; cat "$f"; } >"fuzz/corpus/jq_route/$(basename "$f" .json)-$pick"
  done
done

status=0
for t in "${targets[@]}"; do
  log=$(mktemp)
  if cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    verdict="no crash"
  else
    verdict="CRASH: see fuzz/artifacts/$t/ and $log"
    status=1
  fi
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-11s %ss: %s executions, corpus %s, %s\n' "$t" "$seconds" "${execs:-?}" "$corpus" "$verdict"
  [[ $verdict == "no crash" ]] && rm -f "$log"
done
exit $status
