"""Stage 4: template mix, prefix removal, dedup, shuffling, both input formats, bad lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError
from selfinstruct.pipeline.prepare import (
    DEFAULT_EOS,
    TEMPLATES_WITH_INPUT,
    TEMPLATES_WITHOUT_INPUT,
    collapse_blank_lines,
    encode_instance,
    prepare_finetune_data,
    read_finetune_data,
    strip_single_field_prefix,
    write_finetune_jsonl,
)
from selfinstruct.records import FinetuneExample, Instance, Task


def _tasks(n: int, *, with_input: bool = True) -> list[Task]:
    return [
        Task(
            instruction=f"Instruction number {i}: rewrite the sentence politely.",
            instances=(
                Instance(input=f"Sentence {i} is rude." if with_input else "", output=f"Polite {i}."),
            ),
        )
        for i in range(n)
    ]


def test_template_counts_match_the_paper() -> None:
    assert len(TEMPLATES_WITH_INPUT) == 7
    assert len(TEMPLATES_WITHOUT_INPUT) == 6
    assert all("{input}" in t.prompt for t in TEMPLATES_WITH_INPUT)
    assert not any("{input}" in t.prompt for t in TEMPLATES_WITHOUT_INPUT)


def test_all_templates_get_used_and_keep_content() -> None:
    rng = random.Random(1)
    prompts_in, prompts_out = set(), set()
    for _ in range(400):
        ex = encode_instance("Translate to French.", Instance("good morning", "bonjour"), rng)
        assert "Translate to French." in ex.prompt and "good morning" in ex.prompt
        assert ex.completion.endswith(DEFAULT_EOS)
        assert ex.completion.strip().removesuffix(DEFAULT_EOS) == "bonjour"
        prompts_in.add(ex.prompt)
        ex = encode_instance("Name a colour.", Instance("", "Blue"), rng)
        assert "Name a colour." in ex.prompt and "Input" not in ex.prompt
        prompts_out.add(ex.prompt)
    assert len(prompts_in) == 7
    assert len(prompts_out) == 6


def test_paper_template_shape_is_among_the_renderings() -> None:
    rng = random.Random(0)
    seen = {
        (ex.prompt, ex.completion)
        for ex in (encode_instance("Add the numbers.", Instance("2 3", "5"), rng) for _ in range(300))
    }
    assert ("Add the numbers.\nInput: 2 3\nOutput:", " 5<|endoftext|>") in seen
    assert ("Task: Add the numbers.\n\n2 3\n\n", "5<|endoftext|>") in seen


def test_custom_eos() -> None:
    ex = encode_instance("Say hi.", Instance("", "hi"), random.Random(0), eos="</s>")
    assert ex.completion.endswith("hi</s>")


def test_single_field_prefix_removed_about_half_the_time() -> None:
    rng = random.Random(3)
    inst = Instance("Sentence: The cat sat on the mat.", "Le chat.")
    stripped = sum("Sentence:" not in encode_instance("Translate.", inst, rng).prompt for _ in range(1000))
    assert 400 < stripped < 600


def test_prefix_rules() -> None:
    assert strip_single_field_prefix("Review: Great food.") == "Great food."
    assert strip_single_field_prefix("Review text: Great food.") == "Great food."
    two = "Question: What is 2+2?\nOptions: 3, 4"
    assert strip_single_field_prefix(two) == two
    assert strip_single_field_prefix("No label at all.") == "No label at all."
    assert strip_single_field_prefix("http://example.com") == "http://example.com"
    # the same label repeated counts as one field, but only the leading one goes
    assert strip_single_field_prefix("Word: cat\nWord: dog") == "cat\nWord: dog"
    assert strip_single_field_prefix("Label:") == "Label:"


def test_blank_lines_collapsed() -> None:
    assert collapse_blank_lines("a\n\n\nb\n  \nc") == "a\nb\nc"
    rng = random.Random(0)
    for _ in range(50):
        ex = encode_instance("Summarise.", Instance("para one\n\n\npara two", "x"), rng)
        assert "para one\npara two" in ex.prompt


def test_prepare_includes_seeds_dedups_and_shuffles_deterministically() -> None:
    seeds = [Task("Seed task: list three fruits.", (Instance("", "apple, pear, plum"),))]
    # the same task twice: its instance renders to a duplicate pair whenever the same template is drawn
    dup = Task("Say yes.", (Instance("", "yes"),) * 40)
    data = prepare_finetune_data([*_tasks(30), dup], seed=7, seed_tasks=seeds)
    assert len(data) == len(set(data))
    assert 31 + 1 < len(data) <= 31 + 6  # 30 tasks + seed + at most 6 distinct renderings of "Say yes."
    assert any("Seed task: list three fruits." in ex.prompt for ex in data)
    again = prepare_finetune_data([*_tasks(30), dup], seed=7, seed_tasks=seeds)
    other = prepare_finetune_data([*_tasks(30), dup], seed=8, seed_tasks=seeds)
    assert data == again
    assert data != other
    # shuffled: not in input order
    order = [int(ex.prompt.split("number ")[1].split(":")[0]) for ex in data if "number " in ex.prompt]
    assert order != sorted(order)


def test_empty_outputs_are_skipped() -> None:
    data = prepare_finetune_data([Task("Do nothing.", (Instance("x", "  "), Instance("y", "ok")))])
    assert len(data) == 1 and "ok" in data[0].completion


def test_roundtrip_prompt_completion_jsonl(tmp_path: Path) -> None:
    data = prepare_finetune_data(_tasks(12), seed=1)
    path = tmp_path / "export" / "finetune.jsonl"
    assert write_finetune_jsonl(data, path) == 12
    assert read_finetune_data(path) == data


def test_prompt_completion_file_gets_missing_seeds_only(tmp_path: Path) -> None:
    seeds = [Task("Seed: count to three.", (Instance("", "1 2 3"),))]
    path = tmp_path / "pc.jsonl"
    write_finetune_jsonl(prepare_finetune_data(_tasks(5), seed=1), path)
    with_seed = read_finetune_data(path, seed_tasks=seeds)
    assert len(with_seed) == 6
    assert sum("Seed: count to three." in ex.prompt for ex in with_seed) == 1
    # a file that already has the seed (an export that included seeds) does not get it twice
    write_finetune_jsonl(with_seed, path)
    assert len(read_finetune_data(path, seed_tasks=seeds)) == 6


def test_reads_paper_instance_format(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Reverse the word.", "input": "Word: abc", "output": "cba"},
        {"instruction": "Reverse the word.", "input": "Word: xy", "output": "yx"},
        {"instruction": "Name a prime.", "input": "", "output": "7"},
        {"instruction": "Name a prime.", "output": "7"},  # input may be absent; duplicate pair possible
        {"instruction": "Seed-style.", "instances": [{"input": "", "output": "a"}, {"output": "b"}]},
    ]
    path = tmp_path / "all_generated_instances.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    data = read_finetune_data(path, seed=0)
    assert all(isinstance(ex, FinetuneExample) and ex.completion.endswith(DEFAULT_EOS) for ex in data)
    assert 5 <= len(data) <= 6
    assert sum("Reverse the word." in ex.prompt for ex in data) == 2
    assert data == read_finetune_data(path, seed=0)
    assert data == prepare_finetune_data(
        [
            Task("Reverse the word.", (Instance("Word: abc", "cba"), Instance("Word: xy", "yx"))),
            Task("Name a prime.", (Instance("", "7"), Instance("", "7"))),
            Task("Seed-style.", (Instance("", "a"), Instance("", "b"))),
        ],
        seed=0,
    )


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ('{"prompt": "a", "completion": "b"}\n{not json\n', 2, "invalid JSON"),
        ("[1, 2]\n", 1, "JSON object"),
        ('{"prompt": "a"}\n', 1, '"completion" is missing'),
        ('{"prompt": "a", "completion": 3}\n', 1, "not a string"),
        ('{"instruction": "x", "input": "y"}\n', 1, '"output" is missing'),
        ('{"instruction": " ", "output": "y"}\n', 1, "empty"),
        ('{"foo": 1}\n', 1, "expected"),
        ('{"prompt": "a", "completion": "b"}\n{"instruction": "x", "output": "y"}\n', 2, "mixes"),
        ('{"instruction": "x", "instances": "nope"}\n', 1, "instances"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        read_finetune_data(path)
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="no records"):
        read_finetune_data(empty)
    with pytest.raises(InputFileError, match="no such file"):
        read_finetune_data(tmp_path / "missing.jsonl")
