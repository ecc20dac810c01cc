"""Which container engines the doctor checks: the one the install record names, else the
ones configured with the nvidia runtime, else the ones running, else the first installed
(Docker when none is). The others' checks are skipped, not failed: a containerd-only host
gets no Docker failures, a Docker host none about containerd. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSeen:
    """One engine as the doctor found it, for choosing what to check."""

    name: str  # the adapter's: docker | containerd | crio
    label: str
    installed: bool
    in_use: bool  # its daemon answers (containerd: as a CRI engine)
    configured: bool  # its configuration has the nvidia runtime


@dataclass(frozen=True)
class Choice:
    engines: tuple[str, ...]  # the names checked
    basis: str  # why, for people

    def not_checked(self, name: str) -> str:
        """The reason the checks of ``name`` are skipped; "" when it is checked."""
        return "" if name in self.engines else f"not checked: {self.basis}"


DOCKER_ONLY = Choice(("docker",), "Docker expected")


def _labels(seen: Sequence[EngineSeen]) -> str:
    return " and ".join(e.label for e in seen)


def choose(seen: Sequence[EngineSeen], recorded: str = "", recorded_path: str = "") -> Choice:
    """``seen`` in preference order (``installer.engines.ENGINES``); ``recorded``: the engine
    whose configuration the install record says gpubundle changed ("" when none)."""
    by_name = {e.name: e for e in seen}
    if recorded in by_name:
        where = f" ({recorded_path})" if recorded_path else ""
        return Choice((recorded,), f"the install record names {by_name[recorded].label}{where}")
    for attr, what in (("configured", "configured with the nvidia runtime"), ("in_use", "running")):
        found = [e for e in seen if getattr(e, attr)]
        if found:
            return Choice(tuple(e.name for e in found), f"{_labels(found)} {what}, no record")
    installed = [e for e in seen if e.installed]
    if installed:
        return Choice((installed[0].name,), f"{installed[0].label} installed, no record")
    first = seen[0] if seen else EngineSeen("docker", "Docker", False, False, False)
    return Choice((first.name,), f"no container engine installed: {first.label} expected")
