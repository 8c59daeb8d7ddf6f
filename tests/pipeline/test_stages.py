"""Each stage on its own, like the paper's four scripts, through the real CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import SELFINSTRUCT

from selfinstruct.store import RunStore
from selfinstruct.testing.fake_server import FakeOpenAIServer


def _cli(*args: str, base_url: str) -> subprocess.CompletedProcess[str]:
    lm = ["--backend", "openai", "--base-url", base_url, "--model", "fake-model", "--no-progress"]
    result = subprocess.run([*SELFINSTRUCT, *args, *lm], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_stages_one_by_one(tmp_path: Path, fake_server: FakeOpenAIServer) -> None:
    run = tmp_path / "run"
    _cli("instructions", "--out", str(run), "--num-instructions", "8", base_url=fake_server.base_url)
    store = RunStore.open(run)
    assert store.count_kept() >= 8
    assert store.counts().classified == 0
    store.close()
    _cli("classify", str(run), base_url=fake_server.base_url)
    store = RunStore.open(run)
    assert store.count_unfinished(classify=True, instances=False) == 0
    assert store.counts().instance_verdicts == {}
    store.close()
    _cli("instances", str(run), base_url=fake_server.base_url)
    store = RunStore.open(run)
    assert store.count_unfinished(classify=False, instances=True) == 0
    assert store.counts().instance_verdicts.get("kept", 0) > 0
    store.close()
    result = subprocess.run([*SELFINSTRUCT, "prepare", str(run)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in (run / "export" / "finetune.jsonl").read_text().splitlines()]
    assert rows and all(r["prompt"] and r["completion"] for r in rows)


def test_classify_and_instances_from_a_paper_format_file(
    tmp_path: Path, fake_server: FakeOpenAIServer
) -> None:
    source = tmp_path / "machine_generated_instructions.jsonl"
    source.write_text(
        "\n".join(
            json.dumps({"instruction": text, "most_similar": {}, "avg_similarity_score": 0.1})
            for text in (
                "Classify the sentiment of a tweet as positive or negative.",
                "Suggest a name for a new coffee shop near a university.",
            )
        )
        + "\n"
    )
    run = tmp_path / "run"
    _cli("instances", str(run), "--input", str(source), base_url=fake_server.base_url)
    store = RunStore.open(run)
    kept = store.kept_instructions()
    assert [k.is_classification for k in kept] == [True, False]
    assert all(k.instances_status == "done" for k in kept)
    store.close()
    # Importing the same file again adds nothing.
    result = _cli("classify", str(run), "--input", str(source), base_url=fake_server.base_url)
    assert "Imported 0 new" in result.stderr
