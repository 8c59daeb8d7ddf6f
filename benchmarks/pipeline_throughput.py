"""Pipeline throughput against the fake OpenAI server with a fixed reply latency.

With C requests in flight and latency L, no client can beat C / L requests per second. This measures the
whole pipeline (all three stages, the novelty filter and the SQLite run store in the loop) against that
bound, for several C. Usage: python benchmarks/pipeline_throughput.py [--latency 0.2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from selfinstruct.pipeline.session import execute, open_run
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder


def one_run(concurrency: int, latency: float, gen_requests: int) -> tuple[float, int]:
    with (
        FakeOpenAIServer(self_instruct_responder, latency=latency) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        overrides = {
            "lm.backend": "openai",
            "lm.model": "fake-model",
            "lm.base_url": [server.base_url],
            "lm.concurrency": concurrency,
            "num_instructions": 1_000_000,
            "generation.max_requests": gen_requests,
        }
        run = open_run(Path(tmp) / "run", None, overrides)
        start = time.perf_counter()
        try:
            execute(run, show_progress=False)
        finally:
            run.store.close()
        wall = time.perf_counter() - start
        return wall, server.requests_served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="Rough length of each run at the bound.")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}, latency {args.latency * 1000:.0f} ms")
    print("| C | bound (req/s) | measured (req/s, median) | share of bound | requests per run | runs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in args.concurrency:
        bound = c / args.latency
        # Each stage-1 request brings about 2-3 stage-2/3 requests; size runs to last ~`seconds`.
        gen_requests = max(4, int(bound * args.seconds / 3))
        rates, served = [], 0
        for _ in range(args.repeats):
            wall, served = one_run(c, args.latency, gen_requests)
            rates.append(served / wall)
        median = statistics.median(rates)
        print(
            f"| {c} | {bound:.1f} | {median:.1f} | {100 * median / bound:.1f}% | {served} | {args.repeats} |"
        )


if __name__ == "__main__":
    main()
