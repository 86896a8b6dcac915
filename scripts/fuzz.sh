#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time (issue 4).
#
#   scripts/fuzz.sh                 # each target 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh sip_message sdp   # chosen targets, 10 min each
#
# cargo-fuzz needs nightly-only rustc flags (-Z sanitizer=address, coverage passes).
# This machine has the stable toolchain only, so RUSTC_BOOTSTRAP=1 lets stable rustc
# accept them; with a nightly toolchain installed, `cargo +nightly fuzz` works as well.
#
# Seeds: the committed corpus fuzz/corpus/<target>/ (small, hand-picked) and, for the
# SIP targets, the RFC 4475 torture messages in tests/fixtures/torture/. What the
# fuzzer learns goes to fuzz/corpus-work/<target>/ (git-ignored), so the committed
# corpus stays small. A crash leaves its input in fuzz/artifacts/<target>/: copy it
# to tests/fixtures/fuzz-regressions/<target>/ so tests/fuzz_corpus.rs replays it.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${FUZZ_SECONDS:-60}
all_targets=(sip_message sip_framing sdp rtp dtmf config)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz is missing: scripts/install-test-deps.sh --bench installs it" >&2
    exit 1
fi

export RUSTC_BOOTSTRAP=1
failed=()
for target in "${targets[@]}"; do
    work="$repo/fuzz/corpus-work/$target"
    mkdir -p "$work"
    seeds=("$repo/fuzz/corpus/$target")
    case $target in
        sip_message) seeds+=("$repo/tests/fixtures/torture") ;;
    esac
    regressions="$repo/tests/fixtures/fuzz-regressions/$target"
    [ -d "$regressions" ] && seeds+=("$regressions")
    echo "== $target: ${seconds}s (seeds: ${seeds[*]#"$repo/"})"
    # -rss_limit_mb: a parser that allocates a gigabyte for a small input is a bug too.
    if ! (cd fuzz && cargo fuzz run "$target" "$work" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1); then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that found a crash: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash: ${targets[*]}"
