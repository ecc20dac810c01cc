"""What the NVIDIA driver says about this host: version, CUDA version, GPUs, processes.

NVML (through pynvml, imported lazily) is asked first. Its library is not always on
the loader path (``/usr/local/nvidia/lib64`` in many GPU containers and cloud
images), so known locations are tried before giving up. ``nvidia-smi`` is the
fallback, from PATH or ``/usr/local/nvidia/bin``. When neither answers, the reason
is reported, e.g. the nouveau driver loaded instead of NVIDIA's.
"""

from __future__ import annotations

import ctypes
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.errors import GpubundleError
from installer.runner import run

NVML_LIBRARIES = (
    "libnvidia-ml.so.1",
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/local/nvidia/lib/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/usr/lib64/libnvidia-ml.so.1",
    "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
)
SMI_LOCATIONS = ("/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/nvidia-smi")
SMI_QUERY = (
    "--query-gpu=index,name,uuid,memory.total,driver_version",
    "--format=csv,noheader,nounits",
)
SMI_APPS_QUERY = (
    "--query-compute-apps=pid,process_name,gpu_uuid,used_memory",
    "--format=csv,noheader,nounits",
)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    memory_total_mib: int


@dataclass(frozen=True)
class DriverFacts:
    loaded: bool
    version: str
    cuda_version: str
    gpus: tuple[GpuInfo, ...]
    source: str  # "pynvml" | "nvidia-smi" | "none"
    problem: str

    @property
    def uuids(self) -> tuple[str, ...]:
        return tuple(g.uuid for g in sorted(self.gpus, key=lambda g: g.index))


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    gpu_uuid: str
    used_mib: int | None  # None where the driver does not say (e.g. in a container)


# --- pure parsing -------------------------------------------------------------------


def parse_smi_csv(text: str) -> tuple[tuple[GpuInfo, ...], str]:
    """GPUs and driver version from ``nvidia-smi`` with :data:`SMI_QUERY`."""
    gpus: list[GpuInfo] = []
    driver = ""
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        index, name, uuid, memory, driver = fields
        gpus.append(GpuInfo(int(index), name, uuid, int(memory) if memory.isdigit() else 0))
    return tuple(gpus), driver


def parse_smi_cuda_version(text: str) -> str:
    """The "CUDA Version: 12.4" in ``nvidia-smi``'s banner, or ""."""
    match = re.search(r"CUDA Version:\s*([0-9.]+)", text)
    return match.group(1) if match else ""


def parse_smi_apps(text: str) -> list[GpuProcess]:
    procs = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        used = int(fields[3]) if fields[3].isdigit() else None
        procs.append(GpuProcess(int(fields[0]), fields[1], fields[2], used))
    return procs


def loaded_modules(proc_modules_text: str) -> set[str]:
    return {line.split()[0] for line in proc_modules_text.splitlines() if line.strip()}


def module_problem(modules: set[str]) -> str:
    """Why no NVIDIA driver answers, judged from the loaded kernel modules."""
    if "nouveau" in modules and "nvidia" not in modules:
        return (
            "the nouveau driver is loaded instead of NVIDIA's; blacklist nouveau, "
            "install the NVIDIA driver and reboot"
        )
    if "nvidia" not in modules:
        return (
            "the nvidia kernel module is not loaded; install the NVIDIA driver (or modprobe nvidia)"
        )
    return "the nvidia kernel module is loaded but neither NVML nor nvidia-smi answered"


def cuda_from_nvml(value: int) -> str:
    """NVML's 12040 -> "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


# --- reading the host ---------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _load_nvml(libraries: Sequence[str]) -> Any:
    """pynvml with its library loaded from the first location that works, or None."""
    try:
        import pynvml
    except ImportError:
        return None
    if getattr(pynvml, "nvmlLib", None) is None:
        for lib in libraries:
            try:
                pynvml.nvmlLib = ctypes.CDLL(lib)
                break
            except OSError:
                continue
        else:
            return None
    return pynvml


def _facts_from_nvml(libraries: Sequence[str]) -> DriverFacts | None:
    nvml = _load_nvml(libraries)
    if nvml is None:
        return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(
                GpuInfo(
                    i,
                    _text(nvml.nvmlDeviceGetName(handle)),
                    _text(nvml.nvmlDeviceGetUUID(handle)),
                    int(memory),
                )
            )
        version = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = cuda_from_nvml(int(nvml.nvmlSystemGetCudaDriverVersion()))
    except nvml.NVMLError as exc:
        return DriverFacts(True, "", "", (), "pynvml", f"NVML failed: {exc}")
    finally:
        nvml.nvmlShutdown()
    return DriverFacts(True, version, cuda, tuple(gpus), "pynvml", "")


def find_nvidia_smi(locations: Sequence[str] = SMI_LOCATIONS) -> str:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    return next((loc for loc in locations if Path(loc).is_file()), "")


def _facts_from_smi(smi: str) -> DriverFacts | None:
    if not smi:
        return None
    proc = run([smi, *SMI_QUERY], check=False, timeout=60)
    if proc.returncode != 0:
        return None
    gpus, driver = parse_smi_csv(proc.stdout.decode(errors="replace"))
    banner = run([smi], check=False, timeout=60).stdout.decode(errors="replace")
    return DriverFacts(True, driver, parse_smi_cuda_version(banner), gpus, "nvidia-smi", "")


def read_driver_facts(
    *,
    proc_modules: Path,
    nvml_libraries: Sequence[str] = NVML_LIBRARIES,
    smi_locations: Sequence[str] = SMI_LOCATIONS,
) -> DriverFacts:
    """Ask NVML, then nvidia-smi; never raises for a host without a driver. Neither
    answering, ``proc_modules`` (``HostPaths.proc / "modules"``) says why."""
    facts = _facts_from_nvml(nvml_libraries) or _facts_from_smi(find_nvidia_smi(smi_locations))
    if facts is not None:
        return facts
    try:
        modules = loaded_modules(proc_modules.read_text())
    except OSError:
        modules = set()
    return DriverFacts(False, "", "", (), "none", module_problem(modules))


def gpu_processes(
    *, nvml_libraries: Sequence[str] = NVML_LIBRARIES, smi_locations: Sequence[str] = SMI_LOCATIONS
) -> list[GpuProcess]:
    """Processes using GPU memory, per GPU (for doctor's out-of-memory check)."""
    nvml = _load_nvml(nvml_libraries)
    if nvml is not None:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            nvml = None
    if nvml is not None:
        try:
            procs = []
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
                for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    used = p.usedGpuMemory
                    procs.append(
                        GpuProcess(
                            int(p.pid),
                            _process_name(p.pid),
                            uuid,
                            None if used is None else int(used) // (1024 * 1024),
                        )
                    )
            return procs
        finally:
            nvml.nvmlShutdown()
    smi = find_nvidia_smi(smi_locations)
    if not smi:
        raise GpubundleError(
            "cannot list GPU processes: neither NVML nor nvidia-smi is available",
            hint="install the NVIDIA driver (it provides both)",
        )
    return parse_smi_apps(run([smi, *SMI_APPS_QUERY], timeout=60).stdout.decode(errors="replace"))


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
