"""apt as the oracle: the real distro indices (verified), and apt-get -s in a private root.

``distro_index_files(distro)`` downloads (once, cached under .cache/indices/)
each suite's InRelease, checks its signature against the distro's archive
keyring with gpgv, and checks every Packages.xz against the signed hashes
before decompressing it. ``apt_install_set`` runs the real apt-get in
simulation mode over exactly those files and returns the (name, version)
pairs it would install: this machine's apt, or with ``chroot=ROOT`` the apt of a
release's own root (apt 1.6 on Ubuntu 18.04 … apt 3.x on Debian 13 and Ubuntu
26.04), run there with ``chroot`` (any architecture: ``arch`` sets
``APT::Architecture``).
"""

from __future__ import annotations

import fcntl
import lzma
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bundler.http import download, fetch_bytes, make_session
from bundler.index import PackageIndex
from bundler.releasefile import check_file, parse_release
from installer.errors import VerificationError
from installer.openpgp import verify_clearsigned
from installer.runner import run
from tests.conftest import CACHE_DIR
from tests.support import nvidia_fixtures
from tests.support.roots import DISTROS, DistroSpec, archive_keyring, keyring_fingerprints

INDEX_CACHE = CACHE_DIR / "indices"
NVIDIA_URL = "https://nvidia.github.io/libnvidia-container/stable/deb/{arch}"
_INST_LINE = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) ", re.MULTILINE)


@dataclass(frozen=True)
class IndexFile:
    """One uncompressed, verified Packages file and the apt source line it belongs to."""

    source_id: str  # e.g. "jammy-updates/main"
    base_url: str  # what Filename is relative to
    deb_line: str  # the sources.list line that names it
    path: Path

    def load(self, arch: str = "amd64") -> PackageIndex:
        return PackageIndex(self.source_id, self.base_url, self.path.read_bytes(), arch)


def _suite_files(spec: DistroSpec, base: str, suite: str, arch: str) -> list[IndexFile]:
    cache = INDEX_CACHE / spec.name / suite
    cache.mkdir(parents=True, exist_ok=True)
    done = cache / f".verified-{arch}"
    components = spec.components
    # One fetcher per suite at a time: test workers (make test runs two) share the cache.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _fetch_suite(spec, base, suite, arch, cache, done)
    line = f"deb [trusted=yes arch={arch}] {base} {suite} {' '.join(components)}"
    return [
        IndexFile(f"{suite}/{c}", base, line, cache / c / f"binary-{arch}" / "Packages")
        for c in components
    ]


def _fetch_suite(
    spec: DistroSpec, base: str, suite: str, arch: str, cache: Path, done: Path
) -> None:
    """The suite's InRelease verified, and each component's Packages checked and unpacked."""
    components = spec.components
    session = make_session()
    signed = fetch_bytes(session, f"{base}/dists/{suite}/InRelease")
    keyring = archive_keyring(spec)
    result = verify_clearsigned(
        signed, [keyring.read_bytes()], keyring_fingerprints(keyring), f"{suite} InRelease"
    )
    release = parse_release(result.signed_data, f"{suite} InRelease")
    (cache / "InRelease").write_bytes(signed)
    for component in components:
        rel = f"{component}/binary-{arch}/Packages.xz"
        xz = cache / rel
        xz.parent.mkdir(parents=True, exist_ok=True)
        try:  # reuse a file fetched before if it still matches the signed hashes
            check_file(release.files[rel], xz, f"{suite} {rel}")
        except (OSError, VerificationError):
            xz.unlink(missing_ok=True)
            download(session, f"{base}/dists/{suite}/{rel}", xz)
            check_file(release.files[rel], xz, f"{suite} {rel}")
        xz.with_suffix("").write_bytes(lzma.decompress(xz.read_bytes()))
    done.touch()


def distro_index_files(distro: str, arch: str = "amd64") -> list[IndexFile]:
    """Every verified Packages file of the distro's release, updates and security suites."""
    spec = DISTROS[distro]
    return [f for base, suite in spec.suites for f in _suite_files(spec, base, suite, arch)]


def nvidia_index_file(arch: str = "amd64") -> IndexFile:
    """NVIDIA's real flat Packages from the shared fixtures (verified when collected)."""
    path = nvidia_fixtures.required_dir() / "stable" / "deb" / arch / "Packages"
    url = NVIDIA_URL.format(arch=arch)
    return IndexFile("nvidia", url, f"deb [trusted=yes arch={arch}] {url} /", path)


