"""The apt source step: the signer's key and a sources list naming the bundle's repository."""

from __future__ import annotations

from installer.aptlocal import install_source, keyring_path
from installer.installplan import APT_SOURCE
from installer.layout import REPO_DIR
from installer.record import InstallRecord
from installer.steps import StepContext


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    key = ctx.verified.apt_key()
    fingerprint, host = ctx.manifest.signer_fingerprint, ctx.host
    planned = (keyring_path(fingerprint, host.keyrings_dir), host.sources_list)
    record = ctx.intend(record.with_files(*map(str, planned)), APT_SOURCE)
    paths = install_source(
        key, fingerprint, ctx.bundle_dir / REPO_DIR, host.sources_list, host.keyrings_dir
    )
    return record.with_files(*map(str, paths)), ", ".join(map(str, paths))
