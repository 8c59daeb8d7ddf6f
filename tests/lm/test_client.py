"""LMClient against the real fake server on 127.0.0.1: retries, Retry-After, timeouts, limits, cache."""

from __future__ import annotations

import asyncio
import email.utils
import time
from pathlib import Path

import pytest
from multidict import CIMultiDict

from selfinstruct.errors import LMError
from selfinstruct.lm.base import Completion, Decoding, Request
from selfinstruct.lm.cache import MemoryResponseCache, SQLiteResponseCache
from selfinstruct.lm.client import ClientEvent, LMClient
from selfinstruct.lm.factory import build_client
from selfinstruct.lm.limits import AsyncTokenBucket
from selfinstruct.lm.openai_compat import OpenAICompatLM, parse_retry_after
from selfinstruct.lm.settings import LMSettings
from selfinstruct.testing.fake_server import FakeOpenAIServer, FaultPlan


def numbered(prompt: str, body: dict[str, object]) -> str:
    """A reply that depends on the prompt, so a lost or swapped reply shows."""
    return f" reply to [{prompt}] with some words\n\nand a tail"


def requests(n: int, stage: str = "instructions") -> list[Request]:
    return [Request(f"prompt {i}", Decoding(max_tokens=20, stop=("\n\n",)), stage=stage) for i in range(n)]


def client_for(server: FakeOpenAIServer, cache=None, progress=None, **settings: object) -> LMClient:
    options: dict[str, object] = {"backend": "openai", "base_url": [server.base_url], "model": "fake-model"}
    options.update(settings)
    client = LMClient(
        OpenAICompatLM(LMSettings(**options)),
        LMSettings(**options),
        cache,
        progress=progress,
        backoff_initial=0.01,
        backoff_max=0.2,
    )
    return client


async def run_all(client: LMClient, reqs: list[Request]) -> list[Completion]:
    try:
        return await client.complete_many(reqs)
    finally:
        await client.aclose()


def test_plain_requests_parse_text_finish_reason_and_usage() -> None:
    with FakeOpenAIServer(numbered) as server:
        client = client_for(server)
        results = asyncio.run(run_all(client, requests(5)))
    assert [r.text for r in results] == [f" reply to [prompt {i}] with some words" for i in range(5)]
    assert {r.finish_reason for r in results} == {"stop"}
    stage = client.usage.stages["instructions"]
    assert (stage.requests, stage.prompt_tokens, stage.completion_tokens) == (5, 10, 35)
    assert stage.errors == stage.retries == stage.cache_hits == 0


def test_faults_are_retried_and_results_equal_a_clean_run() -> None:
    with FakeOpenAIServer(numbered) as server:
        clean = asyncio.run(run_all(client_for(server), requests(60)))
    plan = FaultPlan(seed=3, rate_limit=0.1, server_error=0.1, empty=0.1, garbage=0.1, retry_after=0.01)
    with FakeOpenAIServer(numbered, faults=plan) as server:
        client = client_for(server, concurrency=8, max_retries=20)  # 0.4 ** 21: never flaky
        faulty = asyncio.run(run_all(client, requests(60)))
        injected = sum(server.faults_injected.values())
    assert [r.text for r in faulty] == [r.text for r in clean]
    stage = client.usage.stages["instructions"]
    assert injected > 0 and stage.retries == injected and stage.errors == 0


@pytest.mark.parametrize(
    ("fmt", "wait", "low", "high"),
    [("seconds", 0.3, 0.55, 5.0), ("ms", 0.3, 0.55, 2.0), ("date", 0.2, 0.2, 2.5)],
)
def test_retry_after_is_honoured_instead_of_the_exponential_backoff(
    fmt: str, wait: float, low: float, high: float
) -> None:
    plan = FaultPlan(rate_limit=1.0, retry_after=wait, retry_after_format=fmt)  # type: ignore[arg-type]
    with FakeOpenAIServer(faults=plan) as server:
        settings = LMSettings(backend="openai", base_url=[server.base_url], model="m", max_retries=2)
        client = LMClient(OpenAICompatLM(settings), settings, backoff_initial=20.0, backoff_max=60.0)
        start = time.monotonic()
        with pytest.raises(LMError, match="429"):
            asyncio.run(run_all(client, requests(1)))
        elapsed = time.monotonic() - start
        assert server.requests_received == 3
    assert client.usage.stages["instructions"].errors == 1
    # Two waits as the header says, not the 20 s backoff (nor none at all). An HTTP date has whole
    # seconds: the fake rounds up, so each wait is between `wait` and `wait` + 1 s.
    assert low <= elapsed < high


