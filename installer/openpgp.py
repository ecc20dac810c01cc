"""Signature checks with gpgv, the verifier apt itself uses (present on every Debian/Ubuntu host).

gpgv needs no GnuPG home and never consults a trust database: it accepts
exactly the keys in the keyring we pass. We read its status lines per
signature and insist, as apt does, on ``GOODSIG`` (the key was valid: not
expired, not revoked, not from the future) together with ``VALIDSIG`` naming
a primary-key fingerprint the caller trusts, so a keyring that holds extra
keys cannot widen trust. gpgv also says ``VALIDSIG`` for a good signature by
an expired or revoked key (with ``EXPKEYSIG``/``REVKEYSIG``); such a
signature is refused, saying which and what to do.

The key parsing here (packets, fingerprints, merging two copies of one key)
is pure: it is how an updated key from the operator (an extended expiry, a
revocation) is combined with the copy a bundle carries before gpgv sees it.
"""

from __future__ import annotations

import base64
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from installer import carried
from installer.compat import checksum
from installer.errors import GpubundleError, VerificationError
from installer.runner import run

_ARMOR_BLOCK = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?P<body>.*?)-----END PGP PUBLIC KEY BLOCK-----",
    re.DOTALL,
)
_VERDICTS = ("GOODSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "ERRSIG")
_BAD_STATUS = ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "EXPSIG", "KEYEXPIRED",
               "KEYREVOKED")  # fmt: skip
# gpgv's words when it cannot write its --output file (a full or read-only TMPDIR).
_WRITE_FAILURES = ("No space left on device", "error writing", "error closing", "handle plaintext")
_PUBLIC_KEY, _SIGNATURE, _USER_ID, _PUBLIC_SUBKEY, _USER_ATTRIBUTE = 6, 2, 13, 14, 17


def normalize_fingerprint(value: str) -> str:
    """Upper-case hex without spaces; raises ValueError for anything but a 40-hex v4 fingerprint."""
    fpr = value.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not re.fullmatch(r"[0-9A-F]{40}", fpr):
        raise ValueError(f"not a full 40-hex-digit key fingerprint: {value!r}")
    return fpr


def dearmor(key_bytes: bytes) -> bytes:
    """Binary OpenPGP packets from an armoured (or already binary) public key file.

    Raises ValueError (binascii.Error) when an armoured block is not base64.
    """
    blocks = list(_ARMOR_BLOCK.finditer(key_bytes))
    if not blocks:
        return key_bytes
    out = bytearray()
    for block in blocks:
        body = block.group("body").replace(b"\r", b"")
        # Armor headers end at the first empty line; the CRC line starts with '='.
        if b"\n\n" in body:
            body = body.split(b"\n\n", 1)[1]
        lines = (line.strip() for line in body.split(b"\n"))
        data = b"".join(line for line in lines if line and not line.startswith(b"="))
        out += base64.b64decode(data, validate=True)
    return bytes(out)


# --- keys as packets (RFC 4880 section 4 and 11.1) ---------------------------------


@dataclass(frozen=True)
class Packet:
    tag: int
    body: bytes
    raw: bytes  # header and body, as read


def packets(data: bytes) -> list[Packet]:
    """The packets of binary OpenPGP data; ValueError for anything that is not packets."""
    found, pos = [], 0
    while pos < len(data):
        start, first = pos, data[pos]
        if not first & 0x80:
            raise ValueError(f"byte {pos} is not the start of an OpenPGP packet")
        if first & 0x40:  # new packet format
            tag, head = first & 0x3F, data[pos + 1 : pos + 6]
            if not head:
                raise ValueError(f"packet at byte {pos} has no length")
            if head[0] < 192:
                length, pos = head[0], pos + 2
            elif head[0] < 224 and len(head) >= 2:
                length, pos = ((head[0] - 192) << 8) + head[1] + 192, pos + 3
            elif head[0] == 255 and len(head) == 5:
                length, pos = int.from_bytes(head[1:5], "big"), pos + 6
            else:  # partial lengths never occur in key files
                raise ValueError(f"packet at byte {pos} has a length key files never use")
        else:  # old packet format
            tag, width = (first >> 2) & 0x0F, (1, 2, 4, 0)[first & 0x03]
            if not width or pos + 1 + width > len(data):
                raise ValueError(f"packet at byte {pos} has no definite length")
            length = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
            pos += 1 + width
        if pos + length > len(data):
            raise ValueError(f"packet at byte {start} ends after the data")
        found.append(Packet(tag, data[pos : pos + length], data[start : pos + length]))
        pos += length
    return found


