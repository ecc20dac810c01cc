"""The table of known toolkit vulnerabilities: it parses, it is judged by dpkg's version
rules, build refuses a version with a critical or high issue before any network work
(unless --allow-vulnerable), install and doctor say which issues and what to move to."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bundler.buildplan import toolkit_vulnerabilities
from bundler.cmd_build import build
from installer import advisories, exposure
from installer.doctor.toolkit import ConfigFile, PackageState, ToolkitFacts
from installer.doctor.vulnerabilities import CHECK_ID, check_known_vulnerabilities
from installer.errors import ExitCode, GpubundleError
from installer.hostpaths import HostPaths
from installer.manifest import VulnerabilityPin, parse_manifest
from tests.support.manifests import make_manifest

CONFIG = ConfigFile(HostPaths.system().nvidia_runtime_config, False)  # absent
TABLE = Path(advisories.__file__).parent / advisories.TABLE_RESOURCE


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


def ids(found: tuple[advisories.Advisory, ...]) -> list[str]:
    return [a.id for a in found]


def test_the_shipped_table_parses_and_cites_nvidia_for_every_entry() -> None:
    table = advisories.load_table()
    assert table.package == "nvidia-container-toolkit"
    assert len(table.advisories) == len(shipped()["advisories"]) >= 9
    for a in table.advisories:
        assert a.bulletin.startswith("https://nvidia.custhelp.com/app/answers/detail/a_id/")
        assert a.record == f"https://www.cve.org/CVERecord?id={a.id}"
    # The issue's facts: each CVE fixed in the named release.
    fixed = {a.id: a.fixed for a in table.advisories}
    assert fixed["CVE-2024-0132"] == "1.16.2"
    assert fixed["CVE-2025-23359"] == "1.17.4"
    assert fixed["CVE-2025-23266"] == fixed["CVE-2025-23267"] == "1.17.8"


@pytest.mark.parametrize(
    ("version", "affected_by"),
    [
        ("1.16.1-1", ["CVE-2024-0132", "CVE-2024-0133", "CVE-2024-0134", "CVE-2024-0135"]),
        ("1:1.16.1-1", ["CVE-2024-0132"]),  # an epoch is not part of NVIDIA's version
        ("1.16.2-1", ["CVE-2024-0134", "CVE-2024-0135"]),
        ("1.17.0~rc.1-1", ["CVE-2024-0135", "CVE-2025-23359"]),  # ~ sorts before the release
        ("1.17.7-1", ["CVE-2025-23266", "CVE-2025-23267"]),
        ("1.17.7-1ubuntu0.1", ["CVE-2025-23266"]),  # a distro revision fixes nothing here
    ],
)
def test_versions_compare_by_dpkg_rules(version: str, affected_by: list[str]) -> None:
    found = ids(advisories.load_table().affecting(version))
    assert set(affected_by) <= set(found), found
    assert "CVE-2024-0132" not in found or version.split(":")[-1].startswith("1.16.1")


@pytest.mark.parametrize("version", ["1.17.8-1", "1.17.9-1", "1.20.1-1", "1.17.8"])
def test_fixed_versions_have_no_known_issue(version: str) -> None:
    assert advisories.load_table().affecting(version) == ()


def test_the_version_to_move_to_covers_every_issue() -> None:
    table = advisories.load_table()
    assert advisories.fixed_in(table.affecting("1.16.1-1")) == "1.17.8"
    assert advisories.fixed_in(table.affecting("1.17.3-1")) == "1.17.8"
    assert advisories.fixed_in(()) == ""


def broken(**changes: Any) -> bytes:
    data = shipped()
    entry = {**data["advisories"][0], **changes}
    data["advisories"] = [entry, *data["advisories"][1:]]
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (broken(severity="urgent"), "$.advisories[0].severity: 'urgent' is not one of"),
        (broken(fixed="1.16.0"), "$.advisories[0].fixed: 1.16.0 is not after 1.16.1"),
        (broken(last_affected="x:1"), "$.advisories[0].last_affected: 'x:1' is not a version"),
        (broken(id="CVE-2024"), "$.advisories[0].id: 'CVE-2024' is not a CVE id"),
        (broken(bulletin="http://x"), "$.advisories[0].bulletin: not an https URL"),
        (broken(cvss="9"), "$.advisories[0].cvss: expected float"),
        (broken(id="CVE-2024-0133"), "$.advisories: an id is listed more than once"),
        (b"{", "$: not JSON"),
        (json.dumps({**shipped(), "date": "5 Dec"}).encode(), "$.date: not YYYY-MM-DD"),
    ],
)
def test_a_malformed_table_is_refused_by_path(raw: bytes, message: str) -> None:
    with pytest.raises(GpubundleError) as caught:
        advisories.parse_table(raw)
    assert any(message in d for d in caught.value.details), caught.value.details


def test_build_gate_refuses_critical_and_high_unless_allowed() -> None:
    table = advisories.load_table()
    with pytest.raises(GpubundleError) as caught:
        toolkit_vulnerabilities("1.16.1-1", table, allow=False)
    err = caught.value
    assert err.code == ExitCode.USAGE
    assert "CVE-2024-0132" in err.message and "CVE-2024-0133" not in err.message  # medium
    assert "build 1.17.8 or newer" in err.hint and "--allow-vulnerable" in err.hint
    assert any("CVE-2024-0133 (medium" in d for d in err.details)
    pins = toolkit_vulnerabilities("1.16.1-1", table, allow=True)
    assert [p.id for p in pins] == ids(table.affecting("1.16.1-1"))
    assert toolkit_vulnerabilities("1.17.8-1", table, allow=False) == ()
    assert toolkit_vulnerabilities("", table, allow=False) == ()  # newest: judged later


def test_build_refuses_a_vulnerable_version_before_any_network_work(tmp_path: Path) -> None:
    # The unit tier opens no sockets: a refusal after the first fetch would fail otherwise.
    cache = tmp_path / "cache"
    argv = ["--distro", "ubuntu22.04", "--toolkit-version", "1.16.1-1", "--dry-run"]
    result = CliRunner().invoke(build, [*argv, "--json", "--cache-dir", str(cache)])
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert "CVE-2024-0132" in document["message"] and "CVE-2025-23266" in document["message"]
    assert "--allow-vulnerable" in document["hint"]
    assert not cache.exists()


def test_the_manifest_records_the_table_date_and_the_bundled_version_s_issues() -> None:
    pins = (VulnerabilityPin("CVE-2024-0132", "critical", "1.16.2", "https://nvidia.example/1"),)
    manifest = dataclasses.replace(
        make_manifest(), advisories_date="2026-12-05", vulnerabilities=pins
    )
    assert parse_manifest(manifest.to_json()) == manifest
    # A manifest written before the table existed still reads, with nothing recorded.
    older = json.loads(make_manifest().to_json())
    del older["advisories_date"], older["vulnerabilities"]
    again = parse_manifest(json.dumps(older).encode())
    assert again.advisories_date == "" and again.vulnerabilities == ()


def test_install_judges_a_bundle_by_the_newer_table() -> None:
    table = advisories.load_table()
    old = make_manifest({"nvidia-container-toolkit": "1.16.1-1"})
    found = exposure.of_bundle(old, table)  # no table in the bundle: the installer's own
    assert found.fixed == "1.17.8" and found.table_date == table.date
    assert "CVE-2024-0132 (critical)" in found.summary()
    newer = VulnerabilityPin("CVE-2099-0001", "high", "9.9.9", "https://nvidia.example/2")
    later = dataclasses.replace(
        make_manifest(), advisories_date="2099-01-01", vulnerabilities=(newer,)
    )
    found = exposure.of_bundle(later, table)
    assert found.vulnerabilities == (newer,) and found.table_date == "2099-01-01"
    assert exposure.of_bundle(make_manifest(), table).vulnerabilities == ()


def facts(version: str | None) -> ToolkitFacts:
    name = "nvidia-container-toolkit"
    return ToolkitFacts(CONFIG, {name: PackageState(name, version, "ii")} if version else {})


def test_doctor_flags_an_installed_vulnerable_toolkit_with_the_version_to_move_to() -> None:
    table = advisories.load_table()
    finding = check_known_vulnerabilities(facts("1.17.7-1"), table)
    assert (finding.check_id, finding.status) == (CHECK_ID, "warning")
    assert "CVE-2025-23266 (critical)" in finding.summary and "move to 1.17.8" in finding.summary
    assert table.date in finding.summary
    assert any("a_id/5659" in line for line in finding.evidence)
    assert "--toolkit-version 1.17.8-1" in finding.fix[0]
    assert check_known_vulnerabilities(facts("1.17.8-1"), table).status == "ok"
    assert check_known_vulnerabilities(facts(None), table).status == "skipped"
