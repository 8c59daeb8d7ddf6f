"""Does a greedy reply of the embedded model depend on what it is batched with? Bitwise, on the logits.

For each llama.cpp configuration, one target prompt is decoded greedily (`--tokens` steps) alone, then
together with 3 and with 7 other prompts of different lengths that come and go (each other request runs
for its own number of tokens, and a new one takes its place): the target's prompt is decoded in the same
call as the others' next-token steps and theirs in the same calls as the target's, as the backend
(`selfinstruct.lm.llamacpp_batch`) schedules them. Every step's logits of the target
(`llama_get_logits_ith`) are compared bitwise with the alone run. The workload is fixed (no stop on an
end-of-generation token), so the CPU time of the 8-sequence run is a cost figure per generated token.

Configurations (the low-level API directly, so every knob is reachable):
- extra buffer types on/off (`use_extra_bufts`: repacked weight layouts and their own gemv/gemm kernels);
- a unified KV cache, or one KV stream per sequence (`kv_unified = false`);
- flash attention on/off;
- `min_rows`: every decode call carries at least this many rows, padded with a dummy sequence whose
  logits are not requested (llama.cpp's llamafile sgemm handles only calls of >= 2 rows, vec_dot the rest);
- scheduler "mixed" (the backend's: next-token steps and prompt chunks in one call) or "split" (a prompt
  chunk of >= 2 tokens in a call of its own, next-token steps together in calls whose rows are the
  consecutive sequence ids that llama.cpp's per-stream split needs, gaps padded with dummy rows).

The backend's own setting (`batch_invariant`, the "split" configuration with the tiled K-quant matmul
off) is costed with `--cost`: the backend's engine at 8 sequences, with and without it (and the default
at 1 sequence), each in a fresh process (ggml reads its tiled switch once per process), on two workloads:
16 stage-1-like prompts sharing a header x 48 tokens (benchmarks/embedded_batching.py's), and 8 prompts
of ~1,000 tokens sharing all but their last line x 32 tokens (stages 2 and 3's few-shot prompts).

    python benchmarks/embedded_determinism.py                       # all configurations, 48 tokens
    python benchmarks/embedded_determinism.py --tiled off --configs split --targets 0 3 5
    python benchmarks/embedded_determinism.py --cost
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the backend does, before llama_cpp loads

import numpy as np

from embedded_tokens import machine
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp_load import load_model

CHUNK = 512  # the backend's prompt chunk and n_batch


@dataclass(frozen=True)
class Config:
    name: str
    extra_bufts: bool
    unified: bool
    flash_attn: bool
    min_rows: int = 1
    scheduler: Literal["mixed", "split"] = "mixed"


CONFIGS = {
    c.name: c
    for c in [
        Config("default", extra_bufts=True, unified=True, flash_attn=False),
        Config("bufts-off", extra_bufts=False, unified=True, flash_attn=False),
        Config("bufts-off+fa", extra_bufts=False, unified=True, flash_attn=True),
        Config("bufts-off+rows2", extra_bufts=False, unified=True, flash_attn=False, min_rows=2),
        Config("streams", extra_bufts=True, unified=False, flash_attn=False),
        Config("bufts-off+streams", extra_bufts=False, unified=False, flash_attn=False),
        Config("bufts-off+streams+fa", extra_bufts=False, unified=False, flash_attn=True),
        Config("bufts-off+streams+rows2", extra_bufts=False, unified=False, flash_attn=False, min_rows=2),
        Config("split", extra_bufts=False, unified=False, flash_attn=False, scheduler="split"),
        Config("split+bufts-on", extra_bufts=True, unified=False, flash_attn=False, scheduler="split"),
        Config("split+fa", extra_bufts=False, unified=False, flash_attn=True, scheduler="split"),
    ]
}

TOPICS = [
    "the first snow of the year",
    "a lighthouse keeper who never saw the sea",
    "how bread rises",
    "the rules of chess",
    "a city built on water",
    "why leaves change colour in autumn",
    "the invention of the printing press",
    "a robot learning to paint",
    "the life cycle of a star",
    "an old map found in an attic",
    "how vaccines train the immune system",
    "a market at dawn",
]


def prompt_text(i: int) -> str:
    """Prompts of quite different lengths (about 10 to 200 tokens)."""
    topic = TOPICS[i % len(TOPICS)]
    lines = "".join(
        f"Note {k}: something else about {TOPICS[(i + k) % len(TOPICS)]}.\n" for k in range(i % 6 * 3)
    )
    return f"{lines}Write a short paragraph about {topic}.\nParagraph:"


OTHER_TOKENS = [7, 13, 29, 45, 60, 9, 21, 36, 17, 52, 11, 40]  # each other request's length, cycling


@dataclass
class Seq:
    seq_id: int
    prompt: list[int]
    max_new: int
    order: int
    target: bool = False
    pos: int = 0  # cells decoded
    pending: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)


class Runner:
    """One context of a configuration, decoding sets of sequences as the backend would."""

    def __init__(self, lc: Any, model: Any, cfg: Config, n_seq: int, n_ctx_seq: int, threads: int) -> None:
        self.lc, self.cfg, self.n_seq = lc, cfg, n_seq
        self.pad_id = n_seq  # one extra sequence: the dummy rows
        vocab = lc.llama_model_get_vocab(model)
        self.n_vocab = lc.llama_vocab_n_tokens(vocab)
        self.bos = lc.llama_vocab_bos(vocab)
        self.vocab = vocab
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx_seq * (n_seq + 1)
        params.n_batch = params.n_ubatch = CHUNK
        params.n_seq_max = n_seq + 1
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = cfg.unified
        params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if cfg.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.yarn_attn_factor, params.yarn_beta_fast, params.yarn_beta_slow = 1.0, 32.0, 1.0
        self.ctx = lc.llama_init_from_model(model, params)
        assert self.ctx, "no context"
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(CHUNK + n_seq + 2, 0, 1)

    def close(self) -> None:
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        buffer = (self.lc.llama_token * (len(data) + 8))()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buffer, len(data) + 8, True, True)
        return list(buffer[:n])

    def piece(self, token: int) -> str:
        buffer = ctypes.create_string_buffer(256)
        n = self.lc.llama_token_to_piece(self.vocab, token, buffer, 256, 0, False)
        return buffer.raw[: max(n, 0)].decode("utf-8", "replace")

    # --- one decode call --------------------------------------------------------------------------

    def _decode(self, feeding: list[tuple[Seq, int]], dummies: list[tuple[int, int]]) -> None:
        """Rows in the order given: each seq's next `take` pending tokens, and dummy rows (seq, pos)."""
        lc, batch = self.lc, self.batch
        outputs: list[tuple[Seq, int]] = []
        rows: list[tuple[int, int, int, bool, Seq | None]] = []
        for seq, take in feeding:
            for i in range(take):
                last = i == take - 1 and take == len(seq.pending)
                rows.append((seq.pending[i], seq.pos + i, seq.seq_id, last, seq))
        rows += [(self.bos, pos, seq_id, False, None) for seq_id, pos in dummies]
        for n, (token, pos, seq_id, want, seq) in enumerate(rows):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq_id, int(want)
            if want and seq is not None:
                outputs.append((seq, n))
        batch.n_tokens = len(rows)
        status = lc.llama_decode(self.ctx, batch)
        assert status == 0, f"llama_decode failed: {status}"
        for seq_id, pos in dummies:
            lc.llama_memory_seq_rm(self.memory, seq_id, pos, -1)
        for seq, take in feeding:
            seq.pos += take
            del seq.pending[:take]
        for seq, index in outputs:
            pointer = lc.llama_get_logits_ith(self.ctx, index)
            logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
            token = int(np.argmax(logits))  # llama.cpp's greedy sampler: the first maximum
            if seq.target:
                seq.logits.append(logits.copy())
            seq.tokens.append(token)
            if len(seq.tokens) < seq.max_new:
                seq.pending = [token]

    def _pad(self, rows: int) -> list[tuple[int, int]]:
        """Dummy rows (seq, pos) of the pad sequence so that a call has at least `min_rows` rows."""
        return [(self.pad_id, k) for k in range(max(0, self.cfg.min_rows - rows))]

    def step(self, active: list[Seq]) -> None:
        if self.cfg.scheduler == "mixed":
            self._step_mixed(active)
        else:
            self._step_split(active)

    def _step_mixed(self, active: list[Seq]) -> None:
        """The backend's step: next-token rows first, then prompt chunks in admission order."""
        active = sorted(active, key=lambda s: (s.pos < len(s.prompt), s.order))
        feeding, n = [], 0
        for seq in active:
            take = min(len(seq.pending), CHUNK - n)
            if take > 0:
                feeding.append((seq, take))
                n += take
        self._decode(feeding, self._pad(n))

    def _step_split(self, active: list[Seq]) -> None:
        """A prompt chunk of >= 2 tokens in a call of its own (never a 1-token remainder); else every
        single-token row together, in sequence-id order (llama.cpp's per-stream split takes runs of
        consecutive ids into one ubatch)."""
        prompts = sorted((s for s in active if len(s.pending) >= 2), key=lambda s: s.order)
        if prompts:
            seq = prompts[0]
            take = min(len(seq.pending), CHUNK)
            if len(seq.pending) - take == 1:
                take -= 1
            self._decode([(seq, take)], self._pad(take))
            return
        singles = sorted((s for s in active if len(s.pending) == 1), key=lambda s: s.seq_id)
        self._decode([(s, 1) for s in singles], self._pad(len(singles)))

    # --- a scenario -------------------------------------------------------------------------------

    def run(self, target_text: str, others: int, tokens: int, start: int = 0) -> tuple[Seq, float, int]:
        """Decode the target alone (`others == 0`) or among `others` other requests that come and go.
        Returns the target, the process CPU seconds and the tokens generated by all sequences."""
        lc = self.lc
        lc.llama_memory_clear(self.memory, True)
        target_id = others  # not sequence 0 when batched: its cells are not where they are alone
        target = Seq(target_id, self.tokenize(target_text), tokens, order=0, target=True)
        target.pending = list(target.prompt)
        pool = iter(range(start, start + 10_000))
        order = iter(range(1, 10_000))

        def other(seq_id: int) -> Seq:
            k = next(pool)
            seq = Seq(seq_id, self.tokenize(prompt_text(k)), OTHER_TOKENS[k % len(OTHER_TOKENS)], next(order))
            seq.pending = list(seq.prompt)
            return seq

        running = [other(i) for i in range(others)]
        generated, step = 0, 0
        before = sum(os.times()[:2])
        while len(target.tokens) < tokens:
            if step == (2 if others else 0):
                running.append(target)  # admitted while the others decode: its prompt shares their calls
            self.step(running)
            step += 1
            for seq in list(running):
                if len(seq.tokens) >= seq.max_new:
                    generated += len(seq.tokens)
                    lc.llama_memory_seq_rm(self.memory, seq.seq_id, 0, -1)
                    running.remove(seq)
                    if seq is not target:
                        running.append(other(seq.seq_id))
        cpu = sum(os.times()[:2]) - before
        generated += sum(len(s.tokens) for s in running)
        return target, cpu, generated


