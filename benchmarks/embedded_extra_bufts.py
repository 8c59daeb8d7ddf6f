"""Tokens/s of the embedded model with and without llama.cpp's extra buffer types (issue 12, item 1).

The extra buffer types hold repacked weights for faster CPU kernels; on AMX CPUs one of them is the AMX
path that crashes, so the backend turns them off there. This measures what turning them off costs on
the machine at hand: two bare llama-cpp-python models of the same file, one per setting, timed back to
back on the same greedy prompts (alternating which goes first), medians over runs, ratio in the same run.

    python benchmarks/embedded_extra_bufts.py --runs 5 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the backend does, before llama_cpp loads

from embedded_tokens import BARE_OPTIONS, NEW_TOKENS, PROMPTS, machine
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp_load import cpu_has_amx, load_high_level, read_cpuinfo


def timed(llm: object) -> float:
    start = time.perf_counter()
    tokens = 0
    for prompt in PROMPTS:
        result = llm.create_completion(prompt, max_tokens=NEW_TOKENS, **BARE_OPTIONS)  # type: ignore[attr-defined]
        tokens += int(result["usage"]["completion_tokens"])
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if cpu_has_amx(read_cpuinfo()):
        raise SystemExit("this CPU has AMX: the extra buffer types would take the crashing AMX path")
    import llama_cpp

    path = embedded_gguf_path()
    options = dict(n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    models = {on: load_high_level(llama_cpp, path, extra_buffer_types=on, **options) for on in (True, False)}
    for llm in models.values():
        llm.create_completion("Hello", max_tokens=4, **BARE_OPTIONS)
    rates: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    for run in range(args.runs):
        order = (True, False) if run % 2 == 0 else (False, True)
        measured = {on: timed(models[on]) for on in order}
        for on in order:
            rates[on].append(measured[on])
        ratios.append(measured[False] / measured[True])
        print(f"run {run + 1}: with {measured[True]:.1f} tok/s, without {measured[False]:.1f} tok/s")
    print(f"\nMachine: {machine()}. threads={args.threads}, medians of {args.runs} runs.\n")
    print("| extra buffer types on (tok/s) | off (tok/s) | off / on (same run) |")
    print("|---:|---:|---:|")
    print(
        f"| {statistics.median(rates[True]):.1f} | {statistics.median(rates[False]):.1f} "
        f"| {statistics.median(ratios):.3f} |"
    )


if __name__ == "__main__":
    main()
