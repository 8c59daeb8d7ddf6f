"""Parsers on real-looking (and broken) LM replies."""

from __future__ import annotations

from selfinstruct.parse import parse_input_first, parse_output_first, parse_yes_no, split_instructions


def test_split_instructions_on_list_numbers() -> None:
    reply = (
        " Give three tips for staying focused while studying.\n10. Translate the sentence into French."
        "\n11 . Name a mammal that lays eggs.\n12."
    )
    assert split_instructions(reply, 9) == [
        "Give three tips for staying focused while studying.",
        "Translate the sentence into French.",
        "Name a mammal that lays eggs.",
    ]


def test_split_instructions_keeps_multiline_items_and_empty_reply() -> None:
    reply = " Rewrite the text below.\nMake it formal.\n10) Count the vowels in a word."
    assert split_instructions(reply, 9) == [
        "Rewrite the text below.\nMake it formal.",
        "Count the vowels in a word.",
    ]
    assert split_instructions("", 9) == []
    assert split_instructions("   \n", 9) == []


def test_parse_input_first_examples_and_output_only() -> None:
    reply = "Example 1\nInput: 3, 5\nOutput: 8\nExample 2\nInput: 10, -2\nOutput: 8\n"
    parsed = parse_input_first(reply, truncated=False)
    assert [(p.input, p.output) for p in parsed] == [("3, 5", "8"), ("10, -2", "8")]
    only = parse_input_first("Output:\n- Squats\n- Push-ups", truncated=False)
    assert [(p.input, p.output) for p in only] == [("", "- Squats\n- Push-ups")]


def test_parse_input_first_marks_the_cut_instance() -> None:
    reply = "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: the answer is"
    parsed = parse_input_first(reply, truncated=True)
    assert [p.truncated for p in parsed] == [False, True]


def test_parse_input_first_without_output_marker_gives_empty_output() -> None:
    parsed = parse_input_first("Example 1\nInput: only an input", truncated=False)
    assert parsed[0].output == "" and parsed[0].input == "only an input"


def test_parse_output_first_labels_then_inputs() -> None:
    reply = "Class label: Positive\nInput: I loved it.\nClass label: Negative\nSentence: Waste of money."
    parsed = parse_output_first(reply, truncated=False)
    assert [(p.output, p.input) for p in parsed] == [
        ("Positive", "I loved it."),
        ("Negative", "Sentence: Waste of money."),
    ]
    assert parse_output_first("no labels here", truncated=False) == []


def test_yes_no_follows_the_paper() -> None:
    assert parse_yes_no(" Yes") and parse_yes_no("yes.") and parse_yes_no("YES\nTask")
    assert (
        not parse_yes_no(" No")
        and not parse_yes_no("")
        and not parse_yes_no("Yeah")
        and not parse_yes_no("y")
    )
