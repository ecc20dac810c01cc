"""Install reads the bundle once to verify it, and once more only to extract it.

``read_verified`` gives everything the later steps need (manifest, the whole bundle's
sha256, the signer key for apt); ``extract_verified`` writes the members checked
against those facts and refuses a bundle that changed since. Counted here as opens of
the bundle file, the way the install flow (cmd_install.verify, then the extract and
apt source steps) uses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest

from installer import partstream
from installer.bundle_reader import extract_verified, read_verified
from installer.errors import VerificationError
from installer.hostpaths import HostPaths
from installer.installplan import APT_SOURCE, EXTRACT
from tests.support import testkeys
from tests.support.bundles import make_test_bundle
from tests.support.records import base_record
from tests.support.steps import step_runner


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def _count_readings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time the bundle's bytes are read from the start, whole or head only."""
    seen: list[str] = []
    reading = partstream.BundleSource.reading

    def counted(source: partstream.BundleSource, **kw: bool):  # type: ignore[no-untyped-def]
        seen.append(source.name)
        return reading(source, **kw)

    monkeypatch.setattr(partstream.BundleSource, "reading", counted)
    return seen


def test_install_reads_the_bundle_once_to_verify_and_once_to_extract(
    tmp_path: Path, key: testkeys.TestKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_test_bundle(tmp_path / "b", key)
    reads = _count_readings(monkeypatch)
    verified = read_verified(bundle.path, [key.fingerprint])
    assert len(reads) == 1  # what a dry run reads: was 3 (sha256, verify, signer key)
    assert verified.manifest == bundle.manifest
    assert verified.sha256 == hashlib.sha256(bundle.path.read_bytes()).hexdigest()
    assert verified.apt_key() == key.public_armored

    # The extract and apt source steps as install runs them, on the verified facts.
    host = HostPaths(tmp_path / "host")
    runner = step_runner(host.root, bundle.manifest)
    runner.ctx.verified = verified
    runner.ctx.bundle_dir = host.bundles / verified.sha256
    record, _ = runner.do(EXTRACT, base_record())
    record, detail = runner.do(APT_SOURCE, record)
    assert len(reads) == 2  # an install: was 5 (and 3 where already extracted, now 1)
    assert str(host.sources_list) in detail and host.sources_list.is_file()
    for entry in bundle.manifest.files:
        assert (runner.ctx.bundle_dir / entry.path).stat().st_size == entry.size


def test_a_bundle_changed_after_verification_is_not_extracted(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    bundle = make_test_bundle(tmp_path / "b", key)
    verified = read_verified(bundle.path, [key.fingerprint])
    other = make_test_bundle(tmp_path / "c", key, manifest_changes={"toolkit_version": "9.9"})
    shutil.copyfile(other.path, bundle.path)  # validly signed, but not the one verified
    with pytest.raises(VerificationError) as err:
        extract_verified(verified, tmp_path / "x")
    assert "changed since it was verified" in err.value.message
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".x.staging-*"))


def test_a_verified_head_with_a_changed_member_is_refused(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    bundle = make_test_bundle(tmp_path / "b", key)
    verified = read_verified(bundle.path, [key.fingerprint])
    entry = bundle.manifest.files[0]
    # Same head bytes, yet extraction checks each member against the verified sha256s: facts
    # that name another hash for a member (as if the member had changed) fail that member.
    files = tuple(
        dataclasses.replace(e, sha256="0" * 64) if e == entry else e
        for e in verified.manifest.files
    )
    fake = dataclasses.replace(
        verified, manifest=dataclasses.replace(verified.manifest, files=files)
    )
    with pytest.raises(VerificationError) as err:
        extract_verified(fake, tmp_path / "x")
    assert any(entry.path in d and "manifest says" in d for d in err.value.details)
    assert not (tmp_path / "x").exists()
