"""The package's layers: the README's "Where things are" table is the rule book. Every package and top-level
module has a row; a row may import what its last column names (a package, or one module of it such as
`lm.credentials`) and `errors`, always from rows below it; `cli/` alone may import the CLI."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "selfinstruct"
EXEMPT = {"__init__", "__main__"}  # the version string; `python -m selfinstruct`, which runs the CLI
ANYONE = "errors"  # every layer raises the package's errors


def units() -> set[str]:
    """The top-level packages and modules of `selfinstruct`."""
    found = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return found - EXEMPT


@dataclass(frozen=True)
class Row:
    index: int
    units: tuple[str, ...]
    allowed: frozenset[str]  # "pkg" (all of it) or "pkg.module" (that module only)


def map_rows(readme: str, known: set[str]) -> list[Row]:
    """The rows of the README's table, top to bottom."""
    section = readme.split("## Where things are", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    rows: list[Row] = []
    for index, line in enumerate(lines):
        where, _, may_import = (cell.strip() for cell in line.strip("|").split(" | "))
        names = tuple(re.sub(r"(/|\.py)$", "", n) for n in re.findall(r"`([^`]+)`", where))
        if may_import == "everything below":
            allowed = {"*below*"}
        else:
            allowed = {n for n in re.findall(r"`([\w.]+)`", may_import) if n.split(".")[0] in known}
        rows.append(Row(index, names, frozenset(allowed)))
    below = {row.index: {u for r in rows[row.index + 1 :] for u in r.units} for row in rows}
    return [
        Row(row.index, row.units, frozenset(below[row.index])) if "*below*" in row.allowed else row
        for row in rows
    ]


def imports_of(path: Path) -> set[str]:
    """The `selfinstruct` modules a file imports, as `pkg` or `pkg.module` (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("selfinstruct.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "selfinstruct":
                continue
            for alias in node.names:  # `from selfinstruct.lm import factory` imports lm.factory
                dotted = [*parts[1:], alias.name]
                module = PACKAGE.joinpath(*dotted)
                if module.with_suffix(".py").exists() or (module / "__init__.py").exists():
                    found.add(".".join(dotted))
                elif len(parts) > 1:
                    found.add(".".join(parts[1:]))
    return found


def allows(allowed: frozenset[str], imported: str) -> bool:
    top = imported.split(".")[0]
    return (
        top == ANYONE or top in allowed or any(imported.startswith(a + ".") or imported == a for a in allowed)
    )


def upward_offences(rows: list[Row]) -> list[str]:
    """A row allowing what does not lie below it (a cycle between layers could be written down)."""
    offences = []
    for row in rows:
        below = {u for r in rows[row.index + 1 :] for u in r.units}
        offences += [
            f"{row.units} may import {a}" for a in sorted(row.allowed) if a.split(".")[0] not in below
        ]
    return offences


def import_offences(rows: list[Row], files: dict[str, set[str]]) -> list[str]:
    """Imports the map does not allow; `files` maps a path under the package to what it imports."""
    rule = {unit: row.allowed for row in rows for unit in row.units}
    offences = []
    for rel, imported in sorted(files.items()):
        unit = rel.split("/")[0].removesuffix(".py")
        if unit in EXEMPT:
            continue
        offences += [
            f"{rel} imports selfinstruct.{name}"
            for name in sorted(imported)
            if name.split(".")[0] != unit and not allows(rule.get(unit, frozenset()), name)
        ]
    return offences


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return map_rows((ROOT / "README.md").read_text(encoding="utf-8"), units())


def test_every_package_and_module_has_one_row(rows: list[Row]) -> None:
    listed = [u for row in rows for u in row.units]
    assert sorted(listed) == sorted(units())  # none missing, none twice, none that is not there


def test_the_map_points_down(rows: list[Row]) -> None:
    assert upward_offences(rows) == []


def test_every_import_is_one_the_map_allows(rows: list[Row]) -> None:
    files = {str(p.relative_to(PACKAGE)): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert import_offences(rows, files) == []


def test_only_the_cli_imports_the_cli(rows: list[Row]) -> None:
    assert [row.units for row in rows if any(a.split(".")[0] == "cli" for a in row.allowed)] == []


def test_the_rules_catch_what_they_should() -> None:
    """The checks can fail: an import the row does not name, another module of a package than the one
    named, a row allowing what lies above it."""
    table = (
        "## Where things are\n\n| where | owns | may import |\n|---|---|---|\n"
        "| `cli/` | commands | everything below |\n"
        "| `config.py` | settings | `lm.settings` |\n"
        "| `lm/` | models | `config` |\n"
        "| `records.py`, `errors.py` | data, errors | nothing |\n"
    )
    rows = map_rows(table, {"cli", "config", "lm", "records", "errors"})
    assert rows[0].allowed == {"config", "lm", "records", "errors"} and rows[3].allowed == frozenset()
    assert upward_offences(rows) == ["('lm',) may import config"]
    files = {
        "config.py": {"lm.settings", "errors"},  # allowed: the module named, and errors
        "cli/main.py": {"config", "lm.client", "records"},  # everything below
        "lm/client.py": {"records", "cli.main"},
        "records.py": {"lm.settings"},
    }
    assert import_offences(rows, files) == [
        "lm/client.py imports selfinstruct.cli.main",
        "lm/client.py imports selfinstruct.records",
        "records.py imports selfinstruct.lm.settings",
    ]
    assert import_offences(rows, {"config.py": {"lm.client"}}) == ["config.py imports selfinstruct.lm.client"]
