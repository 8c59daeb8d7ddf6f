"""Deduplicating any JSONL file with the pipeline's exact novelty index (`selfinstruct dedup`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.jsonl import read_jsonl
from selfinstruct.novelty import NOVELTY_THRESHOLD
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.paths import atomic_write, check_output_file, refuse_inputs


@dataclass(frozen=True)
class DedupSummary:
    read: int
    kept: int
    pool: int
    out: Path

    @property
    def dropped(self) -> int:
        return self.read - self.kept


def _text(path: Path, number: int, row: dict[str, object], field: str, fallback: str | None = None) -> str:
    value = row.get(field)
    if value is None and fallback is not None:
        value = row.get(fallback)
    if value is None:
        raise InputFileError(path, number, f"no '{field}' field")
    if not isinstance(value, str):
        raise InputFileError(path, number, f"field '{field}' is not a string")
    return value


def dedup_file(
    input_path: Path,
    out: Path,
    *,
    field: str = "instruction",
    threshold: float = NOVELTY_THRESHOLD,
    against: list[Path] | None = None,
    with_mean: bool = False,
    annotate: bool = False,
    console: Console | None = None,
) -> DedupSummary:
    """Keep the rows of `input_path` whose `field` is novel (ROUGE-L F <= threshold against the pool of
    `against` instructions and the rows kept so far), in input order, written whole to `out`."""
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--novelty-threshold must be between 0 and 1, got {threshold}")
    # Checked before any work: the output replaces `out` at the end, which must not be one of the inputs
    # (also not through a symlink or a hard link) nor a directory.
    check_output_file(out)
    refuse_inputs(out, [input_path, *(against or [])])
    index = NoveltyIndex(threshold=threshold, top_k=10 if annotate else 0, with_mean=with_mean)
    for path in against or []:
        for number, _, row in read_jsonl(path):
            index.add(_text(path, number, row, field, fallback="instruction"))

    if not input_path.exists():
        raise InputFileError(input_path, None, "no such file")
    read = kept = 0
    size = input_path.stat().st_size
    progress = Progress(
        TextColumn("[bold]dedup"),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} rows, kept {task.fields[kept]:,}"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        disable=console is None,
    )
    with progress, atomic_write(out) as sink:
        task = progress.add_task("dedup", total=size, kept=0, rows=0)
        pending = 0
        for number, line, row in read_jsonl(input_path):
            verdict = index.check_and_add(_text(input_path, number, row, field))
            read += 1
            if verdict.kept:
                kept += 1
                if annotate:
                    row["most_similar_instructions"] = {s.instruction: s.score for s in verdict.most_similar}
                    if verdict.mean_score is not None:
                        row["avg_similarity_score"] = verdict.mean_score
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                else:
                    sink.write(line + "\n")
            pending += len(line.encode("utf-8")) + 1
            if read % 256 == 0:
                progress.update(task, advance=pending, kept=kept, rows=read)
                pending = 0
        progress.update(task, completed=size, kept=kept, rows=read)
    return DedupSummary(read=read, kept=kept, pool=len(index), out=out)
