"""The README's one command, ``sh gpubundle-installer.pyz install BUNDLE --trust FPR``, in
real roots with the network cut, on every release: each of the 8 amd64 targets in its
debootstrap minbase root as debootstrap makes it (no release's minbase has python3: the
installer runs on the target's own python3.X and gpgv .debs it carries, checked first and
unpacked into a temporary directory) and in the same root plus the release's stock
``python3`` and ``gpgv`` (the installer runs on it where it is 3.8 or newer; Ubuntu
18.04's 3.6 is not, so the carried 3.8 runs there too); and Debian 12 and 13 arm64
minbase roots under qemu-user (binfmt_misc), with the carried arm64 python3.X and gpgv.

One real ``gpubundle build`` per release and arch, of the stand-in NVIDIA family against
the minbase root's dpkg status, serves both roots of a release: the root plus python3
lacks nothing more of the family's closure (the plan and what apt installs show it).
Checked as data: dpkg lists the family at the bundle's versions and architecture; the
stand-in ``nvidia-ctk --version`` runs in the root; the carried runtime leaves nothing
behind (no python3 installed, no temporary directory); uninstall, also run by ``sh``,
returns the root's packages, apt sources, keyrings, apt state and gpubundle's paths to
what they were; and an installer whose carried runtime was altered by one byte is refused
(exit 3) before anything is unpacked: every path of the root is as it was.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundler.targets import list_targets
from installer import layout
from tests.support import testkeys
from tests.support.inroot import (
    BUNDLE,
    PYZ,
    gpubundle_sh,
    in_root,
    ok_json,
    prime_apt,
    proc_mounted,
    stage,
)
from tests.support.installbundles import HostBundle, build_target_bundle
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION, dpkg_status
from tests.support.roots import debootstrap_root, enable_foreign_arch, minbase_status
from tests.support.rootsnapshot import capture, differences, listing, listing_differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

KEPT_BY_DESIGN = (layout.LOG_DIR, layout.LOCK_FILE)  # see test_uninstall_roots.py
INSTALL_ARGS = ("--runtime", "none", "--skip-gpu-checks", "--yes", "--json")
# distro: (its stock python3, the python3.X its installer carries): measured in the roots.
PYTHONS = {
    "ubuntu18.04": ("3.6", "3.8"),  # 3.6 is older than the installer's 3.8: bionic-updates' 3.8
    "ubuntu20.04": ("3.8", "3.8"),
    "ubuntu22.04": ("3.10", "3.10"),
    "ubuntu24.04": ("3.12", "3.12"),
    "ubuntu26.04": ("3.14", "3.14"),  # reads the bundle with its own compression.zstd
    "debian11": ("3.9", "3.9"),
    "debian12": ("3.11", "3.11"),
    "debian13": ("3.13", "3.13"),  # no gpgv in minbase (sqv): the carried gpgv too
}
ARM64 = ("debian12", "debian13")  # Ubuntu's arm64 (ports.ubuntu.com) is unreachable here
# (distro, arch, what the root has besides minbase)
CELLS = [
    *((d, "amd64", include) for d in sorted(PYTHONS) for include in ((), INCLUDE)),
    *((d, "arm64", ()) for d in ARM64),
]


def cell_id(cell: tuple[str, str, tuple[str, ...]]) -> str:
    distro, arch, include = cell
    return f"{distro}-{arch}-{'+'.join(include) or 'minbase'}"


def expected_python(distro: str, include: tuple[str, ...]) -> str:
    """The python3 the README's command must run the installer on: the root's stock one
    where it has python3 3.8+, else the carried one."""
    stock, carried = PYTHONS[distro]
    if "python3" in include and tuple(map(int, stock.split("."))) >= (3, 8):
        return f"stock {stock}"
    return f"carried {carried}"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle runtime test")


BundleFor = Callable[[str, str], HostBundle]


@pytest.fixture(scope="module")
def bundle_for(
    tmp_path_factory: pytest.TempPathFactory, key: testkeys.TestKey, request: pytest.FixtureRequest
) -> BundleFor:
    """The bundle of (distro, arch), built once against its minbase root's dpkg status."""
    built_once: dict[tuple[str, str], HostBundle] = {}

    def get(distro: str, arch: str) -> HostBundle:
        if (distro, arch) not in built_once:
            fixture = "standin_repo" if arch == "amd64" else f"standin_repo_{arch}"
            repo: ServedStandin = request.getfixturevalue(fixture)
            built_once[distro, arch] = build_target_bundle(
                tmp_path_factory.mktemp(f"{distro}-{arch}"), key, repo.url, repo.armored_key,
                distro=distro, target_status=minbase_status(distro, arch=arch),
                toolkit_version=VERSION, extra=("--arch", arch),
            )  # fmt: skip
        return built_once[distro, arch]

    return get


