"""Loading a GGUF model through llama.cpp safely on every x86 CPU.

llama.cpp's CPU backend may move weights into "extra buffer types" at load time (repacked layouts for
faster kernels). On CPUs that advertise Intel AMX one of them is the AMX buffer, and its matrix multiply
crashes (SIGSEGV at `ldtilecfg`) on the first decode on Sapphire/Granite Rapids VMs: a known upstream
problem. The model parameter `use_extra_bufts = False` avoids it. The high-level `llama_cpp.Llama` class
does not expose that field, so every load in this project goes through `load_model`, which builds the
low-level parameters itself. Where the CPU has no AMX the extra buffer types stay on: on the AMD EPYC
development machine they are worth a measured speed-up (docs/benchmarks.md).

The decision reads the CPU flags through `read_cpuinfo`, which tests replace to play other CPUs. That
must never make the AMX path run on a real AMX CPU, so every load also asks the kernel itself
(`this_cpu_has_amx`) and refuses extra buffer types there, whatever it was told.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from selfinstruct.errors import LMError

AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
CPUINFO = "/proc/cpuinfo"


def read_cpuinfo(path: Path = Path(CPUINFO)) -> str:
    """The kernel's CPU description, or "" where there is none (not Linux)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_has_amx(cpuinfo: str) -> bool:
    """True when any CPU's `flags` line advertises AMX (tile, int8 or bf16)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and AMX_FLAGS.intersection(value.split()):
            return True
    return False


def use_extra_buffer_types(cpuinfo: str | None = None) -> bool:
    """Whether llama.cpp may repack weights into extra buffer types: not where AMX is advertised."""
    return not cpu_has_amx(read_cpuinfo() if cpuinfo is None else cpuinfo)


def this_cpu_has_amx() -> bool:
    """The real CPU's flags, read from the kernel at each call, never through `read_cpuinfo`."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as handle:
            return cpu_has_amx(handle.read())
    except OSError:
        return False


def refuse_amx_path(extra_buffer_types: bool) -> None:
    """Stop before llama.cpp's AMX path could run: extra buffer types on a CPU that has AMX."""
    if extra_buffer_types and this_cpu_has_amx():
        raise LMError(
            "refusing to load a GGUF model with llama.cpp's extra buffer types on this CPU: it has Intel "
            "AMX, where their AMX path crashes"
        )


def model_params(llama_cpp: Any, *, extra_buffer_types: bool) -> Any:
    """llama.cpp's default model parameters (CPU only, memory-mapped) with the extra buffer types set."""
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    params.use_extra_bufts = extra_buffer_types
    return params


def load_model(llama_cpp: Any, path: Path, *, extra_buffer_types: bool | None = None) -> Any:
    """Load a GGUF model (a `llama_model` pointer the caller frees with `llama_model_free`).

    `extra_buffer_types=None` decides from this machine's CPU flags."""
    if extra_buffer_types is None:
        extra_buffer_types = use_extra_buffer_types()
    refuse_amx_path(extra_buffer_types)
    params = model_params(llama_cpp, extra_buffer_types=extra_buffer_types)
    model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
    if not model:
        raise LMError(f"llama.cpp could not load {path} (see the debug log for its reason)")
    return model


def load_vocab(llama_cpp: Any, path: Path) -> Any:
    """A GGUF file's vocabulary alone (a `llama_model` pointer without weights, freed with
    `llama_model_free`): no weights to repack, so the extra buffer types are off, the AMX-safe path."""
    refuse_amx_path(False)
    params = model_params(llama_cpp, extra_buffer_types=False)
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
    if not model:
        raise LMError(f"llama.cpp could not read the vocabulary of {path}")
    return model


_PATCH_LOCK = threading.Lock()


def load_high_level(
    llama_cpp: Any, path: Path, *, extra_buffer_types: bool | None = None, **kwargs: Any
) -> Any:
    """A `llama_cpp.Llama` loaded with the extra buffer types set (the class has no argument for them).

    `Llama.__init__` takes its model parameters from `llama_model_default_params()`; for the length of the
    constructor that function returns parameters with the field set. A lock keeps two loads in this
    process from seeing each other's choice. The backend itself loads through `load_model`; this serves
    the bare-library baselines of the tests and benchmarks."""
    if extra_buffer_types is None:
        extra_buffer_types = use_extra_buffer_types()
    refuse_amx_path(extra_buffer_types)
    low_level = llama_cpp.llama_cpp
    original = low_level.llama_model_default_params

    def params() -> Any:
        chosen = original()
        chosen.use_extra_bufts = extra_buffer_types
        return chosen

    with _PATCH_LOCK:
        low_level.llama_model_default_params = params
        try:
            llm = llama_cpp.Llama(model_path=str(path), **kwargs)
        finally:
            low_level.llama_model_default_params = original
    if bool(llm.model_params.use_extra_bufts) != extra_buffer_types:
        raise LMError("llama-cpp-python ignored the extra-buffer-type setting; this version is unsupported")
    return llm
