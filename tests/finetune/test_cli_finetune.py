"""The `finetune` command and its settings: defaults < YAML < flags, clear errors, summary output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selfinstruct.cli.finetune import finetune
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.finetune import build_config, load_yaml_config


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(finetune)
    return app


def test_yaml_then_flags_precedence(tmp_path: Path) -> None:
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text(
        "finetune:\n  max-steps: 7\n  lora_r: 4\n  method: full\n  lora-target-modules: [all-linear]\n"
    )
    cfg = build_config(cfg_file, max_steps=9, method=None)
    assert cfg.max_steps == 9  # flag wins
    assert cfg.lora_r == 4 and cfg.method == "full"  # YAML wins over defaults
    assert cfg.epochs == 2.0 and cfg.include_seeds  # the paper's defaults
    assert cfg.effective_learning_rate == 2e-5
    assert build_config().effective_learning_rate == 2e-4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("max_steps: many\n", "max_steps"),
        ("no_such_knob: 1\n", "no_such_knob"),
        ("method: qlora\n", "method"),
    ],
)
def test_bad_settings_are_user_errors(tmp_path: Path, text: str, fragment: str) -> None:
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text(text)
    with pytest.raises(UserError, match=fragment):
        build_config(cfg_file)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text("epochs: 1\nbatch_size: [1,\n")
    with pytest.raises(InputFileError) as info:
        load_yaml_config(cfg_file)
    assert info.value.line is not None and info.value.line >= 2
    with pytest.raises(InputFileError, match="mapping"):
        (tmp_path / "list.yaml").write_text("- 1\n")
        load_yaml_config(tmp_path / "list.yaml")


def test_missing_out_is_a_user_error(instances_file: Path) -> None:
    result = CliRunner().invoke(_app(), ["--data", str(instances_file)])
    assert isinstance(result.exception, UserError)
    assert "--out" in str(result.exception)


def test_command_trains_with_yaml_and_flags(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text(
        f"base: {tiny_base}\nmax_steps: 2\nmax_seq_length: 64\nlora_r: 4\ninclude_seeds: false\n"
    )
    out = tmp_path / "model"
    result = CliRunner().invoke(
        _app(),
        [
            *("--data", str(instances_file), "--out", str(out), "--config", str(cfg_file)),
            *("--max-steps", "3", "--lora-target", "q_proj", "--lora-target", "v_proj", "--no-progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Fine-tuning summary" in result.output
    summary = json.loads((out / "selfinstruct_finetune.json").read_text())
    assert summary["steps"] == 3
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]


def test_the_user_oriented_set_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    from selfinstruct.seeds.user_oriented import user_oriented_path

    copy = tmp_path / "eval.jsonl"  # a renamed copy: recognised by its content
    copy.write_bytes(user_oriented_path().read_bytes())
    for data in ("user-oriented", str(copy)):
        # No --base: the embedded model would load if the data got past the check.
        out = tmp_path / "models" / "m"
        result = CliRunner().invoke(_app(), ["--data", data, "--out", str(out), "--no-progress"])
        assert isinstance(result.exception, UserError), result.output
        assert not (tmp_path / "models").exists()  # a refused command leaves no directory behind
        assert "user-oriented evaluation set" in str(result.exception)
        assert "--allow-eval-data" in str(result.exception)
    assert build_config(allow_eval_data=True).allow_eval_data and not build_config().allow_eval_data


def test_eos_markers_of_a_prepared_file_become_the_models(tmp_path: Path) -> None:
    from selfinstruct.finetune.data import common_eos_marker, swap_eos

    assert common_eos_marker([" a<eos>", "b<eos>"]) == "<eos>"
    assert common_eos_marker([" a<|endoftext|>", "b<|endoftext|>"]) == "<|endoftext|>"
    assert common_eos_marker([" a<eos>", "b</s>"]) is None  # mixed: nothing is stripped
    assert swap_eos(" Paris<eos>", "<|im_end|>", "<eos>") == " Paris<|im_end|>"
    assert swap_eos(" a</s>", "<eos>", None) == " a</s><eos>"  # text that merely looks like a marker stays


class _Resolved(Exception):
    """Raised in place of training: carries the settings the command resolved."""


def _resolved(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> object:
    import selfinstruct.finetune.train as train

    def capture(cfg: object, console: object) -> None:
        raise _Resolved(cfg)

    monkeypatch.setattr(train, "run_finetune", capture)
    result = CliRunner().invoke(_app(), ["--data", "d.jsonl", "--out", "m", *args])
    assert isinstance(result.exception, _Resolved), result.output
    return result.exception.args[0]


def test_every_flag_reaches_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The flags generated from FinetuneSettings keep the hand-written names, short forms and aliases."""
    cfg = _resolved(
        monkeypatch,
        [
            *("-b", "tiny", "--method", "full", "--epochs", "3", "--max-steps", "5", "--lr", "0.001"),
            *("--batch-size", "2", "--grad-accum", "3", "--max-seq-length", "128", "--packing"),
            *(
                "--gradient-checkpointing",
                "--seed",
                "7",
                "--precision",
                "fp32",
                "--attn-implementation",
                "eager",
            ),
            *("--save-steps", "9", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1"),
            *("--lora-target", "q_proj", "--lora-target", "v_proj", "--no-merge", "--no-seeds"),
            *("--seeds", "medical", "--allow-eval-data", "--no-progress", "--warmup-ratio", "0.1"),
        ],
    )
    assert cfg.model_dump() == {
        **build_config().model_dump(),
        **dict(data=Path("d.jsonl"), out=Path("m"), base="tiny", method="full", epochs=3.0, max_steps=5),
        **dict(learning_rate=0.001, batch_size=2, grad_accum=3, max_seq_length=128, packing=True),
        **dict(gradient_checkpointing=True, seed=7, precision="fp32", attn_implementation="eager"),
        **dict(
            save_steps=9, lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_target_modules=["q_proj", "v_proj"]
        ),
        **dict(merge=False, include_seeds=False, seeds=Path("medical"), allow_eval_data=True, progress=False),
        **dict(warmup_ratio=0.1),
    }
    # Flags not given leave the YAML's values; --learning-rate is the long form of --lr.
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text("allow_eval_data: true\nmerge: false\nlora_r: 2\n")
    cfg = _resolved(monkeypatch, ["-c", str(cfg_file), "--learning-rate", "0.5"])
    assert cfg.allow_eval_data and not cfg.merge and cfg.lora_r == 2 and cfg.learning_rate == 0.5


def test_a_bad_flag_value_names_the_setting_and_the_flag() -> None:
    result = CliRunner().invoke(_app(), ["--data", "d.jsonl", "--out", "m", "--lora-r", "0"])
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith("setting lora_r: ") and "(from --lora-r)" in str(result.exception)
