"""The host state that ``gpubundle install`` changes and ``uninstall`` must restore, as data.

A :class:`HostSnapshot` holds dpkg's view of every package (version and status
words), the apt sources and keyrings (name -> sha256), daemon.json's bytes and
the runtimes the running Docker lists. Two snapshots compare with ``==``;
:func:`differences` says field by field what changed, for assertion messages.
Readers take their paths as arguments, so they can be pointed at fixtures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DPKG_STATUS = Path("/var/lib/dpkg/status")
SOURCES_DIRS = (Path("/etc/apt/sources.list.d"),)
SOURCES_FILES = (Path("/etc/apt/sources.list"),)
KEYRING_DIRS = (Path("/usr/share/keyrings"), Path("/etc/apt/keyrings"))
DAEMON_JSON = Path("/etc/docker/daemon.json")
INSTALLED = "install ok installed"


@dataclass(frozen=True)
class HostSnapshot:
    packages: Mapping[str, tuple[str, str]]  # "name:arch" -> (version, dpkg Status field)
    sources: Mapping[str, str]  # path -> sha256
    keyrings: Mapping[str, str]  # path -> sha256
    daemon_json: bytes | None  # None: the file does not exist
    runtimes: tuple[str, ...] | None  # from `docker info`; None: Docker does not answer

    def installed(self) -> dict[str, str]:
        """{"name:arch": version} of the packages dpkg has fully installed."""
        return {k: v for k, (v, status) in self.packages.items() if status == INSTALLED}

    def daemon_config(self) -> dict[str, Any] | None:
        """daemon.json decoded (an empty file is an empty object), None when absent."""
        if self.daemon_json is None:
            return None
        data = json.loads(self.daemon_json) if self.daemon_json.strip() else {}
        assert isinstance(data, dict), "daemon.json does not hold a JSON object"
        return data


# --- pure ---------------------------------------------------------------------------


def parse_dpkg_status(text: str) -> dict[str, tuple[str, str]]:
    """{"name:arch": (version, status)} from the text of dpkg's status database."""
    found: dict[str, tuple[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if "Package" in fields:
            key = f"{fields['Package']}:{fields.get('Architecture', '')}"
            found[key] = (fields.get("Version", ""), fields.get("Status", ""))
    return found


def differences(before: HostSnapshot, after: HostSnapshot) -> dict[str, Any]:
    """Per field, what differs: mappings as {key: (before, after)}, other fields as a pair."""
    diff: dict[str, Any] = {}
    for field in dataclasses.fields(HostSnapshot):
        a, b = getattr(before, field.name), getattr(after, field.name)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diff[field.name] = {
                k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)
            }
        else:
            diff[field.name] = (a, b)
    return diff


# --- reading the host -----------------------------------------------------------------


def _hashes(files: Iterable[Path]) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files) if p.is_file()
    }


def read_tree(dirs: Iterable[Path], files: Iterable[Path] = ()) -> dict[str, str]:
    """sha256 of each regular file directly in ``dirs``, plus ``files`` that exist."""
    found = [p for d in dirs if d.is_dir() for p in d.iterdir()]
    return _hashes([*found, *(f for f in files if f.exists())])


def docker_runtimes() -> tuple[str, ...] | None:
    """The runtime names the running Docker lists, None when it does not answer."""
    proc = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return tuple(sorted(json.loads(proc.stdout or "{}")))


def capture(
    *,
    dpkg_status: Path = DPKG_STATUS,
    sources_dirs: Iterable[Path] = SOURCES_DIRS,
    sources_files: Iterable[Path] = SOURCES_FILES,
    keyring_dirs: Iterable[Path] = KEYRING_DIRS,
    daemon_json: Path = DAEMON_JSON,
    with_docker: bool = True,
) -> HostSnapshot:
    """The host as it is now."""
    return HostSnapshot(
        packages=parse_dpkg_status(dpkg_status.read_text()),
        sources=read_tree(sources_dirs, sources_files),
        keyrings=read_tree(keyring_dirs),
        daemon_json=daemon_json.read_bytes() if daemon_json.exists() else None,
        runtimes=docker_runtimes() if with_docker else None,
    )
