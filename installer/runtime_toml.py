"""Register the NVIDIA runtime in containerd's or CRI-O's TOML configuration, guarded.

NVIDIA's way (``nvidia-ctk runtime configure --runtime=containerd|crio --config=PATH``,
pkg/config/engine/containerd and crio): the file is parsed and written back whole, so
comments are lost but every key stays. containerd gets
``plugins.<cri plugin>.containerd.runtimes.nvidia`` (the plugin is ``cri`` for config
version 1, ``"io.containerd.grpc.v1.cri"`` for 2, ``"io.containerd.cri.v1.runtime"``
for 3), a copy of the ``runc`` runtime with ``options.BinaryName`` =
/usr/bin/nvidia-container-runtime. CRI-O gets ``crio.runtime.runtimes.nvidia`` with
``runtime_path``, in the drop-in /etc/crio/crio.conf.d/99-nvidia.toml (each file is
``HostPaths.cri_config(runtime)``).

As with daemon.json: back up (or note the absence), run nvidia-ctk, check, and put the
original bytes back on any failure. The check, without a TOML library on the target's
Python 3.8 to 3.10: the text must hold the nvidia runtime's table header and binary (a line
match), and where ``tomllib`` exists (3.11+) every key of the original must still be
there with its value. For containerd the engine itself then reads the file
(``containerd --config PATH config dump``), which is the check that matters: what the
daemon will load. The dump is read as the doctor reads it (``criconfig``, which needs no
tomllib): containerd 1.x dumps config version 2, 2.x version 3 (a version 2 file
migrated, the runtimes under ``"io.containerd.cri.v1.runtime"``); the nvidia runtime must
be in the CRI table of the dump's version, and that plugin must not be in
``disabled_plugins`` (2.x dumps a disabled plugin's table of a version 3 file as written,
so the table alone does not say it is loaded). CRI-O's drop-in has no such offline check (``crio config`` reads the
whole configuration directory); a CRI-O that refuses it fails the restart, which rolls
the file back.
"""

from __future__ import annotations

import importlib
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from installer.doctor import criconfig
from installer.errors import GpubundleError
from installer.runner import run, tail
from installer.runtime_config import RuntimeChange, configure_file

FILE_KINDS = {"containerd": "containerd-toml", "crio": "crio-toml"}
_NAME = r'(?:nvidia|"nvidia"|\'nvidia\')'
_HEADERS = {
    "containerd": re.compile(
        r"^[ \t]*\[[ \t]*plugins\.(?:cri|[\"']io\.containerd\.(?:grpc\.v1\.cri|cri\.v1\.runtime)"
        rf"[\"'])\.containerd\.runtimes\.{_NAME}[ \t]*\]",
        re.M,
    ),
    "crio": re.compile(rf"^[ \t]*\[[ \t]*crio\.runtime\.runtimes\.{_NAME}[ \t]*\]", re.M),
}
_BINARY = re.compile(
    r"^[ \t]*(?:BinaryName|runtime_path)[ \t]*=[ \t]*[\"'][^\"'\n]*nvidia-container-runtime[\"']",
    re.M,
)


# --- pure ---------------------------------------------------------------------------


def configure_argv(nvidia_ctk: str, runtime: str, config: Path) -> list[str]:
    return [nvidia_ctk, "runtime", "configure", f"--runtime={runtime}", f"--config={config}"]


def is_configured_text(runtime: str, text: str) -> bool:
    """The nvidia runtime's table and its binary are in the file (no TOML parser needed)."""
    return bool(_HEADERS[runtime].search(text)) and bool(_BINARY.search(text))


