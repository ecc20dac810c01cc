"""Install manifests for unit tests: a small verified-looking ``Manifest`` of the toolkit
family (``make_manifest``), the fingerprint it is signed with (``FPR``) and the builtin
verification image's pin (``VERIFY``)."""

from __future__ import annotations

from installer.manifest import FileEntry, ImagePin, Manifest, PackagePin

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"


def make_manifest(
    packages: dict[str, str] | None = None,
    requested: tuple[str, ...] = ("nvidia-container-toolkit",),
    images: tuple[ImagePin, ...] = (),
    distro: str = "ubuntu22.04",
) -> Manifest:
    """A small verified-looking manifest: the toolkit family at 1.17.8-1 by default."""
    versions = packages or {
        "nvidia-container-toolkit": "1.17.8-1",
        "nvidia-container-toolkit-base": "1.17.8-1",
        "libnvidia-container-tools": "1.17.8-1",
        "libnvidia-container1": "1.17.8-1",
    }
    pins = tuple(
        PackagePin(name, v, "amd64", 1000, "0" * 64, f"repo/debs/{name}_{v}_amd64.deb", "nvidia")
        for name, v in sorted(versions.items())
    )
    return Manifest(
        format=1,
        created_by="gpubundle 0.1.0",
        source_date_epoch=0,
        distro=distro,
        arch="amd64",
        python="3.10",
        toolkit_version=versions.get("nvidia-container-toolkit", "1.17.8-1"),
        signer_fingerprint=FPR,
        requested=requested,
        sources=(),
        packages=pins,
        images=images,
        files=tuple(FileEntry(p.filename, 3 * 2**20, "0" * 64) for p in pins),
    )


VERIFY = ImagePin(
    "gpubundle/verify:ubuntu22.04-amd64", "sha256:" + "2" * 64, "sha256:" + "2" * 64, "",
    "images/gpubundle-verify.tar",
)  # fmt: skip
