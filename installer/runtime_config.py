"""Register the NVIDIA runtime in Docker's daemon.json the vendor's way, without losing user keys.

``nvidia-ctk runtime configure --runtime=docker`` rewrites the whole file. With
``--cdi.enabled`` NVIDIA's code replaces ``features`` by ``{"cdi": true}`` (its type
check fails on a decoded JSON object), dropping e.g. ``"buildkit": true``, and older
toolkits replaced the file outright. So gpubundle backs the file up, runs nvidia-ctk,
then puts back every key of the original that nvidia-ctk dropped or changed, except
the ones it was asked to set (``runtimes.nvidia``, ``default-runtime``,
``features.cdi``), checks the result and writes it atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer.atomicfile import write_atomically
from installer.errors import GpubundleError
from installer.runner import run

RUNTIME_NAME = "nvidia"
DOCKER_KIND = "docker-json"  # RuntimeChange.kind of daemon.json; see installer.runtime_toml
NVIDIA_CTK_LOCATIONS = ("/usr/bin/nvidia-ctk", "/usr/local/bin/nvidia-ctk")


@dataclass(frozen=True)
class RuntimeChange:
    path: str
    backup_path: str | None  # None: the file did not exist before
    sha256_before: str | None
    sha256_after: str
    changed: bool = True  # False: it was configured already and left alone
    kind: str = DOCKER_KIND  # which file: docker-json | containerd-toml | crio-toml

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- pure ---------------------------------------------------------------------------


def configure_argv(
    nvidia_ctk: str, daemon_json: Path, *, set_default: bool, cdi: bool
) -> list[str]:
    argv = [nvidia_ctk, "runtime", "configure", "--runtime=docker", f"--config={daemon_json}"]
    if set_default:
        argv.append("--set-as-default")
    if cdi:
        argv.append("--cdi.enabled")
    return argv


def intended_paths(*, set_default: bool, cdi: bool) -> set[tuple[str, ...]]:
    """The keys nvidia-ctk is asked to set; its values win there."""
    paths: set[tuple[str, ...]] = {("runtimes", RUNTIME_NAME)}
    if set_default:
        paths.add(("default-runtime",))
    if cdi:
        paths.add(("features", "cdi"))
    return paths


def remerge(
    original: dict[str, Any], written: dict[str, Any], intended: set[tuple[str, ...]]
) -> dict[str, Any]:
    """``written`` with every key of ``original`` restored unless nvidia-ctk was asked to set it."""
    return _merge(original, written, intended, ())


def _merge(
    original: dict[str, Any],
    written: dict[str, Any],
    intended: set[tuple[str, ...]],
    prefix: tuple[str, ...],
) -> dict[str, Any]:
    result = dict(written)
    for key, value in original.items():
        path = (*prefix, key)
        if path in intended:
            continue
        theirs = written.get(key)
        if isinstance(value, dict) and isinstance(theirs, dict):
            result[key] = _merge(value, theirs, intended, path)
        elif any(p[: len(path)] == path for p in intended) and isinstance(value, dict):
            # nvidia-ctk replaced a parent of an intended key: keep ours plus its value.
            result[key] = _merge(value, theirs if isinstance(theirs, dict) else {}, intended, path)
        else:
            result[key] = value
    return result


def is_configured(config: dict[str, Any], *, set_default: bool, cdi: bool) -> bool:
    runtimes = config.get("runtimes")
    if not isinstance(runtimes, dict) or not isinstance(runtimes.get(RUNTIME_NAME), dict):
        return False
    if set_default and config.get("default-runtime") != RUNTIME_NAME:
        return False
    features = config.get("features")
    return not (cdi and not (isinstance(features, dict) and features.get("cdi") is True))


def render(config: dict[str, Any]) -> bytes:
    return (json.dumps(config, indent=4, sort_keys=True) + "\n").encode()


# --- files --------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object (empty = {}); errors name ``what`` and how to find the fault."""
    if not data.strip():
        return {}
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise GpubundleError(
            f"{what} is not valid JSON: {exc}",
            hint=f"fix {what} (python3 -m json.tool shows where; Docker would not start with "
            "it either), then run the command again",
        ) from exc
    if not isinstance(value, dict):
        raise GpubundleError(
            f"{what} does not hold a JSON object", hint=f"fix {what}, then run the command again"
        )
    return value


