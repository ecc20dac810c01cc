"""``gpubundle doctor``: read-only checks of driver, toolkit, engine and known traps.

Each family module gathers facts (side effects) and judges them with pure
``check_*`` functions; :func:`run_doctor` wires them in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from installer import advisories
from installer.doctor import (
    compute,
    driver,
    engine,
    images,
    installrecord,
    toolkit,
    traps,
    vulnerabilities,
)
from installer.doctor.checks import DoctorPaths, Finding
from installer.doctor.dockerfacts import DockerFacts, gather_docker
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


Check = Callable[[HostFacts], Sequence[Finding]]

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
    lambda h: [engine.check_installed(h.docker)],
    lambda h: [engine.check_running(h.docker)],
    lambda h: [engine.check_daemon_json(h.docker)],
    lambda h: [engine.check_nvidia_runtime(h.docker)],
    lambda h: [engine.check_restarted(h.docker)],
    lambda h: [engine.check_default_runtime(h.docker)],
    lambda h: [engine.check_cdi(h.docker)],
    lambda h: [engine.check_cdi_nvidia_smi(h.docker)],
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
    record = installrecord.gather_record(paths.record)
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
    )


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
