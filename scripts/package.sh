#!/usr/bin/env bash
# Builds the Debian package target/debian/natpass_*.deb with cargo-deb: the release binary,
# the systemd unit, the commented /etc/natpass/natpass.toml, the man pages and the bash, zsh
# and fish completions (both made by the binary itself: `natpass man`, `natpass completions`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked
fi
cargo build --release --locked -p natpass
target="${CARGO_TARGET_DIR:-target}/release"
assets="$target/assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$target/natpass" man --dir "$assets/man"
gzip -9n "$assets"/man/*.1
"$target/natpass" completions bash >"$assets/completions/natpass.bash"
"$target/natpass" completions zsh >"$assets/completions/_natpass"
"$target/natpass" completions fish >"$assets/completions/natpass.fish"
rm -f "${CARGO_TARGET_DIR:-target}"/debian/natpass_*.deb
cargo deb -p natpass --no-build --locked
ls "${CARGO_TARGET_DIR:-target}"/debian/natpass_*.deb
