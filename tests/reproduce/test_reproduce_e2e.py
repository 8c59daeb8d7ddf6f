"""`selfinstruct reproduce` end to end, for real: the CLI runs every step as its own command. The fake OpenAI
server generates the data (fast and offline); the embedded model is fine-tuned on it (LoRA through
transformers, its adapter written as GGUF) and evaluated on llama.cpp, base and base + adapter; the results
page is written, and a rerun skips every finished step."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import SELFINSTRUCT, TEST_DATA

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"
    ),
]


def _config(path: Path, server_url: str) -> Path:
    path.write_text(
        f"""
generate:
  {{backend: openai, model: fake-model, base-url: [{server_url}], num-instructions: 8, concurrency: 4}}
finetune: {{base: embedded, max-steps: 2, batch-size: 2, max-seq-length: 64, lora-r: 4}}
superni: {{tasks: {TEST_DATA / "superni"}, tasks-filter: "task1393*,task1664*", limit: 2}}
user_oriented: {{tasks-filter: "^user_oriented_task_[123]$"}}
eval: {{max-new-tokens: 8}}
compare: {{samples: 50}}
""",
        encoding="utf-8",
    )
    return path


def test_reproduce_runs_the_loop_writes_the_page_and_resumes(tmp_path: Path, fake_server) -> None:
    config = _config(tmp_path / "loop.yaml", fake_server.base_url)
    out = tmp_path / "loop"
    cmd = [*SELFINSTRUCT, "reproduce", "--out", str(out), "--config", str(config)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    page = (out / "results.md").read_text(encoding="utf-8")
    for evaluation in ("SuperNI subset", "User-oriented tasks"):
        assert evaluation in page
    compare = json.loads((out / "eval" / "compare_user.json").read_text())
    assert compare["paired"] == 3
    assert "selfinstruct finetune --data" in page and "## Machine" in page
    html = (out / "results.html").read_text(encoding="utf-8")
    assert "<script" not in html and "User-oriented tasks" in html
    markers = sorted(p.name for p in (out / "steps").glob("*.json"))
    assert len(markers) == 9
    # The tuned model ran on llama.cpp with the adapter finetune wrote, the base without it.
    adapter = out / "model" / "adapter.gguf"
    assert adapter.read_bytes()[:4] == b"GGUF"
    tuned_argv = json.loads((out / "steps" / "eval-tuned-user.json").read_text())["argv"]
    assert tuned_argv[tuned_argv.index("--lora") + 1] == str(adapter)
    base_argv = json.loads((out / "steps" / "eval-base-user.json").read_text())["argv"]
    assert "--lora" not in base_argv and "--base-url" not in base_argv

    stamp = {p: p.stat().st_mtime_ns for p in (out / "eval").glob("*.json")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing evaluated twice
    assert "to run" not in again.stderr
