"""Split bundles: --split-size parsing, parts written and read back as one stream, and every
way a part or the index can be missing, damaged or forged.

Each case splits a real signed bundle (tests.support.bundles) into 64 KiB parts with
bundler.split, as ``gpubundle build --split-size`` does, and verifies it with the
installer's own verifier. A refused bundle must leave nothing at the extraction target.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.split import PartWriter, parse_size, stale_outputs, write_split
from installer import layout
from installer.bundle_reader import read_verified, verify_bundle
from installer.cli import main
from installer.errors import ExitCode, VerificationError
from installer.parts import PartsIndex, parse_index
from installer.partstream import DamagedParts, open_source
from tests.support import testkeys
from tests.support.bundles import TestBundle, make_test_bundle, split_test_bundle

PART = 64 * 1024


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def _bundle(tmp: Path, key: testkeys.TestKey) -> TestBundle:
    noise = random.Random(7).randbytes(300_000)  # incompressible: about five parts
    return make_test_bundle(tmp, key, files={layout.IMAGES_ARCHIVE: noise})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, key: testkeys.TestKey) -> TestBundle:
    return _bundle(tmp_path_factory.mktemp("bundle"), key)


def _split(bundle: TestBundle, key: testkeys.TestKey, tmp: Path) -> tuple[Path, PartsIndex]:
    result = split_test_bundle(bundle, key, tmp / "split", PART)
    index = parse_index(result.index.read_bytes())
    assert len(index.parts) >= 4
    return result.index, index


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _refused(index_or_part: Path, key: testkeys.TestKey, tmp: Path) -> VerificationError:
    host = tmp / "host"
    host.mkdir()
    with pytest.raises(VerificationError) as err:
        verify_bundle(index_or_part, [key.fingerprint], extract_to=host / "bundle")
    assert list(host.iterdir()) == []
    assert err.value.code == ExitCode.VERIFICATION
    return err.value


# -- --split-size --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 << 30),
        ("4000M", 4000 << 20),
        ("50M", 50 << 20),
        ("1048576", 1 << 20),
        ("1024K", 1 << 20),
        ("50MiB", 50 << 20),
        (" 2g ", 2 << 30),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "1.5G", "-1M", "4X", "4 G", "0", "1023K", "100000"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_build_refuses_a_bad_split_size_before_anything_else() -> None:
    from bundler.cli import main as full_main

    result = CliRunner().invoke(full_main, ["build", "--distro", "x", "--split-size", "1.5G"])
    assert result.exit_code == int(ExitCode.USAGE)
    assert "--split-size: '1.5G' is not a size" in result.output


# -- writing parts -------------------------------------------------------------------


def test_part_writer_cuts_at_exactly_part_size(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(10_000)
    writer = PartWriter(tmp_path, "b.tar.zst", 3000)
    for start in range(0, len(data), 700):  # writes straddle every boundary
        writer.write(memoryview(data)[start : start + 700])
    parts = writer.finish()
    assert [p.name for p in parts] == [f"b.tar.zst.part00{n}" for n in range(1, 5)]
    assert [p.size for p in parts] == [3000, 3000, 3000, 1000]
    assert b"".join((tmp_path / p.name).read_bytes() for p in parts) == data
    assert writer.size == len(data)


def test_split_writes_parts_and_signed_index_only(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, index = _split(bundle, key, tmp_path)
    names = sorted(p.name for p in index_path.parent.iterdir())
    assert names == sorted(
        [p.name for p in index.parts] + ["bundle.parts.json", "bundle.parts.json.asc"]
    )
    assert index.bundle == "bundle.tar.zst" and index.part_size == PART
    assert (index.size, index.sha256) == (bundle.path.stat().st_size, bundle.sha256)
    assert all(p.size == PART for p in index.parts[:-1]) and index.parts[-1].size <= PART
    assert index.signer_fingerprint == key.fingerprint
    assert open_source(index_path, [key.fingerprint]).sha256 == bundle.sha256  # install record


def test_rebuild_gives_byte_identical_parts(tmp_path: Path, key: testkeys.TestKey) -> None:
    outputs = []
    for run in ("one", "two"):
        index_path, _ = _split(_bundle(tmp_path / run, key), key, tmp_path / run)
        outputs.append({p.name: p.read_bytes() for p in index_path.parent.iterdir()})
    assert outputs[0] == outputs[1]


def test_resplit_removes_parts_of_an_earlier_build(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    result = split_test_bundle(bundle, key, tmp_path / "split", PART // 2)
    assert len(result.parts) >= 8
    (tmp_path / "split" / bundle.path.name).write_bytes(b"an older unsplit build")
    again = split_test_bundle(bundle, key, tmp_path / "split", PART)
    on_disk = sorted(p.name for p in (tmp_path / "split").iterdir())
    expected = [p.name for p in again.parts] + [again.index.name, again.signature.name]
    assert on_disk == sorted(expected)


def test_a_failed_split_leaves_nothing(tmp_path: Path, key: testkeys.TestKey) -> None:
    def produce(sink: PartWriter) -> None:
        sink.write(b"x" * 5000)
        raise RuntimeError("packing failed")

    with pytest.raises(RuntimeError):
        write_split(
            tmp_path / "b.tar.zst", 1000, produce,
            signer_key=key.public_armored, fingerprint=key.fingerprint, sign=lambda raw: b"",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# -- reading parts -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["zstandard", "zstd"])
@pytest.mark.parametrize("named", ["index", "part001", "part003"])
def test_verify_and_extract_from_index_or_any_part(
    tmp_path: Path,
    bundle: TestBundle,
    key: testkeys.TestKey,
    named: str,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from installer import zstd_stream

    monkeypatch.setattr(
        "installer.bundle_reader.open_zstd",
        lambda source: zstd_stream.open_zstd(source, prefer=backend),
    )
    index_path, _ = _split(bundle, key, tmp_path)
    path = index_path if named == "index" else index_path.with_name(f"bundle.tar.zst.{named}")
    manifest = verify_bundle(path, [key.fingerprint], extract_to=tmp_path / "x")
    assert manifest == bundle.manifest
    for entry in manifest.files:
        assert (tmp_path / "x" / entry.path).stat().st_size == entry.size
    assert not list(tmp_path.glob(".x.staging-*"))


def test_verified_facts_of_a_split_bundle(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    """The signer key for apt, and the whole bundle's sha256 from the signed index."""
    index_path, _ = _split(bundle, key, tmp_path)
    verified = read_verified(index_path, [key.fingerprint])
    assert verified.apt_key() == key.public_armored
    assert verified.sha256 == hashlib.sha256(bundle.path.read_bytes()).hexdigest()
    assert verified.manifest == bundle.manifest


