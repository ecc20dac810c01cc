"""Toolkit checks: the packages are installed, fully configured and of one version;
``nvidia-ctk`` is there; ``nvidia-container-cli`` is there (when its package is) and loads
the driver; the runtime's config.toml is root-owned and not writable by others."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from installer import invocation
from installer.compat import removesuffix
from installer.doctor.checks import DoctorPaths, Finding, failure, ok, skipped, warning
from installer.layout import REPO_DEBS_DIR, STATE_DIR
from installer.runner import run

# Released together since 1.11; each depends on the others at "=" the same version.
TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
CLI_PACKAGE = "libnvidia-container-tools"
CLI = "nvidia-container-cli"
# The bundle's own .debs stay extracted on the host: a file dpkg lost comes back offline.
BUNDLED_DEBS = f"{STATE_DIR}/bundles/*/{REPO_DEBS_DIR}"


def reinstall() -> str:
    return invocation.rerun_install()


@dataclass(frozen=True)
class PackageState:
    name: str
    version: str
    status: str  # dpkg's abbreviation: "ii" is installed and configured


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    exists: bool
    mode: int = 0
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class ToolkitFacts:
    config: ConfigFile  # config.toml, read from DoctorPaths.config_toml
    packages: Mapping[str, PackageState] = field(default_factory=dict)
    nvidia_ctk: str = ""  # its path, empty when not found
    nvidia_ctk_version: str = ""
    # ``nvidia-container-cli info``: (exit code, output); None when the program is absent.
    cli_info: tuple[int, str] | None = None
    cli_path: str = ""  # where nvidia-container-cli was found, "" when nowhere
    cli_listed: tuple[str, ...] = ()  # where its package says it is (dpkg's file list)


def dpkg_query_argv(admindir: Path, names: tuple[str, ...] = TOOLKIT_PACKAGES) -> list[str]:
    fmt = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
    return ["dpkg-query", f"--admindir={admindir}", "-W", f"--showformat={fmt}", *names]


def parse_dpkg_query(output: str) -> dict[str, PackageState]:
    """Packages dpkg knows, keyed by name; those merely known (status "un") are left out."""
    states: dict[str, PackageState] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, version, status = parts[0], parts[1], parts[2].strip()
        if status.startswith("u") and status[1:2] == "n":
            continue
        states[name] = PackageState(name, version, status)
    return states


def installed_packages(admindir: Path, names: tuple[str, ...]) -> dict[str, PackageState]:
    # dpkg-query exits 1 when a name is unknown; what it printed is still right.
    proc = run(dpkg_query_argv(admindir, names), check=False)
    return parse_dpkg_query(proc.stdout.decode(errors="replace"))


def read_config_file(path: Path) -> ConfigFile:
    try:
        st = path.stat()
    except FileNotFoundError:
        return ConfigFile(path, False)
    return ConfigFile(path, True, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def listed_programs(admindir: Path, package: str, name: str) -> tuple[str, ...]:
    """Paths of ``name`` in ``package``'s dpkg file list (``info/PACKAGE[:ARCH].list``)."""
    found: list[str] = []
    for listing in sorted((admindir / "info").glob(f"{package}*.list")):
        if removesuffix(listing.name.split(":")[0], ".list") != package:
            continue
        try:
            lines = listing.read_text(errors="replace").splitlines()
        except OSError:
            continue
        found += [line for line in lines if line.endswith(f"/{name}")]
    return tuple(dict.fromkeys(found))


def find_cli(paths: DoctorPaths, listed: tuple[str, ...]) -> str:
    """nvidia-container-cli on PATH, else where its package put it (under ``paths.root``)."""
    found = shutil.which(CLI, path=paths.search_path)
    if found:
        return found
    for path in listed:
        candidate = paths.root / path.lstrip("/")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return ""


def gather_toolkit(paths: DoctorPaths) -> ToolkitFacts:
    ctk = shutil.which("nvidia-ctk", path=paths.search_path) or ""
    version = ""
    if ctk:
        lines = run([ctk, "--version"], check=False).stdout.decode(errors="replace").splitlines()
        version = lines[0].strip() if lines else ""
    listed = listed_programs(paths.dpkg_admindir, CLI_PACKAGE, CLI)
    cli = find_cli(paths, listed)
    return ToolkitFacts(
        packages=installed_packages(paths.dpkg_admindir, TOOLKIT_PACKAGES),
        nvidia_ctk=ctk,
        nvidia_ctk_version=version,
        config=read_config_file(paths.config_toml),
        cli_info=cli_info(cli),
        cli_path=cli,
        cli_listed=listed,
    )


