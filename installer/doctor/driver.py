"""Driver checks: NVIDIA's driver loaded (not nouveau), its version, its GPUs, and who
holds GPU memory (the first question of every out-of-memory report)."""

from __future__ import annotations

from dataclasses import dataclass

from installer.doctor.checks import DoctorPaths, Finding, failure, ok, skipped, warning
from installer.errors import GpubundleError
from installer.gpu import DriverFacts, GpuProcess, gpu_processes, loaded_modules, read_driver_facts

BLACKLIST_NOUVEAU = (
    "printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' "
    "> /etc/modprobe.d/blacklist-nouveau.conf && update-initramfs -u && reboot"
)
INSTALL_DRIVER = (
    "install the NVIDIA driver from files carried to this host (NVIDIA's .run installer, "
    "or the distribution's driver .debs with dpkg -i), then reboot"
)
# Memory use (of a GPU's total) above which doctor warns.
BUSY_FRACTION = 0.9


@dataclass(frozen=True)
class DriverCheckFacts:
    driver: DriverFacts
    modules: frozenset[str] = frozenset()
    processes: tuple[GpuProcess, ...] = ()
    processes_error: str = ""


def gather_driver(paths: DoctorPaths) -> DriverCheckFacts:
    proc_modules = paths.proc / "modules"
    driver = read_driver_facts(proc_modules=proc_modules)
    try:
        modules = frozenset(loaded_modules(proc_modules.read_text()))
    except OSError:
        modules = frozenset()
    processes: tuple[GpuProcess, ...] = ()
    error = ""
    if driver.loaded:
        try:
            processes = tuple(gpu_processes())
        except GpubundleError as exc:
            error = exc.message
    return DriverCheckFacts(driver, modules, processes, error)


def check_loaded(f: DriverCheckFacts) -> Finding:
    cid = "driver.loaded"
    d = f.driver
    if not d.loaded:
        fix = [BLACKLIST_NOUVEAU] if "nouveau" in f.modules else [INSTALL_DRIVER]
        return failure(cid, "no NVIDIA driver answers", [d.problem], [*fix, "nvidia-smi"])
    if d.problem:
        return failure(cid, f"the NVIDIA driver is loaded but failing: {d.problem}", [d.source])
    return ok(
        cid,
        f"NVIDIA driver {d.version} (CUDA {d.cuda_version or '?'}) answers via {d.source}",
        [f"{len(d.gpus)} GPU(s)"],
    )


def check_nouveau(f: DriverCheckFacts) -> Finding:
    cid = "driver.nouveau"
    if "nouveau" in f.modules:
        summary = "the nouveau driver is loaded"
        if "nvidia" not in f.modules:
            summary += " instead of NVIDIA's: containers cannot use the GPU"
        return failure(cid, summary, ["/proc/modules lists nouveau"], [BLACKLIST_NOUVEAU])
    return ok(cid, "nouveau is not loaded")


def check_gpus(f: DriverCheckFacts) -> Finding:
    cid = "driver.gpus"
    if not f.driver.loaded:
        return skipped(cid, "no NVIDIA driver is loaded")
    gpus = f.driver.gpus
    evidence = [f"GPU {g.index}: {g.name} ({g.uuid}), {g.memory_total_mib} MiB" for g in gpus]
    if not gpus:
        return failure(
            cid,
            "the driver sees no GPU",
            evidence,
            ["dmesg | grep -i -e nvidia -e NVRM", "lspci -nn | grep -i nvidia"],
        )
    return ok(cid, f"{len(gpus)} GPU(s) visible", evidence)


def check_memory(f: DriverCheckFacts) -> Finding:
    cid = "gpu.memory"
    if not f.driver.loaded:
        return skipped(cid, "no NVIDIA driver is loaded")
    if f.processes_error:
        return skipped(cid, f"cannot list GPU processes: {f.processes_error}")
    totals = {g.uuid: g.memory_total_mib for g in f.driver.gpus}
    used: dict[str, int] = {}
    evidence = []
    for p in sorted(f.processes, key=lambda p: (p.gpu_uuid, -(p.used_mib or 0))):
        amount = "unknown" if p.used_mib is None else f"{p.used_mib} MiB"
        evidence.append(f"{p.gpu_uuid}: pid {p.pid} {p.name or '?'} uses {amount}")
        used[p.gpu_uuid] = used.get(p.gpu_uuid, 0) + (p.used_mib or 0)
    busy = [u for u, mib in used.items() if totals.get(u) and mib >= BUSY_FRACTION * totals[u]]
    if busy:
        return warning(
            cid,
            f"GPU memory nearly full on {', '.join(busy)}: new containers may run out of memory",
            evidence,
            ["nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv"],
        )
    summary = (
        f"{len(f.processes)} process(es) use GPU memory" if f.processes else "no GPU processes"
    )
    return ok(cid, summary, evidence)
