"""`selfinstruct seeds`: check a seed file, list the built-in sets, copy one to edit. Parses and calls: the
loading lives in `seeds/`, the Table 1 statistics in `analysis/stats.py` (the data report prints the same)."""

from __future__ import annotations

from pathlib import Path
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


def _table1(title: str, tasks: list[Task]) -> Table:
    from selfinstruct.analysis.stats import table1  # the report's own; imported late (numba kernels)

    table = Table(title=title, show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for label, value in table1(tasks).rows():
        table.add_row(label, value)
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
    console.print(_table1("Seed set (the paper's Table 1 quantities)", tasks))
    if save is not None:
        if not tasks:
            raise UserError(f"--classification-only: {path} has no classification seeds to save")
        written = save_seed_tasks(tasks, save)
        console.print(f"Saved {len(tasks)} seed tasks to {written}", markup=False, highlight=False)
