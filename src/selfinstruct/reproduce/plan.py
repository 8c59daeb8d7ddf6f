"""What `selfinstruct reproduce` runs: settings (presets < YAML < flags), and the plan of steps they give.

Each step is one ordinary `selfinstruct` command line, so a user can rerun any step by hand, and the
results page lists exactly what ran. A step's section of the settings holds that command's own settings:
its settings keys (`lm: {threads: 2}`) or its flag names (`threads`). The commands themselves read each
section (`StepTables`, from the CLI's registry of commands): a key no command has, or a value it rejects,
stops the plan with one line naming the file, the line and the step, before anything runs; the sections are
kept as the flag names the child commands are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from selfinstruct.errors import UserError
from selfinstruct.lm.credentials import split_credentials
from selfinstruct.settings_io import line_of_key, load_yaml

Preset = Literal["cpu", "paper"]
TunedRuntime = Literal["auto", "embedded", "transformers"]

Where = Callable[[str], str]  # a key -> where it was given, as a message prefix ("FILE:LINE: ")


def _given_at(prefix: str) -> Where:
    """Every key of one source given at the same place (a preset, a flag)."""
    return lambda _key: prefix


class StepTables(Protocol):
    """The step commands' own tables (the CLI's registry provides them: the loop never imports the CLI)."""

    @property
    def lm_flags(self) -> frozenset[str]:
        """Flags that pick and drive the generating model (generate's `lm` settings). When it is also the
        model being fine-tuned (the embedded default, or `generate --backend embedded --model X.gguf` with
        that GGUF as the base), the base model's evaluations reuse them, so the loop answers the paper's
        question (does the model improve on its own data?)."""
        ...

    def normalize(self, section: str, values: Mapping[str, Any], where: Where) -> dict[str, Any]:
        """A section's keys read by its command: settings keys or flag names -> the flag names."""
        ...

    def check(self, step: Step, where: Where) -> None:
        """A step's command line parsed and its settings resolved by its command, as the child will."""
        ...


class ReproduceSettings(BaseModel):
    """The whole loop's settings. Sections are flags of the step's own command."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset = "cpu"
    generate: dict[str, Any] = Field(default_factory=dict, description="Flags of `selfinstruct generate`.")
    prepare: dict[str, Any] = Field(default_factory=dict, description="Flags of `selfinstruct prepare`.")
    finetune: dict[str, Any] = Field(default_factory=dict, description="Flags of `selfinstruct finetune`.")
    eval: dict[str, Any] = Field(
        default_factory=dict, description="Flags of every `selfinstruct eval` run (base and tuned)."
    )
    superni: dict[str, Any] = Field(
        default_factory=dict,
        description="Flags of `eval superni` (tasks: the SuperNI data folder; without it, no SuperNI).",
    )
    user_oriented: dict[str, Any] = Field(
        default_factory=dict, description="Flags of `eval tasks --tasks user-oriented`."
    )
    compare: dict[str, Any] = Field(default_factory=dict, description="Flags of `selfinstruct eval compare`.")
    tuned_runtime: TunedRuntime = Field(
        default="auto",
        description="How the tuned model is evaluated: embedded (llama.cpp, base GGUF + the LoRA adapter "
        "as GGUF), transformers (the merged model directory), or auto (embedded when the base is a GGUF "
        "and the method LoRA).",
    )
    decontaminate: bool = Field(
        default=True,
        description="Leave out of the training data what overlaps the evaluation sets the loop runs (the "
        "user-oriented tasks, and SuperNI when given): prepare --decontaminate for each.",
    )
    # Where each section's flag was given ((section, flag) -> "FILE:LINE: "), for the plan's checks.
    _where: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    def where(self, sections: tuple[str, ...], flag: str) -> str:
        """Where a step's flag was given, looked up in the sections it may come from (else "")."""
        return next((self._where[(s, flag)] for s in sections if (s, flag) in self._where), "")


# Presets: the CPU default is sized from timed runs on a 2-core machine (docs/reproduce.md, "Timing");
# `paper` is the paper's scale (52K instructions, 2 epochs, up to 100 SuperNI instances per task).
# On CPU the user-oriented replies are capped at 64 tokens: the base model runs to the cap on almost every
# one of the 252 tasks, so this cap sets the evaluations' time (128 tokens took 16 minutes per model on
# 1 thread).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "generate": {"num-instructions": 60, "threads": 2},
        "finetune": {"max-steps": 30, "max-seq-length": 256, "batch-size": 4},
        "superni": {"limit": 2},
        "user_oriented": {"max-new-tokens": 64},
    },
    "paper": {
        "generate": {"num-instructions": 52000},
        "finetune": {"epochs": 2},
        "superni": {"limit": 100},
        "user_oriented": {},
    },
}

