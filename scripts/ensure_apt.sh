#!/usr/bin/env bash
# Installs the Debian packages that tests use for real, only those missing. Add packages to PACKAGES.
set -euo pipefail
mapfile -t PACKAGES < <(grep -vE "^\s*(#|$)" "$(dirname "$0")/apt-packages.txt")
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
