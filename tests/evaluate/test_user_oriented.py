"""The paper's 252 user-oriented tasks: shipped in the package, loaded by name, grouped by motivation_app,
and refused as training data or seeds unless forced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.tasks import load_task_file, task_items
from selfinstruct.finetune.data import load_examples
from selfinstruct.pipeline.prepare import prepare_finetune_data, write_finetune_jsonl
from selfinstruct.records import Instance, Task
from selfinstruct.seeds import load_seed_tasks, user_oriented

PREDICTIONS = (
    Path(__file__).resolve().parents[1] / "data" / "user_oriented" / "text-davinci-001_predictions.jsonl"
)


def _rows() -> list[dict[str, object]]:
    text = user_oriented.user_oriented_path().read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_set_ships_in_the_package_with_its_notice() -> None:
    path = user_oriented.user_oriented_path()
    assert path.parent.parent.name == "seeds" and path.name == "user_oriented_instructions.jsonl"
    rows = _rows()
    assert len(rows) == 252 and len({r["id"] for r in rows}) == 252
    assert all(len(r["instances"]) == 1 for r in rows)  # type: ignore[arg-type]
    notice = (path.parent / "NOTICE.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in notice and "not used for training" in notice
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"seeds/data/*"' in pyproject  # package data: a pip install has it too, NOTICE.md included


def test_loads_by_name_with_motivation_app_groups() -> None:
    tasks = load_task_file("user-oriented")
    assert len(tasks) == 252
    items = task_items(tasks)
    assert len(items) == 252
    rows = _rows()
    assert [item.category for item in items] == [r["motivation_app"] for r in rows]
    assert items[0].id == "user_oriented_task_0-0" and items[0].task == "user_oriented_task_0"
    assert len({item.category for item in items}) == 71
    # a file of that name in the working directory would win over the built-in name
    assert load_task_file(user_oriented.user_oriented_path())[0] == tasks[0]


def test_recognised_by_name_and_by_content() -> None:
    for name in ("user-oriented", "user_oriented", "some/dir/user_oriented_instructions.jsonl"):
        assert user_oriented.is_user_oriented_name(name)
    assert not user_oriented.is_user_oriented_name("default")
    instruction = str(_rows()[5]["instruction"])
    assert user_oriented.matches_instruction("  " + instruction.upper().replace(" ", "\n "))
    assert user_oriented.matches_prompt(f"Task: {instruction}\n\nsome input\n\n")
    assert user_oriented.matches_prompt(f"{instruction} Output:")
    assert not user_oriented.matches_prompt(f"{instruction[:-1]}X and more\nOutput:")
    assert not user_oriented.matches_prompt(f"{instruction}s and more words\nOutput:")  # a longer one
    assert not user_oriented.matches_instruction("Write a haiku about autumn leaves.")
    # generic short instructions of the set are not evidence (the paper's seed set has this one)
    assert "Answer the following question." in {r["instruction"] for r in _rows()}
    assert not user_oriented.matches_instruction("Answer the following question.")
    assert sum(map(user_oriented.matches_instruction, (str(r["instruction"]) for r in _rows()))) == 245


def _as_training_file(tmp_path: Path, count: int) -> Path:
    tasks = [
        Task(str(r["instruction"]), tuple(Instance(i["input"], i["output"]) for i in r["instances"]))  # type: ignore[index, union-attr]
        for r in _rows()[:count]
    ]
    tasks.append(Task("Name a prime number.", (Instance("", "7"),)))
    path = tmp_path / "renamed.jsonl"
    write_finetune_jsonl(prepare_finetune_data(tasks), path)
    return path


def test_refused_as_finetune_data_unless_forced(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--data user-oriented: is the paper's user-oriented evaluation set"):
        load_examples(Path("user-oriented"))
    copy = tmp_path / "user_oriented_instructions.jsonl"
    copy.write_bytes(user_oriented.user_oriented_path().read_bytes())
    with pytest.raises(UserError, match="--allow-eval-data"):
        load_examples(copy, include_seeds=False)
    _, examples = load_examples(copy, include_seeds=False, allow_eval_data=True)
    assert len(examples) == 252
    # by content: a prompt/completion file under another name holding three of the tasks
    renamed = _as_training_file(tmp_path, 3)
    with pytest.raises(UserError, match="holds 3 instruction"):
        load_examples(renamed, include_seeds=False)
    assert len(load_examples(renamed, include_seeds=False, allow_eval_data=True)[1]) == 4


def test_refused_as_seeds_unless_forced(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--seeds user-oriented: is the paper's") as info:
        load_seed_tasks("user-oriented")
    assert str(info.value).endswith("ask not to be used for training")  # a run has no flag to force it
    seeds = tmp_path / "my_seeds.jsonl"
    rows = [{**r, "is_classification": False} for r in _rows()[:2]]
    rows.append(
        {
            "instruction": "Name a prime.",
            "instances": [{"input": "", "output": "7"}],
            "is_classification": False,
        }
    )
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="holds 2 instruction"):
        load_seed_tasks(seeds)
    assert len(load_seed_tasks(seeds, allow_eval_data=True)) == 3
    with pytest.raises(UserError, match=r"--seeds .*; pass --allow-eval-data to use it anyway"):
        load_examples(_as_training_file(tmp_path, 0), seeds=seeds)
    # the project's own seed sets are not affected
    assert load_seed_tasks("default") and load_seed_tasks(None)


def test_prediction_fixture_is_the_papers_format() -> None:
    first = json.loads(PREDICTIONS.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"prompt", "instruction", "input", "response", "target"}
    with pytest.raises(InputFileError):
        load_task_file(PREDICTIONS)  # not a task file
