"""`selfinstruct finetune`: train a model on its Self-Instruct data (TRL SFTTrainer, LoRA or full)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfinstruct.finetune.config import build_config

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


def finetune(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="A run directory (reads [bold]export/finetune.jsonl[/] or "
            "export/all_generated_instances.jsonl), a prompt/completion JSONL, "
            "or an instruction/input/output JSONL (the paper's format).",
            rich_help_panel=DATA,
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            "-b",
            help="Base model: a Hugging Face directory or id, a .gguf file, or [bold]embedded[/] "
            "(the embedded Gemma 3 270M, dequantized from its GGUF). \\[default: embedded]",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output directory: merged weights + tokenizer at its root, the LoRA adapter in adapter/ "
            "(and as adapter.gguf for llama.cpp when the base is a GGUF), checkpoints in checkpoints/ "
            "(rerun the same command to resume).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML file with any of these settings (flags win over it)."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="[bold]lora[/] (adapter, default) or [bold]full[/] (all weights).",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option(
            "--epochs", help="Passes over the data. \\[default: 2, as the paper]", rich_help_panel=TRAIN
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps",
            help="Stop after this many optimizer steps (overrides epochs).",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate",
            "--lr",
            help="Peak learning rate. \\[default: 2e-4 LoRA, 2e-5 full]",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", help="Examples per device per step. \\[default: 4]", rich_help_panel=TRAIN
        ),
    ] = None,
    grad_accum: Annotated[
        int | None,
        typer.Option(
            "--grad-accum", help="Gradient accumulation steps. \\[default: 1]", rich_help_panel=TRAIN
        ),
    ] = None,
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            "--max-seq-length",
            help="Token limit per example or packed row. \\[default: 512]",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    packing: Annotated[
        bool | None,
        typer.Option(
            "--packing/--no-packing",
            help="Pack several examples per row (no padding). \\[default: off]",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute activations to save memory (slower). \\[default: off]",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed for data order, templates and init. \\[default: 0]", rich_help_panel=TRAIN
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="auto, fp32, bf16 or fp16. \\[default: auto: bf16 on a capable GPU]",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    attn_implementation: Annotated[
        str | None,
        typer.Option(
            "--attn-implementation",
            help="Attention kernel: sdpa, eager, flash_attention_2.",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    save_steps: Annotated[
        int | None,
        typer.Option("--save-steps", help="Checkpoint every N steps. \\[default: 50]", rich_help_panel=TRAIN),
    ] = None,
    lora_r: Annotated[
        int | None, typer.Option("--lora-r", help="LoRA rank. \\[default: 8]", rich_help_panel=LORA)
    ] = None,
    lora_alpha: Annotated[
        int | None,
        typer.Option("--lora-alpha", help="LoRA scaling alpha. \\[default: 16]", rich_help_panel=LORA),
    ] = None,
    lora_dropout: Annotated[
        float | None,
        typer.Option("--lora-dropout", help="LoRA dropout. \\[default: 0.05]", rich_help_panel=LORA),
    ] = None,
    lora_target: Annotated[
        list[str] | None,
        typer.Option(
            "--lora-target",
            help="Module to adapt (repeatable); [bold]all-linear[/] adapts every linear layer. "
            "\\[default: q_proj k_proj v_proj o_proj]",
            rich_help_panel=LORA,
        ),
    ] = None,
    merge: Annotated[
        bool | None,
        typer.Option(
            "--merge/--no-merge",
            help="LoRA: also save merged full weights at OUT. \\[default: on]",
            rich_help_panel=LORA,
        ),
    ] = None,
    include_seeds: Annotated[
        bool | None,
        typer.Option(
            "--with-seeds/--no-seeds",
            help="Add the seed tasks' instances, as the paper did (skipped if the file already has them). "
            "\\[default: on]",
            rich_help_panel=DATA,
        ),
    ] = None,
    seeds: Annotated[
        Path | None,
        typer.Option(
            "--seeds",
            help="Seed file or built-in set name. \\[default: the run's seeds, else the project's set]",
            rich_help_panel=DATA,
        ),
    ] = None,
    allow_eval_data: Annotated[
        bool,
        typer.Option(
            "--allow-eval-data",
            help="Train on the paper's user-oriented evaluation set anyway (its authors ask that it is not "
            "used for training, so --data or --seeds holding it is refused without this flag).",
            rich_help_panel=DATA,
        ),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the live progress bar.")
    ] = True,
) -> None:
    """Fine-tune a model on Self-Instruct data, loss on the completion only (the paper's stage 5).

    Interrupted? Rerun the same command: training resumes from the last checkpoint in OUT/checkpoints.
    Several GPUs: [bold]accelerate launch -m selfinstruct.finetune --data ... --out ...[/] (or torchrun).
    """
    cfg = build_config(
        config,
        data=data,
        base=base,
        out=out,
        method=method,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_seq_length=max_seq_length,
        packing=packing,
        gradient_checkpointing=gradient_checkpointing,
        seed=seed,
        precision=precision,
        attn_implementation=attn_implementation,
        save_steps=save_steps,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_target_modules=lora_target or None,
        merge=merge,
        include_seeds=include_seeds,
        seeds=seeds,
        allow_eval_data=allow_eval_data or None,
        progress=progress,
    )
    cfg.require_paths()
    from selfinstruct.finetune.train import run_finetune

    console = Console(stderr=True)
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
