"""Upgrades and rollbacks: the history in the record, the plan's lines, the refusal of an
older bundle without --allow-downgrade, and apt's pins and flag for a downgrade. Pure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from installer import history
from installer.aptlocal import apt_install_argv
from installer.cmd_status import render
from installer.dpkgstate import DpkgFacts, DpkgPackage
from installer.errors import ExitCode, PreflightError
from installer.hostpaths import HostPaths
from installer.installplan import (
    PACKAGES,
    PlanFacts,
    apt_pins,
    build_plan,
    downgrades,
    toolkit_change,
)
from installer.manifest import Manifest
from installer.preflight import Options, check_toolkit, run_preflight
from installer.record import carried_over, record_from_json, salvage, validate
from tests.support.hostfacts import GOOD
from tests.support.manifests import make_manifest
from tests.support.records import base_record

FAMILY = (
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
)
OLD, NEW = "1.17.8-1", "1.20.1-1"
AT_OLD, AT_NEW = dict.fromkeys(FAMILY, OLD), dict.fromkeys(FAMILY, NEW)

HOST = HostPaths.system()


def manifest(version: str) -> Manifest:
    return make_manifest(dict.fromkeys(FAMILY, version), distro="debian12")


def plan_facts(installed: dict[str, str]) -> PlanFacts:
    bundle_dir = Path("/var/lib/gpubundle/bundles") / ("cd" * 32)
    return PlanFacts(
        bundle_dir, False, False, installed, (), HOST, str(HOST.docker_daemon_json), runtime="none"
    )


def entry(change: str, before: dict[str, str], after: dict[str, str]) -> dict[str, object]:
    pending = history.pending_entry(manifest(NEW), "ab" * 32, "0.1.0", before)
    return history.finished_entry({**pending, "change": change}, after, "2026-12-06T00:00:00Z")


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, OLD, "install"),
        (OLD, NEW, "upgrade"),
        (NEW, OLD, "downgrade"),
        (NEW, NEW, "reinstall"),
        ("1:1.0-1", NEW, "downgrade"),  # dpkg's order: the epoch wins
        ("1.17.0~rc.1-1", "1.17.0-1", "upgrade"),
    ],
)
def test_change_kind_follows_dpkgs_order(before: str | None, after: str, kind: str) -> None:
    assert history.change_kind(before, after) == kind


def test_family_is_the_toolkits_own_repository() -> None:
    m = make_manifest({**AT_OLD, "libc6": "2.36-9"})
    m = dataclasses.replace(
        m,
        packages=tuple(
            dataclasses.replace(p, source="debian-main") if p.name == "libc6" else p
            for p in m.packages
        ),
    )
    assert history.family_names(m) == list(FAMILY)


def test_a_finished_run_moves_its_pending_entry_to_the_history() -> None:
    pending = history.pending_entry(manifest(NEW), "ab" * 32, "0.1.0", AT_OLD)
    assert pending["change"] == "upgrade" and pending["before"] == AT_OLD
    earlier = entry("install", {}, AT_OLD)
    record = base_record(history=(earlier,), pending_history=pending)
    done = record.finished("2026-12-06T01:00:00Z", AT_NEW)
    assert done.pending_history is None and done.finished_at == "2026-12-06T01:00:00Z"
    assert done.history[0] == earlier
    assert done.history[1] == {**pending, "after": AT_NEW, "finished_at": "2026-12-06T01:00:00Z"}
    # No entry under way (a finished install run again): the history stays as it is.
    assert base_record(history=(earlier,)).finished("t", AT_OLD).history == (earlier,)


def test_history_round_trips_through_json_and_validates() -> None:
    record = base_record(history=(entry("install", {}, AT_OLD), entry("upgrade", AT_OLD, AT_NEW)))
    data = json.loads(json.dumps(record.as_json()))
    assert data["format"] == 1  # older gpubundles read it: they ignore unknown fields
    assert record_from_json(data) == record


def test_a_record_without_history_is_still_valid() -> None:
    data = base_record().as_json()
    del data["history"], data["pending_history"]
    assert record_from_json(data).history == ()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ({"change": "sidegrade"}, "change: must be one of"),
        ({"before": {"x": 1}}, "before: must be"),
        ({"after": None}, "after: must be"),
        ({"finished_at": None}, "finished_at: must be a string"),
        ({"bundle_sha256": 7}, "bundle_sha256: must be a string"),
    ],
)
def test_a_bad_history_entry_is_named(damage: dict[str, object], words: str) -> None:
    bad = {**entry("install", {}, AT_OLD), **damage}
    assert any(words in p for p in history.entry_problems(bad))
    data = {**base_record().as_json(), "history": [bad]}
    good, problems = validate(data)
    assert "history" not in good
    assert problems == [
        "history: must be a list of history entries (installer/history.py), is a list"
    ]


def test_a_pending_entry_needs_no_after() -> None:
    pending = history.pending_entry(manifest(OLD), "ab" * 32, "0.1.0", {})
    assert history.valid_pending(pending) and history.valid_pending(None)
    assert not history.valid_history([pending])


def test_history_survives_in_the_mirror_and_is_carried_to_the_next_bundle() -> None:
    kept = (entry("install", {}, AT_OLD),)
    full = base_record(history=kept).as_json()
    primary = {k: v for k, v in validate(full)[0].items() if k != "history"}
    record, lost, used = salvage(primary, validate(full)[0], {})
    assert record.history == kept and lost == () and used == ("the mirror",)
    assert carried_over(base_record(history=kept))["history"] == kept


def test_status_shows_the_history_oldest_first() -> None:
    record = base_record(
        finished_at="t",
        history=(
            entry("install", {}, AT_OLD),
            entry("upgrade", AT_OLD, AT_NEW),
            entry("downgrade", AT_NEW, AT_OLD),
        ),
    )
    lines = render(record)
    start = lines.index("history (oldest first):")
    shown = "\n".join(lines[start:])
    assert f"1. 2026-12-06T00:00:00Z install nvidia-container-toolkit none -> {OLD}" in shown
    assert f"2. 2026-12-06T00:00:00Z upgrade nvidia-container-toolkit {OLD} -> {NEW}" in shown
    assert f"3. 2026-12-06T00:00:00Z downgrade nvidia-container-toolkit {NEW} -> {OLD}" in shown
    assert f"libnvidia-container1 {NEW} -> {OLD}" in shown


# --- preflight: an older bundle is refused unless --allow-downgrade ----------------------


def test_an_older_bundle_is_refused_naming_both_versions_and_the_flag() -> None:
    host = dataclasses.replace(GOOD, distro="debian12", toolkit_installed=NEW)
    check = check_toolkit(manifest(OLD), host)
    assert check.status == "fail"
    assert f"installed {NEW} is newer than the bundle's {OLD}" in check.detail
    assert "--allow-downgrade" in check.detail and "--allow-downgrade" in check.hint
    report = run_preflight(manifest(OLD), host, Options(skip_gpu_checks=True))
    with pytest.raises(PreflightError) as err:
        report.raise_if_failed()
    assert err.value.code == ExitCode.PREFLIGHT
    assert "--allow-downgrade" in err.value.hint
    assert any(NEW in d and OLD in d for d in err.value.details)


def test_allow_downgrade_lets_the_toolkit_and_its_family_go_down() -> None:
    packages = {n: DpkgPackage(n, "amd64", NEW, "install", "ok", "installed") for n in FAMILY}
    host = dataclasses.replace(
        GOOD, distro="debian12", toolkit_installed=NEW, dpkg=DpkgFacts(packages=packages)
    )
    refused = run_preflight(manifest(OLD), host, Options(skip_gpu_checks=True))
    assert {c.name for c in refused.failures} == {"toolkit", "toolkit family"}
    allowed = run_preflight(
        manifest(OLD), host, Options(skip_gpu_checks=True, allow_downgrade=True)
    )
    assert allowed.failures == ()
    found = {c.name: c for c in allowed.checks}
    assert found["toolkit"].status == "warn"
    assert found["toolkit"].detail == f"downgrade {NEW} -> {OLD} (--allow-downgrade)"
    assert found["toolkit family"].status == "warn"


def test_a_newer_bundle_is_an_upgrade_without_any_flag() -> None:
    host = dataclasses.replace(GOOD, distro="debian12", toolkit_installed=OLD)
    assert check_toolkit(manifest(NEW), host).status == "ok"
    assert check_toolkit(manifest(NEW), host).detail == f"upgrade {OLD} -> {NEW}"


# --- the plan and apt ---------------------------------------------------------------------


def test_plan_of_an_upgrade_moves_the_whole_family_up() -> None:
    plan = build_plan(manifest(NEW), "cd" * 32, plan_facts(installed=AT_OLD))
    lines = plan.step(PACKAGES).changes
    for name in FAMILY:
        assert f"upgrade {name} {OLD} -> {NEW}" in lines
    assert plan.as_json()["toolkit"] == {"change": "upgrade", "from": OLD, "to": NEW}
    assert apt_pins(manifest(NEW), AT_OLD) == {"nvidia-container-toolkit": NEW}


def test_plan_of_a_downgrade_says_so_and_pins_the_whole_family() -> None:
    plan = build_plan(manifest(OLD), "cd" * 32, plan_facts(installed=AT_NEW))
    lines = plan.step(PACKAGES).changes
    for name in FAMILY:
        assert f"downgrade {name} {NEW} -> {OLD} (--allow-downgrade)" in lines
    assert plan.toolkit == {"change": "downgrade", "from": NEW, "to": OLD}
    assert downgrades(manifest(OLD), AT_NEW) == AT_OLD
    # The ">=" dependencies of 1.17.8 are met by 1.20.1: apt is asked for each version.
    assert apt_pins(manifest(OLD), AT_NEW) == AT_OLD


def test_a_fresh_install_and_a_reinstall() -> None:
    assert toolkit_change(manifest(OLD), {}) == {"change": "install", "from": None, "to": OLD}
    assert toolkit_change(manifest(OLD), AT_OLD)["change"] == "reinstall"


def test_apt_is_told_to_allow_downgrades_only_when_asked() -> None:
    plain = apt_install_argv(Path("/s.list"), AT_OLD)
    down = apt_install_argv(Path("/s.list"), AT_OLD, allow_downgrades=True)
    assert "--allow-downgrades" not in plain
    assert [a for a in down if a != "--allow-downgrades"] == plain
    assert down[-4:] == [f"{n}={OLD}" for n in FAMILY]


def test_a_downgrade_bundle_lacking_part_of_the_family_is_refused() -> None:
    """A 1.17.8-1 bundle built with --target-status of a host at 1.20.1-1 holds no
    libnvidia-container-tools (1.20.1-1 meets 1.17.8-1's ">="): the family would split."""
    partial = make_manifest(
        {"nvidia-container-toolkit": OLD, "nvidia-container-toolkit-base": OLD},
        distro="debian12",
    )
    packages = {n: DpkgPackage(n, "amd64", NEW, "install", "ok", "installed") for n in FAMILY}
    host = dataclasses.replace(
        GOOD, distro="debian12", toolkit_installed=NEW, dpkg=DpkgFacts(packages=packages)
    )
    report = run_preflight(partial, host, Options(skip_gpu_checks=True, allow_downgrade=True))
    (failed,) = report.failures
    assert failed.name == "toolkit family"
    assert f"libnvidia-container-tools {NEW}, libnvidia-container1 {NEW}" in failed.detail
    assert "without --target-status" in failed.hint
