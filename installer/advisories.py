"""Known vulnerabilities of the NVIDIA Container Toolkit: the table, and which affect a version.

The table is data (``installer/security/nvidia-container-toolkit.json``), shipped inside
the installer zipapp so the air-gapped host has the one its bundle was built with.
Every entry comes from NVIDIA's CVE record: the newest affected version
(``last_affected``), the first release after it (``fixed``), severity and CVSS score,
NVIDIA's bulletin. A package version is affected when its upstream part (no epoch, no
Debian revision) sorts at or before ``last_affected`` by dpkg's rules, so ``1.16.1-1`` and
``1.17.0~rc.1-1`` are affected by an issue fixed after 1.16.1. Pure, apart from
``load_table`` reading the packaged file.
"""

from __future__ import annotations

import json
import pkgutil
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from installer import debversion
from installer.errors import GpubundleError

TABLE_RESOURCE = "security/nvidia-container-toolkit.json"
TABLE_FORMAT = 1
SEVERITIES = ("critical", "high", "medium", "low")
BLOCKING = ("critical", "high")  # what build refuses without --allow-vulnerable
_CVE = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True)
class Advisory:
    id: str  # "CVE-2024-0132"
    severity: str  # one of SEVERITIES
    cvss: float
    summary: str
    last_affected: str  # newest affected upstream version
    fixed: str  # first release after it
    bulletin: str  # NVIDIA's security bulletin
    record: str  # the CVE record

    @property
    def blocking(self) -> bool:
        return self.severity in BLOCKING


@dataclass(frozen=True)
class AdvisoryTable:
    package: str
    date: str  # YYYY-MM-DD: the table is as current as this
    advisories: tuple[Advisory, ...]

    def affecting(self, version: str) -> tuple[Advisory, ...]:
        """The advisories that affect package ``version`` (a Debian version), by id."""
        upstream = upstream_version(version)
        return tuple(
            a for a in self.advisories if debversion.compare(upstream, a.last_affected) <= 0
        )


def upstream_version(version: str) -> str:
    """``1.16.1`` of ``1:1.16.1-1``: what NVIDIA's bulletins name."""
    rest = version.split(":", 1)[1] if ":" in version else version
    upstream, sep, _revision = rest.rpartition("-")
    return upstream if sep else rest


def blocking(advisories: Iterable[Advisory]) -> tuple[Advisory, ...]:
    return tuple(a for a in advisories if a.blocking)


def fixed_in(advisories: Sequence[Advisory]) -> str:
    """The oldest version that none of ``advisories`` affects ("" for none)."""
    versions = [a.fixed for a in advisories]
    return max(versions, key=debversion.version_key) if versions else ""


def describe(advisories: Sequence[Advisory]) -> str:
    """``CVE-2024-0132 (critical), CVE-2024-0133 (medium)``."""
    return ", ".join(f"{a.id} ({a.severity})" for a in advisories)


def _field(obj: Any, key: str, kind: type, path: str, errors: list[str]) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        errors.append(f"{path}.{key}: expected {kind.__name__}")
        return kind()
    return value


def _version(obj: Any, key: str, path: str, errors: list[str]) -> str:
    value: str = _field(obj, key, str, path, errors)
    try:
        debversion.version_key(value)
    except ValueError:
        errors.append(f"{path}.{key}: {value!r} is not a version")
    return value


def _advisory(obj: Any, path: str, errors: list[str]) -> Advisory:
    advisory = Advisory(
        id=_field(obj, "id", str, path, errors),
        severity=_field(obj, "severity", str, path, errors),
        cvss=_field(obj, "cvss", float, path, errors),
        summary=_field(obj, "summary", str, path, errors),
        last_affected=_version(obj, "last_affected", path, errors),
        fixed=_version(obj, "fixed", path, errors),
        bulletin=_field(obj, "bulletin", str, path, errors),
        record=_field(obj, "record", str, path, errors),
    )
    if advisory.id and not _CVE.match(advisory.id):
        errors.append(f"{path}.id: {advisory.id!r} is not a CVE id")
    if advisory.severity and advisory.severity not in SEVERITIES:
        errors.append(f"{path}.severity: {advisory.severity!r} is not one of {SEVERITIES}")
    if not 0.0 <= advisory.cvss <= 10.0:
        errors.append(f"{path}.cvss: {advisory.cvss} is outside 0-10")
    for key in ("bulletin", "record"):
        if not getattr(advisory, key).startswith("https://"):
            errors.append(f"{path}.{key}: not an https URL")
    if errors:
        return advisory
    if debversion.compare(advisory.fixed, advisory.last_affected) <= 0:
        errors.append(f"{path}.fixed: {advisory.fixed} is not after {advisory.last_affected}")
    return advisory


def parse_table(raw: bytes) -> AdvisoryTable:
    """The table from JSON bytes; a GpubundleError names every bad field by path."""
    errors: list[str] = []
    try:
        data = json.loads(raw)
    except ValueError as exc:
        data = None
        errors.append(f"$: not JSON: {exc}")
    if data is not None:
        fmt = _field(data, "format", int, "$", errors)
        if fmt and fmt != TABLE_FORMAT:
            errors.append(f"$.format: {fmt} is not {TABLE_FORMAT}")
        date = _field(data, "date", str, "$", errors)
        if date and not _DATE.match(date):
            errors.append("$.date: not YYYY-MM-DD")
        items = _field(data, "advisories", list, "$", errors)
        advisories = tuple(_advisory(a, f"$.advisories[{i}]", errors) for i, a in enumerate(items))
        ids = [a.id for a in advisories]
        if len(set(ids)) != len(ids):
            errors.append("$.advisories: an id is listed more than once")
        table = AdvisoryTable(_field(data, "package", str, "$", errors), date, advisories)
    if errors:
        raise GpubundleError(
            "the table of known toolkit vulnerabilities is malformed",
            hint=f"fix installer/{TABLE_RESOURCE} (see docs/lifecycle.md) or reinstall gpubundle",
            details=errors,
        )
    return table


def load_table() -> AdvisoryTable:
    """The table shipped with this gpubundle (inside the zipapp on the host)."""
    raw = pkgutil.get_data("installer", TABLE_RESOURCE)
    if raw is None:
        raise GpubundleError(
            f"installer/{TABLE_RESOURCE} is missing",
            hint="use the gpubundle-installer.pyz written by gpubundle build, or reinstall",
        )
    return parse_table(raw)
