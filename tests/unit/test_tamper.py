"""Every kind of tampering is refused with its own message, before anything leaves staging.

Each case builds a real signed bundle (tests.support.bundles), alters it
after signing, and asks verify_bundle to extract it. The destination must
not appear, its parent must hold nothing new (no staging left behind), and
the error must say what was wrong.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from installer import layout
from installer.bundle_reader import verify_bundle
from installer.errors import ExitCode, VerificationError
from tests.support import testkeys
from tests.support.bundles import (
    Mutator,
    add,
    chain,
    drop,
    flip_byte,
    make_test_bundle,
    regular,
    replace,
    special,
    symlink,
)

TOOL = "repo/debs/gpubundle-test-tool_1.0-1_amd64.deb"
LIB = "repo/debs/gpubundle-test-lib_1.0-1_amd64.deb"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def _refused(tmp_path: Path, key: testkeys.TestKey, mutate: Mutator) -> VerificationError:
    bundle = make_test_bundle(tmp_path / "build", key, mutate=mutate)
    target_parent = tmp_path / "host"
    target_parent.mkdir()
    (target_parent / "keep").write_text("unchanged")
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint], extract_to=target_parent / "bundle")
    assert [p.name for p in target_parent.iterdir()] == ["keep"]
    assert (target_parent / "keep").read_text() == "unchanged"
    assert err.value.code == ExitCode.VERIFICATION
    return err.value


def _text(err: VerificationError) -> str:
    return err.render()


def _swap_debs(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    data = {info.name: blob for info, blob in members}
    replace(TOOL, data[LIB])(members)
    replace(LIB, data[TOOL])(members)


CASES: dict[str, tuple[Mutator, Callable[[str], bool]]] = {
    "flipped manifest": (flip_byte(layout.MANIFEST, 20), lambda t: "BADSIG" in t),
    "flipped signature": (
        flip_byte(layout.MANIFEST_SIG, 60),
        lambda t: "bundle manifest: signature is missing, bad" in t,
    ),
    "flipped .deb": (
        flip_byte(TOOL, 100),
        lambda t: f"{TOOL}: sha256 " in t and "manifest says" in t,
    ),
    "flipped Packages": (flip_byte(layout.REPO_PACKAGES), lambda t: "repo/Packages: sha256" in t),
    "flipped images archive": (
        flip_byte(layout.IMAGES_ARCHIVE, 5),
        lambda t: "images/images.tar: sha256" in t,
    ),
    "swapped .debs": (
        _swap_debs,
        lambda t: f"{TOOL}: size" in t and f"{LIB}: size" in t,
    ),
    "extra file": (
        add(regular("repo/debs/evil_1_amd64.deb", b"!<arch>\n")),
        lambda t: "repo/debs/evil_1_amd64.deb: not listed in the manifest (extra file)" in t,
    ),
    "missing file": (drop(LIB), lambda t: f"{LIB}: missing from the bundle" in t),
    "unsigned": (
        drop(layout.MANIFEST_SIG),
        lambda t: "bundle is unsigned: member 2 must be manifest.json.asc" in t,
    ),
    "no signer key": (
        drop(layout.SIGNER_KEY),
        lambda t: "member 3 must be keys/signer.asc" in t,
    ),
    "parent traversal": (
        add(regular("../escaped", b"x")),
        lambda t: "'../escaped': path escapes with '..'" in t,
    ),
    "absolute path": (
        add(regular("/tmp/gpubundle-absolute", b"x")),
        lambda t: "'/tmp/gpubundle-absolute': absolute path" in t,
    ),
    "escaping symlink": (
        add(symlink("repo/escape", "../../../../etc")),
        lambda t: "'repo/escape': is a symbolic link -> ../../../../etc" in t,
    ),
    "hardlink": (
        add(special("repo/hard", tarfile.LNKTYPE, "/etc/shadow")),
        lambda t: "'repo/hard': is a hard link -> /etc/shadow" in t,
    ),
    "device": (
        add(special("repo/null", tarfile.CHRTYPE)),
        lambda t: "'repo/null': is a character device" in t,
    ),
    "duplicate member": (
        add(regular(layout.REPO_RELEASE, b"Origin: evil\n")),
        lambda t: "'repo/Release': appears more than once" in t,
    ),
    "manifest smuggled later": (
        add(regular(layout.MANIFEST, b"{}")),
        lambda t: "'manifest.json': appears more than once" in t,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_is_refused_before_any_write(
    tmp_path: Path, key: testkeys.TestKey, case: str
) -> None:
    mutate, says = CASES[case]
    err = _refused(tmp_path, key, mutate)
    assert says(_text(err)), _text(err)


def test_messages_differ_per_case(tmp_path: Path, key: testkeys.TestKey) -> None:
    texts = {
        case: _text(_refused(tmp_path / case.replace(" ", "-"), key, CASES[case][0]))
        for case in sorted(CASES)
    }
    assert len(set(texts.values())) == len(texts)


def test_bundle_signed_by_an_untrusted_key(tmp_path: Path, key: testkeys.TestKey) -> None:
    stranger = testkeys.make_key(tmp_path / "stranger")
    bundle = make_test_bundle(tmp_path / "build", stranger)
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint], extract_to=tmp_path / "bundle")
    assert f"signed by key {stranger.fingerprint}, which is not trusted" in err.value.message
    assert not (tmp_path / "bundle").exists()


def test_trusted_key_planted_beside_a_stranger_signature(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    """Shipping the trusted public key does not make a stranger's signature valid."""
    stranger = testkeys.make_key(tmp_path / "stranger")
    bundle = make_test_bundle(
        tmp_path / "build", stranger, mutate=replace(layout.SIGNER_KEY, key.public_armored)
    )
    with pytest.raises(VerificationError) as err:
        verify_bundle(bundle.path, [key.fingerprint], extract_to=tmp_path / "bundle")
    assert "NO_PUBKEY" in _text(err.value) or "ERRSIG" in _text(err.value)
    assert not (tmp_path / "bundle").exists()


def test_all_failures_are_reported_together(tmp_path: Path, key: testkeys.TestKey) -> None:
    err = _refused(
        tmp_path,
        key,
        chain(
            flip_byte(layout.REPO_PACKAGES),
            drop(LIB),
            add(regular("zz-extra", b"x")),
            add(symlink("zz-link", "/")),
        ),
    )
    assert "4 problem(s)" in err.message
    assert len(err.details) == 4
