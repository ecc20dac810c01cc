"""Known-trap checks, the driver checks and the image checks, on facts from fixtures."""

from __future__ import annotations

from pathlib import Path

from installer.doctor.driver import (
    DriverCheckFacts,
    check_gpus,
    check_loaded,
    check_memory,
    check_nouveau,
)
from installer.doctor.images import ImageFacts, check_image_cuda, check_image_nvidia_smi
from installer.doctor.traps import (
    TrapFacts,
    check_driver_path,
    check_rootless,
    check_selinux,
    check_systemd_cgroup,
    parse_toml_bool,
    security_options,
)
from installer.gpu import DriverFacts, GpuInfo, GpuProcess
from installer.hostpaths import HostPaths

TOML = HostPaths.system().nvidia_runtime_config  # where the facts read no-cgroups
CONFIG = """
#no-cgroups = false
[nvidia-container-cli]
environment = []
no-cgroups = true  # rootless
[nvidia-container-runtime]
no-cgroups = false
"""


def test_parse_toml_bool() -> None:
    assert parse_toml_bool(CONFIG, "nvidia-container-cli", "no-cgroups") is True
    assert parse_toml_bool(CONFIG, "nvidia-container-runtime", "no-cgroups") is False
    assert (
        parse_toml_bool(
            "[nvidia-container-cli]\n#no-cgroups = true\n", "nvidia-container-cli", "no-cgroups"
        )
        is None
    )


