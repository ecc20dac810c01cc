"""The stand-in NVIDIA repository has the real one's shape, metadata and signature chain."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from installer.openpgp import verify_clearsigned
from tests.support import testkeys
from tests.support.standin_nvidia import (
    StandinRepo,
    build_standin_repo,
    fixture_packages,
    read_stanzas,
)

RELATIONS = ("Depends", "Pre-Depends", "Breaks", "Replaces", "Provides", "Conflicts")
COPIED = (*RELATIONS, "Multi-Arch", "Architecture", "Section", "Priority")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory, nvidia_fixtures: Path) -> testkeys.TestKey:
    """The stand-ins copy NVIDIA's real metadata: every test here needs it (nvidia_fixtures)."""
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, key: testkeys.TestKey) -> StandinRepo:
    return build_standin_repo(tmp_path_factory.mktemp("standin"), key)


@pytest.fixture(scope="module")
def payload(repo: StandinRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The newest toolkit's packages unpacked into one tree."""
    root = tmp_path_factory.mktemp("payload")
    for deb in repo.flat_dir.glob("*1.20.1-1_amd64.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def stanzas_by_id(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(s["Package"], s["Version"]): dict(s) for s in read_stanzas(path)}


def test_same_names_versions_and_relations_as_the_real_index(repo: StandinRepo) -> None:
    real = stanzas_by_id(fixture_packages("amd64"))
    built = stanzas_by_id(repo.flat_dir / "Packages")
    assert set(built) <= set(real)
    assert {("nvidia-container-toolkit", "1.20.1-1"), ("nvidia-container-toolkit", "1.17.8-1"),
            ("libnvidia-container1", "1.17.8-1"), ("nvidia-docker2", "2.14.0-1")} <= set(built)  # fmt: skip
    assert len(built) == 14
    for ident, stanza in built.items():
        for field in COPIED:
            assert stanza.get(field) == real[ident].get(field), (ident, field)
        assert "stand-in built for tests" in stanza["Description"]


def test_files_match_the_index(repo: StandinRepo) -> None:
    for stanza in read_stanzas(repo.flat_dir / "Packages"):
        name, version, arch = stanza["Package"], stanza["Version"], stanza["Architecture"]
        assert stanza["Filename"] == f"./{name}_{version}_{arch}.deb"
        deb = repo.flat_dir / stanza["Filename"]
        data = deb.read_bytes()
        assert int(stanza["Size"]) == len(data)
        assert stanza["SHA256"] == hashlib.sha256(data).hexdigest()
        control = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"],
                                 capture_output=True, check=True, text=True).stdout  # fmt: skip
        assert control == "".join(
            f"{k}: {stanza[k]}\n" for k in ("Package", "Version", "Depends") if k in stanza
        )


def test_inrelease_is_signed_and_lists_sha512_only(
    repo: StandinRepo, key: testkeys.TestKey
) -> None:
    signed = (repo.flat_dir / "InRelease").read_bytes()
    result = verify_clearsigned(signed, [key.public_armored], [key.fingerprint], "InRelease")
    text = result.signed_data.decode()
    assert "Valid-Until" not in text and "SHA256:" not in text and "Suite:" not in text
    assert "Architectures: amd64\n" in text and "Codename: stable\n" in text
    for name in ("Packages", "Packages.xz"):
        data = (repo.flat_dir / name).read_bytes()
        assert f" {hashlib.sha512(data).hexdigest()} {len(data):>16} {name}\n" in text


def test_build_is_reproducible(repo: StandinRepo, key: testkeys.TestKey, tmp_path: Path) -> None:
    again = build_standin_repo(tmp_path, key)
    assert again.packages == repo.packages
    assert (tmp_path / "stable/deb/amd64/Packages").read_bytes() == (
        repo.flat_dir / "Packages"
    ).read_bytes()


def test_arm64_metadata(key: testkeys.TestKey, tmp_path: Path) -> None:
    repo = build_standin_repo(tmp_path, key, arch="arm64", versions=["1.14.0-1"])
    built = stanzas_by_id(repo.flat_dir / "Packages")
    real = stanzas_by_id(fixture_packages("arm64"))
    assert {v for _, v in built} == {"1.14.0-1", "1.20.1-1", "3.14.0-1", "2.14.0-1"}
    for ident, stanza in built.items():
        assert [stanza.get(f) for f in COPIED] == [real[ident].get(f) for f in COPIED]
    assert "Architectures: arm64" in (repo.flat_dir / "InRelease").read_text()


def run_tool(payload: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(payload / "usr/bin" / tool), *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "tool",
    ["nvidia-ctk", "nvidia-container-runtime", "nvidia-container-runtime-hook",
     "nvidia-container-cli"],
)  # fmt: skip
def test_programs_say_they_are_stand_ins(payload: Path, tool: str) -> None:
    proc = run_tool(payload, tool, "--version")
    assert proc.returncode == 0
    assert "stand-in for tests, not NVIDIA's binary" in proc.stdout
    assert "1.20.1" in proc.stdout


def test_runtime_configure_rewrites_daemon_json(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text('{"log-driver": "json-file", "runtimes": {"crun": {"path": "crun"}}}\n')
    proc = run_tool(payload, "nvidia-ctk", "runtime", "configure", "--runtime=docker",
                    "--config", str(config), "--set-as-default")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(config.read_text()) == {
        "default-runtime": "nvidia",
        "log-driver": "json-file",
        "runtimes": {
            "crun": {"path": "crun"},
            "nvidia": {"args": [], "path": "nvidia-container-runtime"},
        },
    }
    assert config.read_text().startswith('{\n    "default-runtime": "nvidia",\n')


def test_runtime_configure_creates_a_missing_file(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "docker" / "daemon.json"
    proc = run_tool(payload, "nvidia-ctk", "runtime", "configure", "--runtime=docker",
                    f"--config={config}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(config.read_text()) == {
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}
    }


def test_cdi_generate_fails_without_a_driver(payload: Path, tmp_path: Path) -> None:
    proc = run_tool(payload, "nvidia-ctk", "cdi", "generate", "--output", str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND" in proc.stderr
    assert "stand-in for tests" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_cdi_generate_never_pretends_a_gpu(payload: Path, tmp_path: Path) -> None:
    """Driver libraries but no /dev/nvidiaN: no spec (the real tool finds no device either)."""
    lib = tmp_path / "usr/local/nvidia/lib64"
    lib.mkdir(parents=True)
    (lib / "libnvidia-ml.so.580.159.04").write_bytes(b"\x7fELF")
    proc = run_tool(payload, "nvidia-ctk", "cdi", "generate", f"--driver-root={tmp_path}",
                    "--output", str(tmp_path / "x"))  # fmt: skip
    assert proc.returncode != 0
    assert "Using driver version 580.159.04" in proc.stderr
    assert "no /dev/nvidiaN device nodes" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("tool", ["nvidia-container-runtime-hook", "nvidia-container-cli"])
def test_driver_tools_refuse(payload: Path, tool: str) -> None:
    proc = run_tool(payload, tool, "info")
    assert proc.returncode != 0
    assert "stand-in for tests" in proc.stderr


def test_runtime_refuses_gpu_containers(payload: Path, tmp_path: Path) -> None:
    spec = {"process": {"env": ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"]}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    proc = run_tool(payload, "nvidia-container-runtime", "create", "--bundle", str(tmp_path), "c1")
    assert proc.returncode == 1
    assert "no NVIDIA driver is available" in proc.stderr


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runtime_hands_other_commands_to_runc(payload: Path) -> None:
    proc = run_tool(payload, "nvidia-container-runtime", "help")
    assert proc.returncode == 0
    assert "runc" in proc.stdout


# --- the maintainer-script side: NVIDIA's effects (PACKAGES-BEHAVIOUR.md) ----------------

LOGRUS_LINE = re.compile(r'^time="[0-9TZ:-]+" level=(info|error) msg=(".*"|\S+)$')


def control_member(repo: StandinRepo, name: str, member: str) -> str:
    deb = repo.flat_dir / f"{name}_1.20.1-1_amd64.deb"
    proc = subprocess.run(["dpkg-deb", "-I", str(deb), member], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def test_packages_carry_nvidias_files(payload: Path) -> None:
    for path in ("usr/bin/nvidia-cdi-hook", "lib/systemd/system/nvidia-cdi-refresh.path",
                 "lib/systemd/system/nvidia-cdi-refresh.service",
                 "etc/nvidia-container-toolkit/nvidia-cdi-refresh.env",
                 "usr/lib/x86_64-linux-gnu/libnvidia-container.so.1.20.1"):  # fmt: skip
        assert (payload / path).is_file(), path
    assert not (payload / "etc/nvidia-container-runtime").exists()  # the postinst makes it
    lib = payload / "usr/lib/x86_64-linux-gnu/libnvidia-container.so.1"
    assert os.readlink(lib) == "libnvidia-container.so.1.20.1"
    assert (payload / "usr/lib/x86_64-linux-gnu/libnvidia-container.so.1.20.1").read_bytes()[
        :4
    ] == b"\x7fELF"


def test_packages_carry_their_scripts_conffile_and_trigger(repo: StandinRepo) -> None:
    base = "nvidia-container-toolkit-base"
    assert control_member(repo, base, "conffiles").split() == [
        "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env"
    ]
    postinst = control_member(repo, base, "postinst")
    assert "nvidia-ctk --quiet config --config-file=/etc/nvidia-container-runtime/config.toml" \
        " --in-place" in postinst  # fmt: skip
    assert "deb-systemd-helper enable" in postinst
    assert "deb-systemd-helper mask" in control_member(repo, base, "postrm")
    assert "rm -f /usr/bin/nvidia-container-toolkit" in control_member(
        repo, "nvidia-container-toolkit", "postrm"
    )
    assert "activate-noawait ldconfig" in control_member(repo, "libnvidia-container1", "triggers")


def test_config_in_place_creates_the_default(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc/nvidia-container-runtime/config.toml"
    proc = run_tool(payload, "nvidia-ctk", "config", f"--config-file={config}", "--in-place")
    assert proc.returncode == 0, proc.stderr
    text = config.read_text()
    ldconfig = "@/sbin/ldconfig.real" if Path("/sbin/ldconfig.real").exists() else "@/sbin/ldconfig"
    assert f'ldconfig = "{ldconfig}"\n' in text
    assert '[nvidia-container-runtime]\nlog-level = "info"\nmode = "auto"\n' in text
    lines = proc.stderr.splitlines()
    assert lines and all(LOGRUS_LINE.match(line) for line in lines), lines
    assert f'msg="Loading config from {config}"' in proc.stderr


def test_config_in_place_keeps_an_existing_file(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[nvidia-container-runtime]\nlog-level = "debug"\n')
    proc = run_tool(payload, "nvidia-ctk", "--quiet", "config", "--config-file", str(config),
                    "--in-place")  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""  # --quiet: errors only
    assert config.read_text() == '[nvidia-container-runtime]\nlog-level = "debug"\n'


def test_config_without_in_place_prints_and_writes_nothing(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    proc = run_tool(payload, "nvidia-ctk", "config", f"--config-file={config}")
    assert proc.returncode == 0 and "[nvidia-ctk]" in proc.stdout
    assert not config.exists()


def test_runtime_configure_logs_like_logrus_off_a_terminal(payload: Path, tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    proc = run_tool(payload, "nvidia-ctk", "runtime", "configure", "--runtime=docker",
                    f"--config={config}")  # fmt: skip
    lines = proc.stderr.splitlines()
    assert all(LOGRUS_LINE.match(line) for line in lines), lines
    assert lines[0].endswith(f'msg="Loading config from {config}"')
    assert f'msg="Wrote updated config to {config}"' in proc.stderr
