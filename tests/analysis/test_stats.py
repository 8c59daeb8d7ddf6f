from __future__ import annotations

from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from selfinstruct.analysis import sources, stats


def test_table1_on_hand_made_file(plain_file: Path) -> None:
    data = sources.load([plain_file])
    t = stats.table1(data.tasks)
    # Counted by hand from conftest.PLAIN_LINES.
    assert t.instructions == 3
    assert (t.classification, t.non_classification, t.unknown_classification) == (1, 1, 1)
    assert t.instances == 5
    assert t.empty_input_instances == 2
    assert t.avg_instruction_words == pytest.approx((7 + 6 + 7) / 3)
    assert t.avg_nonempty_input_words == pytest.approx((3 + 5 + 4) / 3)
    assert t.avg_output_words == pytest.approx((4 + 1 + 1 + 1 + 5) / 5)
    labels = [label for label, _ in t.rows()]
    assert labels[0] == "# of instructions" and "- # not yet classified" in labels


def test_table1_on_run_counts_only_kept_instances(run_dir: Path) -> None:
    data = sources.load([run_dir])
    t = stats.table1(data.tasks)
    assert (t.instructions, t.classification, t.non_classification) == (3, 1, 1)
    assert t.unknown_classification == 1  # "Summarize the paragraph." was never classified
    assert (t.instances, t.empty_input_instances) == (3, 1)
    assert t.avg_nonempty_input_words == pytest.approx((3 + 8) / 2)
    assert t.avg_output_words == pytest.approx((7 + 1 + 2) / 3)


def test_funnel_follows_filter_order_and_ends_with_kept(run_dir: Path) -> None:
    data = sources.load([run_dir])
    steps = stats.funnel(data.candidate_verdicts, stats.CANDIDATE_FILTER_ORDER)
    assert [(s.verdict, s.count) for s in steps] == [
        ("too_short", 1),
        ("blacklist", 1),
        ("novelty", 1),
        ("kept", 3),
    ]
    assert steps[-1].share == pytest.approx(0.5)
    unknown = stats.funnel({"kept": 2, "zeta": 1, "alpha": 3}, stats.CANDIDATE_FILTER_ORDER)
    assert [s.verdict for s in unknown] == ["alpha", "zeta", "kept"]  # unknown verdicts by count, kept last


def test_nearest_seed_scores_match_rouge_score() -> None:
    seeds = ["Write a haiku about autumn leaves.", "Classify the sentiment of a tweet."]
    texts = [
        "Write a haiku about spring rain.",
        "Classify the sentiment of the given tweet.",
        "Sum two numbers.",
    ]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [max(scorer.score(s, t)["rougeL"].fmeasure for s in seeds) for t in texts]
    assert stats.nearest_seed_scores(texts, seeds) == pytest.approx(expected)
    assert expected[2] == 0.0


def test_sample_rows_reproducible_and_in_order(plain_file: Path) -> None:
    tasks = sources.load([plain_file]).tasks
    a = stats.sample_rows(tasks, 2, seed=1)
    assert a == stats.sample_rows(tasks, 2, seed=1)
    assert [tasks.index(t) for t in a] == sorted(tasks.index(t) for t in a)
    assert stats.sample_rows(tasks, 10, seed=1) == tasks