def _v4_fingerprint(key_body: bytes) -> str:
    """The v4 fingerprint of a key packet body; "" for other versions."""
    if key_body[:1] != b"\x04":
        return ""
    packet = b"\x99" + len(key_body).to_bytes(2, "big") + key_body
    return checksum("sha1", packet).hexdigest().upper()


def _created(key_body: bytes) -> int:
    return int.from_bytes(key_body[1:5], "big")


@dataclass(frozen=True)
class KeyBlock:
    """One transferable public key: its primary key packet and everything after it."""

    fingerprint: str  # of the primary key; "" when it is not a v4 key
    packets: tuple[Packet, ...]

    def to_bytes(self) -> bytes:
        return b"".join(p.raw for p in self.packets)

    def key_times(self) -> dict[str, int]:
        """Creation time of the primary key and every subkey, by fingerprint."""
        return {
            _v4_fingerprint(p.body): _created(p.body)
            for p in self.packets
            if p.tag in (_PUBLIC_KEY, _PUBLIC_SUBKEY) and _v4_fingerprint(p.body)
        }


def key_blocks(key_bytes: bytes) -> list[KeyBlock]:
    """The public keys in an armoured or binary key file, in file order.

    Raises ValueError when the data is not OpenPGP packets. Packets before the
    first public key (there are none in a key file) are ignored.
    """
    blocks: list[list[Packet]] = []
    for packet in packets(dearmor(key_bytes)):
        if packet.tag == _PUBLIC_KEY:
            blocks.append([packet])
        elif blocks and packet.tag != 12:  # trust packets are a keyring's private notes
            blocks[-1].append(packet)
    return [KeyBlock(_v4_fingerprint(b[0].body), tuple(b)) for b in blocks]


