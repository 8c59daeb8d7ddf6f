"""Aggregate tokens/s of the batched embedded backend at several concurrencies vs the bare one-at-a-time loop.

Same GGUF file, same requests (pipeline-like prompts sharing a few-shot prefix, greedy, up to `--tokens`
new tokens each), same thread count, one run: first the bare llama-cpp-python loop
(`Llama.create_completion`, one request after another), then the backend (`LlamaCppLM`, all requests
submitted at once, as the client does) at each concurrency. Tokens/s = completion tokens / wall time.
It also reports the CPU seconds of the event-loop thread against the decoding thread (from
/proc/self/task), the share of greedy replies identical to concurrency 1, the prompt tokens reused from
shared prefixes, and, with `--rss`, the peak RSS of a fresh process running the backend alone.

    python benchmarks/embedded_batching.py --threads 1 --concurrency 1 4 8 16
    python benchmarks/embedded_batching.py --rss --concurrency 8 16
    python benchmarks/embedded_batching.py --control
    python benchmarks/embedded_batching.py --shared-prefix
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the backend does, before llama_cpp loads

import embedded_tokens
from embedded_tokens import BARE_OPTIONS, machine
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.llamacpp_load import load_high_level
from selfinstruct.lm.settings import LMSettings

TASKS = [
    *embedded_tokens.TASKS,
    "List the planets of the solar system in order of size.",
    "Rewrite this sentence in the passive voice: The cat chased the mouse.",
]


def prompts(n: int) -> list[str]:
    """Stage-1-like prompts: a shared header, then 6 of the tasks in a rotating order."""
    out = []
    for i in range(n):
        tasks = [TASKS[(i + j) % len(TASKS)] for j in range(6)]
        out.append(
            "Come up with a series of tasks:\n"
            + "".join(f"Task {k + 1}: {t}\n" for k, t in enumerate(tasks))
            + "Task 7:"
        )
    return out


def thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare(path: Path, threads: int, requests: list[str], tokens: int) -> tuple[float, int, list[str]]:
    import llama_cpp

    llm = load_high_level(
        llama_cpp, path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    try:
        llm.create_completion("Hello", max_tokens=2, **BARE_OPTIONS)
        start = time.perf_counter()
        texts, n = [], 0
        for prompt in requests:
            result = llm.create_completion(prompt, max_tokens=tokens, **BARE_OPTIONS)
            texts.append(result["choices"][0]["text"])
            n += int(result["usage"]["completion_tokens"])
        return time.perf_counter() - start, n, texts
    finally:
        llm.close()


def batched(
    threads: int, concurrency: int, requests: list[str], tokens: int
) -> tuple[float, int, list[str], dict[str, float]]:
    settings = LMSettings(backend="embedded", threads=threads, context_length=2048, concurrency=concurrency)
    decoding = Decoding(temperature=0.0, max_tokens=tokens)

    async def scenario() -> tuple[float, int, list[str], dict[str, float]]:
        lm = LlamaCppLM(settings)
        await lm.complete("Hello", Decoding(max_tokens=2))  # load and warm up
        engine = lm.engine
        assert engine is not None
        loop_id, decoder_id = threading.get_native_id(), engine._thread.native_id
        assert decoder_id is not None
        cpu0 = (thread_cpu(loop_id), thread_cpu(decoder_id), sum(os.times()[:2]))
        reused0 = engine.reused_tokens
        start = time.perf_counter()
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in requests))
        wall = time.perf_counter() - start
        cpu1 = (thread_cpu(loop_id), thread_cpu(decoder_id), sum(os.times()[:2]))
        stats = {
            "loop_cpu": cpu1[0] - cpu0[0],
            "decoder_cpu": cpu1[1] - cpu0[1],
            "process_cpu": cpu1[2] - cpu0[2],
            "reused": float(engine.reused_tokens - reused0),
            "prompt_tokens": float(sum(r.prompt_tokens for r in results)),
        }
        await lm.aclose()
        return wall, sum(r.completion_tokens for r in results), [r.text for r in results], stats

    return asyncio.run(scenario())


def control(threads: int) -> None:
    """Tokens per CPU second at 1, 8 and 16 sequences, extra buffer types on and off (CPU time is steadier
    than wall time on a shared machine)."""
    from selfinstruct.lm.llamacpp import _import_llama
    from selfinstruct.lm.llamacpp_batch import BatchEngine

    lc = _import_llama()
    print("| extra buffer types | sequences | tokens | tokens per CPU second |\n|---|---:|---:|---:|")
    for extra in (True, False):
        for n in (1, 8, 16):
            engine = BatchEngine(
                embedded_gguf_path(),
                n_seq=n,
                n_ctx_seq=512,
                threads=threads,
                extra_buffer_types=extra,
                llama_cpp=lc,
            )
            engine.submit("Hello", Decoding(max_tokens=2)).result()
            before = sum(os.times()[:2])
            futures = [
                engine.submit(f"Story {i}: Once upon a time", Decoding(max_tokens=40)) for i in range(n)
            ]
            tokens = sum(f.result().completion_tokens for f in futures)
            cpu = sum(os.times()[:2]) - before
            engine.close()
            print(f"| {'on' if extra else 'off'} | {n} | {tokens} | {tokens / cpu:.1f} |", flush=True)


def shared_prefix(threads: int) -> None:
    """8 prompts of ~1,000 tokens sharing all but their last line (like stage 2/3's few-shot prompts),
    submitted together, 32 tokens each: CPU seconds at 1 and 8 sequences, and prompt tokens reused."""
    from selfinstruct.lm.llamacpp import _import_llama
    from selfinstruct.lm.llamacpp_batch import BatchEngine

    lc = _import_llama()
    words = ["Swimming", "Reading", "Cooking", "Running", "Singing", "Coding", "Walking", "Painting"] * 5
    head = "".join(
        f"Example {i}: Task: Is the sentence '{w} is a good idea' positive or negative? Output: positive\n"
        for i, w in enumerate(words)
    )
    requests = [
        head + f"Example {k}: Task: write about topic number {k} in detail. Output:" for k in range(8)
    ]
    print("| sequences | KV cache | CPU s | prompt tokens decoded / reused |\n|---:|---|---:|---:|")
    for n, unified in ((1, True), (8, True), (8, False)):
        engine = BatchEngine(
            embedded_gguf_path(), n_seq=n, n_ctx_seq=2048, threads=threads, unified=unified, llama_cpp=lc
        )
        before = sum(os.times()[:2])
        for future in [engine.submit(p, Decoding(max_tokens=32)) for p in requests]:
            future.result()
        cpu = sum(os.times()[:2]) - before
        kind = "unified" if unified else "one stream per sequence"
        print(
            f"| {n} | {kind} | {cpu:.1f} | {engine.prompt_tokens_decoded} / {engine.reused_tokens} |",
            flush=True,
        )
        engine.close()


def rss_child(concurrency: int, threads: int, n: int, tokens: int) -> None:
    batched(threads, concurrency, prompts(n), tokens)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rss", action="store_true", help="peak RSS of a fresh process per concurrency")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--control", action="store_true", help="tokens per CPU second, extra buffer types on/off"
    )
    parser.add_argument("--shared-prefix", action="store_true", help="prompts sharing a long prefix")
    args = parser.parse_args()
    if args.shared_prefix:
        shared_prefix(args.threads)
        return
    if args.control:
        control(args.threads)
        return
    if args.rss_child:
        rss_child(args.rss_child, args.threads, args.requests, args.tokens)
        return
    described = machine()
    if args.rss:
        print("| concurrency | peak RSS (MiB), context 2048 per slot |\n|---:|---:|")
        for c in args.concurrency:
            command = [sys.executable, __file__, "--rss-child", str(c), "--threads", str(args.threads)]
            command += ["--requests", str(args.requests), "--tokens", str(args.tokens)]
            peak = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1]
            print(f"| {c} | {float(peak):.0f} |")
        return
    requests = prompts(args.requests)
    path = embedded_gguf_path()
    bare_wall, bare_tokens, _ = bare(path, args.threads, requests, args.tokens)
    bare_rate = bare_tokens / bare_wall
    print(f"bare: {bare_tokens} tokens in {bare_wall:.1f} s = {bare_rate:.1f} tok/s", flush=True)
    rows, reference = [], None
    for c in args.concurrency:
        wall, n, texts, stats = batched(args.threads, c, requests, args.tokens)
        reference = texts if c == 1 else reference
        same = sum(a == b for a, b in zip(texts, reference, strict=True)) if reference else None
        rows.append((c, n / wall, n, wall, same, stats))
        print(f"C={c}: {n} tokens in {wall:.1f} s = {n / wall:.1f} tok/s", flush=True)
    print(
        f"\nMachine: {described}. threads={args.threads}; {len(requests)} requests x <= {args.tokens} tokens."
    )
    print(f"Bare llama-cpp-python one at a time: {bare_rate:.1f} tok/s ({bare_tokens} tokens).\n")
    print(
        "| concurrency | tok/s | x bare (same run) | tokens | identical to C=1 | prompt tokens reused "
        "| event-loop CPU s | decoder-thread CPU s | process CPU s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, rate, n, _wall, same, s in rows:
        same_text = f"{same}/{len(requests)}" if same is not None else "-"
        print(
            f"| {c} | {rate:.1f} | {rate / bare_rate:.2f} | {n} | {same_text} "
            f"| {s['reused']:.0f}/{s['prompt_tokens']:.0f} | {s['loop_cpu']:.2f} | {s['decoder_cpu']:.1f} "
            f"| {s['process_cpu']:.1f} |"
        )


if __name__ == "__main__":
    main()
