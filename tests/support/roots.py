"""Real distro root filesystems for tests, built once with debootstrap and cached.

API (stable; used by the installer tests):

- ``debootstrap_root(distro, variant="minbase", include=(), dest=None, arch="amd64")
  -> Path``: a fresh copy of the root for ``distro`` (any key of ``DISTROS``:
  ubuntu18.04 … ubuntu26.04, debian11 … debian13). The first call runs debootstrap
  (minutes, needs root and the archive) and caches the result as
  ``.cache/roots/<key>.tar.zst``, keyed by distro, arch (when not amd64), variant
  and the sorted ``include`` list; every call unpacks that tarball into ``dest``
  (emptied first) or into ``.cache/roots/unpacked/<key>``. Concurrent callers are
  serialised with a lock file per key. ``arch="arm64"`` (Debian 12 and 13 only:
  Ubuntu's arm64 lives on ports.ubuntu.com, unreachable here) runs under
  qemu-user-static through binfmt_misc (``enable_foreign_arch`` mounts and enables it;
  ``QEMU_ENV`` in a program's environment makes qemu fast on Debian 13's binaries).
- ``minbase_status(distro, include=(), arch="amd64") -> Path``: the minbase root's
  var/lib/dpkg/status, cached as ``.cache/roots/<distro>-minbase.status`` (no
  unpacking).
- ``DISTROS``, ``archive_keyring(spec)``, ``keyring_fingerprints(path)``: the
  archives and the keys that sign them (Debian 12 hosts lack Ubuntu's
  keyring: it is taken from Ubuntu's own ubuntu-keyring .deb, checked against
  a SHA256 recorded here from the verified jammy Packages index).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bundler.http import download, make_session
from installer.runner import run
from tests.conftest import CACHE_DIR

ROOTS_CACHE = CACHE_DIR / "roots"
UBUNTU = "http://archive.ubuntu.com/ubuntu"
DEBIAN = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

# ubuntu-keyring 2021.03.26 from jammy main: Filename and SHA256 as the jammy Packages
# index lists them (that index's InRelease verifies with the keyring inside this .deb).
UBUNTU_KEYRING_DEB = "pool/main/u/ubuntu-keyring/ubuntu-keyring_2021.03.26_all.deb"
UBUNTU_KEYRING_SHA256 = "0d0e7ed6b112f5d03eabf3c7eb01ebdacf9c57714b279e90495cfc58c8c4520f"
UBUNTU_KEYRING_MEMBER = "usr/share/keyrings/ubuntu-archive-keyring.gpg"


@dataclass(frozen=True)
class DistroSpec:
    name: str  # our id, e.g. "ubuntu22.04"
    codename: str
    mirror: str
    suites: tuple[tuple[str, str], ...]  # (archive base URL, suite), in apt's source order
    components: tuple[str, ...]
    debootstrap_script: str  # the script debootstrap uses for this release
    ubuntu: bool
    arches: tuple[str, ...] = ("amd64",)  # what roots can be made for here


ARM_TOO = ("amd64", "arm64")
_DEBIAN_COMPONENTS = ("main", "contrib", "non-free")


def _ubuntu(name: str, codename: str, script: str) -> DistroSpec:
    suites = tuple((UBUNTU, f"{codename}{s}") for s in ("", "-updates", "-security"))
    components = ("main", "restricted", "universe", "multiverse")
    return DistroSpec(name, codename, UBUNTU, suites, components, script, True)


def _debian(
    name: str, codename: str, components: tuple[str, ...], arches: tuple[str, ...] = ARM_TOO
) -> DistroSpec:
    suites = (
        (DEBIAN, codename),
        (DEBIAN, f"{codename}-updates"),
        (DEBIAN_SECURITY, f"{codename}-security"),
    )
    return DistroSpec(name, codename, DEBIAN, suites, components, codename, False, arches)


DISTROS: dict[str, DistroSpec] = {
    "ubuntu18.04": _ubuntu("ubuntu18.04", "bionic", "bionic"),
    "ubuntu20.04": _ubuntu("ubuntu20.04", "focal", "focal"),
    "ubuntu22.04": _ubuntu("ubuntu22.04", "jammy", "jammy"),
    # Debian 12's debootstrap has no noble or resolute script; gutsy's is the one every
    # later Ubuntu uses.
    "ubuntu24.04": _ubuntu("ubuntu24.04", "noble", "gutsy"),
    "ubuntu26.04": _ubuntu("ubuntu26.04", "resolute", "gutsy"),
    # arm64 roots take 3-4 min each under qemu: made for the two releases #11 installs on.
    "debian11": _debian("debian11", "bullseye", _DEBIAN_COMPONENTS, ("amd64",)),
    "debian12": _debian("debian12", "bookworm", (*_DEBIAN_COMPONENTS, "non-free-firmware")),
    "debian13": _debian("debian13", "trixie", (*_DEBIAN_COMPONENTS, "non-free-firmware")),
}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ubuntu_keyring() -> Path:
    """Ubuntu's archive keyring, from ubuntu-keyring's .deb checked against a pinned SHA256."""
    keyring = ROOTS_CACHE / "ubuntu-archive-keyring.gpg"
    with _locked(ROOTS_CACHE / ".ubuntu-keyring.lock"):
        if keyring.exists():
            return keyring
        with tempfile.TemporaryDirectory(prefix="ubuntu-keyring-") as tmp:
            deb = Path(tmp) / "ubuntu-keyring.deb"
            download(make_session(), f"{UBUNTU}/{UBUNTU_KEYRING_DEB}", deb)
            digest = hashlib.sha256(deb.read_bytes()).hexdigest()
            if digest != UBUNTU_KEYRING_SHA256:
                raise AssertionError(
                    f"ubuntu-keyring .deb: sha256 {digest}, expected {UBUNTU_KEYRING_SHA256}"
                )
            run(["dpkg-deb", "-x", str(deb), f"{tmp}/tree"])
            shutil.copyfile(Path(tmp) / "tree" / UBUNTU_KEYRING_MEMBER, keyring)
    return keyring


def archive_keyring(spec: DistroSpec) -> Path:
    return ubuntu_keyring() if spec.ubuntu else DEBIAN_KEYRING


def keyring_fingerprints(keyring: Path) -> list[str]:
    """Primary-key fingerprints of every key in a keyring file."""
    with tempfile.TemporaryDirectory(prefix="gpg-home-") as home:
        out = run(
            ["gpg", "--homedir", home, "--batch", "--show-keys", "--with-colons", str(keyring)]
        ).stdout.decode()
    fingerprints: list[str] = []
    after_pub = False
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub:
            fingerprints.append(fields[9])
            after_pub = False
    return fingerprints


def root_key(
    distro: str, variant: str = "minbase", include: Sequence[str] = (), arch: str = "amd64"
) -> str:
    """The cache key of a root: distro, arch (unless amd64), variant and a hash of the sorted
    include list."""
    packages = ",".join(sorted(set(include)))
    suffix = hashlib.sha256(packages.encode()).hexdigest()[:10] if packages else "base"
    name = distro if arch == "amd64" else f"{distro}-{arch}"
    return f"{name}-{variant}-{suffix}"


def debootstrap_argv(
    spec: DistroSpec,
    variant: str,
    include: Sequence[str],
    target: Path,
    keyring: Path,
    arch: str = "amd64",
) -> list[str]:
    argv = ["debootstrap", f"--variant={variant}", f"--arch={arch}", f"--keyring={keyring}"]
    if include:
        argv.append("--include=" + ",".join(sorted(set(include))))
    return [*argv, spec.codename, str(target), spec.mirror, spec.debootstrap_script]


BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
_QEMU_BINFMT = {"arm64": "qemu-aarch64"}
# The CPU qemu-user emulates for arm64 programs (it reads QEMU_CPU from their environment).
# Its default, "max", authenticates pointers with the architected QARMA cipher, in software:
# Debian 13's arm64 binaries are built with branch protection (PAC on every call), which
# makes them ~6x slower there (`sh gpubundle-installer.pyz --help` on the carried
# python3.13: 43 s) than with the implementation-defined algorithm (7.7 s), which keeps
# pointer authentication on. Debian 12's are built without it. Inert for native programs.
QEMU_ENV = {"QEMU_CPU": "max,pauth-impdef=on"}


def enable_foreign_arch(arch: str) -> None:
    """Let this machine run ``arch`` binaries: binfmt_misc mounted, qemu-user-static enabled
    (scripts/deps.sh installs qemu-user-static and binfmt-support)."""
    name = _QEMU_BINFMT[arch]
    # One at a time: test workers and scripts/prewarm-roots may all get here at once.
    with _locked(ROOTS_CACHE / ".binfmt.lock"):
        if not (BINFMT_DIR / "register").exists():
            run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
        if not (BINFMT_DIR / name).exists():
            run(["update-binfmts", "--enable", name])


def _root_tarball(distro: str, variant: str, include: Sequence[str], arch: str) -> Path:
    spec = DISTROS[distro]
    if arch not in spec.arches:
        raise ValueError(f"no {arch} roots of {distro} here (only {', '.join(spec.arches)})")
    key = root_key(distro, variant, include, arch)
    tarball = ROOTS_CACHE / f"{key}.tar.zst"
    with _locked(ROOTS_CACHE / f".{key}.lock"):
        if tarball.exists():
            return tarball
        if os.geteuid() != 0:
            raise PermissionError(f"building the {distro} root with debootstrap needs root")
        if arch != "amd64":
            enable_foreign_arch(arch)
        keyring = archive_keyring(spec)
        with tempfile.TemporaryDirectory(prefix=f"debootstrap-{key}-", dir=ROOTS_CACHE) as tmp:
            target = Path(tmp) / "root"
            argv = debootstrap_argv(spec, variant, include, target, keyring, arch)
            run(argv, timeout=3600, env=QEMU_ENV if arch != "amd64" else None)
            partial = Path(tmp) / "root.tar.zst"
            run(["tar", "--zstd", "-C", str(target), "--numeric-owner", "-cf", str(partial), "."])
            partial.rename(tarball)
    return tarball


def debootstrap_root(
    distro: str,
    variant: str = "minbase",
    include: Sequence[str] = (),
    dest: Path | None = None,
    arch: str = "amd64",
) -> Path:
    """A fresh root tree for ``distro`` (see the module docstring); returns its path."""
    tarball = _root_tarball(distro, variant, include, arch)
    key = root_key(distro, variant, include, arch)
    target = dest or ROOTS_CACHE / "unpacked" / key
    # The shared unpack directory is replaced under the lock; pass ``dest`` to own a copy.
    with _locked(ROOTS_CACHE / f".{key}.unpack.lock"):
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        run(["tar", "--zstd", "-C", str(target), "--numeric-owner", "-xpf", str(tarball)])
    return target


def minbase_status(distro: str, include: Sequence[str] = (), arch: str = "amd64") -> Path:
    """The dpkg status file of ``distro``'s minbase root plus ``include`` (cached; no full
    unpack)."""
    plain = f"{distro}-minbase" if arch == "amd64" else f"{distro}-{arch}-minbase"
    name = root_key(distro, "minbase", include, arch) if include else plain
    status = ROOTS_CACHE / f"{name}.status"
    if not status.exists():
        tarball = _root_tarball(distro, "minbase", include, arch)
        data = run(["tar", "--zstd", "-xOf", str(tarball), "./var/lib/dpkg/status"]).stdout
        # Its own partial file: scripts/prewarm-roots and tests may read the same status at once.
        partial = status.with_name(f"{status.name}.{os.getpid()}.{threading.get_ident()}.part")
        partial.write_bytes(data)
        partial.rename(status)
    return status
