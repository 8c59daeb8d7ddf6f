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
        ("My favourite colour is blue.", True),
        ("There are seven days in a week.", True),
        ("Is this number prime?", False),
        ("Write a haiku about rain.", False),
        ("Place the food in a freezer compartment.", False),  # an imperative, whatever its verb
        ("Given a list of numbers, find the largest one.", False),
        ("The following sentence has a typo: fix it.", False),  # says what to do after the colon
        ("The capital of France is which city?", False),  # asks something
    ],
)
def test_a_statement_is_not_a_task(instruction: str, statement: bool) -> None:
    assert statement_not_task(instruction) is statement


def test_each_check_names_what_it_found() -> None:
    verdict = check_item(_item("The sky is blue today.", "", "The sky is blue today."))
    assert verdict.answers.valid_task is False and verdict.reasons["valid_task"] == "statement, not a task"
    assert verdict.answers.output_ok is False and "repeats the instruction" in verdict.reasons["output_ok"]
    answered = check_item(_item("How many species are there? Answer: 24 million!", "", "Many."))
    assert answered.reasons["valid_task"] == "the instruction holds its own answer"
    echo = check_item(
        _item("Translate this sentence into French.", "Translate this sentence into French.", "Bonjour")
    )
    assert echo.answers.input_ok is False and "input repeats" in echo.reasons["input_ok"]
    words = check_item(_item("What is an advantage of renewable energy?", "", "Renewable energy"))
    assert words.reasons["output_ok"] == "output is only words of the instruction"
    # A class label repeating an option the instruction offers is no such output.
    label = check_item(_item("Is the review positive or negative?", "Great food.", "Positive"))
    assert label.answers.output_ok is True
    short = check_item(_item("Explain why the sky is blue.", "", "Scattering"))
    assert short.reasons["output_ok"] == "a word or two for an open question"
    fine = check_item(_item("Name three fruits that are red.", "", "Strawberry, cherry, raspberry."))
    assert fine.answers.all_yes is True and fine.reasons == {}


EXAMPLES = [
    Instance(
        "I have $5,000 saved and a credit card balance of $3,000 at 24% APR.",
        "Pay off most of the card but keep a small cushion. A 24% APR is far more than any savings account "
        "will earn, so every dollar of that balance you clear saves you 24% a year.",
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
            # A shortened copy: ROUGE-L F is low against the long example, but a passage is the example's.
            _parsed(
                "My budget is tight.", "Pay off most of the card, but keep a small cushion: a 24% APR is far."
            ),
            # Seven shared consecutive tokens ("pay off most of the card but") in a paraphrase: no copy.
            _parsed("Should I pay off the card?", "Pay off most of the card but hold some cash aside."),
            _parsed("A new situation about savings and debt.", "Save more."),
            _parsed("The movie was wonderful.", "Positive"),  # a class label is no copy
        ],
        copies,
    )
    assert [v.verdict for v in verdicts] == ["copied_example", "copied_example", KEPT, KEPT, KEPT]
    assert verdicts[0].detail.startswith("input ROUGE-L")
    assert verdicts[1].detail == "output shares 8 consecutive tokens"
    # A prompt with no examples copies nothing; no check keeps the paper's filters exactly.
    same = [_parsed(EXAMPLES[0].input, EXAMPLES[0].output)]
    assert filter_instances(same, CopyCheck([])) == filter_instances(same) == filter_instances(same, None)
    assert filter_instances(same)[0].verdict == KEPT


def test_an_embedded_judge_shares_the_generating_model_and_counts_under_judge() -> None:
    """`generate --judge embedded` on the embedded default: one model in memory (the judge asks the
    generator's loaded model), its usage counted with the run's; another backend gets a model of its own."""
    from selfinstruct.config import RunSettings
    from selfinstruct.lm.factory import build_client
    from selfinstruct.quality.rating import LLMJudge, make_judge

    settings = RunSettings.model_validate({"quality": {"judge": "embedded"}})
    generator = build_client(settings.lm)
    judge, client = make_judge(settings, None, generator)
    assert isinstance(judge, LLMJudge) and client is not None
    assert client.lm is generator.lm and client.usage is generator.usage
    assert judge.request(RatingItem(1, 1, "Name a fruit.", "", "Apple")).stage == "judge"
    other = RunSettings.model_validate({"quality": {"judge": "openai/gpt-4o-mini"}})
    judge, client = make_judge(other, None, build_client(other.lm))
    assert client is not None and client.settings.backend == "openai" and client.settings.api == "chat"
    assert make_judge(RunSettings.model_validate({"quality": {"judge": "checks"}}), None)[1] is None
