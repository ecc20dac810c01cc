"""The one error type the CLI knows how to report, and the exit codes it maps to.

Every failure the user can act on is raised as a ``GpubundleError`` whose
``hint`` says what to do next. The CLI (and only the CLI) turns it into an
exit code and, with ``--json``, into data.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class ExitCode(enum.IntEnum):
    """Process exit codes; stable, documented in README.md."""

    OK = 0
    FAILURE = 1  # an operation failed; the message says which and why
    USAGE = 2  # bad command line (click's own code too)
    VERIFICATION = 3  # the bundle failed signature or integrity checks; host untouched
    PREFLIGHT = 4  # the host does not meet the bundle's requirements; host untouched
    RESOLUTION = 5  # the requested packages cannot be satisfied from the sources
    LOCKED = 6  # another gpubundle run holds the lock
    INTERRUPTED = 130


@dataclass
class GpubundleError(Exception):
    """A failure with a message, what to do about it, and evidence.

    ``details`` holds lines of evidence (expected vs got, a tool's output);
    they are printed under the message and carried in the JSON form.
    """

    message: str
    hint: str = ""
    details: Sequence[str] = field(default_factory=tuple)
    code: ExitCode = ExitCode.FAILURE

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        lines.extend(f"  {line}" for line in self.details)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "details": list(self.details),
            "exit_code": int(self.code),
        }


class VerificationError(GpubundleError):
    """Signature, checksum or archive-safety failure. Nothing was changed."""

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message, hint, tuple(details), ExitCode.VERIFICATION)


class PreflightError(GpubundleError):
    """The host is not fit for this bundle. Nothing was changed."""

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message, hint, tuple(details), ExitCode.PREFLIGHT)


class ResolutionError(GpubundleError):
    """The dependency closure cannot be satisfied; details hold the broken chain."""

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message, hint, tuple(details), ExitCode.RESOLUTION)


class LockedError(GpubundleError):
    """Another gpubundle process holds the host lock."""

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message, hint, tuple(details), ExitCode.LOCKED)