def _subpackets(area: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, data) of each signature subpacket in ``area`` (RFC 4880 5.2.3.1)."""
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255 and pos + 1 < len(area):
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        elif first == 255 and pos + 5 <= len(area):
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        else:
            raise ValueError("a signature subpacket length ends after its signature")
        if not length or pos + length > len(area):
            raise ValueError("a signature subpacket ends after its signature")
        yield area[pos] & 0x7F, area[pos + 1 : pos + length]
        pos += length


def revocation_issuer(packet: Packet) -> str:
    """For a v4 key revocation signature: its issuer's fingerprint, else its 16-hex key id.

    "" for any other packet. A revocation certificate (gpg's ``openpgp-revocs.d/FPR.rev``)
    is this one packet; whether it is genuine is for gpgv to judge, with the key.
    """
    body = packet.body
    if packet.tag != _SIGNATURE or body[:2] != b"\x04\x20" or len(body) < 6:
        return ""
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    unhashed_len = int.from_bytes(body[hashed_end : hashed_end + 2], "big")
    areas = body[6:hashed_end], body[hashed_end + 2 : hashed_end + 2 + unhashed_len]
    try:
        found = {kind: data for area in areas for kind, data in _subpackets(area)}
    except ValueError:
        return ""  # not a well-formed signature: not a revocation gpgv could accept
    if len(found.get(33, b"")) == 21 and found[33][0] == 4:  # issuer fingerprint, v4
        return found[33][1:].hex().upper()
    return found[16].hex().upper() if len(found.get(16, b"")) == 8 else ""  # issuer key id


def revocations(key_bytes: bytes) -> list[Packet]:
    """The key revocation signatures that stand alone in a file (revocation certificates)."""
    loose = []
    for packet in packets(dearmor(key_bytes)):
        if packet.tag == _PUBLIC_KEY:
            break
        if revocation_issuer(packet):
            loose.append(packet)
    return loose


def with_revocations(block: KeyBlock, certificates: Iterable[Packet]) -> KeyBlock:
    """``block`` with the revocation certificates issued by its primary key attached to it."""
    mine = [
        c
        for c in certificates
        if revocation_issuer(c) in (block.fingerprint, block.fingerprint[-16:])
    ]
    if not mine or not block.fingerprint:
        return block
    return merge_keys(block, KeyBlock(block.fingerprint, (block.packets[0], *mine)))


def primary_fingerprints(key_bytes: bytes) -> list[str]:
    """v4 fingerprints of the primary keys in an armoured or binary public key file.

    Data that is not a key file gives none.
    """
    try:
        return [b.fingerprint for b in key_blocks(key_bytes) if b.fingerprint]
    except ValueError:
        return []


def merge_keys(first: KeyBlock, *others: KeyBlock) -> KeyBlock:
    """One key holding every user ID, subkey and signature of several copies of it.

    What ``gpg --import`` of each copy into one keyring does: nothing is dropped,
    so a revocation in any copy stays, and the newest valid self-signature (an
    extended expiry) wins when gpgv reads the key. Signatures need no checking
    here: gpgv checks every self-signature with the key itself, so a copy can
    add nothing that the key's owner did not sign.
    """
    components: dict[tuple[int, bytes], list[Packet]] = {}
    order: list[tuple[int, bytes]] = []
    for block in (first, *others):
        if block.packets[0].body != first.packets[0].body:
            raise ValueError(f"cannot merge key {block.fingerprint} into {first.fingerprint}")
        current: tuple[int, bytes] | None = None
        for packet in block.packets:
            if packet.tag == _SIGNATURE and current is not None:
                sigs = components[current]
                if all(s.body != packet.body for s in sigs[1:]):
                    sigs.append(packet)
                continue
            current = (packet.tag, packet.body)
            if current not in components:
                components[current] = [packet]
                order.append(current)
    primary = [k for k in order if k[0] == _PUBLIC_KEY]
    ids = [k for k in order if k[0] in (_USER_ID, _USER_ATTRIBUTE)]
    subkeys = [k for k in order if k[0] == _PUBLIC_SUBKEY]
    rest = [k for k in order if k not in (*primary, *ids, *subkeys)]
    merged = [p for k in (*primary, *ids, *subkeys, *rest) for p in components[k]]
    return KeyBlock(first.fingerprint, tuple(merged))


def armor(data: bytes) -> bytes:
    """RFC 4880 ASCII armour (with its CRC-24) of binary public key packets."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    body = base64.b64encode(data).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big")).decode()
    text = "\n".join(
        ["-----BEGIN PGP PUBLIC KEY BLOCK-----", "", *lines, "=" + checksum,
         "-----END PGP PUBLIC KEY BLOCK-----", ""]
    )  # fmt: skip
    return text.encode()


# --- scratch space -------------------------------------------------------------------


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private temporary directory; one that cannot be made is said as such.

    Write into it with ``write_scratch``, so that a full or unwritable TMPDIR is
    reported as the temporary directory's problem, never as a bad signature.
    """
    try:
        tmp = tempfile.mkdtemp(prefix=prefix)
    except OSError as exc:  # also Python's "No usable temporary directory found"
        where = tempfile.tempdir or os.environ.get("TMPDIR") or "/tmp"
        raise _scratch_failure(where, exc) from exc
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_scratch(path: Path, data: bytes) -> None:
    """Write a scratch file; OSError becomes the error that names the temporary directory."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _scratch_failure(str(path.parent.parent), exc) from exc


