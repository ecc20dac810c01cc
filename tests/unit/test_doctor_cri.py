"""containerd and CRI-O doctor checks on facts built from real configuration texts: what
nvidia-ctk writes (the stand-in's output, which follows NVIDIA's pkg/config/engine
containerd and crio code) for containerd config versions 1, 2 and 3 and a CRI-O drop-in,
and each way it goes wrong. CRI-O is not packaged in Debian 12: these texts are its only
tests; containerd also has tests/integration/test_doctor_containerd.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from installer.doctor import HostFacts, cri, judge, report
from installer.doctor.checks import Finding
from installer.doctor.compute import ComputeFacts
from installer.doctor.criconfig import read_config
from installer.doctor.crifacts import CriEngineFacts, engine_files, read_files, resolve_binary
from installer.doctor.dockerfacts import DaemonJson, DockerFacts
from installer.doctor.driver import DriverCheckFacts
from installer.doctor.enginechoice import Choice, EngineSeen, choose
from installer.doctor.installrecord import RecordFacts
from installer.doctor.toolkit import ConfigFile, ToolkitFacts
from installer.doctor.traps import TrapFacts
from installer.gpu import DriverFacts
from installer.hostpaths import HostPaths
from tests.support import runtimeconfigs

BINARY = "/usr/bin/nvidia-container-runtime"
CONFIG = Path("/etc/containerd/config.toml")
DROP_IN = Path("/etc/crio/crio.conf.d/99-nvidia.toml")
TOOLKIT_CONFIG = ConfigFile(HostPaths.system().nvidia_runtime_config, False)  # absent
DAEMON_JSON = DaemonJson(HostPaths.system().docker_daemon_json)  # absent

# nvidia-ctk runtime configure --runtime=containerd on a version 2 file (a user's keys kept)
V2 = f"""oom_score = -500
version = 2

[grpc]
address = "/run/containerd/containerd.sock"

[plugins]

[plugins."io.containerd.grpc.v1.cri"]

[plugins."io.containerd.grpc.v1.cri".containerd]

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
SystemdCgroup = true
BinaryName = "{BINARY}"
"""
# … on a version 3 file (containerd 2.x)
V3 = f"""version = 3

[plugins]

[plugins."io.containerd.cri.v1.runtime"]

[plugins."io.containerd.cri.v1.runtime".containerd]

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes]

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia.options]
BinaryName = "{BINARY}"
"""
# … on a version 1 file (NVIDIA's config_v1: plugins.cri)
V1 = f"""version = 1

[plugins.cri.containerd.runtimes.nvidia]
runtime_type = "io.containerd.runc.v2"

[plugins.cri.containerd.runtimes.nvidia.options]
BinaryName = "{BINARY}"
"""
# A user's file, as Debian's containerd package ships it: no nvidia runtime.
UNCONFIGURED = """version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"""
# nvidia-ctk --runtime=crio writes this drop-in
CRIO_DROP_IN = f"""
[crio]

[crio.runtime]

[crio.runtime.runtimes]

[crio.runtime.runtimes.nvidia]
runtime_path = "{BINARY}"
runtime_type = "oci"
"""
CRIO_MAIN = """[crio.runtime]
default_runtime = "crun"

