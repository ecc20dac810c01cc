"""Issue #9 recreated with real files and real processes: a driver under /usr/local/nvidia
behind a wrapper ``nvidia-smi`` on PATH, a CDI spec from an older driver, a
libnvidia-container-tools whose binary is gone. Doctor must see each, with a fix that
runs on the air-gapped host, and install's spec generation must mount the real binary.

The host is a Debian 12 root (debootstrap) with our stand-in toolkit packages installed
by its own dpkg, and the driver's layout as the real GPU host had it: device nodes made
with mknod, libraries in /usr/local/nvidia/lib64 in the root's ld cache, the driver's
``nvidia-smi`` an ELF (the root's own ``true``: no GPU is pretended, and nothing here
asks it for one), ``/usr/bin/nvidia-smi`` a ``#!/bin/sh`` script that execs it. The
stand-in ``nvidia-ctk cdi generate`` (docs/test-world.md) reads those files like the
real one. Doctor runs from the shipped zipapp with the root's python3, offline.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from installer import cdispec, containers
from installer.doctor.checks import DoctorPaths
from installer.doctor.dockerfacts import gather_docker
from installer.doctor.engine import check_cdi
from installer.hostpaths import HostPaths
from tests.support.inroot import CHROOT_ENV, DROP, PYZ, gpubundle, in_root, proc_mounted
from tests.support.roots import debootstrap_root
from tests.support.standin_nvidia import STANDIN_BIN
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root]

INCLUDE = ("python3", "gpgv")  # the same root as the install tests: one cache entry
DRIVER = "580.159.04"
OLD_DRIVER = "550.54.15"
NVIDIA_BIN = "/usr/local/nvidia/bin"
NVIDIA_LIB = "/usr/local/nvidia/lib64"
SPEC = "/var/run/cdi/nvidia.yaml"
# /var/run is a link to /run: absolute, so read from outside it would lead to this machine's.
SPEC_IN_ROOT = "run/cdi/nvidia.yaml"
WRAPPER = f'#!/bin/sh\n# the host image\'s wrapper\nexec {NVIDIA_BIN}/nvidia-smi "$@"\n'
# PATH as on the GPU host: /usr/bin (with the wrapper) before the driver's directory.
HOST_PATH = f"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:{NVIDIA_BIN}"
TOOLKIT_DEBS = (
    "libnvidia-container1",
    "libnvidia-container-tools",
    "nvidia-container-toolkit-base",
)


def _a_shared_library(name: str) -> Path:
    """A real ELF shared object of this machine, to stand where a driver library lies."""
    for candidate in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"):
        if os.path.exists(candidate):
            return Path(os.path.realpath(candidate))
    pytest.skip(f"no shared library on this machine to stand for {name}")


def lay_out_driver(root: Path, version: str, dev: Path | None = None) -> None:
    """The driver's files as the GPU host had them, under ``root``."""
    dev = dev or root / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    for name, minor in (("nvidia0", 0), ("nvidiactl", 255)):
        node = dev / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    lib = root / NVIDIA_LIB.lstrip("/")
    lib.mkdir(parents=True, exist_ok=True)
    for old in lib.iterdir():
        old.unlink()
    for name in ("libnvidia-ml", "libcuda"):
        shutil.copyfile(_a_shared_library(name), lib / f"{name}.so.{version}")
        (lib / f"{name}.so.1").symlink_to(f"{name}.so.{version}")


@pytest.fixture(scope="module")
def driver_host(
    tmp_path_factory: pytest.TempPathFactory, standin_repo: ServedStandin, installer_pyz: Path
) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("cdi-host")
    root = debootstrap_root("debian12", "minbase", INCLUDE, dest=tmp / "root")
    drop = root / DROP.lstrip("/")
    drop.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(installer_pyz, root / PYZ.lstrip("/"))
    debs = [
        next(standin_repo.repo.flat_dir.glob(f"{name}_1.20.1-1_amd64.deb")) for name in TOOLKIT_DEBS
    ]
    for deb in debs:
        shutil.copyfile(deb, drop / deb.name)
    lay_out_driver(root, DRIVER)
    bindir = root / NVIDIA_BIN.lstrip("/")
    bindir.mkdir(parents=True)
    shutil.copyfile(root / "usr/bin/true", bindir / "nvidia-smi")
    (bindir / "nvidia-smi").chmod(0o755)
    (root / "usr/bin/nvidia-smi").write_text(WRAPPER)
    (root / "usr/bin/nvidia-smi").chmod(0o755)
    (root / "etc/ld.so.conf.d/nvidia.conf").write_text(NVIDIA_LIB + "\n")
    with proc_mounted(root):
        in_root(root, "ldconfig")
        in_root(root, "dpkg", "-i", *(f"{DROP}/{d.name}" for d in debs))
        yield root