def _scratch_failure(base: str, exc: OSError) -> GpubundleError:
    return scratch_error(base, exc.strerror or str(exc), exc.errno == errno.ENOSPC)


def scratch_error(
    base: str, reason: str, no_space: bool, details: Iterable[str] = ()
) -> GpubundleError:
    """The error for a temporary directory that cannot hold the signature check's files."""
    what = f"no space left in {base}" if no_space else f"cannot write in {base} ({reason})"
    return GpubundleError(
        f"{what} for the signature check's temporary files; the signature itself was not judged",
        hint=f"free some space in {base}, or set TMPDIR to a directory with a few MB free "
        "(e.g. TMPDIR=/var/tmp) and run the same command again",
        details=tuple(details),
    )


# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyAdvice:
    """What the user does about a signing key that is expired, revoked or not valid yet."""

    resign: str  # how to get it signed again with a valid key
    update: str  # where a public key with an extended expiry goes
    replace: str  # how to move to a new key when this one is revoked

    def for_key(self, fingerprint: str) -> KeyAdvice:
        """The advice with the placeholder FPR replaced by ``fingerprint``."""
        return KeyAdvice(*(re.sub(r"\bFPR\b", fingerprint, text) for text in
                           (self.resign, self.update, self.replace)))  # fmt: skip


GENERIC_ADVICE = KeyAdvice(
    resign="its signer must sign it again with a valid key",
    update="use the key owner's updated public key (with the extended expiry) in place of this one",
    replace="its signer must sign it again with a new key, and that key must be trusted instead",
)


@dataclass(frozen=True)
class SignatureResult:
    signing_fingerprint: str  # the (sub)key that made the signature
    primary_fingerprint: str  # its primary key: what trust is decided on
    timestamp: int
    signed_data: bytes  # for clear-signed input, the content that the signature covers


@dataclass
class _Said:
    """What gpgv said about one signature (the status lines from one NEWSIG on)."""

    verdict: list[str] = field(default_factory=list)  # GOODSIG, EXPKEYSIG, … and its fields
    valid: list[str] = field(default_factory=list)  # VALIDSIG fields
    key_expired: list[int] = field(default_factory=list)  # KEYEXPIRED times

    @property
    def kind(self) -> str:
        return self.verdict[0] if self.verdict else ""

    def primary(self) -> str:
        return self.valid[10] if len(self.valid) >= 11 else ""


def _status_lines(stdout: bytes) -> list[list[str]]:
    return [
        line.split()[1:]
        for line in stdout.decode(errors="replace").splitlines()
        if line.startswith("[GNUPG:] ") and len(line.split()) > 1
    ]


def _per_signature(statuses: list[list[str]]) -> list[_Said]:
    said: list[_Said] = []
    for status in statuses:
        if status[0] == "NEWSIG" or not said:
            said.append(_Said())
            if status[0] == "NEWSIG":
                continue
        if status[0] in _VERDICTS:
            said[-1].verdict = status
        elif status[0] == "VALIDSIG" and len(status) >= 11:
            said[-1].valid = status
        elif status[0] == "KEYEXPIRED" and len(status) > 1 and status[1].isdigit():
            said[-1].key_expired.append(int(status[1]))
    return said


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _refuse_unusable_key(sig: _Said, what: str, advice: KeyAdvice, evidence: list[str]) -> None:
    """Refuse a good signature by a trusted key that is revoked or expired, or that expired."""
    fpr, made = sig.primary(), int(sig.valid[3])
    advice = advice.for_key(fpr)
    if sig.kind == "REVKEYSIG":
        raise VerificationError(
            f"{what}: the signing key {fpr} has been revoked by its owner",
            hint=f"a revoked key is never accepted again: {advice.replace}",
            details=evidence,
        )
    if sig.kind == "EXPSIG":
        raise VerificationError(
            f"{what}: the signature (made {_when(made)}) has expired",
            hint=advice.resign,
            details=evidence,
        )
    expired = min(sig.key_expired) if sig.key_expired else 0
    if expired and made > expired:
        raise VerificationError(
            f"{what}: the signature was made {_when(made)}, after the signing key {fpr} "
            f"expired on {_when(expired)}",
            hint=f"a signature made by an expired key is not accepted: {advice.resign}",
            details=evidence,
        )
    on = f" on {_when(expired)}" if expired else ""
    raise VerificationError(
        f"{what}: the signing key {fpr} expired{on} (the signature was made {_when(made)})",
        hint=f"{advice.resign}; or extend the key's expiry where its secret key is "
        f"(gpg --quick-set-expire {fpr} 1y) and {advice.update}",
        details=evidence,
    )


