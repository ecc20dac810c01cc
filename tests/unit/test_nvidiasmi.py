"""Which nvidia-smi a path is: ELF, symlink, or a wrapper script, read from real files."""

from __future__ import annotations

import shutil
from pathlib import Path

from installer import cdispec, nvidiasmi
from installer.nvidiasmi import SmiFile

# The wrapper seen on the GPU host (issue #9), and variants of the same idea.
WRAPPER = '#!/bin/sh\nexec /usr/local/nvidia/bin/nvidia-smi "$@"\n'
ENV_WRAPPER = (
    "#!/usr/bin/env bash\n# pick the driver\n"
    'LD_LIBRARY_PATH=/usr/local/nvidia/lib64 exec -a nvidia-smi /opt/drv/nvidia-smi.real "$@"\n'
)
NAMES_NOTHING = "#!/bin/sh\necho hello\n"
SPEC_WITH_WRAPPER = """\
---
cdiVersion: "0.5.0"
containerEdits:
  mounts:
  - containerPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
    hostPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
    options:
    - ro
  - containerPath: /usr/bin/nvidia-smi
    hostPath: /usr/bin/nvidia-smi
    options:
    - ro
kind: nvidia.com/gpu
"""


def test_parse_script() -> None:
    assert nvidiasmi.parse_script(WRAPPER) == ("/bin/sh", ("/usr/local/nvidia/bin/nvidia-smi",))
    assert nvidiasmi.parse_script(ENV_WRAPPER) == ("bash", ("/opt/drv/nvidia-smi.real",))
    assert nvidiasmi.parse_script(NAMES_NOTHING) == ("/bin/sh", ())


def test_judge_mounted() -> None:
    elf = SmiFile(
        "/usr/local/nvidia/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi", kind="elf"
    )
    assert nvidiasmi.judge_mounted(elf, {"/usr/local/nvidia/bin/nvidia-smi"}) == ""
    script = SmiFile(
        "/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi", kind="script",
        interpreter="/bin/sh", targets=("/usr/local/nvidia/bin/nvidia-smi",),
    )  # fmt: skip
    why = nvidiasmi.judge_mounted(script, {"/usr/bin/nvidia-smi"})
    assert "is a script, not the driver's nvidia-smi" in why
    assert "its interpreter /bin/sh" in why
    assert "/usr/local/nvidia/bin/nvidia-smi, which it runs" in why
    everything = {"/usr/bin/nvidia-smi", "/bin/sh", "/usr/local/nvidia/bin/nvidia-smi"}
    assert nvidiasmi.judge_mounted(script, everything) == ""
    dangling = SmiFile("/usr/bin/nvidia-smi", "", ("/usr/bin/nvidia-smi -> /gone",))
    assert "does not exist on the host" in nvidiasmi.judge_mounted(dangling, set())


def test_inspect_and_driver_binary_through_a_wrapper_and_a_symlink(tmp_path: Path) -> None:
    driver = tmp_path / "usr/local/nvidia/bin"
    driver.mkdir(parents=True)
    shutil.copyfile("/bin/true", driver / "nvidia-smi.580")  # an ELF, as the driver's is
    (driver / "nvidia-smi").symlink_to("nvidia-smi.580")
    wrapper = tmp_path / "nvidia-smi"
    wrapper.write_text(f'#!/bin/sh\nexec {driver}/nvidia-smi "$@"\n')
    smi = nvidiasmi.inspect(str(wrapper))
    assert (smi.kind, smi.interpreter, smi.targets) == (
        "script",
        "/bin/sh",
        (f"{driver}/nvidia-smi",),
    )
    binary, seen = nvidiasmi.driver_binary(str(wrapper))
    assert binary is not None and binary.path == f"{driver}/nvidia-smi"
    assert binary.kind == "elf" and binary.resolved == str(driver / "nvidia-smi.580")
    assert binary.links == (f"{driver}/nvidia-smi -> nvidia-smi.580",)
    assert [s.kind for s in seen] == ["script", "elf"]
    # A bind mount follows the host's link: a symlinked ELF runs in the container.
    assert nvidiasmi.judge_mounted(binary, {f"{driver}/nvidia-smi"}) == ""
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert nvidiasmi.inspect(str(tmp_path / "gone")).kind == "missing"
    assert nvidiasmi.driver_binary(str(tmp_path / "gone"))[0] is None


def test_path_helpers(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        d.mkdir()
        shutil.copyfile("/bin/true", d / "nvidia-smi")
        (d / "nvidia-smi").chmod(0o755)
    assert nvidiasmi.first_on_path(f"{first}:{second}") == str(first / "nvidia-smi")
    assert nvidiasmi.driver_dir_first(f"/usr/bin:{second}:/bin", str(second)) == (
        f"{second}:/usr/bin:/bin"
    )


def test_cdispec_reads_mounts_and_versions() -> None:
    facts = cdispec.parse_spec(SPEC_WITH_WRAPPER)
    assert facts.kind == "nvidia.com/gpu"
    assert facts.nvidia_smi() == cdispec.Mount("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi")
    assert facts.driver_versions == ("580.159.04",)
    assert "/usr/bin/nvidia-smi" in facts.container_paths
    assert cdispec.stale_reason(facts, "580.159.04") == ""
    assert cdispec.stale_reason(facts, "590.1.2") == (
        "generated for driver 580.159.04, the running driver is 590.1.2"
    )
    hook_only = cdispec.parse_spec(
        '{"kind": "nvidia.com/gpu", "containerEdits": {"hooks": [{"args": '
        '["nvidia-cdi-hook", "enable-cuda-compat", "--host-driver-version=575.57.08"]}]}}'
    )
    assert hook_only.driver_versions == ("575.57.08",) and hook_only.nvidia_smi() is None
