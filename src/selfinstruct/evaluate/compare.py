"""Two evaluation reports side by side: per task, per category and overall, with the difference B - A and
a paired bootstrap confidence interval (items paired by id, resampled together, seeded)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from selfinstruct.errors import UserError
from selfinstruct.evaluate.report import EvalReport, ItemRecord, md_escape

CompareMetric = Literal["rougeL", "exact_match", "rating"]
# For `rating`: the four levels as numbers (A best), so a mean and a difference make sense.
RATING_VALUES = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}
# Options expected to differ between two reports worth comparing (where tasks and predictions came from),
# and the decoding settings a report of given predictions does not have.
_UNCOMPARED_OPTIONS = frozenset({"tasks", "predictions"})
_DECODING_OPTIONS = frozenset({"max_new_tokens", "stop"})


class Difference(BaseModel):
    name: str
    level: Literal["overall", "category", "task"]
    n: int
    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


class Comparison(BaseModel):
    a: str
    b: str
    metric: CompareMetric
    samples: int
    confidence: float
    seed: int
    paired: int
    only_a: int
    only_b: int
    rows: list[Difference]
    option_differences: dict[str, list[object]] = {}


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of mean(b - a) over `samples` resamples of the paired items."""
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diffs.size == 0:
        raise ValueError("no paired items")
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    # Resample in chunks: samples x n indices at once would be large for the full 11,810-item split.
    chunk = max(1, min(samples, 2_000_000 // diffs.size))
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        indices = rng.integers(0, diffs.size, size=(stop - start, diffs.size))
        means[start:stop] = diffs[indices].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def _item_value(metric: CompareMetric) -> Callable[[ItemRecord], float | None]:
    def value(item: ItemRecord) -> float | None:
        if metric == "rating":
            rating = item.judge.rating if item.judge else None
            return RATING_VALUES[rating] if rating else None
        return item.scores.get(metric)

    return value


def compare_reports(
    a: EvalReport,
    b: EvalReport,
    metric: CompareMetric = "rougeL",
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    a_name: str = "A",
    b_name: str = "B",
) -> Comparison:
    """Pair the items both reports scored (by id) and compare them overall, per category and per task."""
    if not 0 < confidence < 1:
        raise UserError("--confidence must be between 0 and 1")
    if samples < 1:
        raise UserError("--samples must be at least 1")
    value = _item_value(metric)
    b_items = {item.id: item for item in b.items}
    a_ids = {item.id for item in a.items}
    pairs: list[tuple[ItemRecord, float, float]] = []
    for item in a.items:
        other = b_items.get(item.id)
        if other is None:
            continue
        va, vb = value(item), value(other)
        if va is not None and vb is not None:
            pairs.append((item, va, vb))
    if not pairs:
        hint = " with a judge rating in both" if metric == "rating" else ""
        raise UserError(f"the two reports share no item{hint}; were they run on the same tasks?")

    def row(
        name: str, level: Literal["overall", "category", "task"], group: list[tuple[ItemRecord, float, float]]
    ) -> Difference:
        va = np.array([p[1] for p in group])
        vb = np.array([p[2] for p in group])
        low, high = paired_bootstrap_ci(va, vb, samples=samples, confidence=confidence, seed=seed)
        return Difference(
            name=name,
            level=level,
            n=len(group),
            a=round(float(va.mean()), 4),
            b=round(float(vb.mean()), 4),
            diff=round(float((vb - va).mean()), 4),
            ci_low=round(low, 4),
            ci_high=round(high, 4),
        )

    rows = [row("overall", "overall", pairs)]
    by_category: dict[str, list[tuple[ItemRecord, float, float]]] = {}
    by_task: dict[str, list[tuple[ItemRecord, float, float]]] = {}
    for pair in pairs:
        by_category.setdefault(pair[0].category, []).append(pair)
        by_task.setdefault(pair[0].task, []).append(pair)
    rows += [row(name, "category", group) for name, group in sorted(by_category.items())]
    rows += [row(name, "task", group) for name, group in by_task.items()]
    # Options that differ (prompt template, post-processing, limits...) make a comparison suspect: say so.
    skipped = _UNCOMPARED_OPTIONS
    if "predictions" in (a.model.backend, b.model.backend):
        skipped = skipped | _DECODING_OPTIONS
    differing = {
        key: [a.options.get(key), b.options.get(key)]
        for key in sorted(set(a.options) | set(b.options))
        if key not in skipped and a.options.get(key) != b.options.get(key)
    }
    return Comparison(
        option_differences=differing,
        a=a_name,
        b=b_name,
        metric=metric,
        samples=samples,
        confidence=confidence,
        seed=seed,
        paired=len(pairs),
        only_a=len(a_ids - set(b_items)),
        only_b=len(set(b_items) - a_ids),
        rows=rows,
    )


def render_comparison_markdown(comparison: Comparison) -> str:
    pct = f"{comparison.confidence * 100:g}%"
    lines = [
        f"# Comparison ({comparison.metric})",
        "",
        f"- A: `{md_escape(comparison.a)}`",
        f"- B: `{md_escape(comparison.b)}`",
        f"- Paired items: {comparison.paired} "
        f"(only in A: {comparison.only_a}, only in B: {comparison.only_b})",
        f"- Difference B - A with a paired bootstrap {pct} interval "
        f"({comparison.samples} resamples, seed {comparison.seed}); * marks intervals excluding 0",
    ]
    for key, (value_a, value_b) in comparison.option_differences.items():
        lines.append(f"- **Warning**: option `{md_escape(key)}` differs: A {value_a!r}, B {value_b!r}")
    for level, title in (("overall", "Overall"), ("category", "Per category"), ("task", "Per task")):
        rows = [r for r in comparison.rows if r.level == level]
        if not rows:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            f"| {level} | n | A | B | B - A | {pct} CI |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            mark = " *" if r.significant else ""
            lines.append(
                f"| {md_escape(r.name)} | {r.n} | {r.a:.2f} | {r.b:.2f} | {r.diff:+.2f}{mark} "
                f"| [{r.ci_low:+.2f}, {r.ci_high:+.2f}] |"
            )
    return "\n".join(lines) + "\n"
