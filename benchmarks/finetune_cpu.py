"""LoRA fine-tuning of the embedded model on CPU: seconds per step, peak memory, loss curve.

    python benchmarks/finetune_cpu.py                          # seed tasks as data, 24 steps
    python benchmarks/finetune_cpu.py --data RUN_DIR --steps 40 --json .benchmarks/finetune_cpu.json

It runs `selfinstruct finetune`'s own training path (build_trainer: TRL SFTTrainer, completion-only loss,
LoRA r8 on q/k/v/o) with a callback that times every optimizer step. The first step is left out of the
median (allocator and kernel warm-up). Peak memory is the process's maximum resident set (model loading
included: dequantizing the GGUF is the peak for small batches).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def _seed_instances(path: Path, seeds: str | None) -> Path:
    """The seed tasks as instruction/input/output rows (used when no --data is given)."""
    from selfinstruct.seeds import load_seed_tasks

    rows = [
        {"instruction": t.instruction, "input": i.input, "output": i.output}
        for t in load_seed_tasks(seeds)
        for i in t.instances
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(SRC))
    import torch
    from transformers import PrinterCallback, TrainerCallback

    if args.threads:
        torch.set_num_threads(args.threads)

    from selfinstruct.finetune import build_config
    from selfinstruct.finetune.train import build_trainer

    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, *a: Any, **k: Any) -> None:
            step_times.append(time.perf_counter() - self.t0)
            print(f"step {state.global_step}: {step_times[-1]:.2f} s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or _seed_instances(Path(tmp) / "seeds.jsonl", args.seeds)
        cfg = build_config(
            data=data,
            base=args.base,
            out=Path(tmp) / "model",
            max_steps=args.steps,
            batch_size=args.batch_size,
            max_seq_length=args.seq_len,
            lora_r=args.lora_r,
            include_seeds=args.data is not None and not args.no_seeds,
            seeds=args.seeds,
            save_steps=10_000,
            progress=False,
            seed=args.seed,
        )
        t0 = time.perf_counter()
        trainer, facts = build_trainer(cfg)
        load_seconds = time.perf_counter() - t0
        rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(StepClock())
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
        losses = [(h["step"], round(h["loss"], 4)) for h in trainer.state.log_history if "loss" in h]
        tokens = int(getattr(trainer, "_total_train_tokens", 0))

    timed = step_times[1:] or step_times
    return {
        "base": args.base,
        "data": str(args.data or f"seed tasks ({facts['examples']} examples)"),
        "examples": facts["examples"],
        "steps": len(step_times),
        "batch": f"{args.batch_size}x{args.seq_len}",
        "lora_r": args.lora_r,
        "threads": torch.get_num_threads(),
        "load_seconds": round(load_seconds, 1),
        "seconds_per_step_median": round(statistics.median(timed), 2),
        "seconds_per_step_min_max": [round(min(timed), 2), round(max(timed), 2)],
        "train_seconds": round(train_seconds, 1),
        "tokens": tokens,
        "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds else 0.0,
        "peak_rss_mb_after_load": round(rss_after_load),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loss_first_last": [losses[0][1], losses[-1][1]] if losses else None,
        "loss_curve": losses,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": {"torch": torch.__version__},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="embedded")
    p.add_argument("--data", type=Path, default=None, help="run dir or JSONL [default: the seed tasks]")
    p.add_argument("--seeds", default=None, help="seed file or built-in set name")
    p.add_argument("--no-seeds", action="store_true", help="train on --data alone (no seed tasks added)")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's choice]")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
