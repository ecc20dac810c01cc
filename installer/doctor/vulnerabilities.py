"""Known vulnerabilities: the installed nvidia-container-toolkit against the advisory table
shipped with this installer, with the version to move to."""

from __future__ import annotations

from installer import advisories, exposure
from installer.doctor.checks import Finding, ok, skipped, warning
from installer.doctor.toolkit import ToolkitFacts

CHECK_ID = "toolkit.known-vulnerabilities"
TOOLKIT = "nvidia-container-toolkit"


def check_known_vulnerabilities(facts: ToolkitFacts, table: advisories.AdvisoryTable) -> Finding:
    installed = facts.packages.get(TOOLKIT)
    if installed is None:
        return skipped(CHECK_ID, f"{TOOLKIT} is not installed")
    found = exposure.of_version(installed.version, table)
    if not found.vulnerabilities:
        return ok(CHECK_ID, found.summary())
    return warning(
        CHECK_ID,
        found.summary(),
        evidence=found.lines(),
        fix=[
            f"on the connected machine: gpubundle build --toolkit-version {found.fixed}-1 "
            "(or newer; leave it out for the newest) for this host's --distro",
            "carry the bundle and its installer over, then: sudo python3 "
            "gpubundle-installer.pyz install BUNDLE --trust FINGERPRINT",
        ],
    )
