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
cargo build --workspace --quiet

echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
if [ "$(id -u)" -eq 0 ]; then
    echo "== cargo test (root-only: network namespaces)"
    cargo test --workspace --lib --bins --tests --no-fail-fast -- --ignored 2>&1 | tee target/test-output-root.txt
fi

echo "== cargo bench --no-run"
cargo bench --workspace --no-run --quiet
