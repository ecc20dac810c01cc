"""Will the container runtime start a CUDA image on this driver? Pure logic, no I/O.

CUDA images carry ``NVIDIA_REQUIRE_CUDA``, e.g.::

    cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536

libnvidia-container (``src/cli/dsl.c``, ``dsl_evaluate``) reads it as alternatives
separated by spaces, each a list of conditions separated by commas: the image is
accepted when *every* condition of *any one* alternative holds. Conditions are
``cuda`` (the CUDA version the driver supports, as ``nvidia-smi`` prints it),
``driver`` (the driver version), ``brand`` (Tesla, GeForce, ...; compared
case-insensitively) and ``arch`` (compute capability). Versions compare number by
number; missing trailing parts count as zero. So on a driver older than the image's
CUDA, a ``brand=…,driver>=535,driver<536`` alternative can still admit the image on
a datacenter GPU (forward compatibility, via the compat libraries in the image).
The runtime evaluates the requirement per visible GPU; with no GPU visible, brand
and arch conditions count as met. ``NVIDIA_DISABLE_REQUIRE=1`` skips the check.

Apart from the runtime's check, CUDA's minor-version compatibility lets a 12.x
application run on any driver of the 12 branch (>= 525) for most workloads; the
messages say so, because the runtime itself does not apply it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from installer.errors import GpubundleError

_OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
_NAMES = ("cuda", "driver", "arch", "brand")
_VERSION = re.compile(r"^[0-9.]+$")

# Minimum Linux x86_64 driver per CUDA toolkit release (GA), from NVIDIA's CUDA
# release notes, "CUDA Toolkit and Corresponding Driver Versions".
CUDA_MIN_DRIVER: dict[str, str] = {
    "11.0": "450.36.06",
    "11.1": "455.23",
    "11.2": "460.27.03",
    "11.3": "465.19.01",
    "11.4": "470.42.01",
    "11.5": "495.29.05",
    "11.6": "510.39.01",
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}
# Minor-version compatibility: the oldest driver branch that runs any X.y application.
MAJOR_MIN_DRIVER: dict[int, str] = {11: "450", 12: "525", 13: "580"}


@dataclass(frozen=True)
class Condition:
    name: str  # cuda | driver | arch | brand
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True)
class Requirement:
    """Alternatives (OR) of condition groups (AND), in the order the image lists them."""

    alternatives: tuple[tuple[Condition, ...], ...]

    @property
    def cuda_minimum(self) -> str:
        """The version of the first ``cuda>=`` condition, or "" when there is none."""
        for group in self.alternatives:
            for cond in group:
                if cond.name == "cuda" and cond.op == ">=":
                    return cond.value
        return ""


@dataclass(frozen=True)
class CompatResult:
    ok: bool
    needed: str  # the driver version that satisfies the image's cuda>= condition, or ""
    message: str


def parse_require_cuda(value: str) -> Requirement:
    """Parse an ``NVIDIA_REQUIRE_CUDA`` value; refuse what the runtime would call invalid."""
    groups: list[tuple[Condition, ...]] = []
    for alternative in value.split():
        conds = tuple(_parse_condition(expr, value) for expr in alternative.split(",") if expr)
        if conds:
            groups.append(conds)
    return Requirement(tuple(groups))


def _parse_condition(expr: str, whole: str) -> Condition:
    match = re.fullmatch(r"([A-Za-z]+)([<>=!]+)(.+)", expr)
    if not match or match.group(2) not in _OPERATORS or match.group(1).lower() not in _NAMES:
        raise GpubundleError(
            f"invalid NVIDIA_REQUIRE_CUDA condition {expr!r} in {whole!r}",
            hint="the container runtime would refuse this image too; rebuild the bundle "
            "with an image whose NVIDIA_REQUIRE_CUDA is well formed",
        )
    name, op, val = match.group(1).lower(), match.group(2), match.group(3)
    if name in ("cuda", "driver", "arch") and not _VERSION.match(val):
        raise GpubundleError(
            f"invalid version {val!r} in NVIDIA_REQUIRE_CUDA condition {expr!r}",
            hint="versions are dotted numbers such as 12.4 or 535.54.03",
        )
    return Condition(name, op, val)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1, numerically part by part; ``12.4`` equals ``12.4.0``."""
    a = [int(p) for p in left.split(".") if p]
    b = [int(p) for p in right.split(".") if p]
    width = max(len(a), len(b))
    a += [0] * (width - len(a))
    b += [0] * (width - len(b))
    return (a > b) - (a < b)


