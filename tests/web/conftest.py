"""A small real run store for the review page, built through RunStore's own methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from selfinstruct.records import CandidateRecord, Instance, InstanceRecord, KeptInfo, SimilarInstruction, Task
from selfinstruct.store import RunStore

XSS_INSTRUCTION = (
    "Explain this markup <script>document.title='pwned';window.__xss=1</script>"
    ' and <img src=x onerror="window.__xss=2">'
)


@dataclass
class Cand:
    instruction: str
    verdict: str = "kept"
    clf: bool | None = False
    instances: list[tuple[str, str, str]] = field(default_factory=list)  # input, output, verdict


def build_run(run_dir: Path, requests: list[list[Cand]]) -> dict[str, int]:
    """Writes seeds, one stage-1 request per list, classification and instances; returns candidate ids by
    instruction text."""
    store = RunStore.open(run_dir, create=True)
    store.save_seeds(
        [
            Task(
                "Write a haiku about autumn leaves.",
                (Instance("", "Red leaves fall."),),
                False,
                "s0",
                "haiku",
            ),
            Task(
                "Classify the sentiment of a tweet.", (Instance("Great day", "positive"),), True, "s1", "sent"
            ),
        ]
    )
    for rid, cands in enumerate(requests):
        store.add_gen_request(rid, ["Write a haiku about autumn leaves."], "prompt")
        records = [
            CandidateRecord(pos, c.instruction, c.instruction, c.verdict) for pos, c in enumerate(cands)
        ]
        kept = {
            pos: KeptInfo((SimilarInstruction("Write a haiku about autumn leaves.", 0.2),), 0.1, 0.2)
            for pos, c in enumerate(cands)
            if c.verdict == "kept"
        }
        new_ids = store.finish_gen_request(rid, "reply", "stop", records, kept)
        kept_cands = [c for c in cands if c.verdict == "kept"]
        for iid, c in zip(new_ids, kept_cands, strict=True):
            if c.clf is not None:
                store.set_classification(iid, c.clf, "Yes" if c.clf else "No")
            store.finish_instances(
                iid, "reply", "stop", [InstanceRecord(p, i, o, v) for p, (i, o, v) in enumerate(c.instances)]
            )
    ids = {
        r["instruction"]: int(r["id"]) for r in store.conn.execute("SELECT id, instruction FROM candidates")
    }
    store.close()
    return ids


def default_requests() -> list[list[Cand]]:
    return [
        [
            Cand(
                "Write a limerick about a cat who loves rain.",
                instances=[("", "There once was a cat...", "kept")],
            ),
            Cand(
                "Sort the numbers in ascending order.",
                instances=[("3 1 2", "1 2 3", "kept"), ("5 4", "", "empty_output")],
            ),
            Cand("Draw a picture of a horse.", verdict="blacklist"),
            Cand("Hi", verdict="too_short"),
        ],
        [
            Cand("Classify the animal as mammal or bird.", clf=True, instances=[("eagle", "bird", "kept")]),
            Cand(XSS_INSTRUCTION, instances=[("<b>bold</b>", "<script>window.__xss=3</script>", "kept")]),
            Cand("Translate the sentence into French.", instances=[("Hello", "Bonjour", "kept")]),
            Cand("Write a haiku about autumn leaves falling.", verdict="novelty"),
        ],
    ]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    build_run(path, default_requests())
    return path
