"""GPU proof: plan, parsing and judging; CDI spec reading; docker load output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer import containers as c
from tests.support.cdispecs import CDI_YAML, REAL_SPEC_OLD_DRIVER

H0 = "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1"
H1 = "GPU-0c3e1a55-2b1e-4f7b-9a3c-1d2e3f4a5b6c"
SMI_L = f"GPU 0: NVIDIA H200 (UUID: {H0})\nGPU 1: NVIDIA H200 (UUID: {H1})\n"
DOCKER_20 = c.docker_support({"ServerVersion": "20.10.24", "Runtimes": {"runc": {}}})
CDI_AND_RUNTIME = c.DockerSupport(True, "", True)
HOOK_REFUSAL = (
    "docker: Error response from daemon: failed to create task for container: "
    "nvidia-container-runtime: container requests GPUs (NVIDIA_VISIBLE_DEVICES=all) but this "
    "is a stand-in for tests, not NVIDIA's binary: no NVIDIA driver is available.\n"
)


def test_parse_gpu_list() -> None:
    assert c.parse_gpu_list(SMI_L) == (H0, H1)
    assert c.parse_gpu_list("No devices were found\n") == ()


def test_parse_loaded() -> None:
    out = "Loaded image: 127.0.0.1:5000/cuda:12.4\nLoaded image ID: sha256:abc\n"
    assert c.parse_loaded(out) == ["127.0.0.1:5000/cuda:12.4", "sha256:abc"]


def test_plan_single_gpu_without_cdi() -> None:
    plan = c.proof_plan("img", [H0], cdi=False)
    assert [a.name for a in plan] == ["gpus-all"]
    assert plan[0].argv == ["docker", "run", "--rm", "--gpus", "all", "img", "nvidia-smi", "-L"]
    assert plan[0].required


def test_plan_multi_gpu_with_cdi_runtime_and_spec_path() -> None:
    smi = "/usr/local/nvidia/bin/nvidia-smi"
    plan = c.proof_plan("img", [H0, H1], cdi=True, runtime=True, smi=smi)
    names = {a.name: a for a in plan}
    assert list(names) == ["gpus-all", "cdi-all", "runtime-nvidia", "gpus-1", "device-0"]
    assert names["cdi-all"].argv[3:5] == ["--device", c.CDI_DEVICE_ALL]
    assert names["runtime-nvidia"].argv[3:6] == [
        "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all",
    ]  # fmt: skip
    assert names["device-0"].argv[3:5] == ["--gpus", "device=0"]
    assert names["device-0"].expected == (H0,)
    assert names["gpus-all"].argv[-2] == smi
    # The rule: the --gpus forms and CDI decide; --runtime=nvidia is reported only.
    assert {a.name for a in plan if a.required} == {"gpus-all", "cdi-all", "gpus-1", "device-0"}


def test_judge() -> None:
    host = [H0, H1]
    assert c.judge("gpus-all", (H0, H1), host, (H1, H0), 0, SMI_L) == (True, "")
    ok, why = c.judge("gpus-all", (H0, H1), host, (H0,), 0, "")
    assert not ok and H1 in why
    assert c.judge("gpus-1", (), host, (H1,), 0, "")[0]
    assert not c.judge("gpus-1", (), host, (H0, H1), 0, "")[0]
    assert not c.judge("gpus-1", (), host, ("GPU-other",), 0, "")[0]
    ok, why = c.judge("gpus-all", (H0,), [H0], (), 125, HOOK_REFUSAL)
    assert not ok and "did not run" in why and "stand-in" in why


def test_cdi_spec_nvidia_smi_path() -> None:
    assert c.smi_path_from_cdi_spec(CDI_YAML) == "/usr/local/nvidia/bin/nvidia-smi"
    mount = {"containerPath": "/usr/bin/nvidia-smi", "hostPath": "/usr/bin/nvidia-smi"}
    spec_json = json.dumps({"containerEdits": {"mounts": [mount]}})
    assert c.smi_path_from_cdi_spec(spec_json) == "/usr/bin/nvidia-smi"
    assert c.smi_path_from_cdi_spec("kind: nvidia.com/gpu\n") == ""


def _fake_docker(bindir: Path, stdout: str, stderr: str, rc: int) -> None:
    bindir.mkdir(exist_ok=True)
    (bindir / "out.txt").write_text(stdout)
    (bindir / "err.txt").write_text(stderr)
    script = bindir / "docker"
    script.write_text(f"#!/bin/sh\ncat {bindir}/out.txt\ncat {bindir}/err.txt >&2\nexit {rc}\n")
    script.chmod(0o755)


def test_prove_reports_runtime_refusal_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_docker(tmp_path, "", HOOK_REFUSAL, 125)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("img", [H0], CDI_AND_RUNTIME)
    assert not result.ok
    assert [a.name for a in result.attempts] == ["gpus-all", "cdi-all", "runtime-nvidia"]
    assert all(a.exit_code == 125 and "stand-in" in a.error for a in result.attempts)
    doc = json.loads(json.dumps(result.as_dict()))
    assert doc["ok"] is False and doc["attempts"][0]["argv"][:3] == ["docker", "run", "--rm"]


def test_prove_passes_when_uuids_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_docker(tmp_path, f"GPU 0: NVIDIA H200 (UUID: {H0})\n", "", 0)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("img", [H0], DOCKER_20)
    assert result.ok and result.attempts[0].seen_uuids == (H0,)


def test_no_host_gpu_is_never_a_pass() -> None:
    ok, why = c.judge("gpus-all", (), [], (), 0, "")
    assert not ok and "lists no GPU" in why
    ok, why = c.judge("gpus-all", (), [], (), 125, HOOK_REFUSAL)
    assert not ok and "did not run" in why  # the container's own words come first


def _result(image: str, passed: bool, error: str = "") -> c.ProofResult:
    argv = ("docker", "run", "--rm", "--gpus", "all", image, "nvidia-smi", "-L")
    seen = (H0,) if passed else ()
    attempt = c.ProofAttempt("gpus-all", argv, 0 if passed else 125, (H0,), seen, passed, "", error)
    return c.ProofResult(image, (H0,), (attempt,))


def test_proof_failure_names_each_failed_image_and_attempt() -> None:
    verify, cuda = "gpubundle/verify:debian12-amd64", "127.0.0.1:5000/cuda:12"
    assert c.proof_failure([_result(verify, True), _result(cuda, True)], [H0]) is None
    err = c.proof_failure([_result(verify, True), _result(cuda, False, "refused")], [H0])
    assert err is not None and "did not see the host's GPUs" in err.message
    assert list(err.details) == [
        f"{cuda} gpus-all: refused (docker run --rm --gpus all {cuda} nvidia-smi -L)",
        f"{verify} gpus-all: passed, saw {H0} (docker run --rm --gpus all {verify} nvidia-smi -L)",
    ]
    assert "doctor" in err.hint


def test_proof_failure_without_host_gpus_says_why_plainly() -> None:
    refused = _result("gpubundle/verify:debian12-amd64", False, "the container did not run: x")
    err = c.proof_failure([refused], [], "no NVIDIA driver is loaded (no nvidia module)")
    assert err is not None
    assert err.message.startswith("could not prove that containers see GPUs")
    assert "lists no GPU" in err.message
    assert err.details[0] == "no NVIDIA driver is loaded (no nvidia module)"
    assert "the container did not run: x" in err.details[1]
    assert "--skip-gpu-checks" in err.hint
    nothing = c.proof_failure([], [H0])
    assert nothing is not None and "no image to run" in nothing.message


def test_prove_images_runs_each_image_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_docker(tmp_path, f"GPU 0: NVIDIA H200 (UUID: {H0})\n", "", 0)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    results = c.prove_images(["verify:1", "cuda:12"], [H0], DOCKER_20)
    assert [r.image for r in results] == ["verify:1", "cuda:12"]
    assert [r.attempts[0].argv[5] for r in results] == ["verify:1", "cuda:12"]
    assert all(r.ok for r in results) and c.proof_failure(results, [H0]) is None


def test_load_archives_loads_each_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def load(archive: Path, progress: object = None) -> list[str]:
        calls.append(archive)
        return [archive.stem]

    monkeypatch.setattr(c, "load_images", load)
    archives = [Path("b/gpubundle-verify.tar"), Path("b/images.tar")]
    assert c.load_archives(archives) == ["gpubundle-verify", "images"]
    assert calls == archives


NO_CLI = (
    "docker: Error response from daemon: failed to create task for container: "
    "error running prestart hook #0: exit status 1, stdout: , stderr: "
    "Auto-detected mode as 'legacy'\nnvidia-container-cli: couldn't find binary "
    "nvidia-container-cli in PATH: unknown.\n"
)
UNRESOLVABLE = "docker: Error response from daemon: could not select device driver: unresolvable CDI devices nvidia.com/gpu=all.\n"  # fmt: skip


def _docker_by_path(bindir: Path, fail: dict[str, str]) -> None:
    """A docker CLI that answers each access path: GPU 0's line, or the error given for it."""
    bindir.mkdir(exist_ok=True)
    cases = []
    for pattern, error in fail.items():
        (bindir / f"{len(cases)}.err").write_text(error)
        cases.append(f'  *"{pattern}"*) cat {bindir}/{len(cases)}.err >&2; exit 125 ;;')
    script = bindir / "docker"
    script.write_text(
        '#!/bin/sh\ncase "$*" in\n' + "\n".join(cases)
        + f'\n  *) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: {H0})" ;;\nesac\n'
    )  # fmt: skip
    script.chmod(0o755)


