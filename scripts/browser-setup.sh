#!/usr/bin/env bash
# Installs what the web admin's browser test needs: Debian's chromium and playwright-core
# (from the npm registry, into e2e/node_modules; no browser download). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
  echo "browser-setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -d "$here/e2e/node_modules/playwright-core" ]; then
  (cd "$here/e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "browser-setup: chromium and playwright-core ready"
