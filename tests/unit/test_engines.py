"""The engine adapters: the lookup by --runtime and by recorded file kind, and the
protocol's contract per engine over files in tmp (configure -> recorded change,
idempotent, undo puts the bytes back; restart refuses facts of another engine), and
install's runtime and restart steps, rollback included, driven through an adapter.

nvidia-ctk is a fake: NVIDIA's daemon.json rewrite (tests/support/runtimeconfigs.py) for Docker,
the test world's stand-in for the TOML engines (Python 3.11+, install_standin_ctk there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest

from installer import (
    criengine,
    engines,
    installsteps,
    runtime_intent,
)
from installer.criengine import CriFacts
from installer.engine import EngineFacts
from installer.engines.daemon import RestartOutcome
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.installplan import RESTART, RUNTIME, InstallPlan, Step
from installer.runtime_config import RuntimeChange
from installer.steps import runtime as runtime_steps
from tests.support.records import SHA, base_record
from tests.support.runtimeconfigs import (
    CONTAINERD_V2,
    CRIO_DROPIN,
    CTK_LIKE_NVIDIA,
    USER_CONFIG,
    install_standin_ctk,
)
from tests.support.steps import step_runner

KINDS = {"docker": "docker-json", "containerd": "containerd-toml", "crio": "crio-toml"}
ORIGINAL = {
    "docker": json.dumps(USER_CONFIG, indent=2),
    "containerd": CONTAINERD_V2,
    "crio": CRIO_DROPIN,
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the lookup -----------------------------------------------------------------------


@pytest.mark.parametrize("name", engines.ENGINES)
def test_adapter_for_each_runtime_and_its_recorded_kind(name: str) -> None:
    adapter = engines.adapter_for(name)
    assert adapter.name == name and adapter.file_kind == KINDS[name]
    assert engines.adapter_for(name) is adapter  # one adapter per engine
    assert engines.engine_for(name) is adapter
    assert engines.adapter_for_kind(KINDS[name]) is adapter
    assert engines.adapter_for_change({"kind": KINDS[name], "path": "/x"}) is adapter


def test_lookup_edges() -> None:
    assert engines.engine_for("none") is None
    docker = engines.adapter_for("docker")
    # Records written before containerd and CRI-O carried no kind: they are Docker's.
    assert engines.adapter_for_change(None) is docker
    assert engines.adapter_for_change({"path": "/etc/docker/daemon.json"}) is docker
    with pytest.raises(GpubundleError) as err:
        engines.adapter_for("podman")
    assert "podman" in err.value.message and "--runtime" in err.value.hint
    with pytest.raises(GpubundleError) as err:
        engines.adapter_for_change({"kind": "podman-conf"})
    assert "podman-conf" in err.value.message and err.value.hint


def test_what_each_engine_tells_install_and_uninstall() -> None:
    docker, containerd, crio = (engines.adapter_for(n) for n in engines.ENGINES)
    assert (docker.label, containerd.label, crio.label) == ("Docker", "containerd", "crio")
    assert docker.config_format == "json" and containerd.config_format == crio.config_format
    assert containerd.config_format == "toml"
    assert docker.runs_containers and not containerd.runs_containers
    assert docker.records_start and not crio.records_start
    assert docker.bundled_package == "docker.io" and not containerd.bundled_package
    assert crio.runtime_table == "crio.runtime.runtimes.nvidia"
    assert "containerd.runtimes.nvidia" in containerd.runtime_table


@pytest.mark.parametrize("name", engines.ENGINES)
def test_each_adapter_judges_the_engine_found_for_preflight(name: str) -> None:
    """Preflight asks the adapter, never the engine's name: what it says, per state."""
    adapter = engines.adapter_for(name)
    status, detail, fix = adapter.judge(None, ())
    assert status == "fail" and "not probed" in detail and fix
    absent = CriFacts("none", "", False, Path("/x"), False, "not installed")
    status, detail, fix = adapter.judge(absent, ())
    assert status == "fail" and "--runtime none" in fix and "install" in fix
    shipped = adapter.judge(absent, ("nvidia-container-toolkit", "docker.io"))
    assert (shipped[0] == "ok") == (name == "docker")  # only Docker comes in a bundle
    running = CriFacts(name, "1.7.2", True, Path("/x"), False, "")
    assert adapter.judge(running, ()) == ("ok", f"{name} 1.7.2", "")
    late = dataclasses.replace(running, problem="it does not answer")
    assert adapter.judge(late, ())[:2] == ("warn", f"{name} 1.7.2; it does not answer")


