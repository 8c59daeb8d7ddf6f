"""Run settings. Every default is the paper's setting (docs/pipeline.md lists them and the few deviations);
YAML and flags override them.

Precedence: defaults < `--config run.yaml` < command-line flags. The YAML file uses the same keys as the
flags (underscores), with the LM settings under `lm:`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_validator,
)

from selfinstruct.lm.base import Decoding
from selfinstruct.lm.credentials import public_url
from selfinstruct.lm.settings import LMSettings
from selfinstruct.settings_io import resolve

DEFAULT_BLACKLIST: tuple[str, ...] = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
# Alpaca's later additions: opt in with `--blacklist-extra`.
ALPACA_EXTRA_BLACKLIST: tuple[str, ...] = ("video", "videos", "audio", "music", "flowchart", "diagram")


class GenerationSettings(BaseModel):
    """Stage 1: bootstrapping instructions from the pool."""

    model_config = ConfigDict(extra="forbid")

    prompt_instructions: int = Field(8, ge=1, description="Instructions shown in each stage-1 prompt.")
    prompt_machine_instructions: int = Field(
        2, ge=0, description="Of those, how many come from machine-generated ones (fewer while few exist)."
    )
    temperature: float = Field(0.7, ge=0, description="Stage-1 sampling temperature.")
    top_p: float = Field(0.5, ge=0, le=1, description="Stage-1 nucleus sampling.")
    presence_penalty: float = Field(2.0, description="Stage-1 presence penalty.")
    frequency_penalty: float = Field(0.0, description="Stage-1 frequency penalty.")
    max_tokens: int = Field(1024, ge=1, description="Stage-1 reply length limit (tokens).")
    stop: list[str] = Field(
        default_factory=lambda: ["\n\n", "\n16", "16.", "16 ."],
        description="Stage-1 stop sequences (a blank line or the 16th item).",
    )
    keep_truncated: bool = Field(
        False,
        description="Keep all but the last item of a reply cut by the length limit (the paper drops it all).",
    )
    classification_only: bool = Field(False, description="Use only classification seeds and prompt.")
    max_requests: int | None = Field(
        None, ge=1, description="Stop stage 1 after this many requests even if the target is not reached."
    )


class FilterSettings(BaseModel):
    """Stage 1 candidate filters, applied in this order."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(4, ge=0, description="Drop instructions with fewer words (paper: <= 3 dropped).")
    max_words: int = Field(150, ge=1, description="Drop instructions with more words.")
    blacklist: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLACKLIST),
        description="Whole words/phrases (case-insensitive) a text-only LM cannot act on.",
    )
    blacklist_extra: list[str] = Field(
        default_factory=list, description="Added to the blacklist (e.g. Alpaca's: video audio music ...)."
    )
    bad_prefixes: list[str] = Field(
        default_factory=lambda: ["Write a program"], description="Drop instructions starting with these."
    )
    novelty_threshold: float = Field(0.7, ge=0, le=1, description="Drop if ROUGE-L F with any pool entry >.")
    novelty_top_k: int = Field(10, ge=1, description="Most similar pool instructions recorded.")
    novelty_mean: bool = Field(
        True,
        description="Record the mean ROUGE-L over the whole pool (exact; costs one LCS per pool entry).",
    )


class ClassifySettings(BaseModel):
    """Stage 2: is the task a classification task?"""

    model_config = ConfigDict(extra="forbid")

    examples_classification: int = Field(12, ge=0, description="Classification seed examples in the prompt.")
    examples_other: int = Field(19, ge=0, description="Non-classification seed examples in the prompt.")
    max_tokens: int = Field(3, ge=1, description="Stage-2 reply length limit.")
    stop: list[str] = Field(default_factory=lambda: ["\n", "Task"], description="Stage-2 stop sequences.")


class InstanceSettings(BaseModel):
    """Stage 3: instances, input-first or output-first."""

    model_config = ConfigDict(extra="forbid")

    examples: int = Field(6, ge=1, description="Seed tasks shown as examples in each stage-3 prompt.")
    temperature: float = Field(0.0, ge=0, description="Stage-3 temperature.")
    top_p: float = Field(0.0, ge=0, le=1, description="Stage-3 top_p (0 with temperature 0: greedy).")
    presence_penalty: float = Field(1.5, description="Stage-3 presence penalty.")
    frequency_penalty: float = Field(0.0, description="Stage-3 frequency penalty.")
    max_tokens: int = Field(350, ge=1, description="Stage-3 reply limit, input-first tasks.")
    max_tokens_classification: int = Field(300, ge=1, description="Stage-3 reply limit, output-first tasks.")
    stop: list[str] = Field(
        default_factory=lambda: ["Example 6", "Task:"], description="Stage-3 stop sequences."
    )
    max_instances: int = Field(5, ge=1, description="At most this many instances kept per task (random).")


class RunSettings(BaseModel):
    """Everything a run needs. Saved in the run store so that a resumed run uses the same settings."""

    model_config = ConfigDict(extra="forbid")

    num_instructions: int = Field(100, ge=1, description="Target number of kept machine instructions.")
    seed: int = Field(42, description="Random seed: fixed seed + same LM replies = same run.")
    seeds: str | None = Field(
        None, description="Seed task file (paper's JSONL) or a built-in set name; default: the project's."
    )
    lm: LMSettings = Field(default_factory=LMSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    instances: InstanceSettings = Field(default_factory=InstanceSettings)

    @model_validator(mode="after")
    def _check(self) -> RunSettings:
        if self.generation.prompt_machine_instructions > self.generation.prompt_instructions:
            raise ValueError("generation.prompt_machine_instructions exceeds generation.prompt_instructions")
        if self.filters.min_words > self.filters.max_words:
            raise ValueError("filters.min_words exceeds filters.max_words")
        return self

    @field_serializer("lm", mode="wrap")
    def _lm_without_credentials(self, lm: LMSettings, handler: SerializerFunctionWrapHandler) -> Any:
        """Settings are stored in the run and printed by `config --show`: a password written into a
        --base-url (`http://user:secret@host/v1`) must reach neither. A resumed run gets it from the flag."""
        data = handler(lm)
        if isinstance(data, dict) and isinstance(data.get("base_url"), list):
            data["base_url"] = [public_url(url) for url in data["base_url"]]
        return data

    # Decoding settings of each stage, built in one place.
    def generation_decoding(self) -> Decoding:
        g = self.generation
        return Decoding(
            temperature=g.temperature,
            top_p=g.top_p,
            max_tokens=g.max_tokens,
            presence_penalty=g.presence_penalty,
            frequency_penalty=g.frequency_penalty,
            stop=tuple(g.stop),
        )

    def classify_decoding(self) -> Decoding:
        c = self.classify
        return Decoding(temperature=0.0, top_p=1.0, max_tokens=c.max_tokens, stop=tuple(c.stop))

    def instance_decoding(self, classification: bool) -> Decoding:
        i = self.instances
        return Decoding(
            temperature=i.temperature,
            top_p=i.top_p,
            max_tokens=i.max_tokens_classification if classification else i.max_tokens,
            presence_penalty=i.presence_penalty,
            frequency_penalty=i.frequency_penalty,
            stop=tuple(i.stop),
        )


def resolve_settings(
    config_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> RunSettings:
    """Defaults < `base` (e.g. a resumed run's saved settings) < YAML file < `overrides` (flags).

    `overrides` uses dotted keys ("generation.temperature") or top-level ones ("seed"); `flag_names`
    (dotted key -> flag) lets an error name the flag that gave a rejected value."""
    return resolve(RunSettings, config_path, overrides, base=base, flag_names=flag_names)
