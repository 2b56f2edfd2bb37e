# Sourced by the scripts: one shared build cache outside the clone, so tests, the CLI and CI reuse
# one build of Burn (all native work uses the dev profile, optimised for dependencies).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lupa-target}"
