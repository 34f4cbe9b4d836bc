#!/usr/bin/env bash
# Installs what the service and packaging checks need (as root): promtool (Debian's
# prometheus package) for the metrics test, systemd-analyze and man for the package test,
# adduser for the package's postinst. cargo-deb itself comes with scripts/package.sh.
# The prometheus service is not started here (no systemd as PID 1 in CI); only promtool is used.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v adduser >/dev/null 2>&1 || need+=(adduser)
if [ "${#need[@]}" -gt 0 ]; then
    echo "ops-setup: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "ops-setup: $(promtool --version 2>&1 | head -1), $(systemd-analyze --version | head -1)"
