"""`selfinstruct seeds`: listing, checking, summarizing and copying seed sets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from selfinstruct.analysis.stats import table1
from selfinstruct.cli.seeds import seeds
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.records import Instance, Task
from selfinstruct.seeds import list_builtin_seed_sets, load_seed_tasks, save_seed_tasks


@pytest.fixture
def invoke() -> Callable[..., Result]:
    app = typer.Typer()
    app.command()(seeds)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [*args], env={"COLUMNS": "200"})


def _printed(output: str, label: str) -> str:
    """The value the command's table prints on the row labelled `label`."""
    line = next(ln for ln in output.splitlines() if f" {label} " in ln)
    return line.strip(" │").split("│")[-1].strip()


def test_a_seed_set_is_summarized_by_table_1(invoke: Callable[..., Result], tmp_path: Path) -> None:
    tasks = [
        Task("Name a fruit that is red.", (Instance("", "Apple"), Instance("", "Cherry")), False),
        Task("Is the number even?", (Instance("4", "Yes"), Instance("a b c", "No way at all")), True),
    ]
    summary = table1(tasks)
    assert (summary.instructions, summary.classification, summary.instances) == (2, 1, 4)
    assert summary.empty_input_instances == 2
    assert summary.avg_instruction_words == (6 + 4) / 2
    assert summary.avg_nonempty_input_words == (1 + 3) / 2  # empty inputs are not averaged in
    assert summary.avg_output_words == (1 + 1 + 1 + 4) / 4
    path = save_seed_tasks(tasks, tmp_path / "two.jsonl")
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    for label, value in summary.rows():  # the command prints the same rows as the data report
        assert _printed(result.output, label) == value


def test_list_shows_every_builtin_set(invoke: Callable[..., Result]) -> None:
    result = invoke("--list")
    assert result.exit_code == 0, result.output
    for name, path in list_builtin_seed_sets().items():
        tasks = load_seed_tasks(path)
        line = next(ln for ln in result.output.splitlines() if f" {name} " in ln)
        clf = sum(1 for t in tasks if t.is_classification)
        assert f" {len(tasks)} " in line and f" {clf} " in line


def test_check_and_save_a_builtin_set(invoke: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "mine.jsonl"
    result = invoke("medical", "--classification-only", "--save", str(out))
    assert result.exit_code == 0, result.output
    medical = load_seed_tasks("medical")
    clf = [t for t in medical if t.is_classification]
    assert _printed(result.output, "- # of classification instructions") == str(len(clf))
    assert _printed(result.output, "- # of non-classification instructions") == "0"
    assert load_seed_tasks(out) == clf
    assert f"Saved {len(clf)} seed tasks" in result.output


def test_bad_file_raises_the_one_line_error(invoke: Callable[..., Result], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "Do it now please.", "instances": []}) + "\n")
    result = invoke(str(bad))
    assert isinstance(result.exception, InputFileError)
    assert str(result.exception) == f"{bad}:1: 'instances' must be a non-empty list, got an empty list"


def test_classification_only_without_any_is_a_user_error(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    path = save_seed_tasks(
        [Task("Say something kind.", (Instance("", "You did great."),), False)], tmp_path / "s"
    )
    result = invoke(str(path), "--classification-only", "--save", str(tmp_path / "out.jsonl"))
    assert isinstance(result.exception, UserError)
    assert not (tmp_path / "out.jsonl").exists()
