"""Paired bootstrap and report comparison."""

from __future__ import annotations

import numpy as np
import pytest

from selfinstruct.errors import UserError
from selfinstruct.evaluate.compare import compare_reports, paired_bootstrap_ci, render_comparison_markdown
from selfinstruct.evaluate.report import ItemRecord, JudgeRecord, ModelInfo
from selfinstruct.evaluate.run import build_report


def test_bootstrap_is_seeded_and_brackets_the_mean_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 100, size=200)
    b = a + rng.normal(5, 10, size=200)
    first = paired_bootstrap_ci(a, b, samples=500, seed=7)
    assert first == paired_bootstrap_ci(a, b, samples=500, seed=7)
    assert first != paired_bootstrap_ci(a, b, samples=500, seed=8)
    low, high = first
    mean = float((b - a).mean())
    assert low < mean < high
    assert low > 0  # a +5 shift with sd 10 over 200 pairs is clearly detected
    # A wider confidence level gives a wider interval.
    wide = paired_bootstrap_ci(a, b, samples=500, seed=7, confidence=0.99)
    assert wide[0] <= low and wide[1] >= high


def test_bootstrap_of_a_constant_shift_is_that_shift() -> None:
    a = np.arange(50, dtype=float)
    low, high = paired_bootstrap_ci(a, a + 3.0, samples=200, seed=0)
    assert low == pytest.approx(3.0) and high == pytest.approx(3.0)


def test_bootstrap_chunks_agree_with_expected_width() -> None:
    # Many items force several resampling chunks; the interval must stay near the normal approximation.
    rng = np.random.default_rng(3)
    diffs = rng.normal(0, 1, size=40_000)
    low, high = paired_bootstrap_ci(np.zeros_like(diffs), diffs, samples=200, seed=0)
    half_width = 1.96 / np.sqrt(diffs.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.25)


def _record(item_id: str, task: str, category: str, rouge: float, rating: str | None = None) -> ItemRecord:
    return ItemRecord(
        id=item_id,
        task=task,
        category=category,
        instruction="i",
        input="x",
        prompt="p",
        prediction="y",
        raw_output="y",
        finish_reason="stop",
        references=["y"],
        scores={"rougeL": rouge, "exact_match": 100.0 if rouge == 100.0 else 0.0},
        judge=JudgeRecord(rating=rating, reason="", raw=rating or "?") if rating is not None else None,  # type: ignore[arg-type]
    )


def _report(records: list[ItemRecord], options: dict[str, object] | None = None):
    info = ModelInfo(backend="openai", model="m", api="completion")
    return build_report("superni", records, info, options or {"postprocess": "first-sentence"})


def test_compare_pairs_items_by_id_per_task_and_category() -> None:
    a = _report(
        [_record(f"t1-{i}", "t1", "Cat", 20.0) for i in range(4)]
        + [_record(f"t2-{i}", "t2", "Dog", 50.0) for i in range(4)]
        + [_record("only-a", "t2", "Dog", 0.0)]
    )
    b = _report(
        [_record(f"t1-{i}", "t1", "Cat", 60.0) for i in range(4)]
        + [_record(f"t2-{i}", "t2", "Dog", 50.0) for i in reversed(range(4))]
    )
    comparison = compare_reports(a, b, samples=100, seed=0)
    assert (comparison.paired, comparison.only_a, comparison.only_b) == (8, 1, 0)
    rows = {(r.level, r.name): r for r in comparison.rows}
    assert rows["overall", "overall"].diff == pytest.approx(20.0)
    assert rows["task", "t1"].a == pytest.approx(20.0) and rows["task", "t1"].b == pytest.approx(60.0)
    assert rows["task", "t1"].significant
    assert rows["category", "Dog"].diff == 0.0 and not rows["category", "Dog"].significant
    markdown = render_comparison_markdown(comparison)
    assert "| t1 | 4 | 20.00 | 60.00 | +40.00 * |" in markdown
    assert comparison.option_differences == {} and "Warning" not in markdown


def test_compare_warns_when_options_differ() -> None:
    a = _report([_record("x", "t", "c", 1.0)], {"postprocess": "first-sentence", "tasks": "a"})
    b = _report([_record("x", "t", "c", 1.0)], {"postprocess": "strip", "tasks": "b"})
    comparison = compare_reports(a, b, samples=10)
    assert comparison.option_differences == {"postprocess": ["first-sentence", "strip"]}
    assert "option `postprocess` differs" in render_comparison_markdown(comparison)


def test_compare_on_judge_ratings_skips_unrated() -> None:
    a = _report(
        [_record("1", "t", "c", 0, "D"), _record("2", "t", "c", 0, "B"), _record("3", "t", "c", 0, None)]
    )
    b = _report(
        [_record("1", "t", "c", 0, "A"), _record("2", "t", "c", 0, "B"), _record("3", "t", "c", 0, "A")]
    )
    comparison = compare_reports(a, b, metric="rating", samples=50)
    overall = comparison.rows[0]
    assert overall.n == 2
    assert (overall.a, overall.b) == (pytest.approx(2.0), pytest.approx(3.5))


def test_compare_without_common_items_is_a_user_error() -> None:
    with pytest.raises(UserError, match="share no item"):
        compare_reports(_report([_record("x", "t", "c", 1.0)]), _report([_record("y", "t", "c", 1.0)]))
