"""The install plan: the ordered steps and exactly what each changes on the host. Pure.

``install`` prints it before touching anything (``--dry-run`` stops there,
``--json`` gives it as data) and then runs its steps in order. A step already
done (by an earlier, possibly killed, run) is marked so and skipped, which is
what makes a re-run resume and a run on an installed host change nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import debversion, engines
from installer import history as install_history
from installer.aptlocal import DPKG_CONFIGURE_PENDING, keyring_path, requested_pins
from installer.hostpaths import HOOK_LINK, TOOLKIT_CONFIG, UNOWNED_PATHS, HostPaths
from installer.layout import VERIFY_IMAGE_ARCHIVE
from installer.manifest import ImagePin, Manifest

EXTRACT = "extract"
APT_SOURCE = "apt-source"
RECOVER = "dpkg-recover"
PACKAGES = "packages"
RUNTIME = "runtime-config"
RESTART = "engine-restart"
IMAGES = "images"
PROOF = "proof"
STEP_IDS = (EXTRACT, APT_SOURCE, RECOVER, PACKAGES, RUNTIME, RESTART, IMAGES, PROOF)

# What apt and dpkg write for their own bookkeeping when the packages step runs.
APT_BOOKKEEPING = (
    "/var/lib/apt/lists",
    "/var/lib/apt/extended_states",  # which packages apt installed as dependencies
    "/var/lib/dpkg",
    "/var/cache/apt",
    "/var/cache/debconf/tmp.ci",  # dpkg-preconfigure's, where apt-extracttemplates runs (apt 3.x)
    "/var/cache/ldconfig",
    "/var/log/apt",
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
)
# What the packages' maintainer scripts and triggers change besides their own files:
# ldconfig's cache, systemd enablement links and masks with deb-systemd-helper's state,
# and the paths of installer/unownedpaths.py (config.toml, the hook link, and the
# directory dpkg makes for /lib under Ubuntu 24.04's diversion).
SCRIPT_EFFECTS = ("/etc/ld.so.cache", "/etc/systemd/system", "/var/lib/systemd", *UNOWNED_PATHS)
SCRIPTS_LINE = (
    f"their maintainer scripts: create {TOOLKIT_CONFIG} where missing, link {HOOK_LINK}, "
    "enable nvidia-cdi-refresh.{path,service} (links under /etc/systemd/system); ldconfig"
)


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    changes: tuple[str, ...]  # what it changes, one line each, for people
    paths: tuple[str, ...] = ()  # files or directory trees it may write, for checks
    done: bool = False  # an earlier run completed it and the host still shows it
    skip_reason: str = ""  # not run at all in this configuration

    @property
    def pending(self) -> bool:
        return not self.done and not self.skip_reason

    @property
    def state(self) -> str:
        if self.skip_reason:
            return f"skip ({self.skip_reason})"
        return "done" if self.done else "to do"


@dataclass(frozen=True)
class PlanFacts:
    """What the host already has, as gathered by install."""

    bundle_dir: Path  # /var/lib/gpubundle/bundles/<sha256>
    bundle_dir_exists: bool
    source_installed: bool  # keyring and sources list present with the right content
    installed: Mapping[str, str]  # {name: version} of the bundle's packages on the host now
    completed: tuple[str, ...]  # steps_completed of a record for this same bundle
    host: HostPaths  # where the steps write
    # The runtime's config file (TOML for CRI; Docker's daemon.json with --runtime none).
    daemon_json: str
    runtime: str = "docker"
    skip_gpu_checks: bool = False
    engine_kind: str = ""
    # Why the CDI spec must be generated again (stale, or ours and broken); "" when not.
    cdi_refresh: str = ""
    # dpkg's interrupted work that install finishes first (preflight allowed it), one line
    # per package or journal; empty when dpkg has none.
    dpkg_recovery: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstallPlan:
    bundle_sha256: str
    toolkit_version: str
    packages: Mapping[str, str]  # {name: version} apt may install, upgrade or downgrade
    steps: tuple[Step, ...]
    # nvidia-container-toolkit's move: {"change": install|upgrade|downgrade|reinstall,
    # "from": version or None, "to": version}
    toolkit: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.pending)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def rows(self) -> list[list[str]]:
        """One row per change, the step and its state on the first (plain tables have no wrap)."""
        rows = []
        for s in self.steps:
            for i, change in enumerate(s.changes or ("",)):
                rows.append([s.id, s.state, change] if i == 0 else ["", "", change])
        return rows

    def as_json(self) -> dict[str, Any]:
        return {
            "bundle_sha256": self.bundle_sha256,
            "toolkit_version": self.toolkit_version,
            "packages": dict(self.packages),
            "toolkit": dict(self.toolkit),
            "steps": [{**dataclasses.asdict(s), "pending": s.pending} for s in self.steps],
        }


def toolkit_family(manifest: Manifest) -> dict[str, str]:
    """{name: version} of the bundled packages from the requested packages' own source
    (NVIDIA's repository): they depend on each other at exact versions."""
    sources = {p.source for p in manifest.packages if p.name in manifest.requested}
    return {p.name: p.version for p in manifest.packages if p.source in sources}


def package_changes(manifest: Manifest, installed: Mapping[str, str]) -> dict[str, str]:
    """{name: version} of bundled packages that are absent or at another version on the host.

    The requested packages are pinned to the bundle's version, and the rest of their
    family follows them (exact-version dependencies); other dependencies apt installs
    only when missing, so those already present are left alone.
    """
    pins = requested_pins(manifest)
    family = toolkit_family(manifest)
    changes = {name: v for name, v in pins.items() if installed.get(name) != v}
    for pkg in manifest.packages:
        if pkg.name in pins:
            continue
        if pkg.name not in installed or (pkg.name in family and installed[pkg.name] != pkg.version):
            changes[pkg.name] = pkg.version
    return dict(sorted(changes.items()))


def downgrades(manifest: Manifest, installed: Mapping[str, str]) -> dict[str, str]:
    """{name: version} of the bundled family packages installed at a newer version now:
    what ``install --allow-downgrade`` takes down to the bundle's version."""
    family = toolkit_family(manifest)
    return {
        n: v
        for n, v in sorted(family.items())
        if n in installed and debversion.compare(installed[n], v) > 0
    }


def apt_pins(manifest: Manifest, installed: Mapping[str, str]) -> dict[str, str]:
    """{name: version} apt is asked for: the requested packages; for a downgrade also
    every installed family package at another version, so that the family goes down
    together (their dependencies are ">=" ones, which the newer versions satisfy)."""
    pins = requested_pins(manifest)
    if not downgrades(manifest, installed):
        return pins
    archs = (manifest.arch, "all")
    family = {p.name for p in manifest.packages if p.architecture in archs}
    moved = {
        n: v
        for n, v in toolkit_family(manifest).items()
        if n in family and n in installed and installed[n] != v
    }
    return dict(sorted({**moved, **pins}.items()))


def toolkit_change(manifest: Manifest, installed: Mapping[str, str]) -> dict[str, Any]:
    """What the install does to nvidia-container-toolkit: install, upgrade, downgrade or
    reinstall, from which version to which."""
    have = installed.get(install_history.TOOLKIT)
    return {
        "change": install_history.change_kind(have, manifest.toolkit_version),
        "from": have,
        "to": manifest.toolkit_version,
    }


def proof_images(manifest: Manifest) -> tuple[ImagePin, ...]:
    """The images the proof runs, in order: the builtin verification image, then the rest."""
    builtin = tuple(i for i in manifest.images if i.archive == VERIFY_IMAGE_ARCHIVE)
    return builtin + tuple(i for i in manifest.images if i.archive != VERIFY_IMAGE_ARCHIVE)


def image_archives(manifest: Manifest) -> tuple[str, ...]:
    """Every image archive of the bundle once, in the order the proof uses their images."""
    return tuple(dict.fromkeys(i.archive for i in proof_images(manifest)))


def _image_lines(manifest: Manifest) -> tuple[str, ...]:
    return tuple(f"load image {i.ref} from {i.archive}" for i in proof_images(manifest))


def _proof_lines(manifest: Manifest) -> tuple[str, ...]:
    lines = []
    for image in proof_images(manifest):
        what = "the builtin verification image" if image.archive == VERIFY_IMAGE_ARCHIVE else ""
        lines.append(
            f"run {image.ref}{f' ({what})' if what else ''}: nvidia-smi -L with --gpus all, "
            "with CDI where Docker supports it, and with --runtime=nvidia"
        )
    return tuple(lines)


def _package_lines(changes: Mapping[str, str], installed: Mapping[str, str]) -> tuple[str, ...]:
    lines = []
    for name, version in changes.items():
        if name in installed and debversion.compare(installed[name], version) > 0:
            lines.append(f"downgrade {name} {installed[name]} -> {version} (--allow-downgrade)")
        elif name in installed:
            lines.append(f"upgrade {name} {installed[name]} -> {version}")
        else:
            lines.append(f"install {name} {version}")
    if lines:
        lines.append(SCRIPTS_LINE)
    return tuple(lines) or ("nothing: every package is installed at the bundle's version",)


def runtime_lines(facts: PlanFacts) -> tuple[tuple[str, ...], str]:
    """What the runtime step changes, and what the restart step restarts, per runtime."""
    adapter = engines.engine_for(facts.runtime) or engines.adapter_for("docker")
    return adapter.plan_lines(facts.daemon_json, facts.engine_kind)


def build_plan(manifest: Manifest, bundle_sha256: str, facts: PlanFacts) -> InstallPlan:
    bundle_dir = str(facts.bundle_dir)
    keyring = keyring_path(manifest.signer_fingerprint, facts.host.keyrings_dir)
    sources_list = facts.host.sources_list
    pins = requested_pins(manifest)
    changes = package_changes(manifest, facts.installed)
    # After a recovery apt runs again, so that its result is checked like a fresh one.
    packages_done = not facts.dpkg_recovery and all(
        facts.installed.get(n) == v for n, v in pins.items()
    )
    size = sum(f.size for f in manifest.files)
    no_runtime = "--runtime none" if facts.runtime == "none" else ""
    adapter = engines.engine_for(facts.runtime)
    no_docker = (
        f"--runtime {facts.runtime}: the verification containers run through Docker"
        if adapter is not None and not adapter.runs_containers
        else ""
    )
    config_changes, restart_line = runtime_lines(facts)
    no_gpu = "--skip-gpu-checks" if facts.skip_gpu_checks else ""
    no_images = "" if manifest.images else "no images in the bundle (built with --no-images)"

    def recorded(step_id: str) -> bool:
        return step_id in facts.completed

    steps = (
        Step(
            EXTRACT,
            "extract the verified bundle",
            (f"write {bundle_dir}/ ({size / 2**20:.0f} MiB, {len(manifest.files)} files)",),
            (bundle_dir,),
            done=facts.bundle_dir_exists,
        ),
        Step(
            APT_SOURCE,
            "add the bundle's local apt source",
            (
                f"write {keyring} (key {manifest.signer_fingerprint})",
                f"write {sources_list} (file:{bundle_dir}/repo/, signed-by that key)",
            ),
            (str(keyring), str(sources_list)),
            done=facts.source_installed,
        ),
        Step(
            RECOVER,
            "finish dpkg's interrupted work",
            (f"run {' '.join(DPKG_CONFIGURE_PENDING)}: {', '.join(facts.dpkg_recovery)}",),
            APT_BOOKKEEPING,
            skip_reason="" if facts.dpkg_recovery else "dpkg has no interrupted work",
        ),
        Step(
            PACKAGES,
            "install the packages offline with apt",
            _package_lines(changes, facts.installed),
            (*APT_BOOKKEEPING, *SCRIPT_EFFECTS),
            done=packages_done,
        ),
        Step(
            RUNTIME,
            "configure the container runtime",
            config_changes,
            (facts.daemon_json,),
            done=recorded(RUNTIME),
            skip_reason=no_runtime,
        ),
        Step(
            RESTART,
            "restart the container engine",
            (restart_line,),
            done=recorded(RESTART),
            skip_reason=no_runtime,
        ),
        Step(
            IMAGES,
            "load the verification images",
            _image_lines(manifest),
            done=recorded(IMAGES),
            skip_reason=no_runtime or no_docker or no_images,
        ),
        Step(
            PROOF,
            "prove that containers see the GPUs",
            _proof_lines(manifest)
            + (
                (f"generate {facts.host.cdi_spec} again: {facts.cdi_refresh}",)
                if facts.cdi_refresh
                else ()
            ),
            done=recorded(PROOF) and not facts.cdi_refresh,
            skip_reason=no_runtime or no_docker or no_gpu or no_images,
        ),
    )
    change = toolkit_change(manifest, facts.installed)
    return InstallPlan(bundle_sha256, manifest.toolkit_version, changes, steps, change)
