"""The evaluation report: per-item records, per-task / per-category / overall scores, JSON and Markdown.

All scores are percentages (0-100): an item's ROUGE-L is its best F-measure over the references times
100, its exact match 0 or 100, and a group's score the mean over its items (SuperNI's convention).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.judge import RATINGS, Rating, rating_counts
from selfinstruct.evaluate.registry import EVALUATIONS, get_evaluation
from selfinstruct.paths import atomic_write, check_output_file, refuse_inputs

SCHEMA_VERSION = 1
METRICS: tuple[str, ...] = ("rougeL", "exact_match")


class JudgeRecord(BaseModel):
    rating: Rating | None
    reason: str
    raw: str = Field(description="The judge's reply as received (untrusted text).")


class ItemRecord(BaseModel):
    """One evaluated instance, with everything a reviewer needs to rate it by hand."""

    id: str
    task: str
    category: str
    instruction: str
    input: str
    prompt: str
    prediction: str
    raw_output: str
    finish_reason: str
    references: list[str]
    scores: dict[str, float]
    judge: JudgeRecord | None = None


class GroupScore(BaseModel):
    name: str
    n: int
    rougeL: float
    exact_match: float
    category: str | None = None
    ratings: dict[str, int] | None = None


class ModelInfo(BaseModel):
    backend: str
    model: str | None
    api: str
    base_url: list[str] = Field(default_factory=list)


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    kind: str = Field(description="The evaluation that made it (a name in `registry.EVALUATIONS`).")
    created: str
    model: ModelInfo
    judge: ModelInfo | None = None
    options: dict[str, object] = Field(default_factory=dict)
    group_by: str = Field(
        default="category",
        description="What per_category groups by: SuperNI's category, a task file's motivation_app, or "
        "classification vs the rest.",
    )
    overall: GroupScore
    per_category: list[GroupScore]
    per_task: list[GroupScore]
    items: list[ItemRecord]
    usage: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per stage: requests, cache hits, tokens, errors, retries."
    )
    elapsed_s: float | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in EVALUATIONS:
            raise ValueError(f"unknown evaluation {value!r} (known: {', '.join(EVALUATIONS)})")
        return value


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def group_score(name: str, items: Sequence[ItemRecord], category: str | None = None) -> GroupScore:
    judged = [item for item in items if item.judge is not None]
    ratings = rating_counts([item.judge.rating for item in judged if item.judge]) if judged else None
    return GroupScore(
        name=name,
        n=len(items),
        rougeL=round(_mean([item.scores["rougeL"] for item in items]), 4),
        exact_match=round(_mean([item.scores["exact_match"] for item in items]), 4),
        category=category,
        ratings=ratings,
    )


def _grouped(items: Iterable[ItemRecord], key: Callable[[ItemRecord], str]) -> dict[str, list[ItemRecord]]:
    groups: dict[str, list[ItemRecord]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def aggregate(items: Sequence[ItemRecord]) -> tuple[GroupScore, list[GroupScore], list[GroupScore]]:
    """Overall, per-category (sorted by name) and per-task (in evaluation order) scores."""
    per_task = [
        group_score(task, task_items, category=task_items[0].category)
        for task, task_items in _grouped(items, lambda i: i.task).items()
    ]
    per_category = [
        group_score(category, category_items)
        for category, category_items in sorted(_grouped(items, lambda i: i.category).items())
    ]
    return group_score("overall", items), per_category, per_task


def write_report(report: EvalReport, path: Path) -> Path:
    """Write the JSON report and the Markdown beside it (same name, `.md`); returns the Markdown path."""
    with atomic_write(path) as handle:
        handle.write(report.model_dump_json(indent=2))
    markdown_path = path.with_suffix(".md")
    with atomic_write(markdown_path) as handle:
        handle.write(render_markdown(report))
    return markdown_path


def check_report_paths(out: Path, inputs: Sequence[Path | None]) -> None:
    """Before any work: `out` and the Markdown beside it must be writable files and none of the inputs
    (a predictions file, a task file, the response cache), which writing them would destroy."""
    given = [path for path in inputs if path is not None]
    for target in (out, out.with_suffix(".md")):
        check_output_file(target)
        refuse_inputs(target, given)


def load_report(path: Path) -> EvalReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such report") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, getattr(exc, "lineno", None), "not a JSON evaluation report") from exc
    try:
        return EvalReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputFileError(path, None, f"not an evaluation report ({where}: {first['msg']})") from exc


def md_escape(text: str) -> str:
    """Make untrusted text (task names, model names) safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def rating_shares(counts: dict[str, int]) -> dict[str, float]:
    """Percent of items per rating (A-D and unrated), over all judged items."""
    total = sum(counts.values())
    return {key: (100.0 * value / total if total else 0.0) for key, value in counts.items()}


