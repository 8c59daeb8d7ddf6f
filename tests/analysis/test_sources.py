from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.analysis import sources
from selfinstruct.errors import InputFileError, UserError


def test_broken_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "Fine one."}\n{"instruction": \n', encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        sources.load([path])
    assert err.value.line == 2 and "bad.jsonl:2" in str(err.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('"just a string"', "expected a JSON object"),
        ('{"input": "x", "output": "y"}', "missing 'instruction'"),
        ('{"instruction": 3}', "'instruction' must be a string"),
        ('{"instruction": "A b c d.", "instances": "nope"}', "'instances' must be a list"),
        ('{"instruction": "A b c d.", "is_classification": "maybe"}', "is_classification"),
    ],
)
def test_bad_records_are_input_file_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=message):
        sources.load([path])


def test_paper_files_merge_by_instruction(tmp_path: Path) -> None:
    instructions = tmp_path / "machine_generated_instructions.jsonl"
    instructions.write_text(
        json.dumps(
            {
                "instruction": "Name three colours.",
                "most_similar_instructions": {"x": 0.2},
                "avg_similarity_score": 0.1,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    clf = tmp_path / "is_clf_or_not.jsonl"
    clf.write_text(json.dumps({"instruction": "Name three colours.", "is_classification": " No"}) + "\n")
    instances = tmp_path / "all_instances.json"
    instances.write_text(
        json.dumps([{"instruction": "Name three colours.", "input": "", "output": "red, blue"}])
    )
    data = sources.load([instructions, clf, instances])
    assert len(data.tasks) == 1
    task = data.tasks[0]
    assert task.is_classification is False and [i.output for i in task.instances] == ["red, blue"]
    assert data.kind == "files" and data.seeds == [] and data.candidate_verdicts == {}


def test_seeds_override_and_run_directory(run_dir: Path, tmp_path: Path) -> None:
    data = sources.load([run_dir])
    assert data.kind == "run" and len(data.seeds) == 2
    assert data.instance_verdicts == {"kept": 3, "empty_output": 1}
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"instruction": "Only seed.", "instances": []}) + "\n")
    assert sources.load([run_dir], seeds=seeds).seeds == ["Only seed."]


def test_user_errors(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(UserError, match="not a selfinstruct run directory"):
        sources.load([tmp_path / "run" / ".."])  # tmp_path itself holds no run.sqlite
    with pytest.raises(UserError, match="no such file"):
        sources.load([tmp_path / "missing.jsonl"])
    with pytest.raises(UserError, match="either one run directory"):
        sources.load([run_dir, tmp_path / "x.jsonl"])


def test_seeds_by_builtin_set_name(plain_file: Path) -> None:
    from selfinstruct.seeds import list_builtin_seed_sets, load_seed_tasks

    name, path = next(iter(list_builtin_seed_sets().items()))
    data = sources.load([plain_file], seeds=name)
    assert data.seeds == [t.instruction for t in load_seed_tasks(path)]
