"""Fine-tuning settings: one pydantic model, filled from defaults < YAML (`--config`) < command-line flags
(the rule and the errors of `selfinstruct.settings_io`, shared with the run settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from selfinstruct.errors import UserError
from selfinstruct.settings_io import load_yaml, resolve

EMBEDDED_BASE = "embedded"
SECTION = "finetune"  # the key a project-wide YAML file nests these settings under


class FinetuneSettings(BaseModel):
    """Everything one fine-tuning run needs. Paths are optional here so that YAML may carry them too."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(default=None, description="Run directory, prompt/completion or instance JSONL.")
    base: str = Field(default=EMBEDDED_BASE, description="HF model directory or id, or 'embedded'.")
    out: Path | None = Field(default=None, description="Output model directory.")
    method: Literal["lora", "full"] = Field(
        default="lora", description="lora trains an adapter, full all weights."
    )
    epochs: float = Field(default=2.0, gt=0, description="Passes over the data (paper: 2).")
    max_steps: int = Field(
        default=-1, ge=-1, description="Stop after this many optimizer steps (-1: run the epochs)."
    )
    learning_rate: float | None = Field(
        default=None, gt=0, description="Peak learning rate; default 2e-4 (LoRA) / 2e-5 (full)."
    )
    batch_size: int = Field(default=4, ge=1, description="Examples per device per forward pass.")
    grad_accum: int = Field(default=1, ge=1, description="Gradient accumulation steps.")
    max_seq_length: int = Field(default=512, ge=16, description="Tokens per example (or per packed row).")
    packing: bool = Field(
        default=False,
        description="Best-fit packing of examples into padding-free rows with position ids; attention stays "
        "within each example (flash attention, or SDPA/eager masks built from the position ids).",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations to save memory (slower)."
    )
    torch_compile: bool = Field(default=False, description="Compile the model with torch.compile (GPU).")
    liger_kernel: bool = Field(
        default=False, description="Liger's fused Triton kernels (needs the liger-kernel package and a GPU)."
    )
    optim: str | None = Field(
        default=None, description="Optimizer name of HF TrainingArguments (default: theirs, fused AdamW)."
    )
    seed: int = Field(default=0, description="Seed for data order, templates and init.")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Share of the steps warming up.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    lr_scheduler: str = Field(
        default="linear", description="Learning-rate schedule of HF TrainingArguments (linear, cosine ...)."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="auto: bf16 on a GPU that supports it, else fp32."
    )
    attn_implementation: str | None = Field(
        default=None,
        description="Attention kernel: sdpa, eager, flash_attention_2 ... (default: the model's).",
    )
    lora_r: int = Field(default=8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names to adapt; ['all-linear'] adapts every linear layer.",
    )
    min_quality: Literal["auto", "all", "output", "none"] = Field(
        default="auto",
        description="With a run directory as --data, the quality gate on a judge's Table 2 answers: all, "
        "output (valid task, correct output) or none; auto: all when a judge rated every kept instance. "
        "A gated run is prepared afresh into OUT/training_data.jsonl.",
    )
    gate_judge: str | None = Field(default=None, description="Whose answers the gate reads (default: most).")
    include_seeds: bool = Field(default=True, description="Add the seed tasks' instances (the paper did).")
    seeds: Path | None = Field(
        default=None, description="Seed file or built-in set; default: run's or project's."
    )
    allow_eval_data: bool = Field(
        default=False, description="Train on the paper's user-oriented evaluation set anyway (else refused)."
    )
    save_steps: int = Field(default=50, ge=1, description="Checkpoint every N steps (and at the end).")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept in OUT/checkpoints.")
    logging_steps: int = Field(default=1, ge=1, description="Log the loss every N steps.")
    merge: bool = Field(default=True, description="LoRA: also save merged full weights at OUT/.")
    progress: bool = Field(default=True, description="Show the live progress bar.")
    restart: bool = Field(
        default=False,
        description="Discard OUT/checkpoints of an earlier training run and train from the start.",
    )

    @model_validator(mode="after")
    def _lora_targets(self) -> FinetuneSettings:
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module")
        return self

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5

    def require_paths(self) -> tuple[Path, Path]:
        """`data` and `out` are required to train; they may come from flags or YAML."""
        if self.data is None:
            raise UserError("--data is required (a run directory or a JSONL file)")
        if self.out is None:
            raise UserError("--out is required (the directory that receives the tuned model)")
        return self.data, self.out


# The earlier name, kept for code and scripts that import it.
FinetuneConfig = FinetuneSettings


def load_yaml_config(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping of FinetuneSettings fields (dashes or underscores in keys); a config written
    for the whole project may nest them under `finetune:`."""
    return load_yaml(path, SECTION)


def build_config(yaml_path: Path | str | None = None, **overrides: Any) -> FinetuneSettings:
    """Defaults < YAML < overrides (None means "not given")."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return resolve(FinetuneSettings, yaml_path, given, section=SECTION)