def _apt_options(root: Path, status: Path, arch: str) -> list[str]:
    """apt's settings for a private configuration under ``root`` (as apt sees the path)."""
    settings = {
        "Dir": f"{root}/",
        "Dir::Etc": f"{root}/etc/apt/",
        "Dir::State": f"{root}/state/",
        "Dir::State::status": str(status),
        "Dir::Cache": f"{root}/cache/",
        "Dir::Log": f"{root}/log/",
        "APT::Architecture": arch,
        "APT::Architectures": arch,
        "Debug::NoLocking": "1",
        "APT::Install-Recommends": "0",
        "APT::Install-Suggests": "0",
    }
    return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]


@dataclass(frozen=True)
class AptRoot:
    """A private apt configuration whose lists hold exactly the given index files."""

    root: Path
    options: tuple[str, ...]
    env: dict[str, str]
    prefix: tuple[str, ...] = ()  # ("chroot", ROOT) to run a release's own apt

    def fresh_cache(self) -> None:
        """Drop apt's binary caches so the next command rebuilds them from the lists."""
        for cache in (self.root / "cache").glob("*.bin"):
            cache.unlink()

    def simulate_install(self, roots: Sequence[str]) -> str:
        argv = [*self.prefix, "apt-get", *self.options, "-s", "install", *roots]
        return run(argv, env=self.env).stdout.decode()


def prepare_apt_root(
    files: Sequence[IndexFile],
    root: Path,
    *,
    status: Path | None = None,
    arch: str = "amd64",
    chroot: Path | None = None,
) -> AptRoot:
    """Lay out sources.list, lists and status under ``root`` (an empty directory, inside
    ``chroot`` when given: then the apt that runs is the chroot's own)."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d"):
        (root / sub).mkdir(parents=True)
    for sub in ("state/lists", "cache", "log"):
        (root / sub).mkdir(parents=True)
    lines = list(dict.fromkeys(f.deb_line for f in files))
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    seen = root if chroot is None else Path("/") / root.relative_to(chroot)
    # Read before the root's apt.conf.d, so the root's settings stay out.
    (root / "apt.conf").write_text(f'Dir::Etc::parts "{seen}/etc/apt/apt.conf.d";\n')
    if status is not None:
        shutil.copyfile(status, root / "status")
    else:
        (root / "status").write_text("")
    apt = AptRoot(
        root,
        tuple(_apt_options(seen, seen / "status", arch)),
        {"APT_CONFIG": str(seen / "apt.conf")},
        () if chroot is None else ("chroot", str(chroot)),
    )
    fields = "$(CREATED_BY)|$(SITE)|$(RELEASE)|$(COMPONENT)|$(FILENAME)"
    argv = [*apt.prefix, "apt-get", *apt.options, "indextargets", "--no-release-info"]
    listed = run([*argv, "--format", fields], env=apt.env).stdout.decode()
    _place_lists(files, listed, chroot or Path("/"))
    return apt


def parse_simulation(output: str) -> set[tuple[str, str]]:
    """(name, new version) of every ``Inst`` line of ``apt-get -s`` output."""
    return {(name.split(":")[0], new) for name, _old, new in _INST_LINE.findall(output)}


def apt_install_set(
    files: Sequence[IndexFile],
    roots: Sequence[str],
    *,
    status: Path | None = None,
    arch: str = "amd64",
    chroot: Path | None = None,
) -> set[tuple[str, str]]:
    """What ``apt-get -s install --no-install-recommends ROOTS`` would install, as apt says
    (this machine's apt, or the one inside ``chroot``)."""
    where = None if chroot is None else chroot / "tmp"
    with tempfile.TemporaryDirectory(prefix="aptoracle-", dir=where) as tmp:
        apt = prepare_apt_root(files, Path(tmp), status=status, arch=arch, chroot=chroot)
        return parse_simulation(apt.simulate_install(roots))


def _place_lists(files: Sequence[IndexFile], targets: str, chroot: Path) -> None:
    """Copy each Packages file where apt expects the list for its source and component."""
    wanted: dict[tuple[str, str, str], Path] = {}
    for line in targets.splitlines():
        kind, site, release, component, filename = (line.split("|") + [""] * 5)[:5]
        if kind != "Packages" or "binary-all" in filename:
            continue
        component = "" if component.startswith("$(") else component
        wanted[(site.rstrip("/"), release, component)] = chroot / filename.lstrip("/")
    for f in files:
        suite, _, component = f.source_id.partition("/")
        key = (f.base_url.rstrip("/"), "" if f.source_id == "nvidia" else suite, component)
        target = wanted.get(key)
        if target is None:
            raise AssertionError(f"apt names no list for {f.source_id}: {sorted(wanted)}")
        shutil.copyfile(f.path, target)
