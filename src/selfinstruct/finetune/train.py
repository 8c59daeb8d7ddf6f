"""Stage 5: fine-tune a causal LM on prompt/completion pairs with TRL's SFTTrainer (+ PEFT LoRA).

Layout of the output directory:
    OUT/                        merged full weights + tokenizer (load with --backend transformers --model OUT)
    OUT/adapter/                the LoRA adapter alone (LoRA runs)
    OUT/adapter.gguf            the same adapter for llama.cpp (LoRA runs on a GGUF base: the embedded model
                                or a .gguf file), loaded on top of that base GGUF (`Llama(..., lora_path=)`)
    OUT/checkpoints/            Trainer checkpoints; rerunning the same command resumes from the last one
    OUT/selfinstruct_finetune.json   summary: steps, tokens, time, loss history
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from selfinstruct.errors import AdapterConversionError, UserError
from selfinstruct.finetune.config import FinetuneConfig
from selfinstruct.finetune.data import gated_data_file, load_examples, to_dataset
from selfinstruct.finetune.model import (
    gguf_location,
    load_base,
    make_serializable,
    resolve_precision,
    torch_dtype,
)
from selfinstruct.paths import atomic_write, created_dirs, lock_folder

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from trl import SFTTrainer

SUMMARY_NAME = "selfinstruct_finetune.json"
CHECKPOINTS = "checkpoints"
RUN_RECORD = "run.json"  # in OUT/checkpoints: what the checkpoints were trained with
# Settings a resumed run may change: outputs, and where to stop (raising --max-steps or --epochs trains on
# from the checkpoint). The data counts by content (its hash), not by path.
NOT_TRAINING = frozenset(
    {"data", "out", "progress", "logging_steps", "save_steps", "save_total_limit", "merge", "restart"}
    | {"max_steps", "epochs"}
)
ADAPTER = "adapter"


@dataclass
class FinetuneSummary:
    """What `selfinstruct finetune` reports and writes to OUT/selfinstruct_finetune.json."""

    base: str
    method: str
    data: str
    examples: int
    steps: int
    epochs: float
    tokens: int  # non-padding tokens trained on in this invocation (a resumed run counts its own part)
    train_seconds: float
    seconds_per_step: float
    tokens_per_second: float
    final_loss: float | None
    peak_memory_mb: float
    resumed_from: str | None
    precision: str
    trainable_parameters: int
    total_parameters: int
    model_dir: str
    adapter_dir: str | None
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    world_size: int = 1  # processes that trained together (torchrun / accelerate launch)
    is_main_process: bool = True
    gguf_adapter: str | None = None  # OUT/adapter.gguf, for llama.cpp on top of `gguf_base`
    gguf_base: str | None = None  # the base GGUF file the adapter belongs to
    gguf_note: str | None = None  # why no GGUF adapter was written, when the base is a GGUF


def sft_arguments(cfg: FinetuneConfig, out: Path, precision: str) -> Any:
    """Map our settings onto TRL's SFTConfig; every default TRL changes is set explicitly."""
    import importlib.util

    from trl import SFTConfig

    if cfg.liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        raise UserError("liger_kernel needs the liger-kernel package: pip install liger-kernel")

    # Keywords whose presence or name is decided at run time. Any values: mypy checks each value of a
    # `**dict` against every one of SFTConfig's fields.
    chosen: dict[str, Any] = {
        **({"optim": cfg.optim} if cfg.optim else {}),
        **_checkpointing_flag(cfg.gradient_checkpointing),
    }
    return SFTConfig(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.effective_learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_seq_length,
        packing=cfg.packing,
        torch_compile=cfg.torch_compile,
        use_liger_kernel=cfg.liger_kernel,
        completion_only_loss=True,  # the paper's prompt loss weight 0
        **chosen,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=_cpu_distributed(),
        ddp_find_unused_parameters=False,  # LoRA and full tuning use every trainable weight
        dataloader_pin_memory=precision != "fp32",  # pinning only helps (and only works) with a GPU
    )


