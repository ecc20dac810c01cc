"""An NVIDIA CDI spec as gpubundle needs it: what it mounts, and for which driver.

Read without a YAML library (the installer runs on the stdlib only): JSON specs are
parsed, YAML specs as ``nvidia-ctk cdi generate`` writes them (block style, one key
per line) are read line by line. Pure: callers read the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from installer.compat import removeprefix

# Library file names carry the driver version: libcuda.so.580.159.04.
_LIB_VERSION = re.compile(r"/lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)$")
_HOOK_VERSION = re.compile(r"--host-driver-version=(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str


@dataclass(frozen=True)
class SpecFacts:
    kind: str
    mounts: tuple[Mount, ...]
    driver_versions: tuple[str, ...]  # from library names and hook arguments; sorted

    @property
    def container_paths(self) -> frozenset[str]:
        return frozenset(m.container_path for m in self.mounts)

    def nvidia_smi(self) -> Mount | None:
        """The mount that puts ``nvidia-smi`` into containers, if any."""
        return next((m for m in self.mounts if m.container_path.endswith("/nvidia-smi")), None)


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _yaml_mounts(text: str) -> tuple[str, list[Mount]]:
    """``kind`` and every list item holding hostPath/containerPath, in order."""
    kind = ""
    mounts: list[Mount] = []
    item: dict[str, str] = {}

    def close() -> None:
        if "hostPath" in item and "containerPath" in item:
            mounts.append(Mount(item["hostPath"], item["containerPath"]))
        item.clear()

    for raw in text.splitlines():
        stripped = raw.strip()
        starts_item = stripped.startswith("- ")
        key, sep, value = removeprefix(stripped, "- ").partition(":")
        if starts_item:
            close()
        if not sep:
            continue
        if key == "kind" and not raw.startswith((" ", "-")):
            kind = _scalar(value)
        elif key in ("hostPath", "containerPath"):
            item[key] = _scalar(value)
    close()
    return kind, mounts


def _json_mounts(node: Any, out: list[Mount]) -> None:
    if isinstance(node, dict):
        host, container = node.get("hostPath"), node.get("containerPath")
        if isinstance(host, str) and isinstance(container, str):
            out.append(Mount(host, container))
        for value in node.values():
            _json_mounts(value, out)
    elif isinstance(node, list):
        for item in node:
            _json_mounts(item, out)


def parse_spec(text: str) -> SpecFacts:
    """The kind, mounts and driver version(s) of a CDI spec (YAML or JSON)."""
    kind = ""
    mounts: list[Mount] = []
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            kind = str(data.get("kind", ""))
            _json_mounts(data, mounts)
    else:
        kind, mounts = _yaml_mounts(text)
    versions = {m.group(1) for mount in mounts if (m := _LIB_VERSION.search(mount.host_path))}
    versions |= set(_HOOK_VERSION.findall(text))
    return SpecFacts(kind, tuple(mounts), tuple(sorted(versions)))


def stale_reason(spec: SpecFacts, driver_version: str) -> str:
    """Why ``spec`` does not fit the running driver; "" when it does or cannot be told."""
    if not driver_version or not spec.driver_versions:
        return ""
    if driver_version in spec.driver_versions:
        return ""
    return (
        f"generated for driver {', '.join(spec.driver_versions)}, "
        f"the running driver is {driver_version}"
    )
