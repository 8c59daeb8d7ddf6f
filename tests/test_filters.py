"""Every filter of stages 1 and 3, each with its named verdict."""

from __future__ import annotations

from selfinstruct.config import FilterSettings
from selfinstruct.filters import InstructionFilter, filter_instances, normalize_instruction
from selfinstruct.parse import ParsedInstance


def _verdict(text: str, **settings: object) -> str:
    return InstructionFilter(FilterSettings(**settings)).check(normalize_instruction(text)).verdict


def test_normalisation() -> None:
    assert normalize_instruction("  give   me\n a  list of\tfruits ") == "Give me a list of fruits"
    assert normalize_instruction("   ") == ""


def test_instruction_filters_in_order() -> None:
    assert _verdict("") == "empty"
    assert _verdict("Name three tropical fruits") == "kept"
    assert _verdict("Name three fruits") == "too_short"  # <= 3 words dropped
    assert _verdict(" ".join(["word"] * 151)) == "too_long"
    assert _verdict(" ".join(["word"] * 150)) == "kept"
    assert _verdict("Describe the image shown below in detail.") == "blacklist"
    assert _verdict("Describe what you see in these Pictures please.") == "blacklist"
    assert _verdict("Go to the store and buy milk.") == "blacklist"
    assert _verdict("Explain the mapping between keys and values.") == "kept"  # whole words only
    assert _verdict("Write a program that reverses a string.") == "bad_prefix"
    assert _verdict('"Quote" the following sentence exactly please.') == "punctuation_start"
    assert _verdict("Ünicode starting instruction is here.") == "non_ascii_start"


def test_blacklist_is_configurable() -> None:
    assert _verdict("Compose background music for a video.", blacklist_extra=["video"]) == "blacklist"
    assert _verdict("Describe the image shown below in detail.", blacklist=[]) == "kept"


def _instances(*pairs: tuple[str, str], truncated_last: bool = False) -> list[ParsedInstance]:
    items = [ParsedInstance(i, o) for i, o in pairs]
    if truncated_last:
        items[-1] = ParsedInstance(items[-1].input, items[-1].output, truncated=True)
    return items


def test_instance_filters() -> None:
    verdicts = filter_instances(
        _instances(
            ("a", "b"),
            ("c", ""),
            ("d", "d"),
            ("e:", "f"),
            ("g", "h:"),
            ("a", "b"),
            ("x", "y"),
            truncated_last=True,
        )
    )
    assert [v.verdict for v in verdicts] == [
        "kept",
        "empty_output",
        "input_equals_output",
        "ends_with_colon",
        "ends_with_colon",
        "duplicate",
        "truncated",
    ]


def test_conflicting_outputs_void_the_task() -> None:
    verdicts = filter_instances(_instances(("same input", "one"), ("same input", "two"), ("", "free")))
    assert [v.verdict for v in verdicts] == ["conflicting_outputs"] * 3
    # Empty inputs with different outputs are fine (input-free tasks have many outputs).
    assert [v.verdict for v in filter_instances(_instances(("", "one"), ("", "two")))] == ["kept", "kept"]
