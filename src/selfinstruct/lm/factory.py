"""Build a backend and the client around it from `LMSettings`, and ask a backend what only it knows.

`BACKENDS` is the one registry of backends (name -> `Backend`); the settings' `BackendName` choices, and so
every command's `--backend`, must name exactly these (a test holds them together: the settings model
cannot import this module, which imports the client, which imports the settings). Adding a backend: a
module implementing `lm.base.LM` and the three functions of `BackendModule`, one line here, and its name in
`BackendName`. The rest of the package asks these functions, never `settings.backend == ...`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, cast

from selfinstruct.errors import UserError
from selfinstruct.lm.base import LM
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.client import ClientEvent, LMClient
from selfinstruct.lm.settings import BackendName, LMSettings


class BackendModule(Protocol):
    """What a backend's module defines, besides its `LM` class."""

    def build(self, settings: LMSettings) -> LM: ...

    def eos_text(self, settings: LMSettings) -> str | None:
        """The model's end-of-sequence text where it is known offline (no weights, no network), else None."""
        ...

    def public_endpoints(self, settings: LMSettings) -> list[str]:
        """The endpoints a report may name (no credentials); [] for a model in this process."""
        ...


@dataclass(frozen=True)
class Backend:
    """One entry of the registry: the module that implements it, imported when first asked, so a backend's
    heavy libraries load only for it (and models lazily, on the first request)."""

    module: str

    def _module(self) -> BackendModule:
        return cast(BackendModule, importlib.import_module(self.module))

    def build(self, settings: LMSettings) -> LM:
        return self._module().build(settings)

    def eos_text(self, settings: LMSettings) -> str | None:
        return self._module().eos_text(settings)

    def public_endpoints(self, settings: LMSettings) -> list[str]:
        return self._module().public_endpoints(settings)


BACKENDS: Mapping[BackendName, Backend] = MappingProxyType(
    {
        "embedded": Backend("selfinstruct.lm.llamacpp"),
        "openai": Backend("selfinstruct.lm.openai_compat"),
        "transformers": Backend("selfinstruct.lm.transformers_backend"),
    }
)


def backend(settings: LMSettings) -> Backend:
    """The registry's entry for `settings.backend`; an unknown name is a user error naming the choices."""
    entry = BACKENDS.get(settings.backend)
    if entry is None:
        raise UserError(f"--backend: unknown backend {settings.backend!r}; choose from {', '.join(BACKENDS)}")
    return entry


def eos_text(settings: LMSettings) -> str | None:
    """The end-of-sequence text of the model's tokenizer where the backend knows it offline, else None."""
    return backend(settings).eos_text(settings)


def public_endpoints(settings: LMSettings) -> list[str]:
    """The endpoints of the backend as reports may show them (no credentials); [] for an in-process one."""
    return backend(settings).public_endpoints(settings)


def build_lm(settings: LMSettings) -> LM:
    """The backend named by `settings.backend`; an unknown name is a user error naming the choices."""
    entry = backend(settings)
    if settings.lora and settings.backend != "embedded":
        raise UserError(f"--lora: applies to the embedded backend only (backend: {settings.backend})")
    return entry.build(settings)


def build_client(
    settings: LMSettings,
    cache: ResponseCache | None = None,
    *,
    progress: Callable[[ClientEvent], None] | None = None,
) -> LMClient:
    return LMClient(build_lm(settings), settings, cache, progress=progress)