def _refuse_time_conflict(
    sig: _Said, keys: list[KeyBlock], trusted: set[str], what: str, advice: KeyAdvice
) -> None:
    """gpgv's ERRSIG for a trusted key from the future, or a signature older than its key."""
    fields = sig.verdict
    made = int(fields[5]) if len(fields) > 5 and fields[5].isdigit() else 0
    signer = fields[7] if len(fields) > 7 else ""
    keyid = fields[1] if len(fields) > 1 else ""
    for block in keys:
        times = block.key_times()
        matches = [f for f in times if f == signer or (not signer and f.endswith(keyid))]
        if not matches or not ({block.fingerprint, *matches} & trusted):
            continue
        created, now = times[matches[0]], int(time.time())
        if created > now:
            raise VerificationError(
                f"{what}: the signing key {block.fingerprint} is not valid yet: it was created "
                f"{_when(created)}, later than this host's clock ({_when(now)})",
                hint="check this host's clock (date -u) and set it right, then run this again; "
                f"or {advice.resign}",
                details=[" ".join(fields)],
            )
        if made and created > made:
            raise VerificationError(
                f"{what}: the signature ({_when(made)}) is older than the key {block.fingerprint} "
                f"that made it (created {_when(created)})",
                hint=advice.resign,
                details=[" ".join(fields)],
            )


def _verify(
    args: list[str],
    keys: Iterable[bytes],
    trusted: Iterable[str],
    what: str,
    workdir: Path,
    *,
    expect_output: bool,
    advice: KeyAdvice,
) -> tuple[SignatureResult, Path]:
    trusted_set = {normalize_fingerprint(f) for f in trusted}
    key_list = list(keys)
    keyring = workdir / "keyring.gpg"
    try:
        material = b"".join(dearmor(k) for k in key_list)
    except ValueError as exc:  # base64 that is not: the key material is damaged
        raise VerificationError(
            f"{what}: the signer's key that comes with it is not readable: {exc}",
            hint="the file was altered or damaged; copy it again from where it was made",
        ) from exc
    write_scratch(keyring, material)
    output = workdir / "signed-data"
    program, program_env = carried.gpgv()  # the host's gpgv, else the one the installer carried
    argv = [
        program,
        "--homedir",
        str(workdir),
        "--status-fd",
        "1",
        "--keyring",
        str(keyring),
        "--output",
        str(output),
        *args,
    ]
    proc = run(
        argv,
        env=program_env,
        check=False,
        hint="gpgv comes with the gpgv package; on a host without it (Debian 13 has sqv), "
        "run the installer as `sh gpubundle-installer.pyz …`: it carries gpgv",
    )
    stderr = [line for line in proc.stderr.decode(errors="replace").splitlines() if line]
    if expect_output and any(w in line for line in stderr for w in _WRITE_FAILURES):
        raise scratch_error(
            str(workdir.parent),
            "gpgv could not write its output",
            any("No space left" in line for line in stderr),
            stderr[-5:],
        )
    statuses = _status_lines(proc.stdout)
    said = _per_signature(statuses)
    evidence = [" ".join(s) for s in statuses if s[0] in _BAD_STATUS] or stderr
    # Like apt: a document may carry several signatures (Debian's Release does); one
    # good signature by a valid, trusted key suffices, a BADSIG anywhere is tampering,
    # and co-signatures by keys we do not hold (NO_PUBKEY/ERRSIG) are ignored.
    bad = [" ".join(s.verdict) for s in said if s.kind == "BADSIG"]
    good = [
        s
        for s in said
        if s.kind == "GOODSIG" and s.valid and {s.valid[1], s.primary()} & trusted_set
    ]
    if not bad and good and (not expect_output or output.exists()):
        fields = good[0].valid
        result = SignatureResult(fields[1], fields[10], int(fields[3]), b"")
        return result, output
    if not bad:
        for sig in said:
            unusable = sig.kind in ("EXPKEYSIG", "REVKEYSIG", "EXPSIG")
            if unusable and sig.valid and {sig.valid[1], sig.primary()} & trusted_set:
                _refuse_unusable_key(sig, what, advice, evidence[-10:])
        parsed = _parsed_keys(key_list)
        for sig in said:
            if sig.kind == "ERRSIG":
                _refuse_time_conflict(sig, parsed, trusted_set, what, advice)
        untrusted = [s for s in said if s.valid]
        if untrusted:
            raise VerificationError(
                f"{what}: signed by key {untrusted[0].primary()}, which is not trusted",
                hint="trusted keys: " + (", ".join(sorted(trusted_set)) or "none"),
            )
    raise VerificationError(
        f"{what}: signature is missing, bad, or not made by a trusted key",
        hint="the file was altered or signed by another key; fetch it again, or trust the "
        "right key if the source was re-signed",
        details=(bad or evidence)[-10:],
    )