def run_in(root: Path, *argv: str, path: str = HOST_PATH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-n", "chroot", str(root), *argv],
        env={**CHROOT_ENV, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def doctor(root: Path) -> dict[str, dict[str, Any]]:
    proc = gpubundle(root, "doctor", "--json", env={"PATH": HOST_PATH})
    assert proc.returncode in (0, 1), proc.stderr
    return {f["check_id"]: f for f in json.loads(proc.stdout)["findings"]}


def spec_smi(root: Path) -> cdispec.Mount:
    mount = cdispec.parse_spec((root / SPEC_IN_ROOT).read_text()).nvidia_smi()
    assert mount is not None
    return mount


def test_wrapper_on_path_spec_found_by_doctor_and_fixed_as_printed(driver_host: Path) -> None:
    root = driver_host
    # What nvidia-ctk does by itself on such a host: it mounts the wrapper.
    proc = run_in(root, "nvidia-ctk", "cdi", "generate", f"--output={SPEC}")
    assert proc.returncode == 0, proc.stderr
    assert spec_smi(root) == cdispec.Mount("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi")

    found = doctor(root)
    smi = found["engine.cdi-nvidia-smi"]
    assert smi["status"] == "failure", smi
    assert any(f"{NVIDIA_BIN}/nvidia-smi, which it runs" in e for e in smi["evidence"])
    assert any("its interpreter /bin/sh" in e for e in smi["evidence"])
    regenerate = f"PATH={NVIDIA_BIN}:$PATH nvidia-ctk cdi generate --output={SPEC}"
    assert smi["fix"][0] == regenerate
    # In the form this host runs gpubundle in, never `gpubundle install`.
    assert smi["fix"][1] == f"or: python3 {PYZ} install BUNDLE --trust FINGERPRINT  # generates it with the driver's dir first"  # fmt: skip
    trap = found["traps.driver-path"]
    assert trap["status"] == "warning"
    assert f"is a wrapper of the driver's {NVIDIA_BIN}/nvidia-smi" in trap["summary"]
    # A stale-driver check has nothing to say here: the spec is for this driver's files.
    assert found["engine.cdi"]["status"] == "ok"

    # The printed fix, run as printed, makes a spec that doctor passes.
    proc = run_in(root, "sh", "-c", regenerate)
    assert proc.returncode == 0, proc.stderr
    assert spec_smi(root).host_path == f"{NVIDIA_BIN}/nvidia-smi"
    assert doctor(root)["engine.cdi-nvidia-smi"]["status"] == "ok"


def test_install_generates_the_spec_with_the_drivers_dir_first(driver_host: Path) -> None:
    """installer.containers.generate_cdi_spec, run by the root's python3 from the zipapp."""
    root = driver_host
    (root / SPEC_IN_ROOT).unlink(missing_ok=True)
    script = (
        f"import json, sys; sys.path.insert(0, {PYZ!r})\n"
        "from installer import containers, gpu\n"
        "from installer.hostpaths import HostPaths\n"
        "spec, note = containers.generate_cdi_spec(\n"
        "    'nvidia-ctk', HostPaths.system().cdi_spec, gpu.find_nvidia_smi()\n"
        ")\n"
        "print(json.dumps({'smi': spec.nvidia_smi, 'versions': spec.driver_versions,"
        " 'problem': spec.smi_problem, 'note': note}))\n"
    )
    proc = run_in(root, "python3", "-c", script)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {
        "smi": f"{NVIDIA_BIN}/nvidia-smi",
        "versions": [DRIVER],
        "problem": "",
        "note": f"/usr/bin/nvidia-smi is a wrapper of {NVIDIA_BIN}/nvidia-smi; "
        f"{NVIDIA_BIN} put first on PATH",
    }
    assert spec_smi(root) == cdispec.Mount(f"{NVIDIA_BIN}/nvidia-smi", f"{NVIDIA_BIN}/nvidia-smi")
    mounted = cdispec.parse_spec((root / SPEC_IN_ROOT).read_text()).container_paths
    assert f"{NVIDIA_LIB}/libnvidia-ml.so.{DRIVER}" in mounted
    assert f"{NVIDIA_LIB}/libcuda.so.{DRIVER}" in mounted
    assert not any("libnvidia-container" in m for m in mounted)  # the toolkit's, not the driver's
    assert doctor(root)["engine.cdi-nvidia-smi"]["status"] == "ok"


def test_missing_cli_with_its_package_installed_fails_with_an_offline_fix(
    driver_host: Path, standin_repo: ServedStandin
) -> None:
    root = driver_host
    cli = root / "usr/bin/nvidia-container-cli"
    before = doctor(root)["toolkit.cli-info"]
    assert before["status"] == "failure" and "cannot load the NVIDIA driver" in before["summary"]

    cli.unlink()  # what the GPU host showed: dpkg lists the package, the binary is gone
    finding = doctor(root)["toolkit.cli-info"]
    assert finding["status"] == "failure", finding  # it was "skip" before issue #9
    assert (
        "libnvidia-container-tools is installed but nvidia-container-cli is missing"
        in (finding["summary"])
    )
    assert "couldn't find binary nvidia-container-cli in PATH" in finding["summary"]
    assert "dpkg: ii libnvidia-container-tools 1.20.1-1" in finding["evidence"]

    # The fix names the bundle's own .deb, kept where install extracted it: run it as printed.
    debs = root / "var/lib/gpubundle/bundles" / ("0" * 64) / "repo/debs"
    debs.mkdir(parents=True)
    deb = next(standin_repo.repo.flat_dir.glob("libnvidia-container-tools_1.20.1-1_amd64.deb"))
    shutil.copyfile(deb, debs / deb.name)
    reinstall = next(f for f in finding["fix"] if f.startswith("dpkg -i "))
    proc = run_in(root, "sh", "-c", reinstall.split("  #", 1)[0])
    assert proc.returncode == 0, proc.stderr
    assert cli.exists()
    after = doctor(root)["toolkit.cli-info"]
    assert "cannot load the NVIDIA driver" in after["summary"]  # the stand-in answers again


def test_spec_from_an_older_driver_is_stale_for_doctor_and_install(tmp_path: Path) -> None:
    """The stand-in generates for driver 550 (its files under a driver root); the driver is
    then upgraded to 580. Doctor's engine.cdi fails, install would generate it again."""
    host = tmp_path / "host"
    lay_out_driver(host, OLD_DRIVER)
    spec = host / SPEC.lstrip("/")
    standin = STANDIN_BIN / "nvidia_ctk.py"
    proc = subprocess.run(
        ["python3", str(standin), "cdi", "generate", f"--driver-root={host}", f"--output={spec}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert cdispec.parse_spec(spec.read_text()).driver_versions == (OLD_DRIVER,)
    lay_out_driver(host, DRIVER)  # the upgrade: 550's libraries are gone

    paths = DoctorPaths.on(
        HostPaths.system(), cdi_dirs=(spec.parent,), daemon_json=tmp_path / "daemon.json"
    )
    finding = check_cdi(gather_docker(paths, DRIVER))
    assert finding.status == "failure", finding
    assert any(
        f"generated for driver {OLD_DRIVER}, the running driver is {DRIVER}" in e
        for e in finding.evidence
    )
    assert finding.fix[0].startswith("sh gpubundle-installer.pyz install BUNDLE --trust")
    reason = containers.regeneration_reason(spec.read_text(), False, DRIVER)
    assert reason.startswith(f"the spec is stale: generated for driver {OLD_DRIVER}")
