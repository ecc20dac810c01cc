"""What ``make demo``'s output must show (scripts/demo.sh): every step announced and in the
summary, the stand-in toolkit family installed and then gone, the installer's signature
checked with gpgv. ``demo_problems`` lists what is missing (empty: a whole demo)."""

from __future__ import annotations

import re

STEPS = (
    "a stand-in NVIDIA repository on 127.0.0.1",
    "the air-gapped host: a throwaway Debian 12 root",
    "a throwaway signing key",
    "gpubundle build (the connected machine)",
    "gpubundle verify",
    "gpubundle install, offline, in the throwaway root",
    "gpubundle status",
    "gpubundle uninstall",
)
FAMILY = (
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
)


def demo_problems(out: str) -> list[str]:
    """What the demo's combined stdout and stderr ``out`` fails to show."""
    problems = []
    for number, title in enumerate(STEPS, 1):
        if f"[{number}/{len(STEPS)}] {title} " not in out:
            problems.append(f"step {number} not announced")
        if not re.search(rf"^ *{number}\. {re.escape(title)} +\d+\.\d s$", out, re.M):
            problems.append(f"step {number} missing from the summary")
    installed, _, removed = out.partition(f"[8/{len(STEPS)}] gpubundle uninstall")
    for name in FAMILY:
        if f"{name} 1.20.1-1 ii" not in installed:
            problems.append(f"{name} not shown installed")
        if f"{name} ii" in removed:
            problems.append(f"{name} still installed after uninstall")
    if "uninstall complete" not in removed:
        problems.append("uninstall did not complete")
    if "gpgv: Good signature" not in out:
        problems.append("the installer's signature was not checked with gpgv")
    if not re.search(r"^demo complete in \d+\.\d s", out, re.M):
        problems.append("no 'demo complete' line")
    return problems
