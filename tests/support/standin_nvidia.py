"""A stand-in for NVIDIA's flat apt repository, built for tests from the real metadata.

NVIDIA's repository cannot be reached here, so tests get one of the same shape:
``<dest>/stable/deb/<arch>/{Packages, Packages.xz, InRelease, *.deb}``, ``Filename:
./name_version_arch.deb``, an ``InRelease`` with a SHA512 list only and no
``Valid-Until``, signed with a throwaway test key. Package names, versions and
dependency fields are copied from the real ``Packages`` fixture; the payloads are the
stand-in programs in ``standin_bin/``, which say so (``--version``), and every
``Description`` says the package is a stand-in built for tests.
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
ALL = "all"  # versions=[ALL]: every stanza of the fixture (170; about 2 s)
SOURCE_DATE_EPOCH = 1700000000  # fixed mtimes: the same inputs give the same .debs
MAINTAINER = "gpubundle tests <test@gpubundle.invalid>"
HASHES = ("MD5sum", "SHA1", "SHA256", "SHA512")
_BUILT = {"Filename", "Size", "Installed-Size", "Maintainer", "Description", "Homepage", *HASHES}

# Stand-in program (in standin_bin/) -> path NVIDIA installs it at, per package.
PAYLOAD: dict[str, tuple[tuple[str, str], ...]] = {
    "nvidia-container-toolkit-base": (
        ("nvidia_ctk.py", "usr/bin/nvidia-ctk"),
        ("nvidia_container_runtime.py", "usr/bin/nvidia-container-runtime"),
        ("config.toml", "etc/nvidia-container-runtime/config.toml"),
    ),
    "nvidia-container-toolkit": (
        ("nvidia-container-runtime-hook.sh", "usr/bin/nvidia-container-runtime-hook"),
    ),
    "libnvidia-container-tools": (("nvidia-container-cli.sh", "usr/bin/nvidia-container-cli"),),
}
CONFFILES = {"nvidia-container-toolkit-base": ("/etc/nvidia-container-runtime/config.toml",)}


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


def stage_tree(tree: Path, name: str, version: str) -> int:
    """Lay out a package's files under ``tree``; returns its installed size in KiB."""
    files: list[tuple[str, str]] = [*PAYLOAD.get(name, ())]
    doc = tree / "usr/share/doc" / name / "README.stand-in"
    doc.parent.mkdir(parents=True)
    doc.write_text(f"{name} {version}: stand-in built for gpubundle's tests, not NVIDIA's.\n")
    kib = 1
    for source, target in files:
        dest = tree / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = (STANDIN_BIN / source).read_text().replace("@VERSION@", version.split("-")[0])
        dest.write_text(text)
        dest.chmod(0o755 if target.startswith("usr/bin/") else 0o644)
        kib += (len(text) + 1023) // 1024
    return kib


def build_deb(stanza: Deb822, out_dir: Path, work: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Build one stand-in .deb into ``out_dir``; returns it and its control fields."""
    name, version, arch = stanza["Package"], stanza["Version"], stanza["Architecture"]
    tree = work / f"{name}_{version}_{arch}"
    kib = stage_tree(tree, name, version)
    (tree / "DEBIAN").mkdir()
    control = control_fields(stanza, kib)
    (tree / "DEBIAN/control").write_text(render(control))
    if name in CONFFILES:
        (tree / "DEBIAN/conffiles").write_text("".join(f"{c}\n" for c in CONFFILES[name]))
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
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
