"""Fine-tuning throughput on a GPU: tokens/s and model FLOPs utilisation (MFU) of our training setup.

One command, no downloads (the device machine has no network):

    python benchmarks/finetune_gpu.py --sweep --json sweep.json  # issue 14's table: anchor, each option
    python benchmarks/finetune_gpu.py                  # one run: ~0.5B Qwen2 shape, random weights
    python benchmarks/finetune_gpu.py --model embedded # the embedded Gemma 3 270M (dequantized GGUF)
    python benchmarks/finetune_gpu.py --tiny [--sweep] # a tiny model: checks the script on CPU

Training goes through the same SFTConfig mapping `selfinstruct finetune` uses (TRL SFTTrainer), full or
LoRA (`--method`), bf16 autocast over fp32 master weights (or bf16 weights, `--bf16-weights`), SDPA or
flash attention 2. Options that raise MFU, each also a `selfinstruct finetune` setting:
  --packing (default) TRL best-fit packing into padding-free rows with position ids, attention kept within
                      each example; --no-packing pads each batch (the plain-HF anchor, with --full-rows);
  --compile           torch.compile;  --liger  Liger's fused kernels (RMSNorm, RoPE, SwiGLU, fused
                      linear cross-entropy: no vocabulary-sized logits);  --optim  (fused AdamW by default).
Data are random token documents (1/16 to 1/2 of a row, or exactly one row with --full-rows): throughput
does not depend on what the tokens say. After --warmup steps, each window of --window steps gives one
tokens/s figure; the script prints the median and the spread of the windows.

MFU = k * parameters * tokens/s / peak dense bf16 FLOP/s of the card (H100 SXM / H200: 989 TFLOP/s), with
k = 6 for full fine-tuning (forward + both backward matmuls) and k = 4 for LoRA (the frozen base needs no
weight gradients); attention's own FLOPs are left out, as usual. The issue's anchor on an H200: plain HF,
bf16, SDPA, fused AdamW, batch 16 x 1024, no packing, no compile: 89,000 tokens/s, MFU 26.7%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2_shapes import qwen2_config

# Dense bf16 peaks (no sparsity), FLOP/s, from the vendors' data sheets.
PEAK_BF16 = {
    "H200": 989.4e12,
    "H100 PCIe": 756.0e12,
    "H100 NVL": 835.0e12,
    "H100": 989.4e12,
    "A100": 312.0e12,
    "L40S": 362.1e12,
}


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16.items():  # most specific names first
        if key in device_name:
            return value
    return None


def offline_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer over placeholder tokens: TRL wants one for padding; the data are ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<t{i}>": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<t0>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<t0>", eos_token="<t1>", unk_token="<t0>")


def random_documents(
    vocab_size: int, total_tokens: int, seq_len: int, seed: int, full_rows: bool = False
) -> Any:
    """Token-id documents of 1/16 to 1/2 of a row (or of exactly one row), enough to fill `total_tokens`."""
    from datasets import Dataset

    rng = random.Random(seed)
    docs: list[list[int]] = []
    count = 0
    while count < total_tokens:
        n = seq_len if full_rows else rng.randint(max(2, seq_len // 16), max(3, seq_len // 2))
        docs.append([rng.randrange(2, vocab_size) for _ in range(n)])
        count += n
    return Dataset.from_dict({"input_ids": docs})


class StepTimer:
    """Wall time and TRL's cumulative token count at every logged step (logging_steps=1)."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float]] = []  # (step, seconds, tokens)

    def callback(self) -> Any:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                import torch

                if logs and "num_tokens" in logs:
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    timer.marks.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))

        return _Callback()

    def windows(self, warmup: int, window: int) -> list[float]:
        """tokens/s of consecutive windows of `window` steps after the first `warmup` steps."""
        marks = [m for m in self.marks if m[0] >= warmup]
        rates = []
        for i in range(0, len(marks) - window, window):  # marks[i] closes step marks[i][0]
            (_, t0, n0), (_, t1, n1) = marks[i], marks[i + window]
            if t1 > t0:
                rates.append((n1 - n0) / (t1 - t0))
        return rates


