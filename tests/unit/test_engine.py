"""Engine detection and the restart decision, from fixture /proc trees and facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer import engine
from installer.engine import EngineFacts
from installer.engines import daemon
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from tests.support.procfs import fake_proc

DPKG = """\
docker-ce unknown ok not-installed
docker.io install ok installed
moby-engine unknown ok not-installed
"""


def facts(**changes: object) -> EngineFacts:
    base = EngineFacts("docker.io", "28.2.2", True, Path("/etc/docker/daemon.json"), False, "")
    return EngineFacts(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_dpkg_query_parsing() -> None:
    assert engine.parse_dpkg_query(DPKG) == "docker.io"
    assert engine.parse_dpkg_query("docker-ce install ok installed\n") == "docker-ce"
    assert engine.parse_dpkg_query("docker.io deinstall ok config-files\n") == ""


def test_config_file_from_argv() -> None:
    assert engine.config_file_from_argv(["dockerd", "--config-file", "/x.json"]) == Path("/x.json")
    assert engine.config_file_from_argv(["dockerd", "--config-file=/y.json"]) == Path("/y.json")
    assert engine.config_file_from_argv(["dockerd", "--pidfile", "/p"]) is None


@pytest.mark.parametrize(
    ("changes", "sysv", "method"),
    [
        ({"systemd": True}, True, "systemctl"),
        ({"systemd": True}, False, "systemctl"),
        ({"sysv_managed": True, "pid": 7}, True, "service"),
        ({"running": False, "pid": 0}, True, "service"),  # the script may start it
        ({"pid": 7}, True, "direct"),  # running, but not the script's daemon
        ({"pid": 7}, False, "direct"),  # no init system at all
        ({"running": False}, False, "direct"),
    ],
)
def test_restart_method(changes: dict[str, object], sysv: bool, method: str) -> None:
    assert engine.choose_restart_method(facts(**changes), sysv_script=sysv) == method


def test_snap_is_refused_with_what_to_do() -> None:
    with pytest.raises(GpubundleError) as err:
        engine.choose_restart_method(facts(kind="snap"), sysv_script=False)
    assert "snap remove docker" in err.value.hint


def test_argv_builders() -> None:
    assert engine.restart_argv("systemctl") == ["systemctl", "restart", "docker"]
    assert engine.restart_argv("service") == ["service", "docker", "restart"]
    argv = ("/usr/sbin/dockerd", "--pidfile", "/run/x.pid")
    assert engine.dockerd_argv(facts(argv=argv)) == list(argv)
    assert engine.dockerd_argv(facts()) == ["dockerd"]


def test_find_dockerd_skips_zombies_and_others(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        "process_api",
        {
            50: ("dockerd", "Z", []),
            60: ("containerd", "S", ["containerd"]),
            70: ("dockerd", "S", ["dockerd", "--pidfile", "/run/gpubundle-ci/dockerd.pid"]),
        },
    )
    assert engine.find_dockerd(proc) == (
        70,
        ("dockerd", "--pidfile", "/run/gpubundle-ci/dockerd.pid"),
    )
    assert not engine.is_systemd(proc / "1" / "comm")


def test_systemd_pid1(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "systemd", {})
    assert engine.is_systemd(proc / "1" / "comm")
    assert engine.find_dockerd(proc) == (0, ())


def test_detect_snap(tmp_path: Path) -> None:
    fake_proc(tmp_path, "init", {})
    host = HostPaths(tmp_path)
    assert engine.detect_engine(host).kind != "snap"
    (tmp_path / "var/snap/docker").mkdir(parents=True)  # the snap's data: snap's Docker
    found = engine.detect_engine(host)
    assert found.kind == "snap"
    assert "snap" in found.problem
    assert found.daemon_json == tmp_path / "var/snap/docker/current/config/daemon.json"


def test_detect_reads_config_file_of_running_daemon(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, "init", {90: ("dockerd", "S", ["dockerd", "--config-file=/srv/d.json"])}
    )
    found = engine.detect_engine(HostPaths(tmp_path))
    assert proc == HostPaths(tmp_path).proc
    assert found.daemon_json == Path("/srv/d.json")  # dockerd's own, as it names it
    assert found.pid == 90
    assert not found.systemd


def test_detect_reads_the_hosts_files_under_its_root(tmp_path: Path) -> None:
    """daemon.json and the init script's pidfile are the root's, not the machine's."""
    fake_proc(tmp_path, "init", {90: ("dockerd", "S", ["dockerd"])})
    host = HostPaths(tmp_path)
    found = engine.detect_engine(host)
    assert found.daemon_json == tmp_path / "etc/docker/daemon.json" and not found.sysv_managed
    host.docker_sysv_pidfile.parent.mkdir(parents=True)
    host.docker_sysv_pidfile.write_text("90\n")
    assert engine.detect_engine(host).sysv_managed


