"""Target distributions: the manifests/*.json data files, validated, as frozen dataclasses.

A target names its distro, its stock python3 (the installer runs on it when it is 3.8
or newer, else on the python3.X it carries: ``carried_python``), its architectures, suggested
registry images for ``--image`` (the builtin verification image needs none),
and its apt sources with the keys that must sign them.
``--mirror ID=URL`` and ``--key ID=FILE`` are applied with ``apply_overrides``.
The manifests directory is ``$GPUBUNDLE_MANIFESTS``, else the one shipped
inside the ``bundler`` package, else ``manifests/`` of the source checkout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bundler.runtime import runtime_python
from bundler.schemacheck import validate
from installer.errors import GpubundleError
from installer.openpgp import primary_fingerprints

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class KeySpec:
    fingerprints: tuple[str, ...]  # pinned primary fingerprints
    file: Path | None = None  # key material shipped with gpubundle
    url: str = ""  # or fetched at build time, refused unless it holds the fingerprints


@dataclass(frozen=True)
class SourceSpec:
    id: str
    url: str  # may hold "{arch}"
    suite: str  # "/" for a flat repository
    components: tuple[str, ...]
    key: KeySpec
    arch_urls: tuple[tuple[str, str], ...] = ()  # (arch, url) replacing url for that arch

    @property
    def flat(self) -> bool:
        return self.suite == "/"

    def url_for(self, arch: str) -> str:
        """The repository root for ``arch``, without a trailing slash."""
        url = dict(self.arch_urls).get(arch, self.url)
        return url.replace("{arch}", arch).rstrip("/")


@dataclass(frozen=True)
class Target:
    name: str
    distro_id: str
    version: str
    codename: str
    python: str
    arches: tuple[str, ...]
    images: tuple[str, ...]
    sources: tuple[SourceSpec, ...]
    compose: str = ""  # the package --with-compose bundles; "" where the release has none

    @property
    def carried_python(self) -> str:
        """The python3.X the installer carries for hosts without python3 3.8+: the stock
        one, or 3.8 where that is older (bundler/runtime.py)."""
        return runtime_python(self.python)

    def source(self, source_id: str) -> SourceSpec:
        for spec in self.sources:
            if spec.id == source_id:
                return spec
        raise _unknown_source(self, source_id)

    def check_arch(self, arch: str) -> None:
        if arch not in self.arches:
            raise GpubundleError(
                f"{self.name} does not support architecture {arch}",
                hint=f"use one of: {', '.join(self.arches)}",
            )


def find_manifests_dir() -> Path:
    override = os.environ.get("GPUBUNDLE_MANIFESTS")
    if override:
        if not (Path(override) / "schema.json").is_file():
            raise GpubundleError(
                f"GPUBUNDLE_MANIFESTS={override} is not a manifests directory (no schema.json)",
                hint="point it at a copy of gpubundle's manifests/ directory, or unset it",
            )
        return Path(override)
    for candidate in (_PACKAGE_DIR / "manifests", _PACKAGE_DIR.parent / "manifests"):
        if (candidate / "schema.json").is_file():
            return candidate
    raise GpubundleError(
        "the target manifests are not installed",
        hint="reinstall gpubundle, or point GPUBUNDLE_MANIFESTS at a manifests directory",
    )


def list_targets(*, manifests_dir: Path | None = None) -> list[str]:
    directory = manifests_dir or find_manifests_dir()
    return sorted(p.stem for p in directory.glob("*.json") if p.name != "schema.json")


def load_target(name: str, *, manifests_dir: Path | None = None) -> Target:
    """Read and validate ``NAME.json``; errors name the file and every bad field path."""
    directory = manifests_dir or find_manifests_dir()
    path = directory / f"{name}.json"
    if name == "schema" or not path.is_file():
        known = ", ".join(list_targets(manifests_dir=directory)) or "none"
        raise GpubundleError(f"unknown target {name!r}", hint=f"supported targets: {known}")
    try:
        data = json.loads(path.read_text())
        schema = json.loads((directory / "schema.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GpubundleError(f"{path}: cannot read: {exc}", hint=_FIX_HINT) from exc
    errors = validate(data, schema)
    if not errors and data["name"] != name:
        errors.append(f"$.name: {data['name']!r} differs from the file name {name!r}")
    if errors:
        raise GpubundleError(f"{path} is not a valid target manifest", _FIX_HINT, errors)
    return _target(data, directory)


_FIX_HINT = "fix the file (see manifests/schema.json and docs/manifests.md) or reinstall gpubundle"


def _target(data: dict[str, Any], directory: Path) -> Target:
    sources = []
    for item in data["sources"]:
        key = item["key"]
        sources.append(
            SourceSpec(
                id=item["id"],
                url=item["url"],
                suite=item["suite"],
                components=tuple(item["components"]),
                arch_urls=tuple(sorted(item.get("arch_urls", {}).items())),
                key=KeySpec(
                    fingerprints=tuple(key["fingerprints"]),
                    file=directory / key["file"] if "file" in key else None,
                    url=key.get("url", ""),
                ),
            )
        )
    distro = data["distro"]
    return Target(
        name=data["name"],
        distro_id=distro["id"],
        version=distro["version"],
        codename=distro["codename"],
        python=data["python"],
        arches=tuple(data["arches"]),
        images=tuple(data["images"]),
        sources=tuple(sources),
        compose=data.get("compose", ""),
    )


def _unknown_source(target: Target, source_id: str) -> GpubundleError:
    valid = ", ".join(s.id for s in target.sources)
    return GpubundleError(
        f"{target.name} has no source {source_id!r}", hint=f"valid source ids: {valid}"
    )


def apply_overrides(target: Target, mirrors: Mapping[str, str], keys: Mapping[str, Path]) -> Target:
    """``--mirror ID=URL`` replaces a source's URL (all arches); ``--key ID=FILE`` its key.

    With ``--key`` the source is trusted for exactly the primary keys in FILE,
    instead of the pinned key, which is then not fetched: a mirror re-signed by
    the organisation, or a build that must not reach the key's URL.
    """
    for source_id in [*mirrors, *keys]:
        target.source(source_id)  # raises for an unknown id, listing the valid ones
    for source_id, url in mirrors.items():
        if not url.startswith(("http://", "https://")):
            raise GpubundleError(
                f"--mirror {source_id}={url}: not an http:// or https:// URL",
                hint="give the mirror's archive root, e.g. http://mirror.example/ubuntu",
            )
    for source_id, key_path in keys.items():
        if not key_path.is_file():
            raise GpubundleError(
                f"--key {source_id}={key_path}: no such file",
                hint="give the path of an armoured or binary OpenPGP public key file",
            )
    sources = []
    for spec in target.sources:
        if spec.id in mirrors:
            spec = replace(spec, url=mirrors[spec.id].rstrip("/"), arch_urls=())
        if spec.id in keys:
            path = keys[spec.id].resolve()
            fingerprints = primary_fingerprints(path.read_bytes())
            if not fingerprints:
                raise GpubundleError(
                    f"--key {spec.id}={path} holds no OpenPGP public key",
                    hint="export the key with `gpg --export --armor FINGERPRINT > FILE`",
                )
            spec = replace(spec, key=KeySpec(fingerprints=tuple(fingerprints), file=path))
        sources.append(spec)
    return replace(target, sources=tuple(sources))
