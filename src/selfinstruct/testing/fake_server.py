"""A small OpenAI-compatible HTTP server for tests and benchmarks, with deterministic fault injection.

It speaks `/v1/completions`, `/v1/chat/completions` and `/v1/models` on 127.0.0.1 from an asyncio loop in a
background thread (one loop, no thread per connection: 64+ keep-alive clients each wait out `latency`
concurrently at little CPU cost). The HTTP/1.1 handling is the minimum a client like httpx needs.
Tokens are whitespace-separated words: a reply longer than `max_tokens` words is cut there with
finish_reason "length"; stop sequences cut the reply first, as a real server stops generating at them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from selfinstruct.lm import eventloop

Responder = Callable[[str, dict[str, Any]], str]

_WORD = re.compile(r"\S+")
# OpenAI rejects more than four stop sequences; the fake does too, so tests catch a client sending more.
MAX_STOPS = 4


def echo_responder(prompt: str, body: dict[str, Any]) -> str:
    """Default responder: repeats the prompt's last non-empty line (deterministic, cheap)."""
    lines = [line for line in prompt.splitlines() if line.strip()]
    return f" {lines[-1].strip()}" if lines else ""


def count_tokens(text: str) -> int:
    """Whitespace-separated words (what `_WORD` matches), counted without building match objects."""
    return len(text.split())


def cut_reply(text: str, max_tokens: int, stops: list[str]) -> tuple[str, str]:
    """Apply stop sequences, then the length limit. Returns (text, finish_reason)."""
    cut_at = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut_at >= 0:
        text = text[:cut_at]
    words = list(_WORD.finditer(text))
    if len(words) > max_tokens:
        end = words[max_tokens - 1].end() if max_tokens > 0 else 0
        return text[:end], "length"
    return text, "stop"


