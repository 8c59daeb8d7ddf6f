"""`selfinstruct dedup`: the paper's ROUGE-L novelty filter, exact and fast, on any JSONL file. Parses and
calls `novelty.dedup.dedup_file`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfinstruct.novelty import NOVELTY_THRESHOLD


def dedup(
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="JSONL file to filter (e.g. an Alpaca-style dataset): one JSON object per line.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where to write the kept rows (whole, in input order, as JSONL)."),
    ],
    field: Annotated[
        str, typer.Option("--field", help="The field holding the instruction text to compare.")
    ] = "instruction",
    threshold: Annotated[
        float,
        typer.Option(
            "--novelty-threshold",
            "--threshold",
            help="Drop a row when its ROUGE-L F-measure with any pool instruction is [bold]above[/bold] this "
            "(the paper: 0.7). Scores are rouge_score's, bit for bit (no stemming). The same knob as "
            "generate's --novelty-threshold; --threshold, its earlier name here, still works.",
        ),
    ] = NOVELTY_THRESHOLD,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            metavar="POOL.jsonl",
            help="Put this file's instructions in the pool first, without writing them out (repeatable). "
            "The paper's seed format or any JSONL with the --field (or an 'instruction') field.",
        ),
    ] = None,
    annotate: Annotated[
        bool,
        typer.Option(
            "--annotate",
            help="Add the paper's 'most_similar_instructions' (top 10 with scores) to each kept row. "
            "Exact; somewhat slower than the plain decision.",
        ),
    ] = False,
    with_mean: Annotated[
        bool,
        typer.Option(
            "--with-mean",
            help="Also add 'avg_similarity_score' (the exact mean ROUGE-L over the whole pool; implies "
            "--annotate). Costly: every candidate is scored against every pool instruction, so time "
            "grows with rows x pool (quadratic), as in the paper's loop, though much faster than it.",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Drop near-duplicate instructions exactly as the Self-Instruct novelty filter does (ROUGE-L > threshold
    against the pool, kept rows join the pool at once), without its quadratic cost."""
    # Imported here: the index's compiled kernels take seconds to load, which every CLI start would pay.
    from selfinstruct.novelty.dedup import dedup_file

    console = Console(stderr=True)
    summary = dedup_file(
        input_file,
        out,
        field=field,
        threshold=threshold,
        against=against,
        with_mean=with_mean,
        annotate=annotate or with_mean,
        console=console if progress else None,
    )
    console.print(
        f"Kept {summary.kept:,} of {summary.read:,} rows ({summary.dropped:,} near-duplicates dropped); "
        f"pool {summary.pool:,} instructions; wrote {summary.out}",
        soft_wrap=True,
    )
