"""The stand-in nvidia-cdi-hook (tests/support/standin_bin/nvidia-cdi-hook.sh) does what
NVIDIA's does for the hooks our CDI specs name: it finds the container's root from the
OCI state on stdin and its bundle's config.json, links libcuda.so, and writes the root's
ld cache with this host's ldconfig. Run as an OCI hook is run, on a real root holding
real shared libraries (the GPU host run relied on it: docs/field-report.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing_part

pytestmark = pytest.mark.integration

HOOK = Path(__file__).resolve().parents[1] / "support" / "standin_bin" / "nvidia-cdi-hook.sh"
LIBDIR = "usr/local/nvidia/lib64"


def hook(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    state = json.dumps({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 1,
                        "bundle": str(bundle)}, separators=(",", ":"))  # fmt: skip
    return subprocess.run(
        ["sh", str(HOOK), *args], input=state, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def container(tmp_path: Path) -> tuple[Path, Path]:
    """A bundle whose config.json names a root with glibc's loader and a versioned library,
    as a CDI mount of the driver's libcuda.so.VERSION leaves it."""
    if os.geteuid() != 0:
        missing_part("ldconfig -r chroots into the container root: run as root")
    bundle, root = tmp_path / "bundle", tmp_path / "bundle" / "rootfs"
    (root / LIBDIR).mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    libz = Path(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"))
    shutil.copy(libz, root / LIBDIR / libz.name)  # e.g. libz.so.1.2.13: no soname link
    config = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"args": ["sh"]}}
    (bundle / "config.json").write_text(json.dumps(config, separators=(",", ":")))
    return bundle, root


def test_update_ldcache_writes_the_roots_cache_with_the_drivers_folder(
    container: tuple[Path, Path],
) -> None:
    bundle, root = container
    proc = hook(bundle, "update-ldcache", f"--folder=/{LIBDIR}")
    assert proc.returncode == 0, proc.stderr
    assert (root / "etc/ld.so.conf.d/00-nvcr-stand-in.conf").read_text() == f"/{LIBDIR}\n"
    listed = subprocess.run(
        ["ldconfig", "-r", str(root), "-p"], capture_output=True, text=True, check=True
    ).stdout
    assert f"libz.so.1 (libc6,x86-64) => /{LIBDIR}/libz.so.1" in listed, listed
    assert os.readlink(root / LIBDIR / "libz.so.1").startswith("libz.so.1.")  # soname link


def test_create_symlinks_links_inside_the_root_only(container: tuple[Path, Path]) -> None:
    bundle, root = container
    proc = hook(bundle, "create-symlinks", f"--link=libcuda.so.1::/{LIBDIR}/libcuda.so")
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(root / LIBDIR / "libcuda.so") == "libcuda.so.1"
    assert not Path(f"/{LIBDIR}/libcuda.so").exists()  # nothing written outside the root


def test_an_absolute_root_path_is_used_as_is(container: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, root = container
    config = {"ociVersion": "1.2.0", "root": {"path": str(root)}}
    (bundle / "config.json").write_text(json.dumps(config, separators=(",", ":")))
    assert hook(bundle, "create-symlinks", "--link=a::/x/b").returncode == 0
    assert os.readlink(root / "x/b") == "a"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["frobnicate"], "unknown command frobnicate"),
     (["update-ldcache", "--bogus"], "unknown argument --bogus"),
     ([], "no command")],
)  # fmt: skip
def test_anything_else_fails_loudly(
    container: tuple[Path, Path], args: list[str], message: str
) -> None:
    bundle, _ = container
    proc = hook(bundle, *args)
    assert proc.returncode != 0 and message in proc.stderr


def test_no_bundle_in_the_state_fails(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", str(HOOK), "update-ldcache"], input="{}", capture_output=True, text=True
    )
    assert proc.returncode != 0 and "no bundle" in proc.stderr
