"""Room to write: what an install needs on each filesystem, what the host has, and full disks.

Three parts, kept apart:

- needs (pure): ``install_needs`` turns the signed manifest into bytes AND inodes per
  directory the run writes: the bundle store (/var/lib/gpubundle/bundles: every bundle
  file), the temporary directory (``$TMPDIR`` or /tmp: gpgv's files), /var/lib/dpkg and
  /var/lib/apt (dpkg's database and apt's lists), /var/cache/apt (apt's caches), /usr
  (the packages' installed files) and, when the runtime is Docker and the bundle holds
  images, /var/lib/docker. The manifest pins each .deb's size, not its Installed-Size,
  so /usr is estimated as ``INSTALLED_PER_DEB_BYTE`` times the .deb's bytes (what a
  .deb's xz/zstd payload unpacks to, generously). Each directory is ``HostPaths``'
  (``bundles``, ``dpkg_admin_dir``, ``apt_state_dir``, ``apt_cache_dir``, ``usr_dir``,
  ``docker_data_dir``), so the needs name them under the host's root.
- facts (effects): ``gather_space`` reads ``statvfs`` of each directory (its nearest
  existing ancestor) and the mount point and device holding it, as ``SpaceFact`` data.
- verdicts (pure): ``check_space`` adds up the needs of every directory on one
  filesystem (st_dev), adds a margin (``MARGIN_FRACTION`` plus ``MARGIN_BYTES`` /
  ``MARGIN_INODES``, or the need again where that is smaller) and says, per filesystem, "not enough space on <mount> (<path>):
  need N, have M", or inodes likewise. A filesystem that reports no inode limit
  (``f_files`` 0, e.g. btrfs) is not checked for inodes.

And when a disk fills anyway (another process wrote meanwhile): ``is_no_space`` and
``no_space_error`` turn ENOSPC/EDQUOT into a ``NoSpaceError`` (exit 1) naming the
filesystem: a full disk is never reported as a damaged bundle.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from installer.errors import ExitCode, GpubundleError
from installer.hostpaths import HostPaths
from installer.manifest import Manifest

MARGIN_FRACTION = 0.10
MARGIN_BYTES = 32 * 2**20
MARGIN_INODES = 64
BLOCK = 4096  # files take whole blocks: every file is rounded up to one
TEMP_BYTES = 4 * 2**20  # gpgv's temporary keyring, manifest and signature
TEMP_INODES = 16
INSTALLED_PER_DEB_BYTE = 4  # a .deb's payload unpacked, generously
INODES_PER_PACKAGE = 64  # /usr files of a package, beyond one per 16 KiB installed
DPKG_BYTES_PER_PACKAGE = 256 * 1024  # info/*.list, md5sums, scripts, triggers
DPKG_INODES_PER_PACKAGE = 16
APT_CACHE_BYTES = 16 * 2**20  # pkgcache.bin, srcpkgcache.bin of the local source
IMAGE_UNPACK_FACTOR = 2  # a loaded image: its layers unpacked plus the content store
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(GpubundleError):
    """A filesystem filled up (bytes or inodes) while gpubundle wrote to it."""

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message, hint, tuple(details), ExitCode.FAILURE)


@dataclass(frozen=True)
class Need:
    """Room the run needs under ``path`` and why."""

    path: str
    bytes: int
    inodes: int
    why: str


@dataclass(frozen=True)
class SpaceFact:
    """``statvfs`` of ``path`` (or its nearest existing ancestor), as data."""

    path: str
    mount: str  # the mount point holding it
    device: int  # st_dev: directories on one filesystem share it
    free_bytes: int  # available to root: f_bfree * f_frsize
    free_inodes: int | None  # f_ffree; None: the filesystem has no inode limit


@dataclass(frozen=True)
class SpaceVerdict:
    mount: str
    paths: tuple[str, ...]
    ok: bool
    detail: str
    hint: str = ""


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _blocks(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


# --- needs (pure) ---------------------------------------------------------------------


def store_need(manifest: Manifest, store: Path) -> Need:
    """Every bundle file in ``store``, whole blocks each, one inode per file and directory."""
    dirs = {str(p) for f in manifest.files for p in PurePosixPath(f.path).parents}
    return Need(
        str(store),
        sum(_blocks(f.size) for f in manifest.files) + BLOCK * len(dirs),
        len(manifest.files) + len(dirs) + 1,  # + the staging directory itself
        "the extracted bundle",
    )


def temp_need(temp_dir: str, pylib_bytes: int = 0) -> Need:
    why = "gpgv's temporary files" + (
        " and the installer's compiled modules" if pylib_bytes else ""
    )
    return Need(temp_dir, TEMP_BYTES + pylib_bytes, TEMP_INODES + (64 if pylib_bytes else 0), why)


def install_needs(
    manifest: Manifest,
    *,
    already_extracted: bool,
    installed: Mapping[str, str],
    runtime: str,
    temp_dir: str,
    host: HostPaths,
    dpkg_status_bytes: int = 0,
) -> list[Need]:
    """What an install of ``manifest`` writes where, in ``host``'s directories;
    ``installed`` is {name: version} now."""
    needs = [temp_need(temp_dir)]
    if not already_extracted:
        needs.append(store_need(manifest, host.bundles))
    pending = [p for p in manifest.packages if installed.get(p.name) != p.version]
    if pending:
        debs = sum(p.size for p in pending)
        usr = debs * INSTALLED_PER_DEB_BYTE
        needs += [
            Need(
                str(host.dpkg_admin_dir),
                # status is rewritten beside status-old; each package adds its info files
                3 * dpkg_status_bytes + DPKG_BYTES_PER_PACKAGE * len(pending),
                DPKG_INODES_PER_PACKAGE * len(pending) + 8,
                f"dpkg's database for {len(pending)} package(s)",
            ),
            Need(str(host.apt_state_dir), 2 * 2**20, 8, "apt's lists of the bundle's repository"),
            Need(str(host.apt_cache_dir), APT_CACHE_BYTES, 8, "apt's package caches"),
            Need(
                str(host.usr_dir),
                usr,
                INODES_PER_PACKAGE * len(pending) + usr // (16 * 1024),
                f"{len(pending)} package(s), about {INSTALLED_PER_DEB_BYTE}x their .debs",
            ),
        ]
    if runtime == "docker" and manifest.images:
        sizes = manifest.file_map()
        archives = {i.archive for i in manifest.images if i.archive}
        image_bytes = sum(sizes[a].size for a in archives if a in sizes)
        if image_bytes:
            needs.append(
                Need(
                    str(host.docker_data_dir),
                    IMAGE_UNPACK_FACTOR * image_bytes,
                    image_bytes // 8192 + 64,
                    f"{len(manifest.images)} image(s) loaded into Docker",
                )
            )
    return needs


# --- verdicts (pure) ------------------------------------------------------------------


def with_margin(n: int, fixed: int) -> int:
    """``n`` plus ``MARGIN_FRACTION`` plus ``fixed`` (never more than ``n`` itself: a few
    MiB for gpgv's files do not call for a 32 MiB cushion)."""
    return int(n * (1 + MARGIN_FRACTION)) + min(fixed, n)


def check_space(needs: Sequence[Need], facts: Mapping[str, SpaceFact]) -> list[SpaceVerdict]:
    """One verdict per filesystem the needs fall on, in the order first needed."""
    groups: dict[int, list[Need]] = {}
    for need in needs:
        if need.path in facts:  # else: it could not be examined; the run will tell
            groups.setdefault(facts[need.path].device, []).append(need)
    verdicts = []
    for group in groups.values():
        fact = facts[group[0].path]
        paths = tuple(dict.fromkeys(n.path for n in group))
        where = f"{fact.mount} ({', '.join(paths)})"
        need_bytes = with_margin(sum(n.bytes for n in group), MARGIN_BYTES)
        need_inodes = with_margin(sum(n.inodes for n in group), MARGIN_INODES)
        why = "; ".join(dict.fromkeys(n.why for n in group))
        hint = (
            f"free space on {fact.mount} (or mount a larger filesystem at {paths[0]}), "
            "then run install again"
        )
        if fact.free_bytes < need_bytes:
            detail = (
                f"not enough space on {where}: need {human(need_bytes)}, "
                f"have {human(fact.free_bytes)} (for {why})"
            )
            verdicts.append(SpaceVerdict(fact.mount, paths, False, detail, hint))
        elif fact.free_inodes is not None and fact.free_inodes < need_inodes:
            detail = (
                f"not enough inodes on {where}: need {need_inodes}, "
                f"have {fact.free_inodes} (for {why})"
            )
            inode_hint = (
                f"delete files on {fact.mount} (it is out of inodes), then run install again"
            )
            verdicts.append(SpaceVerdict(fact.mount, paths, False, detail, inode_hint))
        else:
            inodes = "" if fact.free_inodes is None else f", {fact.free_inodes} inodes"
            detail = f"{where}: {human(fact.free_bytes)}{inodes} free, {human(need_bytes)} needed"
            verdicts.append(SpaceVerdict(fact.mount, paths, True, detail))
    return verdicts


# --- facts (effects) ------------------------------------------------------------------


def existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding existing ``path``."""
    path = Path(os.path.realpath(path))
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def space_fact(path: str) -> SpaceFact:
    probe = existing_ancestor(Path(path))
    st = os.statvfs(probe)
    return SpaceFact(
        path=path,
        mount=str(mount_point(probe)),
        device=probe.stat().st_dev,
        free_bytes=st.f_bfree * st.f_frsize,
        free_inodes=st.f_ffree if st.f_files else None,
    )


def gather_space(paths: Iterable[str]) -> dict[str, SpaceFact]:
    """Facts of each of ``paths``; one that cannot be examined (EACCES, EIO) is left out."""
    facts = {}
    for path in dict.fromkeys(paths):
        try:
            facts[path] = space_fact(path)
        except OSError:
            continue
    return facts


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class DiskFacts:
    """What preflight's space check decides on, gathered by ``gather_disk_facts``."""

    space: Mapping[str, SpaceFact]  # of every directory a need may name
    installed: Mapping[str, str]  # the bundle's packages installed now: {name: version}
    temp_dir: str
    dpkg_status_bytes: int
    host: HostPaths  # whose directories the needs name


def space_dirs(host: HostPaths) -> tuple[Path, ...]:
    """Every directory an install may need room in, besides the temporary one."""
    return (
        host.bundles,
        host.dpkg_admin_dir,
        host.apt_state_dir,
        host.apt_cache_dir,
        host.usr_dir,
        host.docker_data_dir,
    )


def gather_disk_facts(
    installed: Mapping[str, str], host: HostPaths, temp_dir: str | None = None
) -> DiskFacts:
    temp = temp_dir or tempfile.gettempdir()
    paths = (temp, *map(str, space_dirs(host)))
    status = file_size(host.dpkg_admin_dir / "status")
    return DiskFacts(gather_space(paths), dict(installed), temp, status, host)


def require_temp_space(temp_dir: str | None = None, pylib_bytes: int = 0) -> None:
    """Room for gpgv's files (and the compiled modules that did not fit) before the bundle
    is verified: exit 4, nothing changed, rather than a failure halfway through."""
    temp = temp_dir or tempfile.gettempdir()
    verdict = check_space([temp_need(temp, pylib_bytes)], gather_space([temp]))[0]
    if not verdict.ok:
        raise GpubundleError(
            f"{verdict.detail}; nothing was changed",
            hint=verdict.hint + " (or point TMPDIR at a directory with room)",
            code=ExitCode.PREFLIGHT,
        )


# --- a disk that fills anyway -----------------------------------------------------------


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def no_space_error(path: Path | str | None, exc: OSError, doing: str = "") -> NoSpaceError:
    """ENOSPC/EDQUOT while writing ``path`` (None: not known), as an error naming the
    filesystem."""
    what = "no space (or no inodes) left" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    if path is None or not os.path.isabs(path):
        return NoSpaceError(
            f"{what} on a filesystem gpubundle writes to" + (f" while {doing}" if doing else ""),
            hint="free space and inodes (df -h; df -i) on /var, /usr and the temporary "
            "directory, then run the same command again",
            details=[f"{exc.strerror or exc}"],
        )
    try:
        mount = str(mount_point(existing_ancestor(Path(path))))
    except OSError:
        mount = "?"
    return NoSpaceError(
        f"{what} on {mount} ({path})" + (f" while {doing}" if doing else ""),
        hint=f"free space (and inodes: df -i {mount}) on {mount}, then run the same command "
        "again; nothing half-written was kept",
        details=[f"{exc.strerror or exc}"],
    )


_TOOL_NO_SPACE = ("No space left on device", "Disk quota exceeded")
_QUOTED_PATH = re.compile(r"['\"‘`](/[^'\"’`]+)['\"’`]")
_BARE_PATH = re.compile(r"(?<![\w.])(/[\w.+@-]+(?:/[\w.+@-]+)*)")


def tool_ran_out_of_space(err: GpubundleError) -> GpubundleError:
    """``err`` of a tool (apt, dpkg) whose output says the disk filled, as a NoSpaceError
    naming the filesystem of the path it quotes; any other error unchanged."""
    if isinstance(err, NoSpaceError):
        return err
    line = next((d for d in err.details if any(m in d for m in _TOOL_NO_SPACE)), None)
    if line is None:
        return err
    quoted = _QUOTED_PATH.search(line) or _BARE_PATH.search(line)
    errno_ = errno.EDQUOT if "quota" in line else errno.ENOSPC
    full = no_space_error(quoted[1] if quoted else None, OSError(errno_, line.strip()), "")
    return NoSpaceError(
        f"{full.message}: {err.message}",
        hint=full.hint.replace(
            "nothing half-written was kept", "apt and dpkg finish what they started when run again"
        ),
        details=err.details,
    )
