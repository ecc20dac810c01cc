"""Facts about the host that install's preflight and plan decide on.

Every reader takes the file or directory it reads as an argument (``HostPaths``' on a
host, so a test root sees its own files); the parsers are pure. Engine and driver facts come from
``installer.engine`` and ``installer.gpu``; this module gathers the rest.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from installer import engines
from installer.diskspace import gather_disk_facts
from installer.dpkgstate import DpkgFacts, LockHolder, read_dpkg_facts
from installer.errors import GpubundleError
from installer.gpu import read_driver_facts
from installer.hostpaths import HostPaths
from installer.manifest import Manifest
from installer.preflight import TOOLKIT, HostFacts, Options
from installer.runner import run


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, values unquoted as a shell would (os-release(5))."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value]
        fields[key.strip()] = words[0] if words else ""
    return fields


def read_os_release(paths: Iterable[Path]) -> dict[str, str]:
    """The first of ``paths`` that exists (``HostPaths.os_release_files``), parsed."""
    for path in paths:
        try:
            return parse_os_release(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            continue
    return {}


def distro_name(os_release: Mapping[str, str]) -> str:
    """The name bundles use for a distro release: ID plus VERSION_ID, e.g. ``ubuntu22.04``."""
    return f"{os_release.get('ID', 'unknown')}{os_release.get('VERSION_ID', '')}"


def dpkg_architecture() -> str:
    proc = run(
        ["dpkg", "--print-architecture"],
        hint="gpubundle installs .deb packages and needs dpkg (Debian or Ubuntu)",
    )
    return proc.stdout.decode().strip()


def free_bytes(path: Path) -> int:
    """Bytes free on the filesystem that holds ``path`` (or its nearest existing ancestor)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def is_root() -> bool:
    return os.geteuid() == 0


DPKG_QUERY_FORMAT = r"${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n"


def dpkg_query_argv(names: Iterable[str], admindir: Path | None = None) -> list[str]:
    """``dpkg-query -W`` of ``names``, in ``admindir`` (None: dpkg's own database)."""
    where = [f"--admindir={admindir}"] if admindir is not None else []
    return ["dpkg-query", *where, "-W", f"-f={DPKG_QUERY_FORMAT}", *sorted(set(names))]


def parse_dpkg_query(output: str, arch: str) -> dict[str, str]:
    """{name: version} of the listed packages that are installed for ``arch`` or ``all``.

    Only packages whose status is "installed" count: a half-installed or
    config-files-only package is not present at any version.
    """
    found: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        name, pkg_arch, version, status = parts
        if len(status) >= 2 and status[1] == "i" and pkg_arch in (arch, "all") and version:
            found[name] = version
    return found


def installed_versions(
    names: Iterable[str], arch: str, admindir: Path | None = None
) -> dict[str, str]:
    """Which of ``names`` dpkg has installed, at which version (absent: not installed);
    ``admindir``: the database to ask (``HostPaths.dpkg_admin_dir``; None: dpkg's own)."""
    wanted = list(names)
    if not wanted:
        return {}
    # dpkg-query exits 1 when some names are unknown; it still lists the others.
    proc = run(dpkg_query_argv(wanted, admindir), check=False, hint="dpkg-query comes with dpkg")
    if proc.returncode not in (0, 1):
        raise GpubundleError(
            "dpkg-query cannot read the package database",
            hint="run `dpkg --audit` and fix what it reports, then retry",
            details=proc.stderr.decode(errors="replace").splitlines()[-10:],
        )
    return parse_dpkg_query(proc.stdout.decode(errors="replace"), arch)


def dpkg_facts_after_lock(
    wait_s: float,
    on_wait: Callable[[tuple[LockHolder, ...]], None],
    admin_dir: Path,
    proc: Path,
    *,
    other_locks: Iterable[Path],
    poll_s: float = 1.0,
) -> DpkgFacts:
    """dpkg's state once nobody holds its locks, or as it is after ``wait_s`` seconds.

    An apt run of an earlier, killed install goes on in its own session; this waits for
    it (``on_wait`` is told who holds the lock, once per new holder) so that preflight
    decides on the state it leaves. ``other_locks``: apt's (``HostPaths.apt_lists_lock``). A holder still there at the end is preflight's finding.
    """
    deadline = time.monotonic() + wait_s
    told: set[int] = set()
    while True:
        facts = read_dpkg_facts(admin_dir, proc, other_locks)
        if not facts.lock_holders or time.monotonic() >= deadline:
            return facts
        if not {h.pid for h in facts.lock_holders} <= told:
            told |= {h.pid for h in facts.lock_holders}
            on_wait(facts.lock_holders)
        time.sleep(poll_s)


def gather_host_facts(
    manifest: Manifest,
    opts: Options,
    bundle_dir: Path,
    host: HostPaths,
    *,
    dpkg: DpkgFacts | None = None,
    packages_step_under_way: bool = False,
) -> HostFacts:
    """Everything preflight decides on; the engine and the driver only when they matter.

    Host files are read under ``host``'s root. ``dpkg`` is dpkg's state as
    ``dpkg_facts_after_lock`` read it (None: not read);
    ``packages_step_under_way`` whether gpubundle's record shows an unfinished packages
    step (its own dpkg work, which install may finish)."""
    try:
        arch = dpkg_architecture()
    except GpubundleError:
        arch = "unknown (no dpkg)"
    names = {p.name for p in manifest.packages} | {TOOLKIT}
    admindir = host.dpkg_admin_dir
    installed = installed_versions(names, manifest.arch, admindir) if "(" not in arch else {}
    toolkit = installed.get(TOOLKIT)
    return HostFacts(
        is_root=is_root(),
        distro=distro_name(read_os_release(host.os_release_files)),
        arch=arch,
        free_bytes=free_bytes(bundle_dir.parent),
        already_extracted=bundle_dir.is_dir(),
        toolkit_installed=toolkit,
        engine=adapter.detect(host) if (adapter := engines.engine_for(opts.runtime)) else None,
        driver=None
        if opts.skip_gpu_checks
        else read_driver_facts(proc_modules=host.proc / "modules"),
        dpkg=dpkg,
        packages_step_under_way=packages_step_under_way,
        disk=gather_disk_facts(installed, host),
    )
