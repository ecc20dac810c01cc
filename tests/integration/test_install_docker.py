"""``gpubundle install`` on this very host, with the real dockerd of scripts/services.sh.

The bundle is a real ``gpubundle build`` for the host's distribution against its
own dpkg status: the stand-in NVIDIA toolkit family, the distro packages the host
lacks (none on a Debian 12 host with docker.io), the builtin verification image
(built from the distro's glibc and busybox) and the test CUDA image. Before each
test the user has a daemon.json of their own (applied by a restart) and Docker has
neither image. ``tests/support/hostguard.py`` puts the host
back afterwards, whatever happens. The command runs as users run it: the CLI as
a subprocess, ``--json``, checked as data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from installer import engine
from installer.console import Console
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.installsteps import StepRunner
from installer.layout import IMAGES_ARCHIVE, LOG_DIR, VERIFY_IMAGE_ARCHIVE
from installer.preflight import Options
from installer.record import load_record
from installer.steps import proof
from tests.support import hostguard, hostsnapshot
from tests.support.hostsnapshot import HostSnapshot
from tests.support.installbundles import (
    HostBundle,
    gpubundle,
    host_distro,
    install,
    ok_document,
)
from tests.support.registry import CUDA_STANDIN
from tests.support.steps import verified

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.root]
RECORD_PATH = HostPaths.system().record

FAMILY = (
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
)
STEPS_TO_RUNTIME = ["extract", "apt-source", "packages", "runtime-config"]
INVALID_KEY = "gpubundle-test-no-such-directive"  # dockerd refuses to start with it
VERIFY = f"gpubundle/verify:{host_distro()}-amd64"  # the builtin verification image


def corrupting_nvidia_ctk(bindir: Path) -> dict[str, str]:
    """An nvidia-ctk first on PATH: the installed one, then a key dockerd refuses added."""
    bindir.mkdir()
    wrapper = bindir / "nvidia-ctk"
    wrapper.write_text(
        f"#!{sys.executable}\nimport json, subprocess, sys\n"
        "rc = subprocess.call(['/usr/bin/nvidia-ctk', *sys.argv[1:]])\n"
        "p = [a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--config=')][0]\n"
        f"c = json.load(open(p)); c[{INVALID_KEY!r}] = True\n"
        "open(p, 'w').write(json.dumps(c))\nsys.exit(rc)\n"
    )
    wrapper.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def step_results(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["id"]: (s["result"], s["detail"]) for s in doc["result"]["steps"]}


def test_bundle_holds_the_toolkit_and_only_what_the_host_lacks(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    assert {n: host_bundle.packages[n] for n in FAMILY} == dict.fromkeys(FAMILY, "1.20.1-1")
    have = {key.split(":")[0] for key in docker_host.installed()}
    assert not (set(host_bundle.packages) - set(FAMILY)) & have  # nothing the host already has
    images = [(i.ref, i.archive, i.require_cuda) for i in host_bundle.manifest.images]
    assert images == [
        (VERIFY, VERIFY_IMAGE_ARCHIVE, ""),  # the builtin image first: the install proves it first
        (CUDA_STANDIN.ref, IMAGES_ARCHIVE, host_bundle.manifest.images[1].require_cuda),
    ]
    assert host_bundle.manifest.images[1].require_cuda.startswith("cuda>=12.4")


def test_install_configures_docker_keeping_user_settings(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    argv_before = engine.detect_engine(HostPaths.system()).argv

    doc = ok_document(install(host_bundle, "--json"))

    after = hostsnapshot.capture()
    config = after.daemon_config()
    assert config is not None
    for key, value in hostguard.USER_SETTINGS.items():
        assert config[key] == value, key
    assert config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "default-runtime" not in config
    assert after.runtimes is not None and "nvidia" in after.runtimes
    assert (
        engine.detect_engine(HostPaths.system()).argv == argv_before
    )  # restarted as services.sh started it
    # Exactly the bundle's packages, the apt source and its key changed.
    diff = hostsnapshot.differences(docker_host, after)
    assert set(diff) == {"packages", "sources", "keyrings", "daemon_json", "runtimes"}
    assert {k.split(":")[0]: v for k, (_, v) in diff["packages"].items()} == {
        n: (host_bundle.packages[n], "install ok installed") for n in FAMILY
    }
    assert list(diff["sources"]) == ["/etc/apt/sources.list.d/gpubundle.list"]
    [keyring] = diff["keyrings"]
    assert re.fullmatch(r"/usr/share/keyrings/gpubundle-[0-9a-f]{16}\.gpg", keyring)
    # Both images are in Docker, recorded as loaded by install.
    assert hostguard.image_present(VERIFY) and hostguard.image_present(CUDA_STANDIN.ref)
    record = doc["record"]
    assert record["images_loaded"] == [VERIFY, CUDA_STANDIN.ref] and record["finished_at"]
    assert (
        record["runtime_change"]["sha256_before"]
        == hashlib.sha256(docker_host.daemon_json or b"").hexdigest()
    )
    # No GPU here: the proof is skipped and says why, never passed.
    results = step_results(doc)
    assert results["proof"] == ("skipped", "--skip-gpu-checks")
    assert results["images"][1].startswith(f"{VERIFY}, {CUDA_STANDIN.ref}")
    preflight = {c["name"]: c for c in doc["preflight"]}
    assert preflight["NVIDIA driver"]["status"] == "skip"
    # dpkg had no interrupted work to finish: that step is skipped, all others done.
    assert results.pop("dpkg-recover")[0] == "skipped", results
    assert all(r == "done" for s, (r, _) in results.items() if s != "proof"), results
    # The report is on disk and is this run's document.
    report = Path(doc["report"])
    assert report.parent == Path(LOG_DIR) and report.name.startswith("install-")
    on_disk = json.loads(report.read_text())
    assert on_disk["result"] == doc["result"] and on_disk["bundle_sha256"] == host_bundle.sha256

    # Run again: everything is done, nothing changes, Docker is not restarted.
    pid = engine.detect_engine(HostPaths.system()).pid
    again = install(host_bundle)  # as people run it: the words on stderr
    assert again.returncode == 0, again.stderr
    assert "already installed: every step is done; nothing was changed" in again.stderr
    assert hostsnapshot.capture() == after
    assert engine.detect_engine(HostPaths.system()).pid == pid
    [path] = re.findall(r"report: (\S+\.json)", again.stderr)
    rerun = json.loads(Path(path).read_text())
    assert rerun["result"]["changed"] is False
    assert not [s for s in rerun["plan"]["steps"] if s["pending"]]


def test_run_killed_after_runtime_config_completes_when_run_again(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    killed = install(host_bundle, "--json", env={"GPUBUNDLE_TEST_KILL_AFTER": "runtime-config"})
    assert killed.returncode == -9, killed.stderr

    record = json.loads(RECORD_PATH.read_text())
    assert record["steps_completed"] == STEPS_TO_RUNTIME and record["finished_at"] is None
    change = record["runtime_change"]
    assert change["sha256_before"] == hashlib.sha256(docker_host.daemon_json or b"").hexdigest()
    middle = hostsnapshot.capture()
    config = middle.daemon_config() or {}
    assert "nvidia" in config["runtimes"]  # written, but Docker not restarted yet
    assert middle.runtimes == docker_host.runtimes

    doc = ok_document(install(host_bundle, "--json"))

    results = step_results(doc)
    assert [results[s][0] for s in STEPS_TO_RUNTIME] == ["already done"] * 4
    assert results["engine-restart"][0] == results["images"][0] == "done"
    assert results["proof"] == ("skipped", "--skip-gpu-checks")
    after = hostsnapshot.capture()
    assert after.runtimes is not None and "nvidia" in after.runtimes
    assert hostguard.image_present(CUDA_STANDIN.ref)
    final = doc["record"]
    assert final["finished_at"] and final["runtime_change"] == change  # the original file's
    assert final["steps_completed"] == [*STEPS_TO_RUNTIME, "engine-restart", "images"]


def test_without_skip_gpu_checks_no_gpu_is_a_plain_preflight_failure(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA driver is loaded here; tests marked gpu cover it")
    proc = gpubundle(
        "install", str(host_bundle.path), "--trust", host_bundle.fingerprint, "--yes", "--json"
    )
    assert proc.returncode == 4, proc.stdout
    error = json.loads(proc.stdout)
    assert error["ok"] is False and "nothing was changed" in error["message"]
    assert any("NVIDIA driver" in d for d in error["details"]), error["details"]
    assert "--skip-gpu-checks" in error["hint"]
    assert hostsnapshot.capture() == docker_host
    assert not RECORD_PATH.exists()


def test_the_proof_runs_the_builtin_image_and_says_plainly_why_it_cannot_prove(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    """Installed and configured, then the proof step as install runs it: no GPU, no pass."""
    if Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA driver is loaded here; tests marked gpu cover the real proof")
    ok_document(install(host_bundle, "--json"))
    record = load_record(RECORD_PATH, HostPaths.system())
    assert record is not None and VERIFY in record.images_loaded
    runner = StepRunner(
        verified(host_bundle.manifest, host_bundle.sha256),
        Options("docker", skip_gpu_checks=False), Console(quiet=True), HostPaths.system(),
    )  # fmt: skip

    with pytest.raises(GpubundleError) as caught:
        proof.run(runner.ctx, record)

    err = caught.value
    assert err.message == (
        "could not prove that containers see GPUs: the NVIDIA driver lists no GPU on this host"
    )
    assert "--skip-gpu-checks" in err.hint and "nvidia-smi -L" in err.hint
    ran = [d for d in err.details if " gpus-all: " in d]
    # It ran the builtin image first, then the CUDA image, each with --gpus all, and says
    # what the runtime answered; nothing passed.
    assert [d.split(" ", 1)[0] for d in ran] == [VERIFY, CUDA_STANDIN.ref], err.details
    assert f"docker run --rm --gpus all {VERIFY} nvidia-smi -L" in ran[0]
    assert all("the container did not run" in d for d in ran), ran


def test_docker_refusing_the_new_config_is_rolled_back_and_started_as_before(
    host_bundle: HostBundle, docker_host: HostSnapshot, tmp_path: Path
) -> None:
    facts = engine.detect_engine(HostPaths.system())
    env_before = engine.process_environ(facts.pid, HostPaths.system().proc)

    failed = install(host_bundle, "--json", env=corrupting_nvidia_ctk(tmp_path / "bin"))

    assert failed.returncode == 1, failed.stdout
    error = json.loads(failed.stdout)
    assert error["message"].startswith("install failed after configuring the container runtime")
    assert any("restored and the engine restarted" in d for d in error["details"]), error
    assert any(INVALID_KEY in d for d in error["details"]), error["details"]
    after = hostsnapshot.capture()
    assert after.daemon_json == docker_host.daemon_json and after.runtimes == docker_host.runtimes
    now = engine.detect_engine(
        HostPaths.system()
    )  # started again as it ran: same arguments, same environment
    assert now.running and now.argv == facts.argv
    assert engine.process_environ(now.pid, HostPaths.system().proc) == env_before
    record = json.loads(RECORD_PATH.read_text())
    assert record["runtime_change"] is None
    assert record["steps_completed"] == STEPS_TO_RUNTIME[:3]

    doc = ok_document(install(host_bundle, "--json"))  # fixed: the same command completes
    assert step_results(doc)["runtime-config"][0] == "done"
    assert "nvidia" in (hostsnapshot.capture().runtimes or ())