@dataclass(frozen=True)
class FaultPlan:
    """Shares of requests (0..1) that fail in each way, drawn from a seeded RNG in arrival order.

    `sticky_garbage` is different: it picks prompts, not requests. A picked prompt (by a hash of the
    prompt and `seed`; only among prompts containing `sticky_match`) gets a malformed body that depends
    only on the prompt, the same one each time, for its first `sticky_times` requests (every request
    when None), as a server that chokes on one particular input does. Picked prompts are answered
    before the random faults are drawn.
    """

    seed: int = 0
    rate_limit: float = 0.0  # 429 with a Retry-After header
    server_error: float = 0.0  # 500
    slow: float = 0.0  # answers only after `slow_delay` seconds (beyond the client's timeout)
    empty: float = 0.0  # a well-formed reply with empty text
    garbage: float = 0.0  # HTTP 200 with a body that is not JSON
    retry_after: float = 0.05  # seconds to wait, sent with each 429
    # How the wait is written: Retry-After in seconds, retry-after-ms (OpenAI's), or Retry-After as an
    # HTTP date (whole seconds, so the wait is rounded up to the next second).
    retry_after_format: Literal["seconds", "ms", "date"] = "seconds"
    slow_delay: float = 5.0
    sticky_garbage: float = 0.0
    sticky_times: int | None = None
    sticky_match: str = ""

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for name in ("rate_limit", "server_error", "slow", "empty", "garbage"):
            share = getattr(self, name)
            if roll < share:
                return name
            roll -= share
        return None

    def retry_after_header(self) -> dict[str, str]:
        if self.retry_after_format == "ms":
            return {"retry-after-ms": f"{self.retry_after * 1000:g}"}
        if self.retry_after_format == "date":
            when = int(time.time() + self.retry_after) + 1  # HTTP dates have whole seconds
            return {"Retry-After": email.utils.formatdate(when, usegmt=True)}
        return {"Retry-After": f"{self.retry_after:g}"}

    def sticky(self, prompt: str) -> bytes | None:
        """The prompt's own malformed body if it is a picked one, else None."""
        if not self.sticky_garbage or self.sticky_match not in prompt:
            return None
        digest = hashlib.sha256(f"{self.seed}\x00{prompt}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.sticky_garbage:
            return None
        # Several kinds of malformed, each a pure function of the prompt.
        kinds = [
            b'{"id": "cmpl-1", "object": "text_completion", "choices": [{"text": "cut off',
            b'{"id": "cmpl-1", "object": "text_completion", "choices": []}',
            b'{"error": null, "choices": "' + digest[8:16].hex().encode() + b'"}',
            b"<html><body>502 Bad Gateway " + digest[8:12].hex().encode() + b"</body></html>",
        ]
        return kinds[digest[16] % len(kinds)]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class FakeOpenAIServer:
    """Context manager running the fake server; `.base_url` ends in `/v1`.

    `stop()` kills it abruptly: the listening socket closes and open connections are aborted, so requests
    in flight get a connection error (as when a real server dies mid-run).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "fake-model",
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.responder = responder or echo_responder
        self.latency = latency
        self.faults = faults or FaultPlan()
        self.model = model
        # The Authorization header every request must carry (401 otherwise): Bearer key or Basic auth.
        self.authorization: str | None = None
        if api_key is not None:
            self.authorization = f"Bearer {api_key}"
        if basic_auth is not None:
            self.authorization = "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
        self.host = host
        self.requests_served = 0  # replies sent with a completion (faults excluded)
        self.requests_received = 0
        # Wall-clock (time.time) of the first completion request and of the last reply: the span in which
        # the "model" was in use, for throughput measurements that leave out the client's start-up.
        self.first_request_at: float | None = None
        self.last_reply_at: float | None = None
        self.faults_injected: dict[str, int] = {}
        self._sticky_seen: dict[str, int] = {}  # requests so far per sticky prompt
        self.bodies: list[dict[str, Any]] = []  # every JSON request body received, in order
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._stopped = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}/v1"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if not self._thread.is_alive() and not self._ready.is_set():
            self._thread.start()
            self._ready.wait(10)
            if self._error is not None:
                raise RuntimeError(f"fake server failed to start: {self._error}")
        return self

    def _run(self) -> None:
        loop = eventloop.new_event_loop()  # uvloop where installed (vLLM's server uses it too)
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self.host, self._port, backlog=512)
            )
            self._port = int(self._server.sockets[0].getsockname()[1])
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        """Stop serving at once; connections in flight are cut."""
        if self._stopped or self._loop is None:
            self._stopped = True
            return
        self._stopped = True
        done = threading.Event()

        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            assert self._loop is not None
            self._loop.call_soon(self._loop.stop)
            done.set()

        self._loop.call_soon_threadsafe(shutdown)
        done.wait(5)
        self._thread.join(5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not self._stopped:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) < 2:
                    return
                method, path = parts[0], parts[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                status, payload, extra = await self._handle(method, path.rstrip("/"), headers, raw)
                if status < 0 or self._stopped:
                    return
                writer.write(self._encode(status, payload, extra))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or stop() cut the connection
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    @staticmethod
    def _encode(status: int, payload: dict[str, Any] | str | bytes, extra: dict[str, str]) -> bytes:
        if isinstance(payload, bytes):  # sent as is, labelled JSON (a malformed "JSON" reply)
            body, ctype = payload, "application/json"
        else:
            body = (json.dumps(payload) if isinstance(payload, dict) else payload).encode("utf-8")
            ctype = "application/json" if isinstance(payload, dict) else "text/html"
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    async def _handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any] | str | bytes, dict[str, str]]:
        arrived = time.monotonic()
        if self.authorization is not None and headers.get("authorization") != self.authorization:
            # Echoed, as some real servers do ("Incorrect API key provided: sk-..."): a client must not
            # pass it on into its own error messages.
            sent = headers.get("authorization", "")
            return 401, {"error": {"message": f"invalid credentials: Authorization {sent!r}"}}, {}
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}, {}
        if method != "POST" or not path.endswith("/completions"):
            return 404, {"error": {"message": "not found"}}, {}
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            return 400, {"error": {"message": "invalid JSON body"}}, {}
        with self._lock:
            self.bodies.append(body)
            if self.first_request_at is None:
                self.first_request_at = time.time()
        # The reply is computed while the "model" works: latency counts from the request's arrival, so
        # the fake's own CPU does not add to it (under a burst of requests it would otherwise pile up).
        result = await self._answer(path, body)
        wait = arrived + self.latency - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        status, payload, _ = result
        if status == 200 and isinstance(payload, dict) and "choices" in payload:
            with self._lock:  # counted when the reply goes out (stop() during the wait cuts it)
                self.requests_served += 1
                payload["id"] = f"cmpl-{self.requests_served}"
                self.last_reply_at = time.time()
        return result

    def _next_fault(self, prompt: str) -> str | None:
        with self._lock:
            self.requests_received += 1
            if self.faults.sticky(prompt) is not None:
                seen = self._sticky_seen[prompt] = self._sticky_seen.get(prompt, 0) + 1
                times = self.faults.sticky_times
                if times is None or seen <= times:
                    self.faults_injected["sticky_garbage"] = self.faults_injected.get("sticky_garbage", 0) + 1
                    return "sticky_garbage"
            fault = self.faults.draw(self._rng)
            if fault:
                self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            return fault

    async def _answer(
        self, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | str | bytes, dict[str, str]]:
        chat = path.endswith("/chat/completions")
        if chat:
            messages = body.get("messages") or []
            last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
            prompt = str(last.get("content", ""))
        else:
            prompt = str(body.get("prompt", ""))
        stops = body.get("stop") or []
        if isinstance(stops, str):
            stops = [stops]
        if len(stops) > MAX_STOPS:
            return 400, {"error": {"message": f"at most {MAX_STOPS} stop sequences are allowed"}}, {}
        fault = self._next_fault(prompt)
        if fault == "sticky_garbage":
            return 200, self.faults.sticky(prompt) or b"", {}
        if fault == "rate_limit":
            return 429, {"error": {"message": "rate limited"}}, self.faults.retry_after_header()
        if fault == "server_error":
            return 500, {"error": {"message": "internal error"}}, {}
        if fault == "garbage":
            return 200, "<html>upstream hiccup</html>", {}
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_delay)
        reply = "" if fault == "empty" else self.responder(prompt, body)
        max_tokens = int(body.get("max_tokens") or 16)
        text, finish = cut_reply(reply, max_tokens, [str(s) for s in stops])
        usage = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        reply_body = {
            "id": "",  # numbered when sent
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [choice],
            "usage": usage,
        }
        return 200, reply_body, {}
