"""Verify a bundle in one streaming pass, and optionally extract it, writing only to staging.

The chain: the head members (manifest, signature, signer key) come first, in
``layout.HEAD_MEMBERS`` order and bounded in size; the signature is checked
with gpgv against the fingerprints the user trusts (the key inside the bundle
only supplies key material: a key is accepted for its fingerprint, never for
being there); only then is the manifest parsed; then every later member is
checked by ``tarsafety`` before it is read, and hashed while it streams into a
staging directory beside ``extract_to``. Missing, changed and extra members
are collected and reported together; the staging directory is renamed into
place only when nothing failed, and deleted otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from installer import layout
from installer.diskspace import is_no_space, no_space_error
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.manifest import FileEntry, Manifest, parse_manifest
from installer.openpgp import normalize_fingerprint, primary_fingerprints, verify_detached_bytes
from installer.partstream import open_source
from installer.tarsafety import BoundedTarInfo, TarGuard
from installer.trust import BUNDLE_KEY_ADVICE, Trust, as_trust, load_trust
from installer.zstd_stream import READ_SIZE, ByteSource, open_zstd

ProgressFn = Callable[[int], None]
_WRITES_IN_FLIGHT = 8  # chunks of READ_SIZE queued for the writer thread at most
_DAMAGED = "the bundle is damaged or was altered; copy it again from the build machine"


def trusted_fingerprints(cli_values: Sequence[str], trust_dir: Path | str) -> Trust:
    """Fingerprints named with ``--trust`` plus the keys of the key files in ``trust_dir``
    (``HostPaths.trust_dir``). A file there that cannot be read is skipped and named in
    ``Trust.warnings``.
    """
    return load_trust(cli_values, trust_dir)


def _head(tar: tarfile.TarFile) -> dict[str, bytes]:
    head: dict[str, bytes] = {}
    for position, expected in enumerate(layout.HEAD_MEMBERS, start=1):
        info = tar.next()
        got = "the end of the archive" if info is None else repr(info.name)
        if info is None or info.name != expected or not info.isreg():
            what = "unsigned" if expected == layout.MANIFEST_SIG else "not a gpubundle bundle"
            raise VerificationError(
                f"bundle is {what}: member {position} must be {expected}, found {got}",
                hint=_DAMAGED,
            )
        if info.size > layout.MAX_HEAD_MEMBER_BYTES:
            raise VerificationError(
                f"{expected} is {info.size} bytes, more than the "
                f"{layout.MAX_HEAD_MEMBER_BYTES} a bundle may hold",
                hint=_DAMAGED,
            )
        stream = tar.extractfile(info)
        assert stream is not None
        head[expected] = stream.read()
    return head


def _verified_manifest(head: dict[str, bytes], trusted: Sequence[str]) -> Manifest:
    trust = as_trust(trusted)
    # The bundle's own key copy is key material only, merged with trusted.d's copy.
    result = verify_detached_bytes(
        head[layout.MANIFEST],
        head[layout.MANIFEST_SIG],
        trust.keyring([head[layout.SIGNER_KEY]]),
        trust,
        "bundle manifest",
        BUNDLE_KEY_ADVICE,
    )
    manifest = parse_manifest(head[layout.MANIFEST])
    try:
        claimed = normalize_fingerprint(manifest.signer_fingerprint)
    except ValueError:
        claimed = manifest.signer_fingerprint
    if claimed != result.primary_fingerprint:
        raise VerificationError(
            "the manifest names a different signer than the key that signed it",
            hint=_DAMAGED,
            details=[
                f"manifest says {manifest.signer_fingerprint}",
                f"signed by {result.primary_fingerprint}",
            ],
        )
    return manifest


def _manifest_problems(manifest: Manifest) -> list[str]:
    """Packages whose pins disagree with the manifest's own file list."""
    files = manifest.file_map()
    problems = []
    for pin in manifest.packages:
        entry = files.get(pin.filename)
        if entry is None or (entry.size, entry.sha256) != (pin.size, pin.sha256):
            problems.append(f"{pin.filename}: package {pin.name} is not in the file list as pinned")
    return problems


