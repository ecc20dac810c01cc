"""dpkg status parsing: states apt treats as installed, Provides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.dpkgstatus import installed_records, parse_status, read_status
from bundler.index import Relation
from installer.errors import GpubundleError

STATUS = """\
Package: mawk
Status: install ok installed
Architecture: amd64
Multi-Arch: foreign
Version: 1.3.4.20200120-3
Provides: awk

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1

Package: halfway
Status: install ok unpacked
Architecture: all
Version: 2

Package: other-arch
Status: install ok installed
Architecture: i386
Version: 3
"""


def test_parse_status() -> None:
    installed = parse_status(STATUS, "amd64")
    assert set(installed) == {"mawk", "halfway"}
    assert installed["mawk"].record.provides == (Relation("awk"),)
    assert not installed["mawk"].is_half_installed
    assert installed["halfway"].is_half_installed
    assert installed_records(installed)["halfway"].version == "2"


def test_read_status(tmp_path: Path) -> None:
    assert read_status(tmp_path / "missing", "amd64") == {}
    bad = tmp_path / "status"
    bad.write_text("Package: x\nStatus: broken\nVersion: 1\n")
    with pytest.raises(GpubundleError, match="not a valid dpkg status"):
        read_status(bad, "amd64")


def test_status_json_is_refused_pointing_at_the_dpkg_status(tmp_path: Path) -> None:
    """``gpubundle status --json`` names only gpubundle's packages: no target status."""
    doc = tmp_path / "status.json"
    doc.write_text('{"ok": true, "installed": true, "record": {}, "history": []}\n')
    with pytest.raises(GpubundleError, match="not a dpkg status file") as err:
        read_status(doc, "amd64")
    assert "/var/lib/dpkg/status" in err.value.hint


@pytest.mark.skipif(not Path("/var/lib/dpkg/status").exists(), reason="no dpkg database here")
def test_reads_this_host() -> None:
    installed = read_status(Path("/var/lib/dpkg/status"), "amd64")
    assert "dpkg" in installed and installed["dpkg"].record.essential
