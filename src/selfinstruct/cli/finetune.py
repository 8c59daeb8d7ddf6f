"""`selfinstruct finetune`: train a model on its Self-Instruct data (TRL SFTTrainer, LoRA or full)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from selfinstruct.cli.extras import require
from selfinstruct.cli.options import FlagTable, flag_names, with_flags
from selfinstruct.finetune.config import SECTION, FinetuneSettings
from selfinstruct.settings_io import resolve

TRAIN = "Training"
LORA = "LoRA"
DATA = "Data"


def _quiet_library_bars() -> None:
    """Our bar replaces the per-step bars of datasets/transformers (map, weight loading, shard writing)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # Renames announced for transformers v6, raised inside TRL/PEFT: nothing a user can act on.
    warnings.filterwarnings("ignore", r".*deprecated and will be removed in v6.*", FutureWarning)


def print_summary(summary: object, console: Console) -> None:
    from selfinstruct.finetune.train import FinetuneSummary

    assert isinstance(summary, FinetuneSummary)
    table = Table(title="Fine-tuning summary")
    table.add_column("")
    table.add_column("value", justify="right")
    loss = f"{summary.final_loss:.4f}" if summary.final_loss is not None else "-"
    first = f"{summary.loss_history[0][1]:.4f}" if summary.loss_history else "-"
    rows = [
        ("base model", summary.base),
        (
            "method",
            f"{summary.method} ({summary.trainable_parameters:,} of {summary.total_parameters:,} trainable)",
        ),
        ("examples", f"{summary.examples:,}"),
        ("steps", f"{summary.steps:,} ({summary.epochs:.2f} epochs)"),
        ("tokens (this run)", f"{summary.tokens:,}"),
        ("time", f"{summary.train_seconds:.1f} s ({summary.seconds_per_step:.2f} s/step)"),
        ("tokens/s", f"{summary.tokens_per_second:,.0f}"),
        ("loss first -> final", f"{first} -> {loss}"),
        ("peak memory", f"{summary.peak_memory_mb:,.0f} MB"),
        ("precision", summary.precision),
        ("resumed from", summary.resumed_from or "-"),
        ("model (merged/full)", summary.model_dir),
        ("LoRA adapter", summary.adapter_dir or "-"),
    ]
    if summary.gguf_adapter or summary.gguf_note:  # a GGUF base: the llama.cpp side of the result
        rows.append(("llama.cpp adapter", summary.gguf_adapter or summary.gguf_note or "-"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


FINETUNE_FLAGS = FlagTable(
    FinetuneSettings,
    rename={
        "data": ("--data", "-d"),
        "base": ("--base", "-b"),
        "out": ("--out", "-o"),
        "learning_rate": ("--learning-rate", "--lr"),
        "lora_target_modules": "lora-target",
        "include_seeds": ("--with-seeds/--no-seeds",),
        "allow_eval_data": ("--allow-eval-data",),
    },
    panel={
        **dict.fromkeys(
            ("data", "min_quality", "gate_judge", "include_seeds", "seeds", "allow_eval_data"), DATA
        ),
        **dict.fromkeys(("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge"), LORA),
        **dict.fromkeys(("base", "out", "progress"), None),
    },
    default_panel=TRAIN,
    # Wording for the command line (markup, what a flag may be repeated for).
    help={
        "data": "A run directory (reads [bold]export/finetune.jsonl[/] or "
        "export/all_generated_instances.jsonl), a prompt/completion JSONL, "
        "or an instruction/input/output JSONL (the paper's format).",
        "base": "Base model: a Hugging Face directory or id, a .gguf file, or [bold]embedded[/] "
        "(the embedded Gemma 3 270M, dequantized from its GGUF). \\[default: embedded]",
        "out": "Output directory: merged weights + tokenizer at its root, the LoRA adapter in adapter/ "
        "(and as adapter.gguf for llama.cpp when the base is a GGUF), checkpoints in checkpoints/ "
        "(rerun the same command to resume).",
        "lora_target_modules": "Module to adapt (repeatable); [bold]all-linear[/] adapts every linear layer. "
        "\\[default: q_proj k_proj v_proj o_proj]",
        "include_seeds": "Add the seed tasks' instances, as the paper did (skipped if the file already has "
        "them). \\[default: on]",
        "seeds": "Seed file or built-in set name. \\[default: the run's seeds, else the project's set]",
        "allow_eval_data": "Train on the paper's user-oriented evaluation set anyway (its authors ask that "
        "it is not used for training, so --data or --seeds holding it is refused without this flag).",
    },
)


@with_flags(FINETUNE_FLAGS)
def finetune(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML file with any of these settings (flags win over it)."),
    ] = None,
    *,
    overrides: dict[str, Any],
) -> None:
    """Fine-tune a model on Self-Instruct data, loss on the completion only (the paper's stage 5).

    Interrupted? Rerun the same command: training resumes from the last checkpoint in OUT/checkpoints.
    Several GPUs: [bold]accelerate launch -m selfinstruct finetune --data ... --out ...[/] (or torchrun).
    """
    cfg = resolve(FinetuneSettings, config, overrides, section=SECTION, flag_names=flag_names(FINETUNE_FLAGS))
    cfg.require_paths()
    from selfinstruct.finetune.train import run_finetune

    console = Console(stderr=True)
    require("hf", "finetune")
    _quiet_library_bars()
    try:
        summary = run_finetune(cfg, console)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]Interrupted. Rerun the same command to resume from the last checkpoint in {cfg.out}."
        )
        raise typer.Exit(130) from None
    if summary.is_main_process:
        print_summary(summary, Console())
