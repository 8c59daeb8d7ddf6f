"""One exception tree (`selfinstruct.errors`, its docstring drawing it with the exit codes) and one printer
(`cli/failure.py`) that shows any failure as one line with its code."""

from __future__ import annotations

import ast
import errno
import inspect
import re
import sqlite3
from pathlib import Path

import pytest

from selfinstruct import errors
from selfinstruct.cli.failure import report_failure

PACKAGE = Path(errors.__file__).resolve().parent
TREE_LINE = re.compile(r"^(?P<indent> *)- `(?P<name>\w+)` \((?P<code>\d+)\)")


def _error_classes() -> dict[str, type[errors.CommandError]]:
    return {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.CommandError) and cls.__module__ == errors.__name__
    }


def test_the_docstring_draws_the_tree_with_each_exit_code() -> None:
    drawn: dict[str, tuple[str | None, int]] = {}
    parents: list[str] = []  # the chain of names above the current line, by depth
    for line in (errors.__doc__ or "").splitlines():
        match = TREE_LINE.match(line)
        if match is None:
            continue
        depth = len(match["indent"]) // 2
        parents[depth:] = [match["name"]]
        drawn[match["name"]] = (parents[depth - 1] if depth else None, int(match["code"]))
    classes = _error_classes()
    assert set(drawn) == set(classes)
    for name, (parent, code) in drawn.items():
        cls = classes[name]
        assert cls.exit_code == code, name
        assert parent is None or cls.__bases__[0] is classes[parent], name


def test_no_error_class_lives_outside_errors_py() -> None:
    """An exception class elsewhere would need a special case in the printer (the reason for the tree)."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
            if any(b.endswith(("Error", "Exception", "Interrupted", "Failed", "Exceeded")) for b in bases):
                offences.append(f"{path.relative_to(PACKAGE)}: class {node.name}({', '.join(bases)})")
    assert offences == []


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (errors.UserError("--seeds: no such set"), 2, "error: --seeds: no such set"),
        (
            errors.InputFileError("seeds.jsonl", 3, "no 'instruction'"),
            2,
            "error: seeds.jsonl:3: no 'instruction'",
        ),
        (errors.StorageError("/r/run.sqlite: disk full"), 1, "error: /r/run.sqlite: disk full"),
        (
            errors.LMError("generate request failed after 7 attempts: HTTP 503"),
            1,
            "error: LM request failed: generate request failed after 7 attempts: HTTP 503. "
            "Rerun the same command to resume.",
        ),
        (
            errors.BadReplyError("h: unusable reply"),
            1,
            "error: LM request failed: h: unusable reply. Rerun the same command to resume.",
        ),
        (errors.StepFailed("step finetune failed (exit 1)"), 1, "error: step finetune failed (exit 1)"),
        (errors.AdapterConversionError("DoRA"), 1, "error: DoRA"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/r/out.jsonl"),
            1,
            "error: /r/out.jsonl: No space left on device",
        ),
        (OSError(errno.EROFS, "Read-only file system"), 1, "error: Read-only file system"),
    ],
)
def test_the_printer_shows_one_line_and_returns_the_trees_code(
    error: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_failure(error) == code
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""


def test_an_interruption_says_so_and_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_failure(errors.Interrupted()) == 130
    assert capsys.readouterr().err.strip() == "Interrupted."


def test_a_database_that_is_not_one_is_the_users_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.sqlite"
    path.write_bytes(b"not a database, " * 64)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master")
    assert report_failure(info.value) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the run database: file is not a database")


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("k"), OSError("no errno, no file")])
def test_a_bug_is_not_printed_but_left_to_raise(
    bug: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_failure(bug) is None
    assert capsys.readouterr().err == ""


def test_the_printer_is_the_only_one() -> None:
    """`error: ` is written in one place: cli/failure.py (cli/eval.py once had its own)."""
    writers = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if re.search(r"""["'](\[red\])?error:""", path.read_text(encoding="utf-8"))
    ]
    assert writers == ["cli/failure.py"]
