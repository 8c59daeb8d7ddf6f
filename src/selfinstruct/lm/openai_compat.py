"""Any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, OpenAI itself), on one or several
endpoints.

Endpoint choice: the healthy endpoint with the fewest outstanding requests (ties: the lowest mean
latency, then the order given). An endpoint that fails (connection error, 5xx, timeout) rests for
`endpoint_backoff` seconds and the failure is raised as retryable with `retry_after=0`, so the client's
next attempt goes at once to another endpoint. When every endpoint rests, the one that recovers first
is used (and the client's exponential backoff paces the attempts).

Authentication, per endpoint: credentials written into its URL (`http://user:secret@host/v1`) are sent
as Basic auth, as curl sends them (a reverse proxy in front of the server usually expects that);
otherwise the API key, if one is set, as `Bearer`. The URL is used, stored and shown without them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi

from selfinstruct.errors import BadReplyError, LMError, RetryableLMError
from selfinstruct.lm.base import Completion, Decoding, EndpointStats, FinishReason, apply_stops
from selfinstruct.lm.credentials import public_url, split_credentials
from selfinstruct.lm.settings import LMSettings

MAX_API_STOPS = 4  # the OpenAI API rejects more; the rest are applied here by truncation
_RETRYABLE_4XX = {408, 409, 429}


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date (`headers`
    must look names up case-insensitively, as aiohttp's do)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _as_int(value: object) -> int:
    """A token count from the reply's JSON: a number or a numeric string, else 0."""
    if not isinstance(value, (int, float, str)):  # null, a list, an object: what int() would reject
        return 0
    try:
        return max(0, int(value))
    except (ValueError, OverflowError):  # "abc", or inf/Infinity from a sloppy server
        return 0


