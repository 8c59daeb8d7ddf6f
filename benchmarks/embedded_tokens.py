"""Tokens/s of the embedded model through selfinstruct's client versus bare llama-cpp-python.

Same GGUF file, same prompts, same greedy settings (~128 new tokens each), same thread count. Each run
times both sides back to back (alternating which goes first) after both models are loaded and warmed up;
the table reports medians over runs and the ratio selfinstruct / bare measured in the same run. Greedy
decoding must give identical texts on both sides, which the script checks.

    python benchmarks/embedded_tokens.py                 # threads 1 and 2, 3 runs each
    python benchmarks/embedded_tokens.py --runs 5 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the backend does, before llama_cpp loads

from selfinstruct.lm.base import Decoding, Request
from selfinstruct.lm.embedded import EMBEDDED_MODEL_ID, embedded_gguf_path
from selfinstruct.lm.factory import build_client
from selfinstruct.lm.llamacpp_load import load_high_level
from selfinstruct.lm.settings import LMSettings

TASKS = [
    "Write a short poem about the first snow of the year.",
    "Give three tips for staying focused while studying at home.",
    "Classify the sentiment of this sentence: I waited an hour and the food was cold.",
    "Explain what a binary search does to a ten-year-old.",
    "Suggest a name for a bakery that only sells bread made with rye.",
    "Convert 72 degrees Fahrenheit to Celsius and show the steps.",
]
PROMPTS = [
    "Come up with a series of tasks:\n"
    + "".join(f"Task {i + 1}: {t}\n" for i, t in enumerate(TASKS))
    + "Task 7:",
    "Here is a recipe for a simple tomato soup.\nIngredients:\n",
    "The history of the printing press begins in",
    "Q: What are the main causes of the seasons on Earth?\nA:",
]
NEW_TOKENS = 128
# OpenAI-style greedy decoding, with llama.cpp's own sampler defaults switched off as the backend does.
BARE_OPTIONS = dict(temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, typical_p=1.0, repeat_penalty=1.0)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, load avg {load:.2f}"


def run_bare(llm: object, prompts: list[str]) -> tuple[float, int, list[str]]:
    start = time.perf_counter()
    tokens, texts = 0, []
    for prompt in prompts:
        result = llm.create_completion(prompt, max_tokens=NEW_TOKENS, **BARE_OPTIONS)  # type: ignore[attr-defined]
        tokens += int(result["usage"]["completion_tokens"])
        texts.append(result["choices"][0]["text"])
    return time.perf_counter() - start, tokens, texts


async def run_selfinstruct(client: object, prompts: list[str]) -> tuple[float, int, list[str]]:
    decoding = Decoding(temperature=0.0, max_tokens=NEW_TOKENS)
    start = time.perf_counter()
    # All requests in flight at once, as the pipeline sends them; at concurrency 1 the backend decodes them
    # one by one, token-identical to the bare loop (embedded_batching.py measures concurrency above 1).
    results = await client.complete_many([Request(p, decoding, stage="bench") for p in prompts])  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    return elapsed, sum(r.completion_tokens for r in results), [r.text for r in results]


def bench(threads: int, runs: int) -> dict[str, float]:
    import llama_cpp

    path = embedded_gguf_path()
    # AMX-safe like the backend (the unmodified class crashes on AMX CPUs).
    bare = load_high_level(
        llama_cpp, path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    settings = LMSettings(backend="embedded", threads=threads, context_length=2048, concurrency=1)
    loop = asyncio.new_event_loop()
    client = build_client(settings)  # no cache: every request reaches the model
    try:
        warm = Decoding(max_tokens=4)
        bare.create_completion("Hello", max_tokens=4, **BARE_OPTIONS)
        loop.run_until_complete(client.complete(Request("Hello", warm)))
        bare_rates, si_rates, ratios = [], [], []
        for run in range(runs):
            order = ("bare", "si") if run % 2 == 0 else ("si", "bare")
            measured: dict[str, tuple[float, int, list[str]]] = {}
            for side in order:
                if side == "bare":
                    measured[side] = run_bare(bare, PROMPTS)
                else:
                    measured[side] = loop.run_until_complete(run_selfinstruct(client, PROMPTS))
            (bt, bn, btexts), (st, sn, stexts) = measured["bare"], measured["si"]
            if btexts != stexts:
                raise SystemExit("greedy texts differ between bare llama.cpp and selfinstruct")
            bare_rates.append(bn / bt)
            si_rates.append(sn / st)
            ratios.append((sn / st) / (bn / bt))
            print(
                f"threads={threads} run {run + 1}: bare {bn / bt:.1f} tok/s, selfinstruct {sn / st:.1f} tok/s"
            )
        return {
            "bare": statistics.median(bare_rates),
            "si": statistics.median(si_rates),
            "ratio": statistics.median(ratios),
            "tokens": float(bn),
        }
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        bare.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    described = machine()
    rows = [(threads, bench(threads, args.runs)) for threads in args.threads]
    print()
    print(f"Model: {EMBEDDED_MODEL_ID}, {len(PROMPTS)} prompts x up to {NEW_TOKENS} new tokens, greedy.")
    print(f"Machine: {described}. Medians of {args.runs} runs.")
    print()
    print("| threads | bare llama-cpp-python (tok/s) | through selfinstruct (tok/s) | ratio | tokens/run |")
    print("|---:|---:|---:|---:|---:|")
    for threads, r in rows:
        print(f"| {threads} | {r['bare']:.1f} | {r['si']:.1f} | {r['ratio']:.3f} | {r['tokens']:.0f} |")


if __name__ == "__main__":
    main()
