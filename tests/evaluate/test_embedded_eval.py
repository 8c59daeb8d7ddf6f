"""`eval superni` on the embedded model for real (slow; skipped where llama-cpp-python is missing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfinstruct.cli.eval import eval_app

DATA = Path(__file__).resolve().parents[1] / "data" / "superni"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"
    ),
]


def test_superni_on_the_embedded_model_and_cached_rerun(tmp_path: Path) -> None:
    out = tmp_path / "embedded.json"
    args = ["superni", "--tasks", str(DATA), "--tasks-filter", "task1393*,task1664*", "--limit", "2"]
    args += ["--max-new-tokens", "24", "--concurrency", "2", "--out", str(out), "-q"]
    first = CliRunner().invoke(eval_app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["model"]["backend"] == "embedded"
    assert report["overall"]["n"] == 4
    assert report["usage"]["eval"]["requests"] - report["usage"]["eval"]["cache_hits"] == 4
    assert any(item["raw_output"].strip() for item in report["items"])  # a real model wrote real text
    for item in report["items"]:
        assert item["prompt"].startswith("Definition: ") and "." not in item["raw_output"]  # early stop
        assert 0.0 <= item["scores"]["rougeL"] <= 100.0
    again = CliRunner().invoke(eval_app, args)
    assert again.exit_code == 0, again.output
    rerun = json.loads(out.read_text(encoding="utf-8"))
    assert rerun["usage"]["eval"]["cache_hits"] == 4  # nothing was decoded again
    assert [i["prediction"] for i in rerun["items"]] == [i["prediction"] for i in report["items"]]
