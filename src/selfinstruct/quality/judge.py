"""An LLM judge answering the paper's three Table 2 questions about one instance, and a parser of its replies.

One request per instance asks all three questions (one prompt, three numbered answers): a third of the
cost of three requests, and a judge reads the instance once. The prompt ends with `1.` so a completion
model answers at once; a chat model repeating the numbered form is read the same way.

Judge replies are untrusted text. An answer counts only when it opens with a clear Yes or No (after its
number or label and any markup); anything else leaves that question unrated, counted as such and never
guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selfinstruct.lm.base import Decoding
from selfinstruct.quality.questions import KEYS, QUESTIONS
from selfinstruct.records import Answers, Question

MAX_REASON_CHARS = 200
JUDGE_PROMPT_END = "\nAnswers:\n1."
# A completion model stops after its three answers (the blank line after them); a chat model may put blank
# lines between its answers, so it stops only at a fourth.
JUDGE_DECODING = Decoding(temperature=0.0, top_p=1.0, max_tokens=160, stop=("\n\n", "\n4."))
CHAT_JUDGE_DECODING = Decoding(temperature=0.0, top_p=1.0, max_tokens=160, stop=("\n4.",))

_PROMPT = """You are checking one example of an instruction-tuning dataset: an instruction, an input for it \
(possibly none) and the output a model should give. Answer three questions about it with Yes or No, each \
followed by a short reason.

Instruction: {instruction}
Input: {input}
Output: {output}

Questions:
1. {q1}
2. {q2} (No input is appropriate when the instruction needs none.)
3. {q3}

Answer in exactly this form:
1. Yes or No - reason
2. Yes or No - reason
3. Yes or No - reason
"""


def build_judge_prompt(instruction: str, text_input: str, output: str) -> str:
    q1, q2, q3 = (text for _, text in QUESTIONS)
    return (
        _PROMPT.format(
            instruction=" ".join(instruction.split()),
            input=text_input.strip() or "(none)",
            output=output.strip() or "(empty)",
            q1=q1,
            q2=q2,
            q3=q3,
        )
        + JUDGE_PROMPT_END
    )


@dataclass(frozen=True)
class Verdict:
    """A judge's answers on one instance, its reason per question, and the raw reply (untrusted text)."""

    answers: Answers
    reasons: dict[str, str] = field(default_factory=dict)
    reply: str = ""


_MARKUP = re.compile(r"[*_`#>]")
# The start of a numbered answer: "1.", "2)", "Q3:", "Question 1 -", "(2)".
_NUMBER = re.compile(r"(?im)^[ \t]*\(?(?:q(?:uestion)?[ \t]*)?(?P<n>[123])[ \t]*[.):\-–][ \t]*")
# An answer written with its question's label instead of a number.
_LABEL_WORDS: dict[Question, str] = {
    "valid_task": r"valid(?:[ \t]+task)?",
    "input_ok": r"input(?:[ \t]+appropriate)?",
    "output_ok": r"output(?:[ \t]+correct)?",
}
_LABELLED = {
    key: re.compile(rf"(?im)^[ \t]*(?:\(?[123][.):][ \t]*)?{words}[ \t]*[:\-–][ \t]*(?P<rest>.*)$")
    for key, words in _LABEL_WORDS.items()
}
# Yes or No as the first word of an answer, after an optional "Answer:" and quotes or brackets.
# Not the answer format echoed back ("Yes or No - reason", "yes/no"), which small models do.
_YES_NO = re.compile(
    r"^(?:answer[ \t]*[:\-][ \t]*)?[\"'(\[]?[ \t]*(?P<word>yes|no)\b(?![ \t]*(?:or|/)[ \t]*(?:yes|no)\b)"
    r"[\"')\].]?(?P<rest>.*)",
    re.I | re.S,
)


def parse_answer(text: str) -> tuple[bool | None, str]:
    """(yes/no/None, reason) of one answer's text. Only a leading Yes or No counts."""
    match = _YES_NO.match(text.strip())
    if match is None:
        return None, ""
    reason = " ".join(match.group("rest").split()).lstrip("-–—:,;. ").strip()
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return match.group("word").lower() == "yes", reason


def parse_verdict(reply: str) -> Verdict:
    """The three answers of a judge reply. The prompt ends with `1.`, so a reply that does not open with a
    number is the first answer's text. Numbered answers win; an unnumbered reply is read by its labels
    ("Valid task: Yes"). A question answered both ways, or not clearly, is unrated."""
    text = _MARKUP.sub("", reply)
    if not _NUMBER.match(text):
        text = "1. " + text.lstrip()
    segments: dict[str, list[str]] = {}
    marks = list(_NUMBER.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        segments.setdefault(mark.group("n"), []).append(text[mark.end() : end])
    values: dict[str, bool | None] = {}
    reasons: dict[str, str] = {}
    for number, key in enumerate(KEYS, start=1):
        value_reason = _one_clear([parse_answer(segment) for segment in segments.get(str(number), [])])
        if value_reason[0] is None:
            value_reason = _by_label(text, key)
        values[key], reasons[key] = value_reason
    answers = Answers(values["valid_task"], values["input_ok"], values["output_ok"])
    return Verdict(answers, {k: r for k, r in reasons.items() if r}, reply)


def _by_label(text: str, key: Question) -> tuple[bool | None, str]:
    return _one_clear([parse_answer(m.group("rest")) for m in _LABELLED[key].finditer(text)])


def _one_clear(found: list[tuple[bool | None, str]]) -> tuple[bool | None, str]:
    """The answer when every clear answer to a question says the same (a model that repeats itself), else
    unrated (not answered, or answered both ways)."""
    clear = {value for value, _ in found if value is not None}
    if len(clear) != 1:
        return None, ""
    return next((value, reason) for value, reason in found if value is not None)
