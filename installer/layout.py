"""Every path of the bundle layout, named once; the bundler and the installer both import it.

A bundle is one tar stream (zstd-compressed) whose members are, in this order:

1. ``manifest.json``: what the bundle holds, with each file's size and sha256;
2. ``manifest.json.asc``: a detached, ASCII-armoured signature of it;
3. ``keys/signer.asc``: the signer's public key. It is never trusted for being
   here: the installer accepts the signature only if the key's fingerprint is
   one the user named with ``--trust`` (or placed in the trust directory);
4. every other member, sorted by path, each listed in the manifest.

The head members come first so the installer can verify the manifest before
reading further, and then check each later member while it streams.
See docs/bundle-format.md.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from installer.compat import removesuffix

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.json.asc"
SIGNER_KEY = "keys/signer.asc"
# Members that come first, in this order, and are checked by the signature
# rather than listed in the manifest's files.
HEAD_MEMBERS = (MANIFEST, MANIFEST_SIG, SIGNER_KEY)
UPSTREAM_KEYS_DIR = "keys/upstream"
UPSTREAM_METADATA_DIR = "upstream"

REPO_DIR = "repo"
REPO_PACKAGES = "repo/Packages"
REPO_RELEASE = "repo/Release"
REPO_INRELEASE = "repo/InRelease"
REPO_DEBS_DIR = "repo/debs"

IMAGES_DIR = "images"
# Image archives, each a ``docker load`` tar; every manifest image names the one it is in.
IMAGES_ARCHIVE = f"{IMAGES_DIR}/images.tar"  # images pulled from registries (--image)
VERIFY_IMAGE_ARCHIVE = f"{IMAGES_DIR}/gpubundle-verify.tar"  # built from the distro's .debs
INSTALLER_PYZ = "installer/gpubundle-installer.pyz"
# The CycloneDX JSON SBOM of every .deb and image, with the toolkit's known vulnerabilities.
SBOM = "sbom.cdx.json"

# Largest manifest or signature the installer will read before verifying it.
MAX_HEAD_MEMBER_BYTES = 64 * 1024 * 1024


# A bundle split for transport (``gpubundle build --split-size``): NAME.tar.zst is
# written as NAME.tar.zst.part001, .part002, … plus the signed index NAME.parts.json
# (and NAME.parts.json.asc) that lists every part. See docs/bundle-format.md.
BUNDLE_SUFFIX = ".tar.zst"
PARTS_INDEX_SUFFIX = ".parts.json"
SIGNATURE_SUFFIX = ".asc"
PART_SUFFIX = ".part"  # followed by the part number, three digits or more
PARTS_FORMAT_VERSION = 1
# Largest parts index the installer reads before verifying its signature.
MAX_PARTS_INDEX_BYTES = 16 * 1024 * 1024
_PART_NAME = re.compile(r"(?P<bundle>.+)\.part(?P<number>[0-9]{3,})")


def parts_index_name(bundle_name: str) -> str:
    """``NAME.parts.json`` for bundle ``NAME.tar.zst`` (any other name keeps its suffix)."""
    stem = removesuffix(bundle_name, BUNDLE_SUFFIX) or bundle_name
    return stem + PARTS_INDEX_SUFFIX


def part_name(bundle_name: str, number: int) -> str:
    """``NAME.tar.zst.part001`` for part 1; numbers start at 1."""
    return f"{bundle_name}{PART_SUFFIX}{number:03d}"


def parse_part_name(file_name: str) -> tuple[str, int] | None:
    """(bundle name, part number) of a part's file name, or None if it names no part."""
    match = _PART_NAME.fullmatch(file_name)
    if match is None or str(int(match["number"])).zfill(3) != match["number"]:
        return None
    return match["bundle"], int(match["number"])


def upstream_key(source_id: str) -> str:
    return f"{UPSTREAM_KEYS_DIR}/{source_id}.asc"


def upstream_metadata(source_id: str, suite: str, name: str) -> str:
    """Where an upstream Release/InRelease file is kept; ``suite`` is ``flat`` for flat repos."""
    return f"{UPSTREAM_METADATA_DIR}/{source_id}/{suite}/{name}"


def repo_deb(filename: str) -> str:
    """The bundle path of a .deb, named by its canonical file name."""
    return f"{REPO_DEBS_DIR}/{PurePosixPath(filename).name}"


def deb_filename(name: str, version: str, architecture: str) -> str:
    """Debian's canonical file name; epochs are dropped as dpkg-name does."""
    upstream = version.split(":", 1)[1] if ":" in version else version
    return f"{name}_{upstream}_{architecture}.deb"


# Paths on the target host.
STATE_DIR = "/var/lib/gpubundle"
LOG_DIR = "/var/log/gpubundle"
BACKUPS_DIR = "/var/backups/gpubundle"  # uninstall's copies of files changed since install
LOCK_FILE = "/run/gpubundle.lock"
TRUST_DIR = "/etc/gpubundle/trusted.d"