def test_docker_support_over_data() -> None:
    """Docker 20.10 (here) has no CDI; 25+ only with CDI enabled (CDISpecDirs listed)."""
    assert not DOCKER_20.cdi and "20.10.24 has no CDI (needs 25 or newer)" in DOCKER_20.cdi_reason
    assert not DOCKER_20.nvidia_runtime and "not registered" in DOCKER_20.runtime_reason
    seen_on_the_gpu_host = {
        "ServerVersion": "29.1.3",
        "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
        "Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": {}},
    }
    assert c.docker_support(seen_on_the_gpu_host) == c.DockerSupport(True, "", True, "")
    off = c.docker_support({"ServerVersion": "27.5.1", "CDISpecDirs": []})
    assert not off.cdi and "CDI is not enabled in Docker 27.5.1" in off.cdi_reason
    down = c.docker_support(None)
    assert not down.cdi and not down.nvidia_runtime and "did not answer" in down.cdi_reason


def test_every_path_is_attempted_and_reported_passed_ones_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #9: --gpus failed (no nvidia-container-cli) while CDI and --runtime worked."""
    _docker_by_path(tmp_path, {"--gpus all": NO_CLI})
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("verify:1", [H0], CDI_AND_RUNTIME)
    verdicts = {a.name: (a.passed, a.evidence) for a in result.attempts}
    assert verdicts["cdi-all"] == (True, f"saw {H0}")
    assert verdicts["runtime-nvidia"] == (True, f"saw {H0}")
    assert not verdicts["gpus-all"][0] and "couldn't find binary" in verdicts["gpus-all"][1]
    assert not result.ok  # --gpus all is the guide's form: it must work
    assert c.proof_rows([result]) == [
        ["verify:1", "gpus-all", "FAILED", verdicts["gpus-all"][1]],
        ["verify:1", "cdi-all", "passed", f"saw {H0}"],
        ["verify:1", "runtime-nvidia", "passed", f"saw {H0}"],
    ]
    err = c.proof_failure([result], [H0])
    assert err is not None
    details = "\n".join(err.details)
    assert "gpus-all: the container did not run" in details
    assert f"cdi-all: passed, saw {H0}" in details
    assert f"runtime-nvidia: passed, saw {H0}" in details
    doc = json.loads(json.dumps(result.as_dict()))
    assert [(a["name"], a["passed"]) for a in doc["attempts"]] == [
        ("gpus-all", False), ("cdi-all", True), ("runtime-nvidia", True),
    ]  # fmt: skip
    assert doc["attempts"][1]["seen_uuids"] == [H0]