@contextmanager
def _staging(extract_to: Path | None) -> Iterator[Path | None]:
    """A fresh directory beside ``extract_to``, renamed onto it only if the body succeeds."""
    if extract_to is None:
        yield None
        return
    if extract_to.exists():
        raise GpubundleError(
            f"{extract_to} already exists", hint="remove it or extract somewhere else"
        )
    if not extract_to.parent.is_dir():
        raise GpubundleError(
            f"{extract_to.parent} does not exist", hint="create it, then run this again"
        )
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=f".{extract_to.name}.staging-", dir=extract_to.parent)
        )
    except OSError as exc:
        if is_no_space(exc):
            raise no_space_error(extract_to, exc, "creating the staging directory") from exc
        raise
    try:
        yield staging
        staging.rename(extract_to)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy(
    src: IO[bytes],
    dest: Path | None,
    guard: TarGuard,
    progress: ProgressFn,
    writer: ThreadPoolExecutor,
    sink: list[bytes] | None = None,
) -> tuple[int, str]:
    """Hash ``src`` (and write it to ``dest``, and keep its chunks in ``sink``); writes run
    on ``writer``, in order, overlapped.

    A write that fails is the host's problem, not the bundle's: it raises ``_WriteFailed``.
    """
    digest = hashlib.sha256()
    size = 0
    fd = -1
    pending: deque[Future[None]] = deque()
    if dest is not None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise _WriteFailed(exc) from exc
    try:
        while chunk := src.read(READ_SIZE):
            guard.consume(len(chunk))
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.append(chunk)
            if fd >= 0:
                pending.append(writer.submit(_write_all, fd, chunk))
                if len(pending) > _WRITES_IN_FLIGHT:
                    _written(pending.popleft())
            progress(len(chunk))
    finally:
        wait(pending)
        if fd >= 0:
            os.close(fd)
    for future in pending:
        _written(future)
    return size, digest.hexdigest()


