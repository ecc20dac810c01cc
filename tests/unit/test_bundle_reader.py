"""installer.bundle_reader, tarsafety and zstd_stream on real signed bundles."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from installer import layout
from installer.bundle_reader import trusted_fingerprints, verify_bundle
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.openpgp import primary_fingerprints
from installer.tarsafety import TarGuard, name_problem, type_problem
from tests.support import testkeys
from tests.support.bundles import add, make_test_bundle, regular, write_members

NVIDIA_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def test_verify_and_extract_round_trip(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key)
    seen: list[int] = []
    dest = tmp_path / "out" / "bundle"
    dest.parent.mkdir()
    manifest = verify_bundle(bundle.path, [key.fingerprint], extract_to=dest, progress=seen.append)
    assert manifest == bundle.manifest
    assert sum(seen) == sum(entry.size for entry in manifest.files)
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (tmp_path / "parts" / entry.path).read_bytes()
        assert (dest / entry.path).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bundle"]  # no staging left


def test_verify_without_extract_writes_nothing(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key)
    before = sorted(tmp_path.rglob("*"))
    assert verify_bundle(bundle.path, [key.fingerprint]).signer_fingerprint == key.fingerprint
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("backend", ["zstandard", "zstd"])
def test_both_decoders_verify_and_detect_truncation(
    tmp_path: Path, key: testkeys.TestKey, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("installer.bundle_reader.open_zstd", _forced(backend))
    bundle = make_test_bundle(tmp_path, key, files={"images/images.tar": b"x" * 3_000_000})
    verify_bundle(bundle.path, [key.fingerprint])
    data = bundle.path.read_bytes()
    bundle.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint], extract_to=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    text = err.value.render()
    assert "zstd" in text or "ends early" in text or "missing" in text


def _forced(backend: str):  # type: ignore[no-untyped-def]
    from installer import zstd_stream

    def open_forced(path: Path):  # type: ignore[no-untyped-def]
        return zstd_stream.open_zstd(path, prefer=backend)

    return open_forced


def test_extract_to_must_not_exist(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("mine")
    with pytest.raises(GpubundleError, match="already exists"):
        verify_bundle(bundle.path, [key.fingerprint], extract_to=tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep"]


def test_no_trusted_key_is_a_usage_error(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key)
    with pytest.raises(GpubundleError) as err:
        verify_bundle(bundle.path, [])
    assert err.value.code == ExitCode.USAGE
    assert "--trust" in err.value.hint


def test_manifest_naming_another_signer_is_refused(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key, manifest_changes={"signer_fingerprint": "A" * 40})
    with pytest.raises(VerificationError, match="different signer"):
        verify_bundle(bundle.path, [key.fingerprint])


def test_package_pins_must_match_the_file_list(tmp_path: Path, key: testkeys.TestKey) -> None:
    made = make_test_bundle(tmp_path / "a", key)
    pins = tuple(p.__class__(**{**p.__dict__, "size": p.size + 1}) for p in made.manifest.packages)
    bundle = make_test_bundle(tmp_path / "b", key, manifest_changes={"packages": pins})
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint])
    assert any("is not in the file list as pinned" in line for line in err.value.details)


def test_trailing_garbage_after_the_archive_is_refused(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    bundle = make_test_bundle(tmp_path, key)
    raw = subprocess.run(["zstd", "-dc", str(bundle.path)], capture_output=True, check=True).stdout
    subprocess.run(
        ["zstd", "-q", "-f", "-o", str(bundle.path)],
        input=raw + b"\0" * 1024 + b"hidden payload",
        check=True,
    )
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint])
    assert "data follows the end of the tar archive" in err.value.details


def test_oversized_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info, data = regular("a", b"x")
    info.pax_headers = {"comment": "y" * (2 << 20)}
    head = [regular(name, b"") for name in layout.HEAD_MEMBERS]
    path = tmp_path / "b.tar.zst"
    write_members(path, [*head, (info, data)])
    with pytest.raises(VerificationError):
        verify_bundle(path, ["0" * 40])


def test_trusted_fingerprints_from_cli_and_trust_dir(
    tmp_path: Path, key: testkeys.TestKey, nvidia_fixtures: Path
) -> None:
    trust = tmp_path / "trusted.d"
    trust.mkdir()
    (trust / "nvidia.asc").write_bytes((nvidia_fixtures / "gpgkey").read_bytes())
    (trust / "notes.txt").write_text("ignored")
    spaced = " ".join(key.fingerprint[i : i + 4] for i in range(0, 40, 4)).lower()
    assert list(trusted_fingerprints([spaced, key.fingerprint], trust)) == [
        key.fingerprint,
        NVIDIA_FPR,
    ]
    assert list(trusted_fingerprints([], tmp_path / "absent")) == []
    with pytest.raises(GpubundleError, match="--trust") as err:
        trusted_fingerprints(["DDCAE044F796ECB0"], trust)
    assert err.value.code == ExitCode.USAGE


def test_primary_fingerprints_match_gpg(nvidia_fixtures: Path, key: testkeys.TestKey) -> None:
    assert primary_fingerprints((nvidia_fixtures / "gpgkey").read_bytes()) == [NVIDIA_FPR]
    binary = subprocess.run(
        ["gpg", "--dearmor"], input=key.public_armored, capture_output=True, check=True
    ).stdout
    assert primary_fingerprints(binary) == [key.fingerprint]
    assert primary_fingerprints(b"garbage") == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("repo/Packages", ""),
        ("/etc/passwd", "absolute path"),
        ("../x", "escapes"),
        ("repo/../../x", "escapes"),
        ("./repo", "not normalized"),
        ("repo//x", "not normalized"),
        ("repo/", "not normalized"),
        ("", "empty"),
        ("a\\b", "unacceptable"),
    ],
)
def test_name_problems(name: str, problem: str) -> None:
    found = name_problem(name)
    assert (problem in found) if problem else found == ""


def test_type_problems_and_guard() -> None:
    link = tarfile.TarInfo("x")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    assert "symbolic link -> /etc" in type_problem(link)
    fifo = tarfile.TarInfo("f")
    fifo.type = tarfile.FIFOTYPE
    assert "fifo" in type_problem(fifo)
    guard = TarGuard(limit=10)
    reg = tarfile.TarInfo("a")
    reg.size = 4
    assert guard.check(reg, 4) == []
    assert guard.check(reg, 4) == ["'a': appears more than once"]
    other = tarfile.TarInfo("b")
    other.size = 5
    assert guard.check(other, 4) == ["b: size 5, manifest says 4"]
    guard.consume(10)
    with pytest.raises(VerificationError, match="expands beyond"):
        guard.consume(1)


def test_an_extra_member_is_named_exactly(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key, mutate=add(regular("zz-extra", b"x")))
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint])
    assert list(err.value.details) == ["zz-extra: not listed in the manifest (extra file)"]


def test_verify_command_json_and_exit_codes(tmp_path: Path, key: testkeys.TestKey) -> None:
    import json

    from click.testing import CliRunner

    from installer.cli import main

    bundle = make_test_bundle(tmp_path, key)
    before = sorted(tmp_path.rglob("*"))
    ok = CliRunner().invoke(
        main, ["verify", str(bundle.path), "--trust", key.fingerprint, "--json"]
    )
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["ok"] is True and doc["signer"] == key.fingerprint
    assert doc["packages"] == ["gpubundle-test-tool=1.0-1", "gpubundle-test-lib=1.0-1"]
    bad = CliRunner().invoke(main, ["verify", str(bundle.path), "--trust", "0" * 40, "--json"])
    assert bad.exit_code == int(ExitCode.VERIFICATION)
    assert json.loads(bad.stdout)["error"] == "VerificationError"
    human = CliRunner().invoke(main, ["verify", str(bundle.path), "--trust", key.fingerprint])
    assert human.exit_code == 0 and "verified" in human.stdout
    assert sorted(tmp_path.rglob("*")) == before


def test_no_zstd_decoder_says_what_to_install(tmp_path: Path) -> None:
    from installer.zstd_stream import open_zstd

    path = tmp_path / "b.tar.zst"
    path.write_bytes(b"")
    with pytest.raises(GpubundleError) as err, open_zstd(path, prefer="none"):
        pass
    assert "no zstd decoder" in err.value.message
    # Runnable on the air-gapped host: the zipapp carries the decoder; nothing to fetch.
    assert "sh gpubundle-installer.pyz" in err.value.hint and "zstandard" in err.value.hint
    assert "apt-get" not in err.value.hint and "pip install" not in err.value.hint
