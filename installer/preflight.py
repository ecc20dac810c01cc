"""Preflight: does this host fit this bundle? Pure checks over gathered facts.

Nothing here reads the host; ``hostinfo``, ``engine`` and ``gpu`` gather the
facts, and ``install`` prints the report as a table (or data with --json) and
stops with exit code 4 before changing anything when a check fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from installer import debversion, diskspace, engines, history
from installer.dpkgstate import DpkgFacts
from installer.errors import PreflightError
from installer.installplan import package_changes, toolkit_family
from installer.manifest import Manifest

TOOLKIT = "nvidia-container-toolkit"
RUNTIMES = (*engines.ENGINES, "none")  # the --runtime values
# Room beyond the bundle's own bytes: filesystem overhead, apt's lists, dpkg's backups.
DISK_MARGIN_BYTES = 256 * 1024 * 1024


EngineLike = engines.EngineState  # what preflight reads of an engine's detection


class DriverLike(Protocol):
    """What preflight reads of ``installer.gpu.DriverFacts``."""

    @property
    def loaded(self) -> bool: ...
    @property
    def version(self) -> str: ...
    @property
    def cuda_version(self) -> str: ...
    @property
    def gpus(self) -> Sequence[Any]: ...
    @property
    def source(self) -> str: ...
    @property
    def problem(self) -> str: ...


class CompatLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...


# (image's NVIDIA_REQUIRE_CUDA, driver version, driver's CUDA version) -> verdict,
# as installer.cuda_compat.check_image_against_driver judges it.
ImageCheck = Callable[[str, str, str], CompatLike]


@dataclass(frozen=True)
class HostFacts:
    is_root: bool
    distro: str  # e.g. "ubuntu22.04"
    arch: str  # dpkg's architecture
    free_bytes: int  # on the filesystem of the bundle store
    already_extracted: bool  # this bundle sits verified in the store from an earlier run
    toolkit_installed: str | None  # installed nvidia-container-toolkit version, None if absent
    engine: EngineLike | None = None  # None: not probed (--runtime none)
    driver: DriverLike | None = None  # None: not probed (--skip-gpu-checks)
    dpkg: DpkgFacts | None = None  # None: dpkg's database was not read (no dpkg)
    # gpubundle's record shows its packages step under way: dpkg's unfinished work is ours.
    packages_step_under_way: bool = False
    disk: diskspace.DiskFacts | None = None  # None: only free_bytes is known (check_disk)


@dataclass(frozen=True)
class Options:
    runtime: str = "docker"
    skip_gpu_checks: bool = False
    allow_downgrade: bool = False  # install --allow-downgrade: an older bundle rolls back


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail" | "skip"
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    def rows(self) -> list[list[str]]:
        return [[c.name, c.status, c.detail] for c in self.checks]

    def as_json(self) -> list[dict[str, str]]:
        return [dataclasses.asdict(c) for c in self.checks]

    def raise_if_failed(self) -> None:
        if not self.failures:
            return
        first = self.failures[0]
        raise PreflightError(
            f"this host does not meet the bundle's requirements ({len(self.failures)} failed "
            "check(s)); nothing was changed",
            hint=first.hint or "fix the failed checks above and run install again",
            details=[
                f"{c.name}: {c.detail}" + (f" ({c.hint})" if c.hint else "") for c in self.failures
            ],
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def disk_needed(manifest: Manifest) -> int:
    return sum(f.size for f in manifest.files) + DISK_MARGIN_BYTES


def check_root(facts: HostFacts) -> Check:
    if facts.is_root:
        return Check("root", "ok", "running as root")
    return Check("root", "fail", "not running as root", "run it with sudo")


def check_platform(m: Manifest, facts: HostFacts) -> list[Check]:
    hint = f"use a bundle built with `gpubundle build --distro {facts.distro}` for this host"
    distro = (
        Check("distro", "ok", f"{facts.distro}, as the bundle")
        if facts.distro == m.distro
        else Check("distro", "fail", f"host is {facts.distro}, bundle is for {m.distro}", hint)
    )
    arch = (
        Check("architecture", "ok", f"{facts.arch}, as the bundle")
        if facts.arch == m.arch
        else Check("architecture", "fail", f"host is {facts.arch}, bundle is for {m.arch}", hint)
    )
    return [distro, arch]


def check_disk(m: Manifest, facts: HostFacts) -> Check:
    if facts.already_extracted:
        return Check("disk", "ok", "bundle already extracted by an earlier run")
    need = disk_needed(m)
    if facts.free_bytes >= need:
        return Check("disk", "ok", f"{_gib(facts.free_bytes)} free, {_gib(need)} needed")
    return Check(
        "disk",
        "fail",
        f"{_gib(facts.free_bytes)} free under /var/lib/gpubundle, {_gib(need)} needed",
        "free some space on the filesystem that holds /var/lib/gpubundle",
    )


def check_space(m: Manifest, facts: HostFacts, opts: Options) -> list[Check]:
    """Bytes and inodes on every filesystem the run writes (installer.diskspace)."""
    if facts.disk is None:
        return [check_disk(m, facts)]
    needs = diskspace.install_needs(
        m,
        already_extracted=facts.already_extracted,
        installed=facts.disk.installed,
        runtime=opts.runtime,
        temp_dir=facts.disk.temp_dir,
        host=facts.disk.host,
        dpkg_status_bytes=facts.disk.dpkg_status_bytes,
    )
    return [
        Check(f"disk {v.mount}", "ok" if v.ok else "fail", v.detail, v.hint)
        for v in diskspace.check_space(needs, facts.disk.space)
    ]


def check_engine(m: Manifest, facts: HostFacts, runtime: str) -> Check:
    """The engine of ``--runtime``, as its adapter judges what was found (pure)."""
    adapter = engines.engine_for(runtime)
    if adapter is None:
        return Check("container engine", "skip", "--runtime none: runtime left unconfigured")
    return Check("container engine", *adapter.judge(facts.engine, m.requested))


def check_gpu(
    m: Manifest, facts: HostFacts, opts: Options, image_check: ImageCheck | None
) -> list[Check]:
    if opts.skip_gpu_checks:
        return [Check("NVIDIA driver", "skip", "--skip-gpu-checks: driver and images not checked")]
    driver = facts.driver
    if driver is None or not driver.loaded:
        problem = driver.problem if driver is not None else "the driver was not probed"
        return [
            Check(
                "NVIDIA driver",
                "fail",
                problem or "no NVIDIA driver is loaded",
                "install and load the NVIDIA driver, or pass --skip-gpu-checks to install "
                "without a GPU now (verification containers are then skipped)",
            )
        ]
    checks = [
        Check(
            "NVIDIA driver",
            "ok",
            f"{driver.version} (CUDA {driver.cuda_version}), {len(driver.gpus)} GPU(s), "
            f"read via {driver.source}",
        ),
        *(
            Check(f"GPU {gpu.index}", "ok", f"{gpu.name}, {gpu.uuid}, {gpu.memory_total_mib} MiB")
            for gpu in driver.gpus
        ),
    ]
    for image in m.images:
        name = f"image {image.ref}"
        if not image.require_cuda:
            # The builtin verification image: glibc and a shell, no CUDA; the runtime
            # mounts the driver's own nvidia-smi into it, so any loaded driver runs it.
            checks.append(
                Check(
                    name,
                    "skip",
                    "no NVIDIA_REQUIRE_CUDA (holds no CUDA; runs the driver's own nvidia-smi), "
                    "so no CUDA-vs-driver check",
                )
            )
        elif image_check is None:
            checks.append(Check(name, "warn", f"{image.require_cuda}: not checked"))
        else:
            verdict = image_check(image.require_cuda, driver.version, driver.cuda_version)
            hint = "" if verdict.ok else "upgrade the NVIDIA driver or bundle an older CUDA image"
            checks.append(Check(name, "ok" if verdict.ok else "fail", verdict.message, hint))
    return checks


def check_toolkit(m: Manifest, facts: HostFacts, allow_downgrade: bool = False) -> Check:
    have, want = facts.toolkit_installed, m.toolkit_version
    if have is None:
        return Check("toolkit", "ok", f"not installed; will install {want}")
    order = debversion.compare(have, want)
    if order == 0:
        return Check("toolkit", "ok", f"{have} already installed")
    if order < 0:
        return Check("toolkit", "ok", f"upgrade {have} -> {want}")
    if allow_downgrade:
        return Check("toolkit", "warn", f"downgrade {have} -> {want} (--allow-downgrade)")
    return Check(
        "toolkit",
        "fail",
        f"installed {have} is newer than the bundle's {want}: a downgrade, refused "
        "without --allow-downgrade",
        f"to roll the toolkit family back from {have} to {want}, run install again with "
        f"--allow-downgrade; or use a bundle with toolkit {have} or newer",
    )


def run_preflight(
    manifest: Manifest, facts: HostFacts, opts: Options, image_check: ImageCheck | None = None
) -> PreflightReport:
    checks = [
        check_root(facts),
        *check_platform(manifest, facts),
        *check_space(manifest, facts, opts),
        check_engine(manifest, facts, opts.runtime),
        *check_gpu(manifest, facts, opts, image_check),
        check_toolkit(manifest, facts, opts.allow_downgrade),
        *check_dpkg(manifest, facts, opts.allow_downgrade),
    ]
    return PreflightReport(tuple(checks))


# --- dpkg's state: locks, interrupted work, holds, the family's versions ---------------------

RECOVER_COMMAND = "dpkg --configure -a"


def bundle_names(m: Manifest) -> set[str]:
    return {p.name for p in m.packages if p.architecture in (m.arch, "all")}


def recoverable(m: Manifest, facts: HostFacts) -> bool:
    """Whether install may finish dpkg's interrupted work itself (``dpkg --configure -a``):
    the work is gpubundle's own (its record shows the packages step under way), or every
    interrupted package is one the bundle brings. Anything else is someone else's work."""
    dpkg = facts.dpkg
    if dpkg is None or not dpkg.needs_recovery:
        return False
    if facts.packages_step_under_way:
        return True
    return all(p.name in bundle_names(m) for p in dpkg.interrupted)