def leaves(doc: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every non-table value of a parsed TOML document, by its key path."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in doc.items():
        path = (*prefix, key)
        if isinstance(value, Mapping):
            out.update(leaves(value, path))
        else:
            out[path] = value
    return out


def lost_keys(original: Mapping[str, Any], written: Mapping[str, Any]) -> list[str]:
    """Keys of ``original`` that ``written`` lacks or changed, outside the nvidia runtime."""
    after = leaves(written)
    return [
        ".".join(path)
        for path, value in leaves(original).items()
        if "nvidia" not in path and after.get(path, _MISSING) != value
    ]


_MISSING = object()


def check_written(runtime: str, before: str, after: str) -> list[str]:
    """What is wrong with the file nvidia-ctk wrote; empty when it is right."""
    if not is_configured_text(runtime, after):
        return [f"no [..runtimes.nvidia] table with nvidia-container-runtime in it ({runtime})"]
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python 3.8 to 3.10: the line match above and the engine's own check
        return []
    try:
        written = tomllib.loads(after)
    except ValueError as exc:
        return [f"not valid TOML: {exc}"]
    try:
        original = tomllib.loads(before)
    except ValueError:
        return []  # the original did not parse either; nvidia-ctk accepted it somehow
    return [f"{key} was dropped or changed" for key in lost_keys(original, written)]


def engine_check_argv(runtime: str, config: Path) -> list[str] | None:
    """The engine reading the file as it will when restarted; None: no offline check."""
    return (
        ["containerd", "--config", str(config), "config", "dump"]
        if runtime == "containerd"
        else None
    )


def loaded_problems(dump: str) -> list[str]:
    """What keeps containerd from loading the nvidia runtime, from its ``config dump``
    output; empty when it loads it."""
    try:
        loaded = criconfig.read_config("containerd", [dump])
    except ValueError:  # not our reader's TOML: the line match, as before
        return [] if is_configured_text("containerd", dump) else [_NOT_LOADED]
    if loaded.cri_disabled:
        return [
            f'`containerd config dump` has "{loaded.cri_disabled}" in disabled_plugins: '
            "containerd loads no CRI runtime from this file (remove it from disabled_plugins)"
        ]
    if not loaded.nvidia or not loaded.binary.endswith("nvidia-container-runtime"):
        return [f"{_NOT_LOADED} (config version {loaded.version}: [{loaded.table}])"]
    return []


_NOT_LOADED = (
    "`containerd config dump` shows no nvidia runtime: containerd does not load it from this "
    "file (a config version this containerd does not read? containerd 2.x reads 2 and 3, "
    "not 1)"
)


# --- the file -----------------------------------------------------------------------


def _engine_problems(runtime: str, config: Path) -> list[str]:
    argv = engine_check_argv(runtime, config)
    if argv is None or shutil.which(argv[0]) is None:
        return []
    proc = run(argv, check=False, timeout=60)
    if proc.returncode != 0:
        return [f"{argv[0]} refuses it:", *tail(proc.stderr.decode(errors="replace"))]
    return loaded_problems(proc.stdout.decode(errors="replace"))


def configure_toml_runtime(runtime: str, config: Path, backup_dir: Path) -> RuntimeChange:
    """Back up ``config``, run nvidia-ctk on it, check the result; restored on any failure."""

    def result(before: bytes | None) -> bytes:
        before_text = before.decode(errors="replace") if before is not None else ""
        data = config.read_bytes()
        problems = check_written(runtime, before_text, data.decode(errors="replace"))
        problems = problems or _engine_problems(runtime, config)
        if problems:
            raise GpubundleError(
                f"nvidia-ctk did not configure the nvidia runtime in {config} correctly",
                hint="check that nvidia-ctk comes from the bundle's nvidia-container-toolkit; "
                "the original file was put back",
                details=problems,
            )
        return data

    return configure_file(
        config,
        backup_dir,
        FILE_KINDS[runtime],
        configured=lambda before: is_configured_text(runtime, before.decode(errors="replace")),
        argv=lambda ctk: configure_argv(ctk, runtime, config),
        result=result,
        hint=f"nvidia-ctk could not update {config}; it was restored",
    )
