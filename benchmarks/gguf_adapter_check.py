"""Issue 15's check of the llama.cpp adapter: the tuned model on llama.cpp vs the same model in transformers.

    python benchmarks/gguf_adapter_check.py --steps 24 --json .benchmarks/gguf_adapter.json
    python benchmarks/gguf_adapter_check.py --model-dir models/demo     # an existing `finetune` output

Without --model-dir it first trains a short LoRA on the embedded model (`selfinstruct finetune`'s own path,
the seed tasks as data), which writes OUT/adapter.gguf. Then, on the first --prompts of the paper's
user-oriented tasks (never trained on; the prompt `eval tasks` uses), it decodes greedily with
  - llama.cpp: the embedded Q4_K_M GGUF alone, and with OUT/adapter.gguf on top;
  - transformers: the merged model OUT (fp32, dequantized base + LoRA), and the dequantized base alone;
all from the same token ids (transformers' tokenizer), and reports: how many greedy outputs of llama.cpp +
adapter equal the merged model's; the mean absolute difference of their first-token log-probabilities (of
the merged model's greedy first token, and over the whole vocabulary); the same two for the two bases (the
quantisation gap the adapter comparison inherits); and how many outputs the adapter changes on llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def train(out: Path, steps: int, learning_rate: float) -> dict[str, Any]:
    from selfinstruct.finetune import build_config, run_finetune
    from selfinstruct.seeds import load_seed_tasks

    rows = [
        {"instruction": t.instruction, "input": i.input, "output": i.output}
        for t in load_seed_tasks(None)
        for i in t.instances
    ]
    data = Path(tempfile.mkdtemp()) / "seed_instances.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    cfg = build_config(
        data=data,
        base="embedded",
        out=out,
        max_steps=steps,
        batch_size=4,
        max_seq_length=128,
        learning_rate=learning_rate,
        include_seeds=False,
        progress=False,
    )
    summary = run_finetune(cfg)
    return {
        "steps": summary.steps,
        "examples": summary.examples,
        "learning_rate": learning_rate,
        "train_seconds": summary.train_seconds,
        "loss_first_last": [summary.loss_history[0][1], summary.loss_history[-1][1]],
        "gguf_adapter": summary.gguf_adapter,
        "gguf_base": summary.gguf_base,
    }


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def llama_cpp_runs(
    base: Path, lora: Path | None, prompts: list[list[int]], new_tokens: int, eos: set[int]
) -> list[tuple[list[int], np.ndarray]]:
    """Greedy tokens and first-token log-probabilities per prompt (same token ids as transformers)."""
    import llama_cpp

    from selfinstruct.lm.llamacpp_load import load_high_level

    extra = {"lora_path": str(lora)} if lora else {}
    # Through the AMX-safe loader: plain Llama() would crash on Intel CPUs with AMX.
    llm = load_high_level(llama_cpp, base, n_ctx=1024, n_threads=1, logits_all=False, verbose=False, **extra)
    vocab = llm.n_vocab()

    def last_logits() -> np.ndarray:
        # Without logits_all, Llama.eval keeps no scores: read the context's last-token logits directly.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).copy()

    results = []
    try:
        for ids in prompts:
            llm.reset()
            llm.eval(ids)
            logits = last_logits()
            first = log_softmax(logits)
            out: list[int] = []
            for _ in range(new_tokens):
                token = int(np.argmax(logits))
                if token in eos:
                    break
                out.append(token)
                llm.eval([token])
                logits = last_logits()
            results.append((out, first))
    finally:
        llm.close()
    return results


def transformers_runs(
    model_dir: Path | str, gguf_file: str | None, prompts: list[list[int]], new_tokens: int, eos: set[int]
) -> list[tuple[list[int], np.ndarray]]:
    import torch
    from transformers import AutoModelForCausalLM

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **extra).eval()
    results = []
    with torch.inference_mode():
        for ids in prompts:
            tensor = torch.tensor([ids])
            first = log_softmax(model(tensor).logits[0, -1].float().numpy())
            gen = model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=sorted(eos),
                pad_token_id=sorted(eos)[0],
            )[0, len(ids) :].tolist()
            end = next((i for i, t in enumerate(gen) if t in eos), len(gen))
            results.append((gen[:end], first))
    del model
    return results


def compare(a: list[tuple[list[int], np.ndarray]], b: list[tuple[list[int], np.ndarray]]) -> dict[str, Any]:
    """Greedy agreement and first-token log-probability differences of two runs over the same prompts."""
    same = sum(x[0] == y[0] for x, y in zip(a, b, strict=True))
    # The log-probability each side gives the second run's greedy first token (b is the reference).
    picked = [abs(x[1][int(np.argmax(y[1]))] - y[1][int(np.argmax(y[1]))]) for x, y in zip(a, b, strict=True)]
    # Over the whole vocabulary, where both sides give at least 1e-6 (the tail is numerically meaningless).
    whole = []
    for x, y in zip(a, b, strict=True):
        keep = (x[1] > np.log(1e-6)) & (y[1] > np.log(1e-6))
        whole.append(float(np.abs(x[1][keep] - y[1][keep]).mean()))
    first_same = sum(int(np.argmax(x[1])) == int(np.argmax(y[1])) for x, y in zip(a, b, strict=True))
    return {
        "greedy_equal": f"{same}/{len(a)}",
        "first_token_equal": f"{first_same}/{len(a)}",
        "mean_abs_logprob_diff_first_token": round(float(np.mean(picked)), 4),
        "mean_abs_logprob_diff_vocab_p>1e-6": round(float(np.mean(whole)), 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="an existing finetune OUT (LoRA, GGUF)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from transformers import AutoTokenizer

    from selfinstruct.evaluate.tasks import build_task_prompt, load_task_file

    started = time.perf_counter()
    training: dict[str, Any] = {}
    out = args.model_dir
    if out is None:
        out = Path(tempfile.mkdtemp()) / "lora"
        training = train(out, args.steps, args.learning_rate)
    facts = json.loads((out / "selfinstruct_finetune.json").read_text(encoding="utf-8"))
    if not facts.get("gguf_adapter"):
        raise SystemExit(f"{out}: no adapter.gguf ({facts.get('gguf_note') or 'not a GGUF base'})")
    adapter, base = Path(facts["gguf_adapter"]), Path(facts["gguf_base"])

    tokenizer = AutoTokenizer.from_pretrained(out)
    tasks = load_task_file("user-oriented")[: args.prompts]
    texts = [build_task_prompt(t.task.instruction, t.task.instances[0].input) for t in tasks]
    prompts = [tokenizer(text)["input_ids"] for text in texts]
    eos = {int(tokenizer.eos_token_id)}

    runs = {
        "llama.cpp base": llama_cpp_runs(base, None, prompts, args.new_tokens, eos),
        "llama.cpp base + adapter": llama_cpp_runs(base, adapter, prompts, args.new_tokens, eos),
        "transformers merged": transformers_runs(out, None, prompts, args.new_tokens, eos),
        "transformers base": transformers_runs(base.parent, base.name, prompts, args.new_tokens, eos),
    }
    result = {
        "model_dir": str(out),
        "training": training,
        "prompts": len(prompts),
        "new_tokens": args.new_tokens,
        "adapter vs merged": compare(runs["llama.cpp base + adapter"], runs["transformers merged"]),
        "llama.cpp base vs transformers base": compare(runs["llama.cpp base"], runs["transformers base"]),
        "adapter vs llama.cpp base": compare(runs["llama.cpp base + adapter"], runs["llama.cpp base"]),
        "merged vs transformers base": compare(runs["transformers merged"], runs["transformers base"]),
        "examples": [
            {"prompt": text, **{name: tokenizer.decode(run[i][0]) for name, run in runs.items()}}
            for i, text in enumerate(texts[:3])
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
