"""Hand-made inputs for the report: a plain JSONL file and a small real run store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.records import CandidateRecord, Instance, InstanceRecord, KeptInfo, SimilarInstruction, Task
from selfinstruct.store import RunStore

# Word counts are written next to each text so the expected statistics can be checked by hand.
PLAIN_LINES = [
    {  # instruction 7 words; one instance: empty input, output 4 words
        "instruction": "Write a short poem about the sea.",
        "instances": [{"input": "", "output": "Waves roll in softly."}],
        "is_classification": False,
    },
    {  # instruction 6 words; inputs 3 and 5 words, outputs 1 and 1 word; the paper's " Yes" answer style
        "instruction": "Classify the sentiment of the review.",
        "is_classification": " Yes",
        "instances": [
            {"input": "I loved it", "output": "Positive"},
            {"input": "Terrible plot and bad acting", "output": "Negative"},
        ],
    },
    # instruction 7 words, classification unknown; one instance per line: input 4 words, output 1 word
    {"instruction": "Find the largest number in the list.", "input": "3 7 2 9", "output": "9"},
    # same instruction again: merged; empty input, output 5 words
    {"instruction": "Find the largest number in the list.", "input": "", "output": "Give me a list first."},
]


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "generated.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in PLAIN_LINES) + "\n\n", encoding="utf-8")
    return path


SEEDS = [
    Task("Write a haiku about autumn leaves.", (Instance("", "Red leaves fall."),), False, "s0", "haiku"),
    Task("Classify the sentiment of a tweet.", (Instance("Great day", "positive"),), True, "s1", "sentiment"),
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Two requests: 6 candidates (3 kept, dropped: 1 too_short, 1 blacklist, 1 novelty); 4 parsed instances
    (3 kept, 1 empty_output)."""
    path = tmp_path / "run"
    store = RunStore.open(path, create=True)
    store.save_seeds(SEEDS)
    sim = KeptInfo((SimilarInstruction("Write a haiku about autumn leaves.", 0.3),), 0.2, 0.3)
    store.add_gen_request(0, ["Write a haiku about autumn leaves."], "p0")
    ids = store.finish_gen_request(
        0,
        "r0",
        "stop",
        [
            CandidateRecord(
                0,
                "Write a story about a <script>alert(1)</script> robot.",
                "Write a story about a <script>alert(1)</script> robot.",
                "kept",
            ),
            CandidateRecord(1, "Hi there", "Hi there", "too_short"),
            CandidateRecord(2, "Draw a map of France.", "Draw a map of France.", "blacklist"),
        ],
        {0: sim},
    )
    store.add_gen_request(1, ["Write a haiku about autumn leaves."], "p1")
    ids += store.finish_gen_request(
        1,
        "r1",
        "stop",
        [
            CandidateRecord(
                0, "Classify the email as spam or not.", "Classify the email as spam or not.", "kept"
            ),
            CandidateRecord(
                1, "Write a haiku about autumn leaves.", "Write a haiku about autumn leaves.", "novelty"
            ),
            CandidateRecord(2, "Summarize the paragraph.", "Summarize the paragraph.", "kept"),
        ],
        {0: sim, 2: sim},
    )
    store.set_classification(ids[0], False, "No")
    store.set_classification(ids[1], True, "Yes")
    store.finish_instances(
        ids[0], "x", "stop", [InstanceRecord(0, "", "Once upon a time a robot woke.", "kept")]
    )
    store.finish_instances(
        ids[1],
        "x",
        "stop",
        [InstanceRecord(0, "Win money now", "spam", "kept"), InstanceRecord(1, "Hello", "", "empty_output")],
    )
    store.finish_instances(
        ids[2], "x", "stop", [InstanceRecord(0, "The cat sat on the mat all day.", "Cat sat.", "kept")]
    )
    store.close()
    return path
