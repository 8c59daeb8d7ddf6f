"""The one interface every language-model backend implements, and the pieces backends share.

Prompts are plain text built once by `selfinstruct.prompts`; a backend only turns a prompt and decoding
settings into a completion. Chat-style backends wrap the same text as a single user message. Backends sit
side by side: each imports from here (and `settings`), never from another backend or from the client.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class Decoding:
    """Decoding settings of one request (OpenAI completion semantics)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def as_dict(self) -> dict[str, object]:
        # Built by hand: dataclasses.asdict deep-copies, and this runs for every request's cache key.
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"stop": list(self.stop)}


@dataclass(frozen=True)
class Completion:
    """One reply. `finish_reason == "length"` means the reply was cut by max_tokens."""

    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    endpoint: str = ""


@dataclass(frozen=True)
class Request:
    """A prompt, its decoding settings and the pipeline stage it serves (for usage accounting)."""

    prompt: str
    decoding: Decoding
    stage: str = "other"
    metadata: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class EndpointStats:
    """Traffic of one endpoint (or of the one in-process model) for the end-of-run table."""

    endpoint: str
    requests: int
    errors: int
    mean_latency: float  # seconds, over successful requests
    outstanding: int = 0


def apply_stops(text: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop sequence. Returns (text, whether it was cut). Backends whose engine
    honours fewer stops than asked (the OpenAI API takes four) apply the rest with this."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


@runtime_checkable
class LM(Protocol):
    """A backend. `identity` names backend+model+mode for the response cache key. `local` is True for a
    model running in this process: its worker thread cannot be cancelled, so the client applies no
    network timeout to it (a timeout would only pile work up) and accepts an empty reply at once.
    Errors (`selfinstruct.errors`): `LMError` for good, `RetryableLMError` (with its `retry_after`) for a
    transient failure."""

    local: bool

    @property
    def identity(self) -> str: ...

    async def complete(self, prompt: str, decoding: Decoding) -> Completion: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ReportsEndpoints(Protocol):
    """An optional capability of a backend that spreads requests over endpoints and counts them itself;
    for any other backend the client reports its own counts as one endpoint."""

    def endpoint_stats(self) -> list[EndpointStats]: ...


def cache_key(identity: str, prompt: str, decoding: Decoding) -> str:
    """Stable key of a request: same backend, model, prompt and decoding -> same key."""
    payload = json.dumps(
        {"identity": identity, "prompt": prompt, "decoding": decoding.as_dict()},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