def build_model(args: argparse.Namespace, dtype: Any, attn: str) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModelForCausalLM

    if args.model == "embedded":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from selfinstruct.finetune.model import load_base

        model, tokenizer = load_base("embedded", dtype=dtype, attn_implementation=attn)
        return model, tokenizer, "Gemma 3 270M (embedded GGUF, dequantized)"
    config = qwen2_config(args.tiny)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    name = "tiny Qwen2 (random)" if args.tiny else "Qwen2-0.5B shape (random weights)"
    return model, offline_tokenizer(config.vocab_size), name


def pick_attention(requested: str, on_gpu: bool) -> str:
    if requested != "auto":
        return requested
    if on_gpu:
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gc

    import torch
    from transformers import PrinterCallback
    from trl import SFTTrainer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from selfinstruct.finetune.config import FinetuneConfig
    from selfinstruct.finetune.train import lora_config, sft_arguments

    on_gpu = torch.cuda.is_available()
    precision = "bf16" if on_gpu else "fp32"
    attn = pick_attention(args.attn, on_gpu)
    model, tokenizer, model_name = build_model(
        args, torch.bfloat16 if args.bf16_weights else torch.float32, attn
    )
    params = sum(p.numel() for p in model.parameters())
    total_steps = args.warmup + args.windows * args.window
    rows_needed = total_steps * args.batch_size * args.grad_accum
    data = random_documents(
        len(tokenizer), int(rows_needed * args.seq_len * 1.15), args.seq_len, args.seed, args.full_rows
    )

    cfg = FinetuneConfig(
        method=args.method,
        packing=args.packing,
        torch_compile=args.compile,
        liger_kernel=args.liger,
        optim=args.optim,
        max_seq_length=args.seq_len,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_steps=total_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        precision=precision,
        seed=args.seed,
        learning_rate=1e-5,
        lora_target_modules=["all-linear"],
        progress=False,
    )
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        sft_args = dataclasses.replace(sft_arguments(cfg, Path(tmp), precision), save_strategy="no")
        trainer = SFTTrainer(
            model=model,
            args=sft_args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(cfg) if args.method == "lora" else None,
            callbacks=[timer.callback()],
        )
        trainer.remove_callback(PrinterCallback)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
        del trainer, model
        gc.collect()

    rates = timer.windows(args.warmup, args.window)
    tps = statistics.median(rates) if rates else 0.0
    device = torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.processor() or platform.machine()})"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_flops(device) if on_gpu else None)
    flops_per_token = (6 if args.method == "full" else 4) * params
    peak_mem = round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None
    if on_gpu:
        torch.cuda.empty_cache()
    return {
        "model": model_name,
        "method": args.method,
        "parameters": params,
        "trainable_parameters": trainable,
        "device": device,
        "precision": precision,
        "weights_dtype": "bf16" if args.bf16_weights else "fp32",
        "attention": attn,
        "packing": "bfd (padding-free rows)" if args.packing else "none",
        "full_rows": args.full_rows,
        "compile": args.compile,
        "liger": args.liger,
        "optim": args.optim or "adamw_torch_fused (default)",
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "gradient_checkpointing": args.gradient_checkpointing,
        "steps": total_steps,
        "windows_tokens_per_s": [round(r, 1) for r in rates],
        "tokens_per_s_median": round(tps, 1),
        "flops_per_token": flops_per_token,
        "mfu": round(flops_per_token * tps / peak, 4) if peak else None,
        "peak_flops": peak,
        "peak_memory_gib": peak_mem,
        "wall_seconds": round(wall, 1),
        "versions": {"torch": torch.__version__, **_versions()},
    }


def _versions() -> dict[str, str]:
    import transformers
    import trl

    return {"transformers": transformers.__version__, "trl": trl.__version__}


def label(r: dict[str, Any]) -> str:
    parts = [r["method"], r["packing"] if r["packing"] != "none" else "no packing"]
    parts += [name for name in ("compile", "liger") if r[name]]
    if r["weights_dtype"] == "bf16":
        parts.append("bf16 weights")
    if r["full_rows"]:
        parts.append("full rows")
    return ", ".join(parts)


