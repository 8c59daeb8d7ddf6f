"""The `embedded` backend: a GGUF model run in-process by llama-cpp-python (the default: Gemma 3 270M).

- Calls run one at a time in a worker thread (the high-level API decodes one prompt at a time), so the
  event loop stays free for the rest of the pipeline. llama-cpp-python reuses the KV cache of the longest
  common prefix with the previous prompt, which the pipeline's similar prompts benefit from.
- OpenAI semantics are mapped explicitly: llama.cpp's own top_k=40, min_p=0.05 and repeat_penalty
  defaults are switched off so only temperature, top_p and the presence/frequency penalties act.
  Temperature 0 is greedy decoding in llama.cpp. Presence/frequency penalties apply to generated tokens
  (llama.cpp's sampler never sees the prompt's), over the whole reply (its window is widened to n_ctx).
- A prompt that does not fit the context keeps its end (what the model continues from): the left side is
  cut so that the prompt leaves `min(max_tokens, n_ctx / 2)` tokens for the reply, keeping the BOS token.
  `max_tokens` is then clamped to the room left. The pipeline's prompts are far shorter than 2,048 tokens,
  so this is a guard rather than a mode.
- `api="chat"` is ignored: the default model is a base model without a chat template.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any

from selfinstruct.errors import UserError
from selfinstruct.lm.base import Completion, Decoding, LMError
from selfinstruct.lm.embedded import EMBEDDED_MODEL_ID, embedded_gguf_path
from selfinstruct.lm.llamacpp_load import load_high_level
from selfinstruct.lm.settings import LMSettings


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
        # Gemma 3), which would cut through the progress bar. Failures surface as exceptions from
        # llama-cpp-python anyway, so its log goes to Python logging at debug level.
        _QUIET_LOG.append(llama_cpp.llama_log_callback(_forward_llama_log))
        llama_cpp.llama_log_set(_QUIET_LOG[0], ctypes.c_void_p(0))
    return llama_cpp


_QUIET_LOG: list[Any] = []  # keeps the ctypes callback alive for the life of the process


def _forward_llama_log(level: int, text: bytes, user_data: Any) -> None:
    logging.getLogger("selfinstruct.llamacpp").debug(text.decode("utf-8", "replace").rstrip())


def fit_prompt(tokens: list[int], max_tokens: int, n_ctx: int, bos: int | None) -> tuple[list[int], int]:
    """Cut the prompt's left side if it leaves too little room; returns (tokens, max_tokens that fit)."""
    reserve = min(max_tokens, n_ctx // 2)
    limit = n_ctx - reserve
    if len(tokens) > limit:
        keep_bos = bos is not None and tokens and tokens[0] == bos
        head = tokens[:1] if keep_bos else []
        tokens = head + tokens[len(tokens) - (limit - len(head)) :]
    return tokens, max(1, min(max_tokens, n_ctx - len(tokens)))


class LlamaCppLM:
    """Implements `LM` with llama_cpp.Llama; the model loads on the first request."""

    local = True  # in-process: the client does not apply its network timeout

    def __init__(self, settings: LMSettings) -> None:
        self.settings = settings
        self._path: Path | None = Path(settings.model).expanduser() if settings.model else None
        self._llm: Any = None
        self._lock = asyncio.Lock()
        # A cancelled request's worker thread runs on after its task is gone; llama.cpp is not re-entrant
        # (two decodes at once crash the process), so the thread itself holds this lock.
        self._thread_lock = threading.Lock()

    @property
    def identity(self) -> str:
        name = self._path.name if self._path is not None else EMBEDDED_MODEL_ID
        return f"embedded:{name}:completion"

    def load(self) -> Any:
        """Load the model (blocking) unless already loaded."""
        if self._llm is not None:
            return self._llm
        llama_cpp = _import_llama()
        path = self._path if self._path is not None else embedded_gguf_path()
        if not path.is_file():
            raise UserError(f"{path}: GGUF model file not found")
        try:
            # Loaded without llama.cpp's extra buffer types where the CPU has AMX (they crash there).
            self._llm = load_high_level(
                llama_cpp,
                path,
                n_ctx=self.settings.context_length,
                n_threads=self.settings.threads,
                n_threads_batch=self.settings.threads,
                # Penalties count every generated token, as OpenAI's do, not just llama.cpp's last 64.
                last_n_tokens_size=self.settings.context_length,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LMError(f"llama.cpp could not load {path}: {exc}") from exc
        return self._llm

    def complete_sync(self, prompt: str, decoding: Decoding) -> Completion:
        """One blocking completion (the async method runs this in a worker thread)."""
        with self._thread_lock:
            return self._complete_locked(prompt, decoding)

    def _complete_locked(self, prompt: str, decoding: Decoding) -> Completion:
        llm = self.load()
        tokens = (
            llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True) if prompt else [llm.token_bos()]
        )
        tokens, max_tokens = fit_prompt(list(tokens), decoding.max_tokens, llm.n_ctx(), llm.token_bos())
        try:
            result = llm.create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=decoding.temperature,
                top_p=decoding.top_p,
                top_k=0,
                min_p=0.0,
                typical_p=1.0,
                repeat_penalty=1.0,
                presence_penalty=decoding.presence_penalty,
                frequency_penalty=decoding.frequency_penalty,
                stop=list(decoding.stop),
                seed=decoding.seed,
            )
        except (ValueError, RuntimeError) as exc:
            raise LMError(f"llama.cpp failed: {exc}") from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice.get("text") or "",
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            endpoint="embedded",
        )

    async def complete(self, prompt: str, decoding: Decoding) -> Completion:
        async with self._lock:
            return await asyncio.to_thread(self.complete_sync, prompt, decoding)

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._thread_lock.acquire)
            llm, self._llm = self._llm, None
            self._thread_lock.release()
        if llm is not None:
            close = getattr(llm, "close", None)
            if callable(close):
                close()
