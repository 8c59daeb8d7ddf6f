"""SuperNI's official metrics: exact match and ROUGE-L, best over an instance's references.

Semantics follow SuperNI's `compute_metrics` (the Tk-Instruct evaluation the Self-Instruct paper used):

- exact match compares SQuAD-style normalised strings (lower case, punctuation removed, whitespace
  collapsed; unlike SQuAD, articles are kept);
- ROUGE-L is the LCS F-measure of `rouge_score` with its default tokenizer and the Porter stemmer for
  English (lower case, runs of characters outside ``[a-z0-9]`` become spaces, tokens longer than 3
  characters are stemmed), computed on the raw prediction and reference;
- an instance scores the maximum over its references; aggregates are means times 100.

A deviation, for tasks whose output language is not English only: SuperNI's official script
(`eval/automatic/evaluation.py`) scores its cross-lingual track with GPT-2's tokenizer (BPE tokens, the
leading space marker removed, case kept, no stemming). GPT-2's tokenizer files are not available offline,
so here such outputs are split on whitespace (case kept, no stemming), as Tk-Instruct's earlier
`compute_metrics.py` did. The paper's SuperNI test set (119 tasks) is English, so its score is unaffected;
docs/pipeline.md says so too.

The tokenizer is reimplemented here (and tested against the `rouge_score` package) so evaluation does
not need that package at run time; only the stemmer comes from NLTK, the library `rouge_score` uses.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import Any

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_PUNCTUATION = frozenset(string.punctuation)


@cache
def _porter() -> Any:
    # Imported on first use: NLTK takes a quarter of a second to import, and the CLI should start fast.
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    # PorterStemmer is stateless after construction; caching per token makes repeated references
    # (labels like "Yes", "entailment") free.
    return str(_porter().stem(token))


def rouge_tokenize(text: str, stem: bool = True) -> list[str]:
    """Tokens as `rouge_score`'s default tokenizer makes them."""
    spaced = _NON_ALNUM.sub(" ", text.lower())
    tokens = spaced.split()
    if stem:
        # rouge_score only stems tokens longer than 3 characters.
        tokens = [_stem(t) if len(t) > 3 else t for t in tokens]
    # Stemming can in principle produce characters outside [a-z0-9]; rouge_score drops such tokens.
    return [t for t in tokens if t and _is_alnum_token(t)]


def _is_alnum_token(token: str) -> bool:
    return _NON_ALNUM.search(token) is None


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if not a or not b:
        return 0
    if len(b) > len(a):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            if token_a == token_b:
                current.append(previous[j - 1] + 1)
            else:
                current.append(max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def lcs_fmeasure(prediction_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists (0.0 when either is empty)."""
    if not prediction_tokens or not reference_tokens:
        return 0.0
    lcs = lcs_length(prediction_tokens, reference_tokens)
    if lcs == 0:
        return 0.0
    precision = lcs / len(prediction_tokens)
    recall = lcs / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str, english: bool = True) -> float:
    """ROUGE-L F-measure in [0, 1] as SuperNI computes it for one prediction and one reference."""
    if english:
        return lcs_fmeasure(rouge_tokenize(prediction), rouge_tokenize(reference))
    return lcs_fmeasure(prediction.split(), reference.split())


def normalize_answer(text: str) -> str:
    """SuperNI's answer normalisation: lower case, drop ASCII punctuation, collapse whitespace."""
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return " ".join(without_punctuation.split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def max_over_references(
    metric: Callable[[str, str], float], prediction: str, references: Sequence[str]
) -> float:
    """Best score of `prediction` against any reference; 0.0 when there are no references."""
    return max((float(metric(prediction, ref)) for ref in references), default=0.0)


def score_prediction(prediction: str, references: Sequence[str], english: bool = True) -> dict[str, float]:
    """Both metrics for one instance, in percent (0-100) like SuperNI's reports."""

    def rouge(pred: str, ref: str) -> float:
        return rouge_l(pred, ref, english=english)

    return {
        "rougeL": 100.0 * max_over_references(rouge, prediction, references),
        "exact_match": 100.0 * max_over_references(exact_match, prediction, references),
    }