class _WriteFailed(Exception):
    """Writing to staging failed (ENOSPC, EDQUOT, EIO, ...); carries the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _written(future: Future[None]) -> None:
    try:
        future.result()
    except OSError as exc:
        raise _WriteFailed(exc) from exc


@dataclass
class _Members:
    """The members after the head: checked, hashed and (with ``staging``) written, one pass."""

    manifest: Manifest
    staging: Path | None
    progress: ProgressFn
    failures: list[str] = field(default_factory=list)
    keep: frozenset[str] = frozenset()  # members to hold in memory once they check out
    kept: dict[str, bytes] = field(default_factory=dict)

    def run(self, tar: tarfile.TarFile) -> list[str]:
        expected = self.manifest.file_map()
        guard = TarGuard.for_sizes(sum(entry.size for entry in self.manifest.files))
        guard.seen.update(layout.HEAD_MEMBERS)
        self.failures.extend(_manifest_problems(self.manifest))
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="gpubundle-write") as writer:
                while (info := tar.next()) is not None:
                    self._one(tar, info, expected.get(info.name), guard, writer)
        except tarfile.TarError as exc:
            self.failures.append(f"the archive ends early or is damaged: {exc}")
            return self.failures
        self.failures.extend(
            f"{name}: missing from the bundle" for name in expected if name not in guard.seen
        )
        trailer = tar.fileobj
        while trailer is not None and (chunk := trailer.read(READ_SIZE)):
            guard.consume(len(chunk))
            if chunk.strip(b"\0"):
                self.failures.append("data follows the end of the tar archive")
                break
        return self.failures

    def _one(
        self,
        tar: tarfile.TarFile,
        info: tarfile.TarInfo,
        entry: FileEntry | None,
        guard: TarGuard,
        writer: ThreadPoolExecutor,
    ) -> None:
        problems = guard.check(info, entry.size if entry else None)
        if not problems and info.isreg() and entry is None:
            problems = [f"{info.name}: not listed in the manifest (extra file)"]
        if problems or entry is None or not info.isreg():
            self.failures.extend(problems)
            guard.consume(info.size if info.isreg() else 0)  # skipped, but still decompressed
            return
        src = tar.extractfile(info)
        assert src is not None
        dest = self.staging / info.name if self.staging else None
        sink: list[bytes] | None = [] if info.name in self.keep else None
        try:
            size, sha256 = _copy(src, dest, guard, self.progress, writer, sink)
        except _WriteFailed as failed:
            # The host's disk, not the bundle: stop now (staging is removed on the way out).
            assert self.staging is not None and dest is not None
            raise _staging_write_error(self.staging, dest, failed.error) from failed.error
        if sha256 != entry.sha256 or size != entry.size:
            self.failures.append(f"{info.name}: sha256 {sha256}, manifest says {entry.sha256}")
        elif sink is not None:
            self.kept[info.name] = b"".join(sink)


def _staging_write_error(staging: Path, dest: Path, exc: OSError) -> GpubundleError:
    target = staging.parent / staging.name.split(".staging-")[0].lstrip(".")
    if is_no_space(exc):
        return no_space_error(target, exc, f"extracting {dest.relative_to(staging)}")
    return GpubundleError(
        f"cannot write {dest.relative_to(staging)} under {staging.parent}: {exc.strerror or exc}",
        hint=f"check the filesystem that holds {staging.parent} (dmesg, mount), then run again; "
        "nothing half-extracted was kept",
    )


@dataclass(frozen=True)
class VerifiedBundle:
    """What one verifying pass established, passed on instead of reading the bundle again.

    ``manifest`` is the signed one (its ``files`` name every member to stage and its
    sha256); ``sha256`` is the whole compressed bundle's; ``head_sha256`` that of the
    signed manifest's bytes, which ``extract_verified`` requires to be unchanged.
    """

    path: Path
    trust: Trust
    manifest: Manifest
    sha256: str
    head_sha256: str
    carried_key: bytes  # the bundle's keys/signer.asc as read in that pass
    members: Mapping[str, bytes] = field(default_factory=dict)  # those asked for (keep)

    def apt_key(self) -> bytes:
        """The signer's public key as the signature was checked with it: what apt gets to
        trust. When trusted.d holds a copy of that key (an extended expiry, say), the two
        copies are merged, exactly as for gpgv: apt checks the local repository with the
        same key."""
        fingerprint = self.manifest.signer_fingerprint
        if fingerprint not in primary_fingerprints(self.carried_key):
            raise VerificationError(
                f"the bundle's {layout.SIGNER_KEY} is not the key {fingerprint} that signed it",
                hint="the bundle changed since it was verified; copy it again from the build "
                "machine",
            )
        return self.trust.restricted_to(fingerprint).signer_key(fingerprint, self.carried_key)


class _Hashing:
    """A byte stream passed through, hashed as it is read."""

    def __init__(self, raw: ByteSource) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def rest(self) -> str:
        """The sha256 of everything, once the rest (if any) was read too."""
        while self.read(READ_SIZE):
            pass
        return self.digest.hexdigest()


def verify_bundle(
    path: Path,
    trusted: Sequence[str],
    *,
    extract_to: Path | None = None,
    progress: ProgressFn | None = None,
    on_total: ProgressFn | None = None,
) -> Manifest:
    """Verify ``path`` against ``trusted`` fingerprints; with ``extract_to``, extract it there.

    ``path`` is a bundle file, or a split bundle's parts index or one of its parts
    (``installer.partstream``): the parts are read as one stream, never joined.
    ``on_total`` is called once, when the signed manifest is known, with the
    number of bytes to check; ``progress`` then with each amount checked.

    Raises VerificationError listing every problem; on any failure nothing is
    left at ``extract_to``.
    """
    return _pass(path, trusted, None, extract_to, progress, on_total).manifest


def read_members(
    path: Path, trusted: Sequence[str], names: Sequence[str]
) -> tuple[Manifest, dict[str, bytes]]:
    """Verify ``path`` completely, as ``verify_bundle`` does, and return the members
    ``names`` that are in it (held in memory: small members only), once all of it checked
    out. Nothing is written anywhere."""
    verified = _pass(path, trusted, None, None, None, None, frozenset(names))
    return verified.manifest, dict(verified.members)


def read_verified(
    path: Path,
    trusted: Sequence[str],
    *,
    progress: ProgressFn | None = None,
    on_total: ProgressFn | None = None,
) -> VerifiedBundle:
    """``verify_bundle`` without extracting, returning every fact later steps need."""
    return _pass(path, trusted, None, None, progress, on_total)


def extract_verified(
    verified: VerifiedBundle, extract_to: Path, *, progress: ProgressFn | None = None
) -> None:
    """Extract a bundle verified earlier, each member checked against its verified sha256.

    The head must be the one verified (byte for byte), so the signature is not checked
    again; a bundle changed since fails here as it would in ``verify_bundle``.
    """
    _pass(verified.path, verified.trust, verified, extract_to, progress, None)


def _pass(
    path: Path,
    trusted: Sequence[str],
    verified: VerifiedBundle | None,
    extract_to: Path | None,
    progress: ProgressFn | None,
    on_total: ProgressFn | None,
    keep: frozenset[str] = frozenset(),
) -> VerifiedBundle:
    """One streaming read of the bundle: head, signature (unless ``verified`` vouches for
    it), every member, and the whole bundle's sha256; the members named in ``keep`` are
    held in memory once they checked out."""
    if not trusted:
        raise GpubundleError(
            "no trusted signing key",
            hint=f"pass --trust FINGERPRINT (printed by gpubundle build) or put the public key "
            f"in {layout.TRUST_DIR}",
            code=ExitCode.USAGE,
        )
    report = progress or (lambda _n: None)
    source = open_source(path, trusted)
    # Staging is renamed only after the source is closed: a decoder's exit status
    # and the parts' hashes are known by then.
    with _staging(extract_to) as staging, source.reading() as raw:
        hashing = _Hashing(raw)
        with open_zstd(hashing) as stream:
            try:
                with tarfile.open(  # type: ignore[call-overload]
                    fileobj=stream, mode="r|", bufsize=READ_SIZE, tarinfo=BoundedTarInfo
                ) as tar:
                    head = _head(tar)
                    head_sha256 = hashlib.sha256(head[layout.MANIFEST]).hexdigest()
                    if verified is None:
                        manifest = _verified_manifest(head, trusted)
                    elif head_sha256 == verified.head_sha256:
                        manifest = verified.manifest
                    else:
                        raise VerificationError(
                            f"{path} changed since it was verified: its manifest differs",
                            hint=_DAMAGED,
                        )
                    if on_total is not None:
                        on_total(sum(entry.size for entry in manifest.files))
                    members = _Members(manifest, staging, report, keep=keep)
                    failures = members.run(tar)
                    if failures:
                        raise VerificationError(
                            f"bundle verification failed: {len(failures)} problem(s)",
                            hint=_DAMAGED,
                            details=failures,
                        )
            except tarfile.TarError as exc:
                raise VerificationError(
                    f"{path} is not a readable bundle archive: {exc}", hint=_DAMAGED
                ) from exc
        whole = source.sha256 or hashing.rest()
    return VerifiedBundle(
        path,
        as_trust(trusted),
        manifest,
        whole,
        head_sha256,
        head[layout.SIGNER_KEY],
        members.kept,
    )
