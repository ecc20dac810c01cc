"""Known traps: set-ups where everything is installed and yet GPU containers fail.

- systemd cgroup driver with the legacy hook: after ``systemctl daemon-reload`` running
  containers lose their GPUs ("Failed to initialize NVML: Unknown Error") unless
  /dev/char holds links to the NVIDIA device nodes;
- rootless Docker: nvidia-container-cli cannot touch cgroups, so ``no-cgroups = true``;
- SELinux enforcing: device nodes and driver files without a container label are denied;
- a driver living outside the default paths (/usr/local/nvidia): the hook cannot find it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer import nvidiasmi
from installer.doctor.checks import DoctorPaths, Finding, failure, ok, skipped, warning
from installer.gpu import find_nvidia_smi
from installer.hostpaths import HostPaths

DEFAULT_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
CONTAINER_LABELS = ("container_file_t", "container_runtime_exec_t", "xserver_misc_device_t")
RESTART = "systemctl restart docker  # or: service docker restart"


@dataclass(frozen=True)
class TrapFacts:
    docker_known: bool  # whether docker info answered (the rest of its fields mean something)
    config_toml: Path  # the toolkit's config.toml (DoctorPaths.config_toml), no_cgroups' file
    cgroup_driver: str = ""
    rootless: bool = False
    selinux_in_docker: bool = False
    selinux_enforcing: bool = False
    nvidia_devices: tuple[str, ...] = ()  # /dev/nvidia* character devices
    devices_without_char_link: tuple[str, ...] = ()
    device_labels: Mapping[str, str] | None = None
    no_cgroups: bool | None = None  # config.toml [nvidia-container-cli] no-cgroups
    host_smi: str = ""
    driver_smi: str = ""  # the driver's own nvidia-smi behind host_smi (through wrappers)
    smi_chain: tuple[str, ...] = ()  # what was looked at on the way, described


def parse_toml_bool(text: str, section: str, key: str) -> bool | None:
    """``key`` in ``[section]`` of a TOML file, for the few plain booleans we need (3.8 to 3.10 have no tomllib)."""
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line.strip("[]").strip().strip('"')
        elif current == section and "=" in line:
            name, _, value = line.partition("=")
            if name.strip().strip('"') == key:
                value = value.strip().lower()
                return True if value == "true" else False if value == "false" else None
    return None


def security_options(info: Mapping[str, Any] | None) -> set[str]:
    """``name=rootless`` → ``rootless``; Docker lists them as "name=X,opt=Y" strings."""
    names = set()
    for option in (info or {}).get("SecurityOptions") or []:
        match = re.match(r"name=([^,]+)", str(option))
        if match:
            names.add(match.group(1))
    return names


def _nvidia_devices(dev: Path) -> list[Path]:
    found = []
    for path in sorted(dev.glob("nvidia*")):
        try:
            if stat.S_ISCHR(path.stat().st_mode):
                found.append(path)
        except OSError:
            continue
    return found


def _selinux_label(path: Path) -> str:
    try:
        return os.getxattr(path, "security.selinux").decode(errors="replace").rstrip("\0")
    except OSError:
        return ""


def gather_traps(paths: DoctorPaths, info: Mapping[str, Any] | None) -> TrapFacts:
    options = security_options(info)
    host_smi = find_nvidia_smi()
    binary, chain = nvidiasmi.driver_binary(host_smi) if host_smi else (None, ())
    devices = _nvidia_devices(paths.dev)
    unlinked = []
    for device in devices:
        rdev = device.stat().st_rdev
        if not (paths.dev_char / f"{os.major(rdev)}:{os.minor(rdev)}").exists():
            unlinked.append(str(device))
    try:
        enforcing = paths.selinux_enforce.read_text().strip() == "1"
    except OSError:
        enforcing = False
    try:
        no_cgroups = parse_toml_bool(
            paths.config_toml.read_text(), "nvidia-container-cli", "no-cgroups"
        )
    except OSError:
        no_cgroups = None
    return TrapFacts(
        docker_known=info is not None,
        cgroup_driver=str((info or {}).get("CgroupDriver", "")),
        rootless="rootless" in options,
        selinux_in_docker="selinux" in options,
        selinux_enforcing=enforcing,
        nvidia_devices=tuple(map(str, devices)),
        devices_without_char_link=tuple(unlinked),
        device_labels={str(d): _selinux_label(d) for d in devices} if enforcing else None,
        no_cgroups=no_cgroups,
        config_toml=paths.config_toml,
        host_smi=host_smi,
        driver_smi=binary.path if binary else "",
        smi_chain=tuple(s.describe() for s in chain),
    )


def check_systemd_cgroup(f: TrapFacts) -> Finding:
    cid = "traps.systemd-cgroup"
    if not f.docker_known:
        return skipped(cid, "the Docker daemon is not running")
    evidence = [f"docker info: CgroupDriver = {f.cgroup_driver or 'unknown'}"]
    if f.cgroup_driver != "systemd":
        return ok(cid, f"Docker uses the {f.cgroup_driver or 'default'} cgroup driver", evidence)
    if not f.nvidia_devices:
        return skipped(cid, "no /dev/nvidia* device nodes (no driver loaded)", evidence)
    if f.devices_without_char_link:
        return warning(
            cid,
            "systemd cgroup driver without /dev/char links for the NVIDIA devices: after "
            "`systemctl daemon-reload` GPU containers fail with "
            "'Failed to initialize NVML: Unknown Error'",
            [*evidence, *(f"no /dev/char link for {d}" for d in f.devices_without_char_link)],
            [
                "nvidia-ctk system create-dev-char-symlinks --create-all",
                "or use CDI: docker run --device nvidia.com/gpu=all …",
            ],
        )
    return ok(cid, "systemd cgroup driver with /dev/char links in place", evidence)


def check_rootless(f: TrapFacts) -> Finding:
    cid = "traps.rootless"
    if not f.docker_known:
        return skipped(cid, "the Docker daemon is not running")
    if not f.rootless:
        return ok(cid, "Docker runs as root (rootful)")
    evidence = [f"{f.config_toml}: [nvidia-container-cli] no-cgroups = {f.no_cgroups}"]
    if f.no_cgroups is not True:
        return failure(
            cid,
            "rootless Docker needs no-cgroups = true in the NVIDIA runtime's config.toml",
            evidence,
            [
                "nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place",
                "systemctl --user restart docker",
            ],
        )
    return ok(cid, "rootless Docker with no-cgroups = true", evidence)


def check_selinux(f: TrapFacts) -> Finding:
    cid = "traps.selinux"
    if not f.selinux_enforcing:
        return ok(cid, "SELinux is not enforcing")
    if not f.selinux_in_docker:
        return ok(
            cid, "SELinux is enforcing but Docker does not apply labels (selinux-enabled off)"
        )
    labels = f.device_labels or {}
    unlabelled = [d for d, label in labels.items() if not any(t in label for t in CONTAINER_LABELS)]
    evidence = [f"{d}: {label or 'no label'}" for d, label in labels.items()]
    if unlabelled or not labels:
        return warning(
            cid,
            "SELinux is enforcing and the NVIDIA devices carry no container label: "
            "GPU containers get 'permission denied'",
            evidence,
            [
                "docker run --security-opt label=disable --gpus all …",
                "or: setsebool -P container_use_devices on",
            ],
        )
    return ok(cid, "SELinux enforcing; NVIDIA devices are labelled for containers", evidence)


def check_driver_path(f: TrapFacts) -> Finding:
    cid = "traps.driver-path"
    if not f.host_smi:
        return skipped(cid, "nvidia-smi not found on this host")
    real = f.driver_smi or f.host_smi
    real_dir = str(Path(real).parent)
    evidence = [*f.smi_chain] or [f.host_smi]
    wrapper = bool(f.driver_smi) and f.driver_smi != f.host_smi
    if real_dir in DEFAULT_PATH and not wrapper:
        return ok(cid, f"nvidia-smi is at {f.host_smi}", evidence)
    fix = [
        f"PATH={real_dir}:$PATH nvidia-ctk cdi generate --output={HostPaths.system().cdi_spec}  "
        "# a CDI spec that mounts the driver's own nvidia-smi",
    ]
    if real_dir not in DEFAULT_PATH:
        fix.append(
            f"echo {Path(real_dir).parent}/lib64 > /etc/ld.so.conf.d/nvidia.conf && ldconfig"
        )
    if wrapper:
        summary = (
            f"{f.host_smi} is a wrapper of the driver's {f.driver_smi}: `nvidia-ctk cdi "
            "generate` mounts the first nvidia-smi on PATH, the wrapper, whose target "
            "containers do not have"
        )
    else:
        summary = (
            f"the driver lives outside the default paths ({f.host_smi}): the container hook "
            "looks in the default PATH and the ld cache, so containers miss nvidia-smi"
        )
        fix.append(f"ln -s {f.host_smi} /usr/bin/nvidia-smi")
    return warning(cid, summary, [*evidence, "default PATH: " + ":".join(DEFAULT_PATH)], fix)
