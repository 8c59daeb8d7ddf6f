"""`selfinstruct report`: the paper's §3 data analysis as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text


def report(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="A run directory, or one or more JSONL files in the paper's formats "
            "(machine_generated_instructions.jsonl, instance files, seed format); files are merged by "
            "instruction text.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML report.")] = Path(
        "report.html"
    ),
    figures_dir: Annotated[
        Path | None,
        typer.Option("--figures-dir", help="Also save every figure as a file in this folder."),
    ] = None,
    figure_format: Annotated[
        str,
        typer.Option("--figure-format", help="Format of the saved figures: [bold]png[/] or [bold]svg[/]."),
    ] = "png",
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Seeds for the ROUGE-L-to-seed histogram: a JSONL file with an 'instruction' field or a "
            "built-in set name (see `selfinstruct seeds`); a run directory's own seeds are used by default.",
        ),
    ] = None,
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", min=0, help="Random sample rows to show.")
    ] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the sample rows.")] = 0,
    spacy_model: Annotated[
        str | None,
        typer.Option(
            "--spacy-model",
            help="spaCy pipeline for the verb–noun parse (default: the first English one installed).",
        ),
    ] = None,
) -> None:
    """Write the data analysis report: Table 1 statistics, filter funnel, verb–noun sunburst,
    ROUGE-L-to-seed and length histograms, sample rows."""
    from selfinstruct.errors import InputFileError
    from selfinstruct.paths import check_output_dir, check_output_file, refuse_inputs, replacing
    from selfinstruct.store import DB_NAME

    # Before the (slow) imports and analysis: inputs exist, the report overwrites none of them and can
    # be written where asked.
    for source in sources:
        if not source.exists():
            raise InputFileError(source, None, "no such file or directory")
    check_output_file(out)
    refuse_inputs(out, [p / DB_NAME if p.is_dir() else p for p in sources])
    if seeds is not None:
        refuse_inputs(out, [Path(seeds)])
    if figures_dir is not None:
        check_output_dir(figures_dir, "--figures-dir")
    # Imported here: matplotlib and spaCy are slow to import and every CLI start would pay for them.
    from selfinstruct.analysis.report import ReportOptions, write_report
    from selfinstruct.analysis.sources import load

    console = Console(stderr=True)
    data = load(sources, seeds=seeds)
    with console.status("Analysing…"), replacing(out) as tmp:
        result = write_report(
            data,
            tmp,
            ReportOptions(sample_rows=sample_rows, seed=seed, spacy_model=spacy_model),
            figures_dir=figures_dir,
            figure_format=figure_format,
        )
    for note in result.notes.values():
        console.print(
            Text.assemble(("note: ", "yellow"), note)
        )  # the note as text: "[analysis]" is no markup
    console.print(f"Wrote {out} ({len(result.figures)} figures, {result.table1.instructions:,} instructions)")
    if figures_dir is not None:
        console.print(f"Figures saved in {figures_dir} as {figure_format}")
