"""Test images in the loopback registry, built from Debian packages without Docker Hub.

Docker Hub and NVIDIA's registry cannot be reached here, so the images tests need
are made from ``.deb`` files the Debian archive serves: a static busybox image, and
a glibc image (libc6 + dash + busybox) that carries the environment a CUDA base
image does. Both are labelled as test images and pushed to the registry that
``scripts/services.sh start`` runs on 127.0.0.1:5000 (plain HTTP, which Docker
trusts on loopback without any insecure-registries setting).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from installer.runner import run
from tests.conftest import CACHE_DIR

REGISTRY = "127.0.0.1:5000"
CACHE = CACHE_DIR / "test-images"
EPOCH = "1700000000"
TEST_LABEL = "io.gpubundle.test-image"
RECIPE_LABEL = "io.gpubundle.test-image.recipe"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


@dataclass(frozen=True)
class TestImage:
    __test__ = False  # not a pytest test class

    ref: str  # repository:tag in the local registry
    debs: tuple[str, ...]  # Debian packages unpacked into its root
    env: tuple[str, ...] = ()
    description: str = ""

    @property
    def repository(self) -> str:
        return self.ref.split("/", 1)[1].rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


BUSYBOX = TestImage(
    f"{REGISTRY}/gpubundle-test/busybox:1.35",
    ("busybox-static",),
    description="gpubundle test image: Debian's busybox-static",
)
CUDA_STANDIN = TestImage(
    f"{REGISTRY}/gpubundle-test/cuda-standin:12.4.1-base-ubuntu22.04",
    ("libc6", "libc-bin", "libgcc-s1", "gcc-12-base", "dash", "busybox-static"),
    env=(
        "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:"
        "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
        "CUDA_VERSION=12.4.1",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471",
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    ),
    description="gpubundle test image: stand-in for a CUDA base image, no CUDA inside "
    "(Debian glibc, dash, busybox)",
)
TEST_IMAGES = (BUSYBOX, CUDA_STANDIN)


def registry_url() -> str:
    return f"http://{REGISTRY}"


def _get(path: str, accept: str = "") -> bytes | None:
    """The body at ``path`` on the registry, None for 404."""
    request = urllib.request.Request(f"{registry_url()}{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def recipe(image: TestImage) -> str:
    """A digest of everything that defines ``image``: a changed recipe means a rebuild."""
    text = json.dumps([image.ref, image.debs, image.env, image.description, EPOCH])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def in_registry(image: TestImage) -> bool:
    """Whether the registry serves ``image``'s tag, built from the current recipe."""
    manifest = _get(f"/v2/{image.repository}/manifests/{image.tag}", ", ".join(MANIFEST_TYPES))
    if manifest is None:
        return False
    digest = json.loads(manifest)["config"]["digest"]
    config = _get(f"/v2/{image.repository}/blobs/{digest}")
    labels = json.loads(config or b"{}").get("config", {}).get("Labels") or {}
    return bool(labels.get(RECIPE_LABEL) == recipe(image))


def fetch_debs(names: tuple[str, ...]) -> list[Path]:
    """``apt-get download`` each package once into the cache; returns the .deb files."""
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = []
    for name in names:
        matches = sorted(debs.glob(f"{name}_*.deb"))
        if not matches:
            run(["apt-get", "download", name], cwd=debs,
                hint="run apt-get update; the Debian archive must be reachable")  # fmt: skip
            matches = sorted(debs.glob(f"{name}_*.deb"))
        found.append(matches[-1])
    return found


def make_rootfs(root: Path, debs: list[Path]) -> None:
    for deb in debs:
        run(["dpkg-deb", "-x", deb, root])
    busybox = root / "bin" / "busybox"
    applets = run([busybox, "--list"]).stdout.decode().split()
    for applet in applets:
        for directory in ("bin", "usr/bin"):
            if (root / directory / applet).exists() or (root / directory / applet).is_symlink():
                break
        else:
            (root / "bin" / applet).symlink_to("busybox")
    for directory in ("tmp", "etc", "proc", "sys", "dev"):
        (root / directory).mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def import_argv(image: TestImage) -> list[str]:
    changes = [
        *(f'ENV {name}="{value}"' for name, value in (i.split("=", 1) for i in image.env)),
        f'LABEL {TEST_LABEL}="true"',
        f'LABEL {RECIPE_LABEL}="{recipe(image)}"',
        f'LABEL org.opencontainers.image.description="{image.description}"',
        'CMD ["/bin/sh"]',
    ]
    argv = ["docker", "import", "--message", image.description]
    for change in changes:
        argv += ["--change", change]
    return [*argv, "-", image.ref]


def build_and_push(image: TestImage) -> None:
    with tempfile.TemporaryDirectory(prefix="gpubundle-image-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        make_rootfs(root, fetch_debs(image.debs))
        tar = run(["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0",
                   f"--mtime=@{EPOCH}", "-C", root, "-c", "."]).stdout  # fmt: skip
        run(import_argv(image), input_bytes=tar)
    run(["docker", "push", image.ref], hint="is the registry up? bash scripts/services.sh start")


@functools.cache
def ensure_test_images() -> list[str]:
    """Make sure every test image is in the local registry (built once); returns the refs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test sessions may be seeding too
        for image in TEST_IMAGES:
            if not in_registry(image):
                build_and_push(image)
    return [image.ref for image in TEST_IMAGES]


def image_labels(ref: str) -> dict[str, str]:
    """The labels of a locally present image (pulled if needed)."""
    if run(["docker", "image", "inspect", ref], check=False).returncode != 0:
        run(["docker", "pull", ref])
    config = json.loads(run(["docker", "image", "inspect", ref]).stdout)[0]["Config"]
    return dict(config.get("Labels") or {})
