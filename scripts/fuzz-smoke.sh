#!/usr/bin/env bash
# Fuzz smoke test: builds each cargo-fuzz target and runs it for a short, fixed time. It proves
# the targets build and survive a burst of coverage-guided input; it is not a fuzzing campaign.
#
# Usage: scripts/fuzz-smoke.sh [target...]
#   With no arguments, runs every target `cargo fuzz list` finds in fuzz/Cargo.toml.
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_SANITIZER  address | none (default none; see below)
#   FUZZ_DIR        the cargo-fuzz crate (default <repo>/fuzz)
#
# The machine has only a stable toolchain. cargo-fuzz passes nightly-only `-Z` flags to rustc
# (sanitizer coverage instrumentation), which stable rustc accepts when RUSTC_BOOTSTRAP=1.
# The sanitizer defaults to none: our decoders are safe Rust, so AddressSanitizer adds build
# time and a slower run for no extra findings; panics and libFuzzer's own limits still apply.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="${FUZZ_DIR:-$repo_root/fuzz}"
fuzz_seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$repo_root"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found in $fuzz_dir" >&2
    exit 1
fi

for target in "${targets[@]}"; do
    echo "fuzz-smoke: $target for ${fuzz_seconds}s (sanitizer: $sanitizer)" >&2
    started_at_s="$(date +%s)"
    # The corpus lives in fuzz/corpus/<target> (cargo-fuzz's default), so runs build on each
    # other; -rss_limit_mb bounds memory on a shared 24 GiB machine.
    cargo fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" "$target" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=1
    echo "fuzz-smoke: $target passed in $(( $(date +%s) - started_at_s ))s (build included)" >&2
done
