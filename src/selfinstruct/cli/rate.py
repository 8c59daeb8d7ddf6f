"""`selfinstruct rate`: the paper's Table 2 questions answered by a judge on a run's kept instances."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from selfinstruct.cli.options import FlagTable, flag_names, with_flags
from selfinstruct.config import RunSettings

QUALITY_FLAGS = FlagTable(
    RunSettings,
    prefix={"quality": "", "cost": ""},
    fields=frozenset({"quality", "cost"}),
    panel={"quality": "Judge", "cost": "Cost and budget (the run's, shared with its judge)"},
    help={
        "quality.judge": "Who answers: [bold]checks[/] (model-free, free and instant), [bold]embedded[/] "
        "(the offline model), or [cyan]BACKEND/MODEL[/] ([cyan]openai/gpt-4o-mini[/]; a bare name means an "
        "OpenAI-compatible server). \\[default: the run's --judge]",
    },
)


@with_flags(QUALITY_FLAGS)
def rate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            help="Rate N kept instructions with one kept instance each, drawn at random as the paper did "
            "(the review page's sample of the same --sample and --seed, so judge and people rate the same "
            "items). \\[default: every kept instance]",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed of the --sample (as the review page's).")
    ] = 0,
    redo: Annotated[
        bool,
        typer.Option(
            "--redo",
            help="Rate the items this judge rated before again, replacing its answers (a reply to the same "
            "prompt comes from the run's cache and is read again).",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Answer the paper's three data-quality questions (Table 2) for each kept instance with a judge.

    Does the instruction describe a valid task? Is the input appropriate? Is the output a correct and
    acceptable response? Each answer and the judge's reason are stored in the run; an interrupted rating
    resumes, and a rerun asks nothing twice (an LLM judge's replies are cached in the run). The summary
    shows Table 2 with 95% intervals beside the review page's human ratings and the judge's agreement with
    each person (percent and Cohen's kappa), on the items both rated."""
    from selfinstruct.pipeline.rate import rate_run

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]rating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    task = bar.add_task("rating", total=None)

    def on_start(total: int, already: int) -> None:
        bar.update(task, total=total, completed=already)

    with bar:
        try:
            outcome = rate_run(
                run_dir,
                overrides,
                sample=sample,
                seed=seed,
                redo=redo,
                flag_names=flag_names(QUALITY_FLAGS),
                on_start=on_start,
                on_done=lambda: bar.advance(task),
            )
        except KeyboardInterrupt:
            console.print(
                f"Interrupted. The answers so far are stored: rerun the same command to resume {run_dir}."
            )
            raise typer.Exit(130) from None
    from selfinstruct.quality.report import table2_rich

    console.print(
        f"Judge {outcome.judge}: rated {outcome.rated} now, {outcome.already} before "
        f"({outcome.items} items{' in the sample' if sample else ''}).",
        markup=False,
        highlight=False,
    )
    for table in table2_rich(outcome.summary.quality):
        console.print(table)
