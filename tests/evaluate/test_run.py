"""Prediction post-processing, report aggregation and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct.evaluate.report import ItemRecord, JudgeRecord, ModelInfo, load_report, write_report
from selfinstruct.evaluate.run import GenerationOptions, build_report, postprocess_prediction
from selfinstruct.evaluate.session import model_info
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.settings import parse_model_spec as parse_judge_spec


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("first-sentence", "Entailment"),
        ("first-line", "Entailment. The premise says so"),
        ("strip", "Entailment. The premise says so\nOutput: next"),
    ],
)
def test_postprocess_modes(mode: str, expected: str) -> None:
    raw = "  Entailment. The premise says so\nOutput: next  "
    assert postprocess_prediction(raw, mode) == expected  # type: ignore[arg-type]


def test_postprocess_edge_cases() -> None:
    assert postprocess_prediction("", "first-sentence") == ""
    assert postprocess_prediction("\n\n  yes\nno", "first-line") == "yes"
    # SuperNI's GPT-3 baseline keeps `text.strip().split(".")[0]` (Tk-Instruct, src/run_gpt3.py and
    # src/compute_metrics.py), so a decimal point ends the "sentence" too.
    assert postprocess_prediction("3.5 dollars", "first-sentence") == "3"


def test_generation_is_greedy() -> None:
    decoding = GenerationOptions(max_new_tokens=64, stop=("\n\n",), postprocess="strip").decoding()
    assert (decoding.temperature, decoding.max_tokens, decoding.stop) == (0.0, 64, ("\n\n",))
    # Scoring only the first sentence adds the period as a stop (unless turned off or already there).
    assert GenerationOptions(stop=("\n\n",)).decoding().stop == ("\n\n", ".")
    assert GenerationOptions(stop=(".",)).decoding().stop == (".",)
    assert GenerationOptions(early_stop=False).decoding().stop == ()


def _record(task: str, category: str, rouge: float, rating: str | None) -> ItemRecord:
    return ItemRecord(
        id=f"{task}-{rouge}-{rating}",
        task=task,
        category=category,
        instruction="Do | it",
        input="<b>x</b>",
        prompt="p",
        prediction="y",
        raw_output="y",
        finish_reason="stop",
        references=["y"],
        scores={"rougeL": rouge, "exact_match": 100.0 if rouge == 100 else 0.0},
        judge=JudgeRecord(rating=rating, reason="r", raw="raw"),  # type: ignore[arg-type]
    )


def test_report_aggregates_round_trips_and_escapes(tmp_path: Path) -> None:
    records = [
        _record("t|1", "Cat", 100.0, "A"),
        _record("t|1", "Cat", 50.0, None),
        _record("t2", "Dog", 0.0, "D"),
        _record("t2", "Dog", 30.0, "A"),
    ]
    report = build_report("tasks", records, ModelInfo(backend="openai", model="m", api="chat"), {"limit": 2})
    assert report.overall.n == 4 and report.overall.rougeL == pytest.approx(45.0)
    assert report.overall.exact_match == pytest.approx(25.0)
    assert report.overall.ratings == {"A": 2, "B": 0, "C": 0, "D": 1, "unrated": 1}
    assert [(t.name, t.n, t.rougeL) for t in report.per_task] == [("t|1", 2, 75.0), ("t2", 2, 15.0)]
    assert [(c.name, c.rougeL) for c in report.per_category] == [("Cat", 75.0), ("Dog", 15.0)]
    markdown_path = write_report(report, tmp_path / "r.json")
    assert load_report(tmp_path / "r.json") == report
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "| t\\|1 | Cat | 2 | 75.00 | 50.00 | 50.00 | 0.00 | 0.00 | 0.00 |" in markdown
    assert "| share % | 50.00 | 0.00 | 0.00 | 25.00 | 25.00 |" in markdown


def test_cli_helpers_keep_secrets_out_and_read_judge_specs() -> None:
    # A report names the endpoints the backend used, as valid URLs without their credentials.
    urls = ["https://user:secret@Host:8443/v1", "http://u:p@[::1]:8000/v1", "http://127.0.0.1:8000/v1"]
    info = model_info(LMSettings(backend="openai", model="m", base_url=urls))
    assert info.base_url == ["https://Host:8443/v1", "http://[::1]:8000/v1", "http://127.0.0.1:8000/v1"]
    assert model_info(LMSettings(backend="embedded", base_url=urls)).base_url == []  # in-process: none
    assert parse_judge_spec("openai/gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_judge_spec("transformers/Qwen/Qwen2.5-7B-Instruct") == (
        "transformers",
        "Qwen/Qwen2.5-7B-Instruct",
    )
    assert parse_judge_spec("meta-llama/Llama-3-8B") == ("openai", "meta-llama/Llama-3-8B")
