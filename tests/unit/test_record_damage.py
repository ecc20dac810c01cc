"""A damaged install record: validated as data, rebuilt from its mirror and the packages
ledger, and never a reason to call gpubundle's packages pre-existing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from installer.cli import main
from installer.doctor.installrecord import check_record, gather_record
from installer.hostpaths import HostPaths
from installer.record import (
    append_ledger,
    backup_path,
    carried_over,
    damaged_record_error,
    ledger_path,
    original_packages,
    parse_ledger,
    read_ledger,
    read_record,
    save_record,
    validate,
)
from tests.support.records import INSTALLED_FAMILY, installed_record


def as_stored() -> dict[str, object]:
    """The record as JSON decodes it (lists, not tuples)."""
    data: dict[str, object] = json.loads(json.dumps(installed_record().as_json()))
    return data


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "install-record.json"
    save_record(installed_record(), path)
    append_ledger(dict(INSTALLED_FAMILY), ledger_path(path))
    return path


DAMAGES = {
    "truncated": lambda text: text[: len(text) // 2],
    "wrong types": lambda text: json.dumps(
        {**json.loads(text), "packages_installed": ["x"], "steps_completed": "extract"}
    ),
    "missing fields": lambda text: json.dumps(
        {k: v for k, v in json.loads(text).items() if k not in ("packages_before", "arch")}
    ),
    "not an object": lambda text: "[1, 2]",
    "empty": lambda text: "",
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_record_is_rebuilt_whole_from_its_mirror(saved: Path, damage: str) -> None:
    saved.write_text(DAMAGES[damage](saved.read_text()))
    read = read_record(saved, HostPaths(saved.parent, record_file=saved))
    assert read.record == installed_record()
    assert read.damage is not None and read.damage.problems and read.damage.lost == ()
    assert any(str(backup_path(saved)) in u for u in read.damage.used)


def test_problems_name_each_field() -> None:
    data = as_stored() | {"packages_installed": ["x"], "future_field": 1}
    del data["arch"]
    good, problems = validate(data)
    assert problems == [
        "arch: missing",
        "packages_installed: must be an object of name: version strings, is a list",
    ]
    assert "future_field" not in good and good["distro"] == "debian12"


def test_unknown_fields_and_missing_later_fields_are_fine() -> None:
    data = as_stored() | {"added_in_format_1_later": [1]}
    del data["apt_lists"], data["in_progress"]
    assert validate(data)[1] == []


def test_the_unowned_paths_install_made_are_validated_too() -> None:
    made = {"/etc/nvidia-container-runtime": "dir", "/usr/bin/x": "-> /usr/bin/y", "/a": None}
    good, problems = validate(as_stored() | {"unowned_paths_created": made})
    assert problems == [] and good["unowned_paths_created"] == made
    bad = as_stored() | {"unowned_paths_created": {"/etc/x": 1}}
    assert [p.split(":")[0] for p in validate(bad)[1]] == ["unowned_paths_created"]


@pytest.mark.parametrize(
    "change",
    [{"path": 1}, {"backup_path": "/b"}, {"path": "/d", "pending": "yes"}, ["/etc/docker"]],
)
def test_a_runtime_change_of_the_wrong_shape_is_a_problem(change: object) -> None:
    data = as_stored() | {"runtime_change": change}
    assert [p.split(":")[0] for p in validate(data)[1]] == ["runtime_change"]


def test_both_copies_damaged_keeps_readable_fields_and_the_ledger_packages(saved: Path) -> None:
    data = json.loads(saved.read_text())
    data["packages_installed"] = "gone"
    saved.write_text(json.dumps(data))
    backup_path(saved).write_text("{")
    read = read_record(saved, HostPaths(saved.parent, record_file=saved))
    assert read.record is not None and read.damage is not None
    assert read.damage.lost == ("packages_installed",)
    assert read.record.packages_before == {"libc6": "2.36-9"}
    assert read.record.packages_installed == INSTALLED_FAMILY  # the ledger's: gpubundle's own
    assert read.record.steps_completed == installed_record().steps_completed
    error = damaged_record_error(read.damage)
    assert "packages_installed" in error.message
    assert "sh gpubundle-installer.pyz uninstall" in error.hint
    assert "apt-get" not in error.hint


def test_without_packages_before_only_ledger_packages_count_as_gpubundles(saved: Path) -> None:
    saved.write_text("[]")
    backup_path(saved).unlink()
    read = read_record(saved, HostPaths(saved.parent, record_file=saved))
    assert read.record is not None and read.damage is not None
    assert "packages_before" in read.damage.lost and "bundle_sha256" in read.damage.lost
    # libc6 was upgraded, not newly installed: never removed on a guess.
    assert read.record.packages_installed == INSTALLED_FAMILY
    assert read.record.packages_before == {}


def test_a_lost_bundle_sha_hands_every_bundle_store_to_uninstall(saved: Path) -> None:
    store = saved.parent / "bundles" / ("cd" * 32)
    store.mkdir(parents=True)
    saved.write_text("{")
    backup_path(saved).unlink()
    record = read_record(saved, HostPaths(saved.parent, record_file=saved)).record
    assert record is not None and str(store) in record.files_created


def test_moved_aside_record_leaves_the_ledger_to_say_whose_packages_they_are(
    saved: Path,
) -> None:
    saved.rename(saved.with_name("moved-aside.json"))
    backup_path(saved).unlink()
    read = read_record(saved, HostPaths(saved.parent, record_file=saved))
    assert read.record is not None and read.record.packages_installed == INSTALLED_FAMILY
    now = {**INSTALLED_FAMILY, "libc6": "2.36-9+deb12u1"}
    # A new install: the toolkit is gpubundle's (ledger), libc6 was there before.
    assert original_packages(None, now, read_ledger(ledger_path(saved))) == {
        "libc6": "2.36-9+deb12u1"
    }


def test_nothing_at_all_means_never_installed(tmp_path: Path) -> None:
    assert read_record(tmp_path / "install-record.json", HostPaths(tmp_path)).record is None


def test_ledger_appends_once_and_ignores_a_torn_line(tmp_path: Path) -> None:
    ledger = tmp_path / "installed-packages.ledger"
    append_ledger({"a": "1"}, ledger)
    append_ledger({"a": "2", "b": "1"}, ledger)
    assert ledger.read_text() == "a 1\nb 1\n"
    assert parse_ledger("a 1\nb 1\nc-part") == {"a": "1", "b": "1"}


# --- the commands, on a damaged record ------------------------------------------------


def cli(record: Path, *args: str) -> Result:
    """The command line on a host of its own under the record's directory: the record and
    its dpkg status there, and nothing of this machine's (its apt lists are root's alone)."""
    admindir = record.parent / "dpkg"
    admindir.mkdir(exist_ok=True)
    (admindir / "status").write_text(
        "".join(
            f"Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n\n"
            for n, v in {**INSTALLED_FAMILY, "libc6": "2.36-9+deb12u1"}.items()
        )
    )
    host = HostPaths(
        record.parent / "host",
        record_file=record,
        lock_file=record.parent / "lock",
        dpkg_admin_override=admindir,
    )
    return CliRunner().invoke(main, list(args), obj=host)


@pytest.mark.parametrize("damage", DAMAGES)
def test_status_and_uninstall_on_a_record_with_a_whole_mirror(saved: Path, damage: str) -> None:
    saved.write_text(DAMAGES[damage](saved.read_text()))
    status = cli(saved, "status", "--json")
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)  # one document, nothing else on stdout
    assert doc["record_damage"]["problems"] and doc["record_damage"]["lost"] == []
    assert doc["record"]["packages_installed"] == installed_record().packages_installed
    plan = cli(saved, "uninstall", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    actions = {a["kind"]: a["targets"] for a in json.loads(plan.stdout)["actions"]}
    assert sorted(actions["remove-packages"]) == sorted(INSTALLED_FAMILY)  # libc6 was there before
    assert "damaged" in json.loads(plan.stdout)["notes"][0]


@pytest.mark.parametrize("damage", DAMAGES)
def test_with_fields_lost_status_exits_1_and_uninstall_still_removes_gpubundles_packages(
    saved: Path, damage: str
) -> None:
    saved.write_text(DAMAGES[damage](saved.read_text()))
    backup_path(saved).write_text("{")
    status = cli(saved, "status", "--json")
    assert status.exit_code == 1, status.output
    doc = json.loads(status.stdout)
    assert doc["ok"] is False and "could not be read" in doc["message"]
    assert "uninstall" in doc["hint"] and "Traceback" not in status.output
    text = cli(saved, "status")
    assert text.exit_code == 1 and "hint:" in text.stderr
    plan = cli(saved, "uninstall", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    actions = {a["kind"]: a["targets"] for a in json.loads(plan.stdout)["actions"]}
    assert sorted(actions["remove-packages"]) == sorted(INSTALLED_FAMILY)


def test_doctor_reports_the_record_and_never_fails_on_it(saved: Path) -> None:
    assert (
        check_record(gather_record(saved, HostPaths(saved.parent, record_file=saved))).status
        == "ok"
    )
    saved.write_text("{")
    assert (
        check_record(gather_record(saved, HostPaths(saved.parent, record_file=saved))).status
        == "warning"
    )
    backup_path(saved).write_text("[]")
    finding = check_record(gather_record(saved, HostPaths(saved.parent, record_file=saved)))
    assert finding.status == "failure" and "could not be read" in finding.summary
    assert finding.fix and "uninstall" in finding.fix[0]


def test_a_new_bundles_record_keeps_the_packages_gpubundle_newly_installed() -> None:
    carried = carried_over(installed_record())
    assert carried["packages_installed"] == INSTALLED_FAMILY  # libc6 was there before: not carried