def read_daemon_json(path: Path) -> dict[str, Any]:
    try:
        return parse_json_object(path.read_bytes(), str(path))
    except FileNotFoundError:
        return {}


def find_nvidia_ctk() -> str:
    found = shutil.which("nvidia-ctk")
    if found:
        return found
    for loc in NVIDIA_CTK_LOCATIONS:
        if Path(loc).is_file():
            return loc
    raise GpubundleError(
        "nvidia-ctk not found", hint="install nvidia-container-toolkit-base from the bundle first"
    )


def configure_file(
    path: Path,
    backup_dir: Path,
    kind: str,
    *,
    configured: Callable[[bytes], bool],
    argv: Callable[[str], list[str]],
    result: Callable[[bytes | None], bytes],
    hint: str,
) -> RuntimeChange:
    """The guard every engine's runtime file gets: back up, run nvidia-ctk, check, write.

    ``configured(before)``: the file has the runtime already (nothing is run or
    written); ``argv(nvidia_ctk)``: nvidia-ctk's command line; ``result(before)``: the
    bytes to keep, from what nvidia-ctk wrote (it raises when they are wrong). The
    original is backed up first (``runtime_intent.backup_path`` names it the same) and
    its bytes put back on any failure; the result is written atomically, original mode.
    """
    before = path.read_bytes() if path.exists() else None
    if before is not None and configured(before):
        digest = _sha256(before)
        return RuntimeChange(str(path), None, digest, digest, changed=False, kind=kind)
    mode = path.stat().st_mode & 0o7777 if before is not None else 0o644
    backup: Path | None = None
    if before is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / f"{path.name}.{_sha256(before)[:12]}.bak"
        write_atomically(backup, before, mode)
    ctk = find_nvidia_ctk()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(argv(ctk), hint=hint)
        data = result(before)
        write_atomically(path, data, mode)  # durable, with the original mode
    except BaseException:
        _restore(path, before, mode)
        raise
    return RuntimeChange(
        str(path),
        str(backup) if backup else None,
        _sha256(before) if before is not None else None,
        _sha256(data),
        kind=kind,
    )


def configure_docker_runtime(
    daemon_json: Path, backup_dir: Path, *, set_default: bool = False, cdi: bool = False
) -> RuntimeChange:
    """Back up daemon.json, run nvidia-ctk on it, restore user keys, validate, write atomically."""

    def original(before: bytes | None) -> dict[str, Any]:
        return parse_json_object(before, str(daemon_json)) if before is not None else {}

    def configured(before: bytes) -> bool:
        return is_configured(original(before), set_default=set_default, cdi=cdi)

    def result(before: bytes | None) -> bytes:
        written = read_daemon_json(daemon_json)
        intended = intended_paths(set_default=set_default, cdi=cdi)
        merged = remerge(original(before), written, intended)
        if not is_configured(merged, set_default=set_default, cdi=cdi):
            raise GpubundleError(
                f"nvidia-ctk did not add the {RUNTIME_NAME} runtime to {daemon_json}",
                hint="check that nvidia-ctk comes from the bundle's nvidia-container-toolkit",
                details=[json.dumps(written, sort_keys=True)[:400]],
            )
        return render(merged)

    return configure_file(
        daemon_json,
        backup_dir,
        DOCKER_KIND,
        configured=configured,
        argv=lambda ctk: configure_argv(ctk, daemon_json, set_default=set_default, cdi=cdi),
        result=result,
        hint="nvidia-ctk could not update the Docker configuration; it was restored",
    )


def _restore(path: Path, before: bytes | None, mode: int) -> None:
    if before is None:
        path.unlink(missing_ok=True)
    else:
        write_atomically(path, before, mode)


def rollback_runtime(change: RuntimeChange) -> None:
    """Put the file back as it was before it was configured (daemon.json or a TOML file)."""
    if not change.changed:
        return
    path = Path(change.path)
    if change.backup_path is None:
        path.unlink(missing_ok=True)
        return
    backup = Path(change.backup_path)
    try:
        data = backup.read_bytes()
    except OSError as exc:
        raise GpubundleError(
            f"cannot read the backup {backup} of {path}: {exc}",
            hint=f"restore {path} by hand; remove the nvidia runtime entry gpubundle added",
        ) from exc
    mode = backup.stat().st_mode & 0o7777
    write_atomically(path, data, mode)
