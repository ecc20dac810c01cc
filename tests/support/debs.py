"""Small .debs built with the real ``dpkg-deb --build`` (``make_deb``), and the file sets
of a glibc and a busybox package (``LIBC``, ``BUSYBOX``) such as the verification image
is made of."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_deb(
    where: Path,
    package: str,
    files: dict[str, bytes | str],
    arch: str = "amd64",
    hardlinks: dict[str, str] | None = None,
) -> Path:
    """A .deb of ``files`` (str values are symlink targets; "bin/x" executable).

    ``hardlinks`` maps new names to files already given.
    """
    root = where / f"{package}-{arch}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: {arch}\n"
        "Maintainer: t <t@example.org>\nDescription: test\n"
    )
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.symlink_to(content)
        else:
            path.write_bytes(content)
            path.chmod(0o755 if "bin/" in name else 0o644)
    for name, target in (hardlinks or {}).items():
        (root / name).hardlink_to(root / target)
    deb = where / f"{package}_{arch}.deb"
    argv = ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)]
    subprocess.run(argv, check=True, capture_output=True)
    return deb


LIBC = {
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": b"\x7fELF loader",
    "lib/x86_64-linux-gnu/libc.so.6": b"\x7fELF libc",
    "lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "etc/ld.so.conf.d/x86_64-linux-gnu.conf": b"/usr/local/lib/x86_64-linux-gnu\n",
    "usr/share/doc/libc6/copyright": b"GPL\n",
}


BUSYBOX = {"bin/busybox": b"\x7fELF busybox", "usr/share/doc/busybox/copyright": b"GPL\n"}
