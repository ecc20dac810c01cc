"""Docker through its CLI only: streaming a program's stdin (runner.run_fed), ``docker
load`` fed an archive chunk by chunk with progress by bytes, its failures in words, and
``docker version`` as the readiness probe. Fake ``docker`` scripts on PATH stand in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import containers, engine
from installer.errors import GpubundleError
from installer.runner import run_fed


def _script(bindir: Path, name: str, body: str) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{path}:{os.environ['PATH']}")
    return path


class Count:
    def __init__(self) -> None:
        self.done = 0

    def advance(self, amount: int) -> None:
        self.done += amount


def test_run_fed_streams_every_chunk_and_captures_output(bindir: Path) -> None:
    _script(bindir, "count", "data = sys.stdin.buffer.read()\nprint(len(data))\n")
    proc = run_fed(["count"], (b"x" * 1000 for _ in range(300)))
    assert proc.returncode == 0 and proc.stdout.decode().strip() == "300000"


def test_run_fed_reports_a_program_that_stops_reading(bindir: Path) -> None:
    _script(bindir, "quits", "sys.stderr.write('no daemon\\n')\nsys.exit(3)\n")
    chunks = (b"y" * 65536 for _ in range(100))  # far more than a pipe holds
    proc = run_fed(["quits"], chunks, check=False)
    assert proc.returncode == 3 and b"no daemon" in proc.stderr
    with pytest.raises(GpubundleError) as err:
        run_fed(["quits"], iter([b"z"]), hint="do this")
    assert "exit code 3" in err.value.message and err.value.hint == "do this"
    assert err.value.details == ["no daemon"]


def test_run_fed_kills_a_program_past_its_timeout(bindir: Path) -> None:
    _script(bindir, "hangs", "import time\ntime.sleep(60)\n")

    def slow() -> Iterator[bytes]:
        yield b"a"

    with pytest.raises(GpubundleError) as err:
        run_fed(["hangs"], slow(), timeout=0.5)
    assert "did not finish within" in err.value.message


def test_run_fed_names_a_missing_program(bindir: Path) -> None:
    with pytest.raises(GpubundleError) as err:
        run_fed(["no-such-program-here"], iter([b""]))
    assert err.value.message == "no-such-program-here not found"


def test_load_images_feeds_docker_load_and_counts_bytes(bindir: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    _script(
        bindir,
        "docker",
        f"data = sys.stdin.buffer.read()\nopen({str(seen)!r}, 'w').write(' '.join(sys.argv[1:]) + ' ' + str(len(data)))\n"
        "print('Loaded image: gpubundle/verify:debian12-amd64')\nprint('Loaded image ID: sha256:abc')\n",
    )
    archive = tmp_path / "images.tar"
    archive.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, the last short
    progress = Count()
    refs = containers.load_images(archive, progress)
    assert refs == ["gpubundle/verify:debian12-amd64", "sha256:abc"]
    assert seen.read_text() == f"load --quiet {archive.stat().st_size}"
    assert progress.done == archive.stat().st_size


def test_load_images_says_why_docker_refused(bindir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    archive.write_bytes(b"not a tar")
    _script(
        bindir,
        "docker",
        "sys.stdin.buffer.read()\nsys.stderr.write('Error response from daemon: "
        "Error processing tar file(exit status 1): unexpected EOF\\n')\nsys.exit(1)\n",
    )
    with pytest.raises(GpubundleError) as err:
        containers.load_images(archive)
    assert err.value.message.startswith(f"Docker refused the image archive {archive}: ")
    assert "unexpected EOF" in err.value.message and "verify" in err.value.hint
    _script(
        bindir,
        "docker",
        "sys.stderr.write('Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?\\n')\nsys.exit(1)\n",
    )
    with pytest.raises(GpubundleError) as err:
        containers.load_images(archive)
    assert err.value.message.startswith(f"Docker could not load {archive}: Cannot connect")
    assert "dockerd runs" in err.value.hint


def test_ping_asks_the_docker_cli(bindir: Path) -> None:
    _script(bindir, "docker", "assert sys.argv[1:3] == ['version', '--format']\nprint('28.2.2')\n")
    assert engine.ping() == "28.2.2"
    _script(bindir, "docker", "sys.exit(1)\n")
    assert engine.ping() == ""


def test_ping_without_a_docker_cli_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert engine.ping() == ""
