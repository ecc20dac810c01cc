"""The installer's sh preamble and the runtime it carries: which python3.X is carried, which
packages of its closure, the file's layout, and the preamble itself run by sh with this
machine's gpgv and dpkg-deb on a tiny signed runtime whose "python" is a script that
reports how it was started (the real interpreter runs in tests/integration/
test_carried_runtime_roots.py)."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from bundler import runtime, selfrun
from bundler.index import PackageRecord, Relation
from bundler.zipapp import build_zipapp
from installer import carried
from tests.support import testkeys
from tests.support.debs import make_deb

PY = "9.9"  # the carried "python": a sh script in a tiny .deb
TRIPLET = f"{platform.machine()}-linux-gnu"  # where this machine keeps libc.so.6
CARRIED_LIBS = {  # one library this machine lacks, one it has (the host's own wins)
    f"usr/lib/{TRIPLET}/libgbprobe.so.1": b"not really a library",
    f"usr/lib/{TRIPLET}/libc.so.6": b"not the host's libc",
}
REPORT = f"""#!/bin/sh
echo "ran $0 $*"
echo "launcher=$GPUBUNDLE_LAUNCHER libs=$LD_LIBRARY_PATH"
ls "$GPUBUNDLE_RUNTIME_DIR/usr/lib/{TRIPLET}"
"""


def test_the_carried_python_is_the_stock_one_or_38() -> None:
    assert runtime.runtime_python("3.11") == "3.11"
    assert runtime.runtime_python("3.13.5") == "3.13"
    assert runtime.runtime_python("3.8") == "3.8"
    assert runtime.runtime_python("3.6") == "3.8"  # Ubuntu 18.04: bionic-updates has 3.8
    assert runtime.runtime_roots("3.8") == ("python3.8-minimal", "libpython3.8-stdlib", "gpgv")


def record(name: str, priority: str, essential: bool = False) -> PackageRecord:
    return PackageRecord(
        name, "1", "amd64", "no", essential, priority, (), (), (), (), (), "", 0, "", "", "", ""
    )


def test_what_every_host_has_is_not_carried() -> None:
    packages = [
        record("libc6", priority="required"),
        record("zlib1g", priority="required"),
        record("dpkg", priority="required", essential=True),
        record("libffi8", priority="optional"),
        record("python3.11-minimal", priority="optional"),
        record("gpgv", priority="important"),
    ]
    assert [p.name for p in runtime.carried(packages)] == [
        "gpgv", "libffi8", "python3.11-minimal",
    ]  # fmt: skip


def test_the_host_floor_leaves_out_gpgv_and_its_libraries() -> None:
    gpgv = dataclasses.replace(
        record("gpgv", "important"),
        depends=((Relation("libgcrypt20"),), (Relation("libc6"),), (Relation("zlib1g"),)),
    )
    floor = [record("libc6", "optional"), record("zlib1g", "optional"), gpgv,
             record("libgcrypt20", "optional"), record("apt", "important")]  # fmt: skip
    assert sorted(runtime.host_floor(floor)) == ["apt", "libc6"]
    assert sorted(runtime.host_floor(floor[:2])) == ["libc6", "zlib1g"]  # Debian 13: no gpgv


def test_the_runtime_tar_is_the_same_every_time(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "p", {"usr/share/doc/p/x": b"x"})
    one = runtime.runtime_tar([("p_1.0-1_amd64.deb", deb)], mtime=1700000000)
    os.utime(deb, (1, 1))
    assert runtime.runtime_tar([("p_1.0-1_amd64.deb", deb)], mtime=1700000000) == one


def test_preamble_fields_point_at_the_parts(tmp_path: Path) -> None:
    rt = selfrun.Runtime("3.11", b"\x99key", b"-----SIG-----", b"TAR" * 100)
    data = selfrun.preamble(rt)
    fields = dict(re.findall(r"^(GB_\w+)=(\S+)", data.decode(errors="replace"), re.M))
    assert fields["GB_PYTHON"] == "3.11"
    for part, want in (("KEY", b"\x99key"), ("SIG", b"-----SIG-----"), ("TAR", b"TAR" * 100)):
        at, size = int(fields[f"GB_{part}_AT"]), int(fields[f"GB_{part}_SIZE"])
        assert data[at : at + size] == want
    assert len(selfrun.preamble(None)) == int(fields["GB_KEY_AT"])  # fixed-width fields
    with pytest.raises(ValueError):
        selfrun.preamble(dataclasses.replace(rt, python="3.11; rm -rf /"))


def test_the_preamble_is_posix_sh() -> None:
    assert subprocess.run(["dash", "-n"], input=selfrun.template(), text=True).returncode == 0


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="selfrun test")


def installer_file(where: Path, key: testkeys.TestKey, *, flip: bool = False) -> Path:
    files: dict[str, bytes | str] = {f"usr/bin/python{PY}": REPORT.encode(), **CARRIED_LIBS}
    deb = make_deb(where, "python9.9-minimal", files)
    tar = runtime.runtime_tar([(deb.name, deb)], mtime=1700000000)
    (where / "runtime.tar").write_bytes(tar)
    sig = testkeys.sign_detached(key, where / "runtime.tar", at=int(time.time())).read_bytes()
    if flip:
        tar = tar[:-600] + bytes([tar[-600] ^ 1]) + tar[-599:]
    pyz = where / "gpubundle-installer.pyz"
    rt = selfrun.Runtime(PY, testkeys.export_public(key), sig, tar)
    return build_zipapp(pyz, prefix=selfrun.preamble(rt))


def run_sh(pyz: Path, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(exist_ok=True)
    # GPUBUNDLE_RUNTIME=carried: this machine's python3 is not used, as on a host without one.
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp), "GPUBUNDLE_RUNTIME": "carried"}
    return subprocess.run(
        ["sh", str(pyz), *args], env=env, capture_output=True, text=True, check=False
    )


def test_a_trusted_runtime_is_unpacked_run_and_removed(
    tmp_path: Path, signer: testkeys.TestKey
) -> None:
    pyz = installer_file(tmp_path / "w", signer)
    assert zipfile.is_zipfile(pyz)  # python3 still runs it: the zip is read from its end
    proc = run_sh(pyz, "verify", "B", "--trust", signer.fingerprint.lower(), tmp=tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    ran, env, *libs = proc.stdout.splitlines()
    assert ran.startswith(f"ran {tmp_path}/t/gpubundle-runtime-")
    assert ran.endswith(
        f"/root/usr/bin/python{PY} -s -E {pyz} verify B --trust {signer.fingerprint.lower()}"
    )
    assert env.startswith("launcher=sh libs=") and f"/root/usr/lib/{TRIPLET}" in env
    assert libs == ["libgbprobe.so.1"]
    assert list((tmp_path / "t").iterdir()) == []  # removed at exit
    spaced = " ".join(signer.fingerprint[i : i + 4] for i in range(0, 40, 4))
    assert (
        run_sh(pyz, "install", "--trust=" + spaced.replace(" ", ""), tmp=tmp_path / "t").returncode
        == 0
    )


def test_an_untrusted_or_altered_runtime_is_refused_before_unpacking(
    tmp_path: Path, signer: testkeys.TestKey
) -> None:
    pyz = installer_file(tmp_path / "w", signer)
    other = run_sh(pyz, "install", "B", "--trust", "A" * 40, tmp=tmp_path / "t")
    assert other.returncode == 3 and "not signed by the key you trust" in other.stderr
    assert "ran" not in other.stdout and list((tmp_path / "t").iterdir()) == []
    altered = installer_file(tmp_path / "x", signer, flip=True)
    bad = run_sh(altered, "install", "B", "--trust", signer.fingerprint, tmp=tmp_path / "t")
    assert bad.returncode == 3, bad.stderr
    assert "nothing on this host was changed" in bad.stderr
    assert "ran" not in bad.stdout and list((tmp_path / "t").iterdir()) == []
    # Cut short on the way (a partial copy): exit 3, saying to copy it again.
    short = tmp_path / "short.pyz"
    short.write_bytes(pyz.read_bytes()[: len(selfrun.preamble(None)) + 300])
    cut = run_sh(short, "install", "B", "--trust", signer.fingerprint, tmp=tmp_path / "t")
    assert cut.returncode == 3 and "is truncated" in cut.stderr, cut.stderr
    assert list((tmp_path / "t").iterdir()) == []
    # No --trust: only keys this machine already trusts may vouch for it. None here: exit 2,
    # saying what to pass; keys an install left here (not this signer's): exit 3.
    bare = run_sh(pyz, "status", tmp=tmp_path / "t")
    installed = list(Path("/usr/share/keyrings").glob("gpubundle-*.gpg"))
    installed += Path("/etc/gpubundle/trusted.d").glob("*.gpg")
    if installed:
        assert bare.returncode == 3 and "not signed by a key this host trusts" in bare.stderr
    else:
        assert bare.returncode == 2 and "--trust FINGERPRINT" in bare.stderr
    assert "ran" not in bare.stdout


def test_restore_environment_and_the_carried_gpgv() -> None:
    env = {carried.RUNTIME_DIR: "/tmp/r/root", carried.RUNTIME_LIBS: "/tmp/r/root/usr/lib",
           carried.HOST_LIBRARY_PATH: "unset", "LD_LIBRARY_PATH": "/tmp/r/root/usr/lib",
           "PATH": "/nonexistent"}  # fmt: skip
    carried.restore_environment(env)
    assert "LD_LIBRARY_PATH" not in env and carried.HOST_LIBRARY_PATH not in env
    assert carried.gpgv(env) == (
        "/tmp/r/root/usr/bin/gpgv",
        {"LD_LIBRARY_PATH": "/tmp/r/root/usr/lib"},
    )
    env2 = {
        carried.RUNTIME_DIR: "/r",
        carried.HOST_LIBRARY_PATH: "/opt/lib",
        "LD_LIBRARY_PATH": "/r/lib",
    }
    carried.restore_environment(env2)
    assert env2["LD_LIBRARY_PATH"] == "/opt/lib"
    assert carried.gpgv({"PATH": "/usr/bin:/bin"}) == ("gpgv", {})  # the host's own
