"""Counting a prompt's tokens before it is sent, with the model's own tokenizer where it is known offline.

- embedded (a GGUF file): the file's vocabulary through llama.cpp, loaded vocab-only (no weights, so no
  extra buffer types: AMX-safe through `llamacpp_load`), tokenized as the backend does (BOS included), so
  a count equals the `prompt_tokens` the backend reports;
- openai: `tiktoken` when it is installed and knows the model name (an optional package, not a
  dependency);
- transformers: the model's tokenizer when it is on disk (a folder, or Hugging Face's cache);
- anything else: characters / 4, named as such wherever a figure is shown.

Counters are used by the cost estimate (`pipeline/estimate.py`) and by the budget check of `LMClient`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from selfinstruct.lm.settings import LMSettings

APPROX_CHARS_PER_TOKEN = 4
# tiktoken fetches an encoding's file the first time (then caches it): offline, that must not hang a run.
TIKTOKEN_LOAD_SECONDS = 10.0


class TokenCounter(Protocol):
    """Counts the tokens of a prompt. `name` says which tokenizer, `exact` whether it is the model's own."""

    @property
    def name(self) -> str: ...

    @property
    def exact(self) -> bool: ...

    def count(self, text: str) -> int: ...


@dataclass(frozen=True)
class ApproxCounter:
    """No tokenizer known: characters / 4, about right for English BPE vocabularies."""

    name: str = f"approximation: characters / {APPROX_CHARS_PER_TOKEN}"
    exact: bool = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / APPROX_CHARS_PER_TOKEN)


@dataclass(frozen=True)
class FunctionCounter:
    """A tokenizer given as a function (tiktoken's encode, a transformers tokenizer, a test's)."""

    name: str
    encode: Callable[[str], int]
    exact: bool = True

    def count(self, text: str) -> int:
        return self.encode(text)


class GGUFVocabCounter:
    """A GGUF file's tokenizer through llama.cpp, loaded vocab-only. Tokenizes as the embedded backend does
    (special tokens added and parsed), so counts include the BOS token the backend counts."""

    exact = True

    def __init__(self, path: Path, label: str | None = None) -> None:
        from selfinstruct.lm.llamacpp import _import_llama
        from selfinstruct.lm.llamacpp_load import load_vocab

        self.name = f"{label or path.name} tokenizer (llama.cpp)"
        self._lc = lc = _import_llama()
        self._model = model = load_vocab(lc, path)
        self._vocab = lc.llama_model_get_vocab(model)
        self._lock = threading.Lock()
        self._free = weakref.finalize(self, lc.llama_model_free, model)

    def count(self, text: str) -> int:
        data = text.encode("utf-8")
        with self._lock:
            # A negative result is the size needed: a count is all we want, so no second call.
            n: int = self._lc.llama_tokenize(self._vocab, data, len(data), None, 0, True, True)
        return -n if n < 0 else n

    def close(self) -> None:
        self._free()


def counter_for(settings: LMSettings) -> TokenCounter:
    """The best counter known offline for this backend and model; characters / 4 when none is."""
    found: TokenCounter | None = None
    if settings.backend == "embedded":
        found = _gguf_counter(settings.model)
    elif settings.backend == "openai" and settings.model:
        found = _tiktoken_counter(settings.model)
    elif settings.backend == "transformers" and settings.model:
        found = _transformers_counter(settings.model)
    return found or ApproxCounter()


def _gguf_counter(model: str | None) -> TokenCounter | None:
    try:
        if model:
            path = Path(model).expanduser()
            label = path.name
        else:
            from selfinstruct.lm.embedded import EMBEDDED_MODEL_ID, embedded_gguf_path

            path, label = embedded_gguf_path(), EMBEDDED_MODEL_ID
        if not path.is_file():
            return None
        return GGUFVocabCounter(path, label)
    except Exception:  # no llama-cpp-python, no model package, an unreadable file: approximate instead
        return None


def _tiktoken_counter(model: str) -> TokenCounter | None:
    try:
        import tiktoken  # optional: pip install tiktoken
    except ImportError:
        return None
    found: list[Any] = []

    def load() -> None:
        # A model name tiktoken does not know, or no encoding file reachable: no counter.
        with contextlib.suppress(Exception):
            found.append(tiktoken.encoding_for_model(model))

    worker = threading.Thread(target=load, name="tiktoken load", daemon=True)
    worker.start()
    worker.join(TIKTOKEN_LOAD_SECONDS)
    if not found:
        return None
    encoding = found[0]
    return FunctionCounter(
        f"tiktoken {encoding.name}", lambda text: len(encoding.encode(text, disallowed_special=()))
    )


def _transformers_counter(model: str) -> TokenCounter | None:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    except Exception:  # not installed, or not on disk: no download for an estimate
        return None
    return FunctionCounter(
        f"{Path(model).name} tokenizer (transformers)", lambda text: len(tokenizer(text)["input_ids"])
    )
