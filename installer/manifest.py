"""The bundle manifest: what a bundle holds, as frozen dataclasses read from JSON.

``load_manifest`` validates every field and reports problems by path, so a
corrupt or hand-edited manifest is refused with a message that names the
field, never with a KeyError. The manifest is only parsed after its
signature has been verified.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from installer.errors import VerificationError
from installer.layout import FORMAT_VERSION, IMAGES_DIR

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_ARCHIVE = re.compile(rf"^{IMAGES_DIR}/[a-z0-9][a-z0-9._-]*\.tar$")


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagePin:
    """One .deb: exactly what apt will install, and where it came from."""

    name: str
    version: str
    architecture: str
    size: int
    sha256: str
    filename: str  # path inside the bundle (layout.repo_deb)
    source: str  # source id from the distro manifest, e.g. "nvidia", "ubuntu-main"


@dataclass(frozen=True)
class ImagePin:
    ref: str  # as the user named it, e.g. "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
    digest: str  # repo digest "sha256:…" when known, else the image ID
    image_id: str
    require_cuda: str = ""  # the image's NVIDIA_REQUIRE_CUDA, e.g. "cuda>=12.4"
    archive: str = ""  # the bundle path of the ``docker load`` archive holding it (layout)


@dataclass(frozen=True)
class VulnerabilityPin:
    """A known vulnerability of the bundled toolkit, from the build's advisory table."""

    id: str  # "CVE-2024-0132"
    severity: str  # critical, high, medium, low
    fixed: str  # the toolkit version to move to
    bulletin: str  # NVIDIA's security bulletin


