"""Build a backend and the client around it from `LMSettings`.

`BACKENDS` is the one registry of backends (name -> builder); the settings' `BackendName` choices, and so
every command's `--backend`, must name exactly these (a test holds them together: the settings model
cannot import this module, which imports the client, which imports the settings). Adding a backend: a
module implementing `lm.base.LM`, one builder and one line here, and its name in `BackendName`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from selfinstruct.errors import UserError
from selfinstruct.lm.base import LM
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.client import ClientEvent, LMClient
from selfinstruct.lm.settings import BackendName, LMSettings

BackendBuilder = Callable[[LMSettings], LM]


# Heavy libraries are imported only for the one backend chosen, and models load lazily on first request.
def _embedded(settings: LMSettings) -> LM:
    from selfinstruct.lm.llamacpp import LlamaCppLM

    return LlamaCppLM(settings)


def _openai(settings: LMSettings) -> LM:
    from selfinstruct.lm.openai_compat import OpenAICompatLM

    return OpenAICompatLM(settings)


def _transformers(settings: LMSettings) -> LM:
    from selfinstruct.lm.transformers_backend import TransformersLM

    return TransformersLM(settings)


BACKENDS: Mapping[BackendName, BackendBuilder] = MappingProxyType(
    {"embedded": _embedded, "openai": _openai, "transformers": _transformers}
)


def build_lm(settings: LMSettings) -> LM:
    """The backend named by `settings.backend`; an unknown name is a user error naming the choices."""
    builder = BACKENDS.get(settings.backend)
    if builder is None:
        raise UserError(f"--backend: unknown backend {settings.backend!r}; choose from {', '.join(BACKENDS)}")
    if settings.lora and settings.backend != "embedded":
        raise UserError(f"--lora: applies to the embedded backend only (backend: {settings.backend})")
    return builder(settings)


def build_client(
    settings: LMSettings,
    cache: ResponseCache | None = None,
    *,
    progress: Callable[[ClientEvent], None] | None = None,
) -> LMClient:
    return LMClient(build_lm(settings), settings, cache, progress=progress)