def _model_label(info: ModelInfo) -> str:
    return f"{info.backend}:{info.model or '(default)'} ({info.api})"


def render_markdown(report: EvalReport) -> str:
    title = get_evaluation(report.kind).title
    overall = report.overall
    lines = [
        f"# {title}",
        "",
        f"- Model: `{md_escape(_model_label(report.model))}`",
        f"- Items: {overall.n} in {len(report.per_task)} tasks",
        f"- **ROUGE-L {_fmt(overall.rougeL)}**, exact match {_fmt(overall.exact_match)}",
    ]
    if report.judge is not None:
        lines.append(f"- Judge: `{md_escape(_model_label(report.judge))}`")
    options = ", ".join(
        f"{key}={value}" for key, value in sorted(report.options.items()) if value is not None
    )
    if options:
        lines.append(f"- Options: {md_escape(options)}")
    if overall.ratings is not None:
        shares = rating_shares(overall.ratings)
        lines += ["", "## Judge ratings", ""]
        header = ["", *RATINGS, "unrated"]
        lines += _table(
            header,
            [
                ["share %", *(_fmt(shares[key]) for key in header[1:])],
                ["count", *(str(overall.ratings[key]) for key in header[1:])],
            ],
        )
    lines += ["", f"## Per {md_escape(report.group_by)}", ""]
    lines += _category_table(report)
    lines += ["", "## Per task", ""]
    header = ["task", "category", "n", "ROUGE-L", "exact match"]
    with_ratings = any(task.ratings for task in report.per_task)
    if with_ratings:
        header += [f"{r} %" for r in RATINGS]
    rows = []
    for task in report.per_task:
        row = [md_escape(task.name), md_escape(task.category or ""), str(task.n), _fmt(task.rougeL)]
        row.append(_fmt(task.exact_match))
        if with_ratings:
            shares = rating_shares(task.ratings or {})
            row += [_fmt(shares.get(r, 0.0)) for r in RATINGS]
        rows.append(row)
    lines += _table(header, rows)
    return "\n".join(lines) + "\n"


def _category_table(report: EvalReport) -> list[str]:
    header = [md_escape(report.group_by), "n", "ROUGE-L", "exact match"]
    with_ratings = any(category.ratings for category in report.per_category)
    if with_ratings:
        header += [f"{r} %" for r in RATINGS]
    evaluation = get_evaluation(report.kind)
    official = evaluation.category_metric
    if official:
        header.append(evaluation.metric_column)
    rows = []
    for category in report.per_category:
        row = [md_escape(category.name), str(category.n), _fmt(category.rougeL), _fmt(category.exact_match)]
        if with_ratings:
            shares = rating_shares(category.ratings or {})
            row += [_fmt(shares.get(r, 0.0)) for r in RATINGS]
        if official:
            metric = official.get(category.name)
            row.append(f"{metric} {_fmt(getattr(category, metric))}" if metric else "-")
        rows.append(row)
    return _table(header, rows)
