"""Preflight over dpkg's state: its lock, interrupted work (recovered when it is ours,
refused when it is not), holds and a family that would be half-downgraded."""

from __future__ import annotations

import dataclasses

import pytest

from installer.dpkgstate import DpkgFacts, DpkgPackage, LockHolder, parse_status
from installer.errors import ExitCode, PreflightError
from installer.preflight import Check, Options, recoverable, run_preflight
from tests.support.hostfacts import GOOD
from tests.support.manifests import make_manifest

FAMILY = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)


def pkg(name: str, version: str, status: str = "install ok installed") -> DpkgPackage:
    want, flag, state = status.split()
    return DpkgPackage(name, "amd64", version, want, flag, state)


def dpkg(*packages: DpkgPackage, journal: int = 0, **kw: object) -> DpkgFacts:
    return DpkgFacts(
        packages={p.name: p for p in (pkg("libc6", "2.35-0ubuntu3.8"), *packages)},
        journal=tuple(str(i) for i in range(journal)),
        **kw,  # type: ignore[arg-type]
    )


def checks(facts: DpkgFacts, under_way: bool = False, **manifest: object) -> dict[str, Check]:
    host = dataclasses.replace(GOOD, dpkg=facts, packages_step_under_way=under_way)
    report = run_preflight(make_manifest(**manifest), host, Options(skip_gpu_checks=True))  # type: ignore[arg-type]
    return {c.name: c for c in report.checks}


def test_a_consistent_database_passes() -> None:
    found = checks(dpkg(*(pkg(n, "1.17.8-1") for n in FAMILY)))
    assert [found[n].status for n in ("dpkg lock", "dpkg state", "holds", "toolkit family")] == [
        "ok"
    ] * 4


def test_no_dpkg_database_read_is_a_skip() -> None:
    host = dataclasses.replace(GOOD, dpkg=None)
    report = run_preflight(make_manifest(), host, Options(skip_gpu_checks=True))
    assert {c.name: c.status for c in report.checks}["dpkg state"] == "skip"


def test_a_held_lock_is_refused_naming_its_holder() -> None:
    holder = LockHolder(4242, "apt-get install -y vim")
    check = checks(dpkg(lock_holders=(holder,)))["dpkg lock"]
    assert check.status == "fail"
    assert "pid 4242 (apt-get install -y vim)" in check.detail


def test_a_hold_on_a_package_the_bundle_upgrades_is_refused_with_the_unhold_command() -> None:
    held = pkg("nvidia-container-toolkit-base", "1.16.0-1", "hold ok installed")
    facts = dpkg(pkg("nvidia-container-toolkit", "1.16.0-1"), held)
    check = checks(facts)["holds"]
    assert check.status == "fail"
    assert "nvidia-container-toolkit-base (held at 1.16.0-1, bundle has 1.17.8-1)" in (check.detail)
    assert "apt-mark unhold nvidia-container-toolkit-base" in check.hint
    with pytest.raises(PreflightError) as caught:
        host = dataclasses.replace(GOOD, dpkg=facts)
        run_preflight(make_manifest(), host, Options(skip_gpu_checks=True)).raise_if_failed()
    assert caught.value.code == ExitCode.PREFLIGHT


def test_a_hold_on_a_package_already_at_the_bundles_version_is_fine() -> None:
    held = pkg("nvidia-container-toolkit-base", "1.17.8-1", "hold ok installed")
    assert checks(dpkg(held))["holds"].status == "ok"


def test_a_half_removed_family_newer_than_the_bundle_is_refused_with_both_versions() -> None:
    """Seen in issue #8: dpkg -r nvidia-container-toolkit left base and the libs at 1.18."""
    newer = [pkg(n, "1.18.0-1") for n in FAMILY[1:]]
    check = checks(dpkg(*newer))["toolkit family"]
    assert check.status == "fail"
    detail = check.detail
    assert "nvidia-container-toolkit-base 1.18.0-1 installed, bundle has 1.17.8-1" in detail
    assert "libnvidia-container1 1.18.0-1 installed, bundle has 1.17.8-1" in detail
    assert "toolkit 1.18.0-1" in check.hint and "dpkg --remove" in check.hint


def test_a_newer_toolkit_itself_is_the_toolkit_checks_finding_only() -> None:
    found = checks(dpkg(pkg("nvidia-container-toolkit", "1.18.0-1")))
    assert found["toolkit family"].status == "ok"


@pytest.mark.parametrize(
    "status",
    ["install ok unpacked", "install ok half-configured", "install reinstreq half-installed"],
)
def test_interrupted_work_on_the_bundles_packages_is_recovered(status: str) -> None:
    facts = dpkg(pkg("nvidia-container-toolkit", "1.17.8-1", status), journal=3)
    check = checks(facts)["dpkg state"]
    assert check.status == "warn", check
    assert "dpkg --configure -a" in check.detail
    assert "journal holds 3 entries" in check.detail
    assert recoverable(make_manifest(), dataclasses.replace(GOOD, dpkg=facts))


def test_a_journal_alone_is_recovered() -> None:
    assert checks(dpkg(journal=1))["dpkg state"].status == "warn"


def test_interrupted_work_on_a_foreign_package_is_refused_with_what_to_run() -> None:
    facts = dpkg(pkg("vim", "2:9.0", "install ok half-configured"), journal=1)
    check = checks(facts)["dpkg state"]
    assert check.status == "fail"
    assert "(vim)" in check.detail
    assert "`dpkg --configure -a`" in check.hint
    assert "dpkg -i" not in check.hint


def test_a_foreign_half_installed_package_needs_its_deb_and_the_hint_says_so() -> None:
    facts = dpkg(pkg("vim", "2:9.0", "install reinstreq half-installed"))
    hint = checks(facts)["dpkg state"].hint
    assert "vim must be reinstalled from its .deb (`dpkg -i FILE.deb`)" in hint


def test_foreign_work_is_recovered_when_gpubundles_record_shows_its_packages_step_under_way() -> (
    None
):
    """Triggers our packages activated leave e.g. libc-bin triggers-pending."""
    facts = dpkg(pkg("libc-bin", "2.35", "install ok triggers-pending"))
    assert checks(facts)["dpkg state"].status == "fail"
    assert checks(facts, under_way=True)["dpkg state"].status == "warn"


# dpkg's status after `dpkg -r nvidia-container-toolkit` on a host that had 1.18.0-1 (issue #8),
# plus a hold someone set on a library: both refused from the status file alone.
ISSUE_8_STATUS = """\
Package: nvidia-container-toolkit
Status: deinstall ok config-files
Architecture: amd64
Version: 1.18.0-1

Package: nvidia-container-toolkit-base
Status: install ok installed
Architecture: amd64
Version: 1.18.0-1

Package: libnvidia-container-tools
Status: install ok installed
Architecture: amd64
Version: 1.18.0-1

Package: libnvidia-container1
Status: hold ok installed
Architecture: amd64
Version: 1.18.0-1
"""


def test_preflight_over_a_real_status_file_text() -> None:
    found = checks(DpkgFacts(packages=parse_status(ISSUE_8_STATUS)))
    assert found["toolkit family"].status == "fail"
    assert "nvidia-container-toolkit-base 1.18.0-1 installed, bundle has 1.17.8-1" in (
        found["toolkit family"].detail
    )
    assert found["holds"].status == "fail"
    assert "apt-mark unhold libnvidia-container1" in found["holds"].hint
    assert found["dpkg state"].status == "ok"  # config-files is a finished state
