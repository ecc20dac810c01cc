"""The images step: the bundle's image archives loaded into Docker."""

from __future__ import annotations

import dataclasses

from installer import containers
from installer.installplan import IMAGES, image_archives
from installer.record import InstallRecord
from installer.steps import StepContext


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    manifest = ctx.manifest
    archives = [ctx.bundle_dir / a for a in image_archives(manifest)]
    # Images Docker had before are the user's: not recorded, so uninstall keeps them.
    had = {i.ref for i in manifest.images if containers.image_present(i.ref)}
    coming = [i.ref for i in manifest.images if i.ref not in had]
    record = ctx.intend(
        record, IMAGES, images_loaded=tuple(dict.fromkeys((*record.images_loaded, *coming)))
    )
    size = sum(a.stat().st_size for a in archives)
    with ctx.console.progress("loading images", size) as bar:
        refs = containers.load_archives(archives, bar)
    new = [r for r in refs if r not in had]
    loaded = tuple(dict.fromkeys((*record.images_loaded, *new)))
    detail = ", ".join(refs)
    if had:
        detail += f"; there before, so uninstall keeps: {', '.join(sorted(had))}"
    return dataclasses.replace(record, images_loaded=loaded), detail
