"""The install plan: ordered steps, what each changes, and what is already done."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from installer.hostpaths import HostPaths
from installer.installplan import (
    APT_BOOKKEEPING,
    APT_SOURCE,
    EXTRACT,
    IMAGES,
    PACKAGES,
    PROOF,
    RECOVER,
    RESTART,
    RUNTIME,
    SCRIPT_EFFECTS,
    SCRIPTS_LINE,
    STEP_IDS,
    PlanFacts,
    build_plan,
    image_archives,
    package_changes,
    proof_images,
)
from installer.manifest import ImagePin, PackagePin
from tests.support.manifests import VERIFY, make_manifest

SHA = "cd" * 32
BUNDLE_DIR = Path("/var/lib/gpubundle/bundles") / SHA


def facts(**overrides: object) -> PlanFacts:
    base: dict[str, object] = {
        "bundle_dir": BUNDLE_DIR,
        "bundle_dir_exists": False,
        "source_installed": False,
        "installed": {},
        "completed": (),
        "host": HostPaths.system(),
        "daemon_json": "/etc/docker/daemon.json",
        "runtime": "docker",
        "engine_kind": "docker.io",
    }
    base.update(overrides)
    return PlanFacts(**base)  # type: ignore[arg-type]


CUDA = ImagePin(
    "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
    "sha256:" + "1" * 64,
    "x",
    "cuda>=12.4",
    "images/images.tar",
)


def test_fresh_host_plans_every_step_in_order_with_its_changes() -> None:
    plan = build_plan(make_manifest(images=(CUDA,)), SHA, facts())
    assert tuple(s.id for s in plan.steps) == STEP_IDS
    assert [s.id for s in plan.pending] == [s for s in STEP_IDS if s != RECOVER]
    assert plan.step(RECOVER).skip_reason == "dpkg has no interrupted work"
    assert plan.step(EXTRACT).paths == (str(BUNDLE_DIR),)
    source = plan.step(APT_SOURCE)
    assert "/usr/share/keyrings/gpubundle-89abcdef01234567.gpg" in source.paths
    assert "/etc/apt/sources.list.d/gpubundle.list" in source.paths
    assert "install nvidia-container-toolkit 1.17.8-1" in plan.step(PACKAGES).changes
    assert plan.step(PACKAGES).paths == (*APT_BOOKKEEPING, *SCRIPT_EFFECTS)
    assert plan.step(PACKAGES).changes[-1] == SCRIPTS_LINE  # config.toml, links, ldconfig
    assert plan.step(RUNTIME).paths == ("/etc/docker/daemon.json",)
    assert "restart docker.io" in plan.step(RESTART).changes[0]
    assert plan.step(IMAGES).changes == (f"load image {CUDA.ref} from images/images.tar",)
    assert plan.packages["libnvidia-container1"] == "1.17.8-1"


def test_runtime_none_and_no_gpu_skip_the_runtime_steps() -> None:
    plan = build_plan(
        make_manifest(images=(CUDA,)), SHA, facts(runtime="none", skip_gpu_checks=True)
    )
    assert [s.id for s in plan.pending] == [EXTRACT, APT_SOURCE, PACKAGES]
    assert plan.step(RUNTIME).skip_reason == "--runtime none"
    assert plan.step(PROOF).state == "skip (--runtime none)"
    gpu_only = build_plan(make_manifest(images=(CUDA,)), SHA, facts(skip_gpu_checks=True))
    assert gpu_only.step(PROOF).skip_reason == "--skip-gpu-checks"
    assert gpu_only.step(IMAGES).pending


@pytest.mark.parametrize(
    ("runtime", "path", "words"),
    [
        ("containerd", "/etc/containerd/config.toml", "comments are lost"),
        ("crio", "/etc/crio/crio.conf.d/99-nvidia.toml", "CRI-O drop-in"),
    ],
)
def test_containerd_and_crio_configure_their_file_and_skip_docker_containers(
    runtime: str, path: str, words: str
) -> None:
    plan = build_plan(
        make_manifest(images=(CUDA,)),
        SHA,
        facts(runtime=runtime, engine_kind=runtime, daemon_json=path),
    )
    assert plan.step(RUNTIME).paths == (path,) and words in plan.step(RUNTIME).changes[0]
    assert plan.step(RESTART).pending and "restart" in plan.step(RESTART).changes[0]
    assert "run through Docker" in plan.step(IMAGES).skip_reason
    assert "run through Docker" in plan.step(PROOF).skip_reason


def test_builtin_image_is_loaded_and_proved_first() -> None:
    m = make_manifest(images=(CUDA, VERIFY))  # the order in the manifest does not matter
    assert proof_images(m) == (VERIFY, CUDA)
    assert image_archives(m) == ("images/gpubundle-verify.tar", "images/images.tar")
    plan = build_plan(m, SHA, facts())
    assert plan.step(IMAGES).changes == (
        f"load image {VERIFY.ref} from images/gpubundle-verify.tar",
        f"load image {CUDA.ref} from images/images.tar",
    )
    proof = plan.step(PROOF).changes
    assert len(proof) == 2
    assert proof[0].startswith(f"run {VERIFY.ref} (the builtin verification image): nvidia-smi -L")
    assert proof[1].startswith(f"run {CUDA.ref}: nvidia-smi -L with --gpus all")
    assert plan.step(PROOF).pending and plan.step(IMAGES).pending
    data = plan.as_json()
    images = next(s for s in data["steps"] if s["id"] == IMAGES)
    assert VERIFY.ref in images["changes"][0]


def test_without_images_the_proof_is_skipped_never_done() -> None:
    plan = build_plan(make_manifest(), SHA, facts())
    for step in (IMAGES, PROOF):
        assert not plan.step(step).done
        assert plan.step(step).skip_reason == "no images in the bundle (built with --no-images)"
    assert build_plan(make_manifest(), SHA, facts(runtime="none")).step(PROOF).skip_reason == (
        "--runtime none"
    )


def test_installed_host_has_nothing_pending() -> None:
    m = make_manifest()
    installed = {p.name: p.version for p in m.packages}
    done = facts(
        bundle_dir_exists=True,
        source_installed=True,
        installed=installed,
        completed=(RUNTIME, RESTART),
    )
    plan = build_plan(m, SHA, done)
    assert plan.pending == ()
    assert plan.packages == {}
    assert plan.step(PACKAGES).changes == (
        "nothing: every package is installed at the bundle's version",
    )


def test_packages_removed_since_the_record_make_the_step_pending_again() -> None:
    m = make_manifest()
    plan = build_plan(m, SHA, facts(bundle_dir_exists=True, completed=(PACKAGES,)))
    assert plan.step(PACKAGES).pending


def test_the_family_follows_the_requested_upgrade_and_present_dependencies_are_left_alone() -> None:
    """NVIDIA's packages depend on each other at exact versions: apt upgrades them together.
    A dependency from another source that is present stays as it is."""
    m = make_manifest()
    seccomp = PackagePin(
        "libseccomp2", "2.5.4-1", "amd64", 1000, "0" * 64, "repo/debs/s.deb", "debian-main"
    )
    m = dataclasses.replace(m, packages=(*m.packages, seccomp))
    installed = {
        "nvidia-container-toolkit": "1.16.0-1",
        "libnvidia-container1": "1.16.0-1",
        "libseccomp2": "2.5.3-2",
    }
    changes = package_changes(m, installed)
    assert changes == {
        "nvidia-container-toolkit": "1.17.8-1",
        "nvidia-container-toolkit-base": "1.17.8-1",
        "libnvidia-container-tools": "1.17.8-1",
        "libnvidia-container1": "1.17.8-1",
    }
    plan = build_plan(m, SHA, facts(installed=installed))
    assert "upgrade nvidia-container-toolkit 1.16.0-1 -> 1.17.8-1" in plan.step(PACKAGES).changes
    assert "upgrade libnvidia-container1 1.16.0-1 -> 1.17.8-1" in plan.step(PACKAGES).changes


def test_plan_json_is_data() -> None:
    data = build_plan(make_manifest(), SHA, facts()).as_json()
    assert data["bundle_sha256"] == SHA
    assert data["steps"][0]["id"] == EXTRACT
    assert data["steps"][0]["pending"] is True
    assert isinstance(data["packages"], dict)


def test_docker_coming_with_the_bundle_is_started_not_restarted() -> None:
    """Seen on the GPU host: the plan said "restart none" for a --with-docker bundle."""
    plan = build_plan(make_manifest(images=(VERIFY,)), SHA, facts(engine_kind="none"))
    assert plan.step(RESTART).changes == (
        "start docker from the bundle (dockerd directly where no init system runs)",
    )


def test_a_stale_cdi_spec_makes_a_finished_install_run_its_proof_again() -> None:
    """doctor's fix for a stale spec is "run install again": the plan must not say done."""
    done = facts(completed=(PROOF,))
    m = make_manifest(images=(VERIFY,))
    assert build_plan(m, SHA, done).step(PROOF).done
    stale = "the spec is stale: generated for driver 550.54.15, the running driver is 580.159.04"
    step = build_plan(m, SHA, dataclasses.replace(done, cdi_refresh=stale)).step(PROOF)
    assert step.pending and not step.done
    assert step.changes[-1] == f"generate /var/run/cdi/nvidia.yaml again: {stale}"


def test_interrupted_dpkg_work_is_finished_by_a_planned_step_before_apt_runs_again() -> None:
    m = make_manifest()
    installed = dict.fromkeys(
        ("nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"),
        "1.17.8-1",
    ) | {"nvidia-container-toolkit": "1.17.8-1"}
    pending = ("nvidia-container-toolkit 1.17.8-1 (half-configured)", "dpkg's journal (2 entries)")
    plan = build_plan(m, SHA, facts(installed=installed, dpkg_recovery=pending))
    recover = plan.step(RECOVER)
    assert recover.pending and recover.paths == APT_BOOKKEEPING
    assert recover.changes == (
        "run dpkg --configure -a --force-confdef --force-confold: "
        "nvidia-container-toolkit 1.17.8-1 (half-configured), dpkg's journal (2 entries)",
    )
    # apt runs after it, so that its result is checked as after a fresh install.
    assert plan.step(PACKAGES).pending
    order = [s.id for s in plan.pending]
    assert order.index(RECOVER) + 1 == order.index(PACKAGES)
    assert not build_plan(m, SHA, facts(installed=installed)).step(PACKAGES).pending
