#!/usr/bin/env bash
# Builds the web app with Trunk, offline (see Trunk.toml).
#
#   scripts/build-web.sh          the release build into dist/: what run.sh serves and what a site
#                                 deploys. The engines in Cargo's `web-release` profile (opt-level s
#                                 but 3 for the CPU kernels, fat LTO, one codegen unit), then
#                                 stripped by wasm-opt from npm's binaryen (tests/browser/
#                                 package.json; Debian's wasm-opt 108 predates the wasm features
#                                 Rust emits and produces a module that fails to load).
#   scripts/build-web.sh --dev    the development build into dist-dev/: the shared dev profile,
#                                 quick to rebuild; the browser tests' app build.
#
# Both build two engines (crates/lupa-web, and crates/lupa-web-cpu without WebGPU), then pin every
# script and engine file by its sha384 (scripts/integrity.mjs: the page's import map and CSP, the
# engine worker's checked bootstrap), write the service worker's precache list
# (scripts/precache.mjs) and print the engines' sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if [ "${1:-}" = "--dev" ]; then
  shift
  dist=dist-dev
  trunk build --config Trunk.toml --dist "$dist" "$@"
else
  dist=dist
  trunk build --config Trunk.toml --release --dist "$dist" "$@"
  wasm_opt=tests/browser/node_modules/.bin/wasm-opt
  if [ ! -x "$wasm_opt" ]; then
    echo "build-web: $wasm_opt is missing (scripts/setup.sh installs it)" >&2
    exit 1
  fi
  # Strips the names, debug info and producers section; features as the module declares them
  # (its target_features section). No -O pass: each one measured makes the module smaller but
  # its gzip larger (README, "Release build"), and the budget is what a visit downloads.
  for wasm in "$dist"/*.wasm; do
    "$wasm_opt" --strip-debug --strip-producers "$wasm" -o "$wasm.stripped"
    mv "$wasm.stripped" "$wasm"
  done
fi
node scripts/integrity.mjs "$dist"
node scripts/precache.mjs "$dist"
for wasm in "$dist"/*.wasm; do
  echo "built $wasm: $(stat -c %s "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzipped (gzip -9)"
done