def compare(alone: Seq, batched: Seq) -> tuple[int | None, int]:
    """(first step whose logits differ bitwise, or None; greedy tokens equal before the first difference)."""
    first = None
    for i, (a, b) in enumerate(zip(alone.logits, batched.logits, strict=False)):
        if not np.array_equal(a, b):
            first = i
            break
    same = 0
    for a_token, b_token in zip(alone.tokens, batched.tokens, strict=False):
        if a_token != b_token:
            break
        same += 1
    return first, same


def shared_prompts() -> list[str]:
    """8 prompts of ~1,000 tokens sharing all but their last line."""
    words = ["Swimming", "Reading", "Cooking", "Running", "Singing", "Coding", "Walking", "Painting"] * 5
    head = "".join(
        f"Example {i}: Task: Is the sentence '{w} is a good idea' positive or negative? Output: positive\n"
        for i, w in enumerate(words)
    )
    return [head + f"Example {k}: Task: write about topic number {k} in detail. Output:" for k in range(8)]


def cost_child(mode: str, workload: str, threads: int) -> None:
    """One engine, one workload, submitted at once: prints CPU s, wall s, completion tokens as JSON."""
    from embedded_batching import prompts
    from selfinstruct.lm.base import Decoding
    from selfinstruct.lm.llamacpp import _import_llama
    from selfinstruct.lm.llamacpp_batch import BatchEngine

    requests, tokens = (prompts(16), 48) if workload == "stage1" else (shared_prompts(), 32)
    lc = _import_llama()
    engine = BatchEngine(
        embedded_gguf_path(),
        n_seq=1 if mode == "default-c1" else 8,
        n_ctx_seq=2048,
        threads=threads,
        batch_invariant=mode == "invariant",
        llama_cpp=lc,
    )
    engine.submit("Hello", Decoding(max_tokens=2)).result()  # warm up
    cpu0, wall0 = sum(os.times()[:2]), time.perf_counter()
    futures = [engine.submit(p, Decoding(temperature=0.0, max_tokens=tokens)) for p in requests]
    done = [f.result() for f in futures]
    cpu, wall = sum(os.times()[:2]) - cpu0, time.perf_counter() - wall0
    engine.close()
    print(json.dumps({"cpu": cpu, "wall": wall, "tokens": sum(g.completion_tokens for g in done)}))


