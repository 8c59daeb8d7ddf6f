"""The client every pipeline stage talks to: cache first, then a concurrency-limited, rate-limited,
timed-out and retried call to a backend, with token usage counted per stage, and the run's budget checked
before each request is sent (the one place every request passes)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from selfinstruct.errors import (
    BadReplyError,
    BudgetExceeded,
    EmptyReplyError,
    LMError,
    RetryableLMError,
    UserError,
)
from selfinstruct.lm.base import LM, Completion, EndpointStats, ReportsEndpoints, Request, cache_key
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.limits import AsyncTokenBucket
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.tokens import TokenCounter, counter_for

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


def format_usd(amount: float) -> str:
    """Money as people read it: whole dollars from $100, cents from 10 cents, two significant digits
    below (a small run's cost is still told apart from zero)."""
    if amount >= 100:
        return f"${amount:,.0f}"
    if amount >= 0.1 or amount <= 0:
        return f"${max(amount, 0.0):.2f}"
    digits = min(1 - math.floor(math.log10(amount)), 8)
    return f"${amount:.{digits}f}"


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, prompt and completion: the user's, never a built-in table."""

    input: float
    output: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@dataclass
class Spent:
    """Requests answered by the LM (cache hits excluded) and their tokens."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Spent) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass
class Ledger:
    """What a run has spent, per stage and per endpoint, over all its sessions (the session stores it in
    the run after every reply, so a resumed run starts from it)."""

    stages: dict[str, Spent] = field(default_factory=dict)
    endpoints: dict[str, Spent] = field(default_factory=dict)

    def record(self, stage: str, endpoint: str, prompt_tokens: int, completion_tokens: int) -> None:
        one = Spent(1, prompt_tokens, completion_tokens)
        self.stages.setdefault(stage, Spent()).add(one)
        self.endpoints.setdefault(endpoint, Spent()).add(one)

    @property
    def total(self) -> Spent:
        total = Spent()
        for spent in self.stages.values():
            total.add(spent)
        return total

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            "stages": {k: asdict(v) for k, v in sorted(self.stages.items())},
            "endpoints": {k: asdict(v) for k, v in sorted(self.endpoints.items())},
        }

    @classmethod
    def from_dict(cls, data: object) -> Ledger:
        """A stored ledger; anything unreadable counts as nothing spent."""
        ledger = cls()
        if not isinstance(data, Mapping):
            return ledger
        for name, target in (("stages", ledger.stages), ("endpoints", ledger.endpoints)):
            rows = data.get(name)
            for key, row in rows.items() if isinstance(rows, Mapping) else ():
                if isinstance(row, Mapping):
                    target[str(key)] = Spent(
                        *(int(row.get(f, 0) or 0) for f in ("requests", "prompt_tokens", "completion_tokens"))
                    )
        return ledger


@dataclass(frozen=True)
class _Hold:
    """The most one admitted request can spend: its prompt tokens + its max_tokens, and their price."""

    tokens: int
    cost: float


class Budget:
    """The run's spending (a `Ledger`, priced at `prices`) and its limits, shared by the run's clients.

    A request is admitted only if the spending so far, plus the bound of every admitted request still
    unanswered, plus its own bound (prompt tokens + max_tokens) stays within the limits; requests are
    admitted in the order they ask. One that does not fit waits while others are in flight (their replies
    usually spend far less than their bound); when nothing is in flight and it still does not fit, the
    budget is spent: it and every later request raise `BudgetExceeded`, and nothing more is sent.
    """

    def __init__(
        self,
        ledger: Ledger | None = None,
        *,
        prices: Prices | None = None,
        max_cost: float | None = None,
        max_total_tokens: int | None = None,
        on_spend: Callable[[Ledger], None] | None = None,
    ) -> None:
        if max_cost is not None and prices is None:
            raise ValueError("a cost limit needs prices")
        self.ledger = ledger or Ledger()
        self.prices = prices
        self.max_cost = max_cost
        self.max_total_tokens = max_total_tokens
        self.on_spend = on_spend
        self.stopped: Literal["cost", "tokens"] | None = None
        self._held = 0  # admitted requests not answered yet
        self._held_tokens = 0
        self._held_cost = 0.0
        self._queue: deque[object] = deque()
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def limited(self) -> bool:
        return self.max_cost is not None or self.max_total_tokens is not None

    def cost(self, spent: Spent) -> float | None:
        """The price of `spent` at the run's prices; None without prices."""
        return None if self.prices is None else self.prices.cost(spent.prompt_tokens, spent.completion_tokens)

    @property
    def spent_cost(self) -> float | None:
        return self.cost(self.ledger.total)

    def _bound(self, prompt_tokens: int, max_tokens: int) -> _Hold:
        cost = self.prices.cost(prompt_tokens, max_tokens) if self.prices is not None else 0.0
        return _Hold(prompt_tokens + max_tokens, cost)

    def _over(self, hold: _Hold, *, alone: bool = False) -> Literal["cost", "tokens"] | None:
        """Which limit admitting `hold` could pass (`alone`: with nothing spent or held)."""
        total = self.ledger.total
        cost = self.cost(total) or 0.0
        tokens = 0 if alone else total.tokens + self._held_tokens
        money = 0.0 if alone else cost + self._held_cost
        if self.max_cost is not None and money + hold.cost > self.max_cost:
            return "cost"
        if self.max_total_tokens is not None and tokens + hold.tokens > self.max_total_tokens:
            return "tokens"
        return None

    def check_alone(self, prompt_tokens: int, max_tokens: int, what: str) -> None:
        """Refuse at once (a user's mistake, exit 2) a budget too small for even one request like this."""
        hold = self._bound(prompt_tokens, max_tokens)
        over = self._over(hold, alone=True)
        if over is None:
            return
        size = f"{prompt_tokens:,} prompt tokens + {max_tokens:,} max_tokens"
        if over == "cost":
            raise UserError(
                f"--max-cost {format_usd(self.max_cost or 0)}: less than one {what} request "
                f"({format_usd(hold.cost)}: {size}); raise it"
            )
        raise UserError(
            f"--max-total-tokens {self.max_total_tokens:,}: less than one {what} request ({size}); raise it"
        )

    def stop_line(self, instructions: int | None = None) -> str:
        """The one line a stopped run ends with."""
        after = f" after {instructions} instructions" if instructions is not None else ""
        if self.stopped == "tokens":
            return (
                f"budget of {self.max_total_tokens:,} tokens reached{after}; "
                "rerun with a higher --max-total-tokens to continue"
            )
        return (
            f"budget of {format_usd(self.max_cost or 0)} reached{after}; "
            "rerun with a higher --max-cost to continue"
        )

    async def admit(self, prompt_tokens: int, max_tokens: int) -> _Hold:
        """Wait for this request's turn and room in the budget; `BudgetExceeded` once there is none."""
        hold = self._bound(prompt_tokens, max_tokens)
        ticket = object()
        self._queue.append(ticket)
        try:
            while True:
                if self.stopped is not None:
                    raise BudgetExceeded(self.stop_line())
                if self._queue[0] is ticket:
                    over = self._over(hold)
                    if over is None:
                        break
                    if not self._held:  # nothing in flight can leave room: the budget is spent
                        self.stopped = over
                        raise BudgetExceeded(self.stop_line())
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            self._queue.remove(ticket)
            self._wake()  # the next in line may go (or learn that the budget is spent)
        self._held += 1
        self._held_tokens += hold.tokens
        self._held_cost += hold.cost
        return hold

    def release(self, hold: _Hold) -> None:
        """An admitted request is over (answered, failed or cancelled): its bound no longer counts."""
        self._held -= 1
        self._held_tokens -= hold.tokens
        self._held_cost -= hold.cost
        self._wake()

    def record(self, stage: str, endpoint: str, prompt_tokens: int, completion_tokens: int) -> None:
        """A reply's tokens, counted before the reply is cached (a crash in between resends and re-counts it:
        a request paid twice is counted twice)."""
        self.ledger.record(stage, endpoint, prompt_tokens, completion_tokens)
        if self.on_spend is not None:
            self.on_spend(self.ledger)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


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
        budget: Budget | None = None,
        token_counter: TokenCounter | None = None,
    ) -> None:
        self.lm = lm
        self.settings = settings or LMSettings()
        self.cache = cache
        self.progress = progress
        self.usage = UsageStats()
        # Shared by the run's clients (the judge's too); `spend_label` tells their endpoints apart in it.
        self.budget = budget
        self.spend_label = ""
        self._counter = token_counter
        self._counter_lock = asyncio.Lock()
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

    async def prompt_tokens(self, prompt: str) -> int:
        """The prompt's tokens by this model's tokenizer where it is known offline (`lm.tokens`), else an
        approximation. The tokenizer loads once, off the event loop."""
        if self._counter is None:
            async with self._counter_lock:
                if self._counter is None:
                    self._counter = await asyncio.to_thread(counter_for, self.settings)
        return self._counter.count(prompt)

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
        if self.budget is None or not self.budget.limited:
            return await self._complete(request, key, usage)
        try:
            prompt_tokens = await self.prompt_tokens(request.prompt)
            hold = await self.budget.admit(prompt_tokens, request.decoding.max_tokens)
        except BudgetExceeded:
            usage.requests -= 1  # never sent
            raise
        try:
            return await self._complete(request, key, usage)
        finally:
            self.budget.release(hold)

    async def _complete(self, request: Request, key: str, usage: StageUsage) -> Completion:
        """Send a request (a cache miss) with retries; count, record and cache its reply."""
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
            completion: Completion = await retrying(attempt)
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
        if self.budget is not None:
            where = (completion.endpoint or self.identity) + self.spend_label
            self.budget.record(request.stage, where, completion.prompt_tokens, completion.completion_tokens)
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
