"""Build a backend and the client around it from `LMSettings`."""

from __future__ import annotations

from collections.abc import Callable

from selfinstruct.lm.base import LM
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.client import ClientEvent, LMClient
from selfinstruct.lm.settings import LMSettings


def build_lm(settings: LMSettings) -> LM:
    """The backend named by `settings.backend`. Heavy libraries are imported only for the one chosen,
    and models load lazily on the first request."""
    if settings.backend == "openai":
        from selfinstruct.lm.openai_compat import OpenAICompatLM

        return OpenAICompatLM(settings)
    if settings.backend == "transformers":
        from selfinstruct.lm.transformers_backend import TransformersLM

        return TransformersLM(settings)
    from selfinstruct.lm.llamacpp import LlamaCppLM

    return LlamaCppLM(settings)


def build_client(
    settings: LMSettings,
    cache: ResponseCache | None = None,
    *,
    progress: Callable[[ClientEvent], None] | None = None,
) -> LMClient:
    return LMClient(build_lm(settings), settings, cache, progress=progress)
