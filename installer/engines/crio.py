"""The CRI-O engine adapter: the drop-in /etc/crio/crio.conf.d/99-nvidia.toml, CRI-O
restarted through systemd or its init script (never directly)."""

from __future__ import annotations

from installer.engines import EngineAdapter
from installer.engines.cri import CriAdapter


class CrioAdapter(CriAdapter):
    def plan_lines(self, path: str, engine_kind: str) -> tuple[tuple[str, ...], str]:
        change = f"write {path}: CRI-O drop-in with the nvidia runtime, by nvidia-ctk"
        return (change,), "restart CRI-O (systemctl or `service`)"


ADAPTER: EngineAdapter = CrioAdapter("crio", "crio.runtime.runtimes.nvidia", ("cri-o",), "cri-o")
