#!/usr/bin/python3
"""Stand-in for NVIDIA's nvidia-ctk, built into test packages; not NVIDIA's binary.

It does the parts gpubundle's tests need, the way the real tool does them:
``runtime configure --runtime=docker`` rewrites daemon.json (whole file, keys sorted,
4-space indent, no trailing newline, as Go's json.MarshalIndent writes it);
``--runtime=containerd`` and ``--runtime=crio`` rewrite the TOML file of ``--config``
whole, as NVIDIA's pkg/config/engine/containerd and crio do (comments are lost, other
keys kept; containerd's plugin path by config ``version`` 1/2/3, the ``runc`` runtime's
settings copied as the template, ``options.BinaryName``; CRI-O's
``crio.runtime.runtimes.nvidia`` with ``runtime_path``); and ``--version``. The TOML
runtimes need Python 3.11's tomllib. ``cdi generate`` fails: there is no NVIDIA driver behind a stand-in,
and it never pretends there is a GPU. ``config --config-file=PATH --in-place`` (what the
toolkit-base postinst runs) writes the default config.toml where PATH is missing, with
the host's ldconfig (``@/sbin/ldconfig.real`` where it exists, as on Ubuntu, else
``@/sbin/ldconfig``), and keeps an existing one as it is. Global flags before the
command: ``--quiet`` (errors only) and ``--debug``. It logs as the real one does through
logrus: ``INFO[0000] msg`` on a terminal, ``time="…" level=info msg="…"`` lines otherwise.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

VERSION = "@VERSION@"
STANDIN = "stand-in for tests, not NVIDIA's binary"
DOCKER_CONFIG = "/etc/docker/daemon.json"
TOML_CONFIGS = {
    "containerd": "/etc/containerd/config.toml",
    "crio": "/etc/crio/crio.conf.d/99-nvidia.toml",
}
RUNTIME_BINARY = "/usr/bin/nvidia-container-runtime"
# What `nvidia-ctk config default` writes (1.20), the host's ldconfig put in.
DEFAULT_CONFIG = """\
#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"

[nvidia-container-cli]
environment = []
ldconfig = "@LDCONFIG@"
load-kmods = true

