"""Host facts for preflight: a host that fits every check (``GOOD``), with the engine and
driver facts it is made of (``Engine``, ``Driver``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from installer.dpkgstate import DpkgFacts
from installer.gpu import GpuInfo
from installer.preflight import HostFacts


@dataclass(frozen=True)
class Engine:
    kind: str = "docker.io"
    version: str = "26.1.5"
    problem: str = ""


@dataclass(frozen=True)
class Driver:
    loaded: bool = True
    version: str = "550.54.15"
    cuda_version: str = "12.4"
    gpus: Sequence[Any] = (
        GpuInfo(0, "NVIDIA H200", "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1", 143771),
    )
    problem: str = ""
    source: str = "pynvml"


GOOD = HostFacts(
    is_root=True,
    distro="ubuntu22.04",
    arch="amd64",
    free_bytes=50 * 2**30,
    already_extracted=False,
    toolkit_installed=None,
    engine=Engine(),
    driver=Driver(),
    dpkg=DpkgFacts(),
)
