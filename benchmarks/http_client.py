"""CPU per request of the OpenAI backend's HTTP client at high concurrency, against plain httpx/httpcore.

    python benchmarks/http_client.py [--concurrency 64] [--requests 2000] [--latency 0.2]

The fake OpenAI server runs in its own process with a fixed reply latency. Each client sends the same
completion requests (an ~1.5 KB prompt) with C in flight; reported: requests/s and the client process's
CPU time per request (the server's CPU is not counted). `backend` is what ships
(`selfinstruct.lm.openai_compat.OpenAICompatLM`, aiohttp); `httpcore pools` is the previous design
(httpcore connection pools of 4 connections each, talking to httpx's transport directly, with read/write
timeouts); `httpx` is one `httpx.AsyncClient`. All run in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_throughput import server_process
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.openai_compat import OpenAICompatLM
from selfinstruct.lm.settings import LMSettings


async def drive(call: Callable[[int], Awaitable[object]], n: int, c: int) -> tuple[float, float]:
    """(requests/s, client CPU seconds per request) for n calls with c in flight."""
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> object:
        async with sem:
            return await call(i)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - wall0), (time.process_time() - cpu0) / n


def _body(i: int) -> bytes:
    return json.dumps({"model": "m", "prompt": f"prompt {i} " * 150, "max_tokens": 64}).encode()


async def run_all(url: str, n: int, c: int) -> list[tuple[str, float, float]]:
    import httpcore
    import httpx

    rows = []
    lm = OpenAICompatLM(LMSettings(backend="openai", model="m", base_url=[url], concurrency=c))
    decoding = Decoding(max_tokens=64)
    rows.append(
        (
            "backend (aiohttp, what ships)",
            *await drive(lambda i: lm.complete(f"prompt {i} " * 150, decoding), n, c),
        )
    )
    await lm.aclose()

    pools = [httpcore.AsyncConnectionPool(max_connections=4) for _ in range(max(1, c // 4))]
    headers = [(b"Content-Type", b"application/json")]
    timeouts = {"connect": 60.0, "read": 60.0, "write": 60.0, "pool": None}  # as any real client sets

    async def via_pools(i: int) -> object:
        response = await pools[i % len(pools)].request(
            "POST", f"{url}/completions", headers=headers, content=_body(i), extensions={"timeout": timeouts}
        )
        return json.loads(response.content)

    rows.append(("httpcore pools of 4 (previous)", *await drive(via_pools, n, c)))
    for pool in pools:
        await pool.aclose()

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=c)) as client:

        async def via_httpx(i: int) -> object:
            response = await client.post(
                f"{url}/completions",
                content=_body(i),
                headers=dict((k.decode(), v.decode()) for k, v in headers),
            )
            return response.json()

        rows.append(("one httpx.AsyncClient", *await drive(via_httpx, n, c)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()
    with server_process(args.latency) as (url, proc):
        rows = asyncio.run(run_all(url, args.requests, args.concurrency))
        assert proc.stdin is not None
        proc.stdin.close()
    bound = args.concurrency / args.latency
    print(
        f"{platform.machine()}, Python {platform.python_version()}; C={args.concurrency}, "
        f"latency {args.latency * 1000:.0f} ms (bound {bound:.0f} req/s), {args.requests} requests each\n"
    )
    print("| client | requests/s | share of bound | client CPU per request |")
    print("|---|---:|---:|---:|")
    for name, rate, cpu in rows:
        print(f"| {name} | {rate:.1f} | {100 * rate / bound:.1f}% | {cpu * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