[nvidia-container-runtime]
log-level = "info"
mode = "auto"
runtimes = ["docker-runc", "runc", "crun"]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
"""
CONTAINERD_CRI = {
    1: ("plugins", "cri"),
    2: ("plugins", "io.containerd.grpc.v1.cri"),
    3: ("plugins", "io.containerd.cri.v1.runtime"),
}


LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}
LOG_LEVEL = ["info"]  # set once from the global flags
CONFIG_TOML = "/etc/nvidia-container-runtime/config.toml"


def _quoted(value: str) -> str:
    """A logrus text-formatter value: bare when it is a plain word, else Go-quoted."""
    if value and re.fullmatch(r"[A-Za-z0-9_./@^+-]+", value):
        return value
    return json.dumps(value)


def log(level: str, message: str) -> None:
    """One log line on stderr, formatted as logrus formats it for a terminal or not."""
    if LEVELS[level] < LEVELS[LOG_LEVEL[0]]:
        return
    if sys.stderr.isatty():
        print(f"{level.upper()[:4]}[0000] {message}", file=sys.stderr)
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f'time="{stamp}" level={level} msg={_quoted(message)}', file=sys.stderr)


def fail(message: str) -> int:
    log("error", f"{message} ({STANDIN})")
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
            takes_value = name in {
                "runtime",
                "config",
                "config-file",
                "output",
                "nvidia-runtime-path",
                "r",
            }
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
    log("info", f"Loading config from {path}")
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
    log("info", f"Wrote updated config to {path}")
    log("info", "It is recommended that docker daemon be restarted.")
    return 0


def _table(root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        child = root.get(key)
        if not isinstance(child, dict):
            child = root[key] = {}
        root = child
    return root


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"cannot write {value!r} as TOML")


def dump_toml(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """Scalars first, then each sub-table under its dotted header (as go-toml does)."""
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)
    ]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in doc.items():
        if isinstance(value, dict):
            path = (*prefix, key)
            out += "\n[" + ".".join(_toml_key(p) for p in path) + "]\n" + dump_toml(value, path)
    return out


def configure_toml(runtime: str, flags: dict[str, str]) -> int:
    try:
        import tomllib
    except ImportError:
        return fail(f"configuring {runtime} needs Python 3.11's tomllib")
    path = flags.get("config", TOML_CONFIGS[runtime])
    config: dict[str, Any] = {}
    log("info", f"Loading config from {path}")
    if os.path.exists(path):
        try:
            with open(path, "rb") as handle:
                config = tomllib.load(handle)
        except (ValueError, OSError) as exc:
            return fail(f"unable to load config: failed to parse {path}: {exc}")
    name = flags.get("nvidia-runtime-name", "nvidia")
    binary = flags.get("nvidia-runtime-path", RUNTIME_BINARY)
    default = flags.get("set-as-default", "false") == "true"
    if runtime == "containerd":
        version = int(config.get("version", 2))
        config["version"] = version
        plugin = _table(config, CONTAINERD_CRI.get(version, CONTAINERD_CRI[2]))
        runtimes = _table(plugin, ("containerd", "runtimes"))
        template = runtimes.get("runc")
        entry = json.loads(json.dumps(template)) if isinstance(template, dict) else {}
        entry.setdefault("runtime_type", "io.containerd.runc.v2")
        entry.setdefault("options", {})["BinaryName"] = binary
        runtimes[name] = entry
        if default:
            plugin["containerd"]["default_runtime_name"] = name
        if flags.get("cdi.enabled", "false") == "true":
            plugin["enable_cdi"] = True
    else:
        crio_runtime = _table(config, ("crio", "runtime"))
        runtimes = _table(crio_runtime, ("runtimes",))
        template = runtimes.get(str(crio_runtime.get("default_runtime", "runc")))
        entry = json.loads(json.dumps(template)) if isinstance(template, dict) else {}
        entry.update(runtime_path=binary, runtime_type="oci")
        runtimes[name] = entry
        if default:
            crio_runtime["default_runtime"] = name
    output = dump_toml(config)
    if flags.get("dry-run", "false") == "true":
        print(output)
        return 0
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(output)
    log("info", f"Wrote updated config to {path}")
    log("info", f"It is recommended that {runtime} daemon be restarted.")
    return 0


def ldconfig_default() -> str:
    """The ``@``-prefixed ldconfig of this host, as nvidia-ctk picks its default."""
    return "@/sbin/ldconfig.real" if os.path.exists("/sbin/ldconfig.real") else "@/sbin/ldconfig"


def default_config() -> str:
    """config.toml with the defaults of NVIDIA's 1.20 ``nvidia-ctk config default``."""
    return DEFAULT_CONFIG.replace("@LDCONFIG@", ldconfig_default())


def config_command(flags: dict[str, str]) -> int:
    """``config [--config-file=PATH] [--in-place]``: the config, written back or printed.

    A present file is loaded and kept as it is (its settings win over the defaults);
    a missing one is created, with its directory, from the defaults.
    """
    path = flags.get("config-file", CONFIG_TOML)
    log("info", f"Loading config from {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = default_config()
    except OSError as exc:
        return fail(f"failed to load config: {exc}")
    if flags.get("in-place", "false") != "true":
        print(text, end="")
        return 0
    if os.path.exists(path):
        return 0  # nothing to change: written back as it was read
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o644)
    return 0


GLOBAL_FLAGS = {"--quiet": "error", "-q": "error", "--debug": "debug", "-d": "debug"}


def main(argv: list[str]) -> int:
    while argv and argv[0] in GLOBAL_FLAGS:
        LOG_LEVEL[0] = GLOBAL_FLAGS[argv.pop(0)]
    if not argv or argv[0] in {"--help", "-h", "help"}:
        print(
            f"nvidia-ctk {VERSION} ({STANDIN})\ncommands: runtime configure, cdi generate, config"
        )
        return 0
    if argv[0] in {"--version", "-v", "version"}:
        print(f"NVIDIA Container Toolkit CLI version {VERSION}\n{STANDIN}")
        return 0
    command = argv[:2]
    if argv[0] == "config":
        try:
            return config_command(parse_flags(argv[1:]))
        except ValueError as exc:
            return fail(str(exc))
    try:
        flags = parse_flags(argv[2:])
    except ValueError as exc:
        return fail(str(exc))
    if command == ["runtime", "configure"]:
        runtime = flags.get("runtime", flags.get("r", "docker"))
        if runtime in TOML_CONFIGS:
            return configure_toml(runtime, flags)
        if runtime != "docker":
            return fail(f"unrecognized runtime {runtime!r}")
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
