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

import dataclasses
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer import engine
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


def configure_docker_runtime(
    daemon_json: Path, backup_dir: Path, *, set_default: bool = False, cdi: bool = False
) -> RuntimeChange:
    """Back up daemon.json, run nvidia-ctk on it, restore user keys, validate, write atomically."""
    before = daemon_json.read_bytes() if daemon_json.exists() else None
    original = read_daemon_json(daemon_json)
    if before is not None and is_configured(original, set_default=set_default, cdi=cdi):
        digest = _sha256(before)
        return RuntimeChange(str(daemon_json), None, digest, digest, changed=False)
    mode = daemon_json.stat().st_mode & 0o7777 if before is not None else 0o644
    backup: Path | None = None
    if before is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / f"{daemon_json.name}.{_sha256(before)[:12]}.bak"
        write_atomically(backup, before, mode)
    ctk = find_nvidia_ctk()
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(
            configure_argv(ctk, daemon_json, set_default=set_default, cdi=cdi),
            hint="nvidia-ctk could not update the Docker configuration; it was restored",
        )
        written = read_daemon_json(daemon_json)
        merged = remerge(original, written, intended_paths(set_default=set_default, cdi=cdi))
        if not is_configured(merged, set_default=set_default, cdi=cdi):
            raise GpubundleError(
                f"nvidia-ctk did not add the {RUNTIME_NAME} runtime to {daemon_json}",
                hint="check that nvidia-ctk comes from the bundle's nvidia-container-toolkit",
                details=[json.dumps(written, sort_keys=True)[:400]],
            )
        data = render(merged)
        write_atomically(daemon_json, data, mode)
    except BaseException:
        _restore(daemon_json, before, mode)
        raise
    return RuntimeChange(
        str(daemon_json),
        str(backup) if backup else None,
        _sha256(before) if before is not None else None,
        _sha256(data),
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


def restart_and_confirm(
    change: RuntimeChange, facts: engine.EngineFacts, log_dir: Path, *, timeout: float = 90
) -> str:
    """Restart Docker on the new config; if it does not come back, roll back and restart again.

    The second start reuses the first daemon's command line and environment: the one
    that failed has none left to read.
    """
    env = engine.process_environ(facts.pid) if facts.pid else None
    try:
        outcome = engine.restart_engine(facts, log_dir, env=env)
        return engine.wait_until_ready(timeout, outcome)
    except GpubundleError as failure:
        rollback_runtime(change)
        pid, _ = engine.find_dockerd()
        retry = dataclasses.replace(facts, pid=pid, running=bool(pid))
        outcome = engine.restart_engine(retry, log_dir, env=env)
        engine.wait_until_ready(timeout, outcome)
        raise GpubundleError(
            "Docker did not start with the NVIDIA runtime configured; the previous "
            f"{change.path} was restored and Docker restarted",
            hint="read the daemon's log in the details, fix the cause, then re-run",
            details=[failure.message, *failure.details],
        ) from failure


def configure_and_restart(
    facts: engine.EngineFacts,
    backup_dir: Path,
    log_dir: Path,
    *,
    set_default: bool = False,
    cdi: bool = False,
    timeout: float = 90,
) -> RuntimeChange:
    """The whole step: configure daemon.json, restart, confirm; rolled back on failure."""
    change = configure_docker_runtime(
        facts.daemon_json, backup_dir, set_default=set_default, cdi=cdi
    )
    if change.changed or not facts.running or RUNTIME_NAME not in engine.docker_runtimes():
        restart_and_confirm(change, facts, log_dir, timeout=timeout)
    return change
