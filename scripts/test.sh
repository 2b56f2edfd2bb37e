#!/usr/bin/env bash
# Runs every check, cheapest first: formatting, lints, then all tests (unit, parity with ncnn,
# tiling, wgpu vs CPU, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked -- --nocapture 2>&1 | tee "${TMPDIR:-/tmp}/lupa-test.log"
