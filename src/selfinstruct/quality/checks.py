"""Model-free checks for the failure kinds a small model's data shows, as a judge of the Table 2 questions.

Each check looks for one named problem; a question is answered No when a check of it fires (its name is
the reason) and Yes when none does. So a Yes means "no problem found", not "correct": the checks can
only lower a share, and their Table 2 is an upper bound. What each check catches, and how well it agrees
with a careful human reading, is measured in docs/results.md (`benchmarks/quality_checks.py`).

- valid task: the instruction is a statement, not a request (no question, no imperative opening);
- input appropriate: the input repeats the instruction; the instruction points at an input ("the
  following text") that is empty;
- output correct: the output repeats the instruction.
"""

from __future__ import annotations

import re

from selfinstruct.novelty.rouge import rouge_l_f, tokenize
from selfinstruct.quality.judge import Verdict
from selfinstruct.records import Answers, RatingItem

ECHO_THRESHOLD = 0.7  # ROUGE-L F at which a field repeats the instruction

# Words an instruction opens with: requests (imperatives), questions, and the openings of a request
# ("Given ..., find ...", "If ..., what ...", "Please ...", "You are ...").
_IMPERATIVES = """
add adapt analyse analyze answer apply arrange ask assess assign brainstorm break build calculate
categorize categorise change check choose cite classify combine come compare compile complete compose
compute condense construct continue convert correct count craft create critique decide decode define
delete describe design detect determine develop devise diagnose discuss distinguish divide draft edit
elaborate eliminate encode enumerate estimate evaluate examine explain express extract fill find fix
flag format formulate generate give group guess help highlight identify illustrate imagine improve
infer insert interpret introduce invent judge justify label let list locate make map match measure
mention merge modify name note offer organize organise outline paraphrase pick plan point predict
prepare present pretend produce propose provide put rank rate read recommend reduce refactor
reformulate remove rephrase replace report represent respond restate reverse review revise rewrite say
score select separate share shorten show simplify solve sort specify split state suggest summarise
summarize supply take teach tell think transform translate turn underline use verify vote weigh write
"""
_QUESTION_WORDS = (
    "what how why which who whom whose when where is are was were do does did can could would should will "
    "may might shall have has am"
)
_LEAD_INS = (
    "given for in if based using please you your as suppose assume consider let's after before from with "
    "according here at during on to"
)
_OPENERS = frozenset(_IMPERATIVES.split() + _QUESTION_WORDS.split() + _LEAD_INS.split())
# The instruction points at an input it does not contain.
_NEEDS_INPUT = re.compile(
    r"\b(?:the following|following (?:text|sentence|passage|paragraph|article|list|code|email|story|"
    r"statement|question|words?|numbers?)|given (?:text|sentence|passage|paragraph|article|list|input|word|"
    r"number|string|statement|question)|(?:text|sentence|passage|paragraph|article|list) below|below)\b",
    re.IGNORECASE,
)


def statement_not_task(instruction: str) -> bool:
    """A statement rather than a request: it asks nothing and does not open with a task word."""
    text = instruction.strip()
    if not text or "?" in text:
        return False
    first = re.sub(r"[^a-z']", "", text.split()[0].lower())
    return first not in _OPENERS


def repeats(field: str, instruction: str, threshold: float = ECHO_THRESHOLD) -> bool:
    """The field repeats the instruction: contains it, or has a ROUGE-L F with it at the threshold."""
    tokens, instruction_tokens = tokenize(field), tokenize(instruction)
    if not tokens or not instruction_tokens:
        return False
    if len(instruction_tokens) >= 4 and " ".join(instruction_tokens) in " ".join(tokens):
        return True
    return rouge_l_f(tokens, instruction_tokens) >= threshold


def check_item(item: RatingItem) -> Verdict:
    """The checks' answers on one instance, each No naming the check that fired."""
    reasons: dict[str, str] = {}
    if statement_not_task(item.instruction):
        reasons["valid_task"] = "statement, not a task"
    if item.input.strip() and repeats(item.input, item.instruction):
        reasons["input_ok"] = "input repeats the instruction"
    elif not item.input.strip() and _NEEDS_INPUT.search(item.instruction):
        reasons["input_ok"] = "the instruction points at an input, but there is none"
    if repeats(item.output, item.instruction):
        reasons["output_ok"] = "output repeats the instruction"
    answers = Answers(
        valid_task="valid_task" not in reasons,
        input_ok="input_ok" not in reasons,
        output_ok="output_ok" not in reasons,
    )
    return Verdict(answers, reasons, "")
