"""A stand-in for NVIDIA's flat apt repository, built for tests from the real metadata.

NVIDIA's repository cannot be reached here, so tests get one of the same shape:
``<dest>/stable/deb/<arch>/{Packages, Packages.xz, InRelease, *.deb}``, ``Filename:
./name_version_arch.deb``, an ``InRelease`` with a SHA512 list only and no
``Valid-Until``, signed with a throwaway test key. Package names, versions and
dependency fields are copied from the real ``Packages`` fixture; the payloads are the
stand-in programs in ``standin_bin/``, which say so (``--version``), and every
``Description`` says the package is a stand-in built for tests.

The packages behave like NVIDIA's 1.20 packages (every version alike; see
shared/fixtures/nvidia/PACKAGES-BEHAVIOUR.md): the same files, and maintainer scripts
written anew with the same effects: config.toml made by toolkit-base's postinst through
``nvidia-ctk config --in-place``, systemd enablement links (through the root's
``deb-systemd-helper``, as debhelper's scripts do) and masks on remove, the unowned
``/usr/bin/nvidia-container-toolkit`` link, a conffile, an ldconfig trigger.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

from installer.debversion import version_key

if TYPE_CHECKING:  # python-debian is imported where used: the GPU host has none
    from debian.deb822 import Deb822

from installer.runner import run
from tests.support import nvidia_fixtures
from tests.support.testkeys import TestKey

STANDIN_BIN = Path(__file__).resolve().parent / "standin_bin"
DEFAULT_VERSIONS = ("1.17.8-1",)  # plus the newest, always
ALL = "all"  # versions=[ALL]: every stanza of the fixture (170; about 6 s)
SOURCE_DATE_EPOCH = 1700000000  # fixed mtimes: the same inputs give the same .debs
MAINTAINER = "gpubundle tests <test@gpubundle.invalid>"
HASHES = ("MD5sum", "SHA1", "SHA256", "SHA512")
_BUILT = {"Filename", "Size", "Installed-Size", "Maintainer", "Description", "Homepage", *HASHES}

RECIPE = "faithful-4"  # bump when the packages' behaviour changes: part of cache keys

# Stand-in file (in standin_bin/) -> path NVIDIA's package installs it at, and its mode.
PAYLOAD: dict[str, tuple[tuple[str, str, int], ...]] = {
    "nvidia-container-toolkit-base": (
        ("nvidia_ctk.py", "usr/bin/nvidia-ctk", 0o755),
        ("nvidia_container_runtime.py", "usr/bin/nvidia-container-runtime", 0o755),
        ("nvidia-cdi-hook.sh", "usr/bin/nvidia-cdi-hook", 0o755),
        ("nvidia-cdi-refresh.service", "lib/systemd/system/nvidia-cdi-refresh.service", 0o644),
        ("nvidia-cdi-refresh.path", "lib/systemd/system/nvidia-cdi-refresh.path", 0o644),
        ("nvidia-cdi-refresh.env", "etc/nvidia-container-toolkit/nvidia-cdi-refresh.env", 0o644),
    ),
    "nvidia-container-toolkit": (
        ("nvidia-container-runtime-hook.sh", "usr/bin/nvidia-container-runtime-hook", 0o755),
    ),
    "libnvidia-container-tools": (
        ("nvidia-container-cli.sh", "usr/bin/nvidia-container-cli", 0o755),
    ),
}
CONFFILES = {
    "nvidia-container-toolkit-base": ("/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env",),
}
# Maintainer scripts and triggers (standin_bin/<prefix>.<script>), with NVIDIA's effects.
SCRIPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nvidia-container-toolkit-base": ("toolkit-base", ("postinst", "prerm", "postrm")),
    "nvidia-container-toolkit": ("toolkit", ("postinst", "postrm")),
    "libnvidia-container1": ("libnvidia-container1", ("triggers",)),
}
# libnvidia-container1's shared objects, built from LIBRARY_SOURCE where the host's
# compiler targets the package's architecture (amd64 here); other architectures get none.
LIBRARIES = ("libnvidia-container", "libnvidia-container-go")
LIBRARY_SOURCE = "libnvidia-container.c"
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
HOST_ARCH = "amd64"


@dataclass(frozen=True)
class StandinPackage:
    name: str
    version: str
    architecture: str
    filename: str  # relative to the flat directory, "./name_version_arch.deb"
    size: int
    sha256: str


@dataclass(frozen=True)
class StandinRepo:
    root: Path  # dest: holds stable/deb/<arch>/
    arch: str
    key: TestKey
    packages: tuple[StandinPackage, ...]

    @property
    def flat_dir(self) -> Path:
        return self.root / "stable" / "deb" / self.arch

    def flat_url(self, base_url: str) -> str:
        """The flat source URL when ``root`` is served at ``base_url``."""
        return f"{base_url.rstrip('/')}/stable/deb/{self.arch}"

    def versions_of(self, name: str) -> list[str]:
        return [p.version for p in self.packages if p.name == name]


def fixture_packages(arch: str = "amd64") -> Path:
    return nvidia_fixtures.required_dir() / "stable" / "deb" / arch / "Packages"


def read_stanzas(path: Path) -> list[Deb822]:
    with path.open(encoding="utf-8") as handle:
        from debian.deb822 import Deb822

        return list(Deb822.iter_paragraphs(handle))


def newest_toolkit(stanzas: Iterable[Deb822]) -> str:
    versions = [s["Version"] for s in stanzas if s["Package"] == "nvidia-container-toolkit"]
    return str(max(versions, key=version_key))


def select(stanzas: Sequence[Deb822], versions: Iterable[str]) -> list[Deb822]:
    """The stanzas of the chosen versions, plus the ``Architecture: all`` meta packages."""
    wanted = set(versions)
    return [s for s in stanzas if s["Version"] in wanted or s["Architecture"] == "all"]


def description(stanza: Deb822) -> str:
    summary = stanza["Description"].splitlines()[0]
    return (
        f"{summary} (stand-in built for tests)\n"
        " Stand-in built by gpubundle's test suite, not NVIDIA's package: same name,\n"
        " version and dependencies as NVIDIA's; its programs are test doubles."
    )


def control_fields(stanza: Deb822, installed_kib: int) -> list[tuple[str, str]]:
    """DEBIAN/control: the real stanza's fields in their order; the build sets some values."""
    own = {"Maintainer": MAINTAINER, "Installed-Size": str(installed_kib)}
    fields = [
        (str(k), own.get(k, str(v))) for k, v in stanza.items() if k in own or k not in _BUILT
    ]
    return [*fields, ("Description", description(stanza))]


