"""The embedded model's defaults under the pipeline's own load (issue 21): threads and batch invariance.

Runs the real commands, each from scratch in a fresh folder and a fresh process, one after another:
`selfinstruct generate --num-instructions N` (all three stages) and `selfinstruct eval superni` on the
repository's SuperNI subset, for each combination of `--threads` (1, 2, auto) and the decoding mode
(default kernels, `--batch-invariant`). Reported per command: wall seconds, CPU seconds of the child,
LM tokens, and the ratio of wall time against the baseline measured in the same run (1 thread, default
mode, as the backend shipped before issue 21). Two runs of the same configuration tell whether a
from-scratch rerun gives byte-identical data (`--repeat 2`).

    python benchmarks/embedded_defaults.py --num-instructions 30 --eval-limit 2 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selfinstruct.lm.threads import auto_threads

REPO = Path(__file__).resolve().parents[1]
SUPERNI = REPO / "tests" / "data" / "superni"
SELFINSTRUCT = [sys.executable, "-m", "selfinstruct"]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def digest(folder: Path) -> str:
    """A hash of the exported data files (the run's content, not its timings)."""
    h = hashlib.sha256()
    for name in ("all_generated_instances.jsonl", "machine_generated_instructions.jsonl"):
        h.update((folder / "export" / name).read_bytes())
    return h.hexdigest()[:12]


def tokens(run: Path) -> int:
    summary = json.loads((run / "summary.json").read_text())
    total = next(row for row in summary["usage"] if row["stage"] == "total")
    return int(total["prompt_tokens"]) + int(total["completion_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-instructions", type=int, default=30)
    parser.add_argument("--eval-limit", type=int, default=2, help="SuperNI instances per task (0: skip eval)")
    parser.add_argument("--threads", nargs="+", default=["1", "2", "auto"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"auto = {auto_threads()} threads, load before: {os.getloadavg()[0]:.2f}"
    )
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            for invariant in (False, True):
                mode = ["--batch-invariant" if invariant else "--no-batch-invariant"]
                for repeat in range(args.repeat):
                    run = Path(tmp) / f"run-{threads}-{int(invariant)}-{repeat}"
                    wall, cpu = timed(
                        [
                            *SELFINSTRUCT,
                            "generate",
                            "--out",
                            str(run),
                            "--no-progress",
                            "--threads",
                            threads,
                            "--num-instructions",
                            str(args.num_instructions),
                            *mode,
                        ]
                    )
                    row: dict[str, object] = {
                        "threads": threads,
                        "invariant": invariant,
                        "repeat": repeat,
                        "gen_wall": wall,
                        "gen_cpu": cpu,
                        "tokens": tokens(run),
                        "digest": digest(run),
                    }
                    if args.eval_limit:
                        out = Path(tmp) / f"eval-{threads}-{int(invariant)}-{repeat}" / "report.json"
                        row["eval_wall"], row["eval_cpu"] = timed(
                            [
                                *SELFINSTRUCT,
                                "eval",
                                "superni",
                                "--tasks",
                                str(SUPERNI),
                                "--limit",
                                str(args.eval_limit),
                                "--threads",
                                threads,
                                *mode,
                                "--out",
                                str(out),
                                "--quiet",
                            ]
                        )
                        row["rouge_l"] = json.loads(out.read_text())["overall"]["rougeL"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    base = next(r for r in rows if r["threads"] == "1" and not r["invariant"])
    print("\n| threads | mode | generate wall s | CPU s | vs base | tokens | data | eval wall s | vs base |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        mode = "batch-invariant" if r["invariant"] else "default"
        gen = float(r["gen_wall"]) / float(base["gen_wall"])  # type: ignore[arg-type]
        ev = ""
        if "eval_wall" in r:
            ev = f"{float(r['eval_wall']):.0f} | {float(r['eval_wall']) / float(base['eval_wall']):.2f}"  # type: ignore[arg-type]
        print(
            f"| {r['threads']} | {mode} | {float(r['gen_wall']):.0f} | {float(r['gen_cpu']):.0f} "  # type: ignore[arg-type]
            f"| {gen:.2f} | {r['tokens']} | {r['digest']} | {ev} |"
        )


if __name__ == "__main__":
    main()
