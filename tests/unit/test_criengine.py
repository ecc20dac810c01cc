"""containerd / CRI-O decisions: which daemon is ours, its socket, how to restart it."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer import criengine as ce
from installer.errors import GpubundleError

DEFAULT = Path("/etc/containerd/config.toml")


def test_config_from_argv_forms() -> None:
    assert ce.config_from_argv(["containerd", "--config", "/a.toml"]) == Path("/a.toml")
    assert ce.config_from_argv(["containerd", "-c", "/b.toml"]) == Path("/b.toml")
    assert ce.config_from_argv(["containerd", "--config=/c.toml"]) == Path("/c.toml")
    assert ce.config_from_argv(["containerd"]) is None


def test_dockers_own_containerd_is_never_ours() -> None:
    dockers = ["containerd", "--config", "/var/run/docker/containerd/containerd.toml"]
    assert not ce.is_ours(dockers, DEFAULT, DEFAULT)
    assert ce.is_ours(["containerd"], DEFAULT, DEFAULT)
    assert ce.is_ours(["containerd", "-c", "/tmp/x.toml"], Path("/tmp/x.toml"), DEFAULT)
    assert not ce.is_ours(["containerd", "-c", "/tmp/x.toml"], DEFAULT, DEFAULT)


def test_grpc_address_read_from_its_table_only() -> None:
    text = (
        'version = 2\n[debug]\n  address = "/run/debug.sock"\n'
        "[grpc]\n  address = '/tmp/t/c.sock'\n  uid = 0\n"
    )
    assert ce.grpc_address(text) == "/tmp/t/c.sock"
    assert ce.grpc_address('[debug]\naddress = "/d"\n') == ce.CONTAINERD_SOCKET


@pytest.mark.parametrize(
    ("runtime", "systemd", "script", "method"),
    [
        ("containerd", True, True, "systemctl"),
        ("containerd", False, True, "service"),
        ("containerd", False, False, "direct"),
        ("crio", True, False, "systemctl"),
        ("crio", False, True, "service"),
    ],
)
def test_restart_method(runtime: str, systemd: bool, script: bool, method: str) -> None:
    assert ce.choose_restart_method(runtime, systemd=systemd, init_script=script) == method


def test_crio_without_init_system_is_refused_plainly() -> None:
    with pytest.raises(GpubundleError, match=r"neither systemd nor /etc/init\.d/crio"):
        ce.choose_restart_method("crio", systemd=False, init_script=False)


def test_argv_builders_and_version_parsing() -> None:
    assert ce.restart_argv("containerd", "systemctl") == ["systemctl", "restart", "containerd"]
    assert ce.restart_argv("crio", "service") == ["service", "crio", "restart"]
    assert ce.ready_argv("containerd", "/s") == ["ctr", "--address", "/s", "version"]
    ctr = "Client:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.21\n  UUID: x\n"
    assert ce.parse_server_version(ctr) == "1.6.21"
    crictl = "Version:  0.1.0\nRuntimeName:  cri-o\nRuntimeVersion:  1.30.4\n"
    assert ce.parse_server_version(crictl) == "1.30.4"
    assert ce.parse_server_version("") == ""


def test_find_daemon_reads_proc(tmp_path: Path) -> None:
    def proc(pid: int, comm: str, argv: list[str]) -> None:
        entry = tmp_path / str(pid)
        entry.mkdir()
        (entry / "comm").write_text(comm + "\n")
        (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    proc(10, "containerd", ["containerd", "--config", "/var/run/docker/containerd/containerd.toml"])
    proc(20, "dockerd", ["dockerd"])
    proc(25, "containerd", ["containerd", "-c", "/tmp/mine.toml"])
    (tmp_path / "25" / "stat").write_text("25 (containerd) Z 1 25 25 0 -1\n")  # exited, unreaped
    proc(30, "containerd", ["containerd", "-c", "/tmp/mine.toml"])
    assert ce.find_daemon("containerd", Path("/tmp/mine.toml"), tmp_path, DEFAULT)[0] == 30
    assert ce.find_daemon("containerd", DEFAULT, tmp_path, DEFAULT) == (0, ())
    proc(40, "containerd", ["containerd"])  # reads its default file, whatever the root names it
    assert ce.find_daemon("containerd", DEFAULT, tmp_path, DEFAULT)[0] == 40
    assert ce.find_daemon("containerd", DEFAULT, tmp_path / "no-proc", DEFAULT) == (0, ())