[crio.runtime.runtimes.crun]
runtime_path = "/usr/bin/crun"
"""


def facts(text: str | None = V2, name: str = "containerd", **kw: object) -> CriEngineFacts:
    base: dict[str, object] = dict(
        name=name,
        label=name,
        installed=True,
        packages=("containerd",) if name == "containerd" else ("cri-o",),
        config_path=CONFIG if name == "containerd" else DROP_IN,
        config_files=(CONFIG,) if text is not None else (),
        config=read_config(name, [text]) if text is not None else None,
        config_mtime=1000.0 if text is not None else None,
        running=True,
        version="1.7.24",
        pid=4242,
        argv=(name, "--config", str(CONFIG)),
        probe=f"ctr --address /run/{name}/{name}.sock version",
        init="systemctl",
        started_at=2000.0,
        binary=BINARY,
        binary_executable=True,
    )
    base.update(kw)
    return CriEngineFacts(**base)  # type: ignore[arg-type]


def loaded(text: str) -> dict[str, object]:
    """What ``containerd config dump`` would show: the keyword arguments for facts()."""
    return {"loaded": read_config("containerd", [text]), "load_check": "containerd config dump"}


# --- the configuration as the engines read it --------------------------------------------


@pytest.mark.parametrize(
    ("text", "version", "table"),
    [
        (V1, 1, "plugins.cri.containerd.runtimes"),
        (V2, 2, 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes'),
        (V3, 3, 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes'),
    ],
)
def test_the_nvidia_runtime_is_read_where_each_config_version_puts_it(
    text: str, version: int, table: str
) -> None:
    config = read_config("containerd", [text])
    assert (config.version, config.table, config.nvidia, config.binary) == (
        version,
        table,
        True,
        BINARY,
    )
    assert config.misplaced == () and config.cri_disabled == ""


def test_a_file_without_version_is_version_1_and_a_version_2_table_in_it_is_ignored() -> None:
    config = read_config("containerd", [V2.replace("version = 2\n", "")])
    assert config.version == 1 and not config.nvidia
    assert config.misplaced == ('plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia',)


def test_crio_reads_its_main_file_then_the_drop_in() -> None:
    config = read_config("crio", [CRIO_MAIN, CRIO_DROP_IN])
    assert config.nvidia and config.binary == BINARY
    assert config.default_runtime == "crun" and set(config.runtimes) == {"crun", "nvidia"}
    assert config.cdi_key == ""


def test_engine_files_of_a_drop_in_are_the_main_file_and_every_drop_in(tmp_path: Path) -> None:
    conf_d = tmp_path / "crio.conf.d"
    conf_d.mkdir()
    (tmp_path / "crio.conf").write_text(CRIO_MAIN)
    (conf_d / "10-user.toml").write_text('[crio.runtime]\ndefault_runtime = "nvidia"\n')
    (conf_d / "99-nvidia.toml").write_text(CRIO_DROP_IN)
    files = engine_files(conf_d / "99-nvidia.toml")
    assert files == (tmp_path / "crio.conf", conf_d / "10-user.toml", conf_d / "99-nvidia.toml")
    assert engine_files(tmp_path / "config.toml") == (tmp_path / "config.toml",)
    config, error, present, mtime = read_files("crio", files)
    assert error == "" and present == files and mtime is not None
    assert config is not None and config.default_runtime == "nvidia" and config.nvidia


def test_a_file_that_is_not_toml_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"\n')
    config, error, present, _ = read_files("containerd", [path])
    assert config is None and present == (path,)
    assert error.startswith("not valid TOML") and "line 2" in error


def test_the_runtime_binary_is_resolved_and_judged_executable(tmp_path: Path) -> None:
    runtime = tmp_path / "nvidia-container-runtime"
    assert resolve_binary(str(runtime)) == ("", False)
    runtime.write_text("#!/bin/sh\n")
    runtime.chmod(0o644)
    assert resolve_binary(str(runtime)) == (str(runtime), False)
    runtime.chmod(0o755)
    assert resolve_binary(str(runtime)) == (str(runtime), True)
    assert resolve_binary("") == ("", False)


# --- the checks ----------------------------------------------------------------------------


def _one(finding: Finding, status: str, *in_fix: str) -> Finding:
    assert finding.status == status, finding
    for text in in_fix:
        assert any(text in line for line in finding.fix), (text, finding.fix)
    return finding


@pytest.mark.parametrize("text", [V1, V2, V3])
def test_a_configured_running_containerd_is_ok_in_every_check(text: str) -> None:
    findings = cri.check_engine(
        facts(
            text,
            cdi_specs=("/etc/cdi/nvidia.yaml",),
            **loaded(text),
        )
    )
    statuses = {f.check_id: f.status for f in findings}
    assert statuses == {
        "containerd.installed": "ok",
        "containerd.running": "ok",
        "containerd.config": "ok",
        "containerd.nvidia-runtime": "ok",
        "containerd.runtime-binary": "ok",
        "containerd.restarted": "ok",
        "containerd.default-runtime": "ok",
        "containerd.cdi": "skipped",  # not enabled: optional
    }


def test_a_configured_crio_is_ok() -> None:
    f = facts(name="crio", text=None, config=read_config("crio", [CRIO_MAIN, CRIO_DROP_IN]),
              config_files=(DROP_IN,), config_mtime=1000.0)  # fmt: skip
    statuses = {x.check_id: x.status for x in cri.check_engine(f)}
    assert statuses["crio.nvidia-runtime"] == "ok"
    assert statuses["crio.default-runtime"] == "ok"  # crun is one CRI-O knows
    assert statuses["crio.cdi"] == "skipped"  # no spec; CRI-O has no switch
    assert {s for k, s in statuses.items() if k != "crio.cdi"} == {"ok"}


def test_not_installed_fails_with_what_to_carry_in() -> None:
    f = facts(installed=False, running=False, version="")
    finding = _one(
        cri.check_installed(f), "failure", "dpkg -i containerd_*.deb", "--runtime docker"
    )
    assert "--runtime containerd" in finding.fix[1]
    assert cri.check_running(f).status == "skipped"
    rest = cri.check_engine(f)[1:]
    assert {x.status for x in rest} == {"skipped"} and len(rest) == len(cri.CHECK_NAMES) - 1
    assert {x.summary for x in rest} == {"containerd is not installed"}


def test_not_running_fails_with_the_start_command_of_this_host() -> None:
    stopped = facts(running=False, pid=0, version="")
    _one(cri.check_running(stopped), "failure", "systemctl start containerd")
    _one(cri.check_running(dataclasses.replace(stopped, init="service")), "failure",
         "service containerd start")  # fmt: skip
    direct = _one(cri.check_running(dataclasses.replace(stopped, init="")), "failure")
    assert direct.fix[0].startswith(f"nohup containerd --config {CONFIG} >>")
    hung = facts(running=False, problem="containerd (pid 4242) runs but does not answer on S")
    finding = _one(cri.check_running(hung), "failure", "systemctl restart containerd")
    assert hung.problem in finding.evidence
    no_init = _one(cri.check_running(dataclasses.replace(hung, init="")), "failure")
    assert no_init.fix[0].startswith(f"kill 4242 && nohup containerd --config {CONFIG}")


def test_a_config_that_does_not_parse_or_that_containerd_refuses_fails() -> None:
    bad = facts(None, config_error="not valid TOML: expected ']' (line 2)",
                config_files=(CONFIG,), load_check="containerd --config X config dump")  # fmt: skip
    finding = _one(cri.check_config(bad), "failure", f"edit {CONFIG}")
    assert finding.fix[0].startswith("containerd --config X config dump")
    assert cri.check_nvidia_runtime(bad).status == "skipped"
    refused = facts(loaded_error="invalid plugin key URI", load_check="containerd config dump")
    _one(cri.check_config(refused), "failure", "containerd config dump  # shows why")
    assert _one(cri.check_config(facts(None)), "ok").summary.endswith("(containerd's defaults)")


def test_no_nvidia_runtime_fails_with_nvidia_ctk_and_a_restart() -> None:
    fix = (
        f"nvidia-ctk runtime configure --runtime=containerd --config={CONFIG}",
        "systemctl restart containerd",
    )
    _one(cri.check_nvidia_runtime(facts(UNCONFIGURED)), "failure", *fix)
    _one(cri.check_nvidia_runtime(facts(None)), "failure", *fix)
    _one(cri.check_nvidia_runtime(facts(V2.replace("BinaryName", "Other"))), "failure", *fix)
    crio = facts(name="crio", text="[crio.runtime]\nlog_level = 'info'\n")
    _one(cri.check_nvidia_runtime(crio), "failure",
         f"nvidia-ctk runtime configure --runtime=crio --config={DROP_IN}")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "other", "edit"),
    [
        (V2.replace("version = 2\n", ""), "io.containerd.grpc.v1.cri", "sed -i '1i version = 2'"),
        (
            V3.replace("version = 3", "version = 2"),
            "io.containerd.cri.v1.runtime",
            "sed -i 's/^version *=.*/version = 3/'",
        ),
        (
            V2.replace("version = 2", "version = 3"),
            "io.containerd.grpc.v1.cri",
            "sed -i 's/^version *=.*/version = 2/'",
        ),
        (V1.replace("version = 1", "version = 2"), "cri", "sed -i 's/^version *=.*/version = 1/'"),
    ],
)
def test_a_runtime_in_another_config_versions_table_fails(text: str, other: str, edit: str) -> None:
    finding = _one(cri.check_nvidia_runtime(facts(text)), "failure", "systemctl restart containerd")
    assert "does not read" in finding.summary
    assert any(other in e for e in finding.evidence)
    assert finding.fix[0].startswith(f"{edit} {CONFIG}  # the version [plugins.")
    assert finding.fix[2].startswith("or: delete [plugins.")
    assert finding.fix[2].endswith(
        f"then: nvidia-ctk runtime configure --runtime=containerd --config={CONFIG}"
    )


def test_the_cri_plugin_switched_off_fails_with_the_entry_to_remove() -> None:
    text = 'disabled_plugins = ["cri"]\n' + V2
    finding = _one(cri.check_nvidia_runtime(facts(text)), "failure",
                   f'remove "cri" from disabled_plugins in {CONFIG}')  # fmt: skip
    assert "CRI plugin off" in finding.summary


def test_a_runtime_containerd_does_not_load_fails() -> None:
    finding = cri.check_nvidia_runtime(facts(V2, **loaded(UNCONFIGURED)))
    _one(finding, "failure", "nvidia-ctk runtime configure")
    assert "does not load" in finding.summary
    assert "shows it" in cri.check_nvidia_runtime(facts(V2, **loaded(V2))).evidence[-1]


def test_the_runtime_binary_missing_or_not_executable_fails() -> None:
    gone = _one(
        cri.check_runtime_binary(facts(binary="")), "failure", "nvidia-container-toolkit-base_"
    )
    assert "does not exist" in gone.summary
    _one(cri.check_runtime_binary(facts(binary_executable=False)), "failure", "dpkg -V")
    assert cri.check_runtime_binary(facts(UNCONFIGURED)).status == "skipped"


def test_a_config_changed_after_the_daemon_started_is_not_live() -> None:
    late = facts(config_mtime=2010.0)
    _one(cri.check_restarted(late), "failure", "systemctl restart containerd")
    _one(cri.check_restarted(facts(UNCONFIGURED, config_mtime=2010.0)), "warning",
         "systemctl restart containerd")  # fmt: skip
    assert cri.check_restarted(facts(config_mtime=2001.5)).status == "ok"  # whole seconds
    assert cri.check_restarted(facts(running=False)).status == "skipped"
    assert cri.check_restarted(facts(started_at=None)).status == "skipped"
    direct = _one(cri.check_restarted(dataclasses.replace(late, init="")), "failure")
    assert direct.fix[0].startswith("kill 4242 && nohup containerd")


def test_default_runtime() -> None:
    plugin = '[plugins."io.containerd.grpc.v1.cri".containerd]\n'
    as_default = V2.replace(plugin, plugin + 'default_runtime_name = "nvidia"\n')
    assert _one(cri.check_default_runtime(facts(as_default)), "ok").evidence == [
        f'{CONFIG}: plugins."io.containerd.grpc.v1.cri".containerd.default_runtime_name = '
        "'nvidia'"
    ]
    runc = V2.replace(plugin, plugin + 'default_runtime_name = "runc"\n')
    _one(cri.check_default_runtime(facts(runc)), "ok")
    dangling = UNCONFIGURED + plugin + 'default_runtime_name = "nvidia"\n'
    finding = _one(cri.check_default_runtime(facts(dangling)), "failure",
                   f"remove default_runtime_name from {CONFIG}")  # fmt: skip
    assert "not defined" in finding.summary
    _one(cri.check_default_runtime(facts(as_default, binary="")), "failure",
         "nvidia-container-toolkit-base_")  # fmt: skip
    crio = facts(name="crio", text=CRIO_DROP_IN.replace("[crio.runtime]\n", '[crio.runtime]\ndefault_runtime = "kata"\n'))  # fmt: skip
    _one(cri.check_default_runtime(crio), "failure", f"remove default_runtime from {DROP_IN}")


def test_cdi() -> None:
    plugin = '[plugins."io.containerd.grpc.v1.cri"]\n'
    enabled = V2.replace(plugin, plugin + "enable_cdi = true\n")
    spec = ("/etc/cdi/nvidia.yaml",)
    _one(cri.check_cdi(facts(enabled, cdi_specs=spec, **loaded(enabled))), "ok")
    _one(cri.check_cdi(facts(enabled, **loaded(enabled))), "warning", "nvidia-ctk cdi generate")
    old = _one(cri.check_cdi(facts(enabled, cdi_specs=spec, **loaded(V2))), "warning")
    assert "1.7 or newer" in old.summary
    assert cri.check_cdi(facts(V2, cdi_specs=spec)).status == "skipped"
    on_by_default = V2.replace(plugin, plugin + "enable_cdi = true\n")  # containerd 2's dump
    _one(cri.check_cdi(facts(V2, cdi_specs=spec, **loaded(on_by_default))), "ok")
    crio = facts(name="crio", text=CRIO_DROP_IN, cdi_specs=spec)
    _one(cri.check_cdi(crio), "ok")


def test_an_engine_not_checked_has_every_check_skipped_with_the_reason() -> None:
    findings = cri.check_engine(facts(installed=False), "not checked: the record names Docker")
    assert [f.check_id for f in findings] == cri.check_ids(["containerd"])
    assert {f.status for f in findings} == {"skipped"}
    assert {f.summary for f in findings} == {"not checked: the record names Docker"}


# --- which engines are checked ----------------------------------------------------------


def seen(name: str, installed: bool = True, in_use: bool = False, configured: bool = False) -> EngineSeen:  # fmt: skip
    return EngineSeen(name, name, installed, in_use, configured)


def test_the_install_records_engine_is_the_one_checked() -> None:
    choice = choose([seen("docker", in_use=True, configured=True), seen("containerd")],
                    "containerd", str(CONFIG))  # fmt: skip
    assert choice.engines == ("containerd",)
    assert (
        choice.not_checked("docker")
        == f"not checked: the install record names containerd ({CONFIG})"
    )
    assert choice.not_checked("containerd") == ""


def test_without_a_record_configured_then_running_then_installed_engines() -> None:
    docker, ctd, crio = "docker", "containerd", "crio"
    assert choose([seen(docker), seen(ctd, configured=True), seen(crio, configured=True)]).engines == (ctd, crio)  # fmt: skip
    assert choose([seen(docker, in_use=True), seen(ctd), seen(crio, False)]).engines == (docker,)
    assert choose([seen(docker, False), seen(ctd, in_use=True), seen(crio, False)]).engines == (
        ctd,
    )
    assert choose([seen(docker), seen(ctd), seen(crio, False)]).engines == (
        docker,
    )  # docker's containerd
    assert choose([seen(docker, False), seen(ctd), seen(crio)]).engines == (ctd,)
    nothing = choose([seen(docker, False), seen(ctd, False), seen(crio, False)])
    assert nothing.engines == (docker,) and "no container engine" in nothing.basis


def test_served_cri_is_false_for_a_containerd_with_the_cri_plugin_off() -> None:
    assert facts().served_cri
    assert not facts('disabled_plugins = ["cri"]\n' + V2).served_cri
    assert not facts(running=False).served_cri


# --- the doctor as a whole --------------------------------------------------------------


def host(choice: Choice, docker: DockerFacts, ctd: CriEngineFacts) -> HostFacts:
    driver = DriverFacts(True, "550.54.15", "12.4", (), "pynvml", "")
    return HostFacts(
        driver=DriverCheckFacts(driver),
        toolkit=ToolkitFacts(TOOLKIT_CONFIG),
        docker=docker,
        traps=TrapFacts(docker_known=False, config_toml=TOOLKIT_CONFIG.path),
        images=(),
        record=RecordFacts("/var/lib/gpubundle/install-record.json"),
        compute=ComputeFacts(skipped_reason="no image"),
        cri=(ctd, facts(name="crio", installed=False)),
        engines=choice,
    )


DOCKER_IDS = ("engine.installed", "engine.running", "engine.daemon-json", "engine.nvidia-runtime",
              "engine.restarted", "engine.default-runtime", "engine.cdi")  # fmt: skip


def test_on_a_containerd_host_docker_checks_are_skipped_and_containerd_ones_listed() -> None:
    choice = Choice(("containerd",), "the install record names containerd")
    document = report(
        judge(host(choice, DockerFacts(source="none", daemon_json=DAEMON_JSON), facts()))
    )
    by_id = {f["check_id"]: f for f in document["findings"]}
    for cid in DOCKER_IDS:
        assert by_id[cid]["status"] == "skipped", cid
        assert by_id[cid]["summary"] == "not checked: the install record names containerd"
    for cid in cri.check_ids(["containerd", "crio"]):
        assert cid in by_id, cid
    assert by_id["containerd.nvidia-runtime"]["status"] == "ok"
    assert by_id["crio.installed"]["status"] == "skipped"


def test_on_a_docker_host_containerd_checks_are_skipped() -> None:
    choice = Choice(("docker",), "Docker running, no record")
    document = report(
        judge(
            host(choice, DockerFacts(source="none", daemon_json=DAEMON_JSON), facts(UNCONFIGURED))
        )
    )
    by_id = {f["check_id"]: f for f in document["findings"]}
    assert by_id["engine.installed"]["status"] == "failure"  # Docker expected, not there
    assert {by_id[c]["status"] for c in cri.check_ids(["containerd"])} == {"skipped"}


def test_a_stale_cdi_spec_still_fails_where_docker_is_not_checked(tmp_path: Path) -> None:
    from installer.doctor.dockerfacts import CdiSpec

    stale = CdiSpec(tmp_path / "nvidia.yaml", "nvidia.com/gpu", ("/gone",), ("/gone",))
    docker = DockerFacts(
        source="docker.io", daemon_json=DAEMON_JSON, cdi_specs=(stale,), cdi_dirs=(tmp_path,)
    )
    choice = Choice(("containerd",), "the install record names containerd")
    by_id = {f.check_id: f for f in judge(host(choice, docker, facts()))}
    assert by_id["engine.cdi"].status == "failure"
    fresh = dataclasses.replace(docker, cdi_specs=(dataclasses.replace(stale, missing=()),))
    assert {f.check_id: f for f in judge(host(choice, fresh, facts()))}[
        "engine.cdi"
    ].status == "skipped"


# containerd 2.2.1's `config dump` (Ubuntu 24.04) of a version 2 file that nvidia-ctk
# wrote: migrated to version 3, single-quoted, CDI on by default (an excerpt).
DUMP_2X = runtimeconfigs.DUMP_2X.format(disabled="[]", name="nvidia")


@pytest.mark.parametrize("text", [V2, V3])
def test_containerd_2x_loads_a_v2_file_migrated_and_its_own_v3(text: str) -> None:
    finding = cri.check_nvidia_runtime(facts(text, version="2.2.1", **loaded(DUMP_2X)))
    assert finding.status == "ok" and "shows it" in finding.evidence[-1], finding
    spec = ("/etc/cdi/nvidia.yaml",)
    cdi = cri.check_cdi(facts(text, version="2.2.1", cdi_specs=spec, **loaded(DUMP_2X)))
    assert cdi.status == "ok", cdi  # on by default in 2.x: no key in the file needed


def test_containerd_2x_does_not_read_a_v1_files_runtime() -> None:
    unloaded = DUMP_2X.replace(".runtimes.nvidia", ".runtimes.runc")
    finding = cri.check_nvidia_runtime(facts(V1, version="2.2.1", **loaded(unloaded)))
    assert finding.status == "failure" and "does not load" in finding.summary, finding
