"""Seed-format task files as evaluation input, and prompt templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.tasks import build_task_prompt, load_task_file, task_items
from selfinstruct.evaluate.template import parse_template
from selfinstruct.seeds import task_from_record

SEEDS = Path(__file__).resolve().parents[1] / "data" / "paper_seed_tasks.jsonl"
FIELDS = frozenset({"instruction", "definition", "input", "task", "category"})


def test_paper_seed_file_loads_with_categories() -> None:
    tasks = load_task_file(SEEDS)
    assert len(tasks) == 175
    items = task_items(tasks)
    assert len(items) == sum(len(t.task.instances) for t in tasks)
    raw = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    flagged = sum(1 for row in raw if row["is_classification"])
    assert sum(1 for i in items if i.category == "classification") == flagged
    assert sum(1 for i in items if i.category == "non-classification") == len(items) - flagged
    first = items[0]
    assert first.task == tasks[0].task.name and first.references == (tasks[0].task.instances[0].output,)
    assert len({item.id for item in items}) == len(items)


def test_builtin_seed_set_by_name() -> None:
    tasks = load_task_file("default")
    assert tasks and all(entry.task.instances and entry.group is None for entry in tasks)


def test_default_prompt_with_and_without_input() -> None:
    assert build_task_prompt(" Sort the list. ", " 3, 1, 2 ") == "Sort the list.\nInput: 3, 1, 2\nOutput:"
    assert build_task_prompt("Tell a joke.", "  ") == "Tell a joke.\nOutput:"


def test_filter_limit_and_template(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    rows = [
        {
            "name": "add",
            "instruction": "Add the numbers.",
            "instances": [{"input": "1 2", "output": "3"}] * 3,
        },
        {"name": "greet", "instruction": "Say hi.", "instances": [{"input": "", "output": "Hi"}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    tasks = load_task_file(path)
    assert [i.task for i in task_items(tasks, limit=2)] == ["add", "add", "greet"]
    # index: position in the task; ordinal: position among all instances of the file, before any limit
    assert [(i.index, i.ordinal) for i in task_items(tasks, limit=2)] == [(0, 0), (1, 1), (0, 3)]
    assert [i.task for i in task_items(tasks, tasks_filter="gre*")] == ["greet"]
    jinja = parse_template("{{ instruction }}{% if input %} [{{ input }}]{% endif %} =>", FIELDS)
    prompts = [i.prompt for i in task_items(tasks, limit=1, template=jinja)]
    assert prompts == ["Add the numbers. [1 2] =>", "Say hi. =>"]
    with pytest.raises(UserError, match="no task matches"):
        task_items(tasks, tasks_filter="zzz*")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"instruction": "x", "instances": [{"input": "", "output": "y"}]}\n{oops\n', 2, "invalid JSON"),
        ('{"instances": [{"input": "", "output": "y"}]}\n', 1, "instruction"),
        ('{"instruction": "x", "instances": []}\n', 1, "non-empty list"),
        ('{"instruction": "x", "instances": [{"input": 1, "output": "y"}]}\n', 1, "must be a string"),
        ('{"instruction": "x", "instances": [{"input": ""}]}\n', 1, "missing 'output'"),
        ('{"instruction": "x", "id": [1], "instances": [{"output": "y"}]}\n', 1, "'id' must be a string"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match=message) as info:
        load_task_file(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}:")


def test_one_parser_for_seeds_and_task_files(tmp_path: Path) -> None:
    """A task file goes through the seed loader's parser, lenient where evaluation sets need it: no
    is_classification, a left-out input, an empty reference, a numbered id. The seed loader refuses
    each of those lines."""
    lines = [
        {"instruction": " Add. ", "id": 7, "instances": [{"output": "3"}]},
        {"instruction": "Greet.", "is_classification": "yes", "instances": [{"input": "hi", "output": ""}]},
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    first, second = (entry.task for entry in load_task_file(path))
    assert (first.instruction, first.id, first.is_classification) == ("Add.", "7", None)
    assert first.instances[0].input == "" and second.instances[0].output == ""
    assert second.is_classification is None
    for row, message in zip(lines, ("missing 'input'", "empty 'output'"), strict=True):
        with pytest.raises(InputFileError, match=message):
            task_from_record(row, path, 1)
    with pytest.raises(InputFileError, match="is_classification"):
        task_from_record({**lines[0], "instances": [{"input": "", "output": "3"}]}, path, 1)


def test_template_mistakes_fail_early() -> None:
    with pytest.raises(UserError, match="unknown field"):
        parse_template("{instrution} {input}", FIELDS)
    with pytest.raises(UserError, match="must use the instance input"):
        parse_template("{instruction}", FIELDS)
    with pytest.raises(UserError, match="named fields"):
        parse_template("{} {input}", FIELDS)
    with pytest.raises(UserError, match="prompt template"):
        parse_template("{{ input ", FIELDS)
    with pytest.raises(UserError, match="cannot read"):
        parse_template("@/nonexistent/template.txt", FIELDS)


def test_template_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.j2"
    path.write_text("Q: {{ input }}\nA:", encoding="utf-8")
    assert parse_template(f"@{path}", FIELDS).render(input="hi") == "Q: hi\nA:"
