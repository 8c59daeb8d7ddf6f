"""The run commands: `generate` (all stages, streaming), and `instructions`, `classify`, `instances` (one
stage each). Their flags are `RunSettings`' (`cli.options.RUN_FLAGS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from selfinstruct.cli.options import RUN_FLAGS, flag_names, with_setting_flags
from selfinstruct.cli.output import console, say

RunDirOption = Annotated[
    Path, typer.Option("--out", "-o", help="Run directory (created, or resumed if it exists).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file of settings (same keys as the flags).")
]
InputOption = Annotated[
    Path | None,
    typer.Option(
        "--input",
        "-i",
        help="Instructions from an earlier stage's JSONL file (field 'instruction'; "
        "'is_classification' used if present), imported into RUN_DIR (created if needed).",
    ),
]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show the live progress bar.")]


def run_stages(
    run_dir: Path,
    config: Path | None,
    overrides: dict[str, Any],
    stages: tuple[str, ...],
    progress: bool,
    *,
    create: bool,
    export: bool = False,
    input_file: Path | None = None,
) -> None:
    from selfinstruct.errors import BudgetExceeded
    from selfinstruct.export import export_run
    from selfinstruct.pipeline.importing import read_instruction_file
    from selfinstruct.pipeline.session import execute, open_run

    items = read_instruction_file(input_file) if input_file is not None else None
    option = "--out" if create else "RUN_DIR"
    run = open_run(
        run_dir,
        config,
        overrides,
        create=create or items is not None,
        option=option,
        flag_names=flag_names(RUN_FLAGS),
    )
    try:
        if items is not None:
            added = run.store.import_instructions(items, str(input_file))
            console.print(f"Imported {added} new instructions from {input_file}", markup=False)
        if run.resumed:
            say(f"Resuming {run_dir} (done work is kept; answered requests come from the cache).")
        summary = execute(run, stages=stages, console=console, show_progress=progress)
    except KeyboardInterrupt:
        run.discard_if_unused()
        say(f"Interrupted. Nothing answered is lost: rerun the same command to resume {run_dir}.", "yellow")
        raise typer.Exit(130) from None
    except BudgetExceeded as stop:
        # A clean stop, not a failure of the LM: what was spent and done, then the one line; exit 1.
        if stop.summary is not None:
            print_summary(stop.summary)
        say(str(stop), "yellow")
        raise typer.Exit(stop.exit_code) from None
    except BaseException:
        run.discard_if_unused()  # a run rejected before any work leaves no directory behind
        raise
    finally:
        run.close()
    print_summary(summary)
    if export:
        exported = export_run(run_dir)
        say(exported.gate.describe())
        console.print(f"Exported {len(exported.files)} files to {run_dir / 'export'}")


def print_summary(summary: Any) -> None:
    from selfinstruct.pipeline.summary import summary_tables

    for table in summary_tables(summary):
        console.print(table)


@with_setting_flags
def generate(
    out: RunDirOption = Path("runs/demo"),
    config: ConfigOption = None,
    progress: ProgressOption = True,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Write RUN_DIR/export at the end.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what the run would cost per stage (requests, tokens; USD with --price-input and "
            "--price-output) from its real prompts, and exit. Touches nothing.",
        ),
    ] = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Run all stages as one streaming pipeline: instructions, classification, instances (then export).

    Kill it at any moment and rerun the same command: it resumes without losing or repeating work."""
    if dry_run:
        from selfinstruct.pipeline.estimate import plan, print_estimate

        print_estimate(console, plan(out, config, overrides, flag_names=flag_names(RUN_FLAGS)))
        return
    run_stages(
        out,
        config,
        overrides,
        ("instructions", "classify", "instances"),
        progress,
        create=True,
        export=export,
    )


@with_setting_flags
def instructions(
    out: RunDirOption = Path("runs/demo"),
    config: ConfigOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 1 only: bootstrap instructions from the seed pool into RUN_DIR."""
    run_stages(out, config, overrides, ("instructions",), progress, create=True)


@with_setting_flags
def classify(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding stage-1 results.")],
    config: ConfigOption = None,
    input_file: InputOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 2 only: decide which kept instructions are classification tasks."""
    run_stages(run_dir, config, overrides, ("classify",), progress, create=False, input_file=input_file)


@with_setting_flags
def instances(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding stage-1/2 results.")],
    config: ConfigOption = None,
    input_file: InputOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 3 only: generate and filter instances (classifies first where stage 2 has not run)."""
    run_stages(
        run_dir, config, overrides, ("classify", "instances"), progress, create=False, input_file=input_file
    )
