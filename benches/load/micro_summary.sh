#!/usr/bin/env bash
# Prints the criterion micro-benchmarks of the last `cargo bench` as one Markdown table
# (median and 95 % interval of the mean per iteration, from target/criterion/*/new/
# estimates.json) and appends it, with date, commit and machine, to benches/RESULTS.md.
#
#   cargo bench && benches/load/micro_summary.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
need jq

criterion="$REPO/target/criterion"
[ -d "$criterion" ] || die "no $criterion: run cargo bench first"
NOTE=${NOTE:-}

format_ns() {
    awk -v ns="$1" 'BEGIN {
        if (ns >= 1e6) printf "%.2f ms", ns / 1e6
        else if (ns >= 1e3) printf "%.2f µs", ns / 1e3
        else printf "%.1f ns", ns }'
}

{
    echo "| benchmark | median | mean 95 % interval |"
    echo "|---|---|---|"
    find "$criterion" -path '*/new/estimates.json' | sort | while read -r estimates; do
        dir=$(dirname "$(dirname "$estimates")")
        name=$(jq -r '.full_id // .title' "$dir/new/benchmark.json" 2>/dev/null || echo "${dir#"$criterion/"}")
        median=$(jq '.median.point_estimate' "$estimates")
        lower=$(jq '.mean.confidence_interval.lower_bound' "$estimates")
        upper=$(jq '.mean.confidence_interval.upper_bound' "$estimates")
        echo "| $name | $(format_ns "$median") | $(format_ns "$lower") – $(format_ns "$upper") |"
    done
} | record_results "micro-benchmarks (criterion)" "cargo bench --bench sip --bench media --bench recording" "$NOTE"
