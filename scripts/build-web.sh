#!/usr/bin/env bash
# Builds the web app into dist/ with Trunk, offline (see Trunk.toml). Uses the shared dev profile:
# the wasm engine's dependencies are optimised like the native build's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
trunk build --config Trunk.toml "$@"
wasm=$(ls dist/*.wasm)
echo "built dist/: $(basename "$wasm") is $(du -h "$wasm" | cut -f1), $(gzip -9 -c "$wasm" | wc -c | numfmt --to=iec) gzipped"
