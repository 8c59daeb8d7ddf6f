"""The `transformers` backend: a local Hugging Face causal LM on CPU or CUDA, batching what arrives together.

Requests go into an asyncio queue drained by one worker: whatever is waiting (after a few milliseconds for
the rest of a burst to arrive) is grouped by identical decoding settings and decoded `batch_size` prompts
per `generate` call, left-padded. Greedy outputs of a batch equal one-by-one greedy outputs and plain
`model.generate` + decode (tested).

Decoding maps to OpenAI semantics:
- temperature 0 is greedy; otherwise sampling with `temperature` and `top_p`, top-k off.
- presence_penalty / frequency_penalty: transformers only has `repetition_penalty` (multiplicative, over
  prompt and output alike), which is a different thing. We add a small logits processor that does what
  OpenAI documents and vLLM implements: subtract `presence` once and `frequency` per occurrence from the
  logits of tokens already in the *generated* part (the prompt is not penalised), before temperature.
- stop sequences end generation early (transformers' `stop_strings` criteria) and the decoded text is cut
  at the earliest one.
- a reply ends at the first end-of-sequence token only. The padding token is not an end: a model may
  generate it (random or badly tuned weights do), and plain `generate` carries on after it.
On CUDA, when many prompts wait, the continuous batching manager of transformers (`init_continuous_batching`)
decodes them instead of padded static batches, penalties included (`_ContinuousPenalties` keeps per-request
token counts on the device); stop sequences are then applied to the text afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from selfinstruct.errors import LMError, UserError
from selfinstruct.lm.base import Completion, Decoding, FinishReason, apply_stops
from selfinstruct.lm.settings import LMSettings

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def weights_stamp(model: str | None) -> str:
    """For a local model folder, a digest of its weight files' names, sizes and modification times: a model
    trained again into the same folder (a rerun of `finetune`) must not be answered from cached replies of
    the earlier one. Hub ids and missing paths get no stamp (their name is their identity)."""
    if not model:
        return ""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return ""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in WEIGHT_SUFFIXES and "checkpoints" not in p.relative_to(folder).parts
    )
    if not files:
        return ""
    digest = hashlib.sha256()
    for path in files:
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return f"@{digest.hexdigest()[:12]}"


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
            # Arithmetic on tensors is typed as Tensor; the result is float like `scores`.
            return cast(
                torch.FloatTensor, scores - frequency * counts - presence * (counts > 0).to(scores.dtype)
            )

    return OpenAIPenalties()


_WARMUP_PREFIX = "__warmup_"  # the ids transformers gives the fake requests of its CUDA-graph warm-up


def _continuous_penalties(presence: float, frequency: float, slots: int, vocab: int, device: Any) -> Any:
    """OpenAI penalties for transformers' continuous batching: per-request counts of generated tokens.

    Continuous batching flattens every request into one row of tokens, so the `input_ids[:, prompt:]` view
    of `_penalty_processor` does not exist there. Instead each request owns a row (`slot`) of a counts tensor
    kept on the device. At each step the logits row of a request is predicted from its last input token;
    when that token is a generated one (its position is past the prompt), it is added to the counts first,
    then `logit[t] -= presence * (count[t] > 0) + frequency * count[t]`. The row that ends a prompt's prefill
    resets the slot. Counting the input token on the device (not the host's list of generated tokens) stays
    exact under async batching, where the host learns the last token one step late; all device work has
    static shapes, so it can also be captured in a CUDA graph. The per-row argument is `slot + 1` (count the
    input token), `-(slot + 1)` (first generated token: reset) or 0 (padding: a scratch row).
    """
    import torch
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingLogitsProcessor,
    )
    from transformers.generation.continuous_batching.requests import RequestStatus

    class ContinuousPenalties(ContinuousBatchingLogitsProcessor):
        ignored_kwargs: tuple[str, ...] = ()

        def __init__(self) -> None:
            self.supported_kwargs = {}  # no per-request kwargs (an instance attribute, as the base declares)
            self.presence, self.frequency = presence, frequency
            self.scratch = slots
            self.counts = torch.zeros(slots + 1, vocab, dtype=torch.float32, device=device)
            self.owners: dict[str, tuple[int, Any]] = {}  # request id -> (slot, its latest state)
            self.width = 0

        def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
            self.width = int32_tensor.numel()
            int32_tensor.fill_(0)

        def _slot(self, state: Any) -> int:
            owner = self.owners.get(state.request_id)
            if owner is None:
                if len(self.owners) >= slots:  # reclaim the slots of requests that are over
                    finished = RequestStatus.FINISHED
                    over = [rid for rid, (_, st) in self.owners.items() if st.status >= finished]
                    for rid in over:
                        del self.owners[rid]
                taken = {slot for slot, _ in self.owners.values()}
                free = next((i for i in range(slots) if i not in taken), None)
                if free is None:
                    raise RuntimeError(f"more than {slots} requests in flight with penalties")
                owner = (free, state)
            self.owners[state.request_id] = (owner[0], state)
            return owner[0]

        def prepare_tensor_args(self, requests_with_new_token: list[Any]) -> torch.Tensor:
            # Every row is written, padding included: stale slot numbers left from an earlier, larger batch
            # would otherwise count a padding token against a live request.
            args = [0] * max(self.width, len(requests_with_new_token))
            for row, future in enumerate(requests_with_new_token):
                state = future.state
                if state.request_id.startswith(_WARMUP_PREFIX):
                    continue
                slot = self._slot(state)
                # The prompt's length (a soft reset moves generated tokens into initial_tokens, not this),
                # against the position of the row's input token.
                prompt = state._true_initial_tokens or len(state.initial_tokens)
                generated_input = state.position_offset - 1 >= prompt
                args[row] = slot + 1 if generated_input else -(slot + 1)
            return torch.tensor(args, dtype=torch.int32)

        def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
            raise TypeError("ContinuousPenalties needs the input ids: use it through _with_penalties")

        def apply(
            self, input_ids: torch.Tensor, scores: torch.Tensor, tensor_arg: torch.Tensor
        ) -> torch.Tensor:
            arg = tensor_arg[: scores.size(0)].long()
            slot = torch.where(arg == 0, torch.full_like(arg, self.scratch), arg.abs() - 1)
            counting = (arg > 0).to(self.counts.dtype)
            rows = self.counts.index_select(0, slot) * counting.unsqueeze(1)  # reset rows start from zero
            rows.scatter_add_(1, input_ids[: scores.size(0)].long().unsqueeze(1), counting.unsqueeze(1))
            self.counts.index_copy_(0, slot, rows)  # one row per request; only the scratch row repeats
            rows = rows.to(scores.dtype)
            return scores - self.frequency * rows - self.presence * (rows > 0).to(scores.dtype)

    return ContinuousPenalties()


def _with_penalties(processors: Any, penalties: Any) -> Any:
    """The manager's processor list with `penalties` first (before temperature, as in `generate`)."""
    from transformers import LogitsProcessorList
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingLogitsProcessor,
        ContinuousBatchingLogitsProcessorList,
    )

    class PenaltyProcessorList(ContinuousBatchingLogitsProcessorList):
        """Passes the row's input ids to the penalty processor, which the base list does not do."""

        def __init__(self) -> None:
            self.logits_processor = LogitsProcessorList([penalties, *processors.logits_processor])
            self.tensors_required = processors.tensors_required + 1
            self.supported_keys = dict(processors.supported_keys)
            self.ignored_keys = set(processors.ignored_keys)
            self.do_processing = True

        def __call__(self, input_ids: Any, scores: Any, logits_processor_args: Any) -> Any:
            arg_id = 0
            for processor in self.logits_processor:
                if processor is penalties:
                    scores = processor.apply(input_ids, scores, logits_processor_args[arg_id])
                    arg_id += 1
                elif isinstance(processor, ContinuousBatchingLogitsProcessor):
                    scores = processor(scores, logits_processor_args[arg_id])
                    arg_id += 1
                else:
                    scores = processor(input_ids, scores)
            return scores

    return PenaltyProcessorList()


