"""The package's layers: imports point down (the README's "Where things are" map), never up into the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selfinstruct"

# package -> packages it must never import (the rest of the map follows from these and the tests' reach).
FORBIDDEN = {
    "lm": {"pipeline", "store", "evaluate", "finetune", "web", "analysis", "reproduce", "cli", "export"},
    "store": {"pipeline", "web", "evaluate", "finetune", "analysis", "reproduce", "cli", "lm"},
    "novelty": {"pipeline", "store", "lm", "cli"},
    "evaluate": {"pipeline", "store", "finetune", "web", "reproduce", "cli"},
    "finetune": {"web", "reproduce", "cli"},
    "pipeline": {"web", "evaluate", "finetune", "analysis", "reproduce", "cli"},
    "web": {"pipeline", "finetune", "reproduce", "cli"},
    "analysis": {"pipeline", "web", "finetune", "reproduce", "cli"},
    "reproduce": {"cli"},
    "quality": {"pipeline", "evaluate", "web", "finetune", "analysis", "reproduce", "cli"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("selfinstruct.") and n.count(".") >= 1}
    return found


def test_no_module_outside_the_cli_imports_the_cli_and_imports_point_down() -> None:
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        if top in {"cli", "__main__"}:
            continue
        bad = imported_packages(path) & (FORBIDDEN.get(top, set()) | {"cli"})
        offences += [f"{rel} imports selfinstruct.{name}" for name in sorted(bad)]
    assert offences == []
