"""`selfinstruct contamination`: does generated data overlap the evaluation sets it will be evaluated on?
Parses, loads both sides, calls `quality.contamination.check_contamination`, prints and writes the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from selfinstruct.errors import CommandError, UserError
from selfinstruct.novelty import NOVELTY_THRESHOLD

if TYPE_CHECKING:
    from selfinstruct.quality.contamination import ContaminationReport, GeneratedData

META_KEY = "contamination"


def contamination(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR|FILE",
            help="A run directory (its kept instructions and kept instances) or a JSONL file: "
            "instruction/input/output rows (export/all_generated_instances.jsonl), seed-format rows with "
            "'instances', or instructions alone.",
            show_default=False,
        ),
    ],
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            metavar="SET",
            help="An evaluation set (repeatable): [bold]user-oriented[/] (the paper's 252 tasks, built in), "
            "a SuperNI folder (the tasks its test_tasks.txt lists, as eval superni --tasks reads it; every "
            "instance) or a JSONL file in the paper's seed-task format.",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            help="Flag a generated instruction whose ROUGE-L F with an evaluation instruction (SuperNI: "
            "definition) is [bold]above[/] this (the paper's novelty threshold; exactly 0.7 is not flagged).",
        ),
    ] = NOVELTY_THRESHOLD,
    ngram: Annotated[
        int,
        typer.Option(
            "--ngram",
            min=1,
            help="Flag a generated instance whose instruction, input or output shares this many consecutive "
            "tokens (lowercased, punctuation ignored) with an evaluation input or reference (GPT-3's 13). "
            "An evaluation text shorter than that counts whole from 8 tokens up; shorter ones are skipped.",
        ),
    ] = 13,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the full report (every pair, both sides' text) as JSON."),
    ] = None,
    show: Annotated[
        int, typer.Option("--show", min=0, help="Pairs of each kind to print (the report has them all).")
    ] = 10,
) -> None:
    """Check generated data for overlap with evaluation sets, before training on it.

    Two checks per set: each generated instruction against the set's instructions (ROUGE-L F above
    --threshold, scores exactly as rouge_score), and each generated instance against the set's instances
    (a shared --ngram of tokens, GPT-3's contamination rule). Prints the counts per set and the closest
    pairs; --out writes every pair. For a run directory the counts are kept in the run (a dataset card
    shows them). Finding contamination is not an error (exit code 0); drop it from the fine-tuning data
    with [cyan]selfinstruct prepare RUN_DIR --decontaminate SET[/]. Not part of the paper."""
    # Imported here: the evaluation loaders and the novelty index's compiled kernels are slow to import.
    from selfinstruct.evaluate.sets import load_eval_sets
    from selfinstruct.paths import atomic_write, check_output_file, refuse_inputs
    from selfinstruct.quality.contamination import check_contamination, ids_to_drop, read_generated_file
    from selfinstruct.store import DB_NAME

    if not against:
        raise UserError(
            "--against: give at least one evaluation set (user-oriented, a SuperNI folder, a file)"
        )
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {threshold}")
    if not source.exists():
        raise UserError(f"{source}: no such run directory or file")
    is_run = source.is_dir()
    if out is not None:
        check_output_file(out)
        refuse_inputs(out, [source / DB_NAME if is_run else source, *(Path(a) for a in against)])
    console = Console(stderr=True)
    eval_texts = load_eval_sets(against)
    data = _read_run(source) if is_run else read_generated_file(source)
    with console.status("Checking…"):
        report = check_contamination(
            data.instructions, data.instances, eval_texts, threshold=threshold, ngram=ngram
        )
    # What `prepare --decontaminate` would leave out: also every instance of a flagged instruction.
    dropped = len(ids_to_drop(data.instances, report))
    _print(console, report, show, dropped)
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(
                {**report.as_dict(), "instances_to_drop": dropped}, handle, ensure_ascii=False, indent=1
            )
            handle.write("\n")
        _say(console, f"Wrote the full report to {out}")
    if is_run:
        _store_summary(console, source, {**report.summary(), "instances_to_drop": dropped})


def _read_run(run_dir: Path) -> GeneratedData:
    from selfinstruct.quality.contamination import generated_from_run
    from selfinstruct.store import RunStore

    store = RunStore.open(run_dir)
    try:
        return generated_from_run(store)
    finally:
        store.close()


def _store_summary(console: Console, run_dir: Path, summary: dict[str, object]) -> None:
    """The counts go into the run's meta; a run another process is writing keeps its old ones (said)."""
    from selfinstruct.paths import lock_folder
    from selfinstruct.store import RunStore

    try:
        lock = lock_folder(run_dir, "run")
    except CommandError as exc:
        _say(console, f"Not recorded in the run: {exc}")
        return
    store = RunStore.open(run_dir)
    store.lock = lock
    try:
        store.set_meta(META_KEY, summary)
    finally:
        store.close()


def _say(console: Console, message: str) -> None:
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _print(console: Console, report: ContaminationReport, show: int, dropped: int) -> None:
    _say(
        console,
        f"Checked {report.generated_instructions} instructions (ROUGE-L > {report.threshold}) and "
        f"{report.generated_instances} instances (a shared {report.ngram}-gram) against "
        f"{len(report.sets)} evaluation set(s).",
    )
    counts = Table(title="Contamination per evaluation set")
    for column in ("evaluation set", "tasks", "instances", "instructions flagged", "instances flagged"):
        counts.add_column(column, justify="left" if column == "evaluation set" else "right", overflow="fold")
    for s in report.sets:
        counts.add_row(
            Text(s.name),
            *(str(n) for n in (s.tasks, s.instances, s.instructions_flagged, s.instances_flagged)),
        )
    console.print(counts)
    # Generated and evaluation text is shown as plain Text: never read as rich markup.
    if report.instruction_matches and show:
        table = Table(title=f"Closest instruction pairs (ROUGE-L F > {report.threshold})")
        for column in ("score", "generated", "evaluation set", "evaluation task", "evaluation instruction"):
            table.add_column(column, overflow="fold")
        for m in sorted(report.instruction_matches, key=lambda m: -m.score)[:show]:
            table.add_row(
                f"{m.score:.3f}",
                Text(_short(m.generated)),
                Text(m.eval_set),
                Text(m.eval_task),
                Text(_short(m.eval_instruction)),
            )
        console.print(table)
    if report.instance_matches and show:
        table = Table(title=f"Instances sharing a {report.ngram}-gram (the first found)")
        for column in ("generated", "field", "evaluation set", "evaluation item", "shared tokens"):
            table.add_column(column, overflow="fold")
        for i in report.instance_matches[:show]:
            table.add_row(
                Text(i.where or str(i.generated_id)),
                Text(f"{i.generated_field} / {i.eval_field}"),
                Text(i.eval_set),
                Text(i.eval_item),
                Text(_short(i.ngram)),
            )
        console.print(table)
    flagged_i, flagged_x = len(report.flagged_instruction_ids), len(report.flagged_instance_ids)
    if report.found:
        _say(
            console,
            f"Contamination found: {flagged_i} instruction(s) above the threshold, {flagged_x} instance(s) "
            f"sharing an n-gram; prepare --decontaminate SET would leave out {dropped} of "
            f"{report.generated_instances} instances (those and every instance of a flagged instruction).",
        )
    else:
        _say(console, "No contamination found.")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
