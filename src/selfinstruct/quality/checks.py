"""Model-free checks for the failure kinds a small model's data shows, as a judge of the Table 2 questions.

Each check looks for one named problem; a question is answered No when a check of it fires (its name is
the reason) and Yes when none does. So a Yes means "no problem found", not "correct": the checks can
only lower a share, and their Table 2 is an upper bound. Only checks that were right when they fired, on
rows read by a person and on rows they were not written on, are here (benchmarks/quality_checks.py,
docs/results.md); one that also fired on good rows (an output that repeats its input: a rewrite's does)
and one that never fired in 242 rows (an instruction pointing at an input that is empty) were left out.

- valid task: a statement, not a request (it opens with an article or a pronoun and asks nothing); the
  instruction holds its own answer ("... Answer: 24 million!").
- input appropriate: the input repeats the instruction.
- output correct: the output repeats the instruction; it is nothing but a few words of the instruction
  (where no options are offered); it is a word or two for a question that asks why, how or to explain.
"""

from __future__ import annotations

import re

from selfinstruct.novelty.rouge import rouge_l_f, tokenize
from selfinstruct.quality.judge import Verdict
from selfinstruct.records import Answers, RatingItem

ECHO_THRESHOLD = 0.7  # ROUGE-L F at which a field repeats another

# How statements open: an article, a demonstrative or a pronoun (a request opens with a verb or a question
# word; "The following ..." and "This ...:" instructions carry a colon or a question mark).
_STATEMENT_OPENERS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "my",
        "our",
        "his",
        "her",
        "their",
        "its",
        "it",
        "i",
        "we",
        "they",
        "he",
        "she",
        "there",
    ]
)
_OWN_ANSWER = re.compile(r"\banswer\s*:", re.IGNORECASE)
# Tasks whose output may rightly repeat the input.
# Questions an answer of a word or two cannot serve.
_OPEN_QUESTION = re.compile(
    r"^\s*(?:why|how (?:do|does|did|can|could|should|would|to|is|are)\b|explain|describe|discuss|compare|"
    r"what (?:is|are) the (?:difference|differences|pros|advantages|benefits|reasons|steps)|outline|"
    r"elaborate|justify)",
    re.IGNORECASE,
)
_OPTIONS = re.compile(r"\bor\b|\bwhich\b|\bchoose\b|\bselect\b|\bclassify\b|\blabel\b|[:(/]", re.IGNORECASE)
_FILLER = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "and", "or", "is", "are", "it", "this", "that"]
)


def statement_not_task(instruction: str) -> bool:
    """A statement rather than a request: it opens with an article or a pronoun ("The sum of three numbers
    is divisible by 5.") and asks nothing (no question mark, no colon introducing what to do)."""
    text = instruction.strip()
    if not text or "?" in text or ":" in text:
        return False
    first = re.sub(r"[^a-z']", "", text.split()[0].lower())
    return first in _STATEMENT_OPENERS


def repeats(field: str, other: str, threshold: float = ECHO_THRESHOLD) -> bool:
    """The field repeats the other text: contains it (4 tokens or more), or has a ROUGE-L F with it at the
    threshold."""
    tokens, other_tokens = tokenize(field), tokenize(other)
    if not tokens or not other_tokens:
        return False
    if len(other_tokens) >= 4 and " ".join(other_tokens) in " ".join(tokens):
        return True
    return rouge_l_f(tokens, other_tokens) >= threshold


def only_instruction_words(output: str, instruction: str) -> bool:
    """A short output (1-4 tokens) made only of the instruction's words, where the instruction offers no
    options to choose from (a class label repeating an offered option is fine)."""
    tokens = [t for t in tokenize(output) if t not in _FILLER]
    if not tokens or len(tokenize(output)) > 4 or _OPTIONS.search(instruction):
        return False
    return set(tokens) <= set(tokenize(instruction))


def too_short_for(output: str, instruction: str) -> bool:
    """A word or two for a question that asks why, how, to explain, describe or compare."""
    return len(tokenize(output)) <= 2 and bool(_OPEN_QUESTION.search(instruction))


def check_item(item: RatingItem) -> Verdict:
    """The checks' answers on one instance, each No naming the check that fired."""
    reasons: dict[str, str] = {}
    if statement_not_task(item.instruction):
        reasons["valid_task"] = "statement, not a task"
    elif _OWN_ANSWER.search(item.instruction):
        reasons["valid_task"] = "the instruction holds its own answer"
    if item.input.strip() and repeats(item.input, item.instruction):
        reasons["input_ok"] = "input repeats the instruction"
    if repeats(item.output, item.instruction):
        reasons["output_ok"] = "output repeats the instruction"
    elif only_instruction_words(item.output, item.instruction):
        reasons["output_ok"] = "output is only words of the instruction"
    elif too_short_for(item.output, item.instruction):
        reasons["output_ok"] = "a word or two for an open question"
    answers = Answers(
        valid_task="valid_task" not in reasons,
        input_ok="input_ok" not in reasons,
        output_ok="output_ok" not in reasons,
    )
    return Verdict(answers, reasons, "")
