"""NoveltyIndex against a brute-force loop over rouge_score (decisions, top-k lists, scores, means)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.records import SimilarInstruction


def _score(target_tokens: list[str], prediction_tokens: list[str]) -> float:
    # rouge_score's own LCS + F code on its own tokens (what RougeScorer.score runs for "rougeL").
    return rouge_scorer._score_lcs(target_tokens, prediction_tokens).fmeasure


def reference(
    seeds: list[str], cands: list[str], threshold: float, k: int, add: bool = True
) -> list[tuple[bool, list[tuple[str, float]], float | None]]:
    """The paper's loop: every candidate against every pool entry; kept ones join the pool."""
    pool = list(seeds)
    pool_tokens = [rs_tokenize.tokenize(t, None) for t in pool]
    out = []
    for cand in cands:
        ct = rs_tokenize.tokenize(cand, None)
        scores = [_score(ct, pt) for pt in pool_tokens]
        kept = not (max(scores) if scores else 0.0) > threshold
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:k]
        mean = float(np.mean(scores)) if scores else None
        out.append((kept, [(pool[i], scores[i]) for i in order], mean))
        if kept and add:
            pool.append(cand)
            pool_tokens.append(ct)
    return out


def run_index(
    seeds: list[str],
    cands: list[str],
    threshold: float,
    k: int,
    with_mean: bool = False,
    add: bool = True,
    dense_min_df: int | None = None,
) -> list[tuple[bool, list[tuple[str, float]], float | None]]:
    index = NoveltyIndex(threshold=threshold, top_k=k, with_mean=with_mean)
    if dense_min_df is not None:  # give tokens dense count columns from that many items on, whatever the pool
        index._dense_min_df = dense_min_df
        index._dense_share = 10**9
    for s in seeds:
        index.add(s)
    out = []
    for cand in cands:
        v = index.check_and_add(cand) if add else index.check(cand)
        out.append((v.kept, [(s.instruction, s.score) for s in v.most_similar], v.mean_score))
    assert len(index) == len(seeds) + (sum(kept for kept, _, _ in out) if add else 0)
    return out


# Small vocabularies make collisions, ties and scores near the threshold common.
_WORDS = ["a", "b", "c", "d", "e", "f", "Write", "write", "a.", "B!", "--", "é", "İ", "x1"]
instruction = st.lists(st.sampled_from(_WORDS), max_size=14).map(" ".join)
instructions = st.lists(instruction, max_size=25)


@settings(max_examples=150, deadline=None)
@given(instructions, instructions, st.sampled_from([0.0, 0.5, 0.7, 0.75, 1.0]), st.sampled_from([1, 3, 10]))
def test_check_and_add_equals_reference(seeds: list[str], cands: list[str], threshold: float, k: int) -> None:
    expected = reference(seeds, cands, threshold, k)
    got = run_index(seeds, cands, threshold, k, with_mean=True)
    assert got == expected
    without_mean = [(kept, top, None) for kept, top, _ in expected]
    for dense_min_df in (1, 3):  # the dense accumulator path, from the first common token on
        assert run_index(seeds, cands, threshold, k, dense_min_df=dense_min_df) == without_mean


@settings(max_examples=100, deadline=None)
@given(instructions, instructions, st.sampled_from([0.5, 0.7]))
def test_decision_only_mode_and_check_without_add(
    seeds: list[str], cands: list[str], threshold: float
) -> None:
    expected = reference(seeds, cands, threshold, 10)
    for dense_min_df in (None, 1):
        decisions = [kept for kept, _, _ in run_index(seeds, cands, threshold, 0, dense_min_df=dense_min_df)]
        assert decisions == [kept for kept, _, _ in expected]
    assert run_index(seeds, cands, threshold, 10, add=False) == [
        (kept, top, None) for kept, top, _ in reference(seeds, cands, threshold, 10, add=False)
    ]


def test_float_boundary_at_exactly_0_7() -> None:
    """Pairs whose exact F is 0.7: rouge_score's float decides, in both directions."""
    above = at_or_below = 0
    for m in range(1, 41):
        for n in range(1, 41):
            if (7 * (m + n)) % 20:
                continue
            lcs = 7 * (m + n) // 20
            if lcs > min(m, n):
                continue
            shared = [f"s{i}" for i in range(lcs)]
            cand = " ".join(shared + [f"c{i}" for i in range(m - lcs)])
            item = " ".join(shared + [f"p{i}" for i in range(n - lcs)])
            expected = reference([item], [cand], 0.7, 1)
            assert run_index([item], [cand], 0.7, 1) == [(kept, top, None) for kept, top, _ in expected]
            assert run_index([item], [cand], 0.7, 0)[0][0] == expected[0][0]
            if expected[0][0]:
                at_or_below += 1
            else:
                above += 1
    assert above > 0 and at_or_below > 0  # the boundary really goes both ways


