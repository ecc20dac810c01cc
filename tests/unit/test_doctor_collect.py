"""--collect: every secret in daemon.json, config.toml, containerd's and CRI-O's config files
and the logs is gone from the archive; those engines' files are in it, named as the host sees
them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from installer.doctor.checks import DoctorPaths, ok
from installer.doctor.collect import REDACTED, collect, redact_json, redact_text
from installer.doctor.crifacts import CriEngineFacts, engine_files
from installer.hostpaths import HostPaths

SECRETS = ("hunter2", "s3cr3t-token", "dXNlcjpwYXNz", "proxypass", "ghp_abcdef")

DAEMON = {
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "registry-mirrors": ["https://mirroruser:hunter2@mirror.example:5000"],
    "proxies": {
        "http-proxy": "http://bob:proxypass@proxy.example:3128",
        "no-proxy": "localhost,127.0.0.1",
    },
    "auths": {"registry.example": {"auth": "dXNlcjpwYXNz"}},
    "registry-token": "s3cr3t-token",
    "insecure-registries": ["10.0.0.1:5000"],
}


def test_redact_json_keeps_shape_and_non_secrets() -> None:
    out = redact_json(DAEMON)
    assert out["runtimes"] == DAEMON["runtimes"]
    assert out["registry-mirrors"] == [f"https://{REDACTED}@mirror.example:5000"]
    assert out["proxies"]["http-proxy"] == f"http://{REDACTED}@proxy.example:3128"
    assert out["proxies"]["no-proxy"] == "localhost,127.0.0.1"
    assert out["auths"] == REDACTED
    assert out["registry-token"] == REDACTED
    assert out["insecure-registries"] == ["10.0.0.1:5000"]
    assert not any(s in json.dumps(out) for s in SECRETS)


def test_redact_text_lines() -> None:
    text = (
        "HTTPS_PROXY=https://u:hunter2@proxy:8080\n"
        'password = "proxypass"\n'
        "token: ghp_abcdef\n"
        'ldconfig = "@/sbin/ldconfig.real"\n'
    )
    out = redact_text(text)
    assert not any(s in out for s in SECRETS)
    assert 'ldconfig = "@/sbin/ldconfig.real"' in out


def test_collect_archive_has_no_secrets(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text(json.dumps(DAEMON))
    (tmp_path / "config.toml").write_text(
        '[nvidia-container-cli]\nldconfig = "@/sbin/ldconfig.real"\n'
    )
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "install.log").write_text(
        "apt: using proxy http://bob:proxypass@proxy:3128\nregistry_token=s3cr3t-token\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    (state / "install-record.json").write_text('{"format": 1}')
    paths = DoctorPaths.on(
        HostPaths(tmp_path / "root"),
        daemon_json=tmp_path / "daemon.json",
        config_toml=tmp_path / "config.toml",
        log_dir=logs,
        record=state / "install-record.json",
        cdi_dirs=(tmp_path / "cdi",),
    )
    target = tmp_path / "out" / "diag.tar.gz"
    members = collect(paths, [ok("x.y", "fine")], target, ())
    assert {
        "daemon.json",
        "config.toml",
        "logs/install.log",
        "install-record.json",
        "doctor.json",
        "versions.txt",
        "dpkg.txt",
    } <= set(members)
    assert target.stat().st_mode & 0o777 == 0o600
    with tarfile.open(target) as tar:
        blobs = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    everything = "\n".join(blobs.values())
    assert not any(s in everything for s in SECRETS), everything
    daemon = json.loads(blobs["gpubundle-doctor/daemon.json"])
    assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "ldconfig.real" in blobs["gpubundle-doctor/config.toml"]


CONTAINERD = """version = 2
[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example".auth]
  username = "bob"
  password = "hunter2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
"""
CRIO_MAIN = '[crio.runtime]\ndefault_runtime = "runc"\n'
CRIO_DROP_IN = (
    '[crio.runtime.runtimes.nvidia]\nruntime_path = "/usr/bin/nvidia-container-runtime"\n'
)


def test_collect_holds_containerds_and_crios_files_under_the_root(tmp_path: Path) -> None:
    """The files the doctor read for each engine (the record's or the adapter's, under the
    host's root; CRI-O's main file and every drop-in): in the archive, secrets redacted."""
    host = HostPaths(tmp_path / "root")
    containerd, drop_in = host.cri_config("containerd"), host.cri_config("crio")
    other = drop_in.with_name("10-mine.toml")
    for path, text in ((containerd, CONTAINERD), (other, "[crio]\n"), (drop_in, CRIO_DROP_IN)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    main = drop_in.parent.parent / "crio.conf"
    main.write_text(CRIO_MAIN)
    outside = tmp_path / "elsewhere" / "config.toml"  # a record naming a file off the root
    outside.parent.mkdir()
    outside.write_text("version = 2\n")
    assert engine_files(drop_in) == (main, other, drop_in)
    cri = (
        CriEngineFacts("containerd", "containerd", True, containerd, config_files=(containerd,)),
        CriEngineFacts("crio", "CRI-O", True, drop_in, config_files=engine_files(drop_in)),
        CriEngineFacts("containerd", "containerd", True, outside, config_files=(outside,)),
    )
    paths = DoctorPaths.on(host)
    target = tmp_path / "diag.tar.gz"
    members = collect(paths, [ok("x.y", "fine")], target, cri)
    expected = {
        "engines/etc/containerd/config.toml",
        "engines/etc/crio/crio.conf",
        "engines/etc/crio/crio.conf.d/10-mine.toml",
        "engines/etc/crio/crio.conf.d/99-nvidia.toml",
        f"engines/{str(outside).lstrip('/')}",
    }
    assert expected <= set(members), members
    with tarfile.open(target) as tar:
        blobs = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    kept = blobs["gpubundle-doctor/engines/etc/containerd/config.toml"]
    assert "hunter2" not in kept and REDACTED in kept
    assert "runtimes.nvidia" in kept
    assert blobs["gpubundle-doctor/engines/etc/crio/crio.conf.d/99-nvidia.toml"] == CRIO_DROP_IN
    assert blobs["gpubundle-doctor/engines/etc/crio/crio.conf"] == CRIO_MAIN
