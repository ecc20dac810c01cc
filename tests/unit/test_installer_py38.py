"""installer/ runs on Python 3.8: no subscripted builtin or collections.abc generic where
Python evaluates it (aliases, base classes, TypeVar bounds, casts), no ``X | Y`` given to
isinstance. Annotations are exempt: every installer module has ``from __future__ import
annotations``. mypy (scripts/typecheck-py38) cannot see these; 3.8 fails on import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALLER = Path(__file__).resolve().parents[2] / "installer"
BUILTIN_GENERICS = {"tuple", "list", "dict", "set", "frozenset", "type"}
MODULES = sorted(INSTALLER.rglob("*.py"))


def _abc_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "collections.abc":
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node Python evaluates when the module is imported or run: annotations left out."""
    yield node
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns"):
            continue
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, ast.AST):
                yield from _runtime_nodes(child)


def problems(source: str) -> list[str]:
    tree = ast.parse(source)
    generic = BUILTIN_GENERICS | _abc_names(tree)
    found = []
    for node in _runtime_nodes(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in generic
        ):
            found.append(f"line {node.lineno}: {node.value.id}[...] is evaluated (3.9+)")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
            and len(node.args) == 2
            and isinstance(node.args[1], ast.BinOp)
            and isinstance(node.args[1].op, ast.BitOr)
        ):
            found.append(f"line {node.lineno}: {node.func.id}(x, A | B) (3.10+)")
    return found


def test_the_check_finds_what_38_refuses() -> None:
    source = (
        "from __future__ import annotations\n"
        "from collections.abc import Callable, Sequence\n"
        "A = tuple[int, str]\n"
        "B = Callable[[int], None]\n"
        "class C(Sequence[str]): ...\n"
        "def f(x: list[int], y: Callable[[int], None]) -> dict[str, int]:\n"
        "    z: tuple[int, ...] = ()\n"
        "    return isinstance(x, int | str)\n"
    )
    assert [p.split(":")[0] for p in problems(source)] == [
        "line 3", "line 4", "line 5", "line 8",
    ]  # fmt: skip


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(INSTALLER)))
def test_installer_module_runs_on_python38(path: Path) -> None:
    source = path.read_text()
    assert problems(source) == []
    annotated = any(
        isinstance(node, (ast.AnnAssign, ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(ast.parse(source))
    )
    # compute_probe.py runs in the verification image on python3.6 (Ubuntu 18.04), which has
    # no postponed annotations: it spells them with typing's aliases, which the check above
    # already holds to what 3.6 evaluates.
    if annotated and path.name != "compute_probe.py":
        assert "from __future__ import annotations" in source, "annotations would be evaluated"
