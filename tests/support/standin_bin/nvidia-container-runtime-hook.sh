#!/bin/sh
# Stand-in for NVIDIA's nvidia-container-runtime-hook, built into test packages.
# The real hook mounts the host's driver into a container; a stand-in has no driver.
case "${1:-}" in
--version|-version)
    echo "NVIDIA Container Runtime Hook version @VERSION@"
    echo "stand-in for tests, not NVIDIA's binary"
    exit 0
    ;;
esac
echo "nvidia-container-runtime-hook: stand-in for tests, not NVIDIA's binary:" \
    "GPU containers need NVIDIA's real nvidia-container-toolkit and driver" >&2
exit 1
