"""Container images for the bundle: validate every reference, pull, pin, save as one archive.

Every reference is checked against its registry before anything is pulled, so
a missing tag fails the build before any download. Images are saved together
in one ``docker save`` archive (``/images/get`` with several names) so layers
they share are stored once; the archive is streamed to disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.console import Console
from installer.errors import GpubundleError
from installer.manifest import ImagePin

DEFAULT_REGISTRY = "docker.io"
_CHUNK = 1024 * 1024
DOCKER_HINT = (
    "start Docker (e.g. `systemctl start docker` or `dockerd &`) and check that this user may "
    "use /var/run/docker.sock, or build without images: --no-images"
)


@dataclass(frozen=True)
class ImageRef:
    """A reference split the way Docker reads it; ``tag`` is "latest" when neither is given."""

    registry: str
    path: str  # repository path inside the registry, e.g. "library/ubuntu"
    tag: str
    digest: str

    @property
    def repository(self) -> str:
        """The repository as Docker names it locally (no docker.io/library/ prefix)."""
        if self.registry == DEFAULT_REGISTRY:
            return self.path.removeprefix("library/")
        return f"{self.registry}/{self.path}"

    @property
    def canonical(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"{self.registry}/{self.path}{suffix}"

    @property
    def local(self) -> str:
        """The name to pull and save by."""
        return (
            f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"
        )


def parse_ref(ref: str) -> ImageRef:
    """Split ``ref`` like Docker does; raises GpubundleError for an unusable reference."""
    bad = GpubundleError(
        f"not a container image reference: {ref!r}",
        hint="use NAME[:TAG] or NAME@sha256:DIGEST, e.g. nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
    )
    if not ref or ref != ref.strip() or any(c.isspace() or c.isupper() for c in ref.split("@")[0]):
        raise bad
    name, _, digest = ref.partition("@")
    if digest and not digest.startswith("sha256:"):
        raise bad
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, remainder = first, rest
    else:
        registry, remainder = DEFAULT_REGISTRY, name
    last = remainder.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
    if not remainder or not all(remainder.split("/")) or (":" in last and not tag):
        raise bad
    if registry == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = f"library/{remainder}"
    return ImageRef(registry, remainder, tag or ("" if digest else "latest"), digest)


def env_value(env: Iterable[str] | None, key: str) -> str:
    """The value of ``key`` in an image config's ``Env`` list ("K=V" strings), else ""."""
    for item in env or ():
        name, sep, value = item.partition("=")
        if sep and name == key:
            return value
    return ""


def repo_digest(repo_digests: Iterable[str], ref: ImageRef) -> str:
    """The ``sha256:…`` digest among an image's RepoDigests that belongs to ``ref``'s repository."""
    for entry in repo_digests:
        name, _, digest = entry.partition("@")
        if name in (ref.repository, f"{ref.registry}/{ref.path}"):
            return digest
    return ""


def pin_from_attrs(ref: str, attrs: dict[str, Any]) -> ImagePin:
    """An ImagePin from ``docker image inspect`` data. ``image_id`` is its ``Id``: the
    config digest in Docker's classic image store, the manifest or index digest in the
    containerd image store (Docker 29's default); only recorded and used as a cache key."""
    parsed = parse_ref(ref)
    image_id = str(attrs.get("Id", ""))
    digest = parsed.digest or repo_digest(attrs.get("RepoDigests") or (), parsed) or image_id
    env = (attrs.get("Config") or {}).get("Env")
    return ImagePin(
        ref=ref,
        digest=digest,
        image_id=image_id,
        require_cuda=env_value(env, "NVIDIA_REQUIRE_CUDA"),
    )


def archive_key(pins: Iterable[ImagePin]) -> str:
    """A cache key for the saved archive of ``pins``: which images under which names."""
    lines = sorted(f"{parse_ref(pin.ref).local} {pin.image_id}" for pin in pins)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def connect() -> Any:
    """A Docker SDK client talking to a running dockerd, or a GpubundleError saying how to get one."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise GpubundleError(
            "the Docker SDK for Python is not installed",
            hint="pip install docker, or build without images: --no-images",
        ) from exc
    from requests import RequestException

    try:
        client = docker.from_env()
        client.ping()
    except (DockerException, RequestException) as exc:
        raise GpubundleError(f"cannot reach the Docker daemon: {exc}", hint=DOCKER_HINT) from exc
    return client


def validate(client: Any, refs: Sequence[str]) -> None:
    """Check that every reference exists in its registry; report all missing ones together."""
    from docker.errors import APIError

    problems = []
    for ref in refs:
        parse_ref(ref)
        try:
            client.api.inspect_distribution(ref)
        except APIError as exc:
            problems.append(f"{ref}: {exc.explanation or exc}")
    if problems:
        raise GpubundleError(
            f"{len(problems)} image reference(s) cannot be found in their registries",
            hint="check each name and tag (and `docker login` for private registries), "
            "or leave images out with --no-images",
            details=problems,
        )


def check_architecture(ref: str, attrs: dict[str, Any], arch: str) -> None:
    """Refuse an image built for another architecture than the bundle's."""
    found = str(attrs.get("Architecture") or "")
    if found and found != arch:
        raise GpubundleError(
            f"image {ref} is for {found}, but the bundle is for {arch}",
            hint=f"use an image published for linux/{arch}, or build with --arch {found}",
        )


def pull(client: Any, refs: Sequence[str], console: Console, arch: str = "amd64") -> list[ImagePin]:
    """Pull each reference for linux/``arch`` and pin it by digest, id and NVIDIA_REQUIRE_CUDA."""
    from docker.errors import APIError

    pins = []
    for ref in refs:
        local = parse_ref(ref).local
        console.info(f"pulling {ref} (linux/{arch})")
        try:
            for event in client.api.pull(local, stream=True, decode=True, platform=f"linux/{arch}"):
                if "error" in event:
                    raise GpubundleError(
                        f"pulling {ref} failed: {event['error']}", hint=DOCKER_HINT
                    )
            attrs = client.api.inspect_image(local)
        except APIError as exc:
            raise GpubundleError(f"pulling {ref} failed: {exc}", hint=DOCKER_HINT) from exc
        check_architecture(ref, attrs, arch)
        pins.append(pin_from_attrs(ref, attrs))
    return pins


def save(client: Any, refs: Sequence[str], dest: Path) -> None:
    """Write one ``docker save`` archive of all ``refs`` to ``dest`` (through ``dest.part``)."""
    from docker.errors import APIError
    from requests import RequestException

    names = sorted({parse_ref(ref).local for ref in refs})
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = client.api.get(
            client.api._url("/images/get"), params={"names": names}, stream=True
        )
        client.api._raise_for_status(response)
        with part.open("wb") as out:
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
    except (APIError, RequestException) as exc:
        part.unlink(missing_ok=True)
        raise GpubundleError(
            f"saving images {', '.join(names)} failed: {exc}", hint=DOCKER_HINT
        ) from exc
    os.replace(part, dest)
