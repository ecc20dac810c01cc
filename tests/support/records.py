"""Install records for unit tests: a fresh record of one bundle (``base_record``, for
``SHA``) and a finished install of the toolkit family over libc6 (``installed_record``,
whose gpubundle packages are ``INSTALLED_FAMILY``)."""

from __future__ import annotations

from installer.record import InstallRecord

SHA = "0c6685ffe8ebaec04babb36e207eefeb7e194436db96637ebe61de1e65f40c5f"


def base_record(**kw: object) -> InstallRecord:
    fields: dict[str, object] = dict(
        gpubundle_version="0.1.0",
        bundle_sha256=SHA,
        signer_fingerprint="F" * 40,
        distro="debian12",
        arch="amd64",
        toolkit_version="1.20.1-1",
        started_at="2025-01-01T00:00:00Z",
    )
    fields.update(kw)
    return InstallRecord(**fields)  # type: ignore[arg-type]


INSTALLED_FAMILY = {"nvidia-container-toolkit": "1.20.1-1", "libnvidia-container1": "1.20.1-1"}


def installed_record() -> InstallRecord:
    return InstallRecord(
        gpubundle_version="0.1.0",
        bundle_sha256="ab" * 32,
        signer_fingerprint="F" * 40,
        distro="debian12",
        arch="amd64",
        toolkit_version="1.20.1-1",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
        steps_completed=("extract", "apt-source", "packages"),
        packages_before={"libc6": "2.36-9"},
        packages_installed={**INSTALLED_FAMILY, "libc6": "2.36-9+deb12u1"},
        files_created=("/var/lib/gpubundle/bundles/" + "ab" * 32,),
    )
