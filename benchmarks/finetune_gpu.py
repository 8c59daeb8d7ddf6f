"""Fine-tuning throughput on a GPU: tokens/s and model FLOPs utilisation (MFU) of our training setup.

One command, no downloads (the device machine has no network):

    python benchmarks/finetune_gpu.py                      # ~0.5B Qwen2-shaped model, random weights
    python benchmarks/finetune_gpu.py --model embedded     # the embedded Gemma 3 270M (dequantized GGUF)
    python benchmarks/finetune_gpu.py --tiny               # a tiny model: checks the script runs on CPU

The model is trained in full (all weights) with bf16 autocast, SDPA (or flash attention 2 when installed),
and TRL's best-fit packing (padding-free rows of --seq-len tokens), through the same SFTConfig mapping
`selfinstruct finetune` uses. Data are random token documents of varied length: throughput does not
depend on what the tokens say. After --warmup steps, each window of --window steps gives one tokens/s
figure; the script prints the median and the spread of the windows.

MFU = 6 * parameters * tokens/s / peak dense bf16 FLOP/s of the card (H100 SXM / H200: 989 TFLOP/s).
6N counts forward + backward matmul FLOPs per token and leaves out attention's own FLOPs, as usual.
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


def random_documents(vocab_size: int, total_tokens: int, seq_len: int, seed: int) -> Any:
    """Token-id documents of 1/16 to 1/2 of a row, enough of them to fill `total_tokens`."""
    from datasets import Dataset

    rng = random.Random(seed)
    docs: list[list[int]] = []
    count = 0
    while count < total_tokens:
        n = rng.randint(max(2, seq_len // 16), max(3, seq_len // 2))
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
    import torch
    from transformers import PrinterCallback
    from trl import SFTTrainer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from selfinstruct.finetune.config import FinetuneConfig
    from selfinstruct.finetune.train import sft_arguments

    on_gpu = torch.cuda.is_available()
    precision = "bf16" if on_gpu else "fp32"
    attn = pick_attention(args.attn, on_gpu)
    model, tokenizer, model_name = build_model(
        args, torch.bfloat16 if args.bf16_weights else torch.float32, attn
    )
    params = sum(p.numel() for p in model.parameters())
    total_steps = args.warmup + args.windows * args.window
    rows_needed = total_steps * args.batch_size * args.grad_accum
    data = random_documents(len(tokenizer), int(rows_needed * args.seq_len * 1.15), args.seq_len, args.seed)

    cfg = FinetuneConfig(
        method="full",
        packing=True,
        max_seq_length=args.seq_len,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_steps=total_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        precision=precision,
        seed=args.seed,
        learning_rate=1e-5,
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
            callbacks=[timer.callback()],
        )
        trainer.remove_callback(PrinterCallback)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start

    rates = timer.windows(args.warmup, args.window)
    tps = statistics.median(rates) if rates else 0.0
    device = torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.processor() or platform.machine()})"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_flops(device) if on_gpu else None)
    return {
        "model": model_name,
        "parameters": params,
        "device": device,
        "precision": precision,
        "weights_dtype": "bf16" if args.bf16_weights else "fp32",
        "attention": attn,
        "packing": "bfd (padding-free)",
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "gradient_checkpointing": args.gradient_checkpointing,
        "steps": total_steps,
        "windows_tokens_per_s": [round(r, 1) for r in rates],
        "tokens_per_s_median": round(tps, 1),
        "mfu": round(6 * params * tps / peak, 4) if peak else None,
        "peak_flops": peak,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        "wall_seconds": round(wall, 1),
        "versions": {"torch": torch.__version__, **_versions()},
    }


def _versions() -> dict[str, str]:
    import transformers
    import trl

    return {"transformers": transformers.__version__, "trl": trl.__version__}


def markdown_row(r: dict[str, Any]) -> str:
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
    spread = r["windows_tokens_per_s"]
    rng = f"{min(spread):,.0f}–{max(spread):,.0f}" if spread else "-"
    mem = f"{r['peak_memory_gib']} GiB" if r["peak_memory_gib"] is not None else "-"
    return (
        f"| {r['model']} | {r['parameters'] / 1e6:,.0f}M | {r['device']} | {r['attention']} | "
        f"{r['batch_size']}x{r['seq_len']} | {r['tokens_per_s_median']:,.0f} ({rng}) | {mfu} | {mem} |"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["qwen2-0.5b", "embedded"], default="qwen2-0.5b")
    p.add_argument("--tiny", action="store_true", help="tiny Qwen2 config: a quick check, CPU is fine")
    p.add_argument("--seq-len", type=int, default=None, help="packed row length [2048; tiny: 128]")
    p.add_argument("--batch-size", type=int, default=None, help="rows per step [8; tiny: 2]")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--warmup", type=int, default=None, help="steps not timed [5; tiny: 1]")
    p.add_argument("--window", type=int, default=None, help="steps per timed window [5; tiny: 1]")
    p.add_argument("--windows", type=int, default=None, help="timed windows [5; tiny: 3]")
    p.add_argument(
        "--attn", default="auto", help="auto (flash_attention_2 if installed, else sdpa), sdpa, eager"
    )
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument(
        "--bf16-weights", action="store_true", help="keep weights in bf16 (default fp32 + autocast)"
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="override the card's dense bf16 peak")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    tiny_defaults = {"seq_len": 128, "batch_size": 2, "warmup": 1, "window": 1, "windows": 3}
    full_defaults = {"seq_len": 2048, "batch_size": 8, "warmup": 5, "window": 5, "windows": 5}
    for key, value in (tiny_defaults if args.tiny else full_defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    print("| model | params | device | attention | batch | tokens/s median (windows) | MFU | peak mem |")
    print("|---|---|---|---|---|---|---|---|")
    print(markdown_row(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
