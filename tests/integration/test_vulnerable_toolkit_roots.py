"""A toolkit version with known vulnerabilities, end to end with the real parts: the real
``gpubundle build`` from a stand-in NVIDIA repository holding 1.16.1-1 (NVIDIA's real
index entry for it, tests/support/standin_nvidia.py) and the Debian archive, then the
shipped installer offline in a debootstrap Debian 12 root.

- ``build --toolkit-version 1.16.1-1`` is refused (exit 2) naming the critical and high
  CVEs, before anything is downloaded;
- with ``--allow-vulnerable`` it builds, says which CVEs on stderr, in ``--json``'s plan
  and in the signed manifest (with the advisory table's date);
- ``install`` of that bundle says so, with the version to move to;
- ``doctor`` flags the installed version (``toolkit.known-vulnerabilities``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from bundler.buildplan import INSTALLER_NAME
from installer import advisories
from installer.bundle_reader import verify_bundle
from tests.support import testkeys
from tests.support.httpserver import serve_directory
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt, proc_mounted, stage
from tests.support.installbundles import BUILD_CACHE
from tests.support.installbundles import gpubundle as host_gpubundle
from tests.support.rootfiles import INCLUDE
from tests.support.roots import debootstrap_root
from tests.support.standin_nvidia import StandinRepo, build_standin_repo

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

VULNERABLE = "1.16.1-1"
DISTRO = "debian12"


@pytest.fixture(scope="module")
def old_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandinRepo, str]]:
    """A stand-in NVIDIA repository of 1.16.1-1 (and the newest), served on loopback."""
    where = tmp_path_factory.mktemp("standin-old")
    key = testkeys.make_key(where / "gnupg", name="stand-in NVIDIA repo, old versions")
    repo = build_standin_repo(where / "repo", key, versions=[VULNERABLE])
    with serve_directory(repo.root) as base_url:
        yield repo, repo.flat_url(base_url)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle lifecycle")


def build_args(out: Path, repo: StandinRepo, url: str, signer: testkeys.TestKey) -> list[str]:
    key_file = out / "nvidia.asc"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(repo.key.public_armored)
    return [
        "build", "--distro", DISTRO, "--toolkit-version", VULNERABLE, "--no-images",
        "--mirror", f"nvidia={url}", "--key", f"nvidia={key_file}",
        "--sign-key", signer.fingerprint, "--gnupghome", str(signer.gnupghome),
        "--cache-dir", str(BUILD_CACHE), "--output", str(out / "old.tar.zst"),
    ]  # fmt: skip


def test_a_vulnerable_toolkit_is_refused_allowed_reported_installed_and_flagged(
    tmp_path: Path, old_standin: tuple[StandinRepo, str], signer: testkeys.TestKey
) -> None:
    repo, url = old_standin
    table = advisories.load_table()
    out = tmp_path / "out"
    args = build_args(out, repo, url, signer)

    refused = host_gpubundle(*args, "--json")
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout)
    assert "CVE-2024-0132" in error["message"] and "CVE-2025-23266" in error["message"]
    assert "--allow-vulnerable" in error["hint"]
    assert not (out / "old.tar.zst").exists() and not (out / INSTALLER_NAME).exists()

    root = debootstrap_root(DISTRO, "minbase", INCLUDE, dest=tmp_path / "root")
    status = root / "var/lib/dpkg/status"
    allowed = [*args, "--allow-vulnerable", "--target-status", str(status)]
    expected = [a.id for a in table.affecting(VULNERABLE)]
    planned = host_gpubundle(*allowed, "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert [v["id"] for v in plan["vulnerabilities"]] == expected
    assert plan["advisories_date"] == table.date
    built = host_gpubundle(*allowed)
    assert built.returncode == 0, built.stderr
    assert "CVE-2024-0132 (critical, CVSS 9.0): fixed in 1.16.2" in built.stderr
    assert f"known vulnerabilities of nvidia-container-toolkit {VULNERABLE}: " in built.stdout
    manifest = verify_bundle(out / "old.tar.zst", [signer.fingerprint])
    assert manifest.toolkit_version == VULNERABLE
    assert [v.id for v in manifest.vulnerabilities] == expected
    assert manifest.advisories_date == table.date
    # The SBOM, printed after verifying: valid CycloneDX, its purls those of the manifest.
    printed = host_gpubundle("sbom", str(out / "old.tar.zst"), "--trust", signer.fingerprint)
    assert printed.returncode == 0, printed.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(printed.stdout) is None
    sbom = json.loads(printed.stdout)
    debs = {c["purl"]: c for c in sbom["components"] if c["type"] != "container"}
    assert set(debs) == {
        f"pkg:deb/debian/{p.name}@{p.version}?arch={p.architecture}&distro=debian-12"
        for p in manifest.packages
    }
    for p in manifest.packages:
        [entry] = [c for c in debs.values() if c["name"] == p.name]
        assert entry["hashes"] == [{"alg": "SHA-256", "content": p.sha256}]
    assert {v["id"] for v in sbom["vulnerabilities"]} == set(expected)

    stage(root, out / "old.tar.zst", out / INSTALLER_NAME)
    with proc_mounted(root):
        prime_apt(root)
        install = ["install", BUNDLE, "--trust", signer.fingerprint, "--runtime", "none",
                   "--skip-gpu-checks"]  # fmt: skip
        told = gpubundle(root, *install, "--dry-run")
        assert told.returncode == 0, told.stderr
        assert "move to 1.17.8 or newer" in told.stderr
        assert "CVE-2025-23266 (critical): fixed in 1.17.8" in told.stderr
        document = ok_json(gpubundle(root, *install, "--yes", "--json"))
        assert document["vulnerabilities"]["fixed"] == "1.17.8"
        assert [v["id"] for v in document["vulnerabilities"]["vulnerabilities"]] == expected

        doctor = json.loads(gpubundle(root, "doctor", "--json").stdout)
        findings = {f["check_id"]: f for f in doctor["findings"]}
        flagged = findings["toolkit.known-vulnerabilities"]
        assert flagged["status"] == "warning", flagged
        assert (
            f"nvidia-container-toolkit {VULNERABLE} has known vulnerabilities"
            in (flagged["summary"])
        )
        assert "move to 1.17.8 or newer" in flagged["summary"]
        assert "--toolkit-version 1.17.8-1" in flagged["fix"][0]

        ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
