"""daemon.json: nvidia-ctk's rewrite, the re-merge of user keys, backup and rollback.

A fake nvidia-ctk on PATH (unit tier only) behaves like NVIDIA's code as read in
NVIDIA/nvidia-container-toolkit pkg/config/engine/docker: it rewrites the whole
file, and with --cdi.enabled replaces "features" by {"cdi": true}. A second fake
behaves like old nvidia-docker2 and writes only its own keys. The integration
tier uses the test world's stand-in instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer import runtime_config as rc
from installer.errors import GpubundleError
from tests.support.runtimeconfigs import CTK_LIKE_NVIDIA, USER_CONFIG

CTK_OLD_STYLE = r"""#!/usr/bin/env python3
import json, sys
path = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")][0]
open(path, "w").write(json.dumps({"runtimes": {"nvidia": {"path": "nvidia-container-runtime",
    "runtimeArgs": []}}}))
"""
CTK_FAILING = (
    "#!/bin/sh\necho 'ERRO unable to flush config' >&2\nprintf 'garbage' > /dev/null\nexit 1\n"
)
CTK_CORRUPTING = r"""#!/bin/sh
for a in "$@"; do case "$a" in --config=*) printf '{"runtimes": ' > "${a#--config=}";; esac; done
exit 0
"""


@pytest.fixture
def ctk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("CTK_LOG", str(tmp_path / "ctk.log"))

    def install(script: str) -> Path:
        path = bindir / "nvidia-ctk"
        path.write_text(script)
        path.chmod(0o755)
        return tmp_path / "ctk.log"

    return install


def write(path: Path, config: dict[str, object], mode: int = 0o640) -> bytes:
    data = json.dumps(config, indent=2).encode()
    path.write_bytes(data)
    path.chmod(mode)
    return data


def test_remerge_restores_dropped_and_altered_keys_only() -> None:
    written = {
        "features": {"cdi": True},
        "runtimes": {"nvidia": {"path": "x"}},
        "log-driver": "local",
    }
    merged = rc.remerge(USER_CONFIG, written, rc.intended_paths(set_default=False, cdi=True))
    assert merged["features"] == {"buildkit": True, "cdi": True}
    assert merged["log-driver"] == "json-file"
    assert merged["runtimes"] == {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": "x"}}
    assert merged["registry-mirrors"] == USER_CONFIG["registry-mirrors"]


def test_remerge_lets_nvidia_ctk_set_what_it_was_asked_to() -> None:
    original = {"default-runtime": "runc", "runtimes": {"nvidia": {"path": "/old"}}}
    written = {"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "new", "args": []}}}
    merged = rc.remerge(original, written, rc.intended_paths(set_default=True, cdi=False))
    assert merged == written
    kept = rc.remerge(original, written, rc.intended_paths(set_default=False, cdi=False))
    assert kept["default-runtime"] == "runc"


def test_configure_keeps_user_keys_and_backs_up(tmp_path: Path, ctk) -> None:  # type: ignore[no-untyped-def]
    log = ctk(CTK_LIKE_NVIDIA)
    daemon = tmp_path / "etc" / "daemon.json"
    daemon.parent.mkdir()
    before = write(daemon, USER_CONFIG, 0o640)
    change = rc.configure_docker_runtime(daemon, tmp_path / "backup", cdi=True)
    result = json.loads(daemon.read_text())
    for key, value in USER_CONFIG.items():
        if key not in ("features", "runtimes"):
            assert result[key] == value
    assert result["features"] == {"buildkit": True, "cdi": True}
    assert set(result["runtimes"]) == {"crun", "nvidia"}
    assert daemon.stat().st_mode & 0o777 == 0o640
    assert change.backup_path is not None and Path(change.backup_path).read_bytes() == before
    assert change.changed and change.sha256_before != change.sha256_after
    assert "--runtime=docker" in log.read_text() and f"--config={daemon}" in log.read_text()
    json.dumps(change.as_dict())  # JSON-serialisable for the install record


def test_configure_repairs_a_full_rewrite(tmp_path: Path, ctk) -> None:  # type: ignore[no-untyped-def]
    ctk(CTK_OLD_STYLE)
    daemon = tmp_path / "daemon.json"
    write(daemon, USER_CONFIG)
    rc.configure_docker_runtime(daemon, tmp_path / "b")
    result = json.loads(daemon.read_text())
    assert result["log-opts"] == USER_CONFIG["log-opts"]
    assert result["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


def test_idempotent_when_already_configured(tmp_path: Path, ctk) -> None:  # type: ignore[no-untyped-def]
    log = ctk(CTK_LIKE_NVIDIA)
    daemon = tmp_path / "daemon.json"
    write(daemon, USER_CONFIG)
    first = rc.configure_docker_runtime(daemon, tmp_path / "b")
    content = daemon.read_bytes()
    second = rc.configure_docker_runtime(daemon, tmp_path / "b")
    assert not second.changed and second.backup_path is None
    assert daemon.read_bytes() == content
    assert log.read_text().count("runtime configure") == 1
    rc.rollback_runtime(second)  # a no-op change rolls back to itself
    assert daemon.read_bytes() == content
    rc.rollback_runtime(first)
    assert json.loads(daemon.read_text()) == USER_CONFIG


def test_absent_file_is_recorded_and_rollback_removes_it(tmp_path: Path, ctk) -> None:  # type: ignore[no-untyped-def]
    ctk(CTK_LIKE_NVIDIA)
    daemon = tmp_path / "docker" / "daemon.json"
    change = rc.configure_docker_runtime(daemon, tmp_path / "b", set_default=True)
    assert change.backup_path is None and change.sha256_before is None
    assert json.loads(daemon.read_text())["default-runtime"] == "nvidia"
    rc.rollback_runtime(change)
    assert not daemon.exists()


@pytest.mark.parametrize("script", [CTK_FAILING, CTK_CORRUPTING])
def test_failure_restores_the_original(tmp_path: Path, ctk, script: str) -> None:  # type: ignore[no-untyped-def]
    ctk(script)
    daemon = tmp_path / "daemon.json"
    before = write(daemon, USER_CONFIG)
    with pytest.raises(GpubundleError):
        rc.configure_docker_runtime(daemon, tmp_path / "b")
    assert daemon.read_bytes() == before


def test_invalid_existing_file_is_refused_untouched(tmp_path: Path, ctk) -> None:  # type: ignore[no-untyped-def]
    log = ctk(CTK_LIKE_NVIDIA)
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": ')
    with pytest.raises(GpubundleError, match="not valid JSON"):
        rc.configure_docker_runtime(daemon, tmp_path / "b")
    assert daemon.read_text() == '{"log-driver": '
    assert not log.exists()


def test_argv() -> None:
    argv = rc.configure_argv(
        "/usr/bin/nvidia-ctk", Path("/etc/docker/daemon.json"), set_default=True, cdi=False
    )
    assert argv == [
        "/usr/bin/nvidia-ctk",
        "runtime",
        "configure",
        "--runtime=docker",
        "--config=/etc/docker/daemon.json",
        "--set-as-default",
    ]