def check_dpkg_lock(dpkg: DpkgFacts) -> Check:
    if not dpkg.lock_holders:
        return Check("dpkg lock", "ok", "no other apt or dpkg is running")
    who = ", ".join(h.describe() for h in dpkg.lock_holders)
    return Check(
        "dpkg lock",
        "fail",
        f"dpkg's lock is held by {who}",
        "wait for that apt or dpkg run to finish (or stop it), then run install again",
    )


def check_dpkg_interrupted(m: Manifest, facts: HostFacts) -> Check:
    dpkg = facts.dpkg
    assert dpkg is not None
    if not dpkg.needs_recovery:
        return Check("dpkg state", "ok", "no interrupted dpkg work")
    pending = ", ".join(p.describe() for p in dpkg.interrupted) or "no package"
    journal = f"; dpkg's journal holds {len(dpkg.journal)} entries" if dpkg.journal else ""
    if recoverable(m, facts):
        whose = "gpubundle's" if facts.packages_step_under_way else "the bundle's packages'"
        return Check(
            "dpkg state",
            "warn",
            f"interrupted dpkg work ({whose}): {pending}{journal}; "
            f"install finishes it first ({RECOVER_COMMAND})",
        )
    foreign = sorted(p.name for p in dpkg.interrupted if p.name not in bundle_names(m))
    reinstall = sorted(p.name for p in dpkg.interrupted if p.flag == "reinstreq")
    hint = f"finish it first: run `{RECOVER_COMMAND}` (see `dpkg --audit`)"
    if reinstall:
        hint += (
            f"; {', '.join(reinstall)} must be reinstalled from its .deb (`dpkg -i FILE.deb`) "
            "or removed (`dpkg --remove NAME`)"
        )
    return Check(
        "dpkg state",
        "fail",
        f"dpkg was interrupted while working on packages that are not the bundle's "
        f"({', '.join(foreign)}): {pending}{journal}",
        hint + "; then run install again",
    )