def test_security_options() -> None:
    info = {"SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]}
    assert security_options(info) == {"seccomp", "rootless", "cgroupns"}


def test_systemd_cgroup_without_char_links_warns() -> None:
    f = TrapFacts(
        True,
        TOML,
        "systemd",
        nvidia_devices=("/dev/nvidia0", "/dev/nvidiactl"),
        devices_without_char_link=("/dev/nvidia0",),
    )
    finding = check_systemd_cgroup(f)
    assert finding.status == "warning"
    assert "Failed to initialize NVML: Unknown Error" in finding.summary
    assert finding.fix[0] == "nvidia-ctk system create-dev-char-symlinks --create-all"
    linked = TrapFacts(True, TOML, "systemd", nvidia_devices=("/dev/nvidia0",))
    assert check_systemd_cgroup(linked).status == "ok"
    assert check_systemd_cgroup(TrapFacts(True, TOML, "cgroupfs")).status == "ok"
    assert check_systemd_cgroup(TrapFacts(False, TOML)).status == "skipped"


def test_rootless_needs_no_cgroups() -> None:
    finding = check_rootless(TrapFacts(True, TOML, rootless=True, no_cgroups=None))
    assert finding.status == "failure"
    assert finding.fix[0] == "nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place"
    assert check_rootless(TrapFacts(True, TOML, rootless=True, no_cgroups=True)).status == "ok"
    assert check_rootless(TrapFacts(True, TOML)).status == "ok"


def test_selinux_enforcing_without_labels() -> None:
    f = TrapFacts(
        True,
        TOML,
        selinux_in_docker=True,
        selinux_enforcing=True,
        device_labels={"/dev/nvidia0": "system_u:object_r:device_t:s0"},
    )
    finding = check_selinux(f)
    assert finding.status == "warning"
    assert "label=disable" in finding.fix[0]
    labelled = TrapFacts(
        True,
        TOML,
        selinux_in_docker=True,
        selinux_enforcing=True,
        device_labels={"/dev/nvidia0": "system_u:object_r:container_file_t:s0"},
    )
    assert check_selinux(labelled).status == "ok"
    assert check_selinux(TrapFacts(True, TOML)).status == "ok"


def test_driver_outside_default_path() -> None:
    finding = check_driver_path(TrapFacts(True, TOML, host_smi="/usr/local/nvidia/bin/nvidia-smi"))
    assert finding.status == "warning"
    assert finding.fix[0].startswith("PATH=/usr/local/nvidia/bin:$PATH nvidia-ctk cdi generate")
    assert any("/usr/local/nvidia/lib64" in fix for fix in finding.fix)
    assert check_driver_path(TrapFacts(True, TOML, host_smi="/usr/bin/nvidia-smi")).status == "ok"
    assert check_driver_path(TrapFacts(True, TOML)).status == "skipped"


def test_wrapper_on_path_is_seen_through() -> None:
    """Issue #9: /usr/bin/nvidia-smi was a script exec'ing /usr/local/nvidia/bin/nvidia-smi;
    doctor said ok. The driver lives outside the default PATH: that is a warning."""
    wrapped = TrapFacts(
        True,
        TOML,
        host_smi="/usr/bin/nvidia-smi",
        driver_smi="/usr/local/nvidia/bin/nvidia-smi",
        smi_chain=(
            "/usr/bin/nvidia-smi: a script, #! /bin/sh, runs /usr/local/nvidia/bin/nvidia-smi",
        ),
    )
    finding = check_driver_path(wrapped)
    assert finding.status == "warning"
    assert "is a wrapper of the driver's /usr/local/nvidia/bin/nvidia-smi" in finding.summary
    assert finding.fix[0].startswith("PATH=/usr/local/nvidia/bin:$PATH nvidia-ctk cdi generate")
    assert not any(fix.startswith("ln -s") for fix in finding.fix)  # /usr/bin/nvidia-smi exists


NO_DRIVER = DriverFacts(
    False, "", "", (), "none", "the nouveau driver is loaded instead of NVIDIA's"
)
GPU = GpuInfo(0, "NVIDIA H100", "GPU-aaaa", 81559)
DRIVER = DriverFacts(True, "550.54.15", "12.4", (GPU,), "pynvml", "")


def test_driver_checks() -> None:
    nouveau = DriverCheckFacts(NO_DRIVER, frozenset({"nouveau", "drm"}))
    loaded = check_loaded(nouveau)
    assert loaded.status == "failure"
    assert "blacklist nouveau" in loaded.fix[0]
    assert check_nouveau(nouveau).status == "failure"
    assert "instead of NVIDIA" in check_nouveau(nouveau).summary
    assert check_gpus(nouveau).status == "skipped"
    good = DriverCheckFacts(DRIVER, frozenset({"nvidia"}))
    assert check_loaded(good).status == "ok"
    assert "550.54.15" in check_loaded(good).summary
    assert check_gpus(good).evidence == ["GPU 0: NVIDIA H100 (GPU-aaaa), 81559 MiB"]


def test_memory_nearly_full() -> None:
    procs = (GpuProcess(42, "python3", "GPU-aaaa", 80000), GpuProcess(7, "x", "GPU-aaaa", None))
    finding = check_memory(DriverCheckFacts(DRIVER, processes=procs))
    assert finding.status == "warning"
    assert finding.evidence[0] == "GPU-aaaa: pid 42 python3 uses 80000 MiB"
    light = check_memory(DriverCheckFacts(DRIVER, processes=(GpuProcess(1, "a", "GPU-aaaa", 100),)))
    assert light.status == "ok"
    assert check_memory(DriverCheckFacts(NO_DRIVER)).status == "skipped"


REQ = "cuda>=12.4 brand=tesla,driver>=470,driver<471"


def test_image_needs_newer_driver() -> None:
    img = ImageFacts(
        "cuda:12.4",
        True,
        architecture="amd64",
        env={"NVIDIA_REQUIRE_CUDA": REQ},
        glibc_loader=True,
        driver_version="535.104.05",
    )
    finding = check_image_cuda(img)
    assert finding.status == "failure"
    assert "550" in finding.fix[0]
    newer = ImageFacts(
        "cuda:12.4", True, env={"NVIDIA_REQUIRE_CUDA": REQ}, driver_version="550.54.15"
    )
    assert check_image_cuda(newer).status == "ok"
    nodriver = ImageFacts("cuda:12.4", True, env={"NVIDIA_REQUIRE_CUDA": REQ})
    assert check_image_cuda(nodriver).status == "skipped"


def test_image_without_glibc_or_usr_bin() -> None:
    static = ImageFacts("busybox:static", True, architecture="amd64", glibc_loader=False)
    finding = check_image_nvidia_smi(static)
    assert finding.status == "failure"
    assert "/lib64/ld-linux-x86-64.so.2" in finding.summary
    odd_path = ImageFacts(
        "x", True, architecture="amd64", env={"PATH": "/opt/bin"}, glibc_loader=True
    )
    assert check_image_nvidia_smi(odd_path).status == "warning"
    missing = ImageFacts("gone:1", False, error="No such image")
    assert check_image_nvidia_smi(missing).status == "skipped"


def test_gather_traps_reads_fixture_files(tmp_path: Path) -> None:
    from installer.doctor.checks import DoctorPaths
    from installer.doctor.traps import gather_traps
    from installer.hostpaths import HostPaths

    host = HostPaths(tmp_path)  # the doctor's paths, all under this root
    for path, text in ((host.nvidia_runtime_config, CONFIG), (host.selinux_enforce, "0\n")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    host.dev.mkdir()
    paths = DoctorPaths.on(host)
    assert paths.config_toml == tmp_path / "etc/nvidia-container-runtime/config.toml"
    info = {"CgroupDriver": "systemd", "SecurityOptions": ["name=rootless"]}
    f = gather_traps(paths, info)
    assert (f.cgroup_driver, f.rootless, f.no_cgroups, f.selinux_enforcing) == (
        "systemd",
        True,
        True,
        False,
    )
    assert f.nvidia_devices == ()
