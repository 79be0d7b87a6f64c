#!/usr/bin/env bash
# Installs the system libraries gslora links against and the Fashion-MNIST data set used by the demo.
# Debian/Ubuntu; run as root (or with sudo). Safe to run again.
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev pkg-config libturbojpeg0-dev libpng-dev libdnnl-dev libjpeg-turbo-progs librsvg2-bin dataset-fashion-mnist openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
