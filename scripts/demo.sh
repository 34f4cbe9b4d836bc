#!/usr/bin/env bash
# Sets up and runs the main job: the demo capture through natpass, both ways.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked -p natpass
./target/release/natpass replay demo/lan-clients.pcap --out-dir out/demo "$@"
