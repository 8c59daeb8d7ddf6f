"""Run settings. Every default is the paper's setting (docs/pipeline.md lists them and the few deviations);
YAML and flags override them.

Precedence: defaults < `--config run.yaml` < command-line flags. The YAML file uses the same keys as the
flags (underscores), with the LM settings under `lm:`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_validator,
)

from selfinstruct.lm.base import Decoding
from selfinstruct.lm.credentials import public_urls
from selfinstruct.lm.settings import LMSettings, parse_model_spec
from selfinstruct.novelty import NOVELTY_THRESHOLD
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
    stall_requests: int | None = Field(
        1000,
        ge=1,
        description="Stop stage 1 when this many replies in a row keep no new instruction (the model only "
        "repeats the pool, so the target cannot be reached); none: never stop for that.",
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
    novelty_threshold: float = Field(
        NOVELTY_THRESHOLD, ge=0, le=1, description="Drop if ROUGE-L F with any pool entry >."
    )
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
    copy_filter: bool = Field(
        True,
        description="Drop an instance whose input or output reproduces an example of its prompt (not in "
        "the paper: --no-copy-filter for the paper's exact filters).",
    )
    copy_threshold: float = Field(
        0.7, ge=0, le=1, description="ROUGE-L F with a prompt example's field at which a field is a copy."
    )
    copy_ngram: int = Field(
        8,
        ge=2,
        description="Consecutive tokens shared with a prompt example's field that make a field a copy.",
    )


class QualitySettings(BaseModel):
    """Rating the data on the paper's Table 2 questions as it is made (`generate --judge`); `selfinstruct
    rate` rates a finished run. The judge starts from the run's LM settings and takes what is given here."""

    model_config = ConfigDict(extra="forbid")

    judge: str | None = Field(
        None,
        description="Rate every kept instance as it is made: checks (model-free), embedded, or "
        "BACKEND/MODEL (openai/gpt-4o-mini; a bare name: an OpenAI-compatible server). Default: none.",
    )
    judge_base_url: list[str] = Field(
        default_factory=list, description="The judge's endpoint(s), repeatable. Default: --base-url."
    )
    judge_api: Literal["completion", "chat"] | None = Field(
        None, description="The judge's API. Default: chat on the openai backend, else completion."
    )
    judge_api_key_env: str | None = Field(
        None, description="Environment variable holding the judge's API key. Default: --api-key-env."
    )
    judge_concurrency: int | None = Field(
        None, ge=1, description="Judge requests in flight at once. Default: --concurrency."
    )


class CostSettings(BaseModel):
    """What a run's LM requests cost, and the budget that stops it (docs/pipeline.md, "Cost and budget").
    Prices are the user's: there is no built-in price table. They apply to every request of the run, the
    judge's included; cache hits cost nothing."""

    model_config = ConfigDict(extra="forbid")

    price_input: float | None = Field(
        None, ge=0, description="USD per million prompt tokens (your provider's price). Default: none."
    )
    price_output: float | None = Field(
        None, ge=0, description="USD per million completion tokens. Default: none."
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description="Stop before a request could take the run's spending past this many USD (needs "
        "--price-input and --price-output; a resumed run may raise it). Default: no limit.",
    )
    max_total_tokens: int | None = Field(
        None,
        ge=1,
        description="Stop before a request could take the run's prompt + completion tokens (all stages) "
        "past this. Default: no limit.",
    )

    @model_validator(mode="after")
    def _check(self) -> CostSettings:
        if self.max_cost is not None and (self.price_input is None or self.price_output is None):
            raise ValueError(
                "max_cost needs price_input and price_output (--price-input, --price-output: USD per "
                "million tokens)"
            )
        return self

    @property
    def priced(self) -> bool:
        return self.price_input is not None and self.price_output is not None


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
    quality: QualitySettings = Field(default_factory=QualitySettings)
    cost: CostSettings = Field(default_factory=CostSettings)

    @model_validator(mode="after")
    def _check(self) -> RunSettings:
        if self.generation.prompt_machine_instructions > self.generation.prompt_instructions:
            raise ValueError("generation.prompt_machine_instructions exceeds generation.prompt_instructions")
        if self.filters.min_words > self.filters.max_words:
            raise ValueError("filters.min_words exceeds filters.max_words")
        return self

    @field_serializer("lm", "quality", mode="wrap")
    def _without_credentials(self, value: BaseModel, handler: SerializerFunctionWrapHandler) -> Any:
        """Settings are stored in the run and printed by `config --show`: a password written into a
        --base-url (`http://user:secret@host/v1`) must reach neither. A resumed run gets it from the flag."""
        return public_urls(handler(value), "base_url", "judge_base_url")

    def judge_lm(self) -> LMSettings | None:
        """The judge's LM settings: the run's, with the judge's backend, model and connection; None for no
        judge or the model-free checks. The openai backend's judge talks chat unless told otherwise."""
        q = self.quality
        if q.judge is None or q.judge.strip() == "checks":
            return None
        backend, model = parse_model_spec(q.judge)
        changes: dict[str, Any] = {
            "backend": backend,
            "model": model,
            "api": q.judge_api or ("chat" if backend == "openai" else "completion"),
            "lora": None,  # an adapter belongs to the generating model
        }
        if q.judge_base_url:
            changes["base_url"] = list(q.judge_base_url)
        if q.judge_api_key_env:
            changes["api_key_env"] = q.judge_api_key_env
        if q.judge_concurrency:
            changes["concurrency"] = q.judge_concurrency
        return LMSettings.model_validate(self.lm.model_dump() | changes)

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
