"""The paper's files written from a hand-made run store: each field comes from the stored row it names."""

from __future__ import annotations

import json
from pathlib import Path

from selfinstruct.export import export_run
from selfinstruct.records import CandidateRecord, InstanceRecord, KeptInfo, SimilarInstruction
from selfinstruct.store import RunStore


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_paper_files_show_each_kept_instruction_with_its_replies(tmp_path: Path) -> None:
    run = tmp_path / "run"
    store = RunStore.open(run, create=True)
    store.set_meta("settings", {"lm": {"backend": "openai", "model": "org/some model"}})
    near = (SimilarInstruction("Write a haiku.", 0.5), SimilarInstruction("Name a colour.", 0.25))
    for request in (0, 1):
        store.add_gen_request(request, [], f"prompt {request}")
    ids = store.finish_gen_request(
        0,
        "r0",
        "stop",
        [
            CandidateRecord(0, "Sort a list.", "Sort a list.", "kept"),
            CandidateRecord(1, "Hi", "Hi", "too_short"),
        ],
        {0: KeptInfo(near, 0.3, 0.5)},
    )
    ids += store.finish_gen_request(
        1,
        "r1",
        "stop",
        [
            CandidateRecord(0, "Is it spam?", "Is it spam?", "kept"),
            CandidateRecord(1, "Poem.", "Poem.", "kept"),
        ],
        {0: KeptInfo((), None, 0.0), 1: KeptInfo(near[:1], 0.2, 0.5)},
    )
    sort, spam, _poem = ids  # the poem is neither classified nor given instances
    store.set_classification(sort, False, " No")
    store.set_classification(spam, True, " Yes")
    store.finish_instances(
        sort,
        "Input: 2 1\nOutput: 1 2",
        "stop",
        [InstanceRecord(0, "2 1", "1 2", "kept"), InstanceRecord(1, "", "", "empty_output")],
    )
    store.finish_instances(spam, "Class label: ...", "length", [InstanceRecord(0, "Win", "spam", "kept")])
    store.close()

    written = export_run(run, tmp_path / "out", ["paper"]).files

    instructions = _rows(written["machine_generated_instructions"][0])
    assert instructions == [
        {
            "instruction": "Sort a list.",
            "most_similar": {"Write a haiku.": 0.5, "Name a colour.": 0.25},
            "avg_similarity_score": 0.3,
            "max_similarity_score": 0.5,
            "request_idx": 0,
        },
        {
            "instruction": "Is it spam?",
            "most_similar": {},
            "avg_similarity_score": None,
            "max_similarity_score": 0.0,
            "request_idx": 1,
        },
        {
            "instruction": "Poem.",
            "most_similar": {"Write a haiku.": 0.5},
            "avg_similarity_score": 0.2,
            "max_similarity_score": 0.5,
            "request_idx": 1,
        },
    ]
    clf_path, clf_count = written["is_clf_or_not"]
    assert clf_path.name == "is_clf_or_not_org_some_model.jsonl" and clf_count == 2
    assert _rows(clf_path) == [  # the LM's raw answer, as the paper's file has it
        {"instruction": "Sort a list.", "is_classification": " No"},
        {"instruction": "Is it spam?", "is_classification": " Yes"},
    ]
    instances = _rows(written["machine_generated_instances"][0])
    assert [(r["instruction"], r["is_classification"], r["finish_reason"]) for r in instances] == [
        ("Sort a list.", False, "stop"),
        ("Is it spam?", True, "length"),
    ]
    assert instances[0]["raw_instances"] == "Input: 2 1\nOutput: 1 2"
    assert instances[0]["instances"] == [{"input": "2 1", "output": "1 2"}]  # the dropped one left out
    assert instances[1]["most_similar"] == {} and instances[1]["avg_similarity_score"] is None
    assert _rows(written["all_generated_instances"][0]) == [
        {"instruction": "Sort a list.", "input": "2 1", "output": "1 2", "is_classification": False},
        {"instruction": "Is it spam?", "input": "Win", "output": "spam", "is_classification": True},
    ]
