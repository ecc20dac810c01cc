"""What a containerd or CRI-O configuration says about the nvidia runtime. Pure.

containerd reads its runtimes from the CRI plugin's table, whose name depends on the
file's ``version``: ``plugins.cri`` (version 1, also a file with content and no
``version``), ``plugins."io.containerd.grpc.v1.cri"`` (2) and
``plugins."io.containerd.cri.v1.runtime"`` (3); each has ``containerd.runtimes.NAME``
with ``options.BinaryName``, ``containerd.default_runtime_name`` and ``enable_cdi``. A
runtime under another version's name is ignored by containerd. CRI-O reads
``crio.runtime.runtimes.NAME`` with ``runtime_path`` and ``crio.runtime.default_runtime``
from /etc/crio/crio.conf and then each drop-in of /etc/crio/crio.conf.d in name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from installer.doctor import tomlread

NVIDIA = "nvidia"
CONTAINERD_CRI = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
# The runtimes each engine has without a word of configuration.
BUILTIN = {"containerd": frozenset({"runc"}), "crio": frozenset({"runc", "crun"})}


@dataclass(frozen=True)
class CriConfig:
    """The nvidia runtime's part of one engine's configuration."""

    engine: str  # containerd | crio
    version: int  # containerd's config version; 0 for CRI-O
    table: str  # where the engine reads runtimes, for people
    runtimes: tuple[str, ...]  # the runtimes defined there
    nvidia: bool  # the nvidia runtime is defined there
    binary: str  # its BinaryName (containerd) or runtime_path (CRI-O); "" when unset
    default_runtime: str  # default_runtime_name / default_runtime; "" when unset
    enable_cdi: bool | None  # containerd's enable_cdi; None when unset (or CRI-O)
    binary_key: str  # the key that names the runtime's binary, in the runtime's table
    default_key: str  # the key that names the default runtime, in full
    cdi_key: str  # the key that switches CDI on, in full; "" where CDI is always on
    misplaced: tuple[str, ...] = ()  # nvidia runtimes where this version does not look
    misplaced_for: int = 0  # the config version the first of them is written for
    version_set: bool = False  # the file says its version (else it is inferred)
    cri_disabled: str = ""  # the disabled_plugins entry that switches the CRI plugin off


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _table(doc: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node = _get(doc, *path)
    return node if isinstance(node, Mapping) else {}


def _header(path: Sequence[str]) -> str:
    return ".".join(p if p.replace("_", "").isalnum() else f'"{p}"' for p in path)


def containerd_version(doc: Mapping[str, Any]) -> int:
    """The file's config version as containerd and nvidia-ctk read it (none: 1, or 2 if empty)."""
    version = doc.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return 1 if doc else 2


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base`` table by table, as CRI-O reads its drop-ins."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        out[key] = merge(old, value) if both else value  # type: ignore[arg-type]
    return out


def containerd_config(doc: Mapping[str, Any]) -> CriConfig:
    version = containerd_version(doc)
    plugin = CONTAINERD_CRI.get(version, CONTAINERD_CRI[2])
    runtimes = _table(doc, "plugins", plugin, "containerd", "runtimes")
    nvidia = _table(runtimes, NVIDIA)
    elsewhere = [
        (number, _header(("plugins", other, "containerd", "runtimes", NVIDIA)))
        for number, other in CONTAINERD_CRI.items()
        if other != plugin and NVIDIA in _table(doc, "plugins", other, "containerd", "runtimes")
    ]
    disabled = doc.get("disabled_plugins")
    listed = disabled if isinstance(disabled, list) else []
    off = {"cri", CONTAINERD_CRI[2], plugin}
    cdi = _get(doc, "plugins", plugin, "enable_cdi")
    return CriConfig(
        engine="containerd",
        version=version,
        table=_header(("plugins", plugin, "containerd", "runtimes")),
        runtimes=tuple(runtimes),
        nvidia=NVIDIA in runtimes,
        binary=str(_table(nvidia, "options").get("BinaryName") or ""),
        default_runtime=str(
            _get(doc, "plugins", plugin, "containerd", "default_runtime_name") or ""
        ),
        enable_cdi=cdi if isinstance(cdi, bool) else None,
        binary_key="options.BinaryName",
        default_key=_header(("plugins", plugin, "containerd", "default_runtime_name")),
        cdi_key=_header(("plugins", plugin, "enable_cdi")),
        misplaced=tuple(header for _, header in elsewhere),
        misplaced_for=elsewhere[0][0] if elsewhere else 0,
        version_set="version" in doc,
        cri_disabled=next((str(p) for p in listed if str(p) in off), ""),
    )


def crio_config(doc: Mapping[str, Any]) -> CriConfig:
    runtime = _table(doc, "crio", "runtime")
    runtimes = _table(runtime, "runtimes")
    return CriConfig(
        engine="crio",
        version=0,
        table="crio.runtime.runtimes",
        runtimes=tuple(runtimes),
        nvidia=NVIDIA in runtimes,
        binary=str(_table(runtimes, NVIDIA).get("runtime_path") or ""),
        default_runtime=str(runtime.get("default_runtime") or ""),
        enable_cdi=None,
        binary_key="runtime_path",
        default_key="crio.runtime.default_runtime",
        cdi_key="",
    )


def read_config(engine: str, texts: Sequence[str]) -> CriConfig:
    """The configuration of ``engine`` from its files' texts, in the order it reads them
    (containerd: its one file; CRI-O: crio.conf, then its drop-ins). ValueError: bad TOML."""
    doc: dict[str, Any] = {}
    for text in texts:
        doc = merge(doc, tomlread.loads(text))
    return READERS[engine](doc)


READERS = {"containerd": containerd_config, "crio": crio_config}


def defined(config: CriConfig, name: str) -> bool:
    """``name`` is a runtime the engine knows: defined in the file, or built in."""
    return name in config.runtimes or name in BUILTIN.get(config.engine, frozenset())
