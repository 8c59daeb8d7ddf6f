"""The `embedded` backend: a GGUF model run in-process by llama.cpp (the default: Gemma 3 270M).

- Requests in flight are decoded together (continuous batching, `selfinstruct.lm.llamacpp_batch`): one
  model, one context with a sequence per request the client lets through (`concurrency`), one decoding
  thread, so the event loop stays free for the rest of the pipeline. Prompts that share a prefix (the
  stages' few-shot headers) reuse its KV cells.
- OpenAI semantics are mapped explicitly: only temperature, top_p and the presence/frequency penalties act
  (llama.cpp's top-k, min-p, typical and repeat-penalty samplers are not in the chain). Temperature 0 is
  greedy decoding. Presence/frequency penalties apply to the reply's tokens, over the whole reply.
- A prompt that does not fit the context keeps its end (what the model continues from): the left side is
  cut so that the prompt leaves `min(max_tokens, n_ctx / 2)` tokens for the reply, keeping the BOS token.
  `max_tokens` is then clamped to the room left. The pipeline's prompts are far shorter than 2,048 tokens,
  so this is a guard rather than a mode.
- The model loads without llama.cpp's extra buffer types where the CPU has AMX (`llamacpp_load`).
- At concurrency 1 the tokens are exactly those of llama-cpp-python's one-at-a-time `Llama` API. Above 1,
  a greedy reply can differ slightly with what it was batched with (llama.cpp's kernels depend on the
  number of rows), so a from-scratch rerun may differ slightly, as with vLLM. A resumed run takes every
  request answered before from the run's cache; only the requests in flight at the interruption are
  decoded again, in another batch, and may differ slightly from an uninterrupted run (never at
  concurrency 1).
- `batch_invariant` (opt-in) makes every reply bitwise independent of what it is batched with, so a
  run's replies are the same at any concurrency and a resumed run equals the uninterrupted one; it costs
  the prefix sharing across sequences and some speed (`llamacpp_batch`, docs/benchmarks.md). Its replies
  are cached under their own identity.
- `lora` applies a LoRA adapter in llama.cpp's GGUF format (stage 5 writes one) on the same context; the
  adapter's hash is part of the backend's identity, so cached replies never cross adapters.
- `api="chat"` is ignored: the default model is a base model without a chat template.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from selfinstruct.errors import LMError, UserError
from selfinstruct.lm.base import Completion, Decoding
from selfinstruct.lm.embedded import EMBEDDED_EOS, EMBEDDED_MODEL_ID, embedded_gguf_path
from selfinstruct.lm.llamacpp_batch import BatchEngine, fit_prompt
from selfinstruct.lm.llamacpp_load import load_vocab
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.threads import resolve_threads

__all__ = ["LlamaCppLM", "fit_prompt"]


def _import_llama() -> Any:
    # llama.cpp's OpenMP threads spin while waiting; on a busy 2-core machine that collapsed decoding to
    # ~1 token/s with 2 threads. Passive waiting must be set before the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise UserError(
            "the embedded backend needs llama-cpp-python: pip install 'llama-cpp-python>=0.3.8,<0.4' "
            "(it builds from source, about 8 minutes on 2 cores), or pip install 'selfinstruct[embedded]'"
        ) from exc
    if not _QUIET_LOG:
        # Even with verbose=False llama.cpp prints notices to stderr (one at "error" level on every load of
        # Gemma 3), which would cut through the progress bar. Failures surface as errors from the
        # backend anyway, so its log goes to Python logging at debug level.
        _QUIET_LOG.append(llama_cpp.llama_log_callback(_forward_llama_log))
        llama_cpp.llama_log_set(_QUIET_LOG[0], ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
    return llama_cpp


_QUIET_LOG: list[Any] = []  # keeps the ctypes callback alive for the life of the process


def _forward_llama_log(level: int, text: bytes, user_data: Any) -> None:
    logging.getLogger("selfinstruct.llamacpp").debug(text.decode("utf-8", "replace").rstrip())


class LlamaCppLM:
    """Implements `LM` on a `BatchEngine`; the model loads on the first request."""

    local = True  # in-process: the client does not apply its network timeout

    def __init__(self, settings: LMSettings) -> None:
        self.settings = settings
        self._path: Path | None = Path(settings.model).expanduser() if settings.model else None
        self._lora = Path(settings.lora).expanduser() if settings.lora else None
        if self._lora is not None and not self._lora.is_file():
            raise UserError(f"{self._lora}: LoRA adapter file not found (--lora)")
        self.engine: BatchEngine | None = None
        self._lock = asyncio.Lock()
        self._identity = self._name()

    def _name(self) -> str:
        name = self._path.name if self._path is not None else EMBEDDED_MODEL_ID
        if self._lora is not None:
            # The adapter's bytes name it: replies of another adapter (or none) are never served from cache.
            digest = hashlib.sha256(self._lora.read_bytes()).hexdigest()[:16]
            name += f"+lora:{self._lora.name}:{digest}"
        if self.settings.batch_invariant:
            name += "+batch-invariant"  # other kernels: its replies are not those of the default mode
        return f"embedded:{name}:completion"

    @property
    def identity(self) -> str:
        return self._identity

    def load(self) -> BatchEngine:
        """Load the model and start the decoding thread (blocking) unless already done."""
        if self.engine is not None:
            return self.engine
        llama_cpp = _import_llama()
        path = self._path if self._path is not None else embedded_gguf_path()
        if not path.is_file():
            raise UserError(f"{path}: GGUF model file not found")
        self.engine = BatchEngine(
            path,
            n_seq=self.settings.concurrency,
            n_ctx_seq=self.settings.context_length,
            threads=resolve_threads(self.settings.threads),
            lora=self._lora,
            batch_invariant=self.settings.batch_invariant,
            llama_cpp=llama_cpp,
        )
        return self.engine

    async def complete(self, prompt: str, decoding: Decoding) -> Completion:
        async with self._lock:
            engine = self.engine if self.engine is not None else await asyncio.to_thread(self.load)
        result = await asyncio.wrap_future(engine.submit(prompt, decoding))
        return Completion(
            text=result.text,
            finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            endpoint="embedded",
        )

    async def aclose(self) -> None:
        async with self._lock:
            engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)


# What the backend registry (`lm/factory.py`) asks of every backend module.
def build(settings: LMSettings) -> LlamaCppLM:
    return LlamaCppLM(settings)


def eos_text(settings: LMSettings) -> str | None:
    """The model's end-of-sequence text, from its GGUF vocabulary alone (no weights loaded; the embedded
    Gemma's is known without reading its file); None where llama.cpp cannot tell (not installed, no file,
    not a GGUF)."""
    if not settings.model:
        return EMBEDDED_EOS
    path = Path(settings.model).expanduser()
    if not path.is_file():
        return None
    try:
        lc = _import_llama()
        model = load_vocab(lc, path)
    except (UserError, LMError):
        return None
    try:
        vocab = lc.llama_model_get_vocab(model)
        token = lc.llama_vocab_eos(vocab)
        if token < 0:  # the vocabulary names no end-of-sequence token
            return None
        buffer = ctypes.create_string_buffer(256)
        n = lc.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)  # special: its text
        return buffer.raw[: max(n, 0)].decode("utf-8", "replace") or None
    finally:
        lc.llama_model_free(model)


def public_endpoints(settings: LMSettings) -> list[str]:
    """In-process: no endpoint to show."""
    return []
