"""A one-layer image as a ``docker load`` archive, written byte for byte the same every time.

The archive holds both forms Docker reads: ``manifest.json`` (the ``docker save`` form
every Docker loads) and the OCI image layout (``oci-layout``, ``index.json``, the
manifest blob) that Docker 25 and later also write. Blobs live under
``blobs/sha256/``; the layer is an uncompressed tar, so its digest is also its diff_id.

Determinism: entries are sorted by path, every owner is uid/gid 0 with no names, every
mtime is ``source_date_epoch``, and JSON is written with sorted keys and no spaces.
The image ID is the sha256 of the config, so equal inputs give an equal image ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from bundler.images import parse_ref
from installer.errors import GpubundleError

EntryKind = Literal["file", "dir", "symlink"]

# Debian architecture -> (GOARCH as image configs name it, variant).
DOCKER_ARCH = {
    "amd64": ("amd64", ""),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "i386": ("386", ""),
    "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""),
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Entry:
    """One filesystem object of the layer. ``path`` is relative: ``usr/bin/sh``, no ``./``."""

    path: str
    kind: EntryKind
    mode: int  # permission bits, setuid/setgid/sticky included
    data: bytes = b""  # file contents
    target: str = ""  # symlink target, as written


@dataclass(frozen=True)
class ImageSpec:
    """What goes into the image config besides the layer."""

    tag: str  # e.g. "gpubundle/verify:ubuntu22.04-amd64"
    arch: str  # Debian architecture name, mapped through DOCKER_ARCH
    env: tuple[str, ...]
    cmd: tuple[str, ...]
    labels: Mapping[str, str]
    created_by: str  # the one history line


@dataclass(frozen=True)
class WrittenImage:
    image_id: str  # "sha256:…" of the config, what `docker images --no-trunc` shows
    layer_digest: str  # "sha256:…" of the uncompressed layer tar (the diff_id)
    layer_size: int
    archive_size: int


def _dump(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tarinfo(
    name: str, kind: EntryKind, mode: int, size: int, target: str, mtime: int
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    info.mode, info.size, info.linkname, info.mtime = mode & 0o7777, size, target, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def layer_tar(entries: Iterable[Entry], mtime: int) -> bytes:
    """The layer: every entry in path order, parents before children, owned by root."""
    ordered = sorted(entries, key=lambda e: e.path.split("/"))
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths) or any(not p or p.startswith(("/", "./")) for p in paths):
        raise ValueError("layer entries need unique relative paths")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in ordered:
            size = len(e.data) if e.kind == "file" else 0
            info = _tarinfo(e.path, e.kind, e.mode, size, e.target, mtime)
            tar.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return buffer.getvalue()


def entries_from_dir(root: Path) -> list[Entry]:
    """A rootfs directory as entries (modes kept, owners and times dropped)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel, st = path.relative_to(root).as_posix(), path.lstat()
            if path.is_symlink():
                entries.append(Entry(rel, "symlink", 0o777, target=os.readlink(path)))
            elif path.is_dir():
                entries.append(Entry(rel, "dir", stat.S_IMODE(st.st_mode)))
            elif path.is_file():
                entries.append(Entry(rel, "file", stat.S_IMODE(st.st_mode), path.read_bytes()))
            else:
                raise GpubundleError(
                    f"{path} is neither a file, a directory nor a symlink",
                    hint="an image layer built here holds only those; remove it from the root",
                )
    return entries


def image_config(spec: ImageSpec, diff_id: str, created: str) -> dict[str, Any]:
    try:
        goarch, variant = DOCKER_ARCH[spec.arch]
    except KeyError:
        raise GpubundleError(
            f"no container image architecture is known for {spec.arch}",
            hint=f"build for one of: {', '.join(sorted(DOCKER_ARCH))}",
        ) from None
    config: dict[str, Any] = {
        "architecture": goarch,
        "os": "linux",
        "created": created,
        "config": {
            "Env": list(spec.env),
            "Cmd": list(spec.cmd),
            "Labels": dict(spec.labels),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": spec.created_by}],
    }
    if variant:
        config["variant"] = variant
    return config


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _sha256(data), "size": len(data), **extra}


def _blob(data: bytes) -> str:
    return "blobs/sha256/" + _sha256(data).removeprefix("sha256:")


def archive_members(spec: ImageSpec, layer: bytes, source_date_epoch: int) -> dict[str, bytes]:
    """Every file of the archive by name (pure): blobs, manifest.json, index.json, oci-layout."""
    created = datetime.fromtimestamp(source_date_epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = _dump(image_config(spec, _sha256(layer), created))
    manifest = _dump(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(OCI_LAYER, layer)],
        }
    )
    ref = parse_ref(spec.tag)
    if ref.digest:
        raise GpubundleError(
            f"image tag {spec.tag!r} names a digest",
            hint="tag the image NAME:TAG, without @sha256:",
        )
    annotations = {
        "io.containerd.image.name": ref.canonical,
        "org.opencontainers.image.ref.name": ref.tag,
    }
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [_descriptor(OCI_MANIFEST, manifest, annotations=annotations)],
    }
    legacy = [{"Config": _blob(config), "RepoTags": [ref.local], "Layers": [_blob(layer)]}]
    return {
        _blob(config): config,
        _blob(layer): layer,
        _blob(manifest): manifest,
        "index.json": _dump(index),
        "manifest.json": _dump(legacy),
        "oci-layout": _dump({"imageLayoutVersion": "1.0.0"}),
    }


def write_archive(members: Mapping[str, bytes], output: Path, mtime: int) -> None:
    """The members as a tar at ``output``, sorted, via a temporary file renamed into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    dirs = sorted(
        {"/".join(name.split("/")[:i]) for name in members for i in range(1, name.count("/") + 1)}
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in dirs:
                tar.addfile(_tarinfo(name, "dir", 0o755, 0, "", mtime))
            for name in sorted(members):
                data = members[name]
                tar.addfile(_tarinfo(name, "file", 0o644, len(data), "", mtime), io.BytesIO(data))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the unfinished file only
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(
    entries: Sequence[Entry], spec: ImageSpec, output: Path, source_date_epoch: int
) -> WrittenImage:
    """Write the one-layer image of ``entries`` as a ``docker load`` archive at ``output``."""
    layer = layer_tar(entries, source_date_epoch)
    members = archive_members(spec, layer, source_date_epoch)
    write_archive(members, output, source_date_epoch)
    legacy = json.loads(members["manifest.json"])[0]
    image_id = "sha256:" + str(legacy["Config"]).rsplit("/", 1)[-1]
    return WrittenImage(image_id, _sha256(layer), len(layer), output.stat().st_size)
