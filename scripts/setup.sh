#!/usr/bin/env bash
# Installs what Lupa's build and tests need on a fresh Debian/Ubuntu machine. Safe to re-run: every
# step is skipped when already done, so a machine that ran it once needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tools. wasm-bindgen's CLI must equal the wasm-bindgen crate in Cargo.lock (also pinned in
# Cargo.toml and Trunk.toml). Trunk 0.22 needs a newer rustc than ours.
TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# - mesa-vulkan-drivers, libvulkan1: Mesa's lavapipe, on which wgpu runs where there is no GPU.
# - chromium: the browser the web tests drive (headless; WebGPU on SwiftShader without a GPU).
# - nodejs, npm: run the browser tests and the local static server (skipped if node is there).
apt_packages=(mesa-vulkan-drivers libvulkan1 chromium)
command -v node >/dev/null && command -v npm >/dev/null || apt_packages+=(nodejs npm)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rust components and the browser target.
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# Trunk and the wasm-bindgen CLI, unless the pinned versions are already installed.
locked_bindgen=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$locked_bindgen" != "$WASM_BINDGEN_VERSION" ]; then
  echo "setup: Cargo.lock has wasm-bindgen $locked_bindgen but the tools pin $WASM_BINDGEN_VERSION" >&2
  exit 1
fi
if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  echo "setup: installing trunk $TRUNK_VERSION (about 17 minutes on 2 cores)"
  cargo install trunk --version "$TRUNK_VERSION" --locked --quiet
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 8 minutes on 2 cores)"
  # Not --locked: that lockfile does not resolve on crates.io any more.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --quiet
fi

# Fetch every crate once (all targets), so the builds, and Trunk's offline build, need no network.
# Offline first: when every locked crate is already in Cargo's cache this touches no network.
cargo fetch --locked --offline >/dev/null 2>&1 || cargo fetch --locked >/dev/null
# The web tooling's npm packages (the browser tests; binaryen's wasm-opt for the release build),
# exactly as locked. `npm ci` deletes and re-extracts node_modules, so it runs only when
# package-lock.json differs from the copy stored in node_modules by the last successful install
# (which `npm ci` itself removes first).
(
  cd tests/browser
  if ! cmp -s package-lock.json node_modules/.lupa-package-lock.json; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json node_modules/.lupa-package-lock.json
  fi
)
