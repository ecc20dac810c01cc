#!/usr/bin/python3
"""Stand-in for NVIDIA's nvidia-ctk, built into test packages; not NVIDIA's binary.

It does the parts gpubundle's tests need, the way the real tool does them:
``runtime configure --runtime=docker`` rewrites daemon.json (whole file, keys sorted,
4-space indent, no trailing newline, as Go's json.MarshalIndent writes it), and
``--version``. ``cdi generate`` fails: there is no NVIDIA driver behind a stand-in,
and it never pretends there is a GPU.
"""

from __future__ import annotations

import json
import os
import sys

VERSION = "@VERSION@"
STANDIN = "stand-in for tests, not NVIDIA's binary"
DOCKER_CONFIG = "/etc/docker/daemon.json"


def fail(message: str) -> int:
    print(f"ERRO[0000] {message} ({STANDIN})", file=sys.stderr)
    return 1


def parse_flags(args: list[str]) -> dict[str, str]:
    """``--name=value``, ``--name value`` and bare ``--flag`` (value "true")."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            raise ValueError(f"unexpected argument {arg!r}")
        name, sep, value = arg.lstrip("-").partition("=")
        if not sep:
            takes_value = name in {"runtime", "config", "output", "nvidia-runtime-path", "r"}
            if takes_value and i + 1 < len(args):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        flags[name] = value
        i += 1
    return flags


def configure_docker(flags: dict[str, str]) -> int:
    path = flags.get("config", DOCKER_CONFIG)
    config: dict[str, object] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if text.strip():
            try:
                config = json.loads(text)
            except ValueError as exc:
                return fail(f"unable to load config: failed to parse {path}: {exc}")
    runtimes = config.get("runtimes")
    if not isinstance(runtimes, dict):
        runtimes = {}
    name = flags.get("nvidia-runtime-name", "nvidia")
    runtimes[name] = {
        "args": [],
        "path": flags.get("nvidia-runtime-path", "nvidia-container-runtime"),
    }
    config["runtimes"] = runtimes
    if flags.get("set-as-default", "false") == "true":
        config["default-runtime"] = name
    if flags.get("cdi.enabled", "false") == "true":
        features = config.get("features")
        config["features"] = {**(features if isinstance(features, dict) else {}), "cdi": True}
    output = json.dumps(config, indent=4, sort_keys=True)
    if flags.get("dry-run", "false") == "true":
        print(output)
        return 0
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(output)
    print(f"INFO[0000] Wrote updated config to {path}", file=sys.stderr)
    print("INFO[0000] It is recommended that docker daemon be restarted.", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"--help", "-h", "help"}:
        print(f"nvidia-ctk {VERSION} ({STANDIN})\ncommands: runtime configure, cdi generate")
        return 0
    if argv[0] in {"--version", "-v", "version"}:
        print(f"NVIDIA Container Toolkit CLI version {VERSION}\n{STANDIN}")
        return 0
    command = argv[:2]
    try:
        flags = parse_flags(argv[2:])
    except ValueError as exc:
        return fail(str(exc))
    if command == ["runtime", "configure"]:
        runtime = flags.get("runtime", flags.get("r", "docker"))
        if runtime != "docker":
            return fail(f"runtime {runtime!r}: this stand-in only configures docker")
        return configure_docker(flags)
    if command == ["cdi", "generate"]:
        return fail(
            "failed to generate CDI spec: no NVIDIA driver libraries are available; "
            "this stand-in cannot discover GPUs (install NVIDIA's nvidia-container-toolkit "
            "on a GPU host)"
        )
    return fail(f"'{' '.join(command)}' is not implemented by this stand-in")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
