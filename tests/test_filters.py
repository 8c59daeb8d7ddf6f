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


def test_the_one_list_of_verdicts_is_exactly_what_the_pipeline_produces() -> None:
    """filters.CANDIDATE_VERDICTS / INSTANCE_VERDICTS (read by the summary, the report and the review page)
    name every verdict the stages store, in the order they apply, and no verdict that nothing produces."""
    from selfinstruct.config import RunSettings
    from selfinstruct.filters import CANDIDATE_VERDICTS, INSTANCE_VERDICTS, KEPT
    from selfinstruct.novelty.index import NoveltyIndex
    from selfinstruct.pipeline.instances import InstanceGenerator
    from selfinstruct.pipeline.instructions import InstructionProcessor
    from selfinstruct.seeds.loader import default_seed_path, load_seed_tasks

    settings = RunSettings()
    processor = InstructionProcessor(settings, NoveltyIndex())
    items = [
        "Name three fruits",
        " ".join(["word"] * 151),
        "Describe the image shown below in detail.",
        "Write a program that reverses a string.",
        '"Quote" the following sentence exactly please.',
        "Élan is a word; use it in a sentence please.",
        "Name three tropical fruits that grow in Asia.",
        "Name three tropical fruits that grow in Asia!",  # a near-duplicate of the one before
    ]
    reply = " " + "\n".join(f"{n}. {text}" for n, text in enumerate(items, start=9))[3:]
    records, _ = processor.process(reply, "stop", 9)
    cut, _ = processor.process(" Summarize the history of the printing press in detail.", "length", 9)
    # The parser never yields an empty item, so `empty` comes from the filter alone (a guard for callers).
    empty = processor.filter.check("")
    produced = [r.verdict for r in (*cut, empty, *records)]
    assert [v for v in produced if v != KEPT] == list(CANDIDATE_VERDICTS)

    generator = InstanceGenerator(settings, load_seed_tasks(default_seed_path()))
    replies = [
        "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput:\nExample 3\nInput: d\nOutput: d\n"
        "Example 4\nInput: e:\nOutput: f\nExample 5\nInput: a\nOutput: b\nExample 6\nInput: x\nOutput: y",
        "Example 1\nInput: same\nOutput: one\nExample 2\nInput: same\nOutput: two",
        "".join(f"Example {i}\nInput: in {i}\nOutput: out {i}\n" for i in range(1, 8)),
    ]
    # An example of the stage-3 prompt itself, written back by the model.
    shown = next(i for t in generator.other_examples for i in t.instances if len(i.output.split()) >= 4)
    replies.append(f"Example 1\nInput: {shown.input}\nOutput: {shown.output}\n")
    verdicts = [
        r.verdict
        for n, (reply, finish) in enumerate(zip(replies, ("length", "stop", "stop", "stop"), strict=True))
        for r in generator.process(n, reply, finish, False)
    ]
    dropped = [v for v in verdicts if v != KEPT]
    assert sorted(set(dropped), key=INSTANCE_VERDICTS.index) == list(INSTANCE_VERDICTS)
