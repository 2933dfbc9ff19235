#!/usr/bin/env bash
# The whole test suite: formatting, lints, the dependency rules of STYLE.md,
# unit, property and integration tests (namespace tests too when root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== dependency rules"
scripts/check-deps.sh

echo "== cargo build (binaries and plugins the integration tests run)"
# Into a target directory of their own, where the tests look for them
# (tests/lnd-test-host/src/bins.rs says why).
cargo build --workspace --quiet --target-dir "${CARGO_TARGET_DIR:-target}/nested"

echo "== cargo test"
cargo test --workspace --doc --no-fail-fast 2>&1 | tee target/test-output.txt
cargo test --workspace --lib --bins --tests --no-fail-fast 2>&1 | tee -a target/test-output.txt
if [ "$(id -u)" -eq 0 ]; then
    echo "== cargo test (root-only: network namespaces)"
    cargo test --workspace --lib --bins --tests --no-fail-fast -- --ignored \
        2>&1 | tee target/test-output-root.txt
fi

echo "== fuzz targets"
# Every decoder of outside bytes has a cargo-fuzz target (fuzz/). With a
# nightly toolchain each runs briefly; without one they are only compiled.
if cargo +nightly --version >/dev/null 2>&1; then
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz
    for t in $(cd fuzz && cargo +nightly fuzz list); do
        echo "-- fuzz $t (${FUZZ_SECONDS:-10} s)"
        mkdir -p "target/fuzz-corpus/$t"
        (cd fuzz && cargo +nightly fuzz run "$t" "../target/fuzz-corpus/$t" "corpus/$t" -- \
            -max_total_time="${FUZZ_SECONDS:-10}" -print_final_stats=0 2>&1 | tail -n 2)
    done
else
    echo "no nightly toolchain: compiling the fuzz targets only"
    (cd fuzz && RUSTFLAGS="--cfg fuzzing" cargo check --quiet)
fi

echo "== cargo bench --no-run"
cargo bench --workspace --no-run --quiet