def test_rule_runtime_nvidia_is_reported_but_does_not_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _docker_by_path(tmp_path, {"--runtime=nvidia": "docker: unknown or invalid runtime name: nvidia\n"})  # fmt: skip
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("verify:1", [H0], CDI_AND_RUNTIME)
    assert result.ok and c.proof_failure([result], [H0]) is None
    assert c.proof_rows([result])[2][:3] == ["verify:1", "runtime-nvidia", "failed (optional)"]
    summary = c.proof_summary([result], [H0])
    assert f"gpus-all ok: saw {H0}" in summary and f"cdi-all ok: saw {H0}" in summary
    assert "runtime-nvidia failed: the container did not run: docker: unknown" in summary


def test_rule_cdi_must_pass_where_docker_supports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _docker_by_path(tmp_path, {"nvidia.com/gpu=all": UNRESOLVABLE})
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    supported = c.prove_gpus("verify:1", [H0], CDI_AND_RUNTIME)
    assert not supported.ok
    err = c.proof_failure([supported], [H0])
    assert err is not None and "cdi-all: the container did not run" in err.details[0]
    # On Docker 20.10 (no CDI) the CDI path is not tried, says why, and --gpus decides.
    old = c.prove_gpus("verify:1", [H0], DOCKER_20)
    assert old.ok and [a.name for a in old.attempts] == ["gpus-all"]
    assert [row[1:3] for row in c.proof_rows([old])] == [
        ["gpus-all", "passed"], ["cdi-all", "not tried"], ["runtime-nvidia", "not tried"],
    ]  # fmt: skip
    assert "has no CDI" in c.proof_rows([old])[1][3]


