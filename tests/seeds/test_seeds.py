"""The shipped seed sets (schema, size, balance, diversity, originality) and the strict seed loader."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rouge_score import rouge_scorer

from selfinstruct.config import FilterSettings
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.filters import InstructionFilter, filter_instances, normalize_instruction
from selfinstruct.parse import ParsedInstance, parse_input_first, parse_output_first
from selfinstruct.prompts import input_first_prompt, output_first_prompt
from selfinstruct.records import Instance, Task
from selfinstruct.seeds import (
    classification_only,
    default_seed_path,
    list_builtin_seed_sets,
    load_seed_tasks,
    resolve_seed_source,
    save_seed_tasks,
)

PAPER_SEEDS = Path(__file__).resolve().parents[1] / "data" / "paper_seed_tasks.jsonl"
SETS = sorted(list_builtin_seed_sets())
NOVELTY = 0.7  # the paper (docs/pipeline.md, Verdicts): dropped when ROUGE-L F > 0.7 against the pool


def raw_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


# --- the shipped sets -------------------------------------------------------------------------------


def test_builtin_sets_are_named_and_exist() -> None:
    sets = list_builtin_seed_sets()
    assert set(sets) == {"default", "medical", "software"}
    assert sets["default"] == default_seed_path()
    # package-data ships `seeds/data/*.jsonl`: the sets must sit directly in that folder
    assert all(p.is_file() and p.suffix == ".jsonl" and p.parent.name == "data" for p in sets.values())


@pytest.mark.parametrize("name", SETS)
def test_shipped_set_schema(name: str) -> None:
    path = list_builtin_seed_sets()[name]
    rows = raw_rows(path)
    for n, row in enumerate(rows):
        assert list(row) == ["id", "name", "instruction", "instances", "is_classification"], row
        assert row["id"] == f"seed_task_{n}"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", row["name"]), row["name"]
        assert isinstance(row["is_classification"], bool)
        assert isinstance(row["instances"], list) and len(row["instances"]) >= 1
        for inst in row["instances"]:
            assert set(inst) == {"input", "output"}
            assert isinstance(inst["input"], str) and isinstance(inst["output"], str)
            assert inst["output"].strip() and inst["output"] == inst["output"].strip()
            assert inst["input"] == inst["input"].strip()
    assert len({r["name"] for r in rows}) == len(rows)
    # the loader agrees with the raw rows
    tasks = load_seed_tasks(name)
    assert [t.instruction for t in tasks] == [r["instruction"] for r in rows]
    assert [len(t.instances) for t in tasks] == [len(r["instances"]) for r in rows]


def test_default_set_size_and_balance() -> None:
    tasks = load_seed_tasks()
    clf = classification_only(tasks)
    assert len(tasks) >= 175
    assert 20 <= len(clf) <= 35
    assert all(len(t.instances) >= 1 for t in tasks)
    # some tasks need no input (the paper's "output only" instances), most have one
    no_input = sum(1 for t in tasks for i in t.instances if not i.input)
    assert 10 <= no_input < sum(len(t.instances) for t in tasks) // 2
    # classification outputs are short finite labels, repeated across a task's instances or across tasks
    for task in clf:
        assert all(len(i.output.split()) <= 5 for i in task.instances), task.name


@pytest.mark.parametrize("name", ["medical", "software"])
def test_domain_set_size_and_balance(name: str) -> None:
    tasks = load_seed_tasks(name)
    assert 25 <= len(tasks) <= 40
    assert 3 <= len(classification_only(tasks)) <= len(tasks) // 2


@pytest.mark.parametrize("name", SETS)
def test_shipped_instructions_pass_the_pipeline_filters(name: str) -> None:
    """Seeds are few-shot examples of what the pipeline keeps: they must pass its own filters 1-5."""
    check = InstructionFilter(FilterSettings()).check
    for task in load_seed_tasks(name):
        assert normalize_instruction(task.instruction) == task.instruction
        assert check(task.instruction).kept, (task.instruction, check(task.instruction))
        verdicts = filter_instances([ParsedInstance(i.input, i.output) for i in task.instances])
        assert all(v.kept for v in verdicts), (task.name, verdicts)


@pytest.mark.parametrize("name", SETS)
def test_no_two_seeds_are_too_similar(name: str, scorer: rouge_scorer.RougeScorer) -> None:
    instructions = [t.instruction for t in load_seed_tasks(name)]
    worst = max(
        (scorer.score(a, b)["rougeL"].fmeasure, a, b) for a, b in itertools.combinations(instructions, 2)
    )
    assert worst[0] <= NOVELTY, worst


@pytest.mark.slow  # ~47k ROUGE-L scores with the reference package
def test_no_seed_copies_the_papers_set(scorer: rouge_scorer.RougeScorer) -> None:
    paper = [t.instruction for t in load_seed_tasks(PAPER_SEEDS)]
    paper_norm = {" ".join(p.lower().split()) for p in paper}
    ours = [t for name in SETS for t in load_seed_tasks(name)]
    for task in ours:
        assert " ".join(task.instruction.lower().split()) not in paper_norm, task.instruction
        worst = max((scorer.score(p, task.instruction)["rougeL"].fmeasure, p) for p in paper)
        assert worst[0] <= NOVELTY, (task.instruction, worst)

    # instance outputs are not lifted either (labels such as "Yes" naturally recur, so only longer ones)
    def longer(task: Task) -> set[str]:
        return {i.output.strip().lower() for i in task.instances if len(i.output.split()) > 5}

    paper_outputs = set().union(*map(longer, load_seed_tasks(PAPER_SEEDS)))
    assert not [out for t in ours for out in longer(t) if out in paper_outputs]


# --- loading the paper's file -----------------------------------------------------------------------


def test_papers_file_loads_as_is() -> None:
    rows = raw_rows(PAPER_SEEDS)
    tasks = load_seed_tasks(PAPER_SEEDS)
    assert len(tasks) == len(rows) == 175
    assert len(classification_only(tasks)) == sum(r["is_classification"] for r in rows) == 26
    for task, row in zip(tasks, rows, strict=True):
        assert isinstance(task, Task) and isinstance(task.instances, tuple)
        assert task.id == row["id"] and task.name == row["name"]
        assert task.instruction == row["instruction"].strip()
        assert task.is_classification is row["is_classification"]
        assert task.instances == tuple(Instance(i["input"], i["output"]) for i in row["instances"])


# --- errors: one line naming the file and the line ---------------------------------------------------

VALID: dict[str, Any] = {
    "id": "seed_task_0",
    "name": "greet",
    "instruction": "Greet the user politely.",
    "instances": [{"input": "", "output": "Hello, nice to meet you!"}],
    "is_classification": False,
}


def row(**changes: Any) -> str:
    obj = {**VALID, "id": changes.pop("id", "seed_task_9")}
    for key, value in changes.items():
        if value is _DROP:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj)


_DROP = object()
OK = json.dumps(VALID)

# (file lines, expected line number, expected message); line 2 is always blank to check the numbering.
ERROR_CASES = [
    ([OK, "", '{"id": "x", "instruction": '], 3, None),  # invalid JSON: message checked by prefix
    ([OK, "", "[1, 2]"], 3, "expected a JSON object, got array"),
    ([OK, "", '"just a string"'], 3, "expected a JSON object, got string"),
    ([OK, "", row(instruction=_DROP)], 3, "missing 'instruction'"),
    ([OK, "", row(instruction="   ")], 3, "'instruction' is blank"),
    ([OK, "", row(instruction=5)], 3, "'instruction' must be a string, got number"),
    ([OK, "", row(instances=_DROP)], 3, "missing 'instances'"),
    ([OK, "", row(instances=[])], 3, "'instances' must be a non-empty list, got an empty list"),
    ([OK, "", row(instances="Hello")], 3, "'instances' must be a non-empty list, got string"),
    ([OK, "", row(instances=["Hello"])], 3, "instance 1 must be an object, got string"),
    (
        [OK, "", row(instances=[{"input": "", "output": "a"}, {"input": "b"}])],
        3,
        "instance 2 is missing 'output'",
    ),
    ([OK, "", row(instances=[{"output": "a"}])], 3, "instance 1 is missing 'input'"),
    (
        [OK, "", row(instances=[{"input": None, "output": "a"}])],
        3,
        "instance 1: 'input' must be a string, got null",
    ),
    (
        [OK, "", row(instances=[{"input": "a", "output": 3}])],
        3,
        "instance 1: 'output' must be a string, got number",
    ),
    ([OK, "", row(instances=[{"input": "a", "output": "  "}])], 3, "instance 1 has an empty 'output'"),
    (
        [OK, "", row(is_classification="yes")],
        3,
        "'is_classification' must be true or false, got string 'yes'",
    ),
    ([OK, "", row(is_classification=1)], 3, "'is_classification' must be true or false, got number 1"),
    ([OK, "", row(is_classification=_DROP)], 3, "missing 'is_classification' (true or false)"),
    ([OK, "", row(id=7)], 3, "'id' must be a string, got number"),
    ([OK, "", row(name=["a"])], 3, "'name' must be a string, got array"),
    ([OK, "", row(), row(id="seed_task_0")], 4, "duplicate id 'seed_task_0' (first used on line 1)"),
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("lines", "line", "message"), ERROR_CASES)
def test_bad_line_names_file_and_line(
    tmp_path: Path, lines: list[str], line: int, message: str | None
) -> None:
    path = write_lines(tmp_path / "seeds.jsonl", lines)
    with pytest.raises(InputFileError) as info:
        load_seed_tasks(path)
    err = info.value
    assert isinstance(err, UserError) and err.exit_code == 2
    assert (err.path, err.line) == (path, line)
    text = str(err)
    assert "\n" not in text
    if message is None:
        assert text.startswith(f"{path}:{line}: invalid JSON: "), text
        assert re.search(r"\(column \d+\)$", text), text
    else:
        assert text == f"{path}:{line}: {message}"


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(OK.encode() + b"\n" + row().replace("politely", "poli\u00e9").encode("latin-1") + b"\n")
    with pytest.raises(InputFileError) as info:
        load_seed_tasks(path)
    assert info.value.line == 2 and "not UTF-8 text" in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(InputFileError) as info:
        load_seed_tasks(path)
    assert info.value.line is None
    assert str(info.value) == f"{path}: no seed tasks (the file is empty)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputFileError) as info:
        load_seed_tasks(missing)
    assert info.value.line is None
    assert str(info.value) == f"{missing}: no such seed file (built-in sets: default, medical, software)"
    with pytest.raises(InputFileError) as info:
        load_seed_tasks(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, expected a JSONL seed file"


# --- reading details, resolving names, writing -------------------------------------------------------


def test_blank_lines_bom_crlf_and_missing_ids(tmp_path: Path) -> None:
    no_id = {k: v for k, v in VALID.items() if k != "id"}
    lines = [json.dumps({**VALID, "id": "seed_task_1"}), "", "  ", json.dumps(no_id), json.dumps(no_id)]
    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    tasks = load_seed_tasks(path)
    # missing ids follow the paper's naming by position, never colliding with an explicit one
    assert [t.id for t in tasks] == ["seed_task_1", "seed_task_1_1", "seed_task_2"]
    assert tasks[0] == Task(
        "Greet the user politely.", (Instance("", "Hello, nice to meet you!"),), False, "seed_task_1", "greet"
    )


def test_text_with_line_separators_stays_in_its_line(tmp_path: Path) -> None:
    # U+2028 is a line break for str.splitlines but legal inside a JSON string
    path = tmp_path / "sep.jsonl"
    path.write_text(row(instances=[{"input": "a\u2028b", "output": "c\x85d"}]) + "\n", encoding="utf-8")
    (task,) = load_seed_tasks(path)
    assert task.instances == (Instance("a\u2028b", "c\x85d"),)


def test_resolve_seed_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = list_builtin_seed_sets()
    assert resolve_seed_source(None) == resolve_seed_source("") == default_seed_path()
    assert resolve_seed_source("medical") == builtin["medical"]
    assert resolve_seed_source("Software") == builtin["software"]
    assert resolve_seed_source(tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    assert len(load_seed_tasks("software")) == len(raw_rows(builtin["software"]))
    # a real path with a set's name wins over the set
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "medical", [OK])
    assert resolve_seed_source("medical") == Path("medical")
    assert [t.id for t in load_seed_tasks("medical")] == ["seed_task_0"]
    # an unknown name is a missing file
    with pytest.raises(InputFileError, match=r"^oncology: no such seed file"):
        load_seed_tasks("oncology")


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    tasks = [
        Task(
            "Translate to Portuguese: keep it casual.",
            (Instance("Good morning", "Bom dia"),),
            False,
            "",
            "pt",
        ),
        Task(
            "Label the animal sound's source.",
            (Instance("Moo", "Cow"), Instance("Quack\n\nquack", "Duck \u2014 \u00e9\u2028")),
            True,
            "seed_task_0",
            "",
        ),
    ]
    path = save_seed_tasks(tasks, tmp_path / "deep" / "mine.jsonl")
    loaded = load_seed_tasks(path)
    assert [t.id for t in loaded] == ["seed_task_0_1", "seed_task_0"]
    assert [(t.instruction, t.instances, t.is_classification, t.name) for t in loaded] == [
        (t.instruction, t.instances, t.is_classification, t.name) for t in tasks
    ]
    assert [p.name for p in path.parent.iterdir()] == ["mine.jsonl"]  # no temporary left behind
    # the shipped set survives a round trip unchanged, byte for byte
    again = save_seed_tasks(load_seed_tasks(), tmp_path / "default.jsonl")
    assert again.read_bytes() == default_seed_path().read_bytes()


def test_save_rejects_what_load_would_reject(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no tasks"):
        save_seed_tasks([], tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="no instances"):
        save_seed_tasks([Task("Do a thing well.", (), False)], tmp_path / "a.jsonl")
    dup = Task("Do a thing well.", (Instance("", "Done."),), False, "t1")
    with pytest.raises(ValueError, match="duplicate id 't1'"):
        save_seed_tasks([dup, dup], tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()


def test_classification_only_keeps_order() -> None:
    tasks = load_seed_tasks()
    clf = classification_only(tasks)
    assert clf == [t for t in tasks if t.is_classification is True]
    assert clf and all(t.is_classification for t in clf)


@pytest.mark.parametrize("name", SETS)
def test_seed_instances_survive_the_pipelines_few_shot_format(name: str) -> None:
    """Rendered as stage 3's few-shot examples and parsed back with the stage 3 parsers, every seed gives back
    exactly its instances: no seed text fakes an `Example N`, `Output:` or `Class label:` marker."""
    for task in load_seed_tasks(name):
        render = output_first_prompt if task.is_classification else input_first_prompt
        parse = parse_output_first if task.is_classification else parse_input_first
        prompt = render("Next task.", [task])
        body = prompt.split(f"Task: {task.instruction}\n", 1)[1].rsplit("\nTask: Next task.", 1)[0]
        parsed = parse(body, truncated=False)
        assert [(p.input, p.output) for p in parsed] == [(i.input, i.output) for i in task.instances], (
            task.name
        )


def test_data_readme_counts_match_the_sets() -> None:
    readme = (default_seed_path().parent / "README.md").read_text(encoding="utf-8")
    for name, path in list_builtin_seed_sets().items():
        tasks = load_seed_tasks(path)
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `{name}`"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:] == [f"`{path.name}`", str(len(tasks)), str(len(classification_only(tasks)))], row
