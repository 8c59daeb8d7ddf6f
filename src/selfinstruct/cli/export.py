"""`selfinstruct export`: a run's data in every format, with a dataset card; `--push-to-hub` publishes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from selfinstruct.cli.output import console, say
from selfinstruct.errors import UserError

MinQualityOption = Annotated[
    str,
    typer.Option(
        "--min-quality",
        help="The quality gate on a judge's Table 2 answers (selfinstruct rate): [bold]all[/] keeps "
        "instances with three yes, [bold]output[/] those with a valid task and a correct output, "
        "[bold]none[/] every kept instance (the paper). [bold]auto[/]: all when a judge rated every kept "
        "instance, else none.",
    ),
]
GateJudgeOption = Annotated[
    str | None,
    typer.Option("--gate-judge", help="Whose answers the gate reads \\[default: the judge that rated most]"),
]


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder [default: RUN_DIR/export]")
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help="paper, finetune, alpaca, openai-chat, parquet (repeatable) [default: all]"
        ),
    ] = None,
    seeds: Annotated[
        bool, typer.Option("--seeds/--no-seeds", help="Include seed tasks in finetune data.")
    ] = True,
    min_quality: MinQualityOption = "auto",
    gate_judge: GateJudgeOption = None,
    license_id: Annotated[
        str | None,
        typer.Option(
            "--license",
            help="The data's licence as a Hub licence id (apache-2.0, cc-by-4.0, other ...), written into "
            "the dataset card \\[default: none chosen, and the card says so]",
        ),
    ] = None,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            metavar="OWNER/NAME",
            help="Upload the export folder to this Hugging Face dataset repository (created if needed) in "
            "one commit; the token comes from HF_TOKEN or `hf auth login`.",
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="With --push-to-hub: create the repository private.")
    ] = False,
) -> None:
    """Write the run's data: the paper's files, fine-tuning data, Alpaca JSON, chat messages, Parquet, and
    a dataset card (README.md) that `datasets.load_dataset(FOLDER)` reads."""
    from selfinstruct import hub
    from selfinstruct.export import FORMATS, export_run

    if push_to_hub is not None:  # a bad repository id or no token: refused before any work
        hub.check_repo_id(push_to_hub)
        hub.check_token()
    elif private:
        raise UserError("--private: only with --push-to-hub")
    exported = export_run(
        run_dir,
        out,
        fmt or FORMATS,
        include_seeds=seeds,
        min_quality=min_quality,
        gate_judge=gate_judge,
        license_id=license_id,
        repo_id=push_to_hub,
    )
    say(exported.gate.describe())
    table = Table(title="Exported")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path, rows in exported.files.values():
        table.add_row(str(path), str(rows))
    console.print(table)
    say(f"Dataset card: {exported.card}")
    if push_to_hub is not None:
        pushed = hub.push_export(exported, push_to_hub, private=private)
        say(f"Pushed {len(pushed.files)} files to {pushed.url}{' (private)' if pushed.private else ''}")
