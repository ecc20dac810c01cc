"""What changes between two verified bundles: packages added, removed, upgraded or
downgraded (by dpkg's version order), images added, removed or changed (by digest). Pure:
it compares two manifests, for the change ticket a site files before carrying a bundle in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from installer import debversion
from installer.manifest import Manifest

ADDED, REMOVED, UPGRADED, DOWNGRADED, CHANGED = (
    "added",
    "removed",
    "upgraded",
    "downgraded",
    "changed",
)


@dataclass(frozen=True)
class Change:
    kind: str  # ADDED, REMOVED, UPGRADED, DOWNGRADED (packages); CHANGED too (images)
    name: str  # package name or image reference
    old: str  # old version or digest, "" when added
    new: str  # new version or digest, "" when removed


@dataclass(frozen=True)
class BundleDiff:
    old_toolkit: str
    new_toolkit: str
    packages: tuple[Change, ...]  # by name
    images: tuple[Change, ...]  # by reference
    unchanged_packages: int

    @property
    def empty(self) -> bool:
        return not (self.packages or self.images)

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (c.kind, c.name, c.old or "-", c.new or "-") for c in (*self.packages, *self.images)
        ]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.packages:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts()
        return data


def _package_change(name: str, old: str, new: str) -> Change | None:
    if not old:
        return Change(ADDED, name, "", new)
    if not new:
        return Change(REMOVED, name, old, "")
    order = debversion.compare(old, new)
    if order == 0:
        return None
    return Change(UPGRADED if order < 0 else DOWNGRADED, name, old, new)


def diff(old: Manifest, new: Manifest) -> BundleDiff:
    """The changes from ``old`` to ``new`` (a package is one name per architecture)."""
    before = {f"{p.name}:{p.architecture}": p.version for p in old.packages}
    after = {f"{p.name}:{p.architecture}": p.version for p in new.packages}
    packages = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: k.rsplit(":", 1)):
        name = key if old.arch != new.arch else key.rsplit(":", 1)[0]
        change = _package_change(name, before.get(key, ""), after.get(key, ""))
        if change is not None:
            packages.append(change)
    then = {i.ref: i.digest for i in old.images}
    now = {i.ref: i.digest for i in new.images}
    images = []
    for ref in sorted(then.keys() | now.keys()):
        was, is_ = then.get(ref, ""), now.get(ref, "")
        if was == is_:
            continue
        kind = ADDED if not was else REMOVED if not is_ else CHANGED
        images.append(Change(kind, ref, was, is_))
    same = sum(1 for k in before.keys() & after.keys() if before[k] == after[k])
    return BundleDiff(
        old.toolkit_version, new.toolkit_version, tuple(packages), tuple(images), same
    )
