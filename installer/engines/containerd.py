"""The containerd engine adapter: /etc/containerd/config.toml, containerd restarted
through systemd, its init script, or directly."""

from __future__ import annotations

from installer.engines import EngineAdapter
from installer.engines.cri import CriAdapter


class ContainerdAdapter(CriAdapter):
    def plan_lines(self, path: str, engine_kind: str) -> tuple[tuple[str, ...], str]:
        change = (
            f"modify {path}: add runtimes.nvidia with nvidia-ctk (the file is rewritten "
            "whole: its comments are lost, its keys kept; backup kept)"
        )
        return (change,), "restart containerd (systemctl, `service`, or containerd directly)"


ADAPTER: EngineAdapter = ContainerdAdapter(
    "containerd",
    "plugins.<cri plugin>.containerd.runtimes.nvidia",
    ("containerd", "containerd.io"),
    "containerd (or containerd.io)",
)