def staged(root: Path, bundle: HostBundle) -> HostBundle:
    """The bundle and its installer copied into the root, where ``gpubundle_sh`` runs them."""
    assert bundle.installer is not None
    stage(root, bundle.path, bundle.installer)
    return bundle


def leftovers(root: Path) -> list[str]:
    """Temporary directories of the preamble or the wheel bootstrap left in the root."""
    return sorted(p.name for p in (root / "tmp").iterdir() if p.name.startswith("gpubundle-"))


def dpkg_family(root: Path) -> dict[str, tuple[str, str]]:
    """{name: (version, architecture)} of the family as the root's own dpkg-query shows it."""
    shown = in_root(
        root, "dpkg-query", "-W", "-f=${Package} ${Version} ${Architecture}\\n", *FAMILY
    )
    return {n: (v, a) for n, v, a in (line.split() for line in shown.stdout.splitlines())}


def test_every_target_has_its_cells() -> None:
    assert sorted(PYTHONS) == sorted(list_targets())


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
def test_install_and_uninstall_by_the_readme_command(
    cell: tuple[str, str, tuple[str, ...]],
    tmp_path: Path,
    key: testkeys.TestKey,
    bundle_for: BundleFor,
) -> None:
    distro, arch, include = cell
    runs_on = expected_python(distro, include)
    if arch != "amd64":
        enable_foreign_arch(arch)
    root = debootstrap_root(distro, "minbase", include, dest=tmp_path / "root", arch=arch)
    has_python = (root / "usr/bin/python3").exists()
    assert has_python is bool(include), "the root is not the host it stands for"
    if include:
        stock = PYTHONS[distro][0]
        assert (root / f"usr/bin/python{stock}").exists(), f"the stock python3 is not {stock}"
    assert not (root / "usr/bin/zstd").exists(), "the root must not offer a zstd program"
    bundle = staged(root, bundle_for(distro, arch))
    assert {p.architecture for p in bundle.manifest.packages} <= {arch, "all"}
    with proc_mounted(root):
        assert in_root(root, "dpkg", "--print-architecture").stdout.strip() == arch
        prime_apt(root, auto="sqv" if (root / "usr/bin/sqv").exists() else "gpgv")
        before = capture(root).without(KEPT_BY_DESIGN)
        packages0 = dpkg_status(root)

        done = gpubundle_sh(root, "--debug", "install", BUNDLE, "--trust", key.fingerprint,
                            *INSTALL_ARGS)  # fmt: skip
        doc = ok_json(done)
        # The plan (made before any change; what --dry-run prints) and what apt installed:
        # the family, and what the root lacks of its closure (a newer libcap2 on 20.04),
        # the same with python3 as without, so one bundle serves both roots.
        assert doc["plan"]["packages"] == bundle.packages
        assert dict.fromkeys(FAMILY, VERSION).items() <= bundle.packages.items()
        assert doc["record"]["packages_installed"] == bundle.packages
        assert dpkg_family(root) == dict.fromkeys(FAMILY, (VERSION, arch))
        packages1 = dpkg_status(root)
        for name in FAMILY:
            assert packages1[name] == (VERSION, "install ok installed"), name
        changed = {
            n for n in packages0.keys() | packages1.keys() if packages0.get(n) != packages1.get(n)
        }
        assert changed == set(bundle.packages), "nothing of the carried runtime is installed"
        assert (root / "usr/bin/python3").exists() is has_python
        assert leftovers(root) == []
        python, decoder = ran_on(done).rsplit(" ", 1)
        assert python == runs_on
        # No zstd program anywhere: the carried wheel, or Python 3.14's own module.
        assert decoder == ("compression.zstd" if python.endswith("3.14") else "zstandard")
        # The toolkit's CLI runs in the root (the stand-in's: docs/targets.md).
        ctk = in_root(root, "nvidia-ctk", "--version").stdout
        assert f"NVIDIA Container Toolkit CLI version {VERSION.split('-')[0]}" in ctk

        # uninstall (no --trust: the carried runtime is checked with the key install put in
        # place) takes the root back.
        ok_json(gpubundle_sh(root, "uninstall", "--yes", "--json"))
        assert differences(before, capture(root).without(KEPT_BY_DESIGN)) == []
        assert leftovers(root) == []


