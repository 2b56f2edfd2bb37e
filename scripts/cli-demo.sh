#!/usr/bin/env bash
# The CLI on the bundled sample: build `lupa` and upscale a 128×128 photo crop 4×.
# Extra arguments go to `lupa upscale` (e.g. --backend wgpu, --model realesr-general-x4v3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/setup.sh
cargo run --locked --bin lupa -- upscale tests/fixtures/images/astronaut_128.png -o astronaut_128_x4.png "$@"
echo "wrote $(pwd)/astronaut_128_x4.png"
