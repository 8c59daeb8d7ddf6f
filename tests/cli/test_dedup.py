"""`selfinstruct dedup` on real files: through a local typer app and through the function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from rouge_score import rouge_scorer
from typer.testing import CliRunner

from selfinstruct.cli.dedup import dedup
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.novelty.dedup import dedup_file

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(dedup)
    return app


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _reference_kept(texts: list[str], pool: list[str], threshold: float = 0.7) -> list[int]:
    kept = []
    pool = list(pool)
    for i, text in enumerate(texts):
        if all(not SCORER.score(text, p)["rougeL"].fmeasure > threshold for p in pool):
            kept.append(i)
            pool.append(text)
    return kept


ROWS = [
    {"instruction": "Write a poem about the sea.", "input": "", "output": "Waves...", "extra": [1, 2]},
    {"instruction": "Write a poem about the ocean.", "input": "", "output": "Tides..."},
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Sleep."},
    {"instruction": "Give three tips for staying happy.", "input": "", "output": "Smile."},
    {"instruction": "Translate the sentence into French.", "input": "Hello", "output": "Bonjour"},
    {"instruction": "", "input": "", "output": "empty instruction"},
]


def test_cli_keeps_novel_rows_whole_in_order(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "kept.jsonl"
    result = CliRunner().invoke(_app(), [str(src), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    expected = _reference_kept([r["instruction"] for r in ROWS], [])
    lines = src.read_text().splitlines()
    assert out.read_text().splitlines() == [lines[i] for i in expected]  # byte-identical rows
    assert 0 < len(expected) < len(ROWS)
    assert f"Kept {len(expected)} of {len(ROWS)} rows" in result.output


def test_the_knob_is_named_as_in_generate_and_the_old_name_still_works(tmp_path: Path) -> None:
    """`--novelty-threshold` as `generate` calls it; `--threshold`, dedup's earlier name, is an alias."""
    src = _write(tmp_path / "in.jsonl", ROWS)
    texts = [r["instruction"] for r in ROWS]
    for flag in ("--novelty-threshold", "--threshold"):
        out = tmp_path / f"kept{flag}.jsonl"
        result = CliRunner().invoke(_app(), [str(src), "--out", str(out), flag, "0.9", "--no-progress"])
        assert result.exit_code == 0, result.output
        assert len(out.read_text().splitlines()) == len(_reference_kept(texts, [], 0.9))
    assert _reference_kept(texts, [], 0.9) != _reference_kept(texts, [])  # 0.9 is not the default
    shown = CliRunner().invoke(_app(), ["--help"], env={"COLUMNS": "200"}).output
    assert "--novelty-threshold,--threshold" in shown and "its earlier name here, still works" in shown
    refused = CliRunner().invoke(_app(), [str(src), "--out", str(tmp_path / "o.jsonl"), "--threshold", "2"])
    assert isinstance(refused.exception, UserError)  # shown by the CLI's printer as one line, exit 2
    assert str(refused.exception) == "--novelty-threshold must be between 0 and 1, got 2.0"


def test_against_pool_in_paper_seed_format(tmp_path: Path) -> None:
    seeds = _write(
        tmp_path / "seeds.jsonl",
        [
            {
                "id": "seed_task_0",
                "name": "x",
                "instruction": "Translate the sentence into French.",
                "instances": [{"input": "a", "output": "b"}],
                "is_classification": False,
            }
        ],
    )
    other = _write(tmp_path / "other.jsonl", [{"prompt": "Give three tips for staying healthy."}])
    rows = [{"prompt": r["instruction"]} for r in ROWS]
    src = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "kept.jsonl"
    summary = dedup_file(src, out, field="prompt", against=[seeds, other])
    pool = ["Translate the sentence into French.", "Give three tips for staying healthy."]
    expected = _reference_kept([r["prompt"] for r in rows], pool)
    assert [json.loads(x) for x in out.read_text().splitlines()] == [rows[i] for i in expected]
    assert (summary.read, summary.kept, summary.pool) == (len(rows), len(expected), 2 + len(expected))


def test_annotate_with_mean_adds_paper_fields(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", ROWS[:3])
    out = tmp_path / "kept.jsonl"
    result = CliRunner().invoke(_app(), [str(src), "--out", str(out), "--with-mean", "--no-progress"])
    assert result.exit_code == 0, result.output
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    first, second = kept[0], kept[1]
    assert first["most_similar_instructions"] == {} and "avg_similarity_score" not in first  # empty pool
    score = SCORER.score(ROWS[2]["instruction"], ROWS[0]["instruction"])["rougeL"].fmeasure
    assert second["most_similar_instructions"] == {ROWS[0]["instruction"]: score}
    assert second["avg_similarity_score"] == score


def test_empty_input_and_threshold_one(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n", encoding="utf-8")
    assert dedup_file(src, tmp_path / "a.jsonl").kept == 0
    dup = _write(tmp_path / "dup.jsonl", [ROWS[0], ROWS[0]])
    # At threshold 1.0 nothing can score above it: exact duplicates are kept too.
    assert dedup_file(dup, tmp_path / "b.jsonl", threshold=1.0).kept == 2
    assert dedup_file(dup, tmp_path / "c.jsonl", threshold=0.7).kept == 1


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"instruction": "ok"}\n{not json}\n', 2, "invalid JSON"),
        ('{"instruction": "ok"}\n\n{"text": "no field"}\n', 3, "no 'instruction' field"),
        ('{"instruction": 3}\n', 1, "not a string"),
        ('["a list"]\n', 1, "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "kept.jsonl"
    with pytest.raises(InputFileError) as info:
        dedup_file(src, out)
    assert info.value.line == line and message in str(info.value) and str(src) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no output, no temporary file


def test_bad_against_file_and_options(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", ROWS)
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"instruction": "fine"}\n{"broken"\n', encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        dedup_file(src, tmp_path / "o.jsonl", against=[bad])
    assert info.value.line == 2
    with pytest.raises(InputFileError):
        dedup_file(tmp_path / "missing.jsonl", tmp_path / "o.jsonl")
    with pytest.raises(UserError):
        dedup_file(src, src)
    with pytest.raises(UserError):
        dedup_file(src, tmp_path / "o.jsonl", threshold=1.5)