def _holds(cond: Condition, facts: dict[str, str]) -> bool:
    actual = facts.get(cond.name, "")
    if not actual:
        # Unknown here (the runtime always knows, per visible GPU): claim nothing.
        return False
    if cond.name == "brand":
        same = actual.lower() == cond.value.lower()
        return same if cond.op == "=" else (not same if cond.op == "!=" else False)
    order = compare_versions(actual, cond.value)
    return {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
    }[cond.op]


def evaluate(req: Requirement, facts: dict[str, str]) -> tuple[bool, tuple[Condition, ...]]:
    """Whether some alternative holds; if none does, the first alternative's failed conditions."""
    first_failed: tuple[Condition, ...] = ()
    for group in req.alternatives:
        failed = tuple(c for c in group if not _holds(c, facts))
        if not failed:
            return True, ()
        if not first_failed:
            first_failed = failed
    return not req.alternatives, first_failed


def cuda_for_driver(driver_version: str) -> str:
    """The newest CUDA release whose minimum driver is at most ``driver_version``."""
    best = ""
    for cuda, minimum in CUDA_MIN_DRIVER.items():
        if compare_versions(driver_version, minimum) >= 0 and (
            not best or compare_versions(cuda, best) > 0
        ):
            best = cuda
    return best


def driver_for_cuda(cuda: str) -> str:
    """The minimum driver for CUDA ``cuda`` (the release at or just above it)."""
    candidates = [c for c in CUDA_MIN_DRIVER if compare_versions(c, cuda) >= 0]
    if not candidates:
        return ""
    return CUDA_MIN_DRIVER[min(candidates, key=lambda c: [int(p) for p in c.split(".")])]


def check_image_against_driver(
    require_cuda: str, driver_version: str, *, cuda_version: str = "", brand: str = ""
) -> CompatResult:
    """Judge an image's ``NVIDIA_REQUIRE_CUDA`` against the host driver, as the runtime will.

    ``cuda_version`` is what the driver reports (``nvidia-smi``'s "CUDA Version");
    without it, it is inferred from the driver version. ``brand`` is the GPU's
    brand when known (e.g. "Tesla" for datacenter GPUs); unknown, the image's
    brand-specific (forward-compatibility) alternatives are not counted.
    """
    req = parse_require_cuda(require_cuda)
    minimum = req.cuda_minimum
    needed = driver_for_cuda(minimum) if minimum else ""
    if not req.alternatives:
        return CompatResult(True, "", "the image states no CUDA requirement")
    if not driver_version:
        return CompatResult(
            False, needed, f"no NVIDIA driver found; the image needs driver >= {needed or '?'}"
        )
    supported = cuda_version or cuda_for_driver(driver_version)
    facts = {"driver": driver_version, "cuda": supported, "brand": brand}
    ok, failed = evaluate(req, facts)
    if ok:
        return CompatResult(
            True, needed, f"driver {driver_version} (CUDA {supported}) satisfies {require_cuda}"
        )
    reason = ", ".join(str(c) for c in failed)
    message = (
        f"the container runtime will refuse this image on driver {driver_version} "
        f"(CUDA {supported or 'unknown'}): unsatisfied condition {reason}; "
        f"install driver >= {needed or 'a newer version'}"
    )
    major = int(minimum.split(".")[0]) if minimum else 0
    branch = MAJOR_MIN_DRIVER.get(major)
    if branch and compare_versions(driver_version, branch) >= 0:
        message += (
            f", or use an image built for CUDA {supported}; CUDA minor-version compatibility "
            f"(driver >= {branch} for {major}.x) would run most of it with NVIDIA_DISABLE_REQUIRE=1"
        )
    return CompatResult(False, needed, message)
