"""`selfinstruct config --show --for run|finetune|eval`: each command's settings through the one rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from selfinstruct.cli.main import app
from selfinstruct.errors import InputFileError, UserError


def _show(*args: str) -> dict:
    result = CliRunner().invoke(app, ["config", "--show", *args])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_run_is_the_default() -> None:
    assert _show() == _show("--for", "run")
    assert _show("--gen-top-p", "0.3")["generation"]["top_p"] == 0.3


def test_finetune_settings_from_defaults_and_yaml(tmp_path: Path) -> None:
    shown = _show("--for", "finetune")
    assert shown["epochs"] == 2.0 and shown["method"] == "lora" and shown["lora_r"] == 8
    config = tmp_path / "project.yaml"
    config.write_text("finetune:\n  max-steps: 7\n  method: full\n")
    shown = _show("--for", "finetune", "--config", str(config))
    assert shown["max_steps"] == 7 and shown["method"] == "full" and shown["batch_size"] == 4


def test_eval_settings_nest_the_lm_and_hide_url_passwords(tmp_path: Path) -> None:
    shown = _show("--for", "eval")
    assert shown["lm"]["backend"] == "embedded" and shown["judge"] is None and shown["max_new_tokens"] == 128
    config = tmp_path / "eval.yaml"
    config.write_text(
        "lm:\n  backend: openai\n  base_url: ['http://u:s3cret@host:8/v1']\n"
        "judge:\n  model: gpt-4o-mini\n  api: chat\n"
    )
    result = CliRunner().invoke(app, ["config", "--for", "eval", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.stdout
    shown = yaml.safe_load(result.stdout)
    assert shown["lm"]["base_url"] == ["http://host:8/v1"]
    assert shown["judge"]["model"] == "gpt-4o-mini" and shown["judge"]["concurrency"] == 8


def test_mistakes_name_the_key_or_the_option(tmp_path: Path) -> None:
    config = tmp_path / "ft.yaml"
    config.write_text("epochs: 1\nlora_r: 0\n")
    result = CliRunner().invoke(app, ["config", "--for", "finetune", "--config", str(config)])
    assert isinstance(result.exception, InputFileError)
    assert str(result.exception).startswith(f"{config}:2: setting lora_r:")
    result = CliRunner().invoke(app, ["config", "--for", "finetune", "--seed", "3"])
    assert isinstance(result.exception, UserError) and "--config" in str(result.exception)
    result = CliRunner().invoke(app, ["config", "--for", "train"])
    assert isinstance(result.exception, UserError) and "--for" in str(result.exception)


@pytest.mark.parametrize("target", ["finetune", "eval"])
def test_the_shown_yaml_reads_back_unchanged(tmp_path: Path, target: str) -> None:
    shown = _show("--for", target)
    config = tmp_path / "back.yaml"
    config.write_text(yaml.safe_dump(shown))
    assert _show("--for", target, "--config", str(config)) == shown
