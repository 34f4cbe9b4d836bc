#!/usr/bin/env bash
# The main job: sets up, builds, and runs the VPN lab (network namespaces, real VPN clients and
# servers) through natpass and through Linux nftables NAT, then prints the table.
# Needs root: it creates network namespaces. Extra arguments go to `natpass-lab` (see
# `natpass-lab --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/lab-setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# natpass-lab starts the natpass binary beside it (target/release/natpass) as the router.
cargo build --release --locked -p natpass -p natpass-lab
exec ./target/release/natpass-lab "$@"
