"""The eval commands' LM flags come from `EvalSettings.lm`: the run's LM flags, the judge built on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfinstruct.cli.eval import EVAL_FLAGS, eval_app, eval_settings
from selfinstruct.cli.options import RUN_FLAGS, flag_names
from selfinstruct.errors import UserError


def test_the_lm_flags_are_the_runs() -> None:
    run_lm = {key: name for key, name in flag_names(RUN_FLAGS).items() if key.startswith("lm.")}
    eval_lm = {key: name for key, name in flag_names(EVAL_FLAGS).items() if key.startswith("lm.")}
    assert eval_lm == run_lm
    # The names the eval commands had before they were generated.
    for name in ("backend", "model", "base-url", "api", "api-key-env", "concurrency", "request-timeout"):
        assert name in run_lm.values()
    assert {"max-retries", "threads", "device"} <= set(run_lm.values())


def test_the_shared_decoding_flags_keep_their_names() -> None:
    names = {key: name for key, name in flag_names(EVAL_FLAGS).items() if not key.startswith("lm.")}
    assert names == {
        "max_new_tokens": "max-new-tokens",
        "stop": "stop",
        "early_stop": "early-stop",
        "tasks_filter": "tasks-filter",
        "template": "template",
    }
    settings = eval_settings({"max_new_tokens": 9, "stop": ["###"], "early_stop": False})
    assert (settings.max_new_tokens, settings.stop, settings.early_stop) == (9, ["###"], False)
    with pytest.raises(UserError, match=r"\(from --max-new-tokens\)$"):
        eval_settings({"max_new_tokens": 0})


def test_the_judge_starts_from_the_answering_lm() -> None:
    overrides = {"lm.concurrency": 3, "lm.base_url": ["http://a:1/v1"], "lm.max_retries": 1}
    judge = {"backend": "openai", "model": "j", "base_url": None, "api": "chat", "api_key_env": "JK"}
    settings = eval_settings(overrides, judge)
    assert settings.lm.api == "completion" and settings.lm.concurrency == 3
    assert settings.judge is not None
    assert (settings.judge.model, settings.judge.api, settings.judge.api_key_env) == ("j", "chat", "JK")
    assert settings.judge.concurrency == 3 and settings.judge.max_retries == 1
    assert settings.judge.base_url == ["http://a:1/v1"]  # --base-url unless --judge-base-url
    own = eval_settings(overrides, {**judge, "base_url": ["http://b:2/v1"]})
    assert own.judge is not None and own.judge.base_url == ["http://b:2/v1"]
    assert eval_settings(overrides).judge is None


def test_bad_values_name_the_setting_and_the_flag() -> None:
    with pytest.raises(UserError, match=r"^setting lm\.concurrency: .*\(from --concurrency\)$"):
        eval_settings({"lm.concurrency": 0})
    judge = {"backend": "nope", "model": "m", "base_url": None, "api": "chat", "api_key_env": "K"}
    with pytest.raises(UserError, match=r"^setting judge\.backend: .*\(from --judge-backend\)$"):
        eval_settings({}, judge)


def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    tasks = tmp_path / "t.jsonl"
    tasks.write_text("")
    result = CliRunner().invoke(
        eval_app, ["tasks", "--tasks", str(tasks), "--out", str(tmp_path / "r.json"), "--api", "grpc"]
    )
    assert result.exit_code == 2
    assert "setting lm.api:" in result.output and "(from --api)" in result.output
    assert not (tmp_path / "r.json").exists()
