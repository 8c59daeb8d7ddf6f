"""An LLM judge that rates a response on the paper's four-level scale, and a tolerant reply parser.

The scale (Self-Instruct §4.4) is `RUBRIC`, the one definition the judge's prompt and the review page's
response rating both use. Judge replies are untrusted
free text: the parser never trusts a format, and a reply without a recognisable letter is "unrated"
rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Rating = Literal["A", "B", "C", "D"]
RATINGS: tuple[Rating, ...] = ("A", "B", "C", "D")
# What each rating means, completing "The response is ..." (the paper's words for A, B and D).
RUBRIC: dict[Rating, str] = {
    "A": "valid and satisfying",
    "B": "acceptable but has minor errors or imperfections",
    "C": "relevant to the instruction but has significant errors in its content",
    "D": "irrelevant or invalid",
}
MAX_REASON_CHARS = 300

_JUDGE_PROMPT = """You are reviewing how well an AI model's response follows a user's instruction.

Instruction:
{instruction}

Input:
{input}

Reference response (written by an expert; other responses may be just as good):
{reference}

Response to rate:
{prediction}

Rate the response with one letter:
{rubric}

Answer with two lines, the letter and a one-sentence reason:
Rating: <A, B, C or D>
Reason: <one sentence>

Rating:"""


@dataclass(frozen=True)
class Judgement:
    rating: Rating | None
    reason: str


def build_judge_prompt(instruction: str, text_input: str, reference: str, prediction: str) -> str:
    """The judge's prompt. It ends with `Rating:` so a completion model answers with the letter first;
    a chat model repeating the two-line format is parsed just as well."""
    return _JUDGE_PROMPT.format(
        rubric="\n".join(f"{letter}: the response is {meaning}." for letter, meaning in RUBRIC.items()),
        instruction=instruction.strip(),
        input=text_input.strip() or "(no input)",
        reference=reference.strip() or "(none)",
        prediction=prediction.strip() or "(empty response)",
    )


# Markdown emphasis and headings carry no meaning for the rating; quotes around a letter neither.
_MARKUP = re.compile(r"[*_#`>~]")
_LETTER_END = r"(?=[ \t]*(?:\r?\n|$|[).:;,\]\"'/\-–—]))"
# Not a letter that starts a range or list of letters ("A-D", "A/B/C/D", "A, B, C or D").
_NOT_RANGE = r"(?![-–/][ABCD]\b|\s*,\s*[ABCD]\b|\s+(?:or|to)\s+[ABCD]\b)"
# "Rating: B", "grade - c", "Rating (A-D): C", "Final answer: (a)". A lower-case letter must stand
# alone ("Rating: b", "rating: b."), so "Answer: a response that ..." is not read as A.
_LABELLED = re.compile(
    r"(?i:\b(?:rating|grade|score|verdict|label)\b(?:\s*\([^)\n]{0,20}\))?\s*(?:is|of|=)?|"
    r"\b(?:final\s+)?answer\s*(?=[:=\-–—]))"
    r"\s*[:=\-–—]?\s*[\"'(\[]?\s*(?:(?P<upper>[ABCD])\b|(?P<lower>[abcd])" + _LETTER_END + r")" + _NOT_RANGE
)
# The reply opens with the letter: "B", "b)", "(C) ...", "D - off topic". Not "A valid response...".
_LEADING = re.compile(r"^\s*[\"'(\[]?\s*(?P<letter>[ABCDabcd])" + _LETTER_END + _NOT_RANGE)
# A line holding only the letter.
_ALONE = re.compile(r"(?m)^\s*[\"'(\[]?\s*(?P<letter>[ABCDabcd])\s*[\"')\].]?\s*$")
# Prose: "I would rate this response as B", "I'd give it a C", "this deserves a D", "it is an A".
_PROSE = re.compile(
    r"\b(?:rate[ds]?|grade[ds]?|give|gives|assign|deserves?|earns?|gets?|would be|is)\s+"
    r"(?:(?:it|this|that|the|response|answer|output|as|an?|rating|grade|of|score)\s+){0,5}"
    r"[\"'(\[]?(?P<letter>[ABCD])\b(?![-'])" + _NOT_RANGE
)
# The rating at the start of a line ("Rating: B -", "(c)", "D."), removed to find the reason's text.
_RATING_PREFIX = re.compile(
    r"^\s*(?:(?i:rating|grade|score|verdict|(?:final\s+)?answer)\s*[:=\-–—]?\s*)?"
    r"(?:[\"'(\[][ABCDabcd][\"')\]][ \t]*[.:\-–—,;]?|[ABCDabcd](?:[ \t]*[.:\-–—,;)]|[ \t]*$))[ \t]*"
)
_HEADINGS = frozenset({"rating", "reason", "reasoning", "explanation", "justification", "grade"})
_REASON = re.compile(r"(?im)^\W*(?:reason|reasoning|explanation|justification)\W*?[:\-–—]\s*(?P<text>.+)$")


def parse_rating(reply: str) -> Rating | None:
    """The letter a judge reply gives, or None when it gives none (the item is then unrated)."""
    text = _MARKUP.sub("", reply)
    # A reply that opens with the letter is the strongest signal (the prompt ends with "Rating:"),
    # then an explicit label, then a line holding only the letter, then prose.
    match = _LEADING.search(text)
    if match:
        return _as_rating(match.group("letter"))
    match = _LABELLED.search(text)
    if match:
        return _as_rating(match.group("upper") or match.group("lower"))
    for pattern in (_ALONE, _PROSE):
        match = pattern.search(text)
        if match:
            return _as_rating(match.group("letter"))
    return None


def _as_rating(letter: str) -> Rating:
    upper = letter.upper()
    for rating in RATINGS:
        if rating == upper:
            return rating
    raise ValueError(letter)  # unreachable: the patterns only capture A-D


def parse_reason(reply: str) -> str:
    """A one-line reason: the `Reason:` line if there is one, else the first line that says more than
    the rating itself. Whitespace is collapsed and the length bounded."""
    text = _MARKUP.sub("", reply)
    match = _REASON.search(text)
    if match:
        reason = match.group("text")
    else:
        reason = ""
        for line in text.splitlines():
            stripped = _RATING_PREFIX.sub("", line, count=1).strip()
            if len(stripped) > 1 and stripped.lower().rstrip(":") not in _HEADINGS:
                reason = stripped
                break
    reason = " ".join(reason.split())
    if re.fullmatch(r"<[^<>]*>?", reason):
        reason = ""  # the format's placeholder echoed back (small models do), not a reason
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return reason


def parse_judgement(reply: str) -> Judgement:
    return Judgement(rating=parse_rating(reply), reason=parse_reason(reply))


def rating_counts(ratings: list[Rating | None]) -> dict[str, int]:
    """Counts of A-D plus `unrated`, always with all five keys (stable columns in tables)."""
    counts: dict[str, int] = {rating: 0 for rating in RATINGS}
    counts["unrated"] = 0
    for rating in ratings:
        counts[rating or "unrated"] += 1
    return counts
