"""The client every pipeline stage talks to: cache first, then a concurrency-limited, rate-limited,
timed-out and retried call to a backend, with token usage counted per stage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from selfinstruct.lm.base import (
    LM,
    BadReplyError,
    Completion,
    EndpointStats,
    LMError,
    ReportsEndpoints,
    Request,
    RetryableLMError,
    cache_key,
)
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.limits import AsyncTokenBucket
from selfinstruct.lm.settings import LMSettings

EventKind = Literal["started", "finished", "cached", "retry", "failed"]


@dataclass
class StageUsage:
    """Counts for one pipeline stage. Tokens are those of requests actually sent (cache hits cost none)."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    retries: int = 0

    def add(self, other: StageUsage) -> None:
        # Field by field: the progress display sums the stages several times a second.
        self.requests += other.requests
        self.cache_hits += other.cache_hits
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.errors += other.errors
        self.retries += other.retries


@dataclass
class UsageStats:
    stages: dict[str, StageUsage] = field(default_factory=dict)

    def stage(self, name: str) -> StageUsage:
        return self.stages.setdefault(name, StageUsage())

    @property
    def total(self) -> StageUsage:
        total = StageUsage()
        for usage in self.stages.values():
            total.add(usage)
        return total

    def as_rows(self) -> list[dict[str, object]]:
        """One dict per stage (sorted by name) and a final `total` row, for summary tables."""
        rows: list[dict[str, object]] = [
            {"stage": name, **asdict(u)} for name, u in sorted(self.stages.items())
        ]
        rows.append({"stage": "total", **asdict(self.total)})
        return rows


@dataclass(frozen=True)
class ClientEvent:
    """Progress callback payload. `in_flight` is the count after the event."""

    kind: EventKind
    stage: str
    in_flight: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    endpoint: str = ""
    latency: float = 0.0
    error: str = ""


class EmptyReplyError(BadReplyError):
    """A remote endpoint answered with empty text; retried a few times before it is accepted as is."""


@dataclass
class _Attempts:
    """Failed attempts of one request, per retry budget."""

    failures: int = 0  # 429, 5xx, timeouts, connection errors
    bad_replies: int = 0  # empty or malformed bodies


