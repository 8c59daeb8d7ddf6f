"""`selfinstruct contamination` and `prepare --decontaminate`: through a local typer app for the output,
and through the real `selfinstruct` process for a run, its meta, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import typer
from tests.conftest import SELFINSTRUCT, TEST_DATA
from typer.testing import CliRunner, Result

from selfinstruct.cli.contamination import contamination
from selfinstruct.novelty.rouge import tokenize
from selfinstruct.paths import lock_folder

EVAL_INSTRUCTION = "Rewrite the following paragraph so that a ten year old child can understand it easily."
EVAL_INPUT = (
    "The committee postponed the vote on the new library budget because three members were travelling "
    "abroad and the chair wanted everyone present before deciding anything."
)


def _invoke(args: list[str]) -> Result:
    app = typer.Typer()
    app.command()(contamination)
    return CliRunner().invoke(app, args, env={"COLUMNS": "250"})  # wide: no wrapped text


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval_file(tmp_path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        {"id": "rw", "instruction": EVAL_INSTRUCTION, "instances": [{"input": EVAL_INPUT, "output": "x"}]},
    ]
    return _write(tmp_path / "eval.jsonl", rows)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Wide: a wrapped line (help, the one error line) would split the text the tests look for.
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=180, env=env)


def _meta(run_dir: Path, key: str) -> object:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else json.loads(row[0])


def test_a_file_with_planted_overlaps(tmp_path: Path) -> None:
    words = EVAL_INPUT.split()
    generated = _write(
        tmp_path / "gen.jsonl",
        [
            {"instruction": EVAL_INSTRUCTION.lower(), "input": "", "output": "Kids can read it."},
            {"instruction": "Summarize the text.", "input": " ".join(words[2:15]), "output": "Short."},
            {"instruction": "Summarize the text.", "input": " ".join(words[2:14]), "output": "A 12-gram."},
            {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        ],
    )
    out = tmp_path / "report.json"
    result = _invoke([str(generated), "--against", str(_eval_file(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Checked 3 instructions (ROUGE-L > 0.7) and 4 instances (a shared 13-gram)" in result.output
    assert "Contamination found: 1 instruction(s) above the threshold, 1 instance(s)" in result.output
    assert "would leave out 2 of 4 instances" in result.output  # the flagged instruction's one, and line 2
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["flagged"] == {"instructions": 1, "instances": 1} and report["instances_to_drop"] == 2
    (instruction,) = report["instruction_matches"]
    assert instruction["score"] == 1.0 and instruction["where"] == "line 1"
    (instance,) = report["instance_matches"]
    assert instance["where"] == "line 2" and instance["eval_item"] == "rw-0"
    assert instance["ngram"] == " ".join(tokenize(" ".join(words[2:15])))
    assert report["sets"][0]["instances_flagged"] == 1


def test_clean_data_says_so_and_exits_0(tmp_path: Path) -> None:
    generated = _write(tmp_path / "gen.jsonl", [{"instruction": "Name a colour.", "output": "Blue."}])
    result = _invoke([str(generated), "--against", "user-oriented"])
    assert result.exit_code == 0, result.output
    assert "No contamination found." in result.output
    assert "user-oriented" in result.output and "252" in result.output


def test_generated_text_is_printed_as_text_not_markup(tmp_path: Path) -> None:
    instruction = (
        "[bold red]Rewrite[/] the following paragraph so that a ten year old child can understand it"
    )
    generated = _write(tmp_path / "gen.jsonl", [{"instruction": instruction, "output": "x"}])
    result = _invoke([str(generated), "--against", str(_eval_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "[bold red]Rewrite[/]" in result.output


def test_the_superni_subset_and_show(tmp_path: Path) -> None:
    task = json.loads((TEST_DATA / "superni" / "tasks" / "task288_gigaword_summarization.json").read_text())
    rows = [
        {"instruction": "Write a headline.", "input": i["input"], "output": "x"} for i in task["Instances"]
    ]
    generated = _write(tmp_path / "gen.jsonl", rows)
    out = tmp_path / "r.json"
    args = [str(generated), "--against", str(TEST_DATA / "superni"), "--show", "3", "--out", str(out)]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    flagged = report["instance_matches"]
    long_inputs = [r for r in rows if len(tokenize(r["input"])) >= 13]
    assert len(flagged) == len(long_inputs) > 3
    assert {m["eval_task"] for m in flagged} == {"task288_gigaword_summarization"}
    assert result.output.count("task288-") == 3  # the printed table stops at --show


@pytest.fixture
def run_copy(fake_run: Path, tmp_path: Path) -> Path:
    """A copy of the module's fake run, so that a command writing its meta leaves the fixture as it was."""
    return Path(shutil.copytree(fake_run, tmp_path / "run"))


