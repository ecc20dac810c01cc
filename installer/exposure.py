"""Which known vulnerabilities a toolkit version has: the bundled one or the installed one.

Judged by the newer of two advisory tables: the one shipped with this installer and the
one the bundle was built with (its date and findings are in the signed manifest). Every
report names the table's date, since an air-gapped host learns of nothing newer. Pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from installer import advisories, debversion
from installer.manifest import Manifest, VulnerabilityPin


@dataclass(frozen=True)
class Exposure:
    version: str  # the toolkit version judged
    table_date: str  # the advisory table's date
    vulnerabilities: tuple[VulnerabilityPin, ...]

    @property
    def fixed(self) -> str:
        """The oldest version free of every listed vulnerability ("" when none)."""
        versions = [v.fixed for v in self.vulnerabilities]
        return max(versions, key=debversion.version_key) if versions else ""

    @property
    def serious(self) -> tuple[VulnerabilityPin, ...]:
        return tuple(v for v in self.vulnerabilities if v.severity in advisories.BLOCKING)

    def summary(self) -> str:
        if not self.vulnerabilities:
            return (
                f"nvidia-container-toolkit {self.version}: no known vulnerabilities "
                f"(advisory table of {self.table_date})"
            )
        listed = ", ".join(f"{v.id} ({v.severity})" for v in self.vulnerabilities)
        return (
            f"nvidia-container-toolkit {self.version} has known vulnerabilities: {listed}; "
            f"move to {self.fixed} or newer (advisory table of {self.table_date})"
        )

    def lines(self) -> list[str]:
        return [
            f"{v.id} ({v.severity}): fixed in {v.fixed}; {v.bulletin}" for v in self.vulnerabilities
        ]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "fixed": self.fixed}


def pins(found: tuple[advisories.Advisory, ...]) -> tuple[VulnerabilityPin, ...]:
    return tuple(VulnerabilityPin(a.id, a.severity, a.fixed, a.bulletin) for a in found)


def of_version(version: str, table: advisories.AdvisoryTable) -> Exposure:
    return Exposure(version, table.date, pins(table.affecting(version)))


def of_bundle(manifest: Manifest, table: advisories.AdvisoryTable) -> Exposure:
    """The bundled toolkit, by this installer's table unless the bundle's own is newer."""
    if manifest.advisories_date and manifest.advisories_date > table.date:
        return Exposure(
            manifest.toolkit_version, manifest.advisories_date, manifest.vulnerabilities
        )
    return of_version(manifest.toolkit_version, table)
