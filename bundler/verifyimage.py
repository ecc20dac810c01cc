"""The GPU verification image, built from the distro's own .debs: no registry needed.

The NVIDIA container runtime mounts the host driver's ``nvidia-smi`` and libraries into
a container when it starts; the image only has to let them run. ``nvidia-smi`` is a
glibc program, so the image holds glibc (``libc6`` and what it depends on) and a
shell (``busybox``, linked against that glibc; ``dash`` would pull in dpkg and perl).

The .debs are read with ``dpkg-deb --fsys-tarfile`` (no unpacking to disk, so modes
survive without root), merged into one tree, and given what dpkg, the usrmerge
layout and libc-bin would have added: ``/bin``, ``/sbin`` and ``/lib*`` as links
into ``/usr``, ``/bin/sh`` and a few applets pointing at busybox, ``/etc/ld.so.conf``
and ``/tmp``. The resolver picks the package set: ``resolve(indices,
VERIFY_IMAGE_ROOTS, arch=...)``.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bundler.ociarchive import Entry, ImageSpec, write_image
from installer import compute_probe
from installer.errors import GpubundleError
from installer.manifest import ImagePin
from installer.runner import run

VERIFY_IMAGE_ROOTS = ("libc6", "busybox")
# The compute probe (installer/compute_probe.py) runs on the target's own interpreter:
# python3.X-minimal and the stdlib package that holds ctypes.
PYTHON_ROOTS = ("python{}-minimal", "libpython{}-stdlib")
PROBE_PATH = "usr/local/bin/gpubundle-compute-probe"
PROBE_LABEL = "io.gpubundle.compute-probe"  # installer.computeproof.PROBE_LABEL
PROBE_SOURCE = Path(compute_probe.__file__)
USR_ALIASES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ALWAYS_ALIASED = ("bin", "sbin", "lib")
SHELL_APPLETS = (
    "sh", "cat", "cp", "echo", "env", "grep", "head", "id", "ln", "ls", "mkdir",
    "mv", "ps", "rm", "sleep", "tail", "test", "true", "false", "uname", "wc",
)  # fmt: skip
GLIBC_LOADERS = {
    "amd64": "lib64/ld-linux-x86-64.so.2",
    "arm64": "lib/ld-linux-aarch64.so.1",
    "ppc64el": "lib64/ld64.so.2",
    "s390x": "lib/ld64.so.1",
}
ENV = (
    "PATH=/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
)
CMD = ("nvidia-smi", "-L")
_HINT = "build the image from the packages resolve(indices, VERIFY_IMAGE_ROOTS) picks"

Tree = dict[str, tuple[Entry, str]]  # path -> (entry, the package it came from)


def verify_image_roots(python: str) -> tuple[str, ...]:
    """The image's root packages for a target whose python3 is ``python`` ("3.12")."""
    return VERIFY_IMAGE_ROOTS + tuple(root.format(python) for root in PYTHON_ROOTS)


@dataclass(frozen=True)
class DebInfo:
    package: str
    version: str
    architecture: str


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    image_id: str  # "sha256:…"
    size: int  # bytes of the archive
    packages: tuple[tuple[str, str], ...]  # (name, version), sorted by name

    def pin(self) -> ImagePin:
        """The manifest's record of this image (built here: no repo digest, the ID stands in)."""
        return ImagePin(self.tag, self.image_id, self.image_id)


# --- pure ---------------------------------------------------------------------------


