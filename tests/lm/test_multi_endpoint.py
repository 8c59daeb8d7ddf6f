"""Endpoints of different speeds, one dying mid-run: nothing is lost, the faster ones carry more."""

from __future__ import annotations

import asyncio

from selfinstruct.lm.base import Decoding, Request
from selfinstruct.lm.client import LMClient
from selfinstruct.lm.openai_compat import OpenAICompatLM
from selfinstruct.lm.settings import LMSettings
from selfinstruct.testing.fake_server import FakeOpenAIServer


def tagged(prompt: str, body: dict[str, object]) -> str:
    return f" answer for {prompt}"


def test_requests_spread_by_load_survive_a_dying_endpoint() -> None:
    n = 240
    latencies = (0.01, 0.04, 0.12)
    servers = [FakeOpenAIServer(tagged, latency=latency).start() for latency in latencies]
    doomed = servers[1]
    try:
        settings = LMSettings(
            backend="openai",
            base_url=[s.base_url for s in servers],
            model="m",
            concurrency=12,
            endpoint_backoff=60.0,
        )
        client = LMClient(OpenAICompatLM(settings), settings, backoff_initial=0.01, backoff_max=0.1)

        async def scenario() -> list[str]:
            async def kill_when_busy() -> None:
                while doomed.requests_served < 20:
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(doomed.stop)

            killer = asyncio.create_task(kill_when_busy())
            reqs = [Request(f"p{i}", Decoding(max_tokens=10)) for i in range(n)]
            results = await client.complete_many(reqs)
            await killer
            await client.aclose()
            return [r.text for r in results]

        texts = asyncio.run(scenario())
    finally:
        for server in servers:
            server.stop()
    assert texts == [f" answer for p{i}" for i in range(n)]  # every request answered, in order
    served = [s.requests_served for s in servers]
    stats = {s.endpoint: s for s in client.endpoint_stats()}
    counted = [stats[s.base_url].requests for s in servers]
    assert sum(counted) == n and counted[1] <= served[1]
    assert stats[doomed.base_url].errors >= 1
    assert counted[0] > counted[2]  # the fastest endpoint carries more than the slowest
    assert client.usage.total.errors == 0
    assert stats[servers[0].base_url].mean_latency < stats[servers[2].base_url].mean_latency