def markdown_row(r: dict[str, Any]) -> str:
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
    spread = r["windows_tokens_per_s"]
    rng = f"{min(spread):,.0f}–{max(spread):,.0f}" if spread else "-"
    mem = f"{r['peak_memory_gib']} GiB" if r["peak_memory_gib"] is not None else "-"
    return (
        f"| {r['model']} | {label(r)} | {r['parameters'] / 1e6:,.0f}M | {r['device']} | {r['attention']} | "
        f"{r['batch_size']}x{r['seq_len']} | {r['tokens_per_s_median']:,.0f} ({rng}) | {mfu} | {mem} |"
    )


HEADER = (
    "| model | setup | params | device | attention | batch | tokens/s median (windows) | MFU | peak mem |\n"
    "|---|---|---|---|---|---|---|---|---|"
)

# The sweep: the anchor first, then one option at a time, then together; LoRA last.
SWEEP: list[dict[str, Any]] = [
    {"packing": False, "full_rows": True, "batch_size": 16, "seq_len": 1024},  # the plain-HF anchor
    {"packing": True},
    {"packing": True, "bf16_weights": True},
    {"packing": True, "bf16_weights": True, "compile": True},
    {"packing": True, "bf16_weights": True, "liger": True},
    {"packing": True, "bf16_weights": True, "compile": True, "liger": True},
    {"packing": True, "method": "lora"},
    {"packing": True, "method": "lora", "bf16_weights": True, "compile": True},
]


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every SWEEP setting in turn (unavailable ones, such as Liger without its package, are skipped)."""
    import importlib.util

    results = []
    for change in SWEEP:
        if change.get("liger") and importlib.util.find_spec("liger_kernel") is None:
            print(f"skipped (liger-kernel not installed): {change}", file=sys.stderr)
            continue
        one = argparse.Namespace(**{**vars(args), **change})
        if args.tiny:  # keep the tiny model's small rows
            one.seq_len, one.batch_size = args.seq_len, args.batch_size
        try:
            results.append(run(one))
        except Exception as exc:  # one failing option (e.g. compile) must not lose the others' figures
            print(f"failed: {change}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(markdown_row(results[-1]), flush=True)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["qwen2-0.5b", "embedded"], default="qwen2-0.5b")
    p.add_argument("--tiny", action="store_true", help="tiny Qwen2 config: a quick check, CPU is fine")
    p.add_argument("--method", choices=["full", "lora"], default="full")
    p.add_argument("--seq-len", type=int, default=None, help="row length [2048; tiny: 128]")
    p.add_argument("--batch-size", type=int, default=None, help="rows per step [8; tiny: 2]")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--warmup", type=int, default=None, help="steps not timed [5; tiny: 1]")
    p.add_argument("--window", type=int, default=None, help="steps per timed window [5; tiny: 1]")
    p.add_argument("--windows", type=int, default=None, help="timed windows [5; tiny: 3]")
    p.add_argument(
        "--attn", default="auto", help="auto (flash_attention_2 if installed, else sdpa), sdpa, eager"
    )
    p.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--full-rows", action="store_true", help="every document exactly one row long")
    p.add_argument("--compile", action="store_true", help="torch.compile")
    p.add_argument("--liger", action="store_true", help="Liger kernels (pip install liger-kernel)")
    p.add_argument("--optim", default=None, help="TrainingArguments optimizer [adamw_torch_fused]")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument(
        "--bf16-weights", action="store_true", help="keep weights in bf16 (default fp32 + autocast)"
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="override the card's dense bf16 peak")
    p.add_argument("--sweep", action="store_true", help="run the anchor and each option in turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    tiny_defaults = {"seq_len": 128, "batch_size": 2, "warmup": 1, "window": 1, "windows": 3}
    full_defaults = {"seq_len": 2048, "batch_size": 8, "warmup": 5, "window": 5, "windows": 5}
    for key, value in (tiny_defaults if args.tiny else full_defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> Any:
    args = parse_args(argv)
    if args.sweep:
        print(HEADER, flush=True)
        results: Any = sweep(args)
    else:
        results = run(args)
        print(json.dumps(results, indent=1))
        print(HEADER)
        print(markdown_row(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
