#!/usr/bin/env bash
# Installs what Lupa's build and tests need on a fresh Debian/Ubuntu machine. Safe to re-run: every
# step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Vulkan loader + Mesa's lavapipe: the wgpu backend runs on it where there is no GPU.
apt_packages=(mesa-vulkan-drivers libvulkan1)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Rust components used by the checks.
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# Fetch every crate once, so later builds work offline.
cargo fetch --locked >/dev/null