def _parsed_keys(key_list: list[bytes]) -> list[KeyBlock]:
    """The keys of the material that parses; gpgv was given all of it."""
    blocks: list[KeyBlock] = []
    for material in key_list:
        try:
            blocks.extend(key_blocks(material))
        except ValueError:
            continue
    return blocks


def verify_detached(
    data_path: Path,
    sig_path: Path,
    keys: Iterable[bytes],
    trusted: Iterable[str],
    what: str,
    advice: KeyAdvice = GENERIC_ADVICE,
) -> SignatureResult:
    """Check ``sig_path`` over ``data_path`` against ``keys``, accepting only ``trusted`` primaries."""
    with scratch_dir("gpubundle-gpgv-") as tmp:
        args = [str(sig_path), str(data_path)]
        result, _ = _verify(args, keys, trusted, what, tmp, expect_output=False, advice=advice)
    return result


def verify_detached_bytes(
    data: bytes,
    signature: bytes,
    keys: Iterable[bytes],
    trusted: Iterable[str],
    what: str,
    advice: KeyAdvice = GENERIC_ADVICE,
) -> SignatureResult:
    """``verify_detached`` for data and signature held in memory (a bundle's head, an index)."""
    with scratch_dir("gpubundle-gpgv-") as tmp:
        data_path, sig_path = tmp / "data", tmp / "data.asc"
        write_scratch(data_path, data)
        write_scratch(sig_path, signature)
        return verify_detached(data_path, sig_path, keys, trusted, what, advice)


def verify_clearsigned(
    signed: bytes,
    keys: Iterable[bytes],
    trusted: Iterable[str],
    what: str,
    advice: KeyAdvice = GENERIC_ADVICE,
) -> SignatureResult:
    """Check a clear-signed document (InRelease) and return the exact content it covers."""
    with scratch_dir("gpubundle-gpgv-") as tmp:
        doc = tmp / "document.asc"
        write_scratch(doc, signed)
        result, output = _verify(
            [str(doc)], keys, trusted, what, tmp, expect_output=True, advice=advice
        )
        content = output.read_bytes()
    return SignatureResult(
        result.signing_fingerprint, result.primary_fingerprint, result.timestamp, content
    )
