"""SuperNI task files and the standard prompt, on the real task files of the subset in tests/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.superni import (
    build_superni_prompt,
    load_superni_task,
    load_superni_tasks,
    matches_filter,
    superni_items,
)
from selfinstruct.evaluate.template import parse_template

DATA = Path(__file__).resolve().parents[1] / "data" / "superni"
TASKS = DATA / "tasks"


def raw(name: str) -> dict:
    return json.loads((TASKS / f"{name}.json").read_text(encoding="utf-8"))


def test_zero_shot_prompt_adds_the_missing_period_after_the_input() -> None:
    name = "task1393_superglue_copa_text_completion"
    task = load_superni_task(TASKS / f"{name}.json")
    source = raw(name)
    instance = task.instances[0]
    # This task's inputs end in "Question: cause" (no punctuation): SuperNI's collator appends a period.
    assert source["Instances"][0]["input"].strip()[-1] not in ".!?"
    expected = (
        f"Definition: {source['Definition'][0].strip()}\n\n"
        f"Now complete the following example -\nInput: {source['Instances'][0]['input'].strip()}.\nOutput:"
    )
    assert build_superni_prompt(task, instance) == expected
    assert instance.id == source["Instances"][0]["id"]
    assert instance.references == tuple(source["Instances"][0]["output"])


def test_prompt_uses_the_first_of_several_definitions_and_keeps_final_punctuation() -> None:
    name = "task288_gigaword_summarization"
    source = raw(name)
    assert len(source["Definition"]) == 2
    task = load_superni_task(TASKS / f"{name}.json")
    prompt = build_superni_prompt(task, task.instances[0])
    assert prompt.startswith(f"Definition: {source['Definition'][0].strip()}\n\n")
    assert source["Definition"][1].strip() not in prompt
    # The input already ends with punctuation, so no period is added.
    assert prompt.endswith(f"Input: {source['Instances'][0]['input'].strip()}\nOutput:")


def test_two_positive_examples_come_between_definition_and_input() -> None:
    name = "task1390_wscfixed_coreference"
    source = raw(name)
    task = load_superni_task(TASKS / f"{name}.json")
    prompt = build_superni_prompt(task, task.instances[0], pos_examples=2)
    ex1, ex2 = source["Positive Examples"][:2]
    block = "".join(
        f" Positive Example {i} -\nInput: {ex['input'].strip()}.\n Output: {ex['output'].strip()}.\n\n"
        for i, ex in ((1, ex1), (2, ex2))
    )
    assert prompt.startswith(f"Definition: {source['Definition'][0].strip()}\n\n{block}")
    assert prompt.endswith(f"Input: {source['Instances'][0]['input'].strip()}.\nOutput:")
    # Zero examples gives the zero-shot prompt, which is a strict suffix-compatible subset.
    assert "Positive Example" not in build_superni_prompt(task, task.instances[0], pos_examples=0)


def test_load_follows_the_split_file_order_with_filter_and_limit() -> None:
    order = [line.strip() for line in (DATA / "test_tasks.txt").read_text().splitlines() if line.strip()]
    tasks = load_superni_tasks(DATA)
    assert [t.name for t in tasks] == order
    assert len(tasks) == 30
    # The tasks folder itself works too, and finds test_tasks.txt in its parent.
    assert [t.name for t in load_superni_tasks(TASKS)] == order
    picked = load_superni_tasks(DATA, tasks_filter="*entailment*")
    assert picked and all("entailment" in t.name for t in picked)
    items = superni_items(picked, limit=3)
    assert len(items) == 3 * len(picked)
    assert {item.category for item in items} == {"Textual Entailment"}
    assert len({item.id for item in items}) == len(items)


def test_filter_accepts_globs_regexes_and_substrings() -> None:
    assert matches_filter("task1393_copa", "task1393*")
    assert not matches_filter("task1390_wsc", "task1393*")  # a glob, not the regex "task139" + "3*"
    assert matches_filter("task1385_anli_r1_entailment", "re:^task13.*entail")
    assert matches_filter("task1385_anli_r1_entailment", "anli")
    assert matches_filter("task288_gigaword", "task1393*, task288*")
    with pytest.raises(UserError):
        matches_filter("x", "re:(")


def test_user_template_gets_the_fields() -> None:
    task = load_superni_task(TASKS / "task1393_superglue_copa_text_completion.json")
    template = parse_template(
        "{definition}\\n\\n{examples}Q: {input}\\nA:",
        {"definition", "instruction", "input", "task", "category", "examples"},
    )
    item = superni_items([task], limit=1, pos_examples=1, template=template)[0]
    assert item.prompt.startswith(task.definition.strip() + "\n\n Positive Example 1 -\n")
    assert item.prompt.endswith(f"Q: {task.instances[0].input.strip()}\nA:")


def test_bad_task_files_are_user_errors(tmp_path: Path) -> None:
    bad_json = tmp_path / "task1_bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"task1_bad\.json"):
        load_superni_task(bad_json)
    no_outputs = tmp_path / "task2_empty.json"
    no_outputs.write_text(
        json.dumps({"Definition": ["d"], "Instances": [{"id": "x", "input": "i", "output": []}]})
    )
    with pytest.raises(InputFileError, match="output must be a non-empty list"):
        load_superni_task(no_outputs)
    with pytest.raises(UserError, match="no SuperNI task matches"):
        load_superni_tasks(TASKS, tasks_filter="nothing-like-this")
    with pytest.raises(UserError, match="no such folder"):
        load_superni_tasks(tmp_path / "missing")


def test_a_non_english_task_is_scored_by_the_whitespace_rule(tmp_path: Path) -> None:
    """Only tasks whose output language is not English take metrics.py's documented deviation."""
    from selfinstruct.evaluate.metrics import score_prediction
    from selfinstruct.evaluate.superni import parse_superni_task

    name = "task1393_superglue_copa_text_completion"
    english = parse_superni_task(name, raw(name), TASKS / f"{name}.json")
    spanish = parse_superni_task(name, {**raw(name), "Output_language": ["Spanish"]}, tmp_path / "x.json")
    assert english.english and not spanish.english
    item = superni_items([spanish], limit=1)[0]
    assert not item.english and (item.index, item.ordinal) == (0, 0)
    assert score_prediction("Corren.", ["corren"], english=item.english)["rougeL"] == 0.0
    assert score_prediction("Corren.", ["corren"])["rougeL"] == 100.0


def test_the_test_split_subset_is_english() -> None:
    """The paper's SuperNI test tasks are English, so the deviation above does not touch its score."""
    tasks = load_superni_tasks(DATA)
    assert len(tasks) == 30 and all(task.english for task in tasks)
