"""The `transformers` backend: a local Hugging Face causal LM on CPU or CUDA, batching what arrives together.

Requests go into an asyncio queue drained by one worker: whatever is waiting (after a few milliseconds for
the rest of a burst to arrive) is grouped by identical decoding settings and decoded `batch_size` prompts
per `generate` call, left-padded. Greedy outputs of a batch equal one-by-one greedy outputs (tested).

Decoding maps to OpenAI semantics:
- temperature 0 is greedy; otherwise sampling with `temperature` and `top_p`, top-k off.
- presence_penalty / frequency_penalty: transformers only has `repetition_penalty` (multiplicative, over
  prompt and output alike), which is a different thing. We add a small logits processor that does what
  OpenAI documents and vLLM implements: subtract `presence` once and `frequency` per occurrence from the
  logits of tokens already in the *generated* part (the prompt is not penalised).
- stop sequences end generation early (transformers' `stop_strings` criteria) and the decoded text is cut
  at the earliest one.
On CUDA, when many prompts wait and no penalty is asked, the continuous batching manager of transformers
(`init_continuous_batching`) decodes them instead of padded static batches; stop sequences are then applied
to the text afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.errors import UserError
from selfinstruct.lm.base import Completion, Decoding, FinishReason, LMError
from selfinstruct.lm.openai_compat import apply_stops
from selfinstruct.lm.settings import LMSettings

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclass
class _Pending:
    prompt: str
    decoding: Decoding
    future: asyncio.Future[Completion] = field(repr=False)


def _penalty_processor(prompt_length: int, presence: float, frequency: float) -> Any:
    import torch
    from transformers import LogitsProcessor

    class OpenAIPenalties(LogitsProcessor):
        """OpenAI presence/frequency penalties over the generated tokens only."""

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            generated = input_ids[:, prompt_length:]
            if generated.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            return scores - frequency * counts - presence * (counts > 0).to(scores.dtype)

    return OpenAIPenalties()


class TransformersLM:
    """Implements `LM` with transformers' AutoModelForCausalLM; loads on the first request."""

    local = True  # in-process: the client does not apply its network timeout

    def __init__(
        self, settings: LMSettings, *, batch_wait: float = 0.005, continuous: bool | None = None
    ) -> None:
        if not settings.model:
            raise UserError("the transformers backend needs --model (a local path or a Hugging Face id)")
        self.settings = settings
        self.batch_wait = batch_wait
        self.continuous = continuous  # None: on CUDA when available
        self.batches: list[int] = []  # sizes of the generate calls made (observability, tests)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._managers: dict[tuple[object, ...], Any] = {}

    @property
    def identity(self) -> str:
        return f"transformers:{self.settings.model}:completion"

    # -- loading ------------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise UserError("the transformers backend needs: pip install 'selfinstruct[hf]'") from exc
        name = str(self.settings.model)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        extra: dict[str, Any] = {"local_files_only": offline}
        path = Path(name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise UserError(f"{path}: GGUF model file not found")
            name, extra["gguf_file"] = str(path.parent), path.name
        device = self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.settings.dtype == "auto":
            dtype: Any = "auto" if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, _DTYPES[self.settings.dtype])
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, **extra)
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **extra)
        except (OSError, ValueError) as exc:
            raise UserError(f"could not load the model {name!r}: {str(exc).splitlines()[0]}") from exc
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._device = device
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer

    # -- decoding -----------------------------------------------------------------------------------

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        return {int(i) for i in ids}

    def _finish(self, tokens: list[int], decoding: Decoding, prompt_tokens: int) -> Completion:
        """Text and finish reason from the generated ids of one row (padding and EOS stripped)."""
        ends = self._eos_ids() | {int(self._tokenizer.pad_token_id)}
        length = next((i for i, t in enumerate(tokens) if t in ends), len(tokens))
        ended = length < len(tokens)
        text = self._tokenizer.decode(tokens[:length], skip_special_tokens=True)
        text, cut = apply_stops(text, decoding.stop)
        finish: FinishReason = "stop" if (cut or ended or length < decoding.max_tokens) else "length"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=length,
            endpoint=f"transformers:{self._device}",
        )

    def _generation_config(self, decoding: Decoding, max_new_tokens: int) -> Any:
        from transformers import GenerationConfig

        sample = decoding.temperature > 0
        # A fresh config (not the model's): a checkpoint's own defaults, such as Gemma's top_k=64, must not
        # leak into OpenAI-style decoding. Sampling options are set only when sampling (else they warn).
        options: dict[str, Any] = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            pad_token_id=self._tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos_ids()) or None,
            **(options if sample else {}),
        )

    def _max_prompt(self, max_tokens: int) -> int:
        context = self.settings.context_length
        return context - min(max_tokens, context // 2)

    def generate_sync(self, prompts: list[str], decoding: Decoding) -> list[Completion]:
        """One padded `generate` call for prompts that share decoding settings (blocking)."""
        import torch
        from transformers import LogitsProcessorList

        self.load()
        tokenizer = self._tokenizer
        encoded = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self._max_prompt(decoding.max_tokens),
        ).to(self._device)
        width = encoded["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if decoding.presence_penalty or decoding.frequency_penalty:
            processors.append(
                _penalty_processor(width, decoding.presence_penalty, decoding.frequency_penalty)
            )
        extra: dict[str, Any] = {}
        if decoding.stop:
            extra = {"stop_strings": list(decoding.stop), "tokenizer": tokenizer}
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        with torch.inference_mode():
            output = self._model.generate(
                **encoded,
                generation_config=self._generation_config(decoding, decoding.max_tokens),
                logits_processor=processors,
                **extra,
            )
        self.batches.append(len(prompts))
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        rows = output[:, width:].tolist()
        return [self._finish(row, decoding, int(n)) for row, n in zip(rows, prompt_lengths, strict=True)]

    def _use_continuous(self, count: int, decoding: Decoding) -> bool:
        wanted = self.continuous if self.continuous is not None else self._device.startswith("cuda")
        if not wanted or count < 2 or decoding.presence_penalty or decoding.frequency_penalty:
            return False
        return hasattr(self._model, "init_continuous_batching")

    def generate_continuous_sync(self, prompts: list[str], decoding: Decoding) -> list[Completion]:
        """Decode with transformers' continuous batching manager (one per distinct decoding setting)."""
        import torch

        self.load()
        tokenizer = self._tokenizer
        limit = self._max_prompt(decoding.max_tokens)
        inputs = [tokenizer(p, truncation=True, max_length=limit)["input_ids"] for p in prompts]
        key = (decoding.temperature, decoding.top_p, decoding.seed)
        manager = self._managers.get(key)
        if manager is None:
            config = self._generation_config(decoding, decoding.max_tokens)
            if decoding.seed is not None:
                torch.manual_seed(decoding.seed)
            manager = self._model.init_continuous_batching(generation_config=config)
            manager.start()
            self._managers[key] = manager
        ids = manager.add_requests(inputs=inputs, max_new_tokens=decoding.max_tokens)
        wanted = set(ids)
        results: dict[str, Any] = {}
        while len(results) < len(wanted):
            result = manager.get_result(timeout=1.0)
            if result is None:
                if not manager.is_running():
                    raise LMError("the continuous batching manager stopped unexpectedly")
                continue
            if result.request_id in wanted and result.is_finished():
                results[result.request_id] = result
        self.batches.append(len(prompts))
        completions = []
        for request_id, prompt_ids in zip(ids, inputs, strict=True):
            result = results[request_id]
            if result.error is not None:
                raise LMError(f"generation failed: {result.error}")
            completions.append(self._finish(list(result.generated_tokens), decoding, len(prompt_ids)))
        return completions

    # -- the async side ------------------------------------------------------------------------------

    async def complete(self, prompt: str, decoding: Decoding) -> Completion:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(self._queue))
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prompt, decoding, future))
        return await future

    async def _drain(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            waiting = [await queue.get()]
            await asyncio.sleep(self.batch_wait)  # let the rest of a burst of requests arrive
            while not queue.empty():
                waiting.append(queue.get_nowait())
            groups: dict[Decoding, list[_Pending]] = defaultdict(list)
            for item in waiting:
                if not item.future.done():
                    groups[item.decoding].append(item)
            for decoding, items in groups.items():
                await self._run_group(decoding, items)

    async def _run_group(self, decoding: Decoding, items: list[_Pending]) -> None:
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        continuous = self._use_continuous(len(items), decoding)
        size = len(items) if continuous else self.settings.batch_size
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            run = self.generate_continuous_sync if continuous else self.generate_sync
            try:
                completions = await asyncio.to_thread(run, [i.prompt for i in chunk], decoding)
            except (UserError, LMError) as exc:
                error: BaseException = exc
                completions = []
            except Exception as exc:  # torch raises many types (OOM, shape errors): report, keep serving
                error = LMError(f"transformers generation failed: {type(exc).__name__}: {exc}")
                completions = []
            for index, item in enumerate(chunk):
                if item.future.done():
                    continue
                if completions:
                    item.future.set_result(completions[index])
                else:
                    item.future.set_exception(error)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue is not None and not self._queue.empty():  # nobody will serve these any more
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(LMError("the transformers backend was closed"))
        for manager in self._managers.values():
            manager.stop(block=True, timeout=5)
        self._managers.clear()
