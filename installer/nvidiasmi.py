"""Which ``nvidia-smi`` a path really is: the driver's binary, a symlink, or a wrapper.

Seen on a real GPU host: ``/usr/bin/nvidia-smi`` was a shell script that execs the
driver's binary under ``/usr/local/nvidia/bin``. ``nvidia-ctk cdi generate`` mounts
the first ``nvidia-smi`` on PATH, so its CDI spec mounted the script, and inside the
container the script's target did not exist. This module reads such files (the
effects: ``inspect``, ``driver_binary``) and judges them (pure: ``parse_script``,
``judge_mounted``).

A bind mount follows the host's symlinks, so a mounted symlink shows its target:
a symlink is judged by what it resolves to, and fails only when that is missing or
is itself a script that cannot run in the container.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ELF_MAGIC = b"\x7fELF"
HEAD_BYTES = 64 * 1024
MAX_LINKS = 16
MAX_WRAPPERS = 4
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class SmiFile:
    """One ``nvidia-smi`` as found on the host."""

    path: str  # as named (on PATH, in a CDI spec)
    resolved: str  # after every symlink; "" when a link dangles
    links: tuple[str, ...] = ()  # the symlink hops, "a -> b"
    kind: str = "missing"  # "elf" | "script" | "missing" | "other"
    interpreter: str = ""  # a script's #! program (``env``'s argument for ``#!/usr/bin/env X``)
    targets: tuple[str, ...] = ()  # programs a script runs: exec's argument, nvidia-smi paths

    def describe(self) -> str:
        what = {"elf": "an ELF binary", "script": "a script", "other": "not a program"}
        text = f"{self.path}: " + what.get(self.kind, "missing")
        if self.links:
            text += " (" + ", ".join(self.links) + ")"
        if self.kind == "script":
            text += (
                f", #! {self.interpreter or '?'}, runs {', '.join(self.targets) or 'nothing named'}"
            )
        return text


# --- pure ---------------------------------------------------------------------------


def kind_of(head: bytes) -> str:
    if head.startswith(ELF_MAGIC):
        return "elf"
    if head.startswith(b"#!"):
        return "script"
    return "other"


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split("#", 1)[0].split()


def _exec_program(words: list[str]) -> str:
    """The program ``exec`` runs: past assignments and its options (``-a NAME`` takes one)."""
    rest = [w for w in words if not _ASSIGNMENT.match(w)]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] == "-a" else rest[1:]
    return rest[0] if rest else ""


def parse_script(text: str) -> tuple[str, tuple[str, ...]]:
    """A script's interpreter and the programs it runs by name.

    The interpreter is the ``#!`` program, or ``env``'s first argument. Programs run:
    the word after ``exec`` (past variable assignments and options), and any absolute
    path to an ``nvidia-smi``.
    """
    lines = text.splitlines()
    interpreter = ""
    if lines and lines[0].startswith("#!"):
        words = lines[0][2:].split()
        if words:
            interpreter = words[0]
            if PurePosixPath(interpreter).name == "env":
                rest = [w for w in words[1:] if not w.startswith("-")]
                interpreter = rest[0] if rest else interpreter
        lines = lines[1:]
    targets: list[str] = []
    for line in lines:
        words = _words(line)
        for i, word in enumerate(words):
            if word == "exec":
                program = _exec_program(words[i + 1 :])
                if program:
                    targets.append(program)
            elif word.startswith("/") and PurePosixPath(word).name.startswith("nvidia-smi"):
                targets.append(word)
    return interpreter, tuple(dict.fromkeys(targets))


def judge_mounted(smi: SmiFile, mounted: Collection[str]) -> str:
    """Why the ``nvidia-smi`` a CDI spec mounts cannot run in a container; "" if it can.

    ``mounted`` holds the container paths the spec mounts: the only files of the host
    a container is sure to have.
    """
    if smi.kind == "missing":
        return f"{smi.path} does not exist on the host" + (
            f" ({', '.join(smi.links)})" if smi.links else ""
        )
    if smi.kind == "other":
        return f"{smi.resolved or smi.path} is neither an ELF binary nor a script"
    if smi.kind == "elf":
        return ""
    outside = []
    if smi.interpreter not in mounted:
        outside.append(f"its interpreter {smi.interpreter or '(none)'}")
    outside += [f"{t}, which it runs" for t in smi.targets if t not in mounted]
    if not smi.targets:
        outside.append("the driver's nvidia-smi, which it does not name")
    if not outside:
        return ""
    return (
        f"{smi.path} is a script, not the driver's nvidia-smi; the container does not "
        f"have {'; '.join(outside)}"
    )


# --- reading the host ---------------------------------------------------------------


def _resolve(path: str) -> tuple[str, tuple[str, ...]]:
    """``path`` with every symlink followed, and the hops; "" when it dangles."""
    current = path
    hops: list[str] = []
    for _ in range(MAX_LINKS):
        if not os.path.islink(current):
            return (current if os.path.exists(current) else ""), tuple(hops)
        target = os.readlink(current)
        following = os.path.normpath(os.path.join(os.path.dirname(current), target))
        hops.append(f"{current} -> {target}")
        current = following
    return "", (*hops, "too many symlinks")


def inspect(path: str) -> SmiFile:
    """Read ``path`` (its symlinks and first bytes): what kind of nvidia-smi it is."""
    resolved, links = _resolve(path)
    if not resolved:
        return SmiFile(path, "", links)
    try:
        with open(resolved, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return SmiFile(path, resolved, links, "other")
    kind = kind_of(head)
    if kind != "script":
        return SmiFile(path, resolved, links, kind)
    interpreter, targets = parse_script(head.decode(errors="replace"))
    return SmiFile(path, resolved, links, kind, interpreter, targets)


def driver_binary(path: str) -> tuple[SmiFile | None, tuple[SmiFile, ...]]:
    """The driver's own nvidia-smi behind ``path``, following wrapper scripts.

    Returns the ELF found (None when there is none) and every file looked at on the way.
    """
    seen: list[SmiFile] = []
    queue: list[str] = [path]
    while queue and len(seen) < MAX_WRAPPERS * 2:
        smi = inspect(queue.pop(0))
        seen.append(smi)
        if smi.kind == "elf":
            return smi, tuple(seen)
        if smi.kind == "script":
            queue += [
                t for t in smi.targets if t.startswith("/") and all(t != s.path for s in seen)
            ]
    return None, tuple(seen)


def first_on_path(search_path: str, name: str = "nvidia-smi") -> str:
    """The first executable ``name`` in ``search_path`` (a PATH value), as nvidia-ctk looks."""
    for directory in search_path.split(os.pathsep):
        if not directory:
            continue
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return ""


def driver_dir_first(search_path: str, driver_bin_dir: str) -> str:
    """``search_path`` with the driver's bin directory moved to the front."""
    rest: Sequence[str] = [d for d in search_path.split(os.pathsep) if d and d != driver_bin_dir]
    return os.pathsep.join([driver_bin_dir, *rest])
