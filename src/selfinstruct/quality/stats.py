"""Table 2 as a rater answered it (shares of yes with 95% intervals, unrated counted apart) and the agreement
of two raters on the items both rated (percent agreement, Cohen's kappa)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from selfinstruct.quality.questions import KEYS
from selfinstruct.records import Answers, Question

K = TypeVar("K", bound=Hashable)  # the item keys two raters' answers are matched on

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_interval(yes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, in percent; (0, 100) when n is 0. Unlike the normal
    approximation it stays inside [0, 100] and is sensible at 0 or n yes, which small samples often give."""
    if n <= 0:
        return 0.0, 100.0
    p = yes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


@dataclass(frozen=True)
class Share:
    """One question's yes share among the items rated on it."""

    yes: int
    rated: int
    unrated: int

    @property
    def percent(self) -> float | None:
        return 100 * self.yes / self.rated if self.rated else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.yes, self.rated)

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        percent = self.percent
        return {
            "yes": self.yes,
            "rated": self.rated,
            "unrated": self.unrated,
            "percent": None if percent is None else round(percent, 1),
            "ci95": [round(low, 1), round(high, 1)],
        }


@dataclass(frozen=True)
class Table2:
    """One rater's (or judge's) Table 2 over `items` items: a `Share` per question and for all three."""

    rater: str
    items: int
    shares: Mapping[str, Share]  # KEYS, then "all"

    def as_dict(self) -> dict[str, object]:
        return {"rater": self.rater, "items": self.items} | {k: s.as_dict() for k, s in self.shares.items()}


def table2(rater: str, answers: Sequence[Answers]) -> Table2:
    """Shares of yes per question over the items answered on it, and of "all three yes" over the items
    where that is known (any no, or three yes). Unrated answers are counted, never guessed."""
    shares: dict[str, Share] = {}
    for key in KEYS:
        values = [a.get(key) for a in answers]
        rated = [v for v in values if v is not None]
        shares[key] = Share(sum(rated), len(rated), len(values) - len(rated))
    both = [a.all_yes for a in answers]
    known = [v for v in both if v is not None]
    shares["all"] = Share(sum(known), len(known), len(both) - len(known))
    return Table2(rater, len(answers), shares)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Unweighted Cohen's kappa of two raters' labels on the same items; None when undefined
    (no items, or both raters always gave one and the same label)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    if not a or len(a) != len(b):
        return None
    return 100.0 * sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


@dataclass(frozen=True)
class QuestionAgreement:
    """Two raters on one question, over the items both answered (yes or no) on it."""

    question: str
    n: int
    percent: float | None
    kappa: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "question": self.question,
            "n": self.n,
            "percent": None if self.percent is None else round(self.percent, 1),
            "kappa": None if self.kappa is None else round(self.kappa, 3),
        }


def agreement(a: Mapping[K, Answers], b: Mapping[K, Answers]) -> list[QuestionAgreement]:
    """Per question (and all three), agreement of two raters' answers keyed by item (an instance id, a
    name: any hashable key), over the items both answered on that question."""
    common = a.keys() & b.keys()  # unsorted: both statistics count pairs, so their order cannot matter
    out = []
    questions: tuple[Question | Literal["all"], ...] = (*KEYS, "all")
    for key in questions:
        pairs = [
            (x, y)
            for item in common
            if (x := _value(a[item], key)) is not None and (y := _value(b[item], key)) is not None
        ]
        left, right = [x for x, _ in pairs], [y for _, y in pairs]
        out.append(
            QuestionAgreement(key, len(pairs), percent_agreement(left, right), cohen_kappa(left, right))
        )
    return out


def _value(answers: Answers, key: Question | Literal["all"]) -> bool | None:
    return answers.all_yes if key == "all" else answers.get(key)