def test_regeneration_reason() -> None:
    assert c.regeneration_reason(None, False, "580.159.04") == "no NVIDIA CDI spec yet"
    assert "gpubundle generated it" in c.regeneration_reason(CDI_YAML, True, "580.159.04")
    assert c.regeneration_reason(CDI_YAML, False, "580.159.04") == ""  # someone's, current
    stale = c.regeneration_reason(REAL_SPEC_OLD_DRIVER, False, "580.159.04")
    assert stale == (
        "the spec is stale: generated for driver 550.54.15, the running driver is 580.159.04"
    )
    assert c.regeneration_reason(REAL_SPEC_OLD_DRIVER, False, "") == ""  # no driver: cannot tell


def test_refresh_reason_reads_the_spec_and_its_nvidia_smi(tmp_path: Path) -> None:
    spec = tmp_path / "nvidia.yaml"
    assert c.refresh_reason(spec, True, "580.159.04") == ""  # no spec: nothing to refresh
    spec.write_text(REAL_SPEC_OLD_DRIVER)
    assert c.refresh_reason(spec, False, "580.159.04").startswith(
        "the spec is stale: generated for driver 550.54.15"
    )
    wrapper = tmp_path / "nvidia-smi"
    wrapper.write_text('#!/bin/sh\nexec /usr/local/nvidia/bin/nvidia-smi "$@"\n')
    spec.write_text(
        "kind: nvidia.com/gpu\ncontainerEdits:\n  mounts:\n"
        f"  - containerPath: /usr/bin/nvidia-smi\n    hostPath: {wrapper}\n"
    )
    # Made by an older gpubundle with the wrapper in it: made again. Someone else's: doctor says.
    assert "cannot run in a container" in c.refresh_reason(spec, True, "580.159.04")
    assert c.refresh_reason(spec, False, "580.159.04") == ""


@pytest.mark.parametrize(
    ("rule", "deciding"),
    [
        ("default", {"gpus-all", "cdi-all", "gpus-1", "device-0"}),
        ("gpus", {"gpus-all", "gpus-1", "device-0"}),
        ("cdi", {"cdi-all"}),
        ("all", {"gpus-all", "cdi-all", "runtime-nvidia", "gpus-1", "device-0"}),
    ],
)
def test_proof_rules_pick_the_deciding_paths_and_every_path_still_runs(
    rule: str, deciding: set[str]
) -> None:
    plan = c.proof_plan("img", [H0, H1], cdi=True, runtime=True, rule=rule)
    assert [a.name for a in plan] == ["gpus-all", "cdi-all", "runtime-nvidia", "gpus-1", "device-0"]
    assert {a.name for a in plan if a.required} == deciding


def test_rule_cdi_on_a_docker_without_cdi_is_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert c.rule_problem("cdi", DOCKER_20) == (
        "--proof cdi needs CDI, and Docker 20.10.24 has no CDI (needs 25 or newer)"
    )
    assert c.rule_problem("cdi", CDI_AND_RUNTIME) == ""
    assert c.rule_problem("default", DOCKER_20) == ""
    # --proof cdi on a host where --gpus fails (no nvidia-container-cli) and CDI works.
    _docker_by_path(tmp_path, {"--gpus all": NO_CLI})
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("verify:1", [H0], CDI_AND_RUNTIME, rule="cdi")
    assert result.ok and c.proof_failure([result], [H0]) is None
    assert c.proof_rows([result])[0][:3] == ["verify:1", "gpus-all", "failed (optional)"]