def test_no_proc_under_the_root_is_no_daemon(tmp_path: Path) -> None:
    assert engine.find_dockerd(HostPaths(tmp_path).proc) == (0, ())


def test_direct_start_and_fast_failure(tmp_path: Path) -> None:
    # A "dockerd" that exits at once, as the real one does on a bad daemon.json.
    fake = tmp_path / "dockerd"
    fake.write_text(
        "#!/bin/sh\necho 'unable to configure the Docker daemon with file x' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    outcome = daemon.start_detached([str(fake)], tmp_path / "log")
    assert outcome.method == "direct"
    assert Path(outcome.log) == tmp_path / "log" / "dockerd.log"
    with pytest.raises(GpubundleError) as err:
        engine.wait_until_ready(30, outcome, probe=lambda timeout: "")
    assert "exited right after starting" in err.value.message
    assert any("unable to configure" in line for line in err.value.details)


def test_process_environ(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "init", {80: ("dockerd", "S", ["dockerd"])})
    (proc / "80" / "environ").write_bytes(b"PATH=/usr/sbin:/usr/bin\0HTTPS_PROXY=http://p:3128\0")
    assert engine.process_environ(80, proc) == {
        "PATH": "/usr/sbin:/usr/bin",
        "HTTPS_PROXY": "http://p:3128",
    }
    assert engine.process_environ(81, proc) is None


def test_find_dockerd_picks_the_daemon_of_the_default_socket(tmp_path: Path) -> None:
    private = ["dockerd", "--host", "unix:///run/t/docker.sock", "--pidfile", "/run/t/d.pid"]
    proc = fake_proc(
        tmp_path,
        "init",
        {
            40: ("dockerd", "S", private),
            41: ("dockerd", "S", ["dockerd", "-H", "unix:///run/docker.sock"]),
        },
    )
    assert engine.find_dockerd(proc, "unix:///var/run/docker.sock")[0] == 41
    assert engine.find_dockerd(proc, "unix:///run/t/docker.sock")[0] == 40
    assert engine.find_dockerd(proc, "unix:///elsewhere.sock") == (0, ())
    assert engine.hosts_from_argv(["dockerd"]) == (engine.DEFAULT_HOST,)
    assert engine.hosts_from_argv(["dockerd", "--host=tcp://127.0.0.1:2375", "-Hfd://"]) == (
        "tcp://127.0.0.1:2375",
        "fd://",
    )


def test_stop_engine_without_init_terminates_the_daemon_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No systemd, no SysV script (the GPU host): the dockerd process itself gets SIGTERM."""
    import subprocess

    from installer import engine

    no_script = tmp_path / "no-init-script"
    dockerd = subprocess.Popen(["sleep", "300"])
    try:
        engine.stop_engine(
            facts(pid=dockerd.pid, running=True, systemd=False), timeout=10, sysv_script=no_script
        )
        assert dockerd.poll() is not None  # it really ended
    finally:
        dockerd.kill()
        dockerd.wait()


def test_stop_engine_leaves_a_stopped_engine_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer import engine

    no_script = tmp_path / "no-init-script"
    acted: list[object] = []
    monkeypatch.setattr(engine, "run", lambda argv, **kw: acted.append(argv))
    monkeypatch.setattr(engine.daemon, "stop_process", lambda pid, timeout, name: acted.append(pid))
    for systemd in (True, False):  # neither systemctl nor a signal, whatever the init
        engine.stop_engine(facts(pid=0, running=False, systemd=systemd), sysv_script=no_script)
        engine.stop_engine(  # not answering
            facts(pid=4242, running=False, systemd=systemd), sysv_script=no_script
        )
    assert acted == []
    # the check can fail
    engine.stop_engine(facts(pid=4242, running=True, systemd=False), sysv_script=no_script)
    assert acted == [4242]