def index_fields(control: list[tuple[str, str]], deb: Path) -> list[tuple[str, str]]:
    """The Packages stanza: control fields, then Filename, Size and hashes before Description."""
    data = deb.read_bytes()
    built = [("Filename", f"./{deb.name}"), ("Size", str(len(data)))]
    for field, algo in zip(HASHES, ("md5", "sha1", "sha256", "sha512"), strict=True):
        built.append((field, hashlib.new(algo, data).hexdigest()))
    return [*control[:-1], *built, control[-1]]


def render(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields)


def release_text(arch: str, flat_dir: Path) -> str:
    """Release fields as NVIDIA publishes them (no Suite, no Valid-Until), SHA512 only."""
    lines = [
        f"Architectures: {arch}",
        "Codename: stable",
        "Components: main",
        f"Date: {formatdate(SOURCE_DATE_EPOCH, usegmt=True)}",
        "Description: stand-in of NVIDIA's container toolkit repository, built for tests",
        "Label: gpubundle tests",
        "Origin: gpubundle-standin",
        "Version: 1.0",
        "SHA512:",
    ]
    for name in ("Packages", "Packages.xz"):
        data = (flat_dir / name).read_bytes()
        lines.append(f" {hashlib.sha512(data).hexdigest()} {len(data):>16} {name}")
    return "\n".join(lines) + "\n"


def build_library(dest: Path, soname: str, cache: Path) -> None:
    """A real shared object with ``soname`` (no build id: the same bytes every time),
    compiled once per ``cache`` directory: every version has the same sonames."""
    built = cache / soname
    if not built.exists():
        cache.mkdir(exist_ok=True)
        source = STANDIN_BIN / LIBRARY_SOURCE
        run(["gcc", "-shared", "-fPIC", "-nostdlib", "-O2", "-Wl,--build-id=none",
             f"-Wl,-soname,{soname}", "-o", built, source])  # fmt: skip
    shutil.copyfile(built, dest)