def _cpu_distributed() -> bool:
    """torchrun/accelerate on a machine without CUDA: accelerate only forms a (gloo) process group on CPU
    when told to use the CPU, otherwise every process would train alone."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def _checkpointing_flag(enabled: bool) -> dict[str, bool]:
    """transformers 5.x renamed gradient to activation checkpointing; TRL defaults the old name to True."""
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    return {
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing": enabled
    }


def lora_config(cfg: FinetuneConfig) -> Any:
    from peft import LoraConfig

    targets: list[str] | str = cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    directory = out / CHECKPOINTS
    return get_last_checkpoint(str(directory)) if directory.is_dir() else None


def checkpoint_step(checkpoint: str) -> int:
    """The optimizer step of a Trainer checkpoint folder (`checkpoint-40` -> 40)."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def training_identity(cfg: FinetuneConfig, data_file: Path) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be resumed: the settings that shape training and
    the data's SHA-256."""
    with open(data_file, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    settings = cfg.model_dump(mode="json", exclude=set(NOT_TRAINING))
    return {"settings": settings, "data_sha256": digest}


def checkpoint_to_resume(cfg: FinetuneConfig, out: Path, identity: dict[str, Any]) -> str | None:
    """The checkpoint to resume from, if it belongs to this training run. Checkpoints of another run (other
    data, steps, rank ...) would silently continue the wrong training, so they are refused unless
    `restart` discards them."""
    directory = out / CHECKPOINTS
    if cfg.restart:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    resume = last_checkpoint(out)
    if resume is None:
        return None
    try:
        earlier = json.loads((directory / RUN_RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return resume  # checkpoints written before runs were recorded: resume as before
    except (OSError, ValueError) as exc:
        raise UserError(f"{directory / RUN_RECORD}: unreadable ({exc}); rerun with --restart") from None
    if earlier == identity:
        step = checkpoint_step(resume)
        if 0 < cfg.max_steps < step:
            raise UserError(
                f"{directory}: the last checkpoint is at step {step}, past --max-steps {cfg.max_steps}; "
                "rerun with --restart to train from the start, or choose another --out"
            )
        return resume
    before, now = earlier.get("settings", {}), identity["settings"]
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if earlier.get("data_sha256") != identity["data_sha256"]:
        changed.append("the data")
    raise UserError(
        f"{directory}: checkpoints of another training run (changed: {', '.join(changed) or '?'}); "
        "rerun with --restart to discard them, or choose another --out"
    )


def record_training(out: Path, identity: dict[str, Any]) -> None:
    with atomic_write(out / CHECKPOINTS / RUN_RECORD) as handle:  # creates OUT/checkpoints if needed
        json.dump(identity, handle, indent=1)


def build_trainer(cfg: FinetuneConfig, console: Console | None = None) -> tuple[SFTTrainer, dict[str, Any]]:
    """Load data and model and assemble the trainer (no training yet); also returns run facts."""
    from transformers import PrinterCallback, ProgressCallback
    from trl import SFTTrainer

    from selfinstruct.finetune.progress import RichProgressCallback

    data, out = cfg.require_paths()
    gated = gated_data_file(data, out, cfg.min_quality, cfg.gate_judge, cfg.include_seeds)
    data_file, examples = load_examples(
        data,
        include_seeds=cfg.include_seeds,
        seeds=cfg.seeds,
        seed=cfg.seed,
        allow_eval_data=cfg.allow_eval_data,
        gated=gated,
    )
    # Before the (slow) model load, so that checkpoints of another run are refused at once.
    identity = training_identity(cfg, data_file)
    resume = checkpoint_to_resume(cfg, out, identity)
    precision = resolve_precision(cfg.precision)
    # LoRA keeps the frozen base in the training dtype; full tuning keeps fp32 master weights (autocast).
    load_dtype = torch_dtype(precision if cfg.method == "lora" else "fp32")
    model, tokenizer = load_base(cfg.base, dtype=load_dtype, attn_implementation=cfg.attn_implementation)
    trainer = SFTTrainer(
        model=model,
        args=sft_arguments(cfg, out, precision),
        train_dataset=to_dataset(examples, tokenizer.eos_token),
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.method == "lora" else None,
        callbacks=[RichProgressCallback(console, enabled=cfg.progress)],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    facts = {
        "data_file": str(data_file),
        "examples": len(examples),
        "precision": precision,
        "identity": identity,
        "resume": resume,
    }
    return trainer, facts


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def save_outputs(trainer: SFTTrainer, cfg: FinetuneConfig, out: Path) -> str | None:
    """Adapter (LoRA) to OUT/adapter, merged or full weights + tokenizer to OUT. Returns the adapter dir."""
    from peft import PeftModel

    # Both set by build_trainer. TRL types them as optional, the model as any torch Module (a PEFT wrapper
    # for LoRA, whose attributes torch types as Tensor | Module) and the tokenizer as any processor.
    model: Any = trainer.model
    tokenizer: Any = trainer.processing_class
    model.config.use_cache = True  # gradient checkpointing turns the KV cache off; generation wants it
    if not isinstance(model, PeftModel):
        trainer.save_model(str(out))  # collective under DeepSpeed/FSDP: every process calls it
        return None
    adapter = out / ADAPTER
    trainer.save_model(str(adapter))
    if cfg.merge and trainer.is_world_process_zero():
        merged = model.merge_and_unload()
        make_serializable(merged)
        merged.config.use_cache = True
        merged.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    return str(adapter)


def write_llama_cpp_adapter(cfg: FinetuneConfig, out: Path, adapter: str | None) -> dict[str, str | None]:
    """OUT/adapter.gguf when the base is a GGUF and LoRA was trained; else, for a GGUF base, the reason."""
    location = gguf_location(cfg.base)
    if location is None:
        return {}
    base = location[0] / location[1]
    if adapter is None:
        note = "full fine-tuning has no adapter: run the tuned model with --backend transformers --model OUT"
        return {"gguf_base": str(base), "gguf_note": note}
    from selfinstruct.finetune.gguf_adapter import ADAPTER_FILE, write_gguf_adapter

    try:
        info = write_gguf_adapter(Path(adapter), base, out / ADAPTER_FILE)
    except AdapterConversionError as exc:
        return {"gguf_base": str(base), "gguf_note": f"no llama.cpp adapter: {exc}"}
    return {"gguf_adapter": str(info.path), "gguf_base": str(base)}


def run_finetune(cfg: FinetuneConfig, console: Console | None = None) -> FinetuneSummary:
    """Train, save, write the summary. Resumes from OUT/checkpoints when a checkpoint is there."""
    _, out = cfg.require_paths()
    # Refused data (checked while the trainer is built) leaves no empty OUT behind.
    with created_dirs(out):
        # One launch trains into OUT at a time (its checkpoints would be mixed); its other ranks share it.
        lock = lock_folder(out, "model") if int(os.environ.get("RANK", "0")) == 0 else None
        try:
            trainer, facts = build_trainer(cfg, console)
        except BaseException:
            if lock is not None:
                lock.release(remove=True)
            raise
    try:
        return _train_and_save(cfg, out, trainer, facts)
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def _known_harmless_warnings() -> Iterator[None]:
    """Silence what PEFT says at every save of an adapter whose base has no config.json beside it (a GGUF
    file's folder, or an offline Hub id): it cannot check the vocabulary size and assumes it unchanged.
    That is true here (training never adds tokens or resizes the embeddings), so the line is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"Could not find a config file in .* will assume that the vocabulary was not modified"
        )
        yield


def _train_and_save(
    cfg: FinetuneConfig, out: Path, trainer: SFTTrainer, facts: dict[str, Any]
) -> FinetuneSummary:
    resume = facts["resume"]
    if trainer.is_world_process_zero():
        record_training(out, facts["identity"])
    start = time.perf_counter()
    first_step = trainer.state.global_step
    with _known_harmless_warnings():
        trainer.train(resume_from_checkpoint=resume)
        seconds = time.perf_counter() - start
        state = trainer.state
        # Counted before saving: merging the LoRA weights into the model leaves nothing trainable.
        model = cast("torch.nn.Module", trainer.model)  # set by build_trainer; TRL types it as optional
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        adapter = save_outputs(trainer, cfg, out)
    gguf = write_llama_cpp_adapter(cfg, out, adapter) if trainer.is_world_process_zero() else {}

    history = [(int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h and "step" in h]
    tokens = int(trainer._total_train_tokens) if hasattr(trainer, "_total_train_tokens") else 0
    resumed_step = checkpoint_step(resume) if resume else first_step
    steps_run = max(state.global_step - resumed_step, 0)
    summary = FinetuneSummary(
        base=cfg.base,
        method=cfg.method,
        data=facts["data_file"],
        examples=facts["examples"],
        steps=state.global_step,
        epochs=float(state.epoch or 0.0),
        tokens=tokens,
        train_seconds=round(seconds, 3),
        seconds_per_step=round(seconds / steps_run, 4) if steps_run else 0.0,
        tokens_per_second=round(tokens / seconds, 2) if seconds > 0 else 0.0,
        final_loss=history[-1][1] if history else None,
        peak_memory_mb=round(_peak_memory_mb(), 1),
        resumed_from=resume,
        precision=facts["precision"],
        trainable_parameters=trainable,
        total_parameters=total,
        model_dir=str(out),
        adapter_dir=adapter,
        loss_history=history,
        world_size=trainer.args.world_size,
        is_main_process=trainer.is_world_process_zero(),
        **gguf,
    )
    if summary.is_main_process:
        (out / SUMMARY_NAME).write_text(json.dumps(asdict(summary), indent=1), encoding="utf-8")
    return summary
