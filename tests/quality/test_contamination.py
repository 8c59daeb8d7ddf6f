"""The contamination check: planted overlaps found, near misses not, against hand-made, the user-oriented
and the SuperNI evaluation sets; the decisions agree with rouge_score and a naive n-gram search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from rouge_score import rouge_scorer
from tests.conftest import TEST_DATA

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.sets import load_eval_set, load_eval_sets
from selfinstruct.novelty.rouge import tokenize
from selfinstruct.pipeline.prepare import prepare_run
from selfinstruct.quality.contamination import (
    GeneratedData,
    GeneratedInstance,
    GeneratedInstruction,
    check_contamination,
    generated_from_run,
    ids_to_drop,
    read_generated_file,
)
from selfinstruct.records import EvalText, Task
from selfinstruct.store import RunStore

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
SUPERNI = TEST_DATA / "superni"

EVAL_INSTRUCTION = "Rewrite the following paragraph so that a ten year old child can understand it easily."
# 30 tokens; the generated side copies 13 of them, or 12.
EVAL_INPUT = (
    "The committee postponed the vote on the new library budget because three members were travelling "
    "abroad and the chair wanted everyone present before deciding anything."
)
EVAL_TEXTS = [
    EvalText("rewrite", "rewrite-0", "hand", EVAL_INSTRUCTION, EVAL_INPUT, ("A short answer.",)),
    EvalText(
        "letters",
        "letters-0",
        "hand",
        "alpha beta gamma delta epsilon zeta eta theta iota kappa",
        "",
        # 9 tokens: shorter than 13, long enough to count whole; 5 tokens: skipped (a chance match).
        ("the museum opens at nine on sunday mornings only", "the answer is plainly positive"),
    ),
]


def _instructions(*texts: str) -> list[GeneratedInstruction]:
    return [GeneratedInstruction(i, text) for i, text in enumerate(texts, start=1)]


def _rouge(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


# -- instructions ------------------------------------------------------------------------------------------
def test_instructions_above_the_threshold_are_flagged_with_rouge_scores() -> None:
    exact = EVAL_INSTRUCTION.upper()  # case and punctuation do not matter to rouge_score's tokens
    near_above = "Rewrite this paragraph so that a ten year old child can understand it."
    near_below = "Explain the following paragraph so that a young reader can follow it."
    boundary = "alpha beta gamma delta epsilon zeta eta lambda mu nu"  # exactly 0.7: not above
    unrelated = "List three birds that live near rivers."
    generated = _instructions(exact, near_above, near_below, boundary, unrelated)
    report = check_contamination(generated, [], EVAL_TEXTS)

    assert _rouge(EVAL_INSTRUCTION, near_above) > 0.7 > _rouge(EVAL_INSTRUCTION, near_below)
    assert _rouge(EVAL_TEXTS[1].instruction, boundary) == 0.7
    assert [m.generated_id for m in report.instruction_matches] == [1, 2]
    exact_match, near_match = report.instruction_matches
    assert exact_match.score == 1.0 and exact_match.eval_task == "rewrite"
    assert exact_match.eval_instruction == EVAL_INSTRUCTION and exact_match.generated == exact
    assert near_match.score == _rouge(EVAL_INSTRUCTION, near_above)  # bit for bit
    assert report.sets[0].instructions_flagged == 2
    assert report.flagged_instruction_ids == {1, 2}


def test_the_threshold_is_strict_and_settable() -> None:
    generated = _instructions("alpha beta gamma delta epsilon zeta eta lambda mu nu")
    assert not check_contamination(generated, [], EVAL_TEXTS, threshold=0.7).found
    found = check_contamination(generated, [], EVAL_TEXTS, threshold=0.69).instruction_matches
    assert [(m.eval_task, m.score) for m in found] == [("letters", 0.7)]


def test_instruction_decisions_and_best_scores_agree_with_rouge_score() -> None:
    rng = random.Random(7)
    words = ["the", "a", "of", "write", "list", "give", "explain", "story", "poem", "three", "about", "why"]
    evals = [" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(40)]
    generated = [" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(300)]
    texts = [EvalText(f"t{i}", f"t{i}-0", "random", e, "", ("x",)) for i, e in enumerate(evals)]
    report = check_contamination(_instructions(*generated), [], texts)

    best = {i: max(_rouge(e, g) for e in evals) for i, g in enumerate(generated, start=1)}
    assert {m.generated_id for m in report.instruction_matches} == {i for i, s in best.items() if s > 0.7}
    assert {m.generated_id: m.score for m in report.instruction_matches} == {
        i: s for i, s in best.items() if s > 0.7
    }
    assert 0 < len(report.instruction_matches) < len(generated)


# -- instances ---------------------------------------------------------------------------------------------
def _instance(
    id_: int, input_: str = "", output: str = "", instruction: str = "Do a task."
) -> GeneratedInstance:
    return GeneratedInstance(id_, 100 + id_, instruction, input_, output)


def test_a_shared_13_gram_is_found_and_a_12_gram_is_not() -> None:
    words = EVAL_INPUT.split()
    thirteen = " ".join(words[5:18])
    twelve = " ".join(words[5:17])
    instances = [
        # 13 tokens of the evaluation input, in another case and with other punctuation around them.
        _instance(1, output=f"Well -- {thirteen.upper()}!!! That is all."),
        _instance(2, input_=f"Note: {twelve}; nothing more."),
        # 6 tokens ending the input and 7 starting the output: n-grams never cross fields.
        _instance(3, input_=" ".join(words[0:6]), output=" ".join(words[6:13])),
        _instance(
            4, input_="Completely unrelated text about gardening in the spring and summer months here."
        ),
    ]
    report = check_contamination([], instances, EVAL_TEXTS)

    assert [m.generated_id for m in report.instance_matches] == [1]
    match = report.instance_matches[0]
    assert match.generated_field == "output" and match.eval_field == "input"
    assert match.ngram == " ".join(tokenize(thirteen)) and len(match.ngram.split()) == 13
    assert (match.eval_set, match.eval_task, match.eval_item) == ("hand", "rewrite", "rewrite-0")
    assert match.eval_input == EVAL_INPUT and match.instruction_id == 101
    assert report.sets[0].instances_flagged == 1
    # With --ngram 12 the 12-gram counts.
    assert {
        m.generated_id for m in check_contamination([], instances, EVAL_TEXTS, ngram=12).instance_matches
    } == {
        1,
        2,
    }


def test_short_evaluation_fields_count_whole_from_8_tokens() -> None:
    instances = [
        _instance(1, output="Reminder: The museum opens at nine on Sunday mornings only, so come early."),
        _instance(2, output="I think the answer is plainly positive, really."),
        _instance(3, output="the museum opens at nine on sunday"),  # part of the 9-token field: no
    ]
    report = check_contamination([], instances, EVAL_TEXTS)
    assert [(m.generated_id, m.eval_field) for m in report.instance_matches] == [(1, "reference 1")]


def test_the_instruction_field_of_an_instance_is_compared_too() -> None:
    words = EVAL_INPUT.split()
    instances = [_instance(1, instruction="Translate: " + " ".join(words[:20]), output="Done.")]
    (match,) = check_contamination([], instances, EVAL_TEXTS).instance_matches
    assert match.generated_field == "instruction"


def _naive_first_matches(
    instances: list[GeneratedInstance], texts: list[EvalText], n: int
) -> dict[int, tuple[str, str]]:
    """Per flagged instance, its first shared n-gram (fields in order, then position, then the shorter
    n-gram) as (field, the n-gram's tokens): the rule written out the slow way."""
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        for field in (text.input, *text.references):
            tokens = tokenize(field)
            if len(tokens) >= n:
                grams |= {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
            elif len(tokens) >= min(8, n):
                grams.add(tuple(tokens))
    widths = sorted({len(g) for g in grams})
    first: dict[int, tuple[str, str]] = {}
    for inst in instances:
        for name in ("instruction", "input", "output"):
            tokens = tokenize(getattr(inst, name))
            found = [
                tokens[i : i + w]
                for i in range(len(tokens))
                for w in widths
                if tuple(tokens[i : i + w]) in grams
            ]
            if found and inst.id not in first:
                first[inst.id] = (name, " ".join(found[0]))
    return first


@pytest.mark.parametrize("n", [13, 9, 4])
def test_instance_flags_agree_with_a_naive_search(n: int) -> None:
    rng = random.Random(n)
    words = [f"w{i}" for i in range(6)]

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choices(words, k=rng.randint(lo, hi)))

    texts = [EvalText(f"t{i}", f"t{i}-0", "random", "x", text(0, 30), (text(1, 14),)) for i in range(30)]
    fields = [tokenize(f) for t in texts for f in (t.input, *t.references)]

    def planted() -> str:
        # Random words around, half the time, a slice of an evaluation field a little shorter or longer
        # than n: the boundary cases (n - 1 tokens, the whole of a short field) come up often.
        source = rng.choice(fields)
        width = rng.randint(max(1, n - 2), n + 1)
        start = rng.randint(0, max(0, len(source) - width))
        middle = " ".join(source[start : start + width]) if rng.random() < 0.5 else ""
        return f"{text(0, 4)} {middle} {text(0, 4)}"

    instances = [GeneratedInstance(i, i, text(0, 6), planted(), planted(), "") for i in range(1, 400)]
    report = check_contamination([], instances, texts, ngram=n)
    expected = _naive_first_matches(instances, texts, n)
    assert {m.generated_id: (m.generated_field, m.ngram) for m in report.instance_matches} == expected
    assert len(report.instance_matches) == len(expected)  # one pair per flagged instance
    assert 0 < len(expected) < len(instances)


def test_hash_collisions_never_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    import selfinstruct.quality.contamination as module

    real = module._hashes

    def weak(mixed: object, starts: object, width: int) -> object:
        return real(mixed, starts, width) & module.np.uint64(3)  # four hash values: collisions everywhere

    monkeypatch.setattr(module, "_hashes", weak)
    test_instance_flags_agree_with_a_naive_search(9)
    test_a_shared_13_gram_is_found_and_a_12_gram_is_not()


def test_clean_data_finds_nothing_and_serialises() -> None:
    generated = _instructions("List three birds that live near rivers.")
    instances = [_instance(1, output="Herons, kingfishers and dippers all feed along rivers.")]
    report = check_contamination(generated, instances, EVAL_TEXTS)
    assert not report.found
    assert report.instruction_matches == () and report.instance_matches == ()
    data = json.loads(json.dumps(report.as_dict()))
    assert data["flagged"] == {"instructions": 0, "instances": 0}
    assert data["sets"] == [
        {"name": "hand", "tasks": 2, "instances": 2, "instructions_flagged": 0, "instances_flagged": 0}
    ]
    assert data["generated"] == {"instructions": 1, "instances": 1} and data["ngram"] == 13


def test_ids_to_drop_takes_every_instance_of_a_flagged_instruction() -> None:
    generated = _instructions(EVAL_INSTRUCTION, "List three birds that live near rivers.")
    instances = [
        GeneratedInstance(10, 1, EVAL_INSTRUCTION, "", "one"),
        GeneratedInstance(11, 1, EVAL_INSTRUCTION, "", "two"),
        GeneratedInstance(12, 2, generated[1].text, EVAL_INPUT, "three"),
        GeneratedInstance(13, 2, generated[1].text, "", "four"),
    ]
    report = check_contamination(generated, instances, EVAL_TEXTS)
    assert report.flagged_instruction_ids == {1} and report.flagged_instance_ids == {12}
    assert ids_to_drop(instances, report) == {10, 11, 12}


# -- the shipped evaluation sets ---------------------------------------------------------------------------
def test_the_user_oriented_set_as_evaluation_set() -> None:
    texts = load_eval_set("user-oriented")
    assert len(texts) == 252 and {t.set_name for t in texts} == {"user-oriented"}
    target = next(t for t in texts if len(tokenize(t.references[0])) >= 20)
    generated = _instructions(
        target.instruction.lower().replace(".", "!"), "List three birds that live near rivers."
    )
    instances = [GeneratedInstance(1, 2, generated[1].text, "", "Sure. " + target.references[0])]
    report = check_contamination(generated, instances, texts)
    assert [(m.generated_id, m.eval_task, m.score) for m in report.instruction_matches] == [
        (1, target.task, 1.0)
    ]
    assert [(m.eval_item, m.eval_field) for m in report.instance_matches] == [(target.item_id, "reference")]


def test_the_superni_subset_as_evaluation_set_with_every_instance() -> None:
    texts = load_eval_set(SUPERNI)
    assert len(texts) == 615 and len({t.task for t in texts}) == 30  # all instances, no --limit
    target = next(t for t in texts if len(tokenize(t.input)) >= 25)
    generated = _instructions(target.instruction)
    instances = [GeneratedInstance(1, 1, "Answer it.", target.input, "ok")]
    report = check_contamination(generated, instances, texts)
    (instruction,) = report.instruction_matches
    assert instruction.eval_task == target.task and instruction.score == 1.0
    (instance,) = report.instance_matches
    assert instance.eval_item == target.item_id and instance.eval_task == target.task
    assert report.sets[0].name == str(SUPERNI) and report.sets[0].tasks == 30


def test_several_sets_are_counted_apart() -> None:
    texts = load_eval_sets(["user-oriented", SUPERNI, "user-oriented"])  # a repeated set is read once
    assert [len([t for t in texts if t.set_name == n]) for n in ("user-oriented", str(SUPERNI))] == [252, 615]
    superni_definition = next(t.instruction for t in texts if t.set_name == str(SUPERNI))
    report = check_contamination(_instructions(superni_definition), [], texts)
    assert [(s.name, s.instructions_flagged) for s in report.sets] == [
        ("user-oriented", 0),
        (str(SUPERNI), 1),
    ]


def test_a_seed_format_file_as_evaluation_set(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    rows = [
        {"id": "e1", "instruction": EVAL_INSTRUCTION, "instances": [{"input": EVAL_INPUT, "output": "x"}]},
        {
            "name": "two",
            "instruction": "Name a colour.",
            "instances": [{"output": "Blue"}, {"output": "Red"}],
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = load_eval_set(str(path))
    assert [(t.task, t.item_id, t.set_name) for t in texts] == [
        ("e1", "e1-0", str(path)),
        ("two", "two-0", str(path)),
        ("two", "two-1", str(path)),
    ]


def test_bad_evaluation_sets_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^--against nope\.jsonl: no such file or folder"):
        load_eval_set("nope.jsonl")
    with pytest.raises(UserError, match=r"^--decontaminate: empty value"):
        load_eval_set(" ", "--decontaminate")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Fine.", "instances": [{"output": "ok"}]}\n{"instruction": 3}\n')
    with pytest.raises(InputFileError, match=r"bad\.jsonl:2: 'instruction' must be a string"):
        load_eval_set(str(bad))
    empty_dir = tmp_path / "superni"
    empty_dir.mkdir()
    with pytest.raises(UserError, match=r"^--against .*superni: .*no SuperNI task"):
        load_eval_set(str(empty_dir))


# -- generated data ----------------------------------------------------------------------------------------
def test_reading_generated_files_in_every_format(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    rows = [
        {"instruction": "A.", "input": "in", "output": "out"},
        {"instruction": "B.", "instances": [{"input": "", "output": "x"}, {"output": "y"}]},
        {"instruction": "A.", "output": "again"},
        {"instruction": "C."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    data = read_generated_file(path)
    assert [(g.id, g.text, g.where) for g in data.instructions] == [
        (1, "A.", "line 1"),
        (2, "B.", "line 2"),
        (3, "C.", "line 4"),
    ]
    assert [(i.id, i.instruction_id, i.output, i.where) for i in data.instances] == [
        (1, 1, "out", "line 1"),
        (2, 2, "x", "line 2 instance 1"),
        (3, 2, "y", "line 2 instance 2"),
        (4, 1, "again", "line 3"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "x"}', "gen.jsonl:2: no 'instruction' field"),
        ('{"instruction": "A.", "output": 5}', "gen.jsonl:2: 'output' must be a string"),
        ('{"instruction": "A.", "instances": {"output": "x"}}', "gen.jsonl:2: 'instances' must be a list"),
        ("[1]", "gen.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_generated_files_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "gen.jsonl"
    path.write_text('{"instruction": "Fine.", "output": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        read_generated_file(path)
    assert str(caught.value).startswith(str(tmp_path / message.split(":")[0]) + ":2:")
    assert message.split(": ", 1)[1] in str(caught.value)


def test_an_empty_generated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"gen\.jsonl: no rows$"):
        read_generated_file(path)


# -- a run and stage 4 -------------------------------------------------------------------------------------
def _run_data(run_dir: Path) -> tuple[GeneratedData, list[Task]]:
    store = RunStore.open(run_dir)
    try:
        return generated_from_run(store), store.seed_tasks()
    finally:
        store.close()


def test_a_fake_run_and_prepare_decontaminate(fake_run: Path, tmp_path: Path) -> None:
    data, seeds = _run_data(fake_run)
    by_instruction: dict[int, list[GeneratedInstance]] = {}
    for inst in data.instances:
        by_instruction.setdefault(inst.instruction_id, []).append(inst)
    # An evaluation set holding one kept instruction (all its instances go) and, as an input, a long output
    # of an instance of another instruction (that instance goes).
    copied_id, copied = next((k, v) for k, v in by_instruction.items() if len(v) >= 2)
    leaked = next(
        i for k, v in by_instruction.items() if k != copied_id for i in v if len(tokenize(i.output)) >= 13
    )
    evals = [
        EvalText("t1", "t1-0", "planted", copied[0].instruction, "", ("x",)),
        EvalText(
            "t2", "t2-0", "planted", "Unrelated evaluation task about chess openings.", leaked.output, ()
        ),
    ]
    report = check_contamination(data.instructions, data.instances, evals)
    assert report.flagged_instruction_ids >= {copied_id}
    assert leaked.id in report.flagged_instance_ids
    drop = ids_to_drop(data.instances, report)
    assert drop >= {i.id for i in copied} | {leaked.id}

    plain = prepare_run(fake_run, tmp_path / "plain.jsonl")
    result = prepare_run(fake_run, tmp_path / "clean.jsonl", decontaminate=evals)
    assert plain.decontaminated == 0 and plain.describe_decontamination() == "decontamination: none"
    assert result.decontaminated == len(drop) and result.decontaminated_sets == ("planted",)
    emptied = {i.instruction_id for i in data.instances if i.id in drop} - {
        i.instruction_id for i in data.instances if i.id not in drop
    }
    assert result.decontaminated_instructions == len(emptied) >= 1
    assert f"dropped {len(drop)} instance(s)" in result.describe_decontamination()
    rows = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text(encoding="utf-8").splitlines()]
    prompts = "\n".join(row["prompt"] for row in rows)
    assert copied[0].instruction.strip() not in prompts
    assert not any(leaked.output.strip() in row["completion"] for row in rows)
    assert all(seed.instruction.strip() in prompts for seed in seeds)  # the user's own: never checked
    assert result.rows < plain.rows