def parse_reply(data: object, chat: bool, stops: tuple[str, ...]) -> tuple[str, FinishReason, int, int]:
    """Text, finish reason and token counts from a reply body, tolerating missing fields.
    Raises BadReplyError when the body has no usable choice."""
    if not isinstance(data, dict):
        raise BadReplyError("the reply is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadReplyError("the reply has no choices")
    choice = choices[0]
    if chat:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
    else:
        text = choice.get("text")
    text = text if isinstance(text, str) else ""
    finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    text, cut = apply_stops(text, stops)
    if cut:
        finish = "stop"
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return text, finish, _as_int(usage.get("prompt_tokens")), _as_int(usage.get("completion_tokens"))


@dataclass
class _Endpoint:
    url: str  # without credentials: this is what messages and the summary show
    authorization: str | None = None  # the header value sent to this endpoint
    outstanding: int = 0
    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    resting_until: float = 0.0

    @property
    def mean_latency(self) -> float:
        return self.latency_sum / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes


class OpenAICompatLM:
    """`api="completion"` posts the prompt to /completions; `api="chat"` posts it as one user message to
    /chat/completions. The reply is parsed the same way in both modes."""

    local = False

    def __init__(self, settings: LMSettings) -> None:
        if not settings.base_url:
            raise LMError("the openai backend needs at least one --base-url")
        self.settings = settings
        key = os.environ.get(settings.api_key_env, "").strip() if settings.api_key_env else ""
        self._secrets = [key] if key else []
        self._endpoints = [self._endpoint(url, key) for url in settings.base_url]
        self._model = settings.model
        timeout = settings.timeout
        # No total limit (a long generation may stream for a while); each phase has the --timeout.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._model_lock = asyncio.Lock()

    def _endpoint(self, url: str, key: str) -> _Endpoint:
        public, credentials = split_credentials(url)
        if credentials is None:
            return _Endpoint(public.rstrip("/"), f"Bearer {key}" if key else None)
        pair = f"{credentials.username}:{credentials.password}".encode()
        token = base64.b64encode(pair).decode("ascii")
        # Whatever could show the password in an error message is masked (see `_clean`).
        self._secrets += [s for s in (credentials.password, token) if s]
        return _Endpoint(public.rstrip("/"), f"Basic {token}")

    def _client(self) -> aiohttp.ClientSession:
        """The session (made on first use, inside the running loop). aiohttp's C HTTP parser costs about a
        third of the CPU per request of httpx/httpcore: at 64 requests in flight on 2 cores that is what
        keeps the model busy. The connection limit is the client's concurrency (per host, so each
        endpoint gets that many)."""
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = True
            if any(e.url.startswith("https:") for e in self._endpoints):
                tls = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=max(1, self.settings.concurrency), ssl=tls, ttl_dns_cache=300
            )
            # No session-wide Authorization: each endpoint sends its own (see `_call`).
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False)
        return self._session

    async def _call(self, endpoint: _Endpoint, method: str, url: str, body: bytes | None = None) -> _Reply:
        """One HTTP exchange. Transport failures rest the endpoint."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if endpoint.authorization:
            headers["Authorization"] = endpoint.authorization
        endpoint.outstanding += 1
        try:
            async with self._client().request(method, url, data=body, headers=headers) as response:
                return _Reply(response.status, response.headers, await response.read())
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            raise self._fail(endpoint, f"timed out after {self.settings.timeout:g} s") from exc
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise LMError(f"{url}: unsupported URL (use http:// or https://)") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._fail(endpoint, f"connection error ({type(exc).__name__})") from exc
        finally:
            endpoint.outstanding -= 1

    @property
    def identity(self) -> str:
        # Fixed at construction (the cache key must not change once /models has been asked).
        return f"openai:{self.settings.model or 'server-default'}:{self.settings.api}"

    def endpoint_stats(self) -> list[EndpointStats]:
        return [
            EndpointStats(e.url, e.requests, e.errors, e.mean_latency, e.outstanding) for e in self._endpoints
        ]

    def _pick(self) -> _Endpoint:
        now = time.monotonic()
        healthy = [e for e in self._endpoints if e.resting_until <= now]
        if not healthy:
            return min(self._endpoints, key=lambda e: e.resting_until)
        return min(healthy, key=lambda e: (e.outstanding, e.mean_latency))

    def _fail(self, endpoint: _Endpoint, message: str) -> RetryableLMError:
        endpoint.errors += 1
        endpoint.resting_until = time.monotonic() + self.settings.endpoint_backoff
        others = any(e is not endpoint and e.resting_until <= time.monotonic() for e in self._endpoints)
        # Another endpoint is up: retry there at once; otherwise let the client back off.
        return RetryableLMError(f"{endpoint.url}: {message}", retry_after=0.0 if others else None)

    def _clean(self, text: str) -> str:
        """A server's error text with every secret we sent masked (some servers echo the header)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _resolve_model(self) -> str:
        """Local servers usually serve one model: ask /models when no --model was given."""
        if self._model:
            return self._model
        async with self._model_lock:  # the first burst of requests asks once
            if self._model:
                return self._model
            endpoint = self._pick()
            response = await self._call(endpoint, "GET", f"{endpoint.url}/models")
            if 400 <= response.status < 500 and response.status not in _RETRYABLE_4XX:
                raise LMError(f"{endpoint.url}/models answered HTTP {response.status}; pass --model")
            try:
                model = json.loads(response.content)["data"][0]["id"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise BadReplyError(f"{endpoint.url}/models did not name a model; pass --model") from exc
            if not isinstance(model, str) or not model:
                raise LMError(f"{endpoint.url}/models did not name a model; pass --model")
            self._model = model
            return model

    def _payload(self, model: str, prompt: str, decoding: Decoding) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": model,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "max_tokens": decoding.max_tokens,
            "presence_penalty": decoding.presence_penalty,
            "frequency_penalty": decoding.frequency_penalty,
            "n": 1,
        }
        if decoding.stop:
            payload["stop"] = list(decoding.stop[:MAX_API_STOPS])
        if decoding.seed is not None:
            payload["seed"] = decoding.seed
        if self.settings.api == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
        else:
            payload["prompt"] = prompt
        return payload

    async def complete(self, prompt: str, decoding: Decoding) -> Completion:
        model = await self._resolve_model()
        chat = self.settings.api == "chat"
        payload = self._payload(model, prompt, decoding)
        endpoint = self._pick()
        url = f"{endpoint.url}/chat/completions" if chat else f"{endpoint.url}/completions"
        start = time.monotonic()
        response = await self._call(endpoint, "POST", url, json.dumps(payload).encode("utf-8"))
        status = response.status
        if status >= 500:
            raise self._fail(endpoint, f"server error {status}")
        if status in _RETRYABLE_4XX:
            endpoint.errors += 1
            retry_after = parse_retry_after(response.headers)
            raise RetryableLMError(f"{endpoint.url}: HTTP {status}", retry_after=retry_after)
        if status >= 400:
            endpoint.errors += 1
            text = response.content[:300].decode("utf-8", "replace")
            detail = self._clean(text).replace("\n", " ")
            raise LMError(f"{url} refused the request: HTTP {status}: {detail}")
        try:
            data = json.loads(response.content)
            text, finish, prompt_tokens, completion_tokens = parse_reply(data, chat, decoding.stop)
        except (ValueError, BadReplyError) as exc:
            endpoint.errors += 1
            reason = str(exc) if isinstance(exc, BadReplyError) else "the body is not JSON"
            raise BadReplyError(f"{endpoint.url}: unusable reply ({reason})") from exc
        endpoint.requests += 1
        endpoint.latency_sum += time.monotonic() - start
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            endpoint=endpoint.url,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# What the backend registry (`lm/factory.py`) asks of every backend module.
def build(settings: LMSettings) -> OpenAICompatLM:
    return OpenAICompatLM(settings)


def eos_text(settings: LMSettings) -> str | None:
    """A server does not say which end-of-sequence text its model was trained with."""
    return None


def public_endpoints(settings: LMSettings) -> list[str]:
    """The endpoints as reports may show them: without a password written into the URL."""
    return [public_url(url) for url in settings.base_url]
