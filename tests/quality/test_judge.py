"""The data judge's prompt and its reply parser: replies are untrusted text, an unclear answer is unrated."""

from __future__ import annotations

import pytest

from selfinstruct.quality.judge import JUDGE_PROMPT_END, build_judge_prompt, parse_answer, parse_verdict
from selfinstruct.quality.questions import QUESTIONS
from selfinstruct.records import Answers


def test_the_prompt_asks_the_papers_three_questions_and_ends_for_a_completion_model() -> None:
    prompt = build_judge_prompt("Name three  fruits.\n", "", "Apple, pear, plum.")
    for _, question in QUESTIONS:
        assert question in prompt
    assert "Instruction: Name three fruits." in prompt and "Input: (none)" in prompt
    assert prompt.endswith(JUDGE_PROMPT_END)
    assert "Output: (empty)" in build_judge_prompt("Say nothing.", "x", "  ")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # A completion model continues after the prompt's "1.".
        (" Yes - clear task\n2. No - the input is unrelated\n3. Yes - correct", Answers(True, False, True)),
        # A chat model repeats the numbers, with markup.
        ("1. **Yes** - fine\n2) no: missing\n3: YES.", Answers(True, False, True)),
        ("Q1: No\nQ2: No\nQ3: No", Answers(False, False, False)),
        # Labels instead of numbers.
        (
            "Valid task: Yes\nInput appropriate: Yes\nOutput correct: No - wrong sum",
            Answers(True, True, False),
        ),
        # No clear answer: unrated, never guessed.
        (" It is hard to say without more context.", Answers(None, None, None)),
        ("", Answers(None, None, None)),
        (" Probably yes\n2. Maybe\n3. yes", Answers(None, None, True)),
        # Only the first answer given.
        (" Yes", Answers(True, None, None)),
        # An answer given both ways is not clear; one repeated alike is.
        (" Yes\n2. No\n2. Yes\n3. No", Answers(True, None, False)),
        (" Yes\n2. No\n3. No\n\nAnswers:\n1. Yes\n2. No\n3. No", Answers(True, False, False)),
        # "No" buried in a sentence that starts otherwise does not count.
        (" The task is fine, no problem\n2. Yes\n3. Yes", Answers(None, True, True)),
        # The answer format echoed back is no answer.
        ("1. Yes or No - reason\n2. Yes or No - yes\n3. yes/no", Answers(None, None, None)),
        # "Yesterday" is not yes; "Nope" is not no.
        (" Yesterday\n2. Nope\n3. No.", Answers(None, None, False)),
    ],
)
def test_replies_are_read_only_where_they_answer_clearly(reply: str, expected: Answers) -> None:
    assert parse_verdict(reply).answers == expected


def test_reasons_are_kept_short_and_the_reply_raw() -> None:
    reply = " Yes - the task asks for a list\n2. No: " + "x" * 500 + "\n3. Yes"
    verdict = parse_verdict(reply)
    assert verdict.reasons["valid_task"] == "the task asks for a list"
    assert len(verdict.reasons["input_ok"]) == 200 and verdict.reasons["input_ok"].endswith("…")
    assert "output_ok" not in verdict.reasons  # a bare yes has no reason
    assert verdict.reply == reply
    assert parse_answer('"No", it has none') == (False, "it has none")
    assert parse_answer("Answer: yes") == (True, "")
