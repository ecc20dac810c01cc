#!/bin/sh
# gpubundle-installer.pyz: this POSIX sh preamble, a signed runtime, then the installer
# zipapp (docs/bundle-format.md). One command on every target:
#     sudo sh gpubundle-installer.pyz install BUNDLE --trust FINGERPRINT
# With python3 3.8+ and gpgv on the host, the zipapp runs on them (`python3 THIS` works
# too). Otherwise the target's own python3.X and gpgv .debs carried below are checked
# FIRST against the key you trust (--trust; else the keys gpubundle installed here and
# /etc/gpubundle/trusted.d/*.gpg) with gpgv or sqv, then unpacked with dpkg-deb -x into
# a private temporary directory, removed at exit: nothing is installed or changed.
# Needs only what every minbase has: sh, coreutils, tar, dpkg-deb, gpgv or sqv.
@FIELDS@
self=$0
launcher() {
    GPUBUNDLE_LAUNCHER=sh
    export GPUBUNDLE_LAUNCHER
}
say() { printf 'gpubundle: %s\n' "$*" >&2; }
die() {  # CODE MESSAGE HINT
    say "error: $2"
    say "hint: $3"
    exit "$1"
}

if [ "${GPUBUNDLE_RUNTIME:-}" != carried ] && command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null &&
    command -v gpgv >/dev/null 2>&1; then
    launcher
    exec python3 "$self" "$@"
fi

if [ "$GB_TAR_SIZE" -eq 0 ]; then
    die 4 "this host has no python3 3.8 or newer (with gpgv), and this installer carries none" \
        "install python3 and gpgv from the distribution's media, or build the bundle for this release"
fi

# Trusted fingerprints from --trust FPR / --trust=FPR, as gpgv and sqv print them.
trusted=
prev=
for arg in "$@"; do
    case $prev in --trust) trusted="$trusted $arg" ;; esac
    case $arg in --trust=*) trusted="$trusted ${arg#--trust=}" ;; esac
    prev=$arg
done
trusted=$(printf '%s\n' $trusted | tr -d ': ' | sed 's/^0[xX]//' | tr 'abcdef' 'ABCDEF')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpubundle-runtime-XXXXXXXX") ||
    die 1 "cannot create a temporary directory in ${TMPDIR:-/tmp}" \
        "free some space there, or point TMPDIR at a writable directory with room"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

need_mib=$((GB_TAR_SIZE * 5 / 1048576 + 8))  # the tar, its .debs unpacked, and a margin
cut() {  # OFFSET SIZE FILE: bytes of this file into FILE
    tail -c "+$(($1 + 1))" "$self" | head -c "$2" >"$3" ||
        die 1 "cannot write the carried runtime into $tmp" \
            "free some space in ${TMPDIR:-/tmp} (it needs about $need_mib MiB), or point TMPDIR at a directory with room"
    [ "$(wc -c <"$3")" -eq "$2" ] ||
        die 3 "$self is truncated: its carried runtime is incomplete" \
            "copy gpubundle-installer.pyz again from the build machine"
}
cut "$GB_KEY_AT" "$GB_KEY_SIZE" "$tmp/signer.gpg"
cut "$GB_SIG_AT" "$GB_SIG_SIZE" "$tmp/runtime.tar.asc"
cut "$GB_TAR_AT" "$GB_TAR_SIZE" "$tmp/runtime.tar"

# The primary fingerprint of a good signature over runtime.tar by a key in KEYRING..., or
# nothing: gpgv's VALIDSIG (GOODSIG required: not expired, not revoked), or sqv's output.
signer_of() {
    if command -v gpgv >/dev/null 2>&1; then
        keyrings=
        for keyring in "$@"; do keyrings="$keyrings --keyring $keyring"; done
        mkdir -p "$tmp/gnupg"
        # shellcheck disable=SC2086 # the keyring paths hold no spaces (ours, or *.gpg globs)
        gpgv --homedir "$tmp/gnupg" --status-fd 1 $keyrings \
            "$tmp/runtime.tar.asc" "$tmp/runtime.tar" >"$tmp/status" 2>"$tmp/verify.log" ||
            return 0
        grep -q '^\[GNUPG:\] GOODSIG ' "$tmp/status" || return 0
        awk '$1 == "[GNUPG:]" && $2 == "VALIDSIG" { print $12 }' "$tmp/status"
    elif command -v sqv >/dev/null 2>&1; then
        keyrings=
        for keyring in "$@"; do keyrings="$keyrings --keyring $keyring"; done
        # shellcheck disable=SC2086
        sqv $keyrings --signature-file "$tmp/runtime.tar.asc" "$tmp/runtime.tar" \
            2>"$tmp/verify.log" | tr -d ' ' || return 0
    else
        die 4 "neither gpgv nor sqv is on this host: nothing can check the installer" \
            "install gpgv (or sqv) from the distribution's media; apt itself needs one"
    fi
}