def test_verify_command_takes_the_first_part(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, _ = _split(bundle, key, tmp_path)
    part1 = index_path.with_name("bundle.tar.zst.part001")
    ok = CliRunner().invoke(main, ["verify", str(part1), "--trust", key.fingerprint, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["signer"] == key.fingerprint
    assert json.loads(ok.stdout)["parts"] == len(parse_index(index_path.read_bytes()).parts)
    _flip(index_path.with_name("bundle.tar.zst.part002"), 100)
    bad = CliRunner().invoke(main, ["verify", str(part1), "--trust", key.fingerprint, "--json"])
    assert bad.exit_code == int(ExitCode.VERIFICATION)
    assert json.loads(bad.stdout)["details"][0].startswith("bundle.tar.zst.part002: sha256 ")


@pytest.mark.parametrize("backend", ["zstandard", "zstd"])
def test_flipped_byte_in_part_2_names_part_2_only(
    tmp_path: Path,
    bundle: TestBundle,
    key: testkeys.TestKey,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from installer import zstd_stream

    monkeypatch.setattr(
        "installer.bundle_reader.open_zstd",
        lambda source: zstd_stream.open_zstd(source, prefer=backend),
    )
    index_path, index = _split(bundle, key, tmp_path)
    _flip(index_path.with_name(index.parts[1].name), PART // 2)
    err = _refused(index_path, key, tmp_path)
    assert isinstance(err, DamagedParts)
    assert f"1 of {len(index.parts)} parts of bundle.tar.zst are damaged" in err.message
    [line] = err.details
    assert line.startswith(f"{index.parts[1].name}: sha256 ")
    assert line.endswith(f"the index says {index.parts[1].sha256}")


def test_every_damaged_part_is_named(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, index = _split(bundle, key, tmp_path)
    _flip(index_path.with_name(index.parts[1].name), 10)
    _flip(index_path.with_name(index.parts[-1].name), 10)
    err = _refused(index_path, key, tmp_path)
    assert [line.split(":")[0] for line in err.details] == [
        index.parts[1].name,
        index.parts[-1].name,
    ]


def test_damaged_first_part_is_named_although_the_head_is_unreadable(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, index = _split(bundle, key, tmp_path)
    _flip(index_path.with_name(index.parts[0].name), 20)
    err = _refused(index_path, key, tmp_path)
    assert isinstance(err, DamagedParts)
    assert [line.split(":")[0] for line in err.details] == [index.parts[0].name]


def test_missing_part_is_named_before_any_reading(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(source: object) -> None:
        raise AssertionError("a part was read although one is missing")

    monkeypatch.setattr("installer.bundle_reader.open_zstd", no_reading)
    index_path, index = _split(bundle, key, tmp_path)
    index_path.with_name(index.parts[2].name).unlink()
    err = _refused(index_path, key, tmp_path)
    assert err.message.startswith(f"1 of {len(index.parts)} parts of bundle.tar.zst are missing")
    assert list(err.details) == [f"{index.parts[2].name}: missing"]


def test_truncated_last_part_is_named_before_any_reading(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, index = _split(bundle, key, tmp_path)
    last = index_path.with_name(index.parts[-1].name)
    last.write_bytes(last.read_bytes()[:-100])
    err = _refused(index_path, key, tmp_path)
    size = index.parts[-1].size
    assert list(err.details) == [
        f"{last.name}: {size - 100} bytes, the index says {size}",
    ]


def test_part_shortened_after_the_presence_check_is_named(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part that changes between the up-front check and its reading is still named."""
    index_path, index = _split(bundle, key, tmp_path)
    part3 = index_path.with_name(index.parts[2].name)
    monkeypatch.setattr("installer.partstream.absent_parts", lambda *_: [])
    part3.write_bytes(part3.read_bytes()[:1000])
    err = _refused(index_path, key, tmp_path)
    assert isinstance(err, DamagedParts)
    assert list(err.details) == [f"{part3.name}: ends after 1000 bytes, the index says {PART}"]


def test_stale_outputs_are_exactly_the_earlier_builds_files(tmp_path: Path) -> None:
    names = ["b.tar.zst", "b.parts.json", "b.parts.json.asc", "b.tar.zst.part001",
             "b.tar.zst.part012", "b.tar.zst.part", "b.tar.zst.partx", "c.tar.zst.part001",
             "b.tar.zst.part001.tmp", "notes.txt"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_text("x")
    assert sorted(p.name for p in stale_outputs(tmp_path / "b.tar.zst")) == sorted(names[:5])


def test_extra_part_file_is_ignored(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    """Only the parts the signed index lists are ever opened; a stray later part is not."""
    index_path, index = _split(bundle, key, tmp_path)
    index_path.with_name(layout.part_name("bundle.tar.zst", len(index.parts) + 1)).write_bytes(
        b"stray bytes from another build"
    )
    assert verify_bundle(index_path, [key.fingerprint]) == bundle.manifest


def test_part_without_its_index(tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey) -> None:
    index_path, _ = _split(bundle, key, tmp_path)
    index_path.unlink()
    err = _refused(index_path.with_name("bundle.tar.zst.part001"), key, tmp_path)
    assert "its index bundle.parts.json is not beside it" in err.message


# -- the index -----------------------------------------------------------------------


def test_index_signed_by_an_untrusted_key_is_refused(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    stranger = testkeys.make_key(tmp_path / "stranger")
    split_test_bundle(bundle, stranger, tmp_path / "split", PART)
    err = _refused(tmp_path / "split" / "bundle.parts.json", key, tmp_path)
    assert f"signed by key {stranger.fingerprint}, which is not trusted" in err.message


def test_trusted_key_planted_in_a_strangers_index_is_refused(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    stranger = testkeys.make_key(tmp_path / "stranger")
    split_test_bundle(bundle, stranger, tmp_path / "split", PART, signer_key=key.public_armored)
    err = _refused(tmp_path / "split" / "bundle.parts.json", key, tmp_path)
    assert "NO_PUBKEY" in err.render() or "ERRSIG" in err.render()


def test_tampered_index_is_refused(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    """Pointing the index at re-made parts breaks its signature."""
    index_path, _ = _split(bundle, key, tmp_path)
    data = json.loads(index_path.read_bytes())
    data["parts"][1]["sha256"] = "0" * 64
    index_path.write_bytes(json.dumps(data, sort_keys=True, indent=1).encode() + b"\n")
    err = _refused(index_path, key, tmp_path)
    assert "parts index bundle.parts.json: signature is missing, bad" in err.message


def test_unsigned_index_is_refused(
    tmp_path: Path, bundle: TestBundle, key: testkeys.TestKey
) -> None:
    index_path, _ = _split(bundle, key, tmp_path)
    index_path.with_name("bundle.parts.json.asc").unlink()
    err = _refused(index_path, key, tmp_path)
    assert "the parts index is unsigned" in err.message


def _index_json(**changes: object) -> bytes:
    index = {
        "format": 1, "bundle": "b.tar.zst", "size": 150, "sha256": "a" * 64, "part_size": 100,
        "signer_fingerprint": "F" * 40, "signer_key": "KEY",
        "parts": [
            {"name": "b.tar.zst.part001", "size": 100, "sha256": "b" * 64},
            {"name": "b.tar.zst.part002", "size": 50, "sha256": "c" * 64},
        ],
    }  # fmt: skip
    return json.dumps(index | changes).encode()


def test_parse_index_accepts_a_sound_index() -> None:
    index = parse_index(_index_json())
    assert [p.name for p in index.parts] == ["b.tar.zst.part001", "b.tar.zst.part002"]
    assert parse_index(index.to_json()) == index


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"size": 151}, "$.size: not the sum of the parts' sizes"),
        ({"sha256": "A" * 64}, "$.sha256: not a lowercase hex sha256"),
        ({"bundle": "../b.tar.zst"}, "$.bundle: '../b.tar.zst' is not a plain file name"),
        ({"parts": []}, "$.parts: empty"),
        ({"part_size": "100"}, "$.part_size: expected int, got str"),
        (
            {"parts": [{"name": "/etc/passwd", "size": 150, "sha256": "b" * 64}], "part_size": 200},
            "$.parts[0].name: '/etc/passwd', expected 'b.tar.zst.part001'",
        ),
        (
            {"parts": [{"name": "b.tar.zst.part001", "size": 150, "sha256": "b" * 64}]},
            "$.parts[0].size: 150 is not between 1 and part_size",
        ),
        ({"parts": [{"name": "b.tar.zst.part001"}]}, "$.parts[0].size: missing"),
    ],
)
def test_parse_index_names_the_bad_field(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(VerificationError) as err:
        parse_index(_index_json(**changes))
    assert problem in err.value.details


def test_parse_index_refuses_another_format() -> None:
    with pytest.raises(VerificationError, match="parts index format 2 is not supported"):
        parse_index(_index_json(format=2))
