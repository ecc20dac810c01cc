#!/bin/sh
# Stand-in for NVIDIA's nvidia-container-cli (libnvidia-container-tools), built into
# test packages. The real tool talks to the NVIDIA driver; a stand-in has none.
case "${1:-}" in
--version|-V)
    echo "cli-version: @VERSION@"
    echo "stand-in for tests, not NVIDIA's binary"
    exit 0
    ;;
esac
echo "nvidia-container-cli: stand-in for tests, not NVIDIA's binary:" \
    "needs NVIDIA's real libnvidia-container-tools and an NVIDIA driver" >&2
exit 1
