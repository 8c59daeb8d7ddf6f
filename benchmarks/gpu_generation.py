"""GPU generation throughput: plain `model.generate` vs selfinstruct's transformers backend.

A Qwen2-0.5B-shaped model with random weights is built from its config (no downloads), with a small BPE
tokenizer trained here (no end-of-sequence token: every reply runs to --new-tokens on both sides). Both
sides decode the same prompts with the paper's stage-1 decoding by default (temperature 0.7, top_p 0.5,
presence penalty 2, OpenAI semantics: plain `generate` gets the same penalty processor the backend's static
path uses); the script reports new tokens/s of each, the speed-up, and, on a separate small greedy run,
whether the first four greedy outputs agree.

On CUDA the backend decodes with transformers' continuous batching, penalties applied on the device.
Run on a CUDA machine: python benchmarks/gpu_generation.py --batch 64 256 --new-tokens 128 --json out.json
(`--tiny` runs a small model on CPU, continuous batching forced on, to check the script itself.)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from selfinstruct.lm.base import Decoding
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.transformers_backend import TransformersLM, _penalty_processor

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
    # No end-of-sequence token at all: both sides decode the full length.
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    fast.save_pretrained(directory)
    config = qwen2_config(tiny, vocab_size=512)
    config.pad_token_id, config.eos_token_id = fast.pad_token_id, None
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(directory)


def prompts(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(8 + i % 9)) for i in range(n)]


STAGE1 = Decoding(temperature=0.7, top_p=0.5, presence_penalty=2.0)  # the paper's stage-1 decoding


def plain_generate(
    directory: Path, texts: list[str], new_tokens: int, device: str, decoding: Decoding
) -> tuple[float, list[str]]:
    """The baseline: one left-padded `model.generate` call over all prompts, same decoding settings."""
    from transformers import LogitsProcessorList

    tok = transformers.AutoTokenizer.from_pretrained(directory, padding_side="left")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device).eval()
    batch = tok(texts, return_tensors="pt", padding=True).to(device)
    width = batch["input_ids"].shape[1]
    processors = LogitsProcessorList()
    if decoding.presence_penalty or decoding.frequency_penalty:
        processors.append(_penalty_processor(width, decoding.presence_penalty, decoding.frequency_penalty))
    sample = decoding.temperature > 0
    options = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0} if sample else {}
    with torch.inference_mode():
        model.generate(**batch, max_new_tokens=4, do_sample=False)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(
            **batch,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=sample,
            logits_processor=processors,
            **options,
        )
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    texts_out = tok.batch_decode(out[:, width:], skip_special_tokens=True)
    return len(texts) * new_tokens / wall, texts_out


def backend_generate(
    directory: Path, texts: list[str], new_tokens: int, device: str, decoding: Decoding, continuous: bool
) -> tuple[float, list[str], list[int]]:
    settings = LMSettings(
        backend="transformers",
        model=str(directory),
        device=device,
        batch_size=len(texts),
        dtype="bfloat16" if device == "cuda" else "float32",
    )
    lm = TransformersLM(settings, continuous=continuous)
    decoding = dataclasses.replace(decoding, max_tokens=new_tokens)

    async def run() -> tuple[float, list[str], list[int]]:
        warm = dataclasses.replace(decoding, max_tokens=4)
        await asyncio.gather(*(lm.complete(t, warm) for t in texts[:2]))  # load + the manager's warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(lm.complete(t, decoding) for t in texts))
        wall = time.perf_counter() - start
        await lm.aclose()
        return sum(r.completion_tokens for r in results) / wall, [r.text for r in results], lm.batches

    return asyncio.run(run())


def greedy_agreement(directory: Path, device: str, continuous: bool, new_tokens: int = 24) -> bool:
    """Greedy outputs of the first four prompts, backend vs plain generate (correctness, not speed)."""
    texts = prompts(4)
    greedy = Decoding(temperature=0.0)
    _, reference = plain_generate(directory, texts, new_tokens, device, greedy)
    _, ours, _ = backend_generate(directory, texts, new_tokens, device, greedy, continuous)
    return all(a.strip() == b.strip() for a, b in zip(reference, ours, strict=True))


def run(args: argparse.Namespace) -> dict[str, object]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    continuous = device == "cuda" or args.tiny
    card = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    decoding = STAGE1 if args.decoding == "stage1" else Decoding(temperature=0.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        build_model(directory, args.tiny)
        agree = greedy_agreement(directory, device, continuous)
        for batch in args.batch:
            texts = prompts(batch)
            base_rate, _ = plain_generate(directory, texts, args.new_tokens, device, decoding)
            ours_rate, ours_out, calls = backend_generate(
                directory, texts, args.new_tokens, device, decoding, continuous
            )
            rows.append(
                {
                    "batch": batch,
                    "generate_tokens_per_s": round(base_rate, 1),
                    "backend_tokens_per_s": round(ours_rate, 1),
                    "speedup": round(ours_rate / base_rate, 2),
                    "backend_calls": calls[1:],  # after the warm-up call
                    "empty_replies": sum(not t for t in ours_out),
                }
            )
    return {
        "device": card,
        "decoding": dataclasses.asdict(decoding),
        "new_tokens": args.new_tokens,
        "continuous_batching": continuous,
        "greedy_first_four_equal": agree,
        "rows": rows,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="[64 256; tiny: 4 8]")
    parser.add_argument("--new-tokens", type=int, default=None, help="[128; tiny: 12]")
    parser.add_argument("--decoding", choices=["stage1", "greedy"], default="stage1")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the script")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    args.batch = args.batch or ([4, 8] if args.tiny else [64, 256])
    args.new_tokens = args.new_tokens or (12 if args.tiny else 128)
    result = run(args)
    equal = result["greedy_first_four_equal"]
    print(f"device: {result['device']}; {result['versions']}; greedy equal: {equal}")
    print(f"decoding: {result['decoding']}, {result['new_tokens']} new tokens per prompt")
    print("| batch | generate (new tok/s) | selfinstruct backend (new tok/s) | speed-up |")
    print("|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(
            f"| {row['batch']} | {row['generate_tokens_per_s']:,.0f} | {row['backend_tokens_per_s']:,.0f} "
            f"| {row['speedup']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
