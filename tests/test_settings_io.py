"""The one settings reader of run and finetune: precedence, YAML errors with file:line, named keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from selfinstruct.config import RunSettings
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.finetune.config import FinetuneSettings
from selfinstruct.settings_io import load_yaml, resolve


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(0.5, ge=0, le=1)
    names: list[str] = Field(default_factory=lambda: ["a", "b"])


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 1
    label: str = "x"
    inner: _Inner = Field(default_factory=_Inner)


def test_precedence_defaults_base_yaml_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 3\ninner:\n  names: [z]\n")
    got = resolve(_Outer, cfg, {"inner.rate": 0.9}, base={"steps": 2, "label": "from-base"})
    assert got.steps == 3  # YAML over base
    assert got.label == "from-base"  # base over default
    assert got.inner.names == ["z"]  # a list is replaced whole
    assert got.inner.rate == 0.9  # flag over everything
    assert resolve(_Outer, cfg, {"steps": 7}).steps == 7


def test_dashed_keys_and_a_section(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("finetune:\n  max-steps: 5\nother: 1\n")
    assert load_yaml(cfg, "finetune") == {"max_steps": 5}
    assert resolve(FinetuneSettings, cfg, section="finetune").max_steps == 5


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 1\ninner:\n  names: [a,\n")
    with pytest.raises(InputFileError) as info:
        resolve(_Outer, cfg)
    assert info.value.path == cfg and info.value.line is not None and info.value.line >= 3


def test_rejected_value_in_yaml_names_its_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    # "rate:" also starts a line of text: the line must be the key's, found through the key path.
    cfg.write_text("label: |\n  rate: 3 words\ninner:\n  names: [a]\n  rate: 3\n")
    with pytest.raises(InputFileError) as info:
        resolve(_Outer, cfg)
    assert str(info.value).startswith(f"{cfg}:5: setting inner.rate:")
    cfg.write_text("steps: 2\nstepz: 3\n")
    with pytest.raises(InputFileError) as info:
        resolve(_Outer, cfg)
    assert str(info.value).startswith(f"{cfg}:2: setting stepz: Extra inputs")


def test_finetune_yaml_error_names_the_line_under_its_section(tmp_path: Path) -> None:
    cfg = tmp_path / "ft.yaml"
    cfg.write_text("finetune:\n  epochs: 1\n  lora-r: 0\n")
    with pytest.raises(InputFileError) as info:
        resolve(FinetuneSettings, cfg, section="finetune")
    assert str(info.value).startswith(f"{cfg}:3: setting lora_r:")


def test_rejected_flag_names_the_key_and_the_flag() -> None:
    with pytest.raises(UserError) as info:
        resolve(_Outer, None, {"inner.rate": 2}, flag_names={"inner.rate": "rate"})
    assert str(info.value).startswith("setting inner.rate: ") and str(info.value).endswith("(from --rate)")
    with pytest.raises(UserError, match=r"^setting filters\.novelty_threshold: "):
        resolve(RunSettings, None, {"filters.novelty_threshold": 3})


def test_a_bad_value_from_the_base_is_not_blamed_on_a_flag() -> None:
    """A resumed run's saved settings are the base: their error must not name a flag nobody gave."""
    names = {"inner.rate": "rate", "steps": "steps"}
    with pytest.raises(UserError) as info:
        resolve(_Outer, None, {"steps": 2}, base={"inner": {"rate": 2}}, flag_names=names)
    assert str(info.value).startswith("setting inner.rate: ") and "(from --" not in str(info.value)
    with pytest.raises(UserError) as info:
        resolve(_Outer, None, {"inner": {"rate": 2}}, flag_names=names)  # nested overrides name it too
    assert str(info.value).endswith("(from --rate)")


def test_a_check_across_fields_is_reported_without_a_key() -> None:
    with pytest.raises(UserError, match=r"^settings: .*min_words exceeds"):
        resolve(RunSettings, None, {"filters.min_words": 9, "filters.max_words": 3})
