"""On a real GPU host: the driver facts gpubundle reads match what nvidia-smi says.

Skips (conftest) where no nvidia-smi exists, e.g. on CI machines without a GPU.
"""

from __future__ import annotations

import re

import pytest

from installer import gpu
from installer.cuda_compat import check_image_against_driver
from installer.hostpaths import HostPaths
from installer.runner import run

pytestmark = [pytest.mark.integration, pytest.mark.gpu]

PROC_MODULES = HostPaths.system().proc / "modules"  # this machine's


def test_read_driver_facts_finds_the_gpus() -> None:
    facts = gpu.read_driver_facts(proc_modules=PROC_MODULES)
    assert facts.loaded, facts.problem
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", facts.version)
    assert re.fullmatch(r"\d+\.\d+", facts.cuda_version)
    assert facts.gpus
    assert all(g.uuid.startswith("GPU-") and g.memory_total_mib > 0 for g in facts.gpus)
    listing = run([gpu.find_nvidia_smi(), "-L"]).stdout.decode()
    assert set(facts.uuids) == set(re.findall(r"UUID: (GPU-[0-9a-f-]+)", listing))


def test_both_sources_agree() -> None:
    smi = gpu.find_nvidia_smi()
    out = run([smi, *gpu.SMI_QUERY]).stdout.decode()
    gpus, driver = gpu.parse_smi_csv(out)
    facts = gpu.read_driver_facts(proc_modules=PROC_MODULES)
    assert facts.version == driver
    assert facts.uuids == tuple(g.uuid for g in gpus)


def test_this_driver_runs_the_images_it_supports() -> None:
    facts = gpu.read_driver_facts(proc_modules=PROC_MODULES)
    assert check_image_against_driver(
        f"cuda>={facts.cuda_version}", facts.version, cuda_version=facts.cuda_version
    ).ok


def test_gpu_processes_lists_without_error() -> None:
    for proc in gpu.gpu_processes():
        assert proc.gpu_uuid.startswith("GPU-")
