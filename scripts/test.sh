#!/usr/bin/env bash
# Sets up and runs every check CI runs: tests, lints, formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The lab tests (crates/lab/tests/lab.rs) run real VPN software in network namespaces;
# as root, install it. The browser test (crates/lab/tests/browser.rs) needs chromium and
# playwright-core. A test whose prerequisites are missing prints SKIPPED and why, or fails
# when NATPASS_TEST_REQUIRE=all (as .ci/run sets it). The metrics test needs promtool, and
# the package test systemd-analyze and man (scripts/ops-setup.sh).
if [ "$(id -u)" -eq 0 ]; then
  source scripts/lab-setup.sh
  bash scripts/browser-setup.sh
  bash scripts/ops-setup.sh
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# As root: the Debian package built with cargo-deb, installed with apt-get, its unit verified
# and its default config checked, then purged (scripts/package-test.sh).
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/package-test.sh
elif [ "${NATPASS_TEST_REQUIRE:-}" = all ]; then
  echo "package test: needs root (NATPASS_TEST_REQUIRE=all)" >&2
  exit 1
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line with the totals of every test binary above. A test skipped for missing
# prerequisites counts as passed in cargo's totals; its SKIPPED line moves it to "skipped".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) ig += $i } }
     /SKIPPED: / { sk++ }
     END { printf "tests: %d passed, %d failed, %d ignored, %d skipped (prerequisites missing)\n", p - sk, f, ig, sk }' "$log"
