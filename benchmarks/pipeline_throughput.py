"""Pipeline throughput against the fake OpenAI server with a fixed reply latency.

With C requests in flight and latency L, no client can beat C / L requests per second. This measures the
whole pipeline (all three stages, the novelty filter and the SQLite run store in the loop) against that
bound, for several C, two ways:
- end to end: replies / wall time of `execute` (includes start-up: imports, loading the compiled novelty
  kernels, opening the store, and the drain at the end where fewer than C requests remain);
- model busy: replies / the span from the server's first request to its last reply, i.e. how well the
  pipeline keeps the model fed once it runs (the issue's question).
The fake server runs in its own process, as a real server would, so that it does not share the
pipeline's GIL (`--same-process` to put it in ours).
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
    print(server.requests_served, server.first_request_at, server.last_reply_at, flush=True)
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


def one_run(concurrency: int, latency: float, gen_requests: int, separate: bool) -> tuple[float, float, int]:
    """(wall seconds of the run, seconds from the server's first request to its last reply, replies)."""
    with tempfile.TemporaryDirectory() as tmp:
        if not separate:
            with FakeOpenAIServer(self_instruct_responder, latency=latency) as server:
                wall = run_pipeline(Path(tmp), server.base_url, concurrency, gen_requests)
                assert server.first_request_at is not None and server.last_reply_at is not None
                return wall, server.last_reply_at - server.first_request_at, server.requests_served
        with server_process(latency) as (base_url, proc):
            wall = run_pipeline(Path(tmp), base_url, concurrency, gen_requests)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            served, first, last = proc.stdout.readline().split()
            proc.wait(timeout=30)
            return wall, float(last) - float(first), int(served)


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
    print(
        "| C | bound (req/s) | end to end (req/s) | share | model busy (req/s) | share "
        "| requests per run | runs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in args.concurrency:
        bound = c / args.latency
        # Each stage-1 request brings about 2-3 stage-2/3 requests; size runs to last ~`seconds`.
        gen_requests = max(4, int(bound * args.seconds / 3))
        ends, busy, served = [], [], 0
        for _ in range(args.repeats):
            wall, span, served = one_run(c, args.latency, gen_requests, not args.same_process)
            ends.append(served / wall)
            busy.append(served / span)
        e, b = statistics.median(ends), statistics.median(busy)
        print(
            f"| {c} | {bound:.1f} | {e:.1f} | {100 * e / bound:.1f}% | {b:.1f} | {100 * b / bound:.1f}% "
            f"| {served} | {args.repeats} |"
        )


if __name__ == "__main__":
    main()
