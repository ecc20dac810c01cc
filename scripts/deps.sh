#!/usr/bin/env bash
# The Debian/Ubuntu packages the tests and `make demo` need, installed with apt (root).
# Usage: sudo bash scripts/deps.sh [--check]
#   --check   only say which are missing (exit 1 if any), install nothing
# Works on Debian 12 and Ubuntu 24.04 (several come from Ubuntu's universe, which a
# standard install enables); .ci/run calls it on a fresh machine, and
# tests/integration/test_fresh_clone_ubuntu.py in a fresh Ubuntu 24.04 root.
# gcc and libc6-dev: the tests compile the stand-in libnvidia-container and a fake libcuda.
set -euo pipefail

PACKAGES=(
    docker.io docker-registry debootstrap iproute2 xz-utils zstd gnupg gpgv dpkg-dev
    fakeroot ca-certificates debian-archive-keyring git make python3-venv openssh-client
    gcc libc6-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done

if [[ ${1:-} == --check ]]; then
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "missing packages: ${missing[*]}" >&2
        echo "hint: sudo bash scripts/deps.sh (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    exit 0
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: every package is installed" >&2
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: installing ${missing[*]} needs root" >&2
    echo "hint: sudo bash scripts/deps.sh" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
unknown=()
for pkg in "${missing[@]}"; do
    apt-cache show "$pkg" >/dev/null 2>&1 || unknown+=("$pkg")
done
if [[ ${#unknown[@]} -gt 0 ]]; then
    echo "deps: apt knows no package ${unknown[*]}" >&2
    if grep -qs '^ID=ubuntu' /etc/os-release; then
        echo "hint: they are in Ubuntu's universe: sudo add-apt-repository universe, then run this again" >&2
    else
        echo "hint: check /etc/apt/sources.list(.d) names the release's main archive, then run this again" >&2
    fi
    exit 1
fi
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}" >&2
