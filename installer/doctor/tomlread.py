"""TOML text as data, on every python3 the installer runs on: ``tomllib`` where Python has
it (3.11+), else a small reader of the TOML that engine configurations use.

The reader knows tables and arrays of tables (dotted, quoted keys), dotted keys, basic
and literal strings (one line or several), integers, floats, booleans, arrays (over
several lines, with comments) and inline tables; dates are kept as their text. It does
not check everything TOML forbids (a key defined twice, say): it reads files an engine
already accepts. Pure: text in, ``dict`` out, ``ValueError`` with the line on bad input.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any, Callable

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ATOM = re.compile(r"[^\s,\]\}#]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def loads(text: str) -> dict[str, Any]:
    """``text`` parsed: by ``tomllib`` where this Python has it, else by :func:`read`."""
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python 3.8 to 3.10
        return read(text)
    parsed: dict[str, Any] = tomllib.loads(text)
    return parsed


def read(text: str) -> dict[str, Any]:
    """``text`` parsed by this module's own reader (what :func:`loads` uses before 3.11)."""
    return _Reader(text).document()


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def error(self, what: str) -> ValueError:
        line = self.s.count("\n", 0, self.i) + 1
        return ValueError(f"{what} (line {line})")

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def blank(self, newlines: bool = False) -> None:
        """Skip spaces and comments (and line ends with ``newlines``)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def end_of_line(self) -> None:
        self.blank()
        if self.i < len(self.s) and self.s[self.i] not in "\r\n":
            raise self.error(f"unexpected {self.s[self.i]!r}")

    def document(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        table = root
        while True:
            self.blank(newlines=True)
            if self.i >= len(self.s):
                return root
            if self.peek(2) == "[[":
                self.i += 2
                path = self.key()
                self.expect("]]")
                parent = _descend(root, path[:-1], self.error)
                items = parent.setdefault(path[-1], [])
                if not isinstance(items, list):
                    raise self.error(f"{'.'.join(path)} is not an array of tables")
                table = {}
                items.append(table)
            elif self.peek() == "[":
                self.i += 1
                table = _descend(root, self.key(), self.error)
                self.expect("]")
            else:
                self.pair(table)
            self.end_of_line()

    def expect(self, token: str) -> None:
        self.blank()
        if self.peek(len(token)) != token:
            raise self.error(f"expected {token!r}")
        self.i += len(token)

    def key(self) -> list[str]:
        parts = []
        while True:
            self.blank()
            c = self.peek()
            if c in ('"', "'"):
                parts.append(self.string())
            else:
                match = _BARE.match(self.s, self.i)
                if not match:
                    raise self.error("expected a key")
                parts.append(match.group())
                self.i = match.end()
            self.blank()
            if self.peek() != ".":
                return parts
            self.i += 1

    def pair(self, table: dict[str, Any]) -> None:
        path = self.key()
        self.expect("=")
        self.blank()
        _descend(table, path[:-1], self.error)[path[-1]] = self.value()

    def value(self) -> Any:
        c = self.peek()
        if c in ('"', "'"):
            return self.string()
        if c == "[":
            return self.array()
        if c == "{":
            return self.inline_table()
        match = _ATOM.match(self.s, self.i)
        if not match:
            raise self.error("expected a value")
        self.i = match.end()
        return _atom(match.group())

    def array(self) -> list[Any]:
        self.i += 1
        items: list[Any] = []
        while True:
            self.blank(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.value())
            self.blank(newlines=True)
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise self.error("expected ',' or ']' in an array")

    def inline_table(self) -> dict[str, Any]:
        self.i += 1
        table: dict[str, Any] = {}
        self.blank()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            self.pair(table)
            self.blank()
            if self.peek() == "}":
                self.i += 1
                return table
            self.expect(",")

    def string(self) -> str:
        quote = self.peek()
        multi = self.peek(3) == quote * 3
        delim = quote * 3 if multi else quote
        self.i += len(delim)
        if multi and self.peek() == "\n":
            self.i += 1
        elif multi and self.peek(2) == "\r\n":
            self.i += 2
        out = []
        while True:
            if self.i >= len(self.s) or (not multi and self.s[self.i] == "\n"):
                raise self.error("unterminated string")
            if self.s.startswith(delim, self.i):
                run = len(self.s[self.i :]) - len(self.s[self.i :].lstrip(quote))
                extra = min(run - 3, 2) if multi else 0  # '""""' is a quote, then the end
                out.append(quote * extra)
                self.i += extra + len(delim)
                return "".join(out)
            c = self.s[self.i]
            if c == "\\" and quote == '"':
                out.append(self.escape(multi))
            else:
                out.append(c)
                self.i += 1

    def escape(self, multi: bool) -> str:
        c = self.s[self.i + 1 : self.i + 2]
        if multi and c in ("\n", "\r", " ", "\t"):
            self.i += 1  # a line-ending backslash: the break and following blanks go
            while self.peek() in (" ", "\t", "\r", "\n") and self.peek():
                self.i += 1
            return ""
        if c in _ESCAPES:
            self.i += 2
            return _ESCAPES[c]
        width = {"u": 4, "U": 8}.get(c)
        if width is None:
            raise self.error(f"unknown escape \\{c}")
        digits = self.s[self.i + 2 : self.i + 2 + width]
        self.i += 2 + width
        return chr(int(digits, 16))


def _descend(
    table: dict[str, Any], path: list[str], error: Callable[[str], ValueError]
) -> dict[str, Any]:
    for key in path:
        child = table.setdefault(key, {})
        if isinstance(child, list) and child and isinstance(child[-1], dict):
            child = child[-1]  # [a.b] after [[a]]: the last table of the array
        if not isinstance(child, dict):
            raise error(f"{key} is a value, not a table")
        table = child
    return table


def _atom(token: str) -> Any:
    """A bare value: boolean, integer, float; anything else (a date) as its text."""
    if token in ("true", "false"):
        return token == "true"
    plain = token.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?(0x[0-9A-Fa-f]+|0o[0-7]+|0b[01]+)", plain):
            return int(plain, 0)
        if re.fullmatch(r"[+-]?\d+", plain):
            return int(plain)
        if plain.lstrip("+-") in ("inf", "nan"):
            return float(plain)
        return float(plain)
    except ValueError:
        if re.match(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", token):
            return token
        raise ValueError(f"not a TOML value: {json.dumps(token)}") from None
