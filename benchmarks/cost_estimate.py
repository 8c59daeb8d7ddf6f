"""How close `generate --dry-run`'s estimate comes to what a run really spent (docs/benchmarks.md).

For each run: the estimate is made from the run's own saved settings and seeds, before looking at what it
did, then set beside the tokens its LM reported (the run's ledger, or its summary's usage for a run made
before the ledger existed), per stage and in all.

- `--fake`: runs `generate` against the fake OpenAI server (whose tokens are whitespace words, so the
  estimate counts words too; the default characters / 4 approximation is shown beside it).
- `--embedded`: runs `generate` on the embedded model (slow: about 3 s per instruction on 2 cores); the
  estimate counts with the model's own tokenizer.
- `--run DIR`: compares an existing run.

    python benchmarks/cost_estimate.py --fake --num 30 --seeds 42 7 1
    python benchmarks/cost_estimate.py --embedded --num 30 --seeds 42 7
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from selfinstruct.config import RunSettings
from selfinstruct.lm.client import Ledger
from selfinstruct.lm.tokens import ApproxCounter, FunctionCounter, TokenCounter, counter_for
from selfinstruct.pipeline.estimate import estimate_run
from selfinstruct.records import Instance, Task
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

WORDS = FunctionCounter("whitespace words (the fake server's tokens)", lambda text: len(text.split()))
STAGES = ("instructions", "classify", "instances", "judge")


def _generate(run: Path, num: int, seed: int, extra: list[str]) -> None:
    command = [sys.executable, "-m", "selfinstruct", "generate", "--out", str(run), "--no-progress"]
    command += ["--no-export", "--num-instructions", str(num), "--seed", str(seed), *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"generate failed ({done.returncode}):\n{done.stderr[-2000:]}")


def _read(run: Path) -> tuple[RunSettings, list[Task], dict[str, tuple[int, int]], int]:
    """The run's settings, seeds, (requests, tokens) per stage as its LM reported them, and kept count."""
    conn = sqlite3.connect(run / "run.sqlite")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        seeds = [
            Task(instruction, tuple(Instance(i["input"], i["output"]) for i in json.loads(pairs)), bool(clf))
            for instruction, pairs, clf in conn.execute(
                "SELECT instruction, instances, is_classification FROM seed_tasks ORDER BY id"
            )
        ]
        kept = int(conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0])
        answered = dict(conn.execute("SELECT stage, COUNT(*) FROM lm_cache GROUP BY stage").fetchall())
    finally:
        conn.close()
    settings = RunSettings.model_validate(json.loads(meta["settings"]))
    if "spent" in meta:
        ledger = Ledger.from_dict(json.loads(meta["spent"]))
        real = {name: (s.requests, s.tokens) for name, s in ledger.stages.items()}
    else:  # a run made before the ledger: its one session's usage, and its answered requests
        usage = json.loads((run / "summary.json").read_text())["usage"]
        real = {
            row["stage"]: (answered.get(row["stage"], 0), row["prompt_tokens"] + row["completion_tokens"])
            for row in usage
            if row["stage"] != "total"
        }
    return settings, seeds, real, kept


def compare(run: Path, counters: list[TokenCounter], console: Console) -> list[float]:
    """Print the estimate(s) beside the run's real figures; returns total estimate / real per counter."""
    settings, seeds, real, kept = _read(run)
    real_total = sum(tokens for _, tokens in real.values())
    ratios = []
    table = Table(title=f"{run.name}: {settings.num_instructions} asked, {kept} kept ({settings.lm.backend})")
    table.add_column("stage")
    table.add_column("real req", justify="right")
    table.add_column("real tokens", justify="right")
    for counter in counters:
        table.add_column(f"est req / tokens ({counter.name.split(' ')[0]})", justify="right")
    estimates = [estimate_run(settings, seeds, counter=c, judge_counter=c) for c in counters]
    for stage in STAGES:
        if stage not in real and not any(stage in {s.stage for s in e.stages} for e in estimates):
            continue
        requests, tokens = real.get(stage, (0, 0))
        cells = [stage, str(requests), f"{tokens:,}"]
        for estimate in estimates:
            found = [s for s in estimate.stages if s.stage == stage]
            if not found:
                cells.append("-")
                continue
            s = found[0]
            total = s.prompt_tokens.typical + s.completion_tokens.typical
            cells.append(f"{s.requests.typical:.0f} / {total:,.0f}")
        table.add_row(*cells)
    cells = ["total", str(sum(r for r, _ in real.values())), f"{real_total:,}"]
    for estimate in estimates:
        span = estimate.tokens
        ratio = span.typical / real_total if real_total else float("nan")
        ratios.append(ratio)
        cells.append(f"{span.typical:,.0f} ({ratio - 1:+.0%})")
    table.add_row(*cells, end_section=True)
    console.print(table)
    for estimate, ratio in zip(estimates, ratios, strict=True):
        span = estimate.tokens
        inside = span.low <= real_total <= span.high
        console.print(
            f"  {estimate.tokenizer}: typical {span.typical:,.0f} = {ratio:.2f}x real; range "
            f"{span.low:,.0f}-{span.high:,.0f} {'holds' if inside else 'misses'} the real {real_total:,}"
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument("--run", type=Path, action="append", default=[])
    parser.add_argument("--num", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--judge", action="store_true", help="rate every kept instance with the same model")
    args = parser.parse_args()
    console = Console(width=110)
    with tempfile.TemporaryDirectory() as tmp:
        if args.fake:
            with FakeOpenAIServer(self_instruct_responder) as server:
                for seed in args.seeds:
                    run = Path(tmp) / f"fake-{seed}"
                    lm = ["--backend", "openai", "--base-url", server.base_url, "--model", "fake-model"]
                    judge = ["--judge", "fake-model"] if args.judge else []
                    _generate(run, args.num, seed, [*lm, "--concurrency", "4", *judge])
                    compare(run, [WORDS, ApproxCounter()], console)
        if args.embedded:
            for seed in args.seeds:
                run = Path(tmp) / f"embedded-{seed}"
                _generate(run, args.num, seed, ["--judge", "embedded"] if args.judge else [])
                compare(run, [counter_for(RunSettings().lm)], console)
        for run in args.run:
            settings, *_ = _read(run)
            compare(run, [counter_for(settings.lm)], console)


if __name__ == "__main__":
    main()
