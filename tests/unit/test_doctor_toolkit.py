"""Toolkit checks, with a real dpkg-query on a fixture dpkg database and real file modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from installer.doctor.checks import DoctorPaths
from installer.doctor.toolkit import (
    TOOLKIT_PACKAGES,
    ConfigFile,
    PackageState,
    ToolkitFacts,
    check_cli_info,
    check_config_toml,
    check_nvidia_ctk,
    check_packages,
    gather_toolkit,
    installed_packages,
    read_config_file,
)
from installer.hostpaths import HostPaths

CONFIG = ConfigFile(HostPaths.system().nvidia_runtime_config, False)  # absent
STANZA = "Package: {name}\nStatus: {status}\nMaintainer: x\nArchitecture: amd64\nVersion: {version}\nDescription: x\n\n"


def admindir(tmp_path: Path, packages: list[tuple[str, str, str]]) -> Path:
    adm = tmp_path / "dpkg"
    (adm / "info").mkdir(parents=True)
    (adm / "updates").mkdir()
    (adm / "status").write_text(
        "".join(STANZA.format(name=n, status=s, version=v) for n, s, v in packages)
    )
    return adm


def facts(versions: dict[str, str], status: str = "ii") -> ToolkitFacts:
    return ToolkitFacts(CONFIG, {n: PackageState(n, v, status) for n, v in versions.items()})


def test_real_dpkg_query_reads_states(tmp_path: Path) -> None:
    adm = admindir(
        tmp_path,
        [
            ("nvidia-container-toolkit", "install ok installed", "1.20.1-1"),
            ("libnvidia-container1", "install ok half-configured", "1.20.1-1"),
            ("libnvidia-container-tools", "deinstall ok config-files", "1.20.1-1"),
        ],
    )
    states = installed_packages(adm, TOOLKIT_PACKAGES)
    assert {n: s.status for n, s in states.items()} == {
        "nvidia-container-toolkit": "ii",
        "libnvidia-container1": "iF",
        "libnvidia-container-tools": "rc",
    }
    finding = check_packages(ToolkitFacts(CONFIG, states))
    assert finding.status == "failure"
    assert "libnvidia-container1 (iF)" in finding.summary
    assert "dpkg --configure -a" in finding.fix


def test_consistent_packages_ok() -> None:
    finding = check_packages(facts(dict.fromkeys(TOOLKIT_PACKAGES, "1.20.1-1")))
    assert finding.status == "ok"
    assert "1.20.1-1" in finding.summary


def test_mixed_versions_fail_with_pinned_fix() -> None:
    versions = dict.fromkeys(TOOLKIT_PACKAGES, "1.20.1-1")
    versions["libnvidia-container1"] = "1.17.8-1"
    finding = check_packages(facts(versions))
    assert finding.status == "failure"
    assert "1.17.8-1" in finding.summary
    assert "libnvidia-container1=1.20.1-1" in finding.fix[0]


def test_not_installed_and_config_files_only() -> None:
    assert check_packages(facts({})).status == "failure"
    only_conf = facts({"nvidia-container-toolkit": "1.20.1-1"}, status="rc")
    assert check_packages(only_conf).summary == "nvidia-container-toolkit is not installed"


def test_missing_nvidia_ctk() -> None:
    assert check_nvidia_ctk(ToolkitFacts(CONFIG, nvidia_ctk="")).status == "failure"
    assert check_nvidia_ctk(ToolkitFacts(CONFIG, nvidia_ctk="/usr/bin/nvidia-ctk")).status == "ok"


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        (0o644, "ok", "0644"),
        (0o666, "failure", "world-writable"),
        (0o600, "warning", "expected 0644"),
    ],
)
def test_config_toml_mode(tmp_path: Path, mode: int, status: str, words: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[nvidia-container-cli]\n")
    os.chmod(path, mode)
    cfg = read_config_file(path)
    cfg = type(cfg)(cfg.path, True, cfg.mode, 0, 0)  # as if root-owned, whoever runs the test
    finding = check_config_toml(ToolkitFacts(config=cfg))
    assert finding.status == status
    assert words in finding.summary
    if status != "ok":
        assert finding.fix == [f"chown root:root {path} && chmod 0644 {path}"]


def test_config_toml_not_root_owned_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    os.chmod(path, 0o644)
    cfg = read_config_file(path)
    owned = type(cfg)(cfg.path, True, 0o644, 1000, 1000)
    assert check_config_toml(ToolkitFacts(config=owned)).summary.endswith("not owned by root")
    missing = check_config_toml(ToolkitFacts(config=read_config_file(tmp_path / "nope.toml")))
    assert missing.status == "warning"
    assert "nvidia-ctk config default" in missing.fix[0]


# What NVIDIA's nvidia-container-cli prints on a healthy host (shape from its `info` command).
CLI_INFO_OK = """NVRM version:   580.159.04
CUDA version:   13.0

