#!/usr/bin/env bash
# Runs each fuzz target for SECONDS and prints its executions and crashes.
#   fuzz/run.sh SECONDS [TARGET...]     (targets: otlp_proto otlp_json config redact query)
# Needs cargo-afl (`cargo install cargo-afl`; it builds AFL++'s runtime on first use). Crashes
# land in fuzz/out/<target>/default/crashes/: copy each into fuzz/regressions/<target>/, where
# the test suite replays it (collector/tests/it/fuzz_regressions.rs), and fix the bug.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(otlp_proto otlp_json config redact query)
fi
cargo afl build --release --quiet
mkdir -p out
total=0
for target in "${targets[@]}"; do
    # A rerun resumes the target's queue (-i -) when it has one.
    input=(-i "seeds/$target")
    if [ -d "out/$target/default/queue" ]; then
        input=(-i -)
    fi
    AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_AUTORESUME=1 cargo afl fuzz -V "$seconds" "${input[@]}" -o "out/$target" \
        "target/release/$target" > "out/$target.log" 2>&1 || {
        echo "$target: afl-fuzz failed, see fuzz/out/$target.log" >&2
        exit 1
    }
    stats="out/$target/default/fuzzer_stats"
    execs=$(awk -F: '/^execs_done/ {gsub(/ /, "", $2); print $2}' "$stats")
    crashes=$(awk -F: '/^saved_crashes/ {gsub(/ /, "", $2); print $2}' "$stats")
    echo "$target: $execs executions, $crashes crashes"
    total=$((total + execs))
done
echo "total: $total executions"
