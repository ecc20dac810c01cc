"""``gpubundle doctor``: read-only checks of driver, toolkit, engine and known traps.

Each family module gathers facts (side effects) and judges them with pure
``check_*`` functions; :func:`run_doctor` wires them in a fixed order. The engine checks
run for the engines ``installer.doctor.enginechoice`` picks (the install record's, else
what the host has); the other engines' checks are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from installer import advisories, engines
from installer.doctor import (
    compute,
    cri,
    driver,
    engine,
    enginechoice,
    images,
    installrecord,
    toolkit,
    traps,
    vulnerabilities,
)
from installer.doctor.checks import DoctorPaths, Finding, skipped
from installer.doctor.crifacts import CriEngineFacts, cri_adapters, gather_engine
from installer.doctor.dockerfacts import DOCKER, DockerFacts, gather_docker
from installer.hostpaths import HostPaths
from installer.record import InstallRecord


@dataclass(frozen=True)
class HostFacts:
    driver: driver.DriverCheckFacts
    toolkit: toolkit.ToolkitFacts
    docker: DockerFacts
    traps: traps.TrapFacts
    images: tuple[images.ImageFacts, ...]
    record: installrecord.RecordFacts
    compute: compute.ComputeFacts
    advisory_table: advisories.AdvisoryTable | None = None  # None: the one shipped with gpubundle
    cri: tuple[CriEngineFacts, ...] = ()  # containerd and CRI-O, checked or not
    engines: enginechoice.Choice = enginechoice.DOCKER_ONLY  # the engines checked


Check = Callable[[HostFacts], Sequence[Finding]]


def _docker(h: HostFacts, finding: Finding) -> list[Finding]:
    """A Docker finding, or its check skipped where Docker is not an engine checked here."""
    reason = h.engines.not_checked(DOCKER.name)
    return [skipped(finding.check_id, reason) if reason else finding]


def _docker_cdi(h: HostFacts) -> list[Finding]:
    """engine.cdi judges stale specs for every engine; Docker's CDI switch only for Docker."""
    if h.engines.not_checked(DOCKER.name):
        finding = engine.check_cdi(dataclasses.replace(h.docker, source="none"))
        return [finding] if finding.status == "failure" else _docker(h, finding)
    return [engine.check_cdi(h.docker)]


# The registry: every check, in the order the report shows them.
CHECKS: tuple[Check, ...] = (
    lambda h: [driver.check_loaded(h.driver)],
    lambda h: [driver.check_nouveau(h.driver)],
    lambda h: [driver.check_gpus(h.driver)],
    lambda h: [toolkit.check_packages(h.toolkit)],
    lambda h: [toolkit.check_nvidia_ctk(h.toolkit)],
    lambda h: [toolkit.check_cli_info(h.toolkit)],
    lambda h: [toolkit.check_config_toml(h.toolkit)],
    lambda h: [
        vulnerabilities.check_known_vulnerabilities(
            h.toolkit, h.advisory_table or advisories.load_table()
        )
    ],
    lambda h: _docker(h, engine.check_installed(h.docker)),
    lambda h: _docker(h, engine.check_running(h.docker)),
    lambda h: _docker(h, engine.check_daemon_json(h.docker)),
    lambda h: _docker(h, engine.check_nvidia_runtime(h.docker)),
    lambda h: _docker(h, engine.check_restarted(h.docker)),
    lambda h: _docker(h, engine.check_default_runtime(h.docker)),
    _docker_cdi,
    lambda h: [engine.check_cdi_nvidia_smi(h.docker)],
    lambda h: [c for f in h.cri for c in cri.check_engine(f, h.engines.not_checked(f.name))],
    lambda h: [traps.check_systemd_cgroup(h.traps)],
    lambda h: [traps.check_rootless(h.traps)],
    lambda h: [traps.check_selinux(h.traps)],
    lambda h: [traps.check_driver_path(h.traps)],
    lambda h: [
        c for i in h.images for c in (images.check_image_cuda(i), images.check_image_nvidia_smi(i))
    ],
    lambda h: [compute.check_compute(h.compute)],
    lambda h: [driver.check_memory(h.driver)],
    lambda h: [installrecord.check_record(h.record)],
)


def images_to_check(paths: DoctorPaths, record: InstallRecord | None) -> tuple[str, ...]:
    loaded = record.images_loaded if record else ()
    return tuple(dict.fromkeys((*loaded, *paths.images)))


def gather(paths: DoctorPaths) -> HostFacts:
    drv = driver.gather_driver(paths)
    docker = gather_docker(paths, drv.driver.version)
    record = installrecord.gather_record(
        paths.record, HostPaths(paths.root, record_file=paths.record)
    )
    change = record.record.runtime_change if record.record else None
    recorded = engines.adapter_for_change(change) if change else None
    specs = tuple(str(s.path) for s in docker.cdi_specs)
    cri_facts = tuple(
        gather_engine(
            adapter,
            paths,
            str(change.get("path") or "")
            if change and recorded and recorded.name == adapter.name
            else "",
            specs,
        )
        for adapter in cri_adapters()
    )
    refs = images_to_check(paths, record.record)
    env = paths.docker_env()
    imgs = (
        tuple(
            images.gather_image(r, env, drv.driver.version, drv.driver.cuda_version) for r in refs
        )
        if docker.info is not None
        else ()
    )
    return HostFacts(
        driver=drv,
        toolkit=toolkit.gather_toolkit(paths),
        docker=docker,
        traps=traps.gather_traps(paths, docker.info),
        images=imgs,
        record=record,
        compute=compute.gather_compute(
            docker,
            refs,
            drv.driver.uuids,
            env,
            any((d / "nvidia.yaml").exists() for d in paths.cdi_dirs),
        ),
        cri=cri_facts,
        engines=choose_engines(docker, cri_facts, recorded.name if recorded else "", change),
    )


def choose_engines(
    docker: DockerFacts,
    cri_facts: Sequence[CriEngineFacts],
    recorded: str,
    change: dict[str, Any] | None,
) -> enginechoice.Choice:
    seen = [
        enginechoice.EngineSeen(
            DOCKER.name,
            DOCKER.label,
            docker.source != "none",
            docker.info is not None,
            engine.NVIDIA_RUNTIME in (docker.daemon_json.data.get("runtimes") or {}),
        ),
        *(
            enginechoice.EngineSeen(
                f.name,
                f.label,
                f.installed,
                f.served_cri,
                f.config is not None and f.config.nvidia,
            )
            for f in cri_facts
        ),
    ]
    return enginechoice.choose(seen, recorded, str((change or {}).get("path") or ""))


def judge(facts: HostFacts) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(facts)]


def run_doctor(paths: DoctorPaths) -> list[Finding]:
    return judge(gather(paths))


def report(findings: Sequence[Finding]) -> dict[str, Any]:
    from installer.doctor.checks import worst

    return {
        "ok": worst(findings) != "failure",
        "status": worst(findings),
        "findings": [f.as_dict() for f in findings],
    }
