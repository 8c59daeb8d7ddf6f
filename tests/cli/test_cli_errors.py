"""User mistakes: one line naming the file and line (or the option), exit code 2, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from tests.conftest import PAPER_SEEDS, SELFINSTRUCT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=120)


def test_bad_seed_file_names_file_and_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    good = PAPER_SEEDS.read_text().splitlines()[0]
    seeds.write_text(good + "\n{not json\n")
    result = _run("generate", "--out", str(tmp_path / "run"), "--seeds", str(seeds), "--no-progress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{seeds}:2:" in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_yaml_config_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("seed: 3\ngeneration:\n  temperature: [oops\n")
    result = _run("config", "--show", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {config}:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_config_key_names_its_line(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("seed: 3\nfilters:\n  min_words: 4\n  novelty_treshold: 0.5\n")
    result = _run("config", "--show", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:4:" in result.stderr and "novelty_treshold" in result.stderr


def test_bad_option_value_names_the_option(tmp_path: Path) -> None:
    result = _run("config", "--show", "--novelty-threshold", "3")
    assert result.returncode == 2
    assert "novelty_threshold" in result.stderr and "(from --novelty-threshold)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rejected_run_flag_is_named_and_creates_no_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _run("generate", "--out", str(run_dir), "--batch-size", "0", "--no-progress")
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: setting lm.batch_size: ") and line.endswith("(from --batch-size)")
    assert not run_dir.exists()


def test_config_show_resolves_defaults_yaml_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("seed: 3\ngeneration:\n  temperature: 0.2\n  top_p: 0.9\nlm:\n  concurrency: 16\n")
    result = _run("config", "--show", "--config", str(config), "--gen-top-p", "0.4", "--blacklist", "video")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["seed"] == 3
    assert shown["generation"]["temperature"] == 0.2  # YAML over default
    assert shown["generation"]["top_p"] == 0.4  # flag over YAML
    assert shown["generation"]["presence_penalty"] == 2.0  # the paper's default
    assert shown["lm"]["concurrency"] == 16
    assert shown["filters"]["blacklist"] == ["video"]
    assert shown["instances"]["stop"] == ["Example 6", "Task:"]


def test_missing_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("export", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a selfinstruct run directory" in result.stderr


def test_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in (
        "generate",
        "instructions",
        "classify",
        "instances",
        "prepare",
        "export",
        "config",
        "dedup",
        "eval",
        "finetune",
        "report",
        "review",
        "seeds",
    ):
        assert command in result.stdout, command
