#!/bin/sh
# Stand-in for NVIDIA's nvidia-cdi-hook (nvidia-container-toolkit-base), built into test
# packages. Runs as an OCI createContainer hook named in a CDI spec, as the real one does:
# the container's state (JSON) on stdin names its bundle, whose config.json names the
# root filesystem. Implemented here, with what the real hook does:
#   create-symlinks --link=TARGET::LINK ...   LINK (inside the root) -> TARGET
#   update-ldcache --folder=DIR ...           DIRs into /etc/ld.so.conf.d, then the host's
#                                             ldconfig -r ROOT writes the root's ld cache
#   enable-cuda-compat --host-driver-version=V  nothing: the images we run carry no CUDA
#                                             forward-compatibility libraries
# Anything else fails loudly. Not NVIDIA's binary: docs/test-world.md.
set -u
case "${1:-}" in
--version|-v)
    echo "NVIDIA CDI Hook version @VERSION@"
    echo "stand-in for tests, not NVIDIA's binary"
    exit 0
    ;;
esac
fail() { echo "nvidia-cdi-hook (stand-in): $*" >&2; exit 1; }
command=${1:-}
[ -n "$command" ] || fail "no command (create-symlinks, update-ldcache, enable-cuda-compat)"
shift

container_root() {
    # The OCI state on stdin: {"ociVersion":…,"bundle":"/path",…}; compact JSON, one line.
    state=$(cat)
    bundle=$(printf '%s' "$state" | sed -n 's/.*"bundle" *: *"\([^"]*\)".*/\1/p')
    [ -n "$bundle" ] || fail "no bundle in the container state on stdin"
    [ -f "$bundle/config.json" ] || fail "no $bundle/config.json"
    root=$(sed -n 's/.*"root" *: *{ *"path" *: *"\([^"]*\)".*/\1/p' "$bundle/config.json")
    [ -n "$root" ] || fail "no root.path in $bundle/config.json"
    case $root in /*) ;; *) root=$bundle/$root ;; esac
    [ -d "$root" ] || fail "the container root $root is not a directory"
    printf '%s\n' "$root"
}

case $command in
create-symlinks)
    root=$(container_root) || exit 1
    for arg in "$@"; do
        case $arg in
        --link=*::*)
            spec=${arg#--link=}
            target=${spec%%::*}
            link=${spec#*::}
            mkdir -p "$root$(dirname "$link")" || fail "cannot create $(dirname "$link")"
            ln -sfn "$target" "$root$link" || fail "cannot link $link -> $target"
            ;;
        *) fail "create-symlinks: unknown argument $arg" ;;
        esac
    done
    ;;
update-ldcache)
    root=$(container_root) || exit 1
    conf=$root/etc/ld.so.conf.d/00-nvcr-stand-in.conf
    mkdir -p "$root/etc/ld.so.conf.d" || fail "cannot create /etc/ld.so.conf.d"
    : >"$conf"
    for arg in "$@"; do
        case $arg in
        --folder=*) printf '%s\n' "${arg#--folder=}" >>"$conf" ;;
        --ldconfig-path=*) ;;
        *) fail "update-ldcache: unknown argument $arg" ;;
        esac
    done
    ldconfig=/sbin/ldconfig
    [ -x "$ldconfig" ] || ldconfig=$(command -v ldconfig) || fail "no ldconfig on the host"
    # ldconfig -r chroots into the container's root and reads its /etc/ld.so.conf.
    "$ldconfig" -r "$root" 2>&1 >/dev/null | sed 's/^/nvidia-cdi-hook (stand-in): ldconfig: /' >&2
    [ -f "$root/etc/ld.so.cache" ] || fail "ldconfig wrote no /etc/ld.so.cache in $root"
    ;;
enable-cuda-compat)
    cat >/dev/null
    ;;
*)
    fail "unknown command $command"
    ;;
esac
exit 0
