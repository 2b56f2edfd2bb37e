#!/usr/bin/env bash
# Runs every check, cheapest first: formatting, lints, the Rust tests (unit, parity with ncnn,
# tiling, wgpu vs CPU, CLI), then the web app in headless Chromium (WebGPU and the CPU fallback),
# the widget, the installable app and the release build's first load, then the benchmarks' smoke
# run (scripts/bench.sh --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The browser engine's JavaScript glue only exists on wasm32.
cargo clippy -p lupa-web --target wasm32-unknown-unknown --locked -- -D warnings
# ... and the CPU engine, built without the `gpu` feature.
cargo clippy -p lupa-web-cpu --target wasm32-unknown-unknown --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked -- --nocapture 2>&1 | tee "${TMPDIR:-/tmp}/lupa-test.log"
echo "== web app builds: development (dist-dev/, the app's browser tests) and release (dist/, what ships)"
./scripts/build-web.sh --dev
./scripts/build-web.sh
echo "== browser tests"
(cd tests/browser && LUPA_BIN="$CARGO_TARGET_DIR/debug/lupa" npm test)
echo "== benchmark smoke (one small image per backend and peer)"
./scripts/bench.sh --smoke