def cli_info(cli: str) -> tuple[int, str] | None:
    """What NVIDIA's troubleshooting guide runs first: can libnvidia-container load the driver?"""
    if not cli:
        return None
    proc = run([cli, "info"], check=False, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def check_packages(facts: ToolkitFacts) -> Finding:
    cid = "toolkit.packages"
    # "rc": removed with its configuration left: as good as absent.
    pkgs = {n: p for n, p in facts.packages.items() if p.status[1:2] not in ("n", "c")}
    evidence = [f"{p.status} {p.name} {p.version}" for p in facts.packages.values()]
    missing = [n for n in TOOLKIT_PACKAGES if n not in pkgs]
    if "nvidia-container-toolkit" not in pkgs:
        return failure(cid, "nvidia-container-toolkit is not installed", evidence, [reinstall()])
    broken = [p for p in pkgs.values() if p.status != "ii"]
    if broken:
        return failure(
            cid,
            "toolkit packages are not fully installed: "
            + ", ".join(f"{p.name} ({p.status})" for p in broken),
            evidence,
            ["dpkg --configure -a", reinstall()],
        )
    if missing:
        return failure(
            cid, f"toolkit packages missing: {', '.join(missing)}", evidence, [reinstall()]
        )
    versions = {p.version for p in pkgs.values()}
    if len(versions) > 1:
        want = pkgs["nvidia-container-toolkit"].version
        pins = " ".join(f"{n}={want}" for n in TOOLKIT_PACKAGES)
        return failure(
            cid,
            "toolkit packages have different versions: " + ", ".join(sorted(versions)),
            evidence,
            [f"{reinstall()}  # installs {pins}"],
        )
    return ok(cid, f"nvidia-container-toolkit {versions.pop()} installed", evidence)


def check_nvidia_ctk(facts: ToolkitFacts) -> Finding:
    cid = "toolkit.nvidia-ctk"
    if not facts.nvidia_ctk:
        return failure(
            cid,
            "nvidia-ctk is not on PATH",
            ["PATH=" + os.environ.get("PATH", "")],
            ["dpkg -L nvidia-container-toolkit-base | grep bin/nvidia-ctk", reinstall()],
        )
    return ok(cid, f"nvidia-ctk found: {facts.nvidia_ctk}", [facts.nvidia_ctk_version])


def check_cli_info(facts: ToolkitFacts) -> Finding:
    """``docker run --gpus`` goes through the hook, which needs nvidia-container-cli."""
    cid = "toolkit.cli-info"
    package = facts.packages.get(CLI_PACKAGE)
    installed = package is not None and package.status[1:2] not in ("n", "c")
    if facts.cli_info is None:
        if not installed:
            return skipped(cid, f"{CLI} is not installed ({CLI_PACKAGE} is not)")
        assert package is not None
        where = ", ".join(facts.cli_listed) or f"/usr/bin/{CLI}"
        return failure(
            cid,
            f"{CLI_PACKAGE} is installed but {CLI} is missing: `docker run --gpus` fails "
            f"with 'couldn't find binary {CLI} in PATH'",
            [f"dpkg: {package.status} {CLI_PACKAGE} {package.version}", f"not found: {where}"],
            [
                f"dpkg -V {CLI_PACKAGE}  # lists the package's missing files",
                f"dpkg -i {BUNDLED_DEBS}/{CLI_PACKAGE}_*.deb  # the bundle's copy, offline",
                f"{CLI} info  # must then list the GPUs",
            ],
        )
    code, output = facts.cli_info
    lines = [line for line in output.splitlines() if line.strip()]
    if code == 0:
        gpus = sum(1 for line in lines if line.startswith("Device Index"))
        return ok(cid, f"{CLI} info sees the driver and {gpus} GPU(s)", lines[:6])
    return failure(
        cid,
        f"{CLI} cannot load the NVIDIA driver: containers cannot be given GPUs "
        "with `docker run --gpus`",
        [f"{facts.cli_path or CLI} info: exit code {code}", *lines[-6:]],
        [
            "nvidia-smi -L  # must list the GPUs on the host first",
            f"{CLI} -k -d /dev/tty info  # shows where it fails",
            f"{reinstall()}  # with a bundle of NVIDIA's toolkit packages",
        ],
    )


def check_config_toml(facts: ToolkitFacts) -> Finding:
    cid = "toolkit.config-toml"
    cfg = facts.config
    if not cfg.exists:
        return warning(
            cid,
            f"{cfg.path} does not exist; the runtime runs on built-in defaults",
            [],
            [f"nvidia-ctk config default --output={cfg.path}"],
        )
    evidence = [f"{cfg.path}: mode {cfg.mode:04o}, uid {cfg.uid}, gid {cfg.gid}"]
    fix = [f"chown root:root {cfg.path} && chmod 0644 {cfg.path}"]
    # The runtime runs as root and executes what this file names: anyone who can
    # write it can run code as root in every GPU container start.
    if cfg.mode & stat.S_IWOTH:
        return failure(cid, f"{cfg.path} is world-writable", evidence, fix)
    if cfg.uid != 0:
        return failure(cid, f"{cfg.path} is not owned by root", evidence, fix)
    if cfg.mode & stat.S_IWGRP and cfg.gid != 0:
        return failure(cid, f"{cfg.path} is writable by group {cfg.gid}", evidence, fix)
    if cfg.mode != 0o644:
        return warning(cid, f"{cfg.path} has mode {cfg.mode:04o}, expected 0644", evidence, fix)
    return ok(cid, f"{cfg.path} is 0644 and root-owned", evidence)
