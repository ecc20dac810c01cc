"""The install history: one entry per completed install, kept in the install record. Pure.

Installing a newer bundle over an earlier gpubundle install upgrades in place and an
older one (``install --allow-downgrade``) rolls back: either way the host keeps one
record (``installer.record``), and its ``history`` says what each completed install
did. An entry: ``bundle_sha256``, ``toolkit_version``, ``distro``, ``arch``,
``gpubundle_version``, ``finished_at``, ``change`` (``install``, ``upgrade``,
``downgrade`` or ``reinstall``, judged on nvidia-container-toolkit's version before and
after), and the toolkit family's versions ``before`` and ``after`` ({name: version};
a package absent is left out).

A run writes its entry ahead (``pending_history`` in the record: the family as the run
found it), so a run killed and resumed still reports the versions from before its first
attempt; the finished run moves it to ``history``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from installer import debversion
from installer.manifest import Manifest

TOOLKIT = "nvidia-container-toolkit"
INSTALL, UPGRADE, DOWNGRADE, REINSTALL = "install", "upgrade", "downgrade", "reinstall"
CHANGES = (INSTALL, UPGRADE, DOWNGRADE, REINSTALL)
# NVIDIA's packages of the toolkit, released together at one version: what must go down
# with it (a bundle's family is read from its manifest: ``family_names``).
KNOWN_FAMILY = (
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
)
_STRINGS = ("bundle_sha256", "toolkit_version", "distro", "arch", "gpubundle_version")


def family_names(manifest: Manifest) -> list[str]:
    """The bundled packages from nvidia-container-toolkit's own repository (NVIDIA's):
    the family that moves together, at exact versions."""
    source = next((p.source for p in manifest.packages if p.name == TOOLKIT), None)
    return sorted({p.name for p in manifest.packages if p.source == source})


def change_kind(before: str | None, after: str) -> str:
    """``install`` (none before), ``upgrade``, ``downgrade`` or ``reinstall`` (same version)."""
    if before is None:
        return INSTALL
    order = debversion.compare(before, after)
    return UPGRADE if order < 0 else DOWNGRADE if order > 0 else REINSTALL


def pending_entry(
    manifest: Manifest, sha256: str, gpubundle_version: str, before: Mapping[str, str]
) -> dict[str, Any]:
    """The entry a run writes ahead: what it installs and the family as it found it."""
    return {
        "bundle_sha256": sha256,
        "toolkit_version": manifest.toolkit_version,
        "distro": manifest.distro,
        "arch": manifest.arch,
        "gpubundle_version": gpubundle_version,
        "change": change_kind(before.get(TOOLKIT), manifest.toolkit_version),
        "before": dict(sorted(before.items())),
    }


def finished_entry(
    pending: Mapping[str, Any], after: Mapping[str, str], finished_at: str
) -> dict[str, Any]:
    """The pending entry completed: the family's versions after the run, and when."""
    return {**pending, "after": dict(sorted(after.items())), "finished_at": finished_at}


def _versions(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def entry_problems(entry: Any, *, finished: bool = True) -> list[str]:
    """What is wrong with one entry (empty: nothing); ``finished=False`` for a pending one."""
    if not isinstance(entry, dict):
        return ["not an object"]
    problems = [f"{k}: must be a string" for k in _STRINGS if not isinstance(entry.get(k), str)]
    if entry.get("change") not in CHANGES:
        problems.append(f"change: must be one of {', '.join(CHANGES)}")
    for name in ("before", "after") if finished else ("before",):
        if not _versions(entry.get(name)):
            problems.append(f"{name}: must be an object of name: version strings")
    if finished and not isinstance(entry.get("finished_at"), str):
        problems.append("finished_at: must be a string")
    return problems


def valid_history(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(not entry_problems(e) for e in v)


def valid_pending(v: Any) -> bool:
    return v is None or not entry_problems(v, finished=False)


def _arrow(before: Mapping[str, str], after: Mapping[str, str], name: str) -> str:
    return f"{before.get(name, 'none')} -> {after.get(name, 'none')}"


def lines(history: tuple[dict[str, Any], ...]) -> list[str]:
    """One line per entry for ``status``, oldest first, and the family's moves under it."""
    out = []
    for i, e in enumerate(history, 1):
        before, after = e["before"], e["after"]
        out.append(
            f"  {i}. {e['finished_at']} {e['change']} {TOOLKIT} {_arrow(before, after, TOOLKIT)} "
            f"({e['distro']}/{e['arch']}, bundle {e['bundle_sha256'][:12]})"
        )
        moved = [
            n for n in sorted({*before, *after}) if n != TOOLKIT and before.get(n) != after.get(n)
        ]
        out.extend(f"       {n} {_arrow(before, after, n)}" for n in moved)
    return out
