#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each, starting from the seed
# corpus, and fails on the first crash. Prints executions, speed, coverage and corpus size
# per target. `.ci/run` calls it with 30 s; docs/FUZZING.md records longer runs.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Environment: FLOE_FUZZ_SANITIZER (default `none`: the protocol crates forbid unsafe code,
# so AddressSanitizer mostly costs speed; `address` for a run that checks the dependencies'
# unsafe code too), FLOE_FUZZ_WORK (a directory for the new corpus entries and logs;
# default a temporary one, deleted at the end).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs="${1:-30}"
shift || true

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# -O: optimised; -a: with debug assertions and overflow checks, which turn silent
# wrap-arounds into findings.
flags=(-O -a -s "${FLOE_FUZZ_SANITIZER:-none}")
cargo fuzz build "${flags[@]}"

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

if [ -n "${FLOE_FUZZ_WORK:-}" ]; then
    work="$FLOE_FUZZ_WORK"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

printf '%-14s %12s %9s %7s %7s %8s %9s\n' target executions exec/s cov ft corpus bytes
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    # New inputs go to the first directory (scratch); the seeds are read only.
    if ! cargo fuzz run "${flags[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $t FAILED; the input that broke it is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    stat() { grep -o "stat::$1: *[0-9]*" "$log" | awk '{print $2}'; }
    done_line="$(grep 'DONE' "$log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' <<<"$done_line" | awk '{print $2}')"
    ft="$(grep -o 'ft: [0-9]*' <<<"$done_line" | awk '{print $2}')"
    corp="$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' <<<"$done_line" | awk '{print $2}')"
    printf '%-14s %12s %9s %7s %7s %8s %9s\n' "$t" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp%%/*}" "${corp##*/}"
done