def _planted_eval_file(run_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """An evaluation file holding the run's first kept instruction with kept instances; returns it and
    that instruction."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        (instruction,) = conn.execute(
            "SELECT instruction FROM instructions i WHERE EXISTS (SELECT 1 FROM instances x"
            " WHERE x.instruction_id = i.id AND x.verdict = 'kept') ORDER BY id LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    rows = [{"id": "leak", "instruction": instruction, "instances": [{"input": "", "output": "x"}]}]
    return _write(tmp_path / "eval.jsonl", rows), instruction


def test_a_run_made_against_the_fake_server(run_copy: Path, tmp_path: Path) -> None:
    eval_file, _ = _planted_eval_file(run_copy, tmp_path)
    out = tmp_path / "report.json"
    result = _run("contamination", str(run_copy), "--against", str(eval_file), "--against", "user-oriented")
    assert result.returncode == 0, result.stderr
    assert "Contamination found: 1 instruction(s)" in result.stderr
    summary = _meta(run_copy, "contamination")
    assert isinstance(summary, dict)
    assert summary["flagged"] == {"instructions": 1, "instances": 0}
    assert [s["name"] for s in summary["sets"]] == [str(eval_file), "user-oriented"]
    assert summary["instances_to_drop"] >= 1 and "instance_matches" not in summary

    # `--out` holds every pair, both sides' text.
    assert (
        _run("contamination", str(run_copy), "--against", str(eval_file), "--out", str(out)).returncode == 0
    )
    assert json.loads(out.read_text())["instruction_matches"][0]["eval_task"] == "leak"


def test_a_run_another_process_writes_keeps_its_meta(run_copy: Path, tmp_path: Path) -> None:
    eval_file, _ = _planted_eval_file(run_copy, tmp_path)
    lock = lock_folder(run_copy, "run")  # as a running `generate` holds it
    try:
        result = _run("contamination", str(run_copy), "--against", str(eval_file))
    finally:
        lock.release()
    assert result.returncode == 0, result.stderr
    assert "Contamination found" in result.stderr
    assert "Not recorded in the run: " in result.stderr and "another selfinstruct process" in result.stderr
    assert _meta(run_copy, "contamination") is None


def test_prepare_decontaminate_counts_what_it_drops(run_copy: Path, tmp_path: Path) -> None:
    eval_file, instruction = _planted_eval_file(run_copy, tmp_path)
    conn = sqlite3.connect(run_copy / "run.sqlite")
    try:
        (kept,) = conn.execute(
            "SELECT COUNT(*) FROM instances x JOIN instructions i ON i.id = x.instruction_id"
            " WHERE x.verdict = 'kept' AND i.instruction = ?",
            (instruction,),
        ).fetchone()
    finally:
        conn.close()
    out = tmp_path / "ft.jsonl"
    result = _run("prepare", str(run_copy), "--out", str(out), "--decontaminate", str(eval_file))
    assert result.returncode == 0, result.stderr
    line = (
        f"decontamination against {eval_file}: dropped {kept} instance(s), 1 instruction(s) left without any"
    )
    assert line in result.stderr
    prompts = [json.loads(row)["prompt"] for row in out.read_text().splitlines()]
    assert prompts and not any(instruction.strip() in p for p in prompts)

    plain = _run("prepare", str(run_copy), "--out", str(tmp_path / "plain.jsonl"))
    assert plain.returncode == 0 and "decontamination" not in plain.stderr


BAD_ARGUMENTS = {
    "no --against": (["contamination", "{run}"], "--against: give at least one evaluation set"),
    "missing set": (["contamination", "{run}", "--against", "{t}/nope.jsonl"], "no such file or folder"),
    "bad set line": (["contamination", "{run}", "--against", "{t}/bad.jsonl"], "bad.jsonl:2: "),
    "bad threshold": (
        ["contamination", "{run}", "--against", "user-oriented", "--threshold", "1.5"],
        "--threshold",
    ),
    "missing source": (
        ["contamination", "{t}/nothing", "--against", "user-oriented"],
        "no such run directory",
    ),
    "bad source line": (
        ["contamination", "{t}/bad_gen.jsonl", "--against", "user-oriented"],
        "bad_gen.jsonl:1:",
    ),
    "not a run": (["contamination", "{t}", "--against", "user-oriented"], "not a selfinstruct run directory"),
    "out is input": (
        ["contamination", "{t}/bad.jsonl", "--against", "user-oriented", "--out", "{t}/bad.jsonl"],
        "is also an input file",
    ),
    "prepare": (
        ["prepare", "{run}", "--decontaminate", "{t}/nope"],
        "--decontaminate {t}/nope: no such file",
    ),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_exit_2_with_one_line(fake_run: Path, tmp_path: Path, case: str) -> None:
    (tmp_path / "bad.jsonl").write_text(
        '{"instruction": "Fine.", "instances": [{"output": "ok"}]}\n{"x": 1}\n'
    )
    (tmp_path / "bad_gen.jsonl").write_text('{"output": "no instruction"}\n')
    args, expected = BAD_ARGUMENTS[case]
    filled = [a.format(run=fake_run, t=tmp_path) for a in args]
    result = _run(*filled)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected.format(t=tmp_path) in lines[0]
    assert _meta(fake_run, "contamination") is None  # nothing recorded in the run


def test_help_explains_the_command() -> None:
    result = _run("contamination", "--help")
    assert result.returncode == 0
    for text in ("--against", "--threshold", "--ngram", "--out", "user-oriented", "exit code 0"):
        assert text in result.stdout, text
    assert "--decontaminate" in _run("prepare", "--help").stdout
