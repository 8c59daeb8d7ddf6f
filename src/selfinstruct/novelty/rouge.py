"""ROUGE-L exactly as `rouge_score` (0.1.2) computes it, without the package.

`rouge_score` lowercases with Python's `str.lower()` (so e.g. "İ" becomes "i" + a combining dot and
yields the token "i"), turns every run of characters outside ``[a-z0-9]`` into a separator and drops
empty tokens. The F-measure is evaluated with the same float expression so that boundary cases
(an exact F of 0.7 that rounds to 0.7000000000000001) come out identical.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """rouge_score's default tokenizer without stemming."""
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: Sequence[object], b: Sequence[object]) -> int:
    """Length of the longest common subsequence (bit-parallel over Python ints, Hyyrö 2004)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[object, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def f_from_lcs(lcs: int, len_target: int, len_prediction: int) -> float:
    """rouge_score's F-measure for an LCS length; 0.0 when either side has no tokens."""
    if len_target == 0 or len_prediction == 0:
        return 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists, bit-identical to rouge_score's rougeL fmeasure."""
    return f_from_lcs(lcs_length(a, b), len(a), len(b))
