#!/bin/sh
""":"
# sh reads only this part: the file is Python run by the host's python3 (3.8+), except
# where the host has none, or an older one (a minbase, Ubuntu 18.04's 3.6). NVIDIA's
# nvidia-ctk is a Go binary that needs nothing: there, this sh does what the toolkit-base
# postinst asks of it (config --config-file=PATH --in-place) and --version, as below.
if [ -x /usr/bin/python3 ] &&
    /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    exec /usr/bin/python3 "$0" "$@"
fi
while :; do case ${1:-} in --quiet | -q | --debug | -d) shift ;; *) break ;; esac; done
case ${1:-} in
--version | -v | version)
    echo "NVIDIA Container Toolkit CLI version @VERSION@"
    echo "stand-in for tests, not NVIDIA's binary"
    exit 0
    ;;
config) shift ;;
*)
    echo "nvidia-ctk stand-in: '$*' needs python3 on this host" >&2
    exit 1
    ;;
esac
path=/etc/nvidia-container-runtime/config.toml in_place=
for arg in "$@"; do
    case $arg in
    --config-file=*) path=${arg#--config-file=} ;;
    --in-place | --in-place=true) in_place=yes ;;
    esac
done
[ -n "$in_place" ] && [ -e "$path" ] && exit 0
ld=@/sbin/ldconfig
[ -e /sbin/ldconfig.real ] && ld=@/sbin/ldconfig.real
config=$(sed -n '/^DEFAULT_CONFIG = ["]["]["]/,/^["]["]["]$/p' "$0" | sed '1d;$d' | sed "s|@LDCONFIG@|$ld|")
if [ -z "$in_place" ]; then printf '%s\n' "$config"; exit 0; fi
mkdir -p "$(dirname "$path")" && printf '%s\n' "$config" >"$path" && chmod 644 "$path"
exit
":"

Stand-in for NVIDIA's nvidia-ctk, built into test packages; not NVIDIA's binary.

It does the parts gpubundle's tests need, the way the real tool does them:
``runtime configure --runtime=docker`` rewrites daemon.json (whole file, keys sorted,
4-space indent, no trailing newline, as Go's json.MarshalIndent writes it);
``--runtime=containerd`` and ``--runtime=crio`` rewrite the TOML file of ``--config``
whole, as NVIDIA's pkg/config/engine/containerd and crio do (comments are lost, other
keys kept; containerd's plugin path by config ``version`` 1/2/3, the ``runc`` runtime's
settings copied as the template, ``options.BinaryName``; CRI-O's
``crio.runtime.runtimes.nvidia`` with ``runtime_path``); and ``--version``. The TOML
runtimes need Python 3.11's tomllib.

``cdi generate`` writes a CDI spec from what the NVIDIA driver really installed on
this host (see ``cdi_generate``), and fails where there is no driver: it never
pretends there is a GPU. ``config --config-file=PATH --in-place`` (what the
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
import stat
import subprocess
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
        # NVIDIA's parseVersion: a file with content and no `version` is version 1 (its
        # runtimes under plugins.cri); only an empty or absent file gets the default, 2.
        version = int(config["version"]) if "version" in config else (1 if config else 2)
        config["version"] = version  # ConfigV1/V2.AddRuntime set it
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


# --- cdi: the CDI spec from what the driver installed ----------------------------------
#
# Like NVIDIA's ``nvidia-ctk cdi generate`` (mode "nvml"), with these stand-in limits:
# GPUs are the /dev/nvidiaN device nodes (named N; the real tool also names them by
# UUID, which needs NVML); the driver version is read from the libnvidia-ml.so.VERSION
# file name (the real tool asks NVML); hooks point at --nvidia-cdi-hook-path as the
# real ones do, but only where that program exists (our stand-in packages do not ship
# nvidia-cdi-hook): without it the libraries' soname links are mounted instead of
# being created by the create-symlinks and update-ldcache hooks.

CDI_VERSION = "0.5.0"
CDI_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
CDI_DRIVER_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib")
# The driver's libraries; libnvidia-container* is the toolkit's own, never mounted.
CDI_LIBRARY = re.compile(r"^lib(?:cuda|nvidia-(?!container)[a-z0-9-]+)\.so(?:\.\d+)+$")
CDI_VERSIONED = re.compile(r"\.so\.(\d+\.\d+(?:\.\d+)?)$")
CDI_BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
CDI_FLAGS = {
    "output": "",
    "format": "",
    "driver-root": "/",
    "dev-root": "",
    "nvidia-cdi-hook-path": "/usr/bin/nvidia-cdi-hook",
    "ldconfig-path": "/sbin/ldconfig",
    "vendor": "nvidia.com",
    "class": "gpu",
}
CDI_MOUNT_OPTIONS = ["ro", "nosuid", "nodev", "rbind", "rprivate"]


def cdi_log(level: str, message: str) -> None:
    log({"WARN": "warning"}.get(level, level.lower()), message)


def cdi_flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` or ``--name value`` for the flags of ``cdi generate``."""
    flags = dict(CDI_FLAGS)
    i = 0
    while i < len(args):
        name, sep, value = args[i].lstrip("-").partition("=")
        if not args[i].startswith("-") or name not in CDI_FLAGS:
            raise ValueError(f"flag provided but not defined: {args[i]}")
        if not sep:
            if i + 1 >= len(args):
                raise ValueError(f"flag needs an argument: {args[i]}")
            value, i = args[i + 1], i + 1
        flags[name] = value
        i += 1
    flags["dev-root"] = flags["dev-root"] or flags["driver-root"]
    return flags