if [ -n "$trusted" ]; then
    signer=$(signer_of "$tmp/signer.gpg")
    ok=
    for fpr in $signer; do
        for want in $trusted; do [ "$fpr" = "$want" ] && ok=$fpr; done
    done
    [ -n "$ok" ] || die 3 "the installer's carried runtime is not signed by the key you trust (--trust)" \
        "nothing on this host was changed; copy gpubundle-installer.pyz again from the build machine, and check the fingerprint"
else
    keyrings=
    for keyring in /usr/share/keyrings/gpubundle-*.gpg /etc/gpubundle/trusted.d/*.gpg; do
        [ -f "$keyring" ] && keyrings="$keyrings $keyring"
    done
    [ -n "$keyrings" ] || die 2 "no trusted key: this host has no python3 3.8+, and the installer it carries must be checked first" \
        "pass --trust FINGERPRINT (printed by gpubundle build)"
    # shellcheck disable=SC2086 # file names from the two globs above, without spaces
    [ -n "$(signer_of $keyrings)" ] || die 3 "the installer's carried runtime is not signed by a key this host trusts" \
        "nothing on this host was changed; pass --trust FINGERPRINT, or copy gpubundle-installer.pyz again"
fi

# Verified: unpack the .debs privately and run the zipapp with their python3.
mkdir "$tmp/debs" "$tmp/root" &&
    tar -xf "$tmp/runtime.tar" -C "$tmp/debs" --no-same-owner --no-same-permissions ||
    die 1 "cannot unpack the carried runtime into $tmp" \
        "free some space in ${TMPDIR:-/tmp} (it needs about $need_mib MiB), or point TMPDIR at a directory with room"
for deb in "$tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tmp/root" ||
        die 1 "dpkg-deb could not unpack ${deb##*/} into $tmp" \
            "free some space in ${TMPDIR:-/tmp} (it needs about $need_mib MiB), or point TMPDIR at a directory with room"
done
# The host's own copy of a library wins: a carried one only fills a gap (the host may be
# newer than the build's archive, and its other libraries are built against its own).
for lib in "$tmp"/root/lib/*-linux-gnu*/lib*.so* "$tmp"/root/usr/lib/*-linux-gnu*/lib*.so*; do
    dir=${lib%/*}
    dir=${dir##*/}
    name=${lib##*/}
    if [ -e "/lib/$dir/$name" ] || [ -e "/usr/lib/$dir/$name" ]; then rm -f "$lib"; fi
done
python="$tmp/root/usr/bin/python$GB_PYTHON"
[ -x "$python" ] || die 1 "the carried runtime holds no python$GB_PYTHON" \
    "rebuild the bundle with gpubundle build; this installer is damaged"
libs=
for dir in "$tmp"/root/lib/*-linux-gnu* "$tmp"/root/usr/lib/*-linux-gnu* "$tmp"/root/usr/lib; do
    [ -d "$dir" ] && libs="${libs:+$libs:}$dir"
done
launcher
# The carried libraries are for python itself: installer/carried.py takes LD_LIBRARY_PATH
# back out of the environment (ld.so has read it) so apt, dpkg and every other program
# the installer runs see the host's own libraries, and runs the carried gpgv with them.
GPUBUNDLE_RUNTIME_DIR=$tmp/root
GPUBUNDLE_RUNTIME_LIBS=$libs
GPUBUNDLE_HOST_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}
export GPUBUNDLE_RUNTIME_DIR GPUBUNDLE_RUNTIME_LIBS GPUBUNDLE_HOST_LD_LIBRARY_PATH
LD_LIBRARY_PATH=$libs "$python" -s -E "$self" "$@"
exit $?