Device Index:   0
Device Minor:   0
Model:          NVIDIA H200
GPU UUID:       GPU-84ab8b38-911c-6f8b-2e46-221d9928d90d
"""
# What our stand-in prints (tests/support/standin_bin/nvidia-container-cli.sh).
CLI_INFO_STANDIN = (
    "nvidia-container-cli: stand-in for tests, not NVIDIA's binary: needs NVIDIA's real "
    "libnvidia-container-tools and an NVIDIA driver\n"
)


def test_cli_info_ok_counts_gpus() -> None:
    finding = check_cli_info(ToolkitFacts(CONFIG, cli_info=(0, CLI_INFO_OK)))
    assert finding.status == "ok"
    assert finding.summary == "nvidia-container-cli info sees the driver and 1 GPU(s)"


def test_cli_info_failure_shows_what_it_said_and_the_fix() -> None:
    finding = check_cli_info(ToolkitFacts(CONFIG, cli_info=(1, CLI_INFO_STANDIN)))
    assert finding.status == "failure"
    assert "cannot load the NVIDIA driver" in finding.summary
    assert any("stand-in for tests" in line for line in finding.evidence)
    assert any("nvidia-container-cli -k -d /dev/tty info" in fix for fix in finding.fix)


def test_cli_info_absent_is_skipped() -> None:
    assert check_cli_info(ToolkitFacts(CONFIG)).status == "skipped"


def test_cli_missing_with_its_package_installed_fails(tmp_path: Path) -> None:
    """Issue #9: doctor said skip while dpkg listed libnvidia-container-tools."""
    adm = admindir(tmp_path, [("libnvidia-container-tools", "install ok installed", "1.20.0-1")])
    (adm / "info" / "libnvidia-container-tools.list").write_text(
        "/.\n/usr\n/usr/bin\n/usr/bin/nvidia-container-cli\n"
    )
    root = tmp_path / "host"
    paths = DoctorPaths.on(HostPaths(root), dpkg_admindir=adm, search_path=str(tmp_path / "empty"))
    facts = gather_toolkit(paths)
    assert facts.cli_info is None and facts.cli_listed == ("/usr/bin/nvidia-container-cli",)
    finding = check_cli_info(facts)
    assert finding.status == "failure"
    assert "couldn't find binary nvidia-container-cli in PATH" in finding.summary
    assert "dpkg: ii libnvidia-container-tools 1.20.0-1" in finding.evidence
    assert any(f.startswith("dpkg -i /var/lib/gpubundle/bundles/*/repo/debs/") for f in finding.fix)
    # Where its package put it, off PATH: found and run.
    (root / "usr/bin").mkdir(parents=True)
    cli = root / "usr/bin/nvidia-container-cli"
    cli.write_text("#!/bin/sh\necho 'NVRM version:   580.159.04'\n")
    cli.chmod(0o755)
    found = gather_toolkit(paths)
    assert found.cli_path == str(cli) and found.cli_info == (0, "NVRM version:   580.159.04\n")
    assert check_cli_info(found).status == "ok"
