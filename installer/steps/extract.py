"""The extract step: the verified bundle into /var/lib/gpubundle/bundles/<sha256>."""

from __future__ import annotations

import os
import shutil

from installer import testhooks
from installer.bundle_reader import extract_verified
from installer.installplan import EXTRACT
from installer.record import InstallRecord, staging_leftovers
from installer.steps import StepContext


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    bundle_dir = ctx.bundle_dir
    record = ctx.intend(record.with_files(str(bundle_dir)), EXTRACT)
    testhooks.fill_if_asked()
    bundle_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    for partial in staging_leftovers(bundle_dir):  # of a run killed while extracting
        shutil.rmtree(partial)
    if not bundle_dir.is_dir():
        extract_verified(ctx.verified, bundle_dir)
    # The staging directory was made private; apt's _apt user must read the repo.
    os.chmod(bundle_dir, 0o755)
    return record.with_files(str(bundle_dir)), str(bundle_dir)