@pytest.mark.parametrize("name", engines.ENGINES)
def test_each_adapter_names_its_packages_and_finds_its_daemon(name: str, tmp_path: Path) -> None:
    """What the doctor asks of an engine without knowing which it is."""
    from tests.support.procfs import fake_proc

    adapter = engines.adapter_for(name)
    assert adapter.packages and all(p and " " not in p for p in adapter.packages)
    binary = {"docker": "dockerd"}.get(name, name)
    host = HostPaths(tmp_path)
    config = str(adapter.config_path(host))
    fake_proc(tmp_path, "init", {77: (binary, "S", [binary, "--config", config])})
    assert adapter.find_daemon(host) == 77
    fake_proc(tmp_path / "none", "init", {})
    assert adapter.find_daemon(HostPaths(tmp_path / "none")) == 0


@pytest.mark.parametrize("name", engines.ENGINES)
def test_plan_lines_name_the_file_and_the_restart(name: str) -> None:
    changes, restart = engines.adapter_for(name).plan_lines("/etc/x.conf", "docker.io")
    assert changes and all("/etc/x.conf" in line for line in changes)
    assert restart.startswith("restart ")
    if name == "docker":
        _, fresh = engines.adapter_for(name).plan_lines("/etc/x.conf", "none")
        assert fresh.startswith("start docker from the bundle")