def test_empty_pool_and_empty_candidates() -> None:
    index = NoveltyIndex(top_k=10, with_mean=True)
    v = index.check("anything at all")
    assert (v.kept, v.max_score, v.most_similar, v.mean_score) == (True, 0.0, (), None)
    for text in ["first one", "?!", "second one here"]:
        index.add(text)
    v = index.check("... !!! ???")  # no tokens: rouge_score scores 0 against everything
    assert v.kept and v.max_score == 0.0 and v.mean_score == 0.0
    assert v.most_similar == tuple(SimilarInstruction(t, 0.0) for t in ["first one", "?!", "second one here"])
    assert len(index) == 3
    v = index.check_and_add("first one")
    assert not v.kept and v.max_score == 1.0 and len(index) == 3


def test_one_word_unicode_and_very_long_instructions() -> None:
    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(40)]
    seeds = ["Word", "naïve café", "İstanbul", "ÜBER über"]
    cands = ["word", "WORD!", "cafe", "naive", "istanbul", "i̇stanbul", "uber", "ber"]
    for length in (63, 64, 65, 127, 128, 129, 300):
        base = list(rng.choice(vocab, size=length))
        seeds.append(" ".join(base))
        for _ in range(3):
            edited = list(base)
            for _ in range(int(rng.integers(1, length // 3))):
                edited[int(rng.integers(length))] = str(rng.choice(vocab))
            cands.append(" ".join(edited))
        cands.append(" ".join(rng.choice(vocab, size=int(rng.integers(1, 400)))))
    for k in (1, 10):
        expected_k = reference(seeds, cands, 0.7, k)
        assert run_index(seeds, cands, 0.7, k, with_mean=True) == expected_k
        assert run_index(seeds, cands, 0.7, k, dense_min_df=1) == [(a, b, None) for a, b, _ in expected_k]
    expected = [kept for kept, _, _ in reference(seeds, cands, 0.7, 1)]
    for dense_min_df in (None, 1):
        decisions = run_index(seeds, cands, 0.7, 0, dense_min_df=dense_min_df)
        assert [kept for kept, _, _ in decisions] == expected


def test_dense_counts_saturate_without_losing_exactness() -> None:
    """Dense columns hold counts up to 255: a token repeated more often (in the pool or the candidate)
    must still give rouge_score's scores."""
    many = " ".join(["a"] * 300)
    seeds = [many, "a b c", " ".join(["a"] * 200 + ["b"] * 60), "b " * 3 + "c"]
    cands = [
        " ".join(["a"] * 260),
        " ".join(["a"] * 255 + ["b"]),
        " ".join(["a"] * 254 + ["c"]),
        " ".join(["a"] * 120 + ["b"] * 5),
        "a a b",
        "c",
    ]
    for k in (1, 10):
        expected = [(kept, top, None) for kept, top, _ in reference(seeds, cands, 0.7, k)]
        for dense_min_df in (None, 1):
            assert run_index(seeds, cands, 0.7, k, dense_min_df=dense_min_df) == expected


def _candidates_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "candidates.py"
    spec = importlib.util.spec_from_file_location("bench_candidates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_generated_candidates_equal_reference() -> None:
    """800 realistic candidates (with near-duplicates) on 175 seeds: pools large enough for the pruning."""
    gen = _candidates_module()
    seeds = gen.seeds()
    cands = list(gen.generate(800, seed=3))
    expected = reference(seeds, cands, 0.7, 10)
    assert 0 < sum(kept for kept, _, _ in expected) < len(cands)
    without_mean = [(kept, top, None) for kept, top, _ in expected]
    assert run_index(seeds, cands, 0.7, 10) == without_mean
    assert run_index(seeds, cands, 0.7, 10, dense_min_df=8) == without_mean
    for dense_min_df in (None, 8):
        decisions = run_index(seeds, cands, 0.7, 0, dense_min_df=dense_min_df)
        assert [kept for kept, _, _ in decisions] == [kept for kept, _, _ in expected]


def test_one_constant_is_the_novelty_thresholds_default_everywhere() -> None:
    """The run's setting, the index, `dedup` and the contamination check start from the paper's 0.7, written
    once (`NOVELTY_THRESHOLD`)."""
    import inspect

    from selfinstruct.cli.dedup import dedup as dedup_command
    from selfinstruct.config import FilterSettings
    from selfinstruct.novelty import NOVELTY_THRESHOLD
    from selfinstruct.novelty.dedup import dedup_file
    from selfinstruct.quality.contamination import DEFAULT_THRESHOLD

    assert NOVELTY_THRESHOLD == 0.7  # the paper's
    assert FilterSettings().novelty_threshold == NoveltyIndex().threshold == NOVELTY_THRESHOLD
    for function in (dedup_file, dedup_command):
        assert inspect.signature(function).parameters["threshold"].default == NOVELTY_THRESHOLD
    assert DEFAULT_THRESHOLD == NOVELTY_THRESHOLD
