#!/usr/bin/python3
"""Stand-in for NVIDIA's nvidia-container-runtime, built into test packages; not NVIDIA's binary.

Like the real runtime when a container asks for no GPU, it hands every command to
runc unchanged. A container that does ask for GPUs (NVIDIA_VISIBLE_DEVICES set to
devices) is refused at ``create``: a stand-in has no driver and never fakes a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

VERSION = "@VERSION@"
STANDIN = "stand-in for tests, not NVIDIA's binary"
NO_GPU = {"", "void", "none"}


def bundle_dir(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg in {"--bundle", "-b"} and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--bundle="):
            return arg.split("=", 1)[1]
    return "."


def requested_devices(args: list[str]) -> str:
    """NVIDIA_VISIBLE_DEVICES of the container being created, "" when unset."""
    try:
        with open(os.path.join(bundle_dir(args), "config.json"), encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError):
        return ""
    for entry in spec.get("process", {}).get("env", []):
        name, _, value = str(entry).partition("=")
        if name == "NVIDIA_VISIBLE_DEVICES":
            return value
    return ""


def report(args: list[str], message: str) -> None:
    """Say why on stderr and, like runc, in the --log file the containerd shim reads."""
    print(f"nvidia-container-runtime: {message}", file=sys.stderr)
    for i, arg in enumerate(args[:-1]):
        if arg == "--log":
            entry = {"level": "error", "msg": message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
            with open(args[i + 1], "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")


def main(args: list[str]) -> int:
    if args[:1] in (["--version"], ["-v"]):
        print(f"NVIDIA Container Runtime version {VERSION}\n{STANDIN}")
        return 0
    if "create" in args:
        devices = requested_devices(args)
        if devices.strip().lower() not in NO_GPU:
            report(
                args,
                f"container requests GPUs (NVIDIA_VISIBLE_DEVICES={devices}) but this is a "
                f"{STANDIN}: no NVIDIA driver is available. Set NVIDIA_VISIBLE_DEVICES=void "
                "to run without GPUs.",
            )
            return 1
    runc = shutil.which("runc") or next(
        (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.path.exists(p)), "runc"
    )
    os.execv(runc, [runc, *args])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
