#!/usr/bin/env bash
# The main job: set up, build the web app, and serve it locally. Open the printed URL in a browser
# with WebGPU (Chrome, Edge, Safari 26, Firefox 141+); others use the CPU fallback.
# Usage: scripts/run.sh [PORT]   (default 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build-web.sh
exec node scripts/static-server.mjs dist "${1:-8080}"