# --- the protocol's contract, per engine, over files in tmp ---------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """nvidia-ctk fakes on PATH; each engine's file under tmp, the root of ``HostPaths``
    (no dockerd runs there: Docker's file is the root's /etc/docker/daemon.json)."""
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bindir}:/nonexistent:{Path(sys.executable).parent}")
    monkeypatch.setenv("CTK_LOG", str(tmp_path / "ctk.log"))
    return tmp_path


def _install_ctk(name: str, bindir: Path) -> None:
    if name == "docker":
        bindir.mkdir(exist_ok=True)
        (bindir / "nvidia-ctk").write_text(CTK_LIKE_NVIDIA)
        (bindir / "nvidia-ctk").chmod(0o755)
    else:
        pytest.importorskip("tomllib", reason="the stand-in nvidia-ctk needs Python 3.11+")
        install_standin_ctk(bindir)


@pytest.mark.parametrize("name", engines.ENGINES)
def test_configure_records_the_change_and_undo_puts_the_bytes_back(name: str, world: Path) -> None:
    adapter = engines.adapter_for(name)
    _install_ctk(name, world / "bin")
    path = adapter.config_path(HostPaths(world))
    assert path.is_relative_to(world)
    path.parent.mkdir(parents=True)
    path.write_text(ORIGINAL[name])
    path.chmod(0o640)
    before = path.read_bytes()
    assert not adapter.is_configured(path, before)

    change = adapter.configure(path, world / "backup")

    assert change.changed and change.kind == adapter.file_kind and change.path == str(path)
    assert change.sha256_before == sha(before) and change.sha256_after == sha(path.read_bytes())
    assert Path(change.backup_path or "").read_bytes() == before
    assert adapter.is_configured(path, path.read_bytes())
    assert path.stat().st_mode & 0o777 == 0o640
    # The write-ahead asks the same adapter: nothing is intended for a configured file.
    assert runtime_intent.intended_runtime_change(path, world / "b2", adapter.file_kind) is None
    again = adapter.configure(path, world / "backup")
    assert not again.changed and again.sha256_before == again.sha256_after == change.sha256_after
    adapter.undo(change)
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", engines.ENGINES)
def test_configure_of_an_absent_file_is_undone_by_deleting_it(name: str, world: Path) -> None:
    adapter = engines.adapter_for(name)
    _install_ctk(name, world / "bin")
    path = adapter.config_path(HostPaths(world))
    change = adapter.configure(path, world / "backup")
    assert change.backup_path is None and change.sha256_before is None and path.exists()
    adapter.undo(change)
    assert not path.exists()


@pytest.mark.parametrize("name", engines.ENGINES)
def test_a_failing_nvidia_ctk_leaves_the_file_as_it_was(name: str, world: Path) -> None:
    adapter = engines.adapter_for(name)
    bindir = world / "bin"
    bindir.mkdir()
    (bindir / "nvidia-ctk").write_text(f"#!{sys.executable}\nimport sys\nsys.exit(1)\n")
    (bindir / "nvidia-ctk").chmod(0o755)
    path = adapter.config_path(HostPaths(world))
    path.parent.mkdir(parents=True)
    path.write_text(ORIGINAL[name])
    with pytest.raises(GpubundleError) as err:
        adapter.configure(path, world / "backup")
    assert "restored" in err.value.hint
    assert path.read_text() == ORIGINAL[name]


def test_detect_reads_each_engine_its_own_way(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = HostPaths(world)
    docker = engines.adapter_for("docker").detect(host)
    assert (
        isinstance(docker, EngineFacts) and docker.daemon_json == world / "etc/docker/daemon.json"
    )
    containerd = engines.adapter_for("containerd").detect(host)
    assert containerd.kind in ("containerd", "none")
    assert containerd.config == world / "etc/containerd/config.toml"
    asked: list[tuple[str, HostPaths, Path | None]] = []

    def detect(runtime: str, host: HostPaths, config: Path | None = None) -> CriFacts:
        asked.append((runtime, host, config))
        return CriFacts(runtime, "", False, config or host.cri_config(runtime), False, "")

    monkeypatch.setattr(criengine, "detect", detect)
    engines.adapter_for("containerd").detect(host)
    engines.adapter_for("crio").detect(host, Path("/srv/recorded.toml"))
    assert asked == [
        ("containerd", host, None),  # its default: host.cri_config("containerd")
        ("crio", host, Path("/srv/recorded.toml")),  # uninstall: the file the record names
    ]


def test_restart_refuses_another_engines_facts_and_an_absent_engine(tmp_path: Path) -> None:
    docker_facts = EngineFacts("docker.io", "", False, tmp_path / "d.json", False, "")
    cri_none = CriFacts(
        "none", "", False, tmp_path / "c.toml", False, "containerd is not installed"
    )
    with pytest.raises(TypeError):
        engines.adapter_for("docker").restart(cri_none, HostPaths(tmp_path))
    with pytest.raises(TypeError):
        engines.adapter_for("containerd").restart(docker_facts, HostPaths(tmp_path))
    with pytest.raises(GpubundleError) as err:
        engines.adapter_for("containerd").restart(cri_none, HostPaths(tmp_path))
    assert err.value.message == "containerd is not installed"
    assert err.value.hint == "install containerd, then re-run"


def test_as_before_starts_a_vanished_dockerd_with_its_old_command_line(tmp_path: Path) -> None:
    docker = engines.adapter_for("docker")
    gone = EngineFacts("docker.io", "", False, tmp_path / "d.json", False, "")
    before = dataclasses.replace(gone, pid=40, running=True, argv=("dockerd", "--data-root=/d"))
    env = {"HTTPS_PROXY": "http://p:3128"}
    facts, kept = docker.as_before(gone, before, env)
    assert facts.argv == ("dockerd", "--data-root=/d") and kept == env
    running = dataclasses.replace(gone, pid=41, argv=("dockerd",))
    assert docker.as_before(running, before, env) == (running, None)  # it runs: as it is
    assert docker.as_before(gone, None, env) == (gone, None)
    cri = CriFacts("containerd", "", False, tmp_path / "c.toml", False, "")
    assert engines.adapter_for("containerd").as_before(cri, cri, env) == (cri, None)


# --- install's runtime and restart steps, through an adapter --------------------------


class FakeAdapter:
    """An engine whose file is ``path`` and whose first restart fails; it logs each call."""

    name = "docker"
    label = "Fake"
    file_kind = "docker-json"
    config_format = "json"
    runtime_table = "runtimes.nvidia"
    runs_containers = True
    records_start = True
    bundled_package = ""

    def __init__(self, path: Path, failures: int) -> None:
        self.path, self.failures = path, failures
        self.calls: list[str] = []
        self.facts = EngineFacts("fake", "1.0", True, path, False, "", 7, ("fake", "--x"))

    def detect(self, host: HostPaths, config: Path | None = None) -> EngineFacts:
        self.calls.append("detect")
        return self.facts

    def config_path(self, host: HostPaths) -> Path:
        return self.path

    def plan_facts(self, host: HostPaths) -> tuple[str, Path]:
        return "fake", self.path

    def plan_lines(self, path: str, engine_kind: str) -> tuple[tuple[str, ...], str]:
        return (f"modify {path}",), "restart fake"

    def is_configured(self, path: Path, data: bytes) -> bool:
        return b"nvidia" in data

    def configure(self, path: Path, backup_dir: Path) -> RuntimeChange:
        self.calls.append("configure")
        before = path.read_bytes()
        path.write_bytes(before + b" nvidia")
        return RuntimeChange(str(path), None, sha(before), sha(path.read_bytes()))

    def restart(
        self, facts: object, host: HostPaths, *, env: dict[str, str] | None = None
    ) -> RestartOutcome:
        self.calls.append(f"restart {' '.join(getattr(facts, 'argv', ()))}")
        if self.failures:
            self.failures -= 1
            raise GpubundleError("the fake engine did not come back", details=["its log"])
        return RestartOutcome("direct", 0, "")

    def wait_ready(self, facts: object, outcome: RestartOutcome, timeout: float) -> str:
        self.calls.append("wait")
        return "1.0"

    def as_before(
        self, now: EngineFacts, before: EngineFacts | None, env: dict[str, str] | None
    ) -> tuple[EngineFacts, dict[str, str] | None]:
        self.calls.append("as_before")
        return now, env

    def undo(self, change: RuntimeChange) -> None:
        self.calls.append("undo")
        self.path.write_text("original")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAdapter:
    """The fake engine for every runtime; the record, backups and logs under tmp_path."""
    path = tmp_path / "engine.conf"
    path.write_text("original")
    adapter = FakeAdapter(path, failures=1)
    monkeypatch.setattr(engines, "adapter_for", lambda runtime: adapter)
    monkeypatch.setattr(installsteps, "installed_versions", lambda *a, **k: {})
    monkeypatch.setattr(runtime_intent.engines, "adapter_for_kind", lambda kind: adapter)
    return adapter


def _runner(fake: FakeAdapter) -> installsteps.StepRunner:
    return step_runner(fake.path.parent / "host")


def test_install_steps_go_through_the_adapter(fake: FakeAdapter) -> None:
    fake.failures = 0
    ctx = _runner(fake).ctx
    record, detail = runtime_steps.configure(ctx, base_record())
    assert detail == f"{fake.path} updated"
    assert (record.runtime_change or {})["sha256_before"] == sha(b"original")
    record, detail = runtime_steps.restart(ctx, record)
    assert detail == "direct; Fake 1.0 answers"
    assert fake.calls == ["configure", "detect", "restart fake --x", "wait"]
    assert not record.engine_started_by_gpubundle  # it was running


def test_a_failed_restart_rolls_back_through_the_adapter(fake: FakeAdapter) -> None:
    plan = InstallPlan(SHA, "1", {}, (Step(RUNTIME, "runtime", ()), Step(RESTART, "restart", ())))
    with pytest.raises(GpubundleError) as err:
        _runner(fake).run(plan)
    assert err.value.message == (
        "install failed after configuring the container runtime: the fake engine did not come back"
    )
    assert "the container runtime configuration was restored and the engine restarted" in (
        err.value.details
    )
    assert fake.calls == [
        "configure",
        "detect",
        "restart fake --x",  # fails
        "undo",
        "detect",
        "as_before",
        "restart fake --x",
        "wait",
    ]
    assert fake.path.read_text() == "original"


# --- doctor finds the daemon as install does ------------------------------------------


def test_doctor_picks_the_dockerd_of_the_clis_socket_among_several(tmp_path: Path) -> None:
    from installer.doctor.dockerfacts import dockerd_pid
    from tests.support.procfs import fake_proc

    private = ["dockerd", "--host", "unix:///run/t/docker.sock"]
    proc = fake_proc(
        tmp_path,
        "init",
        {40: ("dockerd", "S", private), 41: ("dockerd", "S", ["dockerd", "-H", "fd://"])},
    )
    nofile = tmp_path / "none.pid"
    assert dockerd_pid(nofile, proc, "unix:///var/run/docker.sock") == 41
    assert dockerd_pid(nofile, proc, "unix:///run/t/docker.sock") == 40
    (proc / "41" / "comm").write_text("sleep\n")  # only one dockerd left: that one
    assert dockerd_pid(nofile, proc, "unix:///elsewhere.sock") == 40
    assert dockerd_pid(nofile, tmp_path / "no-proc") is None


# --- uninstall restores and restarts through the record's adapter ---------------------


def test_uninstall_restarts_the_engine_of_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer import cmd_uninstall
    from installer.uninstallplan import Action, UninstallPlan

    containerd = engines.adapter_for("containerd")
    seen: list[object] = []
    facts = CriFacts("containerd", "1.7", True, tmp_path / "config.toml", False, "")

    def detect(host: HostPaths, config: Path | None = None) -> CriFacts:
        seen.append(("detect", config))
        return facts

    monkeypatch.setattr(containerd, "detect", detect)
    monkeypatch.setattr(containerd, "restart", lambda f, host, env=None: seen.append(f) or 0)
    monkeypatch.setattr(containerd, "wait_ready", lambda f, o, t: seen.append(("wait", t)) or "")
    change = {"path": "/srv/containerd/config.toml", "kind": "containerd-toml"}
    record = base_record(runtime_change=change)
    action = Action("restart-engine", "restart containerd", ("containerd",))
    cmd_uninstall.execute(action, UninstallPlan((action,)), record, HostPaths(tmp_path))
    assert seen == [("detect", Path("/srv/containerd/config.toml")), facts, ("wait", 90)]
    # and asks that engine, not Docker, whether it runs
    monkeypatch.setattr(engines.adapter_for("docker"), "detect", lambda host, config=None: 1 / 0)
    monkeypatch.setattr(cmd_uninstall, "installed_packages", lambda *a: {})
    host = cmd_uninstall.read_host(record, HostPaths(tmp_path))
    assert host.engine_running
