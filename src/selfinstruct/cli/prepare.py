"""`selfinstruct prepare`: stage 4, a run's fine-tuning data. Its flags are `PrepareSettings`'."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from selfinstruct.cli.options import FlagTable, flag_names, with_flags
from selfinstruct.cli.output import console, say
from selfinstruct.pipeline.prepare import PREPARE_SECTION, PrepareSettings

PREPARE_FLAGS = FlagTable(
    PrepareSettings,
    rename={
        "out": ("--out", "-o"),
        "include_seeds": ("--seeds/--no-seeds",),
        "decontaminate": "decontaminate",
    },
    help={"out": "Output JSONL \\[default: RUN_DIR/export/finetune.jsonl]"},
)


@with_flags(PREPARE_FLAGS)
def prepare(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML file with any of these settings, under [cyan]prepare:[/] or at the top.",
        ),
    ] = None,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 4: prompt/completion fine-tuning data (the paper's templates, deduplicated, shuffled)."""
    from selfinstruct.pipeline.prepare import prepare_run
    from selfinstruct.settings_io import resolve

    settings = resolve(
        PrepareSettings, config, overrides, section=PREPARE_SECTION, flag_names=flag_names(PREPARE_FLAGS)
    )
    eval_texts = []
    if settings.decontaminate:  # loaded here: the pipeline never imports the evaluation package
        from selfinstruct.evaluate.sets import load_eval_sets

        eval_texts = load_eval_sets(settings.decontaminate, "--decontaminate")
    result = prepare_run(
        run_dir,
        settings.out,
        templates=settings.templates,
        eos=settings.eos,
        seed=settings.seed,
        include_seeds=settings.include_seeds,
        min_quality=settings.min_quality,
        gate_judge=settings.gate_judge,
        decontaminate=eval_texts,
    )
    say(result.gate.describe())
    if settings.decontaminate:
        say(result.describe_decontamination())
    console.print(
        f"Wrote {result.rows} prompt/completion pairs to {result.path} "
        f"(templates {result.templates}, eos {result.eos!r} from {result.eos_source}, seed {result.seed})",
        markup=False,
    )
