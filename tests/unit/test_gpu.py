"""Driver facts: nvidia-smi output parsing, nouveau detection, and the fallbacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from installer import gpu
from installer.hostpaths import HostPaths

PROC_MODULES = HostPaths.system().proc / "modules"  # this machine's
SMI_CSV = """\
0, NVIDIA H200, GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1, 143771, 580.159.04
1, NVIDIA H200, GPU-0c3e1a55-2b1e-4f7b-9a3c-1d2e3f4a5b6c, 143771, 580.159.04
"""
SMI_BANNER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
"""
SMI_APPS = "4242, python3, GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1, 70000\n17, x, GPU-1, [N/A]\n"
MODULES_NOUVEAU = "nouveau 2355200 0 - Live 0x0000000000000000\ndrm 614400 3 nouveau, Live 0x0\n"
MODULES_NVIDIA = "nvidia_uvm 1437696 0 - Live 0x0\nnvidia 9580544 1 nvidia_uvm, Live 0x0\n"


def test_parse_smi_csv() -> None:
    gpus, driver = gpu.parse_smi_csv(SMI_CSV)
    assert driver == "580.159.04"
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0] == gpu.GpuInfo(
        0, "NVIDIA H200", "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1", 143771
    )


def test_parse_smi_csv_ignores_noise() -> None:
    assert gpu.parse_smi_csv("No devices were found\n") == ((), "")


def test_banner_and_apps() -> None:
    assert gpu.parse_smi_cuda_version(SMI_BANNER) == "13.0"
    procs = gpu.parse_smi_apps(SMI_APPS)
    assert procs[0] == gpu.GpuProcess(
        4242, "python3", "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1", 70000
    )
    assert procs[1].used_mib is None


def test_nvml_cuda_version() -> None:
    assert gpu.cuda_from_nvml(12040) == "12.4"
    assert gpu.cuda_from_nvml(13000) == "13.0"


def test_module_problems() -> None:
    assert "nouveau" in gpu.module_problem(gpu.loaded_modules(MODULES_NOUVEAU))
    assert "not loaded" in gpu.module_problem(set())
    assert "neither NVML" in gpu.module_problem(gpu.loaded_modules(MODULES_NVIDIA))


def _fake_smi(directory: Path) -> Path:
    smi = directory / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        f"if [ \"$1\" = \"{gpu.SMI_QUERY[0]}\" ]; then printf '%s' '{SMI_CSV}'; exit 0; fi\n"
        f"printf '%s' '{SMI_BANNER}'\n"
    )
    smi.chmod(0o755)
    return smi


def test_falls_back_to_nvidia_smi_outside_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No NVML library anywhere we look; nvidia-smi only at a /usr/local/nvidia-like place.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    smi = _fake_smi(tmp_path)
    facts = gpu.read_driver_facts(
        proc_modules=tmp_path / "modules",  # not read: nvidia-smi answers
        nvml_libraries=[str(tmp_path / "missing.so")],
        smi_locations=[str(smi)],
    )
    assert facts.source == "nvidia-smi"
    assert facts.version == "580.159.04"
    assert facts.cuda_version == "13.0"
    assert facts.uuids[0] == "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1"


def test_no_driver_reports_nouveau(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    modules = tmp_path / "modules"
    modules.write_text(MODULES_NOUVEAU)
    facts = gpu.read_driver_facts(
        proc_modules=modules, nvml_libraries=[str(tmp_path / "x.so")], smi_locations=[]
    )
    assert (facts.loaded, facts.source) == (False, "none")
    assert "nouveau" in facts.problem


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="a real driver is present")
def test_real_host_without_driver_does_not_raise() -> None:
    facts = gpu.read_driver_facts(proc_modules=PROC_MODULES)
    assert facts.source in ("none", "pynvml", "nvidia-smi")
    assert facts.loaded is (facts.source != "none")