def deb_entries(fsys_tar: bytes, what: str) -> list[Entry]:
    """The data tar of a .deb as entries; hard links become copies of their target."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(fsys_tar), mode="r:") as tar:
        for member in tar:
            path = posixpath.normpath(member.name.removeprefix("./")).strip("/")
            if path in ("", "."):
                continue
            if path == ".." or path.startswith("../"):
                raise GpubundleError(f"{what} holds {member.name}, outside its root", hint=_HINT)
            if member.isdir():
                entries.append(Entry(path, "dir", member.mode))
            elif member.issym():
                entries.append(Entry(path, "symlink", 0o777, target=member.linkname))
            elif member.isfile() or member.islnk():
                stream = tar.extractfile(member)
                data = stream.read() if stream else b""
                entries.append(Entry(path, "file", member.mode, data=data))
            else:
                raise GpubundleError(
                    f"{what} holds {member.name}, a device or fifo",
                    hint=f"an image layer built here holds no such files; {_HINT}",
                )
    return entries


def merge(tree: Tree, entries: Iterable[Entry], package: str) -> None:
    """Add ``entries`` to ``tree``; directories merge, other paths must agree (as dpkg asks)."""
    for entry in entries:
        known = tree.get(entry.path)
        if known is None:
            tree[entry.path] = (entry, package)
        elif known[0].kind == "dir" and entry.kind == "dir":
            continue
        elif known[0] != entry:
            raise GpubundleError(
                f"/{entry.path} differs between the packages {known[1]} and {package}",
                hint=f"dpkg would refuse this set too; {_HINT}",
            )


def usrmerge(tree: Tree) -> Tree:
    """Move /bin, /sbin and /lib* under /usr and leave symlinks, as merged-/usr systems have."""
    merged: Tree = {}
    # Packages built for merged /usr (Ubuntu 24.04's libc6) ship usr/lib64 only; the links
    # come from base-files there.
    present = {path.removeprefix("usr/").split("/")[0] for path in tree}
    aliases = [a for a in USR_ALIASES if a in ALWAYS_ALIASED or a in present]
    for path, (entry, package) in sorted(tree.items()):
        top = path.split("/")[0]
        if top in aliases:
            moved = Entry(f"usr/{path}", entry.kind, entry.mode, entry.data, entry.target)
            merge(merged, [moved], package)
        else:
            merge(merged, [entry], package)
    merge(merged, [Entry("usr", "dir", 0o755)], "gpubundle")
    for alias in aliases:
        merge(merged, [Entry(f"usr/{alias}", "dir", 0o755)], "gpubundle")
        merged[alias] = (Entry(alias, "symlink", 0o777, target=f"usr/{alias}"), "gpubundle")
    return merged


def resolve_path(tree: Mapping[str, tuple[Entry, str]], path: str) -> Entry | None:
    """The entry ``/path`` names after following symlinks as the kernel would, or None."""
    parts, done, hops = path.strip("/").split("/"), "", 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        here = posixpath.dirname(done) if part == ".." else posixpath.join(done, part)
        found = tree.get(here)
        if here and found is None:
            return None
        if found is not None and found[0].kind == "symlink":
            hops += 1
            if hops > 40:
                return None
            target = found[0].target
            base = "" if target.startswith("/") else done
            parts = [*posixpath.join(base, target).strip("/").split("/"), *parts]
            done = ""
            continue
        if found is not None and found[0].kind == "file" and parts:
            return None
        done = here
    return tree[done][0] if done in tree else Entry("", "dir", 0o755)


def add_fixups(tree: Tree) -> None:
    """What maintainer scripts and base-files would add that a container start needs."""
    shell = "busybox" if "usr/bin/busybox" in tree else "dash"
    if f"usr/bin/{shell}" not in tree:
        raise GpubundleError("the packages hold neither busybox nor dash", hint=_HINT)
    links = SHELL_APPLETS if shell == "busybox" else ("sh",)
    for name in links:
        if f"usr/bin/{name}" not in tree:
            tree[f"usr/bin/{name}"] = (
                Entry(f"usr/bin/{name}", "symlink", 0o777, target=shell),
                "gpubundle",
            )
    pythons = sorted(p for p in tree if re.fullmatch(r"usr/bin/python3\.\d+", p))
    if pythons and "usr/bin/python3" not in tree:  # what python3-minimal would add
        tree["usr/bin/python3"] = (
            Entry("usr/bin/python3", "symlink", 0o777, target=pythons[-1].rsplit("/", 1)[1]),
            "gpubundle",
        )
    if pythons:
        probe = Entry(PROBE_PATH, "file", 0o755, data=PROBE_SOURCE.read_bytes())
        tree[PROBE_PATH] = (probe, "gpubundle")
    extras = [
        Entry("etc", "dir", 0o755),
        Entry("tmp", "dir", 0o1777),
        Entry("etc/ld.so.conf", "file", 0o644, data=b"include /etc/ld.so.conf.d/*.conf\n"),
    ]
    for extra in extras:
        tree.setdefault(extra.path, (extra, "gpubundle"))
    for path in list(tree):  # every parent directory, as tar extraction expects
        parts = path.split("/")
        for i in range(1, len(parts)):
            tree.setdefault(
                "/".join(parts[:i]), (Entry("/".join(parts[:i]), "dir", 0o755), "gpubundle")
            )


def check_tree(tree: Tree, arch: str) -> None:
    """Refuse a tree in which the glibc loader or /bin/sh does not resolve to a file."""
    wanted = {"/bin/sh": "a shell"}
    if arch in GLIBC_LOADERS:
        wanted["/" + GLIBC_LOADERS[arch]] = "the glibc loader nvidia-smi needs"
    missing = [f"{path} ({why})" for path, why in wanted.items() if not _is_file(tree, path)]
    if missing:
        raise GpubundleError(
            "the verification image would lack files it needs", hint=_HINT, details=missing
        )


def _is_file(tree: Tree, path: str) -> bool:
    entry = resolve_path(tree, path)
    return entry is not None and entry.kind == "file"


def image_spec(
    tag: str, arch: str, packages: Sequence[tuple[str, str]], probe: bool = False
) -> ImageSpec:
    labels = {
        "io.gpubundle.image": "verification",
        "io.gpubundle.packages": ", ".join(f"{n}={v}" for n, v in packages),
        "org.opencontainers.image.title": "gpubundle GPU verification image",
        "org.opencontainers.image.description": "glibc and a shell; the NVIDIA runtime injects nvidia-smi",
    }
    if probe:  # the installer runs the compute probe only where this label is
        labels[PROBE_LABEL] = "/" + PROBE_PATH
    return ImageSpec(
        tag,
        arch,
        ENV,
        CMD,
        labels,
        "gpubundle verification image from " + labels["io.gpubundle.packages"],
    )


# --- acting -------------------------------------------------------------------------


def deb_info(deb: Path) -> DebInfo:
    argv = [
        "dpkg-deb",
        "--show",
        "--showformat=${Package}\\t${Version}\\t${Architecture}",
        str(deb),
    ]
    fields = run(argv, hint=f"check that {deb} is a .deb").stdout.decode().split("\t")
    return DebInfo(*fields[:3])


def build_verification_image(
    debs: Sequence[Path], output: Path, *, tag: str, arch: str, source_date_epoch: int
) -> ImageInfo:
    """Write the verification image of ``debs`` as a ``docker load`` archive at ``output``."""
    infos = sorted(((deb_info(deb), deb) for deb in debs), key=lambda item: item[0].package)
    wrong = [
        f"{i.package} {i.version} is {i.architecture}"
        for i, _ in infos
        if i.architecture not in (arch, "all")
    ]
    if wrong:
        raise GpubundleError(
            f"packages of another architecture than {arch}", hint=_HINT, details=wrong
        )
    tree: Tree = {}
    for info, deb in infos:
        tar = run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], hint=f"check that {deb} is a .deb"
        ).stdout
        merge(tree, deb_entries(tar, f"{info.package} ({deb})"), info.package)
    tree = usrmerge(tree)
    add_fixups(tree)
    check_tree(tree, arch)
    packages = tuple((i.package, i.version) for i, _ in infos)
    written = write_image(
        [e for e, _ in tree.values()],
        image_spec(tag, arch, packages, probe="usr/bin/python3" in tree),
        output,
        source_date_epoch,
    )
    return ImageInfo(tag, written.image_id, written.archive_size, packages)
