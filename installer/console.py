"""How gpubundle talks to people and to programs.

The conventions of apt and docker: results (tables, verdicts, the command to run
next) go to stdout, so ``gpubundle distros | grep ubuntu24`` works; progress, steps,
logs and warnings go to stderr, so they never mix into what a pipe reads. Rich
tables and progress bars appear on a terminal when rich is importable. With
``--json`` stdout holds exactly one JSON document and nothing else, so
``gpubundle … --json | jq`` always works; errors are that document too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol


class Progress(Protocol):
    def advance(self, amount: int) -> None: ...


@dataclass
class _PlainProgress:
    label: str
    total: int
    done: int = 0
    _last_pct: int = -1

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.total <= 0:
            return
        pct = min(100, self.done * 100 // self.total)
        # A line per 10 %: readable in CI logs, not a flood.
        if pct // 10 != self._last_pct // 10:
            self._last_pct = pct
            print(f"{self.label}: {pct}%", file=sys.stderr, flush=True)


class _RichProgress:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int) -> None:
        self._progress.advance(self._task, amount)


class Console:
    """One per command invocation; ``json_mode`` silences human output."""

    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.fancy = sys.stderr.isatty() and not json_mode and _rich_available()

    def info(self, message: str) -> None:
        if not (self.json_mode or self.quiet):
            print(message, file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        self.info(f"==> {message}")

    def result(self, message: str) -> None:
        """A line of the command's result, for people: stdout, silent with --json."""
        if not self.json_mode:
            print(message, flush=True)

    def warn(self, message: str) -> None:
        if not self.json_mode:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
        """A result table on stdout. The first column (names) is never cut or wrapped."""
        if self.json_mode or self.quiet:
            return
        if sys.stdout.isatty() and _rich_available():
            from rich.console import Console as RichConsole
            from rich.table import Table

            rich_table = Table(title=title or None)
            first = max((len(h) for h in headers[:1]), default=0)
            first = max([first, *(len(row[0]) for row in rows if row)])
            for position, header in enumerate(headers):
                if position == 0:
                    rich_table.add_column(header, no_wrap=True, min_width=first)
                else:
                    rich_table.add_column(header, overflow="fold")
            for row in rows:
                rich_table.add_row(*row)
            RichConsole().print(rich_table)
            return
        print(format_table(headers, rows, title), flush=True)

    def emit(self, document: Any) -> None:
        """The machine-readable result: printed only in JSON mode."""
        if self.json_mode:
            json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
            sys.stdout.write("\n")
            sys.stdout.flush()

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Progress]:
        if self.json_mode or self.quiet:
            yield _PlainProgress(label, 0)
            return
        if self.fancy:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            with RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=False,
            ) as bar:
                yield _RichProgress(bar, bar.add_task(label, total=total))
            return
        yield _PlainProgress(label, total)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return "\n".join(lines)


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True
