"""The keys this host trusts: fingerprints named with ``--trust`` and the key files in trusted.d.

``load_trust`` reads ``/etc/gpubundle/trusted.d`` (``*.asc``, ``*.gpg``, ``*.pgp``,
and gpg's revocation certificates ``*.rev``) one file at a time. A file that cannot be read (permissions, a directory or a
FIFO by that name, a dangling symbolic link) or that holds no OpenPGP public
key is named in a warning and skipped: one bad file must not stop an install
whose signer is trusted with ``--trust`` or by another file. Skipping never
widens trust; a key in a skipped file is simply not trusted.

A key file in trusted.d is key material as well as trust: when it holds the
signer's key, that copy, merged with any other copy of the same key
(``installer.openpgp.merge_keys``), is what gpgv checks the signature with and
what apt gets as the local repository's keyring. So a revocation or an
extended expiry placed there is honoured, even though the bundle carries the
older copy of the key. A revocation certificate there is attached to the key it
names (by issuer fingerprint or key id) the same way; it never makes a key trusted.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, overload  # typing.Sequence: a base class on 3.8

from installer import layout
from installer.errors import ExitCode, GpubundleError
from installer.filekind import file_kind
from installer.openpgp import (
    KeyAdvice,
    KeyBlock,
    Packet,
    armor,
    key_blocks,
    merge_keys,
    normalize_fingerprint,
    revocation_issuer,
    revocations,
    with_revocations,
)

KEY_SUFFIXES = (".asc", ".gpg", ".pgp", ".rev")  # .rev: gpg's revocation certificates
MAX_KEY_FILE_BYTES = 16 << 20  # a key with every signature Debian's keyring holds is far smaller

# What the user does about a bundle signed by a key that is expired, revoked or not valid yet.
BUNDLE_KEY_ADVICE = KeyAdvice(
    resign="re-sign the bundle with a valid key (run gpubundle build again on the build "
    "machine with --sign-key naming a valid key)",
    update="copy the exported public key (gpg --armor --export FPR > signer.asc there) into "
    f"{layout.TRUST_DIR}/ on this host (a plain file copy), then run this again",
    replace="build the bundle again signed by a new key (gpubundle build --sign-key NEWFPR) "
    "and pass --trust NEWFPR here",
)


@dataclass(frozen=True)
class Trust(Sequence[str]):
    """Trusted primary-key fingerprints (a sequence of them) and the key copies trusted.d holds."""

    fingerprints: tuple[str, ...] = ()
    keys: Mapping[str, KeyBlock] = field(default_factory=dict)  # from trusted.d, by fingerprint
    warnings: tuple[str, ...] = ()  # trusted.d files skipped, each named with why
    revoked: tuple[Packet, ...] = ()  # revocation certificates in trusted.d, for any key

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.fingerprints[index]

    def __len__(self) -> int:
        return len(self.fingerprints)

    def restricted_to(self, fingerprint: str) -> Trust:
        """Only ``fingerprint`` trusted, with its trusted.d copy if there is one."""
        keys = {fpr: block for fpr, block in self.keys.items() if fpr == fingerprint}
        return Trust((fingerprint,), keys, self.warnings, self.revoked)

    def keyring(self, carried: Iterable[bytes]) -> list[bytes]:
        """Key material for gpgv: one key per fingerprint, trusted.d's copy merged with the rest.

        ``carried`` is key material that came with the signed file (a bundle's
        ``keys/signer.asc``, an index's ``signer_key``). gpgv uses the first key it
        finds with a fingerprint, so two separate copies of one key would let the
        carried copy hide a revocation in trusted.d: copies are merged instead.
        Carried material that is not parseable is passed on as it is, for gpgv to judge.
        """
        merged: dict[str, KeyBlock] = dict(self.keys)
        opaque: list[bytes] = []
        for material in carried:
            try:
                blocks = key_blocks(material)
            except ValueError:
                opaque.append(material)
                continue
            for block in blocks:
                if not block.fingerprint:  # not a v4 key: gpgv judges it
                    opaque.append(block.to_bytes())
                    continue
                known = merged.get(block.fingerprint)
                merged[block.fingerprint] = merge_keys(known, block) if known else block
        keys = [with_revocations(block, self.revoked).to_bytes() for block in merged.values()]
        return keys + opaque

    def signer_key(self, fingerprint: str, carried: bytes) -> bytes:
        """The signer's key as gpgv checked it: what apt must get for the local repository.

        The carried copy unchanged when trusted.d has nothing for the key, else the
        merged key (with any revocation certificate for it), armoured.
        """
        if not self._updates(fingerprint):
            return carried
        trusted_copy = [self.keys[fingerprint]] if fingerprint in self.keys else []
        copies = [*trusted_copy, *_blocks_of(carried, fingerprint)]
        if not copies:
            return carried
        return armor(with_revocations(merge_keys(*copies), self.revoked).to_bytes())

    def _updates(self, fingerprint: str) -> bool:
        """Whether trusted.d holds a copy of this key or a revocation certificate for it."""
        issuers = {revocation_issuer(cert) for cert in self.revoked}
        return fingerprint in self.keys or bool({fingerprint, fingerprint[-16:]} & issuers)


def _blocks_of(material: bytes, fingerprint: str) -> list[KeyBlock]:
    try:
        return [b for b in key_blocks(material) if b.fingerprint == fingerprint]
    except ValueError:
        return []


def as_trust(trusted: Sequence[str]) -> Trust:
    """``trusted`` itself when it is a Trust; plain fingerprints otherwise (no trusted.d copies)."""
    return trusted if isinstance(trusted, Trust) else Trust(tuple(trusted))


def load_trust(cli_values: Sequence[str], trust_dir: Path | str) -> Trust:
    """Fingerprints named with ``--trust`` plus the keys of the files in ``trust_dir``.

    A bad ``--trust`` value is a usage error; a bad file in ``trust_dir`` is a warning.
    """
    found: list[str] = []
    for value in cli_values:
        try:
            found.append(normalize_fingerprint(value))
        except ValueError as exc:
            raise GpubundleError(
                f"--trust: {exc}",
                hint="pass the full 40-hex-digit fingerprint that gpubundle build printed",
                code=ExitCode.USAGE,
            ) from exc
    directory = Path(trust_dir)
    keys, revoked, warnings = read_trust_dir(directory)
    # A revocation certificate revokes; it never makes a key trusted.
    return Trust(tuple(dict.fromkeys([*found, *keys])), keys, tuple(warnings), tuple(revoked))


def read_trust_dir(directory: Path) -> tuple[dict[str, KeyBlock], list[Packet], list[str]]:
    """The keys in ``directory``'s key files (merged by fingerprint), the revocation
    certificates there, and a warning per file that was skipped."""
    keys: dict[str, KeyBlock] = {}
    revoked: list[Packet] = []
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return keys, revoked, []
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return keys, revoked, [f"{directory}: cannot be read ({reason}); no key in it is trusted"]
    warnings: list[str] = []
    for path in entries:
        if path.suffix not in KEY_SUFFIXES:
            continue
        try:
            blocks, certificates = read_key_file(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            warnings.append(f"{path}: skipped, {reason}; its keys are not trusted")
            continue
        revoked.extend(certificates)
        for block in blocks:
            known = keys.get(block.fingerprint)
            keys[block.fingerprint] = merge_keys(known, block) if known else block
    return keys, revoked, warnings


def read_key_file(path: Path) -> tuple[list[KeyBlock], list[Packet]]:
    """The v4 public keys and the revocation certificates in one key file.

    ValueError or OSError saying why there are none.
    """
    if path.is_symlink() and not path.exists():
        raise ValueError(f"a symbolic link to {os.readlink(path)}, which does not exist")
    # O_NONBLOCK: a FIFO by this name must not hang the run; it is refused below.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"not a regular file but {file_kind(mode)}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"larger than {MAX_KEY_FILE_BYTES} bytes, too large for a key file")
    try:
        blocks = [b for b in key_blocks(data) if b.fingerprint]
        certificates = revocations(data)
    except ValueError as exc:
        raise ValueError(f"not an OpenPGP public key file ({exc})") from exc
    if not blocks and not certificates:
        raise ValueError("holds no OpenPGP (v4) public key and no revocation certificate")
    return blocks, certificates


@contextmanager
def warnings_in_errors(warnings: Sequence[str]) -> Iterator[None]:
    """A GpubundleError raised in the block also lists the trusted.d warnings, as evidence.

    With ``--json`` the warnings are not printed, and a key file skipped is often
    why a signer is not trusted.
    """
    try:
        yield
    except GpubundleError as err:
        err.details = (*err.details, *(f"warning: {w}" for w in warnings))
        raise
