"""Continuous batching on llama.cpp's low-level API: many requests decoded together in one context.

One model, one context with `n_seq` sequences (slots) sharing a unified KV cache. A single decoding thread
owns every llama.cpp call. Each step it builds one `llama_decode` batch from
- the next-token step of every running sequence (one token each), then
- chunks of the prompts of newly admitted requests, up to `n_batch` tokens in all, so a long prompt is
  spread over several steps instead of stalling the others,
samples each sequence's next token with its own llama.cpp sampler chain, and finishes a request on its
end-of-generation token, its stop sequences or its max_tokens. A request waits in a queue until a slot is
free.

Decoding follows llama-cpp-python's `create_completion` rule for rule (the backend's behaviour before
batching): the same sampler chain (presence/frequency penalties over the reply, then greedy, or top-p,
temperature and the seeded distribution; llama.cpp's top-k, min-p, typical and repeat penalty are not
in the chain at all), the same stop-sequence search on the reply's bytes, the same hold-back while a
UTF-8 character is incomplete, the same text on every finish. With one slot the batches are the same as
the one-at-a-time backend's (prompt chunks of 512, then one token per step), so the tokens are identical.

Prefix reuse: the KV cells of a finished request's prompt stay tagged with its slot. A new request takes
the longest common token prefix with any slot (its own earlier prompt, or another slot's cells, shared
by `llama_memory_seq_cp` at no cost in a unified cache) and decodes only the rest. Prompts admitted
together that share a prefix (the stages' few-shot headers) do not each decode it: a prompt waits a step
while one ahead of it decodes the shared part, then takes those cells. The reply's cells are freed when
the request finishes, and the stale prompt cells when the slot takes a new request.

Numerics: llama.cpp's matrix kernels differ with the number of rows in a batch, so a greedy reply can
change with what it was batched with. A from-scratch rerun at a concurrency above 1 may therefore differ
slightly from an earlier run (as with vLLM); a resumed run takes every answered request from the run's
cache, and only the requests in flight at the interruption are decoded again (in another batch).

`batch_invariant=True` makes every request's logits bitwise independent of what it is batched with (and of
the concurrency), measured in benchmarks/embedded_determinism.py, by removing each row-count-dependent path:
- no extra buffer types: the repacked Q4_K kernels take rows in groups of 4 (gemm) and the rest one by one
  (gemv), which round differently;
- ggml's tiled K-quant matmul off (`GGML_CPU_TILED_MM=0`): it takes over from 8 rows on. ggml reads the
  switch once per process, at its first matrix product, so an engine decoding earlier in the same process
  without this setting leaves the tiled path on (a CLI run's engines all share its settings);
- one KV stream per sequence: in a unified cache a row's attention runs over every sequence's cells, and
  where its own cells sit among them changes the SIMD summation order; in its own stream they sit where
  they would alone, and the other sequences' rows are computed per stream;
- a prompt chunk (of >= 2 tokens, never leaving a 1-token remainder) is decoded in a call of its own and
  next-token rows only with other next-token rows: attention takes llamafile's sgemm for a stream with
  >= 2 rows in a call and vec_dot for one, so each row always meets the same kernel;
- prompt-prefix reuse from prompt cells only (decoded in prompt chunks), re-decoding at least the
  prompt's last 2 tokens; another slot's prefix (a shared few-shot header) is taken by copying its whole
  stream, since streams cannot share cells, when it is at least MIN_SHARED tokens longer than the own.
The Q5_0/Q8_0 products and a LoRA adapter's F32 ones were measured invariant as they are (one row or
many). The cost: stream copies instead of shared cells, and a call of its own per prompt chunk.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from selfinstruct.errors import LMError, UserError
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.llamacpp_load import load_model

PROMPT_CHUNK = 512  # tokens per decode call: llama-cpp-python's n_batch, so one slot batches as it did
MAX_SLOTS = 256  # llama.cpp's LLAMA_MAX_SEQ
MIN_SHARED = 32  # a prompt waits for another's decoding of a shared prefix only if it is at least this long
TILED_SWITCH = "GGML_CPU_TILED_MM"  # ggml reads it once per process, at its first matrix product


@dataclass(frozen=True)
class Generation:
    """One finished request."""

    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


def fit_prompt(tokens: list[int], max_tokens: int, n_ctx: int, bos: int | None) -> tuple[list[int], int]:
    """Cut the prompt's left side if it leaves too little room; returns (tokens, max_tokens that fit)."""
    reserve = min(max_tokens, n_ctx // 2)
    limit = n_ctx - reserve
    if len(tokens) > limit:
        keep_bos = bos is not None and tokens and tokens[0] == bos
        head = tokens[:1] if keep_bos else []
        tokens = head + tokens[len(tokens) - (limit - len(head)) :]
    return tokens, max(1, min(max_tokens, n_ctx - len(tokens)))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class ReplyText:
    """The reply's bytes and when it ends, by llama-cpp-python's `create_completion` rules: a stop
    sequence is looked for only when no UTF-8 character is incomplete, the first stop in the request's
    order that occurs cuts the text, and max_tokens counts the tokens generated so far."""

    def __init__(self, stop: tuple[str, ...], max_tokens: int) -> None:
        self.stops = [s.encode("utf-8") for s in stop]
        self.max_tokens = max_tokens
        self.data = bytearray()
        self.tokens = 0
        self._multibyte_fix = 0
        self.cut: int | None = None

    def add(self, piece: bytes) -> Literal["stop", "length"] | None:
        """Append one generated token's bytes; returns the finish reason once the reply is over."""
        self.tokens += 1
        self.data += piece
        tail = self.data[-3:]
        for k, char in enumerate(tail):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self._multibyte_fix = num - k
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
            return None
        found = [s for s in self.stops if s in self.data]
        if found:
            self.cut = self.data.index(found[0])
            return "stop"
        if self.tokens >= self.max_tokens:
            return "length"
        return None

    def text(self) -> str:
        data = self.data if self.cut is None else self.data[: self.cut]
        return bytes(data).decode("utf-8", errors="ignore")


@dataclass
class _Job:
    prompt: str
    decoding: Decoding
    future: concurrent.futures.Future[Generation] = field(default_factory=concurrent.futures.Future)


@dataclass
class _Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this sequence holds, from pos 0
    job: _Job | None = None
    prompt: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # to decode: the prompt's rest, or the last token
    reply: ReplyText | None = None
    sampler: Any = None
    max_tokens: int = 0
    order: int = 0  # admission number: prompts are decoded first come, first served


class BatchEngine:
    """Owns the model, the context and the decoding thread. `submit` is thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        n_seq: int,
        n_ctx_seq: int,
        threads: int,
        extra_buffer_types: bool | None = None,
        flash_attn: bool = False,
        lora: Path | None = None,
        unified: bool = True,
        batch_invariant: bool = False,
        llama_cpp: Any,
    ) -> None:
        self.llama_cpp = lc = llama_cpp
        self.invariant = batch_invariant
        if batch_invariant:
            # See the module's docstring: each setting removes one path whose result depends on the rows.
            extra_buffer_types, unified, flash_attn = False, False, False
            os.environ[TILED_SWITCH] = "0"
        self.n_seq = max(1, min(n_seq, MAX_SLOTS))
        self.n_ctx_seq = n_ctx_seq
        self.model = load_model(lc, path, extra_buffer_types=extra_buffer_types)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.bos = lc.llama_vocab_bos(self.vocab)
        params = lc.llama_context_default_params()
        # Every slot can hold a whole context, so a decode never runs out of cells.
        params.n_ctx = n_ctx_seq * self.n_seq
        params.n_batch = PROMPT_CHUNK
        params.n_ubatch = PROMPT_CHUNK
        params.n_seq_max = self.n_seq
        params.n_threads = threads
        params.n_threads_batch = threads
        # A unified cache lets one ubatch mix any sequences and lets them share prompt-prefix cells.
        params.kv_unified = unified
        self.unified = unified
        # As llama-cpp-python's Llama sets them, so one slot decodes exactly as the high-level API did.
        params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.yarn_attn_factor = 1.0
        params.yarn_beta_fast = 32.0
        params.yarn_beta_slow = 1.0
        self.ctx = lc.llama_init_from_model(self.model, params)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise LMError(f"llama.cpp could not create a context of {params.n_ctx} tokens for {path}")
        self.adapter = None
        if lora is not None:
            self.adapter = self._apply_lora(lora)
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(PROMPT_CHUNK, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._piece_buffer = ctypes.create_string_buffer(256)
        self._slots = [_Slot(seq_id=i) for i in range(self.n_seq)]
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.steps = 0
        self._admitted = 0
        self.reused_tokens = 0
        self.prompt_tokens_decoded = 0
        self._thread = threading.Thread(target=self._run, name="llama.cpp decoder", daemon=True)
        self._thread.start()

    def _apply_lora(self, lora: Path) -> Any:
        """Load a GGUF LoRA adapter onto the model and enable it on the context, at scale 1."""
        lc = self.llama_cpp
        adapter = lc.llama_adapter_lora_init(self.model, str(lora).encode("utf-8"))
        if adapter and lc.llama_set_adapters_lora(
            self.ctx, (lc.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(1.0)
        ):
            lc.llama_adapter_lora_free(adapter)
            adapter = None
        if not adapter:
            lc.llama_free(self.ctx)
            lc.llama_model_free(self.model)
            raise UserError(
                f"{lora}: llama.cpp could not apply this LoRA adapter (a GGUF adapter of this model?)"
            )
        return adapter

    # --- the caller's side -------------------------------------------------------------------------

    def submit(self, prompt: str, decoding: Decoding) -> concurrent.futures.Future[Generation]:
        job = _Job(prompt, decoding)
        with self._cond:
            if self._closing:
                raise LMError("the embedded model is closed")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def close(self) -> None:
        """Stop the thread (requests still queued or running fail), then free llama.cpp's objects."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        lc = self.llama_cpp
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        if self.adapter is not None:
            lc.llama_adapter_lora_free(self.adapter)
        lc.llama_model_free(self.model)

    # --- the decoding thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._next_step():
                pass
        except BaseException as exc:
            self._fail_all(LMError(f"the embedded model stopped: {exc}"))
            return
        self._fail_all(LMError("the embedded model was closed before this request finished"))

    def _next_step(self) -> bool:
        with self._cond:
            while not self._closing and not self._queue and not any(s.job for s in self._slots):
                self._cond.wait()
            if self._closing:
                return False
            free = sum(1 for s in self._slots if s.job is None)
            admitted: list[_Job] = []
            while self._queue and len(admitted) < free:
                job = self._queue.popleft()
                if not job.future.cancelled():
                    admitted.append(job)
        for job in admitted:
            self._admit(job)
        self._drop_cancelled()
        if any(s.job for s in self._slots):
            self._step()
        return True

    def _tokenize(self, text: str) -> list[int]:
        lc = self.llama_cpp
        data = text.encode("utf-8")
        size = len(data) + 8
        buffer = (lc.llama_token * size)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buffer, size, True, True)
        if n < 0:
            raise LMError(f"llama.cpp could not tokenize a prompt of {len(data)} bytes")
        return list(buffer[:n])

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self.llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buffer, 256, 0, False)
            piece = self._piece_buffer.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def _admit(self, job: _Job) -> None:
        lc = self.llama_cpp
        try:
            tokens = self._tokenize(job.prompt) if job.prompt else [self.bos]
        except LMError as exc:
            _settle(job, exc)
            return
        tokens, max_tokens = fit_prompt(tokens, job.decoding.max_tokens, self.n_ctx_seq, self.bos)
        # The free slot holding the longest prefix of this prompt; else the one holding least, so the
        # prefixes other slots hold stay available.
        free = [s for s in self._slots if s.job is None]
        slot = max(free, key=lambda s: (common_prefix(s.cached, tokens), -len(s.cached)))
        # Longest common prefix: this slot's own cells, or another slot's, shared without a copy.
        source, best = slot, common_prefix(slot.cached, tokens)
        for other in self._slots if self.unified else ():
            if other is not slot and (n := common_prefix(other.cached, tokens)) > best:
                source, best = other, n
        # The last prompt token is decoded again for its logits; batch-invariant, at least two are, so the
        # rest is a prompt chunk (a 1-token rest would be computed as a next-token row).
        keep = min(best, max(len(tokens) - (2 if self.invariant else 1), 0))
        if source is slot:
            lc.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1)
        else:
            lc.llama_memory_seq_rm(self.memory, slot.seq_id, 0, -1)
            lc.llama_memory_seq_cp(self.memory, source.seq_id, slot.seq_id, 0, keep)
        slot.cached = tokens[:keep]
        self.reused_tokens += keep
        slot.job, slot.prompt, slot.pending, slot.max_tokens = job, tokens, tokens[keep:], max_tokens
        self._admitted += 1
        slot.order = self._admitted
        slot.reply = ReplyText(job.decoding.stop, max_tokens)
        slot.sampler = self._sampler(job.decoding)

    def _sampler(self, decoding: Decoding) -> Any:
        """The chain llama-cpp-python built for the same settings, minus its no-op top-k/typical/min-p."""
        lc = self.llama_cpp
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        penalties = lc.llama_sampler_init_penalties(
            self.n_vocab, self.n_ctx_seq, 1.0, decoding.frequency_penalty, decoding.presence_penalty
        )
        lc.llama_sampler_chain_add(chain, penalties)
        if decoding.temperature <= 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            seed = lc.LLAMA_DEFAULT_SEED if decoding.seed is None else decoding.seed & 0xFFFFFFFF
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(decoding.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(decoding.temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.job is not None and slot.job.future.cancelled():
                self._release(slot)

    def _plan(self, active: list[_Slot]) -> list[tuple[_Slot, int]]:
        """(slot, tokens to feed) of this step: next-token steps first, then prompt chunks in admission
        order with what room is left."""
        active.sort(key=lambda s: (len(s.cached) < len(s.prompt), s.order))
        waiting = self._share_prefixes([s for s in active if len(s.cached) < len(s.prompt)])
        plan, n = [], 0
        for slot in active:
            take = min(len(slot.pending), PROMPT_CHUNK - n)
            if slot not in waiting and take > 0:
                plan.append((slot, take))
                n += take
        return plan

    def _plan_invariant(self, active: list[_Slot]) -> tuple[list[tuple[_Slot, int]], list[tuple[int, int]]]:
        """Batch-invariant: the first-admitted prompt's next chunk alone; else every next-token row, in
        sequence-id order, with a dummy row (sequence, position) for each idle sequence between them:
        with one stream per sequence llama.cpp puts only a run of consecutive sequence ids in one ubatch,
        and every further ubatch would read all the weights again."""
        prompts = sorted((s for s in active if len(s.pending) >= 2), key=lambda s: s.order)
        if prompts:
            slot = prompts[0]
            self._copy_prefix(slot)
            take = min(len(slot.pending), PROMPT_CHUNK)
            if len(slot.pending) - take == 1:
                take -= 1
            return [(slot, take)], []
        rows = sorted((s for s in active if s.pending), key=lambda s: s.seq_id)
        busy = {s.seq_id for s in rows}
        idle = range(rows[0].seq_id, rows[-1].seq_id + 1)
        # After the idle slot's prompt cells, which stay as they are.
        dummies = [(i, len(self._slots[i].cached)) for i in idle if i not in busy]
        return [(s, 1) for s in rows], dummies

    def _copy_prefix(self, slot: _Slot) -> None:
        """Batch-invariant: take a longer prompt prefix another stream holds (a few-shot header that a
        prompt ahead has decoded) by copying that whole stream, then dropping the cells past the prefix.
        Only prompt cells qualify: they were decoded in prompt chunks, as this prompt's would be."""
        limit = len(slot.prompt) - 2
        source, best = None, len(slot.cached) + MIN_SHARED - 1
        for other in self._slots:
            prompt_cells = other.cached[: len(other.prompt)] if other.job is not None else other.cached
            if other is not slot and (n := min(common_prefix(prompt_cells, slot.prompt), limit)) > best:
                source, best = other, n
        if source is None:
            return
        lc, memory = self.llama_cpp, self.memory
        lc.llama_memory_seq_rm(memory, slot.seq_id, 0, -1)
        lc.llama_memory_seq_cp(memory, source.seq_id, slot.seq_id, -1, -1)  # across streams: all of it
        lc.llama_memory_seq_rm(memory, slot.seq_id, best, -1)
        self.reused_tokens += best - len(slot.cached)
        slot.cached, slot.pending = slot.prompt[:best], slot.prompt[best:]

    def _step(self) -> None:
        lc = self.llama_cpp
        batch = self.batch
        fed: list[tuple[_Slot, int]] = []  # (slot, tokens fed this step)
        outputs: list[tuple[_Slot, int]] = []  # (slot, batch index of its logits)
        n = 0
        active = [s for s in self._slots if s.job is not None]
        plan, dummies = self._plan_invariant(active) if self.invariant else (self._plan(active), [])
        # In sequence-id order where there are dummy rows (next-token rows only, one per sequence).
        rows: list[tuple[int, _Slot | None, int]] = [(s.seq_id, s, take) for s, take in plan]
        if dummies:
            rows = sorted(rows + [(seq_id, None, pos) for seq_id, pos in dummies], key=lambda r: r[0])
        for seq_id, slot, take in rows:
            if slot is None:  # a dummy row: `take` is its position; no logits, its cell is freed below
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = self.bos, take, 1
                batch.seq_id[n][0], batch.logits[n] = seq_id, 0
                n += 1
                continue
            start = len(slot.cached)
            for i in range(take):
                batch.token[n] = slot.pending[i]
                batch.pos[n] = start + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = 0
                n += 1
            if take == len(slot.pending):
                batch.logits[n - 1] = 1
                outputs.append((slot, n - 1))
            fed.append((slot, take))
        batch.n_tokens = n
        status = lc.llama_decode(self.ctx, batch)
        self.steps += 1
        for seq_id, pos in dummies:
            lc.llama_memory_seq_rm(self.memory, seq_id, pos, -1)
        if status != 0:
            for slot, _ in fed:
                lc.llama_memory_seq_rm(self.memory, slot.seq_id, 0, -1)
                slot.cached = []
                self._finish(slot, LMError(f"llama.cpp failed to decode (status {status})"))
            return
        for slot, take in fed:
            if len(slot.cached) < len(slot.prompt):
                self.prompt_tokens_decoded += take
            slot.cached.extend(slot.pending[:take])
            del slot.pending[:take]
        for slot, index in outputs:
            token = lc.llama_sampler_sample(slot.sampler, self.ctx, index)
            self._advance(slot, token)

    def _share_prefixes(self, filling: list[_Slot]) -> list[_Slot]:
        """Give each prompt the cells of its prefix that another sequence has already decoded (a shared
        few-shot header is decoded once); returns the prompts that wait a step because a prompt ahead of
        them is about to decode a prefix they share."""
        if not self.unified:
            return []
        waiting = []
        for i, slot in enumerate(filling):
            start, limit = len(slot.cached), len(slot.prompt) - 1  # the last token is decoded for its logits
            source, best = None, start
            for other in self._slots:
                if other is not slot and (n := min(common_prefix(other.cached, slot.prompt), limit)) > best:
                    source, best = other, n
            if source is not None:
                self.llama_cpp.llama_memory_seq_cp(self.memory, source.seq_id, slot.seq_id, start, best)
                slot.cached = slot.prompt[:best]
                slot.pending = slot.prompt[best:]
                self.reused_tokens += best - start
            ahead = filling[:i]
            if any(
                min(common_prefix(a.prompt, slot.prompt), limit) >= len(slot.cached) + MIN_SHARED
                and len(a.cached) < len(a.prompt)
                for a in ahead
            ):
                waiting.append(slot)
        return waiting

    def _advance(self, slot: _Slot, token: int) -> None:
        reply = slot.reply
        assert reply is not None
        if self.llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(slot, "stop")
            return
        finish = reply.add(self._piece(token))
        if finish is None and len(slot.cached) + 1 >= self.n_ctx_seq:
            finish = "length"  # the context is full (only a held-back UTF-8 character can get here)
        if finish is not None:
            self._finish(slot, finish)
        else:
            slot.pending = [token]

    def _finish(self, slot: _Slot, outcome: Literal["stop", "length"] | LMError) -> None:
        job, reply = slot.job, slot.reply
        assert job is not None and reply is not None
        if isinstance(outcome, LMError):
            _settle(job, outcome)
        else:
            _settle(job, Generation(reply.text(), outcome, len(slot.prompt), reply.tokens))
        self._release(slot)

    def _release(self, slot: _Slot) -> None:
        """Free the reply's KV cells; the prompt's stay as a prefix for later requests."""
        keep = min(len(slot.cached), len(slot.prompt))
        self.llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1)
        slot.cached = slot.cached[:keep]
        if slot.sampler is not None:
            self.llama_cpp.llama_sampler_free(slot.sampler)
        slot.job, slot.reply, slot.sampler, slot.pending = None, None, None, []

    def _fail_all(self, error: LMError) -> None:
        with self._cond:
            queued, self._queue = list(self._queue), deque()
        for job in queued:
            _settle(job, error)
        for slot in self._slots:
            if slot.job is not None:
                _settle(slot.job, error)
                if slot.sampler is not None:
                    self.llama_cpp.llama_sampler_free(slot.sampler)
                slot.job, slot.reply, slot.sampler = None, None, None


def _settle(job: _Job, outcome: Generation | BaseException) -> None:
    """Set the caller's result unless the caller has given up (cancelled) meanwhile."""
    try:
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass
