"""``doctor --collect FILE``: one redacted tar.gz to attach to a support request.

It holds the doctor's findings, versions, daemon.json and config.toml, containerd's and
CRI-O's configuration as the doctor read it (the file the install record or the adapter
names under the host's root, and for CRI-O its main file and every drop-in beside it:
``CriEngineFacts.config_files``), the dpkg state of the relevant packages, the install
record and gpubundle's logs. Registry
credentials, auth tokens and passwords in proxy URLs are replaced by
``<redacted>`` before anything is written: see :func:`redact_json` and :func:`redact_text`.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from installer import __version__
from installer.doctor.checks import DoctorPaths, Finding
from installer.doctor.crifacts import CriEngineFacts
from installer.doctor.dockerfacts import DOCKER_PACKAGES
from installer.doctor.toolkit import TOOLKIT_PACKAGES, dpkg_query_argv
from installer.errors import GpubundleError
from installer.runner import run

REDACTED = "<redacted>"
# daemon.json / config keys whose values are secrets whatever they look like.
_SECRET_KEY = re.compile(r"auth|pass(word|wd)?|secret|token|credential|cred[s_]|private", re.I)
# scheme://user:password@host  ->  scheme://<redacted>@host (the user name goes too)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@\"']+@", re.I)
# key = value / key: value / "key": "value" lines in text files and logs
_TEXT_SECRET = re.compile(
    r"(?P<key>[\"']?[\w.-]*(?:auth|passw(?:or)?d|secret|token|credential)[\w.-]*[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|\S+)",
    re.I,
)
MAX_LOG_BYTES = 4 * 1024 * 1024


def redact_url(value: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)


def redact_json(node: Any) -> Any:
    """A copy of decoded JSON with secret-named keys' values and URL passwords redacted."""
    if isinstance(node, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) and node[k] else redact_json(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [redact_json(item) for item in node]
    if isinstance(node, str):
        return redact_url(node)
    return node


def redact_text(text: str) -> str:
    text = redact_url(text)
    return _TEXT_SECRET.sub(lambda m: f"{m.group('key')}{REDACTED}", text)


def _command_output(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        proc = run(argv, env=env, check=False, timeout=60)
    except GpubundleError as exc:
        return f"$ {' '.join(argv)}\n{exc.message}\n"
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    return f"$ {' '.join(argv)}  (exit {proc.returncode})\n{out}\n"


def _read(path: Path, limit: int = MAX_LOG_BYTES) -> str | None:
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size > limit:
                handle.seek(size - limit)
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def engine_member(root: Path, path: Path) -> str:
    """``engines/`` + ``path`` as the host sees it (under ``root``), or as it is elsewhere."""
    try:
        where = path.relative_to(root)
    except ValueError:
        where = Path(str(path).lstrip("/"))
    return f"engines/{where}"


def collect_members(
    paths: DoctorPaths, findings: Sequence[Finding], cri: Sequence[CriEngineFacts]
) -> dict[str, str]:
    """Archive member name -> redacted text. Side effects: reads files, runs version commands.
    ``cri``: the doctor's facts of containerd and CRI-O, whose config files go in."""
    env = paths.docker_env()
    members = {
        "doctor.json": json.dumps([f.as_dict() for f in findings], indent=2),
        "versions.txt": "".join(
            [
                f"gpubundle {__version__}\npython {platform.python_version()}\n",
                f"collected {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n\n",
                _read(paths.os_release) or "",
                _command_output(["uname", "-a"]),
                _command_output(["docker", "version"], env),
                _command_output(["nvidia-ctk", "--version"]),
                _command_output(["nvidia-container-cli", "--version"]),
                _command_output(["nvidia-smi"]),
            ]
        ),
        "dpkg.txt": _command_output(
            dpkg_query_argv(paths.dpkg_admindir, (*TOOLKIT_PACKAGES, *DOCKER_PACKAGES))
        ),
    }
    raw = _read(paths.daemon_json)
    if raw is not None:
        try:
            members["daemon.json"] = json.dumps(redact_json(json.loads(raw)), indent=2)
        except ValueError:
            members["daemon.json"] = redact_text(raw)
    for name, path in (
        ("config.toml", paths.config_toml),
        ("install-record.json", paths.record),
    ):
        text = _read(path)
        if text is not None:
            members[name] = redact_text(text)
    for engine in cri:
        for config in engine.config_files:
            text = _read(config)
            if text is not None:
                members[engine_member(paths.root, config)] = redact_text(text)
    if paths.log_dir.is_dir():
        for log in sorted(p for p in paths.log_dir.rglob("*") if p.is_file()):
            text = _read(log)
            if text is not None:
                members[f"logs/{log.relative_to(paths.log_dir)}"] = redact_text(text)
    for directory in paths.cdi_dirs:
        for spec in sorted(directory.glob("*")) if directory.is_dir() else []:
            text = _read(spec)
            if text is not None and spec.is_file():
                members[f"cdi/{directory.name}/{spec.name}"] = text
    return members


def write_archive(target: Path, members: dict[str, str], prefix: str = "gpubundle-doctor") -> None:
    """Write ``members`` as ``prefix/NAME`` into a gzip tar readable by its owner only."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    now = int(time.time())
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size, info.mtime, info.mode = len(data), now, 0o600
            tar.addfile(info, io.BytesIO(data))


def collect(
    paths: DoctorPaths,
    findings: Sequence[Finding],
    target: Path,
    cri: Sequence[CriEngineFacts],
) -> list[str]:
    members = collect_members(paths, findings, cri)
    write_archive(target, members)
    return sorted(members)
