"""The test tree's own layout: shared helpers live only in tests/support.

A test module that imports from another test module (``tests.unit.*`` or
``tests.integration.*``, conftest files included) couples the two and runs the other's
module-level code; whatever two test modules share belongs in ``tests/support/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FORBIDDEN = ("tests.unit", "tests.integration")


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_every_form_of_import_is_found() -> None:
    source = (
        "import os\nfrom tests.support.records import SHA\nfrom tests.unit.test_x import a\n"
        "import tests.integration.conftest as c\nfrom tests import unit\n"
        "def f():\n    from tests.unit import test_y\n"
    )
    assert cross_imports(ast.parse(source)) == [
        (3, "tests.unit.test_x"),
        (4, "tests.integration.conftest"),
        (5, "tests.unit"),
        (7, "tests.unit"),
    ]


def cross_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, at any depth, of a test module or package."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _forbidden(node.module):
                found.append((node.lineno, node.module))
            else:  # ``from tests import unit`` imports the package all the same
                found += [
                    (node.lineno, f"{node.module}.{a.name}")
                    for a in node.names
                    if _forbidden(f"{node.module}.{a.name}")
                ]
    return sorted(found)


def test_no_test_file_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in cross_imports(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "shared test helpers belong in tests/support/:\n" + "\n".join(offenders)
