#!/usr/bin/env bash
# As root: builds the Debian package, installs it as a user would (apt-get install ./...deb),
# and checks what it installed: the binary, the unit (systemd-analyze verify), the default
# config (natpass check), the user, the man page and the completions. Then purges it.
# CI runs it from scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "package-test: SKIPPED: needs root (apt-get install)"
    exit 0
fi
bash scripts/package.sh
deb="$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/natpass_*.deb | head -1)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --allow-downgrades "./$deb" >/dev/null
fail() { echo "package-test: FAILED: $*"; exit 1; }
/usr/bin/natpass --version
systemd-analyze verify /lib/systemd/system/natpass.service || fail "systemd-analyze verify natpass.service"
/usr/bin/natpass check --config /etc/natpass/natpass.toml || fail "the default config does not pass natpass check"
getent passwd natpass >/dev/null || fail "no natpass user"
[ "$(stat -c '%U %a' /etc/natpass/natpass.toml)" = "natpass 600" ] || fail "/etc/natpass/natpass.toml: $(stat -c '%U %a' /etc/natpass/natpass.toml)"
dpkg-query -W -f='${Conffiles}\n' natpass | grep -q /etc/natpass/natpass.toml || fail "natpass.toml is not a conffile"
man -w natpass >/dev/null || fail "no man page"
for f in /usr/share/bash-completion/completions/natpass /usr/share/zsh/vendor-completions/_natpass \
         /usr/share/fish/vendor_completions.d/natpass.fish /usr/share/man/man1/natpass-run.1.gz; do
    [ -s "$f" ] || fail "missing $f"
done
grep -q -- '--log-format' /usr/share/bash-completion/completions/natpass || fail "bash completion lacks --log-format"
apt-get purge -y natpass >/dev/null
[ ! -e /usr/bin/natpass ] || fail "purge left /usr/bin/natpass"
echo "package-test: 1 passed, 0 failed ($deb installed, checked, purged)"