def ran_on(proc: subprocess.CompletedProcess[str]) -> str:
    """Which python3 a ``--debug`` run of the README's command ran the installer on, and its
    zstd decoder: "stock 3.8 zstandard", "carried 3.14 compression.zstd" (the carried one
    lives under the preamble's temporary directory)."""
    found = re.search(r"python (\S+) \(([^)]*)\)", proc.stderr)
    decoder = re.search(r"^zstd: (\S+)$", proc.stderr, re.M)
    assert found and decoder, proc.stderr
    where = "carried" if "/gpubundle-runtime-" in found[2] else "stock"
    return f"{where} {'.'.join(found[1].split('.')[:2])} {decoder[1]}"


def runtime_span(pyz: bytes) -> tuple[int, int]:
    """Where the carried runtime's tar lies in the installer, as its preamble says."""
    fields = dict(re.findall(rb"^(GB_TAR_AT|GB_TAR_SIZE)=([0-9]+)", pyz[:8192], re.M))
    return int(fields[b"GB_TAR_AT"]), int(fields[b"GB_TAR_SIZE"])


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_an_altered_runtime_is_refused_before_anything_is_unpacked(
    arch: str, tmp_path: Path, key: testkeys.TestKey, bundle_for: BundleFor
) -> None:
    """The host's own gpgv refuses it (arm64: the root's arm64 gpgv, under qemu-user)."""
    if arch != "amd64":
        enable_foreign_arch(arch)
    root = debootstrap_root("debian12", "minbase", dest=tmp_path / "root", arch=arch)
    staged(root, bundle_for("debian12", arch))
    pyz = root / PYZ.lstrip("/")
    data = bytearray(pyz.read_bytes())
    start, size = runtime_span(bytes(data))
    assert size > 1_000_000, "the debian12 installer carries python3.11's .debs"
    data[start + size // 2] ^= 0x01  # one bit, in the middle of some .deb
    pyz.write_bytes(bytes(data))
    with proc_mounted(root):
        before = listing(root)
        refused = gpubundle_sh(root, "install", BUNDLE, "--trust", key.fingerprint, *INSTALL_ARGS)
        assert refused.returncode == 3, refused.stderr
        assert "not signed by the key you trust" in refused.stderr
        assert "nothing on this host was changed" in refused.stderr
        assert listing_differences(before, listing(root)) == []
        assert leftovers(root) == []
        # A key other than the signer's: refused the same way.
        other = gpubundle_sh(root, "verify", BUNDLE, "--trust", "0" * 40)
        assert other.returncode == 3 and leftovers(root) == []


def test_stock_python_runs_the_pyz_directly(
    tmp_path: Path, key: testkeys.TestKey, bundle_for: BundleFor
) -> None:
    """``python3 gpubundle-installer.pyz`` still works where python3 is 3.8: the preamble is
    only sh's; Python reads the zip from its end."""
    root = debootstrap_root("ubuntu20.04", "minbase", INCLUDE, dest=tmp_path / "root")
    staged(root, bundle_for("ubuntu20.04", "amd64"))
    proc = subprocess.run(
        ["unshare", "-n", "chroot", str(root), "python3", PYZ, "verify", BUNDLE,
         "--trust", key.fingerprint, "--json"],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=600,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    doc: dict[str, Any] = ok_json(proc)
    assert doc["ok"] is True


def test_sqv_checks_the_runtime_where_there_is_no_gpgv(
    tmp_path: Path, key: testkeys.TestKey, bundle_for: BundleFor
) -> None:
    """Debian 13's minbase has sqv and no gpgv (apt 3 verifies with sqv) and no python3:
    the preamble checks the carried runtime with sqv, and the installer then checks the
    bundle with the gpgv it carries. A debian12 bundle, verified only (install would
    rightly refuse a debian12 bundle on a Debian 13 host)."""
    root = debootstrap_root("debian13", "minbase", dest=tmp_path / "root")
    assert (root / "usr/bin/sqv").exists() and not (root / "usr/bin/gpgv").exists()
    assert not (root / "usr/bin/python3").exists()
    staged(root, bundle_for("debian12", "amd64"))
    with proc_mounted(root):
        before = listing(root)
        doc = ok_json(gpubundle_sh(root, "verify", BUNDLE, "--trust", key.fingerprint, "--json"))
        assert doc["ok"] is True
        wrong = gpubundle_sh(root, "verify", BUNDLE, "--trust", "F" * 40)
        assert wrong.returncode == 3, wrong.stderr
        assert "not signed by the key you trust" in wrong.stderr
        assert listing_differences(before, listing(root)) == []
        assert leftovers(root) == []