def test_parse_retry_after_forms() -> None:
    now = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert parse_retry_after(CIMultiDict({"Retry-After-Ms": "1500", "Retry-After": "9"})) == 1.5
    assert parse_retry_after(CIMultiDict({"retry-after": "2"})) == 2.0
    assert 28.0 <= (parse_retry_after(CIMultiDict({"Retry-After": now})) or 0.0) <= 30.0
    assert parse_retry_after(CIMultiDict({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert parse_retry_after(CIMultiDict({"Retry-After": "soon"})) is None
    assert parse_retry_after(CIMultiDict({"retry-after-ms": "x", "retry-after": "1"})) == 1.0
    assert parse_retry_after(CIMultiDict()) is None


def test_bad_replies_have_a_retry_budget_of_their_own() -> None:
    # Each prompt's first 3 replies are its own malformed body (the same each time), then it is answered.
    plan = FaultPlan(seed=5, sticky_garbage=1.0, sticky_times=3)
    with FakeOpenAIServer(numbered, faults=plan) as server:
        client = client_for(server, max_retries=0, reply_retries=3)  # no retries left for 429/5xx
        results = asyncio.run(run_all(client, requests(6)))
    assert [r.text for r in results] == [f" reply to [prompt {i}] with some words" for i in range(6)]
    assert client.usage.stages["instructions"].retries == 18
    # And the reverse: a large budget for failures does not buy more tries for a bad reply ...
    with FakeOpenAIServer(numbered, faults=plan) as server:
        client = client_for(server, max_retries=10, reply_retries=2)
        with pytest.raises(LMError, match=r"failed after 3 attempts.*unusable reply"):
            asyncio.run(run_all(client, requests(1)))
        assert server.requests_received == 3
    # ... nor does a large budget for bad replies buy more tries after 5xx.
    with FakeOpenAIServer(numbered, faults=FaultPlan(server_error=1.0)) as server:
        client = client_for(server, max_retries=1, reply_retries=10, endpoint_backoff=0.0)
        with pytest.raises(LMError, match=r"failed after 2 attempts.*server error 500"):
            asyncio.run(run_all(client, requests(1)))


def test_empty_replies_are_retried_then_accepted() -> None:
    with FakeOpenAIServer(numbered, faults=FaultPlan(empty=1.0)) as server:
        client = client_for(server, max_retries=0, reply_retries=2)
        [result] = asyncio.run(run_all(client, requests(1)))
        assert server.requests_received == 3
    assert (result.text, result.finish_reason) == ("", "stop")
    assert client.usage.stages["instructions"].retries == 2


def test_slow_replies_time_out_and_are_retried() -> None:
    # A timeout well above a normal reply's time on a loaded 2-core CI machine, and far below the delay.
    plan = FaultPlan(seed=1, slow=0.3, slow_delay=8.0)
    with FakeOpenAIServer(numbered, faults=plan) as server:
        client = client_for(server, timeout=1.5, concurrency=4, endpoint_backoff=0.0)
        start = time.monotonic()
        results = asyncio.run(run_all(client, requests(12)))
        elapsed = time.monotonic() - start
        slow = server.faults_injected.get("slow", 0)
    assert slow > 0
    assert [r.text for r in results] == [f" reply to [prompt {i}] with some words" for i in range(12)]
    assert client.usage.stages["instructions"].retries == slow
    assert elapsed < 8.0 * slow  # nobody waited out a slow reply


def test_client_error_is_not_retried_and_never_shows_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SI_TEST_KEY", "sk-wrong-123")
    with FakeOpenAIServer(api_key="sk-right-456") as server:
        client = client_for(server, api_key_env="SI_TEST_KEY")
        with pytest.raises(LMError) as info:
            asyncio.run(run_all(client, requests(1)))
        assert server.requests_received == 0
    message = str(info.value)
    # The fake echoes the Authorization header it got, as some servers do: the client masks it.
    assert "401" in message and "Authorization 'Bearer ***'" in message
    assert "sk-wrong-123" not in message and "sk-right-456" not in message
    assert client.usage.stages["instructions"].retries == 0


def test_api_key_from_environment_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SI_TEST_KEY", "sk-right-456")
    with FakeOpenAIServer(numbered, api_key="sk-right-456") as server:
        results = asyncio.run(run_all(client_for(server, api_key_env="SI_TEST_KEY"), requests(2)))
    assert len(results) == 2
    assert "sk-right" not in client_for(server, api_key_env="SI_TEST_KEY").identity


def test_sqlite_cache_answers_a_rerun_without_any_request(tmp_path: Path) -> None:
    db = tmp_path / "run.sqlite"
    with FakeOpenAIServer(numbered) as server:
        cache = SQLiteResponseCache(db)
        first = asyncio.run(run_all(client_for(server, cache), requests(10)))
        cache.close()
        received = server.requests_received
        cache = SQLiteResponseCache(db)
        events: list[ClientEvent] = []
        client = client_for(server, cache, progress=events.append)
        second = asyncio.run(run_all(client, requests(10) + requests(2, stage="extra")))
        assert server.requests_received == received  # nothing sent again
        assert len(cache) == 10
        cache.close()
    # The "extra" requests repeat prompts 0 and 1: the stage is not part of the key, so they hit too.
    assert [c.text for c in second[:10]] == [c.text for c in first]
    assert all(c.cached for c in second) and not any(c.cached for c in first)
    assert client.usage.stages["instructions"].cache_hits == 10
    assert client.usage.stages["extra"].cache_hits == 2
    assert {e.kind for e in events} >= {"cached"}


def test_cache_hits_send_nothing_and_different_decoding_misses() -> None:
    cache = MemoryResponseCache()
    with FakeOpenAIServer(numbered) as server:
        asyncio.run(run_all(client_for(server, cache), requests(3)))
        before = server.requests_received
        other = [Request("prompt 0", Decoding(max_tokens=21, stop=("\n\n",)))]
        again = asyncio.run(run_all(client_for(server, cache), requests(3) + other))
        assert server.requests_received == before + 1
    assert [c.cached for c in again] == [True, True, True, False]


def test_concurrency_limit_and_progress_events() -> None:
    events: list[ClientEvent] = []
    with FakeOpenAIServer(numbered, latency=0.05) as server:
        client = client_for(server, progress=events.append, concurrency=3)
        asyncio.run(run_all(client, requests(15)))
    started = [e for e in events if e.kind == "started"]
    finished = [e for e in events if e.kind == "finished"]
    assert len(started) == len(finished) == 15
    assert max(e.in_flight for e in started) == 3
    assert sum(e.completion_tokens for e in finished) == client.usage.total.completion_tokens
    assert client.in_flight == 0


def test_requests_per_minute_limit_paces_requests() -> None:
    with FakeOpenAIServer(numbered) as server:
        # 120/min = 2/s with a burst of 20: 23 requests need about 1.5 s.
        client = client_for(server, requests_per_minute=120, concurrency=16)
        start = time.monotonic()
        asyncio.run(run_all(client, requests(23)))
        elapsed = time.monotonic() - start
    assert 1.3 <= elapsed < 4.0


def test_tokens_per_minute_limit_paces_requests_and_charges_the_real_usage() -> None:
    def full_length(prompt: str, body: dict[str, object]) -> str:
        return " w" * int(body["max_tokens"])  # type: ignore[call-overload]

    # 100 one-letter words: the client estimates 200 chars / 4 = 50 prompt tokens, the server counts 100.
    prompt = "a " * 100
    reqs = [Request(prompt + str(i), Decoding(max_tokens=50)) for i in range(32)]

    async def one_by_one(client: LMClient) -> None:
        try:
            for request in reqs:
                await client.complete(request)
        finally:
            await client.aclose()

    with FakeOpenAIServer(full_length) as server:
        # 24,000/min = 400/s with a burst of 4,000. Estimated, 32 requests need 32 * 100 = 3,200 (no
        # wait at all); charged what they really used (151 each), the last one waits for 31 * 151 + 100
        # - 4,000 = 781 tokens: about 2 s.
        client = client_for(server, tokens_per_minute=24_000)
        start = time.monotonic()
        asyncio.run(one_by_one(client))
        elapsed = time.monotonic() - start
    usage = client.usage.total
    assert usage.prompt_tokens + usage.completion_tokens == 32 * 151
    assert 1.2 <= elapsed < 5.0


def test_token_bucket_pacing_and_debt() -> None:
    async def scenario() -> float:
        bucket = AsyncTokenBucket(per_minute=600, capacity=2)  # 10 units/s
        start = time.monotonic()
        for _ in range(4):
            await bucket.acquire(1)
        bucket.adjust(3)  # the last request used 3 more than estimated
        await bucket.acquire(1)
        return time.monotonic() - start

    elapsed = asyncio.run(scenario())
    assert 0.5 <= elapsed < 1.5  # (4 - 2) / 10 s, then 3 units of debt and 1 more: 0.2 + 0.4 s


def test_chat_mode_sends_one_user_message() -> None:
    with FakeOpenAIServer(numbered) as server:
        client = client_for(server, api="chat")
        results = asyncio.run(run_all(client, requests(2)))
        bodies = list(server.bodies)
    messages = sorted((b["messages"] for b in bodies), key=lambda m: m[0]["content"])  # arrival order varies
    assert messages == [[{"role": "user", "content": f"prompt {i}"}] for i in range(2)]
    assert "prompt" not in bodies[0]
    assert results[1].text == " reply to [prompt 1] with some words"
    assert client.identity == "openai:fake-model:chat"


def test_build_client_asks_the_server_for_its_model_and_sends_decoding() -> None:
    with FakeOpenAIServer(numbered, model="served-model") as server:
        client = build_client(LMSettings(backend="openai", base_url=[server.base_url]))
        decoding = Decoding(
            temperature=0.7,
            top_p=0.5,
            max_tokens=5,
            presence_penalty=2.0,
            stop=("a", "b", "c", "d", "e"),
            seed=9,
        )
        asyncio.run(run_all(client, [Request("hello", decoding)]))
        body = server.bodies[0]
    assert body["model"] == "served-model"
    assert body["stop"] == ["a", "b", "c", "d"]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["presence_penalty"]) == (
        0.7,
        0.5,
        5,
        2.0,
    )
    assert (body["frequency_penalty"], body["seed"]) == (0.0, 9)


def test_stops_beyond_the_fourth_are_applied_by_the_client() -> None:
    with FakeOpenAIServer(lambda p, b: "one two\nthree|four") as server:
        client = client_for(server)
        decoding = Decoding(max_tokens=50, stop=("#1", "#2", "#3", "#4", "|"))
        [result] = asyncio.run(run_all(client, [Request("x", decoding)]))
    assert (result.text, result.finish_reason) == ("one two\nthree", "stop")


def test_connection_refused_fails_after_retries() -> None:
    server = FakeOpenAIServer().start()
    server.stop()
    client = client_for(server, max_retries=2, endpoint_backoff=0.0)
    with pytest.raises(LMError, match="after 3 attempts"):
        asyncio.run(run_all(client, requests(1)))
    [stats] = client.endpoint_stats()
    assert stats.errors == 3 and stats.requests == 0


def test_model_discovery_with_a_wrong_key_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SI_TEST_KEY", "sk-wrong-123")
    with FakeOpenAIServer(api_key="sk-right-456") as server:
        settings = LMSettings(backend="openai", base_url=[server.base_url], api_key_env="SI_TEST_KEY")
        client = LMClient(OpenAICompatLM(settings), settings, backoff_initial=0.01)
        with pytest.raises(LMError, match="models answered HTTP 401; pass --model") as info:
            asyncio.run(run_all(client, requests(3)))
    assert "sk-wrong" not in str(info.value)
    assert client.usage.stages["instructions"].retries == 0