class TransformersLM:
    """Implements `LM` with transformers' AutoModelForCausalLM; loads on the first request."""

    local = True  # in-process: the client does not apply its network timeout

    def __init__(
        self,
        settings: LMSettings,
        *,
        batch_wait: float = 0.005,
        continuous: bool | None = None,
        continuous_slots: int = 512,
    ) -> None:
        if not settings.model:
            raise UserError("the transformers backend needs --model (a local path or a Hugging Face id)")
        # Checked here, before any command starts its progress display: a light install hears it at once.
        if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers")):
            raise UserError("the transformers backend needs: pip install 'selfinstruct[hf]'")
        self.settings = settings
        self.batch_wait = batch_wait
        self.continuous = continuous  # None: on CUDA when available
        # Prompts per continuous batching call; with penalties, also the rows of the device's counts tensor
        # (512 x a 152k vocabulary in fp32: 311 MB).
        self.continuous_slots = continuous_slots
        self.batches: list[int] = []  # sizes of the generate calls made (observability, tests)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._managers: dict[tuple[object, ...], tuple[Any, Any]] = {}
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        if self._identity is None:  # once: it keys every cached request
            model = self.settings.model
            self._identity = f"transformers:{model}{weights_stamp(model)}:completion"
        return self._identity

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
            # Any: PreTrainedModel.to is a functools.wraps wrapper, which typeshed types as unbound (as if
            # `device` were `self`); the model is kept as Any (`self._model`) anyway.
            model: Any = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **extra)
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
        """Text and finish reason from the generated ids of one row: cut at the first EOS (padding after it).

        Only EOS ends a row. The padding token is no end unless it is also EOS: a model can generate it (a
        random one often does), and `generate` goes on decoding after it; treating it as an end once returned
        empty text where `generate` produced tokens."""
        ends = self._eos_ids()
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

    def _use_continuous(self, count: int) -> bool:
        wanted = self.continuous if self.continuous is not None else self._device.startswith("cuda")
        return bool(wanted) and count >= 2 and hasattr(self._model, "init_continuous_batching")

    def _vocab_size(self) -> int:
        head = self._model.get_output_embeddings()
        return int(head.weight.shape[0]) if head is not None else int(self._model.config.vocab_size)

    def _manager(self, decoding: Decoding) -> tuple[Any, Any]:
        """The continuous batching manager (and its penalty processor) for one set of decoding settings."""
        key = (
            decoding.temperature,
            decoding.top_p,
            decoding.seed,
            decoding.presence_penalty,
            decoding.frequency_penalty,
        )
        if key in self._managers:
            return self._managers[key]
        from transformers import ContinuousBatchingConfig

        config = self._generation_config(decoding, decoding.max_tokens)
        manager = self._model.init_continuous_batching(
            generation_config=config, continuous_batching_config=ContinuousBatchingConfig(seed=decoding.seed)
        )
        penalties = None
        if decoding.presence_penalty or decoding.frequency_penalty:
            penalties = _continuous_penalties(
                decoding.presence_penalty,
                decoding.frequency_penalty,
                self.continuous_slots,
                self._vocab_size(),
                self._model.device,
            )
            # Before start(): the batch processor and its input tensors are built from this list.
            manager.logit_processor = _with_penalties(manager.logit_processor, penalties)
        manager.start()
        self._managers[key] = (manager, penalties)
        return manager, penalties

    def generate_continuous_sync(self, prompts: list[str], decoding: Decoding) -> list[Completion]:
        """Decode with transformers' continuous batching manager (one per distinct decoding setting)."""
        self.load()
        if len(prompts) > self.continuous_slots:
            raise ValueError(f"at most {self.continuous_slots} prompts per continuous batch")
        tokenizer = self._tokenizer
        limit = self._max_prompt(decoding.max_tokens)
        inputs = [tokenizer(p, truncation=True, max_length=limit)["input_ids"] for p in prompts]
        manager, _ = self._manager(decoding)
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
        continuous = self._use_continuous(len(items))
        size = self.continuous_slots if continuous else self.settings.batch_size
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
        for manager, _ in self._managers.values():
            manager.stop(block=True, timeout=5)
        self._managers.clear()


# What the backend registry (`lm/factory.py`) asks of every backend module.
def build(settings: LMSettings) -> TransformersLM:
    return TransformersLM(settings)


def eos_text(settings: LMSettings) -> str | None:
    """The tokenizer's end-of-sequence token where the model is on disk (a folder or Hugging Face's cache:
    never the network, no weights loaded); None otherwise."""
    if not settings.model:
        return None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(settings.model, local_files_only=True)
    except Exception:  # not installed, not on disk, or no tokenizer there: the caller falls back
        return None
    eos = tokenizer.eos_token
    return eos if isinstance(eos, str) and eos else None


def public_endpoints(settings: LMSettings) -> list[str]:
    """In-process: no endpoint to show."""
    return []
