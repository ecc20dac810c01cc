"""Signature checks with gpgv, the verifier apt itself uses (present on every Debian/Ubuntu host).

gpgv needs no GnuPG home and never consults a trust database: it accepts
exactly the keys in the keyring we pass. We still read the ``VALIDSIG`` status
line and insist that the primary-key fingerprint is one the caller trusts, so
a keyring that holds extra keys cannot widen trust.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import VerificationError
from installer.runner import run

_ARMOR_BLOCK = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?P<body>.*?)-----END PGP PUBLIC KEY BLOCK-----",
    re.DOTALL,
)
_BAD_STATUS = ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "EXPSIG")


def normalize_fingerprint(value: str) -> str:
    """Upper-case hex without spaces; raises ValueError for anything but a 40-hex v4 fingerprint."""
    fpr = value.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not re.fullmatch(r"[0-9A-F]{40}", fpr):
        raise ValueError(f"not a full 40-hex-digit key fingerprint: {value!r}")
    return fpr


def dearmor(key_bytes: bytes) -> bytes:
    """Binary OpenPGP packets from an armoured (or already binary) public key file."""
    blocks = list(_ARMOR_BLOCK.finditer(key_bytes))
    if not blocks:
        return key_bytes
    out = bytearray()
    for block in blocks:
        body = block.group("body").replace(b"\r", b"")
        # Armor headers end at the first empty line; the CRC line starts with '='.
        if b"\n\n" in body:
            body = body.split(b"\n\n", 1)[1]
        data = b"".join(line for line in body.split(b"\n") if line and not line.startswith(b"="))
        out += base64.b64decode(data)
    return bytes(out)


@dataclass(frozen=True)
class SignatureResult:
    signing_fingerprint: str  # the (sub)key that made the signature
    primary_fingerprint: str  # its primary key: what trust is decided on
    timestamp: int
    signed_data: bytes  # for clear-signed input, the content that the signature covers


def _status_lines(stdout: bytes) -> list[list[str]]:
    return [
        line.split()[1:]
        for line in stdout.decode(errors="replace").splitlines()
        if line.startswith("[GNUPG:] ")
    ]


def _verify(
    args: list[str],
    keys: Iterable[bytes],
    trusted: Iterable[str],
    what: str,
    workdir: Path,
    *,
    expect_output: bool,
) -> tuple[SignatureResult, Path]:
    trusted_set = {normalize_fingerprint(f) for f in trusted}
    keyring = workdir / "keyring.gpg"
    keyring.write_bytes(b"".join(dearmor(k) for k in keys))
    output = workdir / "signed-data"
    argv = [
        "gpgv",
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
    proc = run(argv, check=False, hint="gpgv comes with the gpgv package, which apt depends on")
    statuses = _status_lines(proc.stdout)
    # Like apt: a document may carry several signatures (Debian's Release does);
    # one good signature by a trusted key suffices, a BADSIG anywhere is tampering,
    # and co-signatures by keys we do not hold (NO_PUBKEY/ERRSIG) are ignored.
    bad = [" ".join(s) for s in statuses if s and s[0] == "BADSIG"]
    valid = [s for s in statuses if s and s[0] == "VALIDSIG" and len(s) >= 11]
    trusted_valid = [s for s in valid if s[10] in trusted_set or s[1] in trusted_set]
    if bad or not valid or (expect_output and not output.exists()):
        details = [" ".join(s) for s in statuses if s and s[0] in _BAD_STATUS] or [
            line for line in proc.stderr.decode(errors="replace").splitlines() if line
        ]
        raise VerificationError(
            f"{what}: signature is missing, bad, or not made by a trusted key",
            hint="the file was altered or signed by another key; fetch it again, or trust the "
            "right key if the source was re-signed",
            details=(bad or details)[-10:],
        )
    if not trusted_valid:
        raise VerificationError(
            f"{what}: signed by key {valid[0][10]}, which is not trusted",
            hint="trusted keys: " + (", ".join(sorted(trusted_set)) or "none"),
        )
    fields = trusted_valid[0]
    result = SignatureResult(
        signing_fingerprint=fields[1],
        primary_fingerprint=fields[10],
        timestamp=int(fields[3]),
        signed_data=b"",
    )
    return result, output


def verify_detached(
    data_path: Path, sig_path: Path, keys: Iterable[bytes], trusted: Iterable[str], what: str
) -> SignatureResult:
    """Check ``sig_path`` over ``data_path`` against ``keys``, accepting only ``trusted`` primaries."""
    with tempfile.TemporaryDirectory(prefix="gpubundle-gpgv-") as tmp:
        result, _ = _verify(
            [str(sig_path), str(data_path)], keys, trusted, what, Path(tmp), expect_output=False
        )
    return result


def verify_clearsigned(
    signed: bytes, keys: Iterable[bytes], trusted: Iterable[str], what: str
) -> SignatureResult:
    """Check a clear-signed document (InRelease) and return the exact content it covers."""
    with tempfile.TemporaryDirectory(prefix="gpubundle-gpgv-") as tmp:
        doc = Path(tmp) / "document.asc"
        doc.write_bytes(signed)
        result, output = _verify([str(doc)], keys, trusted, what, Path(tmp), expect_output=True)
        content = output.read_bytes()
    return SignatureResult(
        result.signing_fingerprint, result.primary_fingerprint, result.timestamp, content
    )


def primary_fingerprints(key_bytes: bytes) -> list[str]:
    """v4 fingerprints of the primary keys in an armoured or binary public key file."""
    data = dearmor(key_bytes)
    found, pos = [], 0
    while pos < len(data) and data[pos] & 0x80:
        first = data[pos]
        if first & 0x40:  # new packet format
            tag, length, pos = first & 0x3F, data[pos + 1], pos + 2
            if 192 <= length < 224:
                length, pos = ((length - 192) << 8) + data[pos] + 192, pos + 1
            elif length == 255:
                length, pos = int.from_bytes(data[pos : pos + 4], "big"), pos + 4
            elif length > 223:
                break  # partial lengths never occur in key files
        else:  # old packet format
            tag, width = (first >> 2) & 0x0F, (1, 2, 4, 0)[first & 0x03]
            if not width:
                break
            length = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
            pos += 1 + width
        body = data[pos : pos + length]
        pos += length
        if tag == 6 and body[:1] == b"\x04":
            packet = b"\x99" + len(body).to_bytes(2, "big") + body
            found.append(hashlib.sha1(packet, usedforsecurity=False).hexdigest().upper())
    return found


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
