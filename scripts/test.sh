#!/usr/bin/env bash
# Sets up and runs every check CI runs: tests, lints, formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The lab tests (crates/natpass/tests/lab.rs) run real VPN software in network namespaces;
# as root, install it. Without root they print SKIPPED.
# The browser test (crates/natpass/tests/browser.rs) needs chromium and playwright-core.
if [ "$(id -u)" -eq 0 ]; then source scripts/lab-setup.sh; bash scripts/browser-setup.sh; fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line with the totals of every test binary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
