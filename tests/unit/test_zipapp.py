"""The installer zipapp: deterministic, pure, runnable; the bootstrap unpacks a fitting wheel."""

from __future__ import annotations

import itertools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bundler.zipapp import SHEBANG, build_zipapp, pip_download_argv, wheel_matches
from installer import bootstrap
from installer.errors import GpubundleError
from tests.support.wheels import MACHINE, TAG, probe_wheel


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pyz")
    return build_zipapp(tmp / "gpubundle-installer.pyz", [probe_wheel(tmp / "wheels")])


def test_zipapp_is_deterministic_and_sorted(pyz: Path, tmp_path: Path) -> None:
    again = build_zipapp(tmp_path / "again.pyz", [probe_wheel(tmp_path / "wheels")])
    assert again.read_bytes() == pyz.read_bytes()
    assert pyz.read_bytes().startswith(SHEBANG)
    with zipfile.ZipFile(pyz) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "__main__.py"
    assert names[1:] == sorted(names[1:])
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_zipapp_holds_installer_and_pure_dependencies_only(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as archive:
        names = set(archive.namelist())
    for needed in (
        "installer/cli.py",
        "installer/bootstrap.py",
        "click/__init__.py",
        "pynvml.py",
        f"_wheels/gbprobe-1.0-{TAG}-{TAG}-manylinux_2_17_{MACHINE}.whl",
    ):
        assert needed in names
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]
    assert not [n for n in names if n.endswith("/RECORD") or n.startswith("..")]
    # Docker is driven through its CLI: neither its SDK nor the requests stack ships.
    tops = {n.split("/")[0] for n in names}
    assert not tops & {"docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer"}


def test_zipapp_runs_in_isolated_python(pyz: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-I", str(pyz), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"GPUBUNDLE_PYLIB_DIR": str(tmp_path / "pylib"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "air-gapped" in proc.stdout
    assert len(list((tmp_path / "pylib").iterdir())) == 1  # the probe wheel, unpacked there


def test_bootstrap_unpacks_fitting_wheel(pyz: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "import installer.bootstrap as b; d = b.activate(root=Path(sys.argv[2]));"
        "import gbprobe; print(d, gbprobe.VALUE, gbprobe.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(pyz), str(tmp_path / "pylib")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    directory, value, module = proc.stdout.split()
    assert value == "42"
    assert module.startswith(directory) and directory.startswith(str(tmp_path / "pylib"))
    assert (Path(directory) / ".complete").exists()


def test_bootstrap_is_a_noop_outside_a_zipapp_or_without_a_fitting_wheel(tmp_path: Path) -> None:
    assert bootstrap.activate() is None  # imported from files here
    other = "cp27" if TAG != "cp27" else "cp26"
    pyz = build_zipapp(tmp_path / "x.pyz", [probe_wheel(tmp_path / "w", tag=other)])
    assert bootstrap.activate(str(pyz), root=tmp_path / "pylib") is None
    assert not (tmp_path / "pylib").exists()


@pytest.mark.parametrize(
    ("filename", "python", "arch", "fits"),
    [
        ("zstandard-0.25.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "3.10", "amd64", True),
        ("zstandard-0.25.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "3.11", "amd64", False),
        ("zstandard-0.25.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
         "3.12", "arm64", True),
        ("zstandard-0.25.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
         "3.12", "amd64", False),
        ("zstandard-0.25.0-cp311-cp311-musllinux_1_1_x86_64.whl", "3.11", "amd64", False),
        ("zstandard-0.25.0-cp311-cp311-win_amd64.whl", "3.11", "amd64", False),
        ("broken.whl", "3.11", "amd64", False),
    ],
)  # fmt: skip
def test_wheel_matches(filename: str, python: str, arch: str, fits: bool) -> None:
    assert wheel_matches(filename, python, arch) is fits


def test_pip_download_argv() -> None:
    argv = pip_download_argv("zstandard==0.25.0", "3.12", "arm64", Path("/c/wheels"))
    assert argv[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in argv and "--no-deps" in argv
    pairs = list(itertools.pairwise(argv))
    assert ("--python-version", "3.12") in pairs
    assert ("--abi", "cp312") in pairs
    assert ("--platform", "manylinux2014_aarch64") in pairs
    assert ("--dest", "/c/wheels") in pairs
    assert argv[-1] == "zstandard==0.25.0"
    with pytest.raises(GpubundleError):
        pip_download_argv("zstandard", "3.12", "riscv64", Path("/c"))
