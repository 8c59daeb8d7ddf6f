"""Exact novelty index versus the paper's rouge_score loop, on the same deterministic candidates.

    python benchmarks/novelty_reference.py                  # 2,000 and 5,000 candidates
    python benchmarks/novelty_reference.py --sizes 500 --repeats 3

The reference scores every candidate against every pool instruction with
`rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)` (target = candidate, prediction = pool entry,
as the paper's loop does), keeps it when the max F is <= 0.7, and records the top 10 and the mean.
The reference runs once per size (it takes minutes) and its answers are cached under .benchmarks/
(`--fresh` reruns it, so that both timings come from the same run and machine state);
the index runs `--repeats` times; the script asserts identical decisions, top-10 lists and scores and
(with the mean on) identical means, then prints a Markdown table with medians and ratios. Wall-clock
and process CPU times are both reported: CPU time is the fairer ratio on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import candidates
from selfinstruct.novelty.index import NoveltyIndex

THRESHOLD = 0.7
TOP_K = 10
CACHE = Path(__file__).resolve().parent.parent / ".benchmarks"


def reference_run(seeds: list[str], cands: list[str]) -> dict:
    """The paper's quadratic loop; returns its answers and timings."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    answers = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for cand in cands:
        scores = [scorer.score(cand, inst)["rougeL"].fmeasure for inst in pool]
        kept = not max(scores) > THRESHOLD
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:TOP_K]
        answers.append(
            {"kept": kept, "top": [[pool[i], scores[i]] for i in order], "mean": float(np.mean(scores))}
        )
        if kept:
            pool.append(cand)
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "answers": answers,
    }


def cached_reference(n: int, seeds: list[str], cands: list[str], fresh: bool = False) -> dict:
    """The reference's answers and timings, from .benchmarks/ unless `fresh` (then run and saved)."""
    import rouge_score

    key = hashlib.sha256(
        json.dumps([seeds, cands, THRESHOLD, TOP_K, getattr(rouge_score, "__version__", "0.1.2")]).encode()
    ).hexdigest()[:16]
    path = CACHE / f"novelty_reference_{n}_{key}.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text())
    print(f"reference loop on {n} candidates (minutes)...", file=sys.stderr, flush=True)
    result = reference_run(seeds, cands)
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def index_run(seeds: list[str], cands: list[str], with_mean: bool) -> tuple[float, float, list]:
    index = NoveltyIndex(threshold=THRESHOLD, top_k=TOP_K, with_mean=with_mean)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for s in seeds:
        index.add(s)
    verdicts = [index.check_and_add(c) for c in cands]
    return time.perf_counter() - wall0, time.process_time() - cpu0, verdicts


def assert_same(reference: dict, verdicts: list, with_mean: bool) -> None:
    for i, (ref, got) in enumerate(zip(reference["answers"], verdicts, strict=True)):
        top = [[s.instruction, s.score] for s in got.most_similar]
        if ref["kept"] != got.kept or ref["top"] != top or (with_mean and ref["mean"] != got.mean_score):
            raise AssertionError(f"candidate {i}: reference {ref} != index {got}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--repeats", type=int, default=5, help="index runs per size (median reported)")
    ap.add_argument("--reference-only", action="store_true", help="only run (and cache) the reference")
    ap.add_argument(
        "--fresh", action="store_true", help="rerun the reference even if cached (timings side by side)"
    )
    args = ap.parse_args()

    seeds = candidates.seeds()
    rows = []
    for n in args.sizes:
        cands = list(candidates.generate(n))
        ref = cached_reference(n, seeds, cands, args.fresh)
        if args.reference_only:
            print(f"n={n}: reference {ref['wall_s']:.1f} s wall, {ref['cpu_s']:.1f} s CPU")
            continue
        index_run(seeds, cands[:50], with_mean=False)  # numba: load/compile before timing
        row = {"n": n, "kept": sum(a["kept"] for a in ref["answers"])}
        for with_mean in (False, True):
            walls, cpus = [], []
            for _ in range(args.repeats):
                wall, cpu, verdicts = index_run(seeds, cands, with_mean)
                assert_same(ref, verdicts, with_mean)
                walls.append(wall)
                cpus.append(cpu)
            row["mean" if with_mean else "topk"] = (statistics.median(walls), statistics.median(cpus))
        rows.append((row, ref))
    if args.reference_only:
        return

    print(
        f"\nMachine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}; threshold {THRESHOLD}, top-{TOP_K}; index medians of {args.repeats} runs."
    )
    print("Decisions, top-10 lists and scores (and means, with the mean on) identical to the reference.\n")
    print(
        "| candidates | kept | reference wall / CPU (s) | index top-10 wall / CPU (s) | ratio wall / CPU "
        "| index + exact mean wall / CPU (s) | ratio wall / CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row, ref in rows:
        rw, rc = ref["wall_s"], ref["cpu_s"]
        tw, tc = row["topk"]
        mw, mc = row["mean"]
        print(
            f"| {row['n']:,} | {row['kept']:,} | {rw:.1f} / {rc:.1f} | {tw:.3f} / {tc:.3f} | "
            f"{rw / tw:,.0f}x / {rc / tc:,.0f}x | {mw:.3f} / {mc:.3f} | {rw / mw:,.0f}x / {rc / mc:,.0f}x |"
        )


if __name__ == "__main__":
    main()
