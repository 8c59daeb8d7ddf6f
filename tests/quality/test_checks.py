"""The model-free checks, and the copy filter of stage 3 (an instance that reproduces a prompt example)."""

from __future__ import annotations

import pytest

from selfinstruct.filters import KEPT, CopyCheck, filter_instances
from selfinstruct.parse import ParsedInstance
from selfinstruct.quality.checks import check_item, statement_not_task
from selfinstruct.records import Instance, RatingItem


def _item(instruction: str, text_input: str = "", output: str = "An answer.") -> RatingItem:
    return RatingItem(1, 1, instruction, text_input, output)


@pytest.mark.parametrize(
    ("instruction", "statement"),
    [
        ("The sum of three numbers is divisible by 5.", True),
        ("Cats are better pets than dogs.", True),
        ("Is this number prime?", False),
        ("Write a haiku about rain.", False),
        ("Given a list of numbers, find the largest one.", False),
        ("what is the capital of France", False),
        ("Please summarize the article.", False),
        ("The following sentence has a typo; fix it?", False),  # asks something
    ],
)
def test_a_statement_is_not_a_task(instruction: str, statement: bool) -> None:
    assert statement_not_task(instruction) is statement


def test_each_check_names_what_it_found() -> None:
    verdict = check_item(_item("The sky is blue today.", "", "The sky is blue today."))
    assert verdict.answers.valid_task is False and verdict.reasons["valid_task"] == "statement, not a task"
    assert verdict.answers.output_ok is False and "repeats the instruction" in verdict.reasons["output_ok"]
    echo = check_item(
        _item("Translate this sentence into French.", "Translate this sentence into French.", "Bonjour")
    )
    assert echo.answers.input_ok is False and "input repeats" in echo.reasons["input_ok"]
    missing = check_item(_item("Summarize the following article in two sentences.", "", "It is about rain."))
    assert missing.answers.input_ok is False and "points at an input" in missing.reasons["input_ok"]
    fine = check_item(_item("Name three fruits that are red.", "", "Strawberry, cherry, raspberry."))
    assert fine.answers.all_yes is True and fine.reasons == {}


EXAMPLES = [
    Instance(
        "I have $5,000 saved and a credit card balance of $3,000 at 24% APR.", "Pay off the card first."
    ),
    Instance("", "Positive"),
]


def _parsed(text_input: str, output: str) -> ParsedInstance:
    return ParsedInstance(text_input, output, False)


def test_the_copy_filter_drops_a_reproduced_example_near_exactly() -> None:
    copies = CopyCheck(EXAMPLES, threshold=0.7)
    verdicts = filter_instances(
        [
            _parsed("i have $5000 saved and a credit card balance of $3000 at 24% APR!", "Invest it all."),
            _parsed("My budget is tight this month.", "pay off the card first"),
            _parsed("A new situation about savings and debt.", "Save more."),
            _parsed("The movie was wonderful.", "Positive"),  # a class label is no copy
        ],
        copies,
    )
    assert [v.verdict for v in verdicts] == ["copied_example", "copied_example", KEPT, KEPT]
    assert verdicts[0].detail.startswith("input ROUGE-L") and verdicts[1].detail.startswith("output ROUGE-L")
    # A prompt with no examples copies nothing; no check keeps the paper's filters exactly.
    same = [_parsed(EXAMPLES[0].input, EXAMPLES[0].output)]
    assert filter_instances(same, CopyCheck([])) == filter_instances(same) == filter_instances(same, None)
    assert filter_instances(same)[0].verdict == KEPT
