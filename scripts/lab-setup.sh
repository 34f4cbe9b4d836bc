#!/usr/bin/env bash
# Installs the Debian packages `natpass-lab` runs (VPN servers and clients, test tools).
# Idempotent; run as root (or with sudo available). Sourced by lab.sh and test.sh.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

lab_pkgs=(iproute2 nftables conntrack ethtool iputils-ping curl traceroute iperf3 tcpdump python3
  python3-cryptography strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins libstrongswan-extra-plugins xl2tpd pptpd pptp-linux ppp radvd openssl)
need_apt=()
for pkg in "${lab_pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "lab-setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  # pptpd and xl2tpd ship init scripts; nothing here starts them (no init system runs).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# pptp (pptp-linux) keeps its call-manager sockets here; the lab bind-mounts a private
# directory over it per client namespace.
$SUDO mkdir -p /var/run/pptp
echo "lab-setup: VPN peers and tools installed"
