"""Pipeline throughput against the fake OpenAI server with a fixed reply latency.

With C requests in flight and latency L, no client can beat C / L requests per second. This measures the
whole pipeline (all three stages, the novelty filter and the SQLite run store in the loop) against that
bound, for several C. The fake server runs in its own process, as a real server would, so that it does
not share the pipeline's GIL (`--same-process` to put it in ours).
Usage: python benchmarks/pipeline_throughput.py [--latency 0.2] [--concurrency 1 8 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from selfinstruct.pipeline.session import execute, open_run
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

SERVER = """
import sys
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder
with FakeOpenAIServer(self_instruct_responder, latency=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(server.requests_served, flush=True)
"""


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), proc
    finally:
        if proc.poll() is None:
            proc.kill()


def run_pipeline(tmp: Path, base_url: str, concurrency: int, gen_requests: int) -> float:
    overrides = {
        "lm.backend": "openai",
        "lm.model": "fake-model",
        "lm.base_url": [base_url],
        "lm.concurrency": concurrency,
        "num_instructions": 1_000_000,
        "generation.max_requests": gen_requests,
    }
    run = open_run(tmp / "run", None, overrides)
    start = time.perf_counter()
    try:
        execute(run, show_progress=False)
    finally:
        run.store.close()
    return time.perf_counter() - start


def one_run(concurrency: int, latency: float, gen_requests: int, separate: bool) -> tuple[float, int]:
    """(wall seconds, requests the server answered)."""
    with tempfile.TemporaryDirectory() as tmp:
        if not separate:
            with FakeOpenAIServer(self_instruct_responder, latency=latency) as server:
                return run_pipeline(
                    Path(tmp), server.base_url, concurrency, gen_requests
                ), server.requests_served
        with server_process(latency) as (base_url, proc):
            wall = run_pipeline(Path(tmp), base_url, concurrency, gen_requests)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            served = int(proc.stdout.readline())
            proc.wait(timeout=30)
            return wall, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="Rough length of each run at the bound.")
    parser.add_argument("--same-process", action="store_true", help="Run the fake server in this process.")
    args = parser.parse_args()
    where = "the same process" if args.same_process else "a separate process"
    print(f"{platform.machine()}, Python {platform.python_version()}, latency {args.latency * 1000:.0f} ms,")
    print(f"fake server in {where}; pipeline with the novelty filter and the SQLite run store")
    print("| C | bound (req/s) | measured (req/s, median) | share of bound | requests per run | runs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in args.concurrency:
        bound = c / args.latency
        # Each stage-1 request brings about 2-3 stage-2/3 requests; size runs to last ~`seconds`.
        gen_requests = max(4, int(bound * args.seconds / 3))
        rates, served = [], 0
        for _ in range(args.repeats):
            wall, served = one_run(c, args.latency, gen_requests, not args.same_process)
            rates.append(served / wall)
        median = statistics.median(rates)
        share = 100 * median / bound
        print(f"| {c} | {bound:.1f} | {median:.1f} | {share:.1f}% | {served} | {args.repeats} |")


if __name__ == "__main__":
    main()
