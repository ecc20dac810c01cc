#!/bin/sh
# Stand-in for NVIDIA's nvidia-cdi-hook (nvidia-container-toolkit-base), built into test
# packages. The real hook runs inside CDI container set-up on a GPU host.
case "${1:-}" in
--version|-v)
    echo "NVIDIA CDI Hook version @VERSION@"
    echo "stand-in for tests, not NVIDIA's binary"
    exit 0
    ;;
esac
echo "nvidia-cdi-hook: stand-in for tests, not NVIDIA's binary:" \
    "CDI hooks need NVIDIA's real nvidia-container-toolkit-base and driver" >&2
exit 1
