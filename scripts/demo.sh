#!/usr/bin/env bash
# The whole gpubundle flow in a few minutes, on a machine without NVIDIA access:
# build a signed bundle from a stand-in NVIDIA repository on loopback and the real
# Debian archive, verify it, install it offline into a throwaway Debian 12 root,
# show the status and uninstall it. Every command is printed before it runs.
#
# usage: scripts/demo.sh [--keep]      (make demo)
#   --keep   leave the work directory (bundle, root, keys) for a look afterwards
# GPUBUNDLE_DEMO_CACHE: the build's download cache (default .cache/build, shared with the
# tests); point it at an empty directory to see a cold build.
# Needs root (chroot, mount, unshare), gpubundle importable by $PYTHON (make install), and the
# Debian archive (deb.debian.org). The packages are stand-ins built for tests, not
# NVIDIA's; nothing outside the throwaway directory is changed.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
BUILD_CACHE=${GPUBUNDLE_DEMO_CACHE:-$REPO_ROOT/.cache/build}
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1
[[ $# -gt KEEP ]] && { echo "usage: $0 [--keep]" >&2; exit 2; }

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: needs root (it mounts /proc in a throwaway root and chroots into it)" >&2
    echo "hint: run it as root, e.g. sudo make demo" >&2
    exit 1
fi
# Every prerequisite first, all of them named at once: nothing is started before.
missing_pkgs=()
for tool in debootstrap:debootstrap gpg:gnupg gpgv:gpgv zstd:zstd unshare:util-linux \
    dpkg-deb:dpkg fakeroot:fakeroot; do
    command -v "${tool%%:*}" >/dev/null || missing_pkgs+=("${tool#*:}")
done
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing_pkgs+=(debian-archive-keyring)
problems=()
if [[ ${#missing_pkgs[@]} -gt 0 ]]; then
    problems+=("missing packages: ${missing_pkgs[*]} (apt-get install ${missing_pkgs[*]})")
fi
if ! "$PYTHON" -c "import bundler.cli" 2>/dev/null; then
    problems+=("$PYTHON cannot import gpubundle (make install, then sudo make demo: the Makefile runs the demo with .venv's python)")
elif ! "$PYTHON" -m tests.support.nvidia_fixtures 2>/dev/null \
    || ! "$PYTHON" -c "from tests.support import nvidia_fixtures as f; f.required_dir()" 2>/dev/null; then
    problems+=("NVIDIA's published metadata is missing (make fixtures says why)")
fi
if [[ ${#problems[@]} -gt 0 ]]; then
    for p in "${problems[@]}"; do echo "demo: $p" >&2; done
    echo "hint: fix the above, then run the demo again; nothing was started" >&2
    exit 1
fi
# gpubundle as the user would type it; without a console script on PATH (sudo resets PATH),
# the same command through the interpreter that has it.
if [[ $PYTHON != */* ]] && command -v gpubundle >/dev/null; then
    GPUBUNDLE=(gpubundle)
else
    GPUBUNDLE=("$PYTHON" -m bundler)  # a chosen interpreter, e.g. .venv/bin/python
fi

WORK=$(mktemp -d /tmp/gpubundle-demo.XXXXXX)
ROOT=$WORK/host-root
DISTRO=debian12
SERVER_PID=""
STEP=0
STEPS=8
declare -a SUMMARY=()

cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    [[ -d $WORK/signer ]] && gpgconf --homedir "$WORK/signer" --kill gpg-agent 2>/dev/null || true
    mountpoint -q "$ROOT/proc" 2>/dev/null && umount -l "$ROOT/proc" || true
    if [[ $KEEP -eq 1 ]]; then
        echo "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

STARTED=$EPOCHREALTIME
STEP_STARTED=$EPOCHREALTIME
STEP_TITLE=""

finish_step() {
    if [[ -n $STEP_TITLE ]]; then
        local took
        took=$(awk -v a="$STEP_STARTED" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
        SUMMARY+=("$(printf '%2d. %-48s %6s s' "$STEP" "$STEP_TITLE" "$took")")
    fi
}

banner() {
    finish_step
    STEP=$((STEP + 1))
    STEP_TITLE=$1
    STEP_STARTED=$EPOCHREALTIME
    printf '\n==================== [%d/%d] %s ====================\n' "$STEP" "$STEPS" "$1"
    [[ -n ${2:-} ]] && printf '%s\n' "$2"
    return 0
}

quote() {  # an argument as you would type it in a shell
    if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

show() {  # print a command as you would type it, then run it
    printf '\n$'
    for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
    printf '\n'
    "$@"
}

# The throwaway host: gpubundle runs there from the shipped zipapp, with no network.
in_root() {
    show unshare -n chroot "$ROOT" sh /tmp/gpubundle/gpubundle-installer.pyz "$@"
}

cd "$REPO_ROOT"

banner "a stand-in NVIDIA repository on 127.0.0.1" \
    "NVIDIA's real repository is out of reach here: serve one of the same shape (real package
names, versions and dependencies; stand-in payloads) and sign it with a throwaway key."
show "$PYTHON" scripts/standin-nvidia-repo "$WORK/nvidia"
mkdir "$WORK/www"
: >"$WORK/http.log"  # there before the server's redirect opens it: the loop below reads it
ln -s "$WORK/nvidia/stable" "$WORK/www/stable"  # serve the repository, not its key's home
"$PYTHON" -u -m http.server --bind 127.0.0.1 --directory "$WORK/www" 0 >"$WORK/http.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$WORK/http.log" | head -n1)
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n $PORT ]] || { echo "demo: the loopback HTTP server did not start:" >&2; cat "$WORK/http.log" >&2; exit 1; }
MIRROR=http://127.0.0.1:$PORT/stable/deb/amd64
echo "serving $MIRROR (python3 -m http.server, pid $SERVER_PID)"

banner "the air-gapped host: a throwaway Debian 12 root" \
    "debootstrap minbase plus python3 and gpgv (built once, then unpacked from .cache/roots)."
show "$PYTHON" -c "import sys, pathlib, tests.support.roots as r; print(r.debootstrap_root(
    '$DISTRO', 'minbase', ('python3', 'gpgv'), dest=pathlib.Path(sys.argv[1])))" "$ROOT"
cp "$ROOT/var/lib/dpkg/status" "$WORK/host-dpkg-status"
echo "copied the host's /var/lib/dpkg/status to $WORK/host-dpkg-status for the build"

banner "a throwaway signing key" "Bundles are signed with your own GnuPG key; this one lives in $WORK/signer."
export GNUPGHOME=$WORK/signer
mkdir -m 700 "$GNUPGHOME"
show gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "gpubundle demo <demo@gpubundle.invalid>" ed25519 sign 1d
FPR=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
echo "signing key: $FPR"

banner "gpubundle build (the connected machine)" \
    "Resolve nvidia-container-toolkit against the stand-in and the real Debian archive, for only
what the host lacks, download and check every .deb, sign, pack."
mkdir "$WORK/out"
show "${GPUBUNDLE[@]}" build --distro "$DISTRO" \
    --mirror "nvidia=$MIRROR" --key "nvidia=$WORK/nvidia/gpgkey" \
    --target-status "$WORK/host-dpkg-status" --no-images \
    --sign-key "$FPR" --gnupghome "$GNUPGHOME" \
    --cache-dir "$BUILD_CACHE" --output "$WORK/out/bundle.tar.zst"
BUNDLE_SIZE=$(stat -c %s "$WORK/out/bundle.tar.zst")

banner "gpubundle verify" "Check every byte against the key you trust, without changing anything."
show "${GPUBUNDLE[@]}" verify "$WORK/out/bundle.tar.zst" --trust "$FPR"
gpg --batch --quiet --export "$FPR" >"$WORK/signer.gpg"
show gpgv --keyring "$WORK/signer.gpg" \
    "$WORK/out/gpubundle-installer.pyz.asc" "$WORK/out/gpubundle-installer.pyz"

banner "gpubundle install, offline, in the throwaway root" \
    "Copy the two files over, then run the shipped installer as the README says: sh runs it
on the host's own python3 here (a host without one gets the python3 it carries).
unshare -n: no network at all. --runtime none: no Docker in this root, packages only."
mkdir -p "$ROOT/tmp/gpubundle"
show cp "$WORK/out/bundle.tar.zst" "$WORK/out/gpubundle-installer.pyz" "$ROOT/tmp/gpubundle/"
mount -t proc proc "$ROOT/proc"
in_root install /tmp/gpubundle/bundle.tar.zst --trust "$FPR" \
    --runtime none --skip-gpu-checks --yes
echo
# shellcheck disable=SC2016  # dpkg-query's format, not the shell's
show chroot "$ROOT" dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' \
    'nvidia-container-toolkit*' 'libnvidia-container*'

banner "gpubundle status" "What gpubundle installed on this host, from its install record."
in_root status

banner "gpubundle uninstall" "Undo exactly what install recorded, plan first."
in_root uninstall --yes
echo
# dpkg-query exits 1 when a pattern matches nothing: that is the point here.
# shellcheck disable=SC2016
show chroot "$ROOT" dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'nvidia-container-toolkit*' \
    'libnvidia-container*' || true
finish_step

printf '\n==================== summary ====================\n'
printf '%s\n' "${SUMMARY[@]}"
TOTAL=$(awk -v a="$STARTED" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
printf 'bundle: %s bytes, signed by %s\n' "$BUNDLE_SIZE" "$FPR"
printf 'demo complete in %s s: build, verify, install offline, status, uninstall\n' "$TOTAL"
