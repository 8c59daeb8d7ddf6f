"""`selfinstruct seeds`: list the built-in seed sets, check a seed file, copy a set to start your own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfinstruct.errors import UserError
from selfinstruct.paths import check_output_file, refuse_inputs
from selfinstruct.records import Task
from selfinstruct.seeds.loader import (
    classification_only,
    list_builtin_seed_sets,
    load_seed_tasks,
    resolve_seed_source,
    save_seed_tasks,
)


@dataclass(frozen=True)
class SeedSummary:
    """The paper's Table 1 quantities, for a seed set."""

    tasks: int
    classification: int
    instances: int
    empty_inputs: int
    instruction_words: float
    input_words: float  # over non-empty inputs, as the paper counts them
    output_words: float


def summarize_seeds(tasks: list[Task]) -> SeedSummary:
    instances = [inst for task in tasks for inst in task.instances]
    inputs = [len(i.input.split()) for i in instances if i.input.strip()]
    return SeedSummary(
        tasks=len(tasks),
        classification=len(classification_only(tasks)),
        instances=len(instances),
        empty_inputs=len(instances) - len(inputs),
        instruction_words=mean(len(t.instruction.split()) for t in tasks) if tasks else 0.0,
        input_words=mean(inputs) if inputs else 0.0,
        output_words=mean(len(i.output.split()) for i in instances) if instances else 0.0,
    )


def _summary_table(title: str, summary: SeedSummary) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("tasks", str(summary.tasks))
    table.add_row(
        "classification / other", f"{summary.classification} / {summary.tasks - summary.classification}"
    )
    table.add_row("instances (empty input)", f"{summary.instances} ({summary.empty_inputs})")
    table.add_row("avg words: instruction", f"{summary.instruction_words:.1f}")
    table.add_row("avg words: non-empty input", f"{summary.input_words:.1f}")
    table.add_row("avg words: output", f"{summary.output_words:.1f}")
    return table


def seeds(
    source: Annotated[
        str | None,
        typer.Argument(
            help="A seed file in the paper's JSONL format, or a built-in set name "
            "([bold]default[/], [bold]medical[/], [bold]software[/]). Default: the project's own set.",
            show_default=False,
        ),
    ] = None,
    list_sets: Annotated[
        bool,
        typer.Option("--list", help="List the built-in seed sets with their sizes and paths, then exit."),
    ] = False,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="Copy the (validated) seed tasks to this JSONL file, e.g. to edit a built-in set and pass "
            "it back with [bold]--seeds[/].",
        ),
    ] = None,
    classification_only_: Annotated[
        bool,
        typer.Option(
            "--classification-only", help="Keep only the classification seeds (for summary and --save)."
        ),
    ] = False,
) -> None:
    """Check a seed file (one line naming the file and line if it is bad) and summarize it; list or copy
    the built-in seed sets."""
    console = Console()
    if list_sets:
        table = Table(title="Built-in seed sets (use with --seeds NAME)")
        for column in ("name", "tasks", "classification"):
            table.add_column(column)
        table.add_column("path", overflow="fold")
        for name, path in list_builtin_seed_sets().items():
            tasks = load_seed_tasks(path)
            table.add_row(name, str(len(tasks)), str(len(classification_only(tasks))), str(path))
        console.print(table)
        return
    path = resolve_seed_source(source)
    if save is not None:  # checked first: --save must not replace the file being read
        check_output_file(save, "--save")
        refuse_inputs(save, [path], "--save")
    tasks = load_seed_tasks(path)
    if classification_only_:
        tasks = classification_only(tasks)
    console.print(f"{path}: valid", markup=False, highlight=False, soft_wrap=True)
    console.print(_summary_table("Seed set", summarize_seeds(tasks)))
    if save is not None:
        if not tasks:
            raise UserError(f"--classification-only: {path} has no classification seeds to save")
        written = save_seed_tasks(tasks, save)
        console.print(f"Saved {len(tasks)} seed tasks to {written}", markup=False, highlight=False)
