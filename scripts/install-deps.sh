#!/usr/bin/env bash
# Installs, with apt-get, every Debian package vSnoop needs to build, test and run its lab.
# Idempotent and quiet when everything is present: it only calls apt-get for what is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang clang-tidy clang-format libclang-rt-14-dev
  # libraries
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev libpcap-dev libcli11-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev
  # test and lab tools: real TCP stacks in namespaces, dissectors, packet crafting, guests
  iproute2 iputils-ping procps ethtool iperf3 tcpdump tshark python3 python3-scapy socat
  qemu-system-x86 busybox-static cpio gzip gnuplot-nox python3-matplotlib util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the default answer (no) is what we want.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