class LMClient:
    """Wraps a backend with the cache, limits, retries and accounting. One instance per run and loop.

    Retries, on two budgets. A transient failure (429, 5xx, timeout, connection error) is retried up to
    `settings.max_retries` times, waiting Retry-After when the server gave one, else exponential backoff
    with jitter. A bad reply (a body that is not usable, or empty text from a remote endpoint) is retried
    up to `settings.reply_retries` times; then an empty reply is accepted as it is (a model may really
    answer nothing) and a malformed one fails. Local backends get no timeout: their worker thread cannot
    be cancelled, so a timeout would only pile work up.
    """

    def __init__(
        self,
        lm: LM,
        settings: LMSettings | None = None,
        cache: ResponseCache | None = None,
        *,
        progress: Callable[[ClientEvent], None] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.lm = lm
        self.settings = settings or LMSettings()
        self.cache = cache
        self.progress = progress
        self.usage = UsageStats()
        self.in_flight = 0
        self.backoff_max = backoff_max
        self._exponential = wait_exponential_jitter(
            multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial
        )
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        self._rpm = AsyncTokenBucket(s) if (s := self.settings.requests_per_minute) else None
        self._tpm = AsyncTokenBucket(s) if (s := self.settings.tokens_per_minute) else None
        # Local backends run in a worker thread that cannot be cancelled: a timeout would only pile up work.
        self._local = bool(lm.local)
        self._own = {"requests": 0, "errors": 0, "latency": 0.0}

    @property
    def identity(self) -> str:
        return self.lm.identity

    def endpoint_stats(self) -> list[EndpointStats]:
        if isinstance(self.lm, ReportsEndpoints):
            return list(self.lm.endpoint_stats())
        done = self._own["requests"]
        mean = self._own["latency"] / done if done else 0.0
        return [EndpointStats(self.identity, int(done), int(self._own["errors"]), mean, self.in_flight)]

    def _emit(self, kind: EventKind, request: Request, **extra: object) -> None:
        if self.progress is not None:
            self.progress(ClientEvent(kind, request.stage, self.in_flight, **extra))  # type: ignore[arg-type]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        # Only RetryableLMError is retried (see `complete`); its retry_after is the server's wish, if any.
        if isinstance(exc, RetryableLMError) and exc.retry_after is not None:
            return min(max(float(exc.retry_after), 0.0), self.backoff_max)
        return float(self._exponential(state))

    async def complete(self, request: Request) -> Completion:
        usage = self.usage.stage(request.stage)
        usage.requests += 1
        key = cache_key(self.identity, request.prompt, request.decoding)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                usage.cache_hits += 1
                self._emit(
                    "cached",
                    request,
                    prompt_tokens=hit.prompt_tokens,
                    completion_tokens=hit.completion_tokens,
                )
                return hit if hit.cached else replace(hit, cached=True)

        attempts = _Attempts()

        def out_of_retries(state: RetryCallState) -> bool:
            """Counts the failure on its own budget; True when that budget is spent."""
            if isinstance(state.outcome.exception() if state.outcome else None, BadReplyError):
                attempts.bad_replies += 1
                return attempts.bad_replies > self.settings.reply_retries
            attempts.failures += 1
            return attempts.failures > self.settings.max_retries

        def on_retry(state: RetryCallState) -> None:
            usage.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            self._emit("retry", request, error=str(exc))

        async def attempt() -> Completion:
            completion = await self._send(request)
            if (
                not self._local
                and not completion.text.strip()
                and completion.finish_reason != "length"
                and attempts.bad_replies < self.settings.reply_retries
            ):
                raise EmptyReplyError("the endpoint returned empty text", retry_after=0.0)
            return completion

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableLMError),
            stop=out_of_retries,
            wait=self._wait,
            before_sleep=on_retry,
            reraise=True,
        )
        try:
            completion = await retrying(attempt)
        except RetryableLMError as exc:
            usage.errors += 1
            self._emit("failed", request, error=str(exc))
            tries = attempts.failures + attempts.bad_replies
            raise LMError(f"{request.stage} request failed after {tries} attempts: {exc}") from exc
        except LMError as exc:
            usage.errors += 1
            self._emit("failed", request, error=str(exc))
            raise
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        if self.cache is not None and completion.finish_reason != "error":
            self.cache.put(key, request, self.identity, completion)
        return completion

    async def _send(self, request: Request) -> Completion:
        """One attempt: limits, then the backend call under the concurrency limit and the timeout."""
        decoding = request.decoding
        estimate = len(request.prompt) / 4 + decoding.max_tokens  # rough, corrected after the reply
        if self._rpm is not None:
            await self._rpm.acquire(1)
        if self._tpm is not None:
            await self._tpm.acquire(estimate)
        async with self._semaphore:
            self.in_flight += 1
            self._emit("started", request)
            start = time.monotonic()
            try:
                if self._local:
                    completion = await self.lm.complete(request.prompt, decoding)
                else:
                    # The backend's own HTTP timeout normally fires first; this guards a trickling server.
                    async with asyncio.timeout(self.settings.timeout + 5.0):
                        completion = await self.lm.complete(request.prompt, decoding)
            except TimeoutError as exc:
                self._own["errors"] += 1
                raise RetryableLMError(f"no reply within {self.settings.timeout:g} s") from exc
            except LMError:
                self._own["errors"] += 1
                raise
            finally:
                self.in_flight -= 1
        latency = time.monotonic() - start
        self._own["requests"] += 1
        self._own["latency"] += latency
        if self._tpm is not None:
            self._tpm.adjust(completion.prompt_tokens + completion.completion_tokens - estimate)
        self._emit(
            "finished",
            request,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            endpoint=completion.endpoint,
            latency=latency,
        )
        return completion

    async def complete_many(self, requests: Sequence[Request]) -> list[Completion]:
        """All requests concurrently (within the limits); results in input order. If any fails for good,
        the others still finish and the first failure is raised."""
        results = await asyncio.gather(*(self.complete(r) for r in requests), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self.lm.aclose()


def one_error(group: BaseExceptionGroup) -> BaseException:
    """The one exception to raise for a task group of requests: the first that is not an LM failure (a bug or
    an I/O error keeps its type for the CLI), else one LMError counting the failed requests."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    other = [exc for exc in leaves if not isinstance(exc, LMError)]
    if other:
        return other[0]
    more = f" ({len(leaves) - 1} more requests failed too)" if len(leaves) > 1 else ""
    error = LMError(f"{leaves[0]}{more}")
    error.__cause__ = leaves[0]
    return error
