"""Absolute scaling of the exact novelty index: wall time, CPU time and peak memory per candidate count.

    python benchmarks/novelty_scaling.py                          # 50k, 200k, 1M; top-10 (pipeline setting)
    python benchmarks/novelty_scaling.py --sizes 50000 --repeats 5 --top-k 0   # decision only (dedup)

Each run is a fresh subprocess: the 175 seed-like instructions go into the pool first, then the
deterministic candidates (benchmarks/candidates.py) are checked and added in order. Candidate generation
is not timed; the peak RSS is the child's (it includes the candidate list, reported separately as the
RSS before the index starts). `--max-seconds` stops a run early and reports how far it got.
Writes a Markdown table to stdout and the growth plot to docs/img/novelty_scaling.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLOT = HERE.parent / "docs" / "img" / "novelty_scaling.png"
RESULTS = HERE.parent / ".benchmarks"  # rows per mode, merged across invocations, for the combined plot


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(n: int, top_k: int, max_seconds: float | None) -> None:
    sys.path.insert(0, str(HERE))
    import candidates
    from selfinstruct.novelty.index import NoveltyIndex

    warm = NoveltyIndex(top_k=top_k)  # numba: load the compiled kernels before timing
    for text in candidates.seeds(20):
        warm.check_and_add(text)
    seeds = candidates.seeds()
    cands = list(candidates.generate(n))
    base = _rss_mb()
    index = NoveltyIndex(top_k=top_k)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for s in seeds:
        index.add(s)
    done = 0
    kept = 0
    for text in cands:
        kept += index.check_and_add(text).kept
        done += 1
        if max_seconds and done % 1000 == 0 and time.perf_counter() - wall0 > max_seconds:
            break
        if done % 100_000 == 0:
            print(f"  {done:,} candidates, {time.perf_counter() - wall0:.0f} s", file=sys.stderr, flush=True)
    result = {
        "n": n,
        "done": done,
        "kept": kept,
        "pool": len(index),
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mb": _rss_mb(),
        "base_rss_mb": base,
        "top_k": top_k,
    }
    print(json.dumps(result))


def run_child(n: int, top_k: int, max_seconds: float | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--top-k", str(top_k)]
    if max_seconds:
        cmd += ["--max-seconds", str(max_seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def save_rows(rows: list[dict], top_k: int) -> dict[int, list[dict]]:
    """Merge these rows into .benchmarks/novelty_scaling_top{k}.json; return every saved mode's rows."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"novelty_scaling_top{top_k}.json"
    merged = {r["n"]: r for r in (json.loads(path.read_text()) if path.exists() else [])}
    merged.update({r["n"]: r for r in rows})
    path.write_text(json.dumps(sorted(merged.values(), key=lambda r: r["n"]), indent=1))
    modes = {}
    for saved in sorted(RESULTS.glob("novelty_scaling_top*.json")):
        mode_rows = json.loads(saved.read_text())
        modes[mode_rows[0]["top_k"]] = mode_rows
    return modes


def plot(modes: dict[int, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (top_k, rows) in enumerate(sorted(modes.items(), reverse=True)):
        label = f"top-{top_k} (pipeline)" if top_k else "decision only (dedup)"
        xs = [r["done"] for r in rows]
        ax1.plot(xs, [r["cpu_s"] for r in rows], "o-", color=f"C{i}", label=f"{label}: CPU")
        ax1.plot(xs, [r["wall_s"] for r in rows], "s:", color=f"C{i}", label=f"{label}: wall")
        ax2.plot(xs, [r["peak_rss_mb"] for r in rows], "o-", color=f"C{i}", label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("candidates checked (175 seeds in the pool first)")
        ax.legend(fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds")
    ax1.set_title("Time")
    ax2.set_ylabel("MB")
    ax2.set_title("Peak RSS")
    fig.suptitle("Exact ROUGE-L novelty index, 2-core machine")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    ap.add_argument("--repeats", type=int, nargs="+", default=[3, 1, 1], help="runs per size (median)")
    ap.add_argument("--top-k", type=int, default=10, help="10 = the pipeline's setting, 0 = decision only")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop a run after this long")
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.top_k, args.max_seconds)
        return

    repeats = args.repeats + [args.repeats[-1]] * (len(args.sizes) - len(args.repeats))
    rows = []
    for n, reps in zip(args.sizes, repeats, strict=False):
        runs = [run_child(n, args.top_k, args.max_seconds) for _ in range(reps)]
        row = dict(runs[0])
        for key in ("wall_s", "cpu_s", "peak_rss_mb"):
            row[key] = statistics.median(r[key] for r in runs)
        row["repeats"] = reps
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    print(
        f"\nMachine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; top-{args.top_k}; medians of the repeats shown.\n"
    )
    print(
        "| candidates | checked | kept (pool) | runs | wall (s) | CPU (s) | peak RSS (MB) "
        "| RSS before index (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['done']:,} | {r['kept']:,} ({r['pool']:,}) | {r['repeats']} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['base_rss_mb']:.0f} |"
        )
    plot(save_rows(rows, args.top_k), args.plot)
    print(f"\nPlot: {args.plot}")


if __name__ == "__main__":
    main()