# Seconds per unit for the embedded model on 2 cores (AMD EPYC, 2 llama.cpp threads, an otherwise quiet
# machine), from a whole `reproduce` run of the cpu preset (docs/reproduce.md, "Timing"); the plan prints
# the sum as an estimate. Evaluations are timed per generated token (the base model's user-oriented replies
# run to the cap) and, for SuperNI, whose replies mostly stop early, per item.
CPU_RATES = {
    "generate_per_instruction": 6.7,
    "finetune_load": 155.0,  # loading and dequantising the GGUF, saving merged weights, the GGUF adapter
    "finetune_per_step": 13.4,  # 4 rows of up to 256 tokens, LoRA r8 on q/k/v/o, fp32
    "eval_load": 10.0,
    "eval_per_token": 0.023,
    "superni_per_item": 1.0,
}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Sections merge key by key (a YAML `finetune: {lora-r: 16}` keeps the preset's max-steps)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **{_flag_key(k): v for k, v in value.items()}}
        elif isinstance(value, Mapping):
            out[key] = {_flag_key(k): v for k, v in value.items()}
        else:
            out[key] = value
    return out


def _flag_key(key: object) -> str:
    """`max_steps`, `max-steps` and `--max-steps` all name the flag --max-steps."""
    return str(key).lstrip("-").replace("_", "-")


def resolve_settings(
    preset: str | None,
    config: Path | None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    tables: StepTables | None = None,
) -> ReproduceSettings:
    """Preset < YAML < flags. `overrides` maps a section to flags given on the command line. With `tables`
    (the commands' own), every section is read by its command: a key it has no setting or flag for is
    refused naming where it was given."""
    from_yaml = load_yaml(config) if config is not None else {}  # one YAML reader for every command
    chosen = preset or from_yaml.get("preset") or "cpu"
    if chosen not in PRESETS:
        raise UserError(f"--preset {chosen!r}: choose one of {', '.join(PRESETS)}")
    sources: tuple[tuple[Mapping[str, Any], Callable[[str, str], str]], ...] = (
        (PRESETS[chosen], lambda section, key: f"--preset {chosen} ({section}.{key}): "),
        (
            {k: v for k, v in from_yaml.items() if k != "preset"},
            lambda section, key: f"{config}:{line_of_key(Path(str(config)), [section, key]) or 1}: ",
        ),
        (overrides or {}, lambda section, key: f"reproduce's flag for {section}.{key}: "),
    )
    values: dict[str, Any] = {"preset": chosen}
    where: dict[tuple[str, str], str] = {}
    for given, locate in sources:
        for section, raw in given.items():
            if not isinstance(raw, Mapping) or tables is None:
                values = _merge(values, {section: raw})
                continue
            for key, value in raw.items():
                prefix = locate(section, str(key))
                flags = tables.normalize(section, {key: value}, _given_at(prefix))
                where.update({(section, flag): prefix for flag in flags})
                values = _merge(values, {section: flags})
    try:
        settings = ReproduceSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "settings"
        source = f" ({config})" if config is not None else ""
        raise UserError(f"reproduce setting {place}: {first['msg']}{source}") from None
    settings._where = where
    _refuse_url_credentials(settings)
    return settings


def _refuse_url_credentials(settings: ReproduceSettings) -> None:
    """The loop stores its commands (steps/, reproduce.yaml) and passes them on command lines, so a URL
    carrying a password would be written down: refuse it; keys travel through the environment."""
    for section, values in settings.model_dump().items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and "://" in item and split_credentials(item)[1] is not None:
                    raise UserError(
                        f"reproduce setting {section}.{key}: a URL with credentials; the loop writes its "
                        "commands down, so give the key through OPENAI_API_KEY or --api-key-env instead"
                    )


def to_flags(values: Mapping[str, Any]) -> list[str]:
    """A section as command-line flags: True -> --x, False -> --no-x, a list repeats the flag."""
    argv: list[str] = []
    for key, value in values.items():
        name = _flag_key(key)
        if value is None:
            continue
        if value is True:
            argv.append(f"--{name}")
        elif value is False:
            argv.append(f"--no-{name}")
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [f"--{name}", str(item)]
        else:
            argv += [f"--{name}", str(value)]
    return argv


@dataclass(frozen=True)
class Step:
    """One command of the loop. `outputs` are paths (relative to the loop's folder) that exist once it is
    done; `needs` names the steps whose outputs it reads (a step reruns when one of them ran again).
    `fresh_flags` are added when the step runs again from scratch rather than resuming an interrupted
    attempt of the same command (fine-tuning's --restart: old checkpoints must not be continued)."""

    name: str
    title: str
    argv: tuple[str, ...]
    outputs: tuple[str, ...]
    needs: tuple[str, ...] = ()
    estimate_s: float | None = None
    fresh_flags: tuple[str, ...] = ()


def _uses_gguf_base(settings: ReproduceSettings) -> bool:
    base = str(settings.finetune.get("base", "embedded"))
    return base == "embedded" or base.endswith(".gguf")


def tuned_runtime(settings: ReproduceSettings) -> Literal["embedded", "transformers"]:
    if settings.tuned_runtime != "auto":
        return settings.tuned_runtime
    lora = str(settings.finetune.get("method", "lora")) == "lora"
    return "embedded" if lora and _uses_gguf_base(settings) else "transformers"


def _estimates(settings: ReproduceSettings) -> dict[str, float | None]:
    """Expected seconds per step kind, from measured rates; None where the speed depends on a server."""
    backend = str(settings.generate.get("backend", "embedded"))
    if backend != "embedded" or not _uses_gguf_base(settings):
        return {}
    try:  # a bad value is the plan check's to report, with where it was given
        n = float(settings.generate.get("num-instructions", 100))
        steps = float(settings.finetune["max-steps"]) if "max-steps" in settings.finetune else None
    except (TypeError, ValueError):
        return {}
    return {
        "generate": n * CPU_RATES["generate_per_instruction"],
        "prepare": 5.0,
        "finetune": CPU_RATES["finetune_load"] + CPU_RATES["finetune_per_step"] * steps if steps else None,
    }


def _eval_estimate(settings: ReproduceSettings, key: str, section: Mapping[str, Any]) -> float:
    """Seconds for one evaluation on the embedded model: SuperNI per item (30 tasks x the limit, 20 when not
    limited), the user-oriented set per generated token (252 replies, each to the cap)."""
    if key == "superni":
        limit = section.get("limit")
        return CPU_RATES["eval_load"] + 30 * (int(limit) if limit else 20) * CPU_RATES["superni_per_item"]
    cap = int(section.get("max-new-tokens", settings.eval.get("max-new-tokens", 128)))
    return CPU_RATES["eval_load"] + 252 * cap * CPU_RATES["eval_per_token"]


def eval_models(
    settings: ReproduceSettings, lm: Mapping[str, Any], base: str, model_dir: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LM flags of the base and of the tuned evaluations.

    Both run on the same runtime, so the comparison measures the fine-tuning and not a runtime or
    quantisation gap: on llama.cpp (base GGUF, then base GGUF + the adapter) or on transformers (the base,
    then the merged model). When the generating model is the base on that runtime, its flags (threads,
    concurrency) are kept; a model behind a server that only generated the data is not the base.
    """
    if tuned_runtime(settings) == "embedded":
        keep = {k: v for k, v in lm.items() if k in ("threads", "concurrency", "batch-invariant")}
        generated_by_base = lm.get("backend") in (None, "embedded") and lm.get("model", "embedded") == base
        base_lm = dict(lm) if generated_by_base else {"backend": "embedded", "model": base, **keep}
        if base_lm.get("model") == "embedded":
            base_lm.pop("model")
        tuned = {"backend": "embedded", "lora": f"{model_dir}/adapter.gguf"}
        tuned.update({k: v for k, v in lm.items() if k in ("threads", "batch-invariant")})
        return base_lm, tuned
    device = {k: v for k, v in lm.items() if k == "device"}
    return (
        {"backend": "transformers", "model": base, **device},
        {"backend": "transformers", "model": model_dir, **device},
    )


def _prepare_flags(settings: ReproduceSettings) -> dict[str, Any]:
    """The prepare step's flags: the section's, and the loop's evaluation sets to decontaminate against."""
    flags = dict(settings.prepare)
    if settings.decontaminate:
        given = flags.get("decontaminate") or []
        sets = [*(given if isinstance(given, list) else [given]), "user-oriented"]
        if settings.superni.get("tasks"):
            sets.append(str(settings.superni["tasks"]))
        flags["decontaminate"] = list(dict.fromkeys(sets))
    return flags


def build_plan(settings: ReproduceSettings, out: Path, tables: StepTables) -> list[Step]:
    """The loop's steps in order. Commands name the loop's files under `out` (absolute, so that paths the user
    gave, such as the SuperNI folder, keep meaning what they meant where the command was typed)."""

    def at(rel: str) -> str:
        return str(out / rel)

    gen = {k: v for k, v in settings.generate.items() if k != "out"}
    lm = {k: v for k, v in gen.items() if k in tables.lm_flags}
    # A GGUF that generated the data is, by default, the model fine-tuned on it.
    own_gguf = lm.get("backend") in (None, "embedded") and str(lm.get("model", "")).endswith(".gguf")
    finetune = {"base": lm["model"] if own_gguf else "embedded", **settings.finetune}
    if "base" not in settings.finetune and lm.get("backend") not in (None, "embedded"):
        raise UserError(
            "reproduce: set finetune.base (a Hugging Face model id or directory, or a GGUF file) when "
            "generating with a backend other than embedded"
        )
    est = _estimates(settings)
    steps = [
        Step("generate", "Generate instructions and instances (stages 1-3)",
             ("generate", "--out", at("run"), *to_flags(gen)),
             ("run/summary.json",), (), est.get("generate")),
        Step("prepare", "Prepare fine-tuning data (stage 4)",
             ("prepare", at("run"), "--out", at("data/finetune.jsonl"), *to_flags(_prepare_flags(settings))),
             ("data/finetune.jsonl",), ("generate",), est.get("prepare")),
        Step("finetune", "Fine-tune (stage 5)",
             ("finetune", "--data", at("data/finetune.jsonl"), "--out", at("model"), *to_flags(finetune)),
             ("model/selfinstruct_finetune.json",), ("prepare",), est.get("finetune"), ("--restart",)),
    ]  # fmt: skip
    base_lm, tuned_lm = eval_models(settings, lm, str(finetune["base"]), at("model"))
    # Each evaluation's own section comes after the flags of every evaluation (`eval`), so it wins.
    evals: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = []
    if settings.superni.get("tasks"):
        evals.append(("superni", "SuperNI", ("eval", "superni"), settings.superni))
    evals.append(
        ("user", "user-oriented tasks", ("eval", "tasks", "--tasks", "user-oriented"), settings.user_oriented)
    )
    for key, label, head, section in evals:
        estimate = _eval_estimate(settings, key, section) if est else None
        common = (*head, *to_flags(settings.eval), *to_flags(section))
        steps.append(
            Step(f"eval-base-{key}", f"Evaluate the base model on {label}",
                 (*common, *to_flags(base_lm), "--out", at(f"eval/base_{key}.json")),
                 (f"eval/base_{key}.json",), (), estimate)
        )  # fmt: skip
        steps.append(
            Step(f"eval-tuned-{key}", f"Evaluate the tuned model on {label}",
                 (*common, *to_flags(tuned_lm), "--out", at(f"eval/tuned_{key}.json")),
                 (f"eval/tuned_{key}.json",), ("finetune",), estimate)
        )  # fmt: skip
        steps.append(
            Step(f"compare-{key}", f"Compare base and tuned on {label}",
                 ("eval", "compare", at(f"eval/base_{key}.json"), at(f"eval/tuned_{key}.json"),
                  *to_flags(settings.compare), "--out", at(f"eval/compare_{key}.json")),
                 (f"eval/compare_{key}.json",), (f"eval-base-{key}", f"eval-tuned-{key}"), 2.0)
        )  # fmt: skip
    return steps


# The sections a step's flags may come from, by the step's name (the base and tuned evaluations take the
# generating model's flags too).
def step_sections(step: Step) -> tuple[str, ...]:
    if step.name.startswith("eval-"):
        return ("superni" if step.name.endswith("superni") else "user_oriented", "eval", "generate")
    return (step.name.split("-", 1)[0],)


def check_plan(settings: ReproduceSettings, steps: list[Step], tables: StepTables) -> None:
    """Every step's command line parsed by its command, before any step runs."""
    for step in steps:
        tables.check(step, partial(settings.where, step_sections(step)))