@dataclass(frozen=True)
class SourceRecord:
    id: str
    url: str
    suite: str  # "/" for flat repositories
    components: tuple[str, ...]
    key_fingerprints: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    format: int
    created_by: str
    source_date_epoch: int
    distro: str
    arch: str
    python: str
    toolkit_version: str
    signer_fingerprint: str
    requested: tuple[str, ...]
    sources: tuple[SourceRecord, ...]
    packages: tuple[PackagePin, ...]
    images: tuple[ImagePin, ...]
    files: tuple[FileEntry, ...] = field(default=())
    # The advisory table the build judged the toolkit by (its date; "" before the table
    # existed) and the known vulnerabilities of the bundled toolkit version.
    advisories_date: str = ""
    vulnerabilities: tuple[VulnerabilityPin, ...] = field(default=())

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, fixed separators, trailing newline."""
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()

    def file_map(self) -> dict[str, FileEntry]:
        return {entry.path: entry for entry in self.files}


class _Reader:
    """Pulls typed fields out of decoded JSON, collecting errors by path."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def get(self, obj: Any, key: str, kind: type, path: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            self.errors.append(f"{path}.{key}: missing")
            return kind()
        value = obj[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            self.errors.append(
                f"{path}.{key}: expected {kind.__name__}, got {type(value).__name__}"
            )
            return kind()
        return value

    def sha256(self, obj: Any, key: str, path: str) -> str:
        value: str = self.get(obj, key, str, path)
        if value and not _SHA256.match(value):
            self.errors.append(f"{path}.{key}: not a lowercase hex sha256")
        return value

    def image_archive(self, obj: Any, path: str) -> str:
        value: str = self.get(obj, "archive", str, path)
        if (
            isinstance(obj, dict)
            and isinstance(obj.get("archive"), str)
            and not _IMAGE_ARCHIVE.match(value)
        ):
            self.errors.append(f"{path}.archive: not a tar under {IMAGES_DIR}/")
        return value

    def strings(self, obj: Any, key: str, path: str) -> tuple[str, ...]:
        items = self.get(obj, key, list, path)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.errors.append(f"{path}.{key}[{i}]: expected str")
        return tuple(str(item) for item in items)

    def items(self, obj: Any, key: str, path: str) -> list[tuple[str, Any]]:
        return [
            (f"{path}.{key}[{i}]", item) for i, item in enumerate(self.get(obj, key, list, path))
        ]


def _has(data: Any, key: str) -> bool:
    """Fields added after format 1 was first written: optional, so older bundles still read."""
    return isinstance(data, dict) and key in data


def parse_manifest(raw: bytes) -> Manifest:
    """Decode and validate manifest bytes; raise VerificationError naming every bad field."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(
            f"manifest.json is not valid JSON: {exc}",
            hint="the bundle is damaged; copy it again from the build machine",
        ) from exc
    r = _Reader()
    fmt = r.get(data, "format", int, "$")
    if fmt and fmt != FORMAT_VERSION:
        raise VerificationError(
            f"bundle format {fmt} is not supported by this installer (it reads format {FORMAT_VERSION})",
            hint="use the installer written beside the bundle by the same gpubundle build",
        )
    files = tuple(
        FileEntry(r.get(f, "path", str, p), r.get(f, "size", int, p), r.sha256(f, "sha256", p))
        for p, f in r.items(data, "files", "$")
    )
    packages = tuple(
        PackagePin(
            name=r.get(f, "name", str, p),
            version=r.get(f, "version", str, p),
            architecture=r.get(f, "architecture", str, p),
            size=r.get(f, "size", int, p),
            sha256=r.sha256(f, "sha256", p),
            filename=r.get(f, "filename", str, p),
            source=r.get(f, "source", str, p),
        )
        for p, f in r.items(data, "packages", "$")
    )
    images = tuple(
        ImagePin(
            ref=r.get(f, "ref", str, p),
            digest=r.get(f, "digest", str, p),
            image_id=r.get(f, "image_id", str, p),
            require_cuda=r.get(f, "require_cuda", str, p),
            archive=r.image_archive(f, p),
        )
        for p, f in r.items(data, "images", "$")
    )
    sources = tuple(
        SourceRecord(
            id=r.get(f, "id", str, p),
            url=r.get(f, "url", str, p),
            suite=r.get(f, "suite", str, p),
            components=r.strings(f, "components", p),
            key_fingerprints=r.strings(f, "key_fingerprints", p),
        )
        for p, f in r.items(data, "sources", "$")
    )
    vulnerabilities = tuple(
        VulnerabilityPin(
            id=r.get(f, "id", str, p),
            severity=r.get(f, "severity", str, p),
            fixed=r.get(f, "fixed", str, p),
            bulletin=r.get(f, "bulletin", str, p),
        )
        for p, f in (r.items(data, "vulnerabilities", "$") if _has(data, "vulnerabilities") else [])
    )
    manifest = Manifest(
        format=fmt,
        created_by=r.get(data, "created_by", str, "$"),
        source_date_epoch=r.get(data, "source_date_epoch", int, "$"),
        distro=r.get(data, "distro", str, "$"),
        arch=r.get(data, "arch", str, "$"),
        python=r.get(data, "python", str, "$"),
        toolkit_version=r.get(data, "toolkit_version", str, "$"),
        signer_fingerprint=r.get(data, "signer_fingerprint", str, "$"),
        requested=r.strings(data, "requested", "$"),
        sources=sources,
        packages=packages,
        images=images,
        files=files,
        advisories_date=(
            r.get(data, "advisories_date", str, "$") if _has(data, "advisories_date") else ""
        ),
        vulnerabilities=vulnerabilities,
    )
    paths = [entry.path for entry in files]
    if len(set(paths)) != len(paths):
        r.errors.append("$.files: a path is listed more than once")
    for i, image in enumerate(images):
        if _IMAGE_ARCHIVE.match(image.archive) and image.archive not in paths:
            r.errors.append(f"$.images[{i}].archive: {image.archive} is not in $.files")
    if r.errors:
        raise VerificationError(
            "manifest.json does not match the bundle format",
            hint="the bundle was not written by a compatible gpubundle build; rebuild it",
            details=r.errors,
        )
    return manifest