def stage_libraries(tree: Path, arch: str, upstream: str) -> None:
    """libnvidia-container1's files: ``<lib>.so.<version>`` and its ``.so.1`` link."""
    if arch != HOST_ARCH:
        return
    libdir = tree / "usr/lib" / TRIPLETS[arch]
    libdir.mkdir(parents=True)
    for lib in LIBRARIES:
        real = libdir / f"{lib}.so.{upstream}"
        build_library(real, f"{lib}.so.1", tree.parent / ".libraries")
        real.chmod(0o644)
        (libdir / f"{lib}.so.1").symlink_to(real.name)


def stage_tree(tree: Path, name: str, version: str, arch: str) -> int:
    """Lay out a package's files under ``tree``; returns its installed size in KiB."""
    upstream = version.split("-")[0]
    doc = tree / "usr/share/doc" / name / "README.stand-in"
    doc.parent.mkdir(parents=True)
    doc.write_text(f"{name} {version}: stand-in built for gpubundle's tests, not NVIDIA's.\n")
    for source, target, mode in PAYLOAD.get(name, ()):
        dest = tree / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text((STANDIN_BIN / source).read_text().replace("@VERSION@", upstream))
        dest.chmod(mode)
    if name == "libnvidia-container1":
        stage_libraries(tree, arch, upstream)
    size = sum(p.lstat().st_size for p in tree.rglob("*") if not p.is_dir())
    return 1 + (size + 1023) // 1024


def stage_control(tree: Path, name: str, control: list[tuple[str, str]]) -> None:
    """DEBIAN/: control, conffiles, and the maintainer scripts with NVIDIA's effects."""
    debian = tree / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(render(control))
    if name in CONFFILES:
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in CONFFILES[name]))
    prefix, scripts = SCRIPTS.get(name, ("", ()))
    for script in scripts:
        dest = debian / script
        shutil.copyfile(STANDIN_BIN / f"{prefix}.{script}", dest)
        dest.chmod(0o644 if script == "triggers" else 0o755)


def build_deb(stanza: Deb822, out_dir: Path, work: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Build one stand-in .deb into ``out_dir``; returns it and its control fields."""
    name, version, arch = stanza["Package"], stanza["Version"], stanza["Architecture"]
    tree = work / f"{name}_{version}_{arch}"
    kib = stage_tree(tree, name, version, arch)
    control = control_fields(stanza, kib)
    stage_control(tree, name, control)
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)
    deb = out_dir / f"{tree.name}.deb"
    env = {"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)}
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", tree, deb], env=env)
    return deb, control


def sign_inrelease(release: str, key: TestKey, out: Path) -> None:
    argv: list[str | os.PathLike[str]] = ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
            "--local-user", key.fingerprint, "--digest-algo", "SHA512",
            "--clearsign", "--output", out]  # fmt: skip
    run(argv, env={"GNUPGHOME": str(key.gnupghome)}, input_bytes=release.encode())


def build_standin_repo(
    dest: Path, key: TestKey, *, arch: str = "amd64", versions: Sequence[str] | None = None
) -> StandinRepo:
    """Build the stand-in repository under ``dest`` (replacing ``dest/stable``)."""
    stanzas = read_stanzas(fixture_packages(arch))
    wanted = {*(versions or DEFAULT_VERSIONS), newest_toolkit(stanzas)}
    chosen = stanzas if ALL in wanted else select(stanzas, wanted)
    flat_dir = dest / "stable" / "deb" / arch
    shutil.rmtree(dest / "stable", ignore_errors=True)
    flat_dir.mkdir(parents=True)
    index: list[str] = []
    packages: list[StandinPackage] = []
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        for stanza in chosen:
            deb, control = build_deb(stanza, flat_dir, Path(tmp))
            fields = index_fields(control, deb)
            index.append(render(fields))
            packages.append(StandinPackage(stanza["Package"], stanza["Version"],
                                           stanza["Architecture"], f"./{deb.name}",
                                           deb.stat().st_size, dict(fields)["SHA256"]))  # fmt: skip
    text = "\n".join(index)
    (flat_dir / "Packages").write_text(text)
    (flat_dir / "Packages.xz").write_bytes(lzma.compress(text.encode(), preset=6))
    sign_inrelease(release_text(arch, flat_dir), key, flat_dir / "InRelease")
    return StandinRepo(dest, arch, key, tuple(packages))
