"""containerd and CRI-O TOML: nvidia-ctk's rewrite (the test world's stand-in), the check,
user keys kept, and the original bytes back on failure and on rollback.

The stand-in rewrites the file the way NVIDIA's pkg/config/engine/containerd and crio
do (whole file from the parsed document); it needs tomllib, so Python 3.11+.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from installer import runtime_toml as rt
from installer.errors import GpubundleError
from installer.runtime_config import rollback_runtime
from tests.support.runtimeconfigs import (
    CONTAINERD_V2,
    CRIO_DROPIN,
    DUMP_1X,
    DUMP_2X,
    install_standin_ctk,
)

tomllib = pytest.importorskip("tomllib", reason="the stand-in nvidia-ctk needs Python 3.11+")

CONTAINERD_V3 = """version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd]
default_runtime_name = "runc"
"""
# A file with content and no `version` line: containerd and NVIDIA's nvidia-ctk both read
# it as version 1 (pkg/config/engine/containerd parseVersion), runtimes under plugins.cri.
CONTAINERD_UNVERSIONED = """[plugins.cri.containerd]
snapshotter = "overlayfs"
"""


@pytest.fixture
def ctk_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    install_standin_ctk(bindir)
    # No containerd on PATH: the engine's own check is the integration tier's.
    monkeypatch.setenv("PATH", f"{bindir}:/nonexistent")
    return bindir


def test_argv_and_text_checks() -> None:
    argv = rt.configure_argv("/usr/bin/nvidia-ctk", "containerd", Path("/etc/c.toml"))
    assert argv == [
        "/usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--config=/etc/c.toml"
    ]  # fmt: skip
    assert not rt.is_configured_text("containerd", CONTAINERD_V2)
    v1 = '[plugins.cri.containerd.runtimes.nvidia]\nBinaryName = "/usr/bin/nvidia-container-runtime"\n'
    assert rt.is_configured_text("containerd", v1)
    v3 = "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.nvidia.options]\n"
    assert not rt.is_configured_text("containerd", v3 + "BinaryName = '/x/runc'\n")
    crio = '[crio.runtime.runtimes.nvidia]\nruntime_path = "/usr/bin/nvidia-container-runtime"\n'
    assert rt.is_configured_text("crio", crio) and not rt.is_configured_text("containerd", crio)
    assert rt.engine_check_argv("crio", Path("/x")) is None


def test_lost_keys_ignores_nvidia_and_finds_drops() -> None:
    before = {"version": 2, "grpc": {"address": "/s"}, "plugins": {"a": {"b": 1}}}
    after = {"version": 2, "grpc": {}, "plugins": {"a": {"b": 2}, "nvidia": {"x": 1}}}
    assert rt.lost_keys(before, after) == ["grpc.address", "plugins.a.b"]
    assert rt.check_written("crio", "", "[crio]\n") != []


@pytest.mark.parametrize(
    ("original", "table"),
    [
        (CONTAINERD_V2, ("plugins", "io.containerd.grpc.v1.cri")),
        (CONTAINERD_V3, ("plugins", "io.containerd.cri.v1.runtime")),
        (CONTAINERD_UNVERSIONED, ("plugins", "cri")),
    ],
)
def test_containerd_configured_user_keys_kept_rollback_restores(
    ctk_path: Path, tmp_path: Path, original: str, table: tuple[str, str]
) -> None:
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text(original)
    config.chmod(0o600)

    change = rt.configure_toml_runtime("containerd", config, tmp_path / "backup")

    doc = tomllib.loads(config.read_text())
    plugin = doc[table[0]][table[1]]
    nvidia = plugin["containerd"]["runtimes"]["nvidia"]
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert rt.lost_keys(tomllib.loads(original), doc) == []
    assert (config.stat().st_mode & 0o777) == 0o600
    assert change.kind == "containerd-toml" and change.changed and change.backup_path
    again = rt.configure_toml_runtime("containerd", config, tmp_path / "backup")
    assert not again.changed
    rollback_runtime(change)
    assert config.read_text() == original


def test_crio_dropin_created_and_rolled_back(ctk_path: Path, tmp_path: Path) -> None:
    dropin = tmp_path / "crio.conf.d" / "99-nvidia.toml"
    change = rt.configure_toml_runtime("crio", dropin, tmp_path / "backup")
    doc = tomllib.loads(dropin.read_text())
    nvidia = doc["crio"]["runtime"]["runtimes"]["nvidia"]
    assert nvidia == {"runtime_path": "/usr/bin/nvidia-container-runtime", "runtime_type": "oci"}
    assert change.backup_path is None and change.sha256_before is None
    rollback_runtime(change)
    assert not dropin.exists()


def test_crio_existing_keys_kept(ctk_path: Path, tmp_path: Path) -> None:
    dropin = tmp_path / "99-nvidia.toml"
    dropin.write_text(CRIO_DROPIN)
    rt.configure_toml_runtime("crio", dropin, tmp_path / "backup")
    assert tomllib.loads(dropin.read_text())["crio"]["runtime"]["log_level"] == "info"


@pytest.mark.parametrize(
    "extra",
    [
        # drops the user's oom_score, as a careless rewrite would
        "t = open(p).read().replace('oom_score = -500', ''); open(p, 'w').write(t)",
        "open(p, 'a').write('broken = [\\n')",
        "rc = 1",
    ],
)
def test_bad_rewrite_restores_original_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    install_standin_ctk(tmp_path / "bin", extra)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/nonexistent")
    config = tmp_path / "config.toml"
    config.write_text(CONTAINERD_V2)
    with pytest.raises(GpubundleError):
        rt.configure_toml_runtime("containerd", config, tmp_path / "backup")
    assert config.read_text() == CONTAINERD_V2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("dump", [DUMP_1X, DUMP_2X])
def test_the_loaded_nvidia_runtime_under_either_containerds_name(dump: str) -> None:
    assert rt.loaded_problems(dump.format(disabled="[]", name="nvidia")) == []
    [missing] = rt.loaded_problems(dump.format(disabled="[]", name="other"))
    assert "shows no nvidia runtime" in missing and "containerd 2.x reads 2 and 3" in missing


@pytest.mark.parametrize(
    ("dump", "plugin"),
    [
        (DUMP_1X, "io.containerd.grpc.v1.cri"),
        (DUMP_1X, "cri"),
        (DUMP_2X, "io.containerd.cri.v1.runtime"),  # 2.x still dumps the table of a v3 file
        (DUMP_2X, "io.containerd.grpc.v1.cri"),  # 2.x's CRI service: the runtime is not served
    ],
)
def test_a_disabled_cri_plugin_is_not_loading_the_runtime(dump: str, plugin: str) -> None:
    [problem] = rt.loaded_problems(dump.format(disabled=f'["{plugin}"]', name="nvidia"))
    assert f'"{plugin}" in disabled_plugins' in problem


def test_a_v1_table_in_a_2x_dump_is_not_loaded() -> None:
    """containerd 2.x does not migrate a version 1 file's plugins.cri: its dump has the
    runtime nowhere it reads."""
    dump = DUMP_2X.format(disabled="[]", name="runc") + (
        "  [plugins.cri.containerd.runtimes.nvidia.options]\n"
        "    BinaryName = '/usr/bin/nvidia-container-runtime'\n"
    )
    [problem] = rt.loaded_problems(dump)
    assert 'config version 3: [plugins."io.containerd.cri.v1.runtime"' in problem
