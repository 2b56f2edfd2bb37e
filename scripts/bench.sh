#!/usr/bin/env bash
# Every benchmark, with the peers, in one run (`lupa-bench report`, crates/lupa-bench):
#
#   ./scripts/bench.sh            the full run (about an hour on 2 cores): rewrites docs/BENCHMARKS.md
#                                 and docs/benchmarks.svg. Needs ../shared/eval (the image sets).
#   ./scripts/bench.sh --smoke    one small image per backend and peer, report under target/bench-smoke
#                                 (run by scripts/test.sh; needs only the repository).
#
# Sets up what the peers need first: UpscalerJS's npm packages (crates/lupa-bench/browser), a
# Python virtual environment with PyPI `ncnn` ($HOME/.cache/lupa-bench-venv), and the original ncnn
# files (`lupa-import`'s package cache). Extra arguments go to `lupa-bench report`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/setup.sh

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi

# Python with the ncnn runtime (the same pins as the parity fixtures).
venv="$HOME/.cache/lupa-bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  # Debian splits venv (with pip) out of python3.
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  python3 -m venv "$venv"
fi
# pip runs only when the requirements differ from the copy stored by the last successful install
# (or the packages no longer import), so a machine with the venv set up needs no network here.
if ! cmp -s tests/parity/requirements.txt "$venv/requirements.txt" ||
   ! "$venv/bin/python" -c 'import ncnn, numpy, PIL, safetensors' 2>/dev/null; then
  rm -f "$venv/requirements.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/parity/requirements.txt
  cp tests/parity/requirements.txt "$venv/requirements.txt"
fi
# UpscalerJS and tfjs, exactly as locked (npm ci re-extracts ~480 MB: only when the lock changed).
(
  cd crates/lupa-bench/browser
  if ! cmp -s package-lock.json node_modules/.lupa-package-lock.json; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json node_modules/.lupa-package-lock.json
  fi
)

cargo build --workspace --locked
# The original ncnn files: lupa-import downloads them only when missing from its cache
# (~/.cache/lupa-import) and sha256-checks them; its converted output goes to a scratch folder, so
# models/ is untouched. Everything else below (the build, Trunk, the report) works offline.
work="target/bench"
[ "$smoke" = 1 ] && work="target/bench-smoke"
mkdir -p "$work"
# (It downloads with `python3 -m pip`: the virtual environment's, which has pip on any machine.)
PATH="$venv/bin:$PATH" "$CARGO_TARGET_DIR/debug/lupa-import" --out "$work/import" >/dev/null
./scripts/build-web.sh >/dev/null
# Run a copy: a rebuild during the run must not replace the binary the runs re-execute.
cp "$CARGO_TARGET_DIR/debug/lupa-bench" "$work/lupa-bench"

if [ "$smoke" = 1 ]; then
  args=(--sets tests/fixtures/images --photo-sets images --crop 64
        --quality-models span-x2,span-x4 --speed-image tests/fixtures/images/chelsea_64x48.png
        --speed-models span-x4 --sizes 32 --upscaler-models esrgan-slim --upscaler-backends wasm,cpu
        --profile-models span-x4 --out "$work/BENCHMARKS.md" --plot "$work/benchmarks.svg" --strict)
  command_line="./scripts/bench.sh --smoke $*"
else
  args=()
  command_line="./scripts/bench.sh $*"
fi
LUPA_BENCH_COMMAND="$command_line" "$work/lupa-bench" report --work "$work" --python "$venv/bin/python" \
  "${args[@]}" "$@"
