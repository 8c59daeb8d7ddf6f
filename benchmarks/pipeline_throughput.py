"""Pipeline throughput against the fake OpenAI server with a fixed reply latency.

With C requests in flight and latency L, no client can beat C / L requests per second. This measures the
whole pipeline (all three stages, the novelty filter and the SQLite run store in the loop) against that
bound, for several C, two ways:
- end to end: replies / wall time of `execute` (includes start-up: importing the HTTP client, opening
  the store and the cache, and the drain at the end where fewer than C requests remain);
- model busy: replies / the span from the server's first request to its last reply, i.e. how well the
  pipeline keeps the model fed once it runs (the issue's question).
The fake server runs in its own process, as a real server would, so that it does not share the
pipeline's GIL (`--same-process` to put it in ours).
Baseline measured in the same run: the very requests the pipeline sent (read back from its response
cache), replayed through the bare OpenAI backend with C in flight against a fresh server, nothing done
with the replies. That is the most this server allows any client on this machine; the pipeline's rate
is also given as a share of it.
Usage: python benchmarks/pipeline_throughput.py [--latency 0.2] [--concurrency 1 8 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from selfinstruct.lm import eventloop
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.openai_compat import OpenAICompatLM
from selfinstruct.lm.settings import LMSettings
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
        execute(run, show_progress=False, console=Console(quiet=True))
    finally:
        run.store.close()
    return time.perf_counter() - start


def sent_requests(run_dir: Path) -> list[tuple[str, Decoding]]:
    """The requests a run sent, in the order they were answered, from its response cache."""
    with contextlib.closing(sqlite3.connect(run_dir / "run.sqlite")) as conn:
        rows = conn.execute("SELECT prompt, decoding FROM lm_cache ORDER BY rowid").fetchall()
    requests = []
    for prompt, raw in rows:
        decoding = json.loads(raw)
        requests.append((prompt, Decoding(**(decoding | {"stop": tuple(decoding["stop"])}))))
    return requests


async def replay(base_url: str, concurrency: int, requests: list[tuple[str, Decoding]]) -> None:
    settings = LMSettings(backend="openai", model="fake-model", base_url=[base_url], concurrency=concurrency)
    lm = OpenAICompatLM(settings)  # its connection pool holds `concurrency` connections
    slots = asyncio.Semaphore(concurrency)

    async def one(prompt: str, decoding: Decoding) -> None:
        async with slots:
            await lm.complete(prompt, decoding)

    try:
        await asyncio.gather(*(one(p, d) for p, d in requests))
    finally:
        await lm.aclose()


@contextlib.contextmanager
def serving(latency: float, separate: bool) -> Iterator[tuple[str, list[float]]]:
    """A fake server's URL, and a list that receives (replies, first request, last reply) at exit."""
    stats: list[float] = []
    if not separate:
        with FakeOpenAIServer(self_instruct_responder, latency=latency) as server:
            yield server.base_url, stats
            assert server.first_request_at is not None and server.last_reply_at is not None
            stats += [server.requests_served, server.first_request_at, server.last_reply_at]
        return
    with server_process(latency) as (base_url, proc):
        yield base_url, stats
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        stats += [float(x) for x in proc.stdout.readline().split()]
        proc.wait(timeout=30)


def one_run(
    concurrency: int, latency: float, gen_requests: int, separate: bool
) -> tuple[float, float, int, float]:
    """(wall seconds of the run, seconds from the server's first request to its last reply, replies,
    the bare backend's rate on the same requests)."""
    with tempfile.TemporaryDirectory() as tmp:
        with serving(latency, separate) as (base_url, stats):
            wall = run_pipeline(Path(tmp), base_url, concurrency, gen_requests)
        served, first, last = stats
        requests = sent_requests(Path(tmp) / "run")
    with serving(latency, separate) as (base_url, bare):
        eventloop.run(replay(base_url, concurrency, requests))
    return wall, last - first, int(served), bare[0] / (bare[2] - bare[1])


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
        "| bare backend (req/s) | share | pipeline / bare | requests per run | runs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in args.concurrency:
        bound = c / args.latency
        # Each stage-1 request brings about 2-3 stage-2/3 requests; size runs to last ~`seconds`.
        gen_requests = max(4, int(bound * args.seconds / 3))
        ends, busy, bare, served = [], [], [], 0
        for _ in range(args.repeats):
            wall, span, served, bare_rate = one_run(c, args.latency, gen_requests, not args.same_process)
            ends.append(served / wall)
            busy.append(served / span)
            bare.append(bare_rate)
        e, b, r = statistics.median(ends), statistics.median(busy), statistics.median(bare)
        ratio = statistics.median(x / y for x, y in zip(busy, bare, strict=True))
        print(
            f"| {c} | {bound:.1f} | {e:.1f} | {100 * e / bound:.1f}% | {b:.1f} | {100 * b / bound:.1f}% "
            f"| {r:.1f} | {100 * r / bound:.1f}% | {100 * ratio:.1f}% | {served:,} | {args.repeats} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
