"""The sh preamble of ``gpubundle-installer.pyz`` and the signed runtime it carries.

The installer file is three things end to end: ``bundler/selfrun.sh`` with its fields
filled in, the signed runtime (the signer's public key, unarmoured; an armoured
detached signature; the uncompressed tar of the carried .debs, bundler/runtime.py),
then the zipapp. ``sh`` reads only the preamble, which ends in ``exit``; Python
finds the zip from its end, so ``python3 gpubundle-installer.pyz`` runs as before.
The fields are padded to a fixed width, so the preamble's length, and with it every
offset, is known before the offsets are written in.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from installer.openpgp import dearmor

TEMPLATE = "selfrun.sh"
FIELDS = ("GB_PYTHON", "GB_KEY_AT", "GB_KEY_SIZE", "GB_SIG_AT", "GB_SIG_SIZE", "GB_TAR_AT", "GB_TAR_SIZE")  # fmt: skip
_WIDTH = 40  # of each field line: "NAME=VALUE" and spaces


@dataclass(frozen=True)
class Runtime:
    """What the preamble carries: the interpreter version and the signed .deb tar."""

    python: str  # "3.11": the preamble runs usr/bin/python3.11 from the .debs
    signer_key: bytes  # armoured or binary; stored unarmoured (gpgv reads only that)
    signature: bytes  # detached, over ``tar``
    tar: bytes


def template() -> str:
    return resources.files("bundler").joinpath(TEMPLATE).read_text()


def _fields(values: dict[str, str]) -> str:
    lines = []
    for name in FIELDS:
        line = f"{name}={values[name]}"
        if len(line) > _WIDTH or not values[name].replace(".", "").isalnum():
            raise ValueError(f"preamble field {line!r} is not a short plain value")
        lines.append(line.ljust(_WIDTH))
    return "\n".join(lines)


def _render(values: dict[str, str]) -> bytes:
    return template().replace("@FIELDS@", _fields(values)).encode()


def preamble(runtime: Runtime | None) -> bytes:
    """The bytes before the zipapp: the filled-in sh preamble, then the signed runtime."""
    if runtime is None:
        return _render(dict.fromkeys(FIELDS, "0"))
    key = dearmor(runtime.signer_key)
    head = len(_render(dict.fromkeys(FIELDS, "0")))
    sizes = {"KEY": len(key), "SIG": len(runtime.signature), "TAR": len(runtime.tar)}
    values, at = {"GB_PYTHON": runtime.python}, head
    for part, size in sizes.items():
        values[f"GB_{part}_AT"], values[f"GB_{part}_SIZE"] = str(at), str(size)
        at += size
    text = _render(values)
    assert len(text) == head, "the preamble's fields are fixed-width"
    return text + key + runtime.signature + runtime.tar
