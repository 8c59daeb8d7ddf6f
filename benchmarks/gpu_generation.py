"""GPU generation throughput: plain `model.generate` vs selfinstruct's transformers backend.

A Qwen2-0.5B-shaped model with random weights is built from its config (no downloads), with a small BPE
tokenizer trained here. Both sides decode the same prompts greedily with the same number of new tokens;
the script reports new tokens/s for each, the speed-up, and checks that greedy outputs are equal.
Run on a CUDA machine: python benchmarks/gpu_generation.py --batch 64 256 --new-tokens 128
(`--tiny` runs a small model on CPU to check the script itself.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from selfinstruct.lm.base import Decoding
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.transformers_backend import TransformersLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2_shapes import qwen2_config

WORDS = [
    "summarize",
    "explain",
    "rewrite",
    "translate",
    "describe",
    "compare",
    "list",
    "suggest",
    "evaluate",
    "outline",
    "estimate",
    "rank",
    "the",
    "a",
    "of",
    "to",
    "for",
    "with",
    "in",
    "on",
    "story",
    "plan",
    "recipe",
    "letter",
    "email",
    "poem",
    "budget",
    "schedule",
    "argument",
    "history",
]


def build_model(directory: Path, tiny: bool) -> None:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(12)) for i in range(400)]
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<pad>", "<eos>"])
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    fast.save_pretrained(directory)
    config = qwen2_config(tiny, vocab_size=512)
    # Random weights: no end-of-sequence token, so both sides decode the full length.
    config.pad_token_id, config.eos_token_id = fast.pad_token_id, None
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(directory)


def prompts(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(8 + i % 9)) for i in range(n)]


def plain_generate(
    directory: Path, texts: list[str], new_tokens: int, device: str
) -> tuple[float, list[str]]:
    tok = transformers.AutoTokenizer.from_pretrained(directory, padding_side="left")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device).eval()
    batch = tok(texts, return_tensors="pt", padding=True).to(device)
    with torch.inference_mode():
        model.generate(**batch, max_new_tokens=4, do_sample=False)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    texts_out = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return len(texts) * new_tokens / wall, texts_out


def backend_generate(
    directory: Path, texts: list[str], new_tokens: int, device: str
) -> tuple[float, list[str]]:
    settings = LMSettings(
        backend="transformers",
        model=str(directory),
        device=device,
        batch_size=len(texts),
        dtype="bfloat16" if device == "cuda" else "float32",
    )
    lm = TransformersLM(settings)
    decoding = Decoding(temperature=0.0, max_tokens=new_tokens)

    async def run() -> tuple[float, list[str]]:
        await lm.complete(texts[0], Decoding(temperature=0.0, max_tokens=4))  # load + warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(lm.complete(t, decoding) for t in texts))
        wall = time.perf_counter() - start
        await lm.aclose()
        return sum(r.completion_tokens for r in results) / wall, [r.text for r in results]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    card = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device: {card}; transformers {transformers.__version__}, torch {torch.__version__}")
    print("| batch | generate (new tok/s) | selfinstruct backend (new tok/s) | speed-up | greedy equal (4) |")
    print("|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        build_model(directory, args.tiny)
        for batch in args.batch:
            texts = prompts(batch)
            base_rate, base_out = plain_generate(directory, texts, args.new_tokens, device)
            ours_rate, ours_out = backend_generate(directory, texts, args.new_tokens, device)
            equal = all(a.strip() == b.strip() for a, b in zip(base_out[:4], ours_out[:4], strict=True))
            print(f"| {batch} | {base_rate:.0f} | {ours_rate:.0f} | {ours_rate / base_rate:.2f}x | {equal} |")


if __name__ == "__main__":
    main()
