"""Judge prompt and the parsing of messy judge replies."""

from __future__ import annotations

import pytest

from selfinstruct.evaluate.judge import (
    MAX_REASON_CHARS,
    build_judge_prompt,
    parse_judgement,
    parse_rating,
    rating_counts,
)


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("B", "B"),
        ("b", "B"),
        (" A\nReason: it answers fully.", "A"),
        ("Rating: b", "B"),
        ("rating: c.", "C"),
        ("**Rating:** **D**\n**Reason:** off topic", "D"),
        ("## Rating\nC\n## Reason\nWrong total.", "C"),
        ("Rating (A-D): C\nReason: wrong date", "C"),
        ("Rating: B - A few typos.", "B"),
        ("(d) not related to the instruction", "D"),
        ("c) mostly wrong", "C"),
        ("I would rate this response as B because of a minor slip.", "B"),
        ("I'd give it an A.", "A"),
        ("The response deserves a C: the facts are wrong.", "C"),
        ("Final answer: A", "A"),
        ("Sure! Here is my evaluation.\n\nB\n\nThe list misses one item.", "B"),
        (" B\nReason: The answer is A bit short", "B"),  # the leading letter wins over later prose
    ],
)
def test_messy_replies_are_parsed(reply: str, rating: str) -> None:
    assert parse_rating(reply) == rating


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The response is irrelevant.",  # no letter at all: unrated, not guessed
        "A valid response that does what was asked.",  # an article, not a rating
        "Answer: a response that lists three fruits.",
        "Rating: N/A",
        "Rating: <A, B, C or D>",  # the format echoed back
        "Grade: A/B",  # undecided
        "I cannot rate this.",
    ],
)
def test_replies_without_a_rating_stay_unrated(reply: str) -> None:
    assert parse_rating(reply) is None


def test_reason_is_one_bounded_line() -> None:
    assert parse_judgement("Rating: C\nReason: the   numbers\tare wrong.").reason == "the numbers are wrong."
    assert parse_judgement("B - acceptable, one typo").reason == "acceptable, one typo"
    assert parse_judgement("## Rating\nD\n## Reason\nGibberish.").reason == "Gibberish."
    assert parse_judgement("D").reason == ""
    # A small model echoing the answer format gives neither a rating nor a reason.
    echoed = parse_judgement(
        " <A, B, C or D>\nReason: <one sentence>\n\nRating: <A, B, C or D>\nReason: <one"
    )
    assert (echoed.rating, echoed.reason) == (None, "")
    long = parse_judgement("Reason: " + "word " * 200)
    assert len(long.reason) <= MAX_REASON_CHARS and long.reason.endswith("…")


def test_prompt_carries_the_rubric_and_the_texts() -> None:
    prompt = build_judge_prompt("Name a fruit.", "", "Apple", "Banana")
    for needle in (
        "Name a fruit.",
        "(no input)",
        "Apple",
        "Banana",
        "valid and satisfying",
        "minor errors",
        "significant errors",
        "irrelevant or invalid",
    ):
        assert needle in prompt
    assert prompt.endswith("Rating:")


def test_the_rubric_in_the_prompt_is_the_one_evaluations_were_cached_with() -> None:
    # The judge's prompt is a cache key: rewording the rubric re-asks every earlier judgement.
    prompt = build_judge_prompt("Name a fruit.", "", "Apple", "Banana")
    assert (
        "Rate the response with one letter:\n"
        "A: the response is valid and satisfying.\n"
        "B: the response is acceptable but has minor errors or imperfections.\n"
        "C: the response is relevant to the instruction but has significant errors in its content.\n"
        "D: the response is irrelevant or invalid.\n\n"
    ) in prompt


def test_rating_counts_have_every_key() -> None:
    assert rating_counts(["A", None, "A", "D"]) == {"A": 2, "B": 0, "C": 0, "D": 1, "unrated": 1}