def in_root(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def out_of_root(root: str, path: str) -> str:
    if root in ("", "/"):
        return path
    return "/" + os.path.relpath(path, root)


def cdi_device_nodes(dev_root: str) -> tuple[list[str], list[str]]:
    """GPU nodes (/dev/nvidiaN, by N) and control nodes, as host paths; char devices only."""

    def is_char(path: str) -> bool:
        try:
            return stat.S_ISCHR(os.stat(path).st_mode)
        except OSError:
            return False

    dev = in_root(dev_root, "/dev")
    gpus = []
    for name in os.listdir(dev) if os.path.isdir(dev) else []:
        if re.fullmatch(r"nvidia\d+", name) and is_char(os.path.join(dev, name)):
            gpus.append(os.path.join(dev, name))
    gpus.sort(key=lambda p: int(p.rsplit("nvidia", 1)[1]))
    control = [os.path.join(dev, n) for n in CDI_CONTROL_NODES if is_char(os.path.join(dev, n))]
    caps = os.path.join(dev, "nvidia-caps")
    if os.path.isdir(caps):
        control += [os.path.join(caps, n) for n in sorted(os.listdir(caps))]
    return gpus, [c for c in control if is_char(c)]


def cdi_ldcache(flags: dict[str, str]) -> list[str]:
    """Driver libraries the ld cache lists (``ldconfig -p``), as host paths."""
    root = flags["driver-root"]
    argv = [flags["ldconfig-path"], "-p"]
    if root not in ("", "/"):
        cache = in_root(root, "/etc/ld.so.cache")
        if not os.path.exists(cache):
            return []
        argv += ["-C", cache]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    found = []
    for line in out.splitlines():
        name, _, path = line.strip().partition(" => ")
        if CDI_LIBRARY.match(name.split(" ", 1)[0]) and path:
            found.append(in_root(root, path.strip()))
    return found


def cdi_libraries(flags: dict[str, str]) -> tuple[list[str], list[str], str]:
    """(versioned library files, their soname links, driver version), as host paths."""
    root = flags["driver-root"]
    candidates = cdi_ldcache(flags)
    for directory in CDI_DRIVER_DIRS:
        where = in_root(root, directory)
        if os.path.isdir(where):
            candidates += [
                os.path.join(where, n) for n in sorted(os.listdir(where)) if CDI_LIBRARY.match(n)
            ]
    files: dict[str, None] = {}
    links: dict[str, None] = {}
    for path in candidates:
        if not os.path.exists(path):
            continue
        real = path
        if os.path.islink(path):
            target = os.readlink(path)
            absolute = in_root(root, target) if target.startswith("/") else None
            real = os.path.normpath(absolute or os.path.join(os.path.dirname(path), target))
        if CDI_VERSIONED.search(real):
            files[real] = None
        if path != real:
            links[path] = None
    version = ""
    for path in files:
        match = CDI_VERSIONED.search(path)
        if match and os.path.basename(path).startswith("libnvidia-ml.so."):
            version = match.group(1)
    return list(files), [link for link in links if link not in files], version


def cdi_find_binary(name: str, root: str) -> str:
    """The first ``name`` on PATH (each directory under the driver root), as the real tool."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        candidate = in_root(root, os.path.join(directory, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return ""


def cdi_hook(hook: str, *args: str) -> dict[str, Any]:
    return {
        "args": ["nvidia-cdi-hook", *args],
        "env": ["NVIDIA_CTK_DEBUG=false"],
        "hookName": "createContainer",
        "path": hook,
    }


def cdi_spec(flags: dict[str, str]) -> dict[str, Any]:
    """The spec as data; raises ValueError where the driver is not there."""
    root, dev_root = flags["driver-root"], flags["dev-root"]
    files, links, version = cdi_libraries(flags)
    if not version:
        raise ValueError(
            "failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND "
            "(no libnvidia-ml.so.VERSION in the ld cache or the driver's directories)"
        )
    cdi_log("INFO", f"Using driver version {version}")
    gpus, control = cdi_device_nodes(dev_root)
    if not gpus:
        raise ValueError("failed to create device CDI specs: no /dev/nvidiaN device nodes")

    def node(path: str) -> dict[str, str]:
        inside = out_of_root(dev_root, path)
        cdi_log("INFO", f"Selecting {path} as {inside}")
        return {"path": inside} if inside == path else {"hostPath": path, "path": inside}

    def mount(path: str) -> dict[str, Any]:
        return {
            "containerPath": out_of_root(root, path),
            "hostPath": path,
            "options": list(CDI_MOUNT_OPTIONS),
        }

    binaries = []
    for name in CDI_BINARIES:
        found = cdi_find_binary(name, root)
        if found:
            cdi_log("INFO", f"Selecting {found} as {out_of_root(root, found)}")
            binaries.append(found)
        else:
            cdi_log("WARN", f"Could not locate {name}: pattern {name} not found")
    hook = flags["nvidia-cdi-hook-path"]
    edits: dict[str, Any] = {
        "deviceNodes": [node(p) for p in control],
        "env": ["NVIDIA_VISIBLE_DEVICES=void"],
        "mounts": [mount(p) for p in (*files, *binaries)],
    }
    folders = sorted({os.path.dirname(out_of_root(root, p)) for p in files})
    if os.path.exists(in_root(root, hook)):
        cuda = [out_of_root(root, p) for p in files if "/libcuda.so." in p]
        hooks = [cdi_hook(hook, "create-symlinks", *(f"--link=libcuda.so.1::{os.path.dirname(c)}/libcuda.so" for c in cuda))] if cuda else []  # fmt: skip
        hooks.append(cdi_hook(hook, "enable-cuda-compat", f"--host-driver-version={version}"))
        hooks.append(cdi_hook(hook, "update-ldcache", *(f"--folder={f}" for f in folders)))
        edits["hooks"] = hooks
    else:
        cdi_log("WARN", f"{hook} not found: mounting the libraries' soname links instead of hooks")
        edits["mounts"] += [mount(p) for p in links]
    devices = [
        {"containerEdits": {"deviceNodes": [node(p)]}, "name": p.rsplit("nvidia", 1)[1]}
        for p in gpus
    ]
    devices.append({"containerEdits": {"deviceNodes": [node(p) for p in gpus]}, "name": "all"})
    return {
        "cdiVersion": CDI_VERSION,
        "containerEdits": edits,
        "devices": devices,
        "kind": f"{flags['vendor']}/{flags['class']}",
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML as sigs.k8s.io/yaml writes it: keys sorted, lists at the key's indent."""
    pad = " " * indent
    if isinstance(value, dict):
        out = ""
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                nested = indent if isinstance(item, list) else indent + 2
                out += f"{pad}{key}:\n" + to_yaml(item, nested)
            else:
                out += f"{pad}{key}: {yaml_scalar(item)}\n"
        return out
    if isinstance(value, list):
        out = ""
        for item in value:
            body = to_yaml(item, indent + 2) if isinstance(item, (dict, list)) else ""
            if body:
                out += f"{pad}- " + body[indent + 2 :]
            else:
                out += f"{pad}- {yaml_scalar(item)}\n"
        return out
    return f"{pad}{yaml_scalar(value)}\n"


def yaml_scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./=:,@+-][A-Za-z0-9_./=:,@+ -]*", text) and not re.fullmatch(
        r"[0-9.]+|true|false|null|yes|no|on|off", text
    ) and ": " not in text:  # fmt: skip
        return text
    return json.dumps(text)


def cdi_generate(flags: dict[str, str]) -> int:
    try:
        spec = cdi_spec(flags)
    except ValueError as exc:
        return fail(f"failed to generate CDI spec: {exc}")
    output = flags["output"]
    fmt = flags["format"] or ("json" if output.endswith(".json") else "yaml")
    text = json.dumps(spec, indent=2) + "\n" if fmt == "json" else "---\n" + to_yaml(spec)
    if not output:
        sys.stdout.write(text)
        return 0
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    with open(output + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(output + ".tmp", 0o644)
    os.replace(output + ".tmp", output)
    cdi_log("INFO", f"Generated CDI spec with version {CDI_VERSION}")
    return 0


def cdi_main(args: list[str]) -> int:
    """``cdi generate [flags]``; other cdi subcommands are not in this stand-in."""
    if args[:1] != ["generate"]:
        return fail(f"'cdi {' '.join(args[:1])}' is not implemented by this stand-in")
    try:
        flags = cdi_flags(args[1:])
    except ValueError as exc:
        return fail(str(exc))
    return cdi_generate(flags)


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
    if command[:1] == ["cdi"]:
        return cdi_main(argv[1:])
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
    return fail(f"'{' '.join(command)}' is not implemented by this stand-in")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
