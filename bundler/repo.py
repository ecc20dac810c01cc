"""The apt repository client: signed Release metadata, then the Packages indices it vouches for.

For one source and one architecture, ``RepoClient.fetch``:

1. loads the source's keys (a file shipped in manifests/keys, or a URL) and
   refuses them unless they hold every pinned fingerprint;
2. fetches ``InRelease`` (else ``Release`` + ``Release.gpg``) and checks it
   with gpgv against the pinned fingerprints (plus any ``--key`` files);
3. fetches each component's ``Packages`` index, preferring .xz, then .gz,
   then plain, into ``partial/``, checks its size and hashes against the
   signed Release, and only then moves it into ``by-hash/`` and decompresses it.

The cache under ``cache_dir`` is content-addressed: an index whose hash the
new Release still lists is reused after its hash is checked again, so an
unchanged Release costs one small download. Both ``dists/`` repositories and
flat ones (``deb URL /``, like NVIDIA's) are handled.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import lzma
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bundler.http import NETWORK_HINT, NotFoundError, download, fetch_bytes
from bundler.httpclient import HttpClient
from bundler.releasefile import (
    IndexEntry,
    ReleaseFile,
    check_file,
    check_fresh,
    check_suite,
    parse_release,
)
from bundler.sourcekeys import SourceKeys, load_source_keys
from bundler.targets import SourceSpec
from installer.errors import GpubundleError, VerificationError
from installer.manifest import SourceRecord
from installer.openpgp import verify_clearsigned, verify_detached

COMPRESSIONS = (".xz", ".gz", "")  # apt's order of preference


@dataclass(frozen=True)
class FetchedSource:
    """One source for one architecture, verified: what resolution and the bundle need."""

    source_id: str
    url: str  # repository root for this architecture
    suite: str
    components: tuple[str, ...]
    base_url: str  # what the Filename fields of its packages are relative to
    release_name: str  # "InRelease", or "Release" when signed by a detached Release.gpg
    release_bytes: bytes  # exactly as fetched and verified: shipped as evidence
    release_signature: bytes  # Release.gpg for a detached signature, else b""
    keys: SourceKeys
    packages_files: tuple[Path, ...]  # verified, decompressed Packages files

    def metadata_files(self) -> dict[str, bytes]:
        files = {self.release_name: self.release_bytes}
        if self.release_signature:
            files["Release.gpg"] = self.release_signature
        return files

    def record(self) -> SourceRecord:
        return SourceRecord(
            self.source_id, self.url, self.suite, self.components, self.keys.trusted
        )


def metadata_url(source: SourceSpec, arch: str) -> str:
    """The directory holding (In)Release, with a trailing slash."""
    root = source.url_for(arch)
    return f"{root}/" if source.flat else f"{root}/dists/{source.suite}/"


def index_stems(source: SourceSpec, arch: str) -> list[str]:
    """Packages index paths relative to the Release, without compression suffix."""
    if source.flat:
        return ["Packages"]
    return [f"{component}/binary-{arch}/Packages" for component in source.components]


class RepoClient:
    def __init__(
        self,
        session: HttpClient,
        cache_dir: Path,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.session = session
        self.cache_dir = cache_dir
        self.now = now

    def fetch(self, source: SourceSpec, arch: str) -> FetchedSource:
        with _reachable(source, arch):
            return self._fetch(source, arch)

    def _fetch(self, source: SourceSpec, arch: str) -> FetchedSource:
        keys = load_source_keys(self.session, source)
        meta = metadata_url(source, arch)
        name, raw, signature, content = self._release(source, meta, keys)
        what = f"source {source.id} ({meta}{name})"
        release = parse_release(content, what)
        check_fresh(release, self.now(), what)
        if not source.flat:
            check_suite(release, source.suite, what)
        self._keep_release(source, arch, name, raw, signature)
        files = tuple(
            self._index(source, meta, release, stem, arch) for stem in index_stems(source, arch)
        )
        return FetchedSource(
            source_id=source.id,
            url=source.url_for(arch),
            suite=source.suite,
            components=source.components,
            base_url=source.url_for(arch),
            release_name=name,
            release_bytes=raw,
            release_signature=signature,
            keys=keys,
            packages_files=files,
        )

    def _release(
        self, source: SourceSpec, meta: str, keys: SourceKeys
    ) -> tuple[str, bytes, bytes, bytes]:
        """(name, raw bytes, detached signature, signed content) of the verified Release."""
        try:
            raw = fetch_bytes(self.session, meta + "InRelease")
        except NotFoundError:
            pass
        else:
            what = f"source {source.id} ({meta}InRelease)"
            with _explained(source, keys):
                result = verify_clearsigned(raw, keys.material, keys.trusted, what)
            return "InRelease", raw, b"", result.signed_data
        raw = fetch_bytes(self.session, meta + "Release")
        what = f"source {source.id} ({meta}Release)"
        try:
            signature = fetch_bytes(self.session, meta + "Release.gpg")
        except NotFoundError as exc:
            raise VerificationError(
                f"{what} is not signed: there is neither InRelease nor Release.gpg",
                hint=_trust_hint(source, keys),
            ) from exc
        work = self._dir(f"partial/{os.getpid()}")
        data_path, sig_path = work / f"{source.id}.Release", work / f"{source.id}.Release.gpg"
        data_path.write_bytes(raw)
        sig_path.write_bytes(signature)
        try:
            with _explained(source, keys):
                verify_detached(data_path, sig_path, keys.material, keys.trusted, what)
        finally:
            data_path.unlink()
            sig_path.unlink()
        return "Release", raw, signature, raw

    def _index(
        self, source: SourceSpec, meta: str, release: ReleaseFile, stem: str, arch: str
    ) -> Path:
        what = f"source {source.id}"
        plain = release.files.get(stem)
        listed = [
            (suffix, release.files[stem + suffix])
            for suffix in COMPRESSIONS
            if stem + suffix in release.files
        ]
        if not listed:
            raise VerificationError(
                f"{what}: the signed Release lists no {stem} index for {arch}",
                hint="check the source's components and the architecture; the archive may not "
                "carry this architecture",
            )
        for suffix, entry in listed:
            cached = self._cached(entry, suffix, plain, what)
            if cached is not None:
                return cached
        for number, (suffix, entry) in enumerate(listed, 1):
            pooled = self._pool_path(entry, suffix)
            partial = self._dir(f"partial/{os.getpid()}") / pooled.name
            try:
                download(self.session, meta + stem + suffix, partial, expected_size=entry.size)
            except NotFoundError:
                if number == len(listed):
                    raise
                continue  # the Release lists it, the server lacks it: try the next form
            check_file(entry, partial, what)
            os.replace(partial, pooled)
            return self._decompressed(pooled, suffix, plain, what)
        raise AssertionError("unreachable: the last candidate raises")

    def _cached(
        self, entry: IndexEntry, suffix: str, plain: IndexEntry | None, what: str
    ) -> Path | None:
        pooled = self._pool_path(entry, suffix)
        if not pooled.exists():
            return None
        try:
            _checked(entry, pooled, what)
            return self._decompressed(pooled, suffix, plain, what)
        except VerificationError:
            pooled.unlink()  # damaged cache entry: fetch it again
            return None

    def _decompressed(self, pooled: Path, suffix: str, plain: IndexEntry | None, what: str) -> Path:
        """The uncompressed index beside ``pooled``, checked against the Release when it lists it.

        Without an uncompressed entry to check against, it is decompressed afresh from the
        verified file each time (cheap next to a download), so a damaged copy is never used.
        """
        if not suffix:
            return pooled
        out = pooled.with_name(pooled.name.removesuffix(suffix) + ".Packages")
        if plain is not None and out.exists() and _matches(plain, out):
            return out
        tmp = self._dir(f"partial/{os.getpid()}") / out.name
        opener = lzma.open if suffix == ".xz" else gzip.open
        try:
            with opener(pooled, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (lzma.LZMAError, OSError, EOFError) as exc:
            raise VerificationError(
                f"{what}: {pooled.name} matches the signed Release but does not decompress",
                hint="the repository publishes a broken index; report it to its maintainers",
            ) from exc
        if plain is not None:
            check_file(plain, tmp, what)
        os.replace(tmp, out)
        return out

    def _pool_path(self, entry: IndexEntry, suffix: str) -> Path:
        algo, digest = entry.strongest()
        return self._dir("by-hash") / f"{algo}-{digest}{suffix}"

    def _keep_release(
        self, source: SourceSpec, arch: str, name: str, raw: bytes, signature: bytes
    ) -> None:
        """The last verified Release per source and arch: what the cached indices came from."""
        directory = self._dir(f"release/{source.id}/{arch}")
        (directory / name).write_bytes(raw)
        if signature:
            (directory / "Release.gpg").write_bytes(signature)

    def _dir(self, name: str) -> Path:
        """A directory under the cache; ``partial/PID`` keeps concurrent builds apart."""
        path = self.cache_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _trust_hint(source: SourceSpec, keys: SourceKeys) -> str:
    return (
        f"source {source.id} must be signed by one of: {', '.join(keys.trusted)}; if the "
        f"repository really changed keys, check the new key and pass --key {source.id}=FILE"
    )


_VERIFIED_SUFFIX = ".verified"


def _stamp(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _checked(entry: IndexEntry, path: Path, what: str) -> None:
    """check_file, once per file: a verified file is not hashed again while unchanged.

    The same trust apt gives its lists once verified: the cache is the builder's own
    directory. A stamp (size, mtime, inode) and the Release's hashes are kept beside the
    file; a file that changed in any of these is hashed again.
    """
    stamp_file = path.with_name(path.name + _VERIFIED_SUFFIX)
    expected = {"stamp": _stamp(path), "hashes": dict(sorted(entry.hashes.items()))}
    try:
        if json.loads(stamp_file.read_text()) == expected:
            return
    except (OSError, ValueError):
        pass
    check_file(entry, path, what)
    with contextlib.suppress(OSError):  # a stamp not written only costs the next run a rehash
        stamp_file.write_text(json.dumps(expected))


def _matches(entry: IndexEntry, path: Path) -> bool:
    try:
        _checked(entry, path, str(path))
    except VerificationError:
        return False
    return True


@contextmanager
def _reachable(source: SourceSpec, arch: str) -> Iterator[None]:
    """Re-raise a download failure naming the source and the two options that route around it."""
    try:
        yield
    except VerificationError:
        raise
    except GpubundleError as exc:
        if exc.message.startswith("source "):
            raise
        base = (
            "check the network and HTTP_PROXY/HTTPS_PROXY/NO_PROXY"
            if exc.hint == NETWORK_HINT
            else exc.hint
        )
        raise GpubundleError(
            f"source {source.id} ({source.url_for(arch)}): {exc.message}",
            hint=f"{base}; where this machine reaches {source.id} through an internal mirror, "
            f"pass --mirror {source.id}=URL (and --key {source.id}=FILE if the mirror re-signs "
            "the repository with its own key)",
            details=exc.details,
        ) from exc


@contextmanager
def _explained(source: SourceSpec, keys: SourceKeys) -> Iterator[None]:
    """Re-raise a signature failure naming the source and the keys it must be signed by."""
    try:
        yield
    except VerificationError as exc:
        raise VerificationError(
            exc.message, hint=_trust_hint(source, keys), details=exc.details
        ) from exc