def check_holds(m: Manifest, facts: HostFacts) -> Check:
    """A hold (``apt-mark hold``) on any package the bundle would install or upgrade."""
    dpkg = facts.dpkg
    assert dpkg is not None
    installed = {n: p.version for n, p in dpkg.packages.items() if p.installed}
    changes = package_changes(m, installed)
    held = [dpkg.packages[n] for n in changes if n in dpkg.held()]
    if not held:
        return Check("holds", "ok", "no package the bundle installs is held")
    names = " ".join(p.name for p in held)
    what = ", ".join(
        f"{p.name} (held at {p.version or 'not installed'}, bundle has {changes[p.name]})"
        for p in held
    )
    return Check(
        "holds",
        "fail",
        f"held with apt-mark hold: {what}",
        f"release the hold with `apt-mark unhold {names}`, then run install again",
    )


def check_family_versions(m: Manifest, facts: HostFacts, allow_downgrade: bool = False) -> Check:
    """Bundled toolkit packages installed at a newer version than the bundle's: apt would
    have to downgrade part of the family (their exact-version dependencies) and refuses,
    unless ``--allow-downgrade`` asks for the whole family to go down together."""
    dpkg = facts.dpkg
    assert dpkg is not None
    newer = []
    for name, version in toolkit_family(m).items():
        have = dpkg.installed_version(name)
        # The toolkit itself is check_toolkit's finding.
        if name != TOOLKIT and have is not None and debversion.compare(have, version) > 0:
            newer.append((name, have, version))
    left_behind = family_left_behind(m, dpkg)
    if left_behind:
        what = ", ".join(f"{n} {have}" for n, have in left_behind.items())
        return Check(
            "toolkit family",
            "fail",
            f"a downgrade to {m.toolkit_version} would leave {what} installed: the bundle "
            "does not hold them (built with --target-status of a host at the newer version, "
            "whose versions satisfy the older toolkit's dependencies)",
            f"build the {m.toolkit_version} bundle without --target-status, or with the dpkg "
            "status the host had before the upgrade, or install the bundle that was installed "
            "before; see docs/lifecycle.md",
        )
    if not newer:
        return Check("toolkit family", "ok", "no toolkit package is newer than the bundle's")
    if allow_downgrade:
        what = ", ".join(f"{n} {have} -> {want}" for n, have, want in newer)
        return Check("toolkit family", "warn", f"downgrade with the toolkit: {what}")
    what = ", ".join(f"{n} {have} installed, bundle has {want}" for n, have, want in newer)
    names = " ".join(n for n, _, _ in newer)
    return Check(
        "toolkit family",
        "fail",
        f"newer than the bundle, installing would downgrade part of the family: {what}",
        "pass --allow-downgrade to take the whole family down to the bundle's versions, use a "
        f"bundle with toolkit {max((h for _, h, _ in newer), key=debversion.version_key)}, "
        f"or remove the newer packages first (`dpkg --remove {names}`)",
    )


def family_left_behind(m: Manifest, dpkg: DpkgFacts) -> dict[str, str]:
    """{name: installed version} of NVIDIA's toolkit packages (``history.KNOWN_FAMILY``)
    newer than the bundle's toolkit that the bundle lacks, when the toolkit goes down:
    apt would leave them at the newer version, the family no longer together."""
    have = dpkg.installed_version(TOOLKIT)
    if have is None or debversion.compare(have, m.toolkit_version) <= 0:
        return {}
    bundled = bundle_names(m)
    found = {}
    for name in history.KNOWN_FAMILY:
        version = dpkg.installed_version(name)
        if name in bundled or version is None:
            continue
        if debversion.compare(version, m.toolkit_version) > 0:
            found[name] = version
    return found


def check_dpkg(m: Manifest, facts: HostFacts, allow_downgrade: bool = False) -> list[Check]:
    if facts.dpkg is None:
        return [Check("dpkg state", "skip", "dpkg's database was not read")]
    return [
        check_dpkg_lock(facts.dpkg),
        check_dpkg_interrupted(m, facts),
        check_holds(m, facts),
        check_family_versions(m, facts, allow_downgrade),
    ]
