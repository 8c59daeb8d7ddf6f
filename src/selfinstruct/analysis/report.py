"""`selfinstruct report`: one self-contained HTML file with the paper's §3 analysis of a run or plain files.

Figures are matplotlib SVGs inlined as data URIs (no CDN, no script), optionally also saved as PNG/SVG files.
Every piece of generated text reaches the page through Jinja2 autoescaping.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from selfinstruct.analysis import plots, stats, verbs
from selfinstruct.analysis.sources import AnalysisInput
from selfinstruct.errors import UserError
from selfinstruct.novelty import NOVELTY_THRESHOLD
from selfinstruct.paths import atomic_write
from selfinstruct.quality.questions import PAPER_TABLE2
from selfinstruct.quality.report import COLUMNS, HEADERS, agreement_cell, cell


@dataclass(frozen=True)
class ReportOptions:
    sample_rows: int = 20
    seed: int = 0
    spacy_model: str | None = None
    top_verbs: int = 20
    top_nouns: int = 4


@dataclass(frozen=True)
class FigureOut:
    key: str
    title: str
    svg: bytes
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode("ascii")


@dataclass
class Report:
    html: str
    figures: list[FigureOut]
    notes: dict[str, str]
    timings: dict[str, float]
    table1: stats.Table1


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("selfinstruct.analysis", "templates"),
        autoescape=True,  # LM output is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_report(data: AnalysisInput, options: ReportOptions, figure_formats: Sequence[str] = ()) -> Report:
    timings: dict[str, float] = {}
    notes: dict[str, str] = {}
    figures: list[FigureOut] = []
    formats = ["svg", *[f for f in figure_formats if f != "svg"]]

    def add(key: str, title: str, fig: object) -> None:
        rendered = plots.render(fig, formats)  # type: ignore[arg-type]
        figures.append(FigureOut(key, title, rendered["svg"], {f: rendered[f] for f in figure_formats}))

    t0 = time.perf_counter()
    table = stats.table1(data.tasks)
    lens = stats.lengths(data.tasks)
    timings["table1"] = time.perf_counter() - t0

    cand_funnel = stats.funnel(data.candidate_verdicts, stats.CANDIDATE_FILTER_ORDER)
    inst_funnel = stats.funnel(data.instance_verdicts, stats.INSTANCE_FILTER_ORDER)
    if cand_funnel:
        add(
            "funnel_candidates",
            "Candidate instructions per filter verdict",
            plots.funnel_chart(cand_funnel, "Stage 1: candidate instructions by verdict"),
        )
    if inst_funnel:
        add(
            "funnel_instances",
            "Parsed instances per filter verdict",
            plots.funnel_chart(inst_funnel, "Stage 3: parsed instances by verdict"),
        )
    if not cand_funnel and not inst_funnel:
        notes["funnel"] = (
            "Plain files hold only what was kept, so there is no filter funnel; a run directory has one."
        )

    t0 = time.perf_counter()
    parser, why = verbs.load_parser(options.spacy_model)
    verb_summary = None
    if parser is None:
        notes["verbs"] = f"Verb–noun analysis skipped: {why}."
    else:
        pairs = verbs.parse_pairs(parser, (t.instruction for t in data.tasks))
        verb_summary = verbs.summarise(pairs, options.top_verbs, options.top_nouns)
        add("verb_noun", "Root verbs and their direct-object nouns", plots.sunburst(verb_summary))
    timings["verbs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rouge = None
    if data.seeds:
        scores = stats.nearest_seed_scores([t.instruction for t in data.tasks], data.seeds)
        rouge = {
            "n": len(scores),
            "mean": sum(scores) / len(scores) if scores else 0.0,
            "threshold": NOVELTY_THRESHOLD,
            "above_threshold": sum(1 for s in scores if s > NOVELTY_THRESHOLD),
        }
        add("rouge_seed", "ROUGE-L with the most similar seed instruction", plots.rouge_histogram(scores))
    else:
        notes["rouge"] = (
            "No seed instructions are known for these files; pass --seeds PATH to draw this histogram."
        )
    timings["rouge"] = time.perf_counter() - t0

    add(
        "lengths",
        "Length distributions",
        plots.length_histograms(
            {"instruction": lens.instruction, "non-empty input": lens.nonempty_input, "output": lens.output}
        ),
    )

    samples = stats.sample_rows(data.tasks, options.sample_rows, options.seed)
    html = (
        _env()
        .get_template("report.html")
        .render(
            source=data.source,
            kind=data.kind,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            table1=table,
            seeds=len(data.seeds),
            cand_funnel=cand_funnel,
            inst_funnel=inst_funnel,
            verb_summary=verb_summary,
            parser_name=parser.name if parser else None,
            rouge=rouge,
            figures={f.key: f for f in figures},
            notes=notes,
            samples=samples,
            options=options,
            quality=data.quality,
            quality_rows=data.quality.rows() if data.quality else [],
            quality_columns=[(key, HEADERS[key]) for key in COLUMNS],
            paper_table2=PAPER_TABLE2,
            share_cell=cell,
            agreement_cell=agreement_cell,
        )
    )
    return Report(html=html, figures=figures, notes=notes, timings=timings, table1=table)


def write_report(
    data: AnalysisInput,
    out: Path,
    options: ReportOptions,
    figures_dir: Path | None = None,
    figure_format: str = "png",
) -> Report:
    if figure_format not in plots.FORMATS:
        raise UserError(f"--figure-format must be one of {', '.join(plots.FORMATS)}, not {figure_format!r}")
    report = build_report(data, options, [figure_format] if figures_dir else [])
    # Each file whole or not at all; a failure of the disk is the machine's (exit 1), naming the path.
    with atomic_write(out) as handle:
        handle.write(report.html)
    if figures_dir is not None:
        for fig in report.figures:
            with atomic_write(figures_dir / f"{fig.key}.{figure_format}", binary=True) as handle:
                handle.write(fig.files[figure_format])
    return report
