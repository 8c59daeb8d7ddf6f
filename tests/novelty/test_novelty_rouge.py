"""tokenize / rouge_l_f against the rouge_score package itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from selfinstruct.novelty.rouge import lcs_length, rouge_l_f, tokenize

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

# Texts mixing ASCII words, digits, punctuation, whitespace and non-ASCII letters whose lowercase
# form contains ASCII (e.g. "İ" -> "i̇", Kelvin sign -> "k").
_ALPHABET = st.sampled_from(list("abcXYZ019 \t\n.,!?-_'\"é中ßİK\u212aΩ😀"))
texts = st.text(_ALPHABET, max_size=40) | st.text(max_size=30)
token_lists = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=30)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_tokenize_matches_rouge_score(text: str) -> None:
    assert tokenize(text) == rs_tokenize.tokenize(text, None)


@settings(max_examples=400, deadline=None)
@given(texts, texts)
def test_rouge_l_f_matches_rouge_score_bitwise(a: str, b: str) -> None:
    expected = SCORER.score(a, b)["rougeL"].fmeasure
    got = rouge_l_f(tokenize(a), tokenize(b))
    assert got == expected
    assert rouge_l_f(tokenize(b), tokenize(a)) == expected  # the paper's argument order does not matter


@settings(max_examples=300, deadline=None)
@given(token_lists, token_lists)
def test_lcs_matches_rouge_score_table(a: list[str], b: list[str]) -> None:
    expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
    assert lcs_length(a, b) == expected
    assert rouge_l_f(a, b) == rouge_scorer._score_lcs(a, b).fmeasure


def test_edge_cases() -> None:
    assert tokenize("") == []
    assert tokenize("?!... --- ***") == []
    assert tokenize("Ünïcödé") == ["n", "c", "d"]  # non-ASCII letters separate tokens, like rouge_score
    assert rouge_l_f([], ["a"]) == 0.0
    assert rouge_l_f(["a"], ["a"]) == 1.0
    long_a = [f"w{i % 97}" for i in range(300)]
    long_b = list(reversed(long_a))
    assert rouge_l_f(long_a, long_b) == rouge_scorer._score_lcs(long_a, long_b).fmeasure