def cost(threads: int) -> None:
    print(f"Machine: {machine()}; threads={threads}; each row a fresh process.\n")
    print("| workload | engine | CPU s | wall s | tokens | CPU ms per token | CPU vs default at 8 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for workload in ("stage1", "shared-prefix"):
        base = None
        for mode in ("default", "invariant", "default-c1"):
            command = [sys.executable, __file__, "--cost-child", mode, workload, "--threads", str(threads)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            base = row["cpu"] if mode == "default" else base
            label = {"default": "default, 8 sequences", "invariant": "batch_invariant, 8 sequences"}.get(
                mode, "default, 1 sequence"
            )
            print(
                f"| {workload} | {label} | {row['cpu']:.1f} | {row['wall']:.1f} | {row['tokens']} "
                f"| {1000 * row['cpu'] / row['tokens']:.1f} | {row['cpu'] / base:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--targets", type=int, nargs="+", default=[3], help="prompt numbers of the targets")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx-seq", type=int, default=2048)
    parser.add_argument("--others", type=int, nargs="+", default=[3, 7])
    parser.add_argument(
        "--tiled",
        choices=["default", "off", "force"],
        default="default",
        help="ggml's tiled K-quant matmul (taken at >= 8 rows): as shipped, off, or for every row count",
    )
    parser.add_argument("--cost", action="store_true", help="CPU cost of the backend's batch_invariant")
    parser.add_argument("--cost-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost:
        cost(args.threads)
        return
    if args.cost_child:
        cost_child(args.cost_child[0], args.cost_child[1], args.threads)
        return
    # ggml reads these once per process, at its first matrix product.
    if args.tiled == "off":
        os.environ["GGML_CPU_TILED_MM"] = "0"
    elif args.tiled == "force":
        os.environ["GGML_CPU_TILED_MM_FORCE"] = "1"

    from selfinstruct.lm.llamacpp import _import_llama

    lc = _import_llama()
    path: Path = embedded_gguf_path()
    models: dict[bool, Any] = {}
    print(
        f"Machine: {machine()}; threads={args.threads}; tiled K-quant matmul: {args.tiled}; "
        f"{args.tokens} greedy steps per target.\n"
    )
    print(
        "| configuration | target | with | logits bitwise equal | first differing step "
        "| greedy tokens equal | CPU ms per generated token |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for name in args.configs:
        cfg = CONFIGS[name]
        if cfg.extra_bufts not in models:
            models[cfg.extra_bufts] = load_model(lc, path, extra_buffer_types=cfg.extra_bufts)
        runner = Runner(lc, models[cfg.extra_bufts], cfg, max(args.others) + 1, args.n_ctx_seq, args.threads)
        try:
            for t in args.targets:
                text = prompt_text(t)
                alone, cpu, gen = runner.run(text, 0, args.tokens)
                print(
                    f"| {name} | {t} | alone | - | - | {args.tokens} | {1000 * cpu / gen:.1f} |", flush=True
                )
                for k in args.others:
                    batched, cpu, gen = runner.run(text, k, args.tokens, start=t + 1)
                    first, same = compare(alone, batched)
                    equal = "yes" if first is None else "no"
                    print(
                        f"| {name} | {t} | {k} others | {equal} | {'-' if first is None else first} "
                        f"| {same}/{args.tokens} | {1000 * cpu / gen:.1f} |",
                        flush=True,
                    )
        finally:
            runner.close()
    for model in models.values():
        lc.llama_model_free(model)


if __name__ == "__main__":
    main()
