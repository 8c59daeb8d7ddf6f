"""The paper's three data-quality questions (Table 2), the one definition the judge's prompt, the review
page and every report use."""

from __future__ import annotations

from selfinstruct.records import Question

QUESTIONS: tuple[tuple[Question, str], ...] = (
    ("valid_task", "Does the instruction describe a valid task?"),
    ("input_ok", "Is the input appropriate for the instruction?"),
    ("output_ok", "Is the output a correct and acceptable response to the instruction and input?"),
)
KEYS: tuple[Question, ...] = tuple(key for key, _ in QUESTIONS)
# Short labels for tables and for the judge's answer lines.
LABELS: dict[Question, str] = {
    "valid_task": "valid task",
    "input_ok": "input appropriate",
    "output_ok": "output correct",
}
# The paper's expert answers on 200 random generated instructions (Table 2), percent yes; "all" is all three.
PAPER_TABLE2: dict[str, float] = {"valid_task": 92.0, "input_ok": 79.0, "output_ok": 58.0, "all": 54.0}
