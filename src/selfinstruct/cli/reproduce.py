"""`selfinstruct reproduce`: the paper's whole loop in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from selfinstruct.cli.extras import missing
from selfinstruct.errors import Interrupted, UserError

console = Console(stderr=True)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = round(seconds / 60)
    return f"~{minutes} min" if minutes else f"~{round(seconds)} s"


def _estimate_generate(loop: Any) -> None:
    """The generate step's cost estimate, as `generate --dry-run` prints it, from the step's flags."""
    from selfinstruct.cli.options import RUN_FLAGS, flag_names
    from selfinstruct.pipeline.estimate import plan, print_estimate

    names = flag_names(RUN_FLAGS)
    dotted = {flag: key for key, flag in names.items()}
    section = dict(loop.settings.generate)
    config = section.pop("config", None)
    overrides = {dotted[k]: v for k, v in section.items() if k in dotted and v is not None}
    config_path = Path(str(config)).expanduser() if config else None
    print_estimate(console, plan(loop.out / "run", config_path, overrides, flag_names=names))


def reproduce(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the loop (created, or resumed).")],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="cpu: sized to finish within an hour on a 2-core CPU with the embedded model; paper: the "
            "paper's scale (52K instructions, 2 epochs, 100 SuperNI instances per task). \\[default: cpu]",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML with one section per step (generate, prepare, finetune, eval, superni, "
            "user_oriented, compare), each holding that command's flags without the dashes.",
        ),
    ] = None,
    superni: Annotated[
        Path | None,
        typer.Option(
            "--superni", help="SuperNI data folder to evaluate on (without it, SuperNI is skipped)."
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Backend that generates and is evaluated as the base.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model of that backend.")] = None,
    base_url: Annotated[
        list[str] | None, typer.Option("--base-url", help="OpenAI-compatible endpoint (repeatable).")
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="On an existing --out, take the settings given now instead of refusing them: the steps they "
            "change rerun, and those after them (generate resumes its run, so the data made so far is kept). "
            "The old settings, pages and reports are copied to history/ first.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and exit.")] = False,
) -> None:
    """Generate -> prepare -> fine-tune -> evaluate base and tuned (SuperNI, the 252 user-oriented tasks) ->
    compare, then write results.md and results.html. Rerun the same command to resume: finished steps are
    skipped. Other settings on an existing --out are refused unless --update."""
    from selfinstruct.reproduce.loop import open_loop, run_loop

    overrides: dict[str, dict[str, Any]] = {
        "generate": {k: v for k, v in (("backend", backend), ("model", model), ("base-url", base_url)) if v},
        "superni": {"tasks": str(superni.expanduser().absolute())} if superni else {},
    }
    from selfinstruct.cli.steps import StepCommands

    loop = open_loop(out, StepCommands(), preset, config, overrides, update=update)
    if "finetune" in loop.pending and (absent := missing("hf")):
        line = f"the fine-tuning step needs {', '.join(absent)}: pip install 'selfinstruct[hf]'"
        if not dry_run:
            raise UserError(line)
        console.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
    if loop.changes:
        console.print(f"Updating {loop.out}: " + "; ".join(loop.changes), markup=False, soft_wrap=True)
    table = Table(title=f"Plan ({'resuming' if loop.resumed else 'new'}: {loop.out})")
    for column in ("step", "what", "state", "expected"):
        table.add_column(column, justify="right" if column == "expected" else "left")
    for step in loop.steps:
        todo = step.name in loop.pending
        table.add_row(
            step.name, step.title, "to run" if todo else "done", _fmt(step.estimate_s) if todo else ""
        )
    console.print(table)
    expected = loop.expected_seconds
    console.print(
        f"Expected time of what is left: {_fmt(expected)}"
        + (" (estimated from the embedded model's figures on 2 cores; yours may differ)" if expected else "")
    )
    if dry_run:
        if "generate" in loop.pending:
            _estimate_generate(loop)
        return

    def announce(step: Any, event: str) -> None:
        if event == "start":
            console.rule(f"[bold]{step.name}[/]: {step.title}")

    try:
        _, md, html = run_loop(loop, on_event=announce)
    except Interrupted:
        console.print(f"[yellow]Interrupted. Rerun `selfinstruct reproduce --out {out}` to resume.")
        raise typer.Exit(130) from None
    console.print(f"Results: {md} and {html}")
