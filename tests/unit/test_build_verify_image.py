"""The build's verification image step: planned .debs in, a pinned archive out, no Docker."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from bundler.assemble import make_verify_image
from bundler.plan import BUILTIN, PlannedImage, PlannedPackage
from installer import layout
from installer.errors import GpubundleError
from tests.support.debs import BUSYBOX, LIBC, make_deb

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

TAG = "gpubundle/verify:ubuntu22.04-amd64"


def planned(*names_versions: tuple[str, str]) -> PlannedImage:
    packages = tuple(
        PlannedPackage(n, v, "amd64", 1, "0" * 64, f"{n}.deb", "ubuntu", f"http://x/{n}.deb")
        for n, v in names_versions
    )
    return PlannedImage(TAG, BUILTIN, layout.VERIFY_IMAGE_ARCHIVE, packages)


def test_the_image_is_built_into_its_archive_and_pinned(tmp_path: Path) -> None:
    debs = [make_deb(tmp_path, "libc6", LIBC), make_deb(tmp_path, "busybox", BUSYBOX)]
    image = planned(("busybox", "1.0-1"), ("libc6", "1.0-1"))

    pin, archive = make_verify_image(image, debs, tmp_path / "work", "amd64", 1_700_000_000)

    assert archive == tmp_path / "work" / "images" / "gpubundle-verify.tar"
    assert (pin.ref, pin.archive, pin.require_cuda) == (TAG, layout.VERIFY_IMAGE_ARCHIVE, "")
    assert pin.image_id.startswith("sha256:") and pin.digest == pin.image_id
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()


def test_debs_other_than_planned_are_refused(tmp_path: Path) -> None:
    debs = [make_deb(tmp_path, "libc6", LIBC), make_deb(tmp_path, "busybox", BUSYBOX)]
    image = planned(("busybox", "1.0-1"), ("libc6", "2.0-1"))

    with pytest.raises(GpubundleError) as caught:
        make_verify_image(image, debs, tmp_path / "work", "amd64", 1_700_000_000)

    assert "not the packages the plan resolved" in caught.value.message
    assert "planned libc6 2.0-1" in caught.value.details
    assert "built from libc6 1.0-1" in caught.value.details
