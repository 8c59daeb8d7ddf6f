"""The transformers backend on CPU with a tiny random-weight Llama and a tokenizer trained here (offline)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from selfinstruct.lm.base import Decoding, Request  # noqa: E402
from selfinstruct.lm.client import LMClient  # noqa: E402
from selfinstruct.lm.settings import LMSettings  # noqa: E402
from selfinstruct.lm.transformers_backend import (  # noqa: E402
    TransformersLM,
    _continuous_penalties,
    _penalty_processor,
)

CORPUS = [
    "Come up with a series of tasks:",
    "Task 1: Write a poem about the sea.",
    "Task 2: Classify the sentiment of the review. Output: positive",
    "Input: The food was cold. Output: negative",
    "Give three synonyms for happy.",
]
PROMPTS = [
    "Task 1: Write",
    "Come up with a series of tasks:\nTask 1: Classify the sentiment",
    "Input:",
    "Give three synonyms for happy and sad and angry, one per line.",
    "Output: positive",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    config = transformers.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    directory = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def pad_prone_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its padding token made the greedy choice where another token was.

    Plain `generate` emits the padding token and carries on; a backend that took padding for the end of a
    reply returned empty text here (issue 14's one-in-four empty greedy reply)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        first = int(model(**ids).logits[0, -1].argmax())
        model.lm_head.weight[tokenizer.pad_token_id] = 1.5 * model.lm_head.weight[first]
    directory = tmp_path_factory.mktemp("pad-prone")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def plain_greedy(path: Path, prompts: list[str], max_new_tokens: int) -> tuple[list[str], list[list[int]]]:
    """Reference: plain `model.generate`, one prompt at a time (no padding at all), decoded as usual."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    texts, rows = [], []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        row = out[0, ids["input_ids"].shape[1] :].tolist()
        rows.append(row)
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts, rows


def backend(path: Path, **settings: object) -> TransformersLM:
    return TransformersLM(LMSettings(backend="transformers", model=str(path), device="cpu", **settings))


def test_the_backend_reads_its_eos_from_the_tokenizer_on_disk(tiny_model: Path) -> None:
    """What stage 4 ends completions with: asked of the backend, from the tokenizer files only."""
    from selfinstruct.lm.factory import eos_text, public_endpoints

    assert eos_text(LMSettings(backend="transformers", model=str(tiny_model))) == "</s>"
    assert eos_text(LMSettings(backend="transformers", model=str(tiny_model / "missing"))) is None
    assert public_endpoints(LMSettings(backend="transformers", model=str(tiny_model))) == []


def test_batched_greedy_equals_one_by_one(tiny_model: Path) -> None:
    decoding = Decoding(max_tokens=12)

    async def batched() -> tuple[list[str], list[int]]:
        lm = backend(tiny_model, batch_size=8)
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in PROMPTS))
        await lm.aclose()
        return [r.text for r in results], lm.batches

    async def one_by_one() -> tuple[list[str], list[int]]:
        lm = backend(tiny_model, batch_size=8)
        texts = [(await lm.complete(p, decoding)).text for p in PROMPTS]
        await lm.aclose()
        return texts, lm.batches

    texts, batches = asyncio.run(batched())
    single, single_batches = asyncio.run(one_by_one())
    assert batches == [len(PROMPTS)] and single_batches == [1] * len(PROMPTS)
    assert texts == single
    assert any(texts)  # the random model does produce text


def test_batched_greedy_equals_plain_generate_when_the_model_emits_padding(pad_prone_model: Path) -> None:
    decoding = Decoding(max_tokens=12)

    async def batched() -> list[str]:
        lm = backend(pad_prone_model, batch_size=8)
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in PROMPTS))
        await lm.aclose()
        assert lm.batches == [len(PROMPTS)]  # one left-padded batch of prompts of different lengths
        return [r.text for r in results]

    texts = asyncio.run(batched())
    reference, rows = plain_greedy(pad_prone_model, PROMPTS, 12)
    pad = transformers.AutoTokenizer.from_pretrained(pad_prone_model).pad_token_id
    # The case that went wrong: padding generated, then more tokens (which plain generate decodes).
    assert any(pad in row and set(row[row.index(pad) + 1 :]) - {pad} for row in rows)
    assert texts == reference


def test_batch_size_and_decoding_groups(tiny_model: Path) -> None:
    greedy, other = Decoding(max_tokens=4), Decoding(max_tokens=5)

    async def scenario() -> list[int]:
        lm = backend(tiny_model, batch_size=2)
        calls = [lm.complete(p, greedy) for p in PROMPTS] + [lm.complete(p, other) for p in PROMPTS[:2]]
        await asyncio.gather(*calls)
        await lm.aclose()
        return lm.batches

    assert sorted(asyncio.run(scenario())) == [1, 2, 2, 2]


def test_length_finish_reason_usage_and_stops(tiny_model: Path) -> None:
    async def scenario() -> tuple[object, object]:
        lm = backend(tiny_model)
        long = await lm.complete(PROMPTS[0], Decoding(max_tokens=6))
        # Stop at the first character the greedy reply produced: the text must end before it.
        first = long.text.strip()[:1] or "x"
        cut = await lm.complete(PROMPTS[0], Decoding(max_tokens=6, stop=(first,)))
        await lm.aclose()
        return long, cut

    long, cut = asyncio.run(scenario())
    assert long.finish_reason == "length" or long.completion_tokens < 6
    if long.finish_reason == "length":
        assert long.completion_tokens == 6
    assert long.prompt_tokens > 1
    assert cut.finish_reason == "stop" and long.text.startswith(cut.text) and len(cut.text) < len(long.text)


def test_penalties_follow_openai_on_generated_tokens_only() -> None:
    processor = _penalty_processor(prompt_length=2, presence=0.5, frequency=0.25)
    input_ids = torch.tensor([[3, 3, 1, 1, 2], [4, 4, 0, 4, 4]])  # prompt: first two columns
    scores = torch.zeros(2, 5)
    out = processor(input_ids, scores)
    # row 0 generated [1, 1, 2]; row 1 generated [0, 4, 4]; the prompt's 3s and 4s do not count.
    expected = torch.tensor([[0.0, -1.0, -0.75, 0.0, 0.0], [-0.75, 0.0, 0.0, 0.0, -1.0]])
    assert torch.equal(out, expected)


def _future(request_id: str, prompt: list[int], generated: int) -> object:
    """A request of the continuous batching scheduler whose logits row reads its token at `prompt + generated
    - 1` (generated == 0: the row that ends the prefill)."""
    from transformers.generation.continuous_batching.requests import FutureRequestState, RequestState

    state = RequestState(request_id=request_id, initial_tokens=prompt)
    state.position_offset = len(prompt) + generated
    return FutureRequestState(state, True, {}, 1)


def test_continuous_penalties_follow_openai_per_request() -> None:
    """Two requests in flight, steps simulated as the manager runs them; logits against the formula."""
    presence, frequency, vocab = 0.5, 0.25, 6
    processor = _continuous_penalties(presence, frequency, slots=4, vocab=vocab, device="cpu")
    defaults = torch.empty(8, dtype=torch.int32)
    processor.fill_defaults(defaults)
    assert processor.width == 8 and (defaults == 0).all()

    def step(futures: list[object], inputs: list[int], rows: int | None = None) -> torch.Tensor:
        args = processor.prepare_tensor_args(futures)
        assert args.numel() == 8  # every row written: padding rows must not keep stale slots
        n = rows or len(futures)
        return processor.apply(torch.tensor(inputs + [0] * (n - len(inputs))), torch.zeros(n, vocab), args)

    def expected(generated: list[int]) -> torch.Tensor:
        counts = torch.bincount(torch.tensor(generated, dtype=torch.long), minlength=vocab).float()
        return -frequency * counts - presence * (counts > 0).float()

    a, b = [1, 1, 5], [5, 5]  # prompts: their tokens are never penalised
    out = step([_future("a", a, 0)], [5])  # a ends its prefill: nothing generated yet
    assert torch.equal(out[0], torch.zeros(vocab))
    out = step([_future("a", a, 1), _future("b", b, 0)], [2, 5])  # a generated 2; b ends prefill
    assert torch.equal(out[0], expected([2])) and torch.equal(out[1], torch.zeros(vocab))
    out = step([_future("a", a, 2), _future("b", b, 1)], [2, 3], rows=4)  # two padding rows
    assert torch.equal(out[0], expected([2, 2])) and torch.equal(out[1], expected([3]))
    assert torch.equal(out[2:], torch.zeros(2, vocab))
    out = step([_future("b", b, 2)], [4])  # a rests; stale arguments of the last step must not count
    assert torch.equal(out[0], expected([3, 4]))
    out = step([_future("a", a, 3)], [1])
    assert torch.equal(out[0], expected([2, 2, 1]))


def test_huge_presence_penalty_never_repeats_a_generated_token(tiny_model: Path) -> None:
    lm = backend(tiny_model)
    [plain] = lm.generate_sync([PROMPTS[2]], Decoding(max_tokens=20))
    [penalised] = lm.generate_sync([PROMPTS[2]], Decoding(max_tokens=20, presence_penalty=1e4))
    ids = lm._tokenizer(plain.text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(set(ids))  # the random model repeats itself greedily...
    assert penalised.text != plain.text  # ...and the penalty changes that


def test_seeded_sampling_is_repeatable_through_the_client(tiny_model: Path) -> None:
    decoding = Decoding(temperature=1.0, top_p=0.9, max_tokens=8, seed=123)

    async def scenario() -> list[str]:
        client = LMClient(backend(tiny_model), LMSettings(backend="transformers", model=str(tiny_model)))
        results = await client.complete_many([Request(PROMPTS[1], decoding, stage="s")] * 1)
        again = await client.lm.complete(PROMPTS[1], decoding)
        await client.aclose()
        return [results[0].text, again.text]

    first, second = asyncio.run(scenario())
    assert first == second


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    from selfinstruct.errors import UserError

    lm = backend(tmp_path / "nope", batch_size=1)
    with pytest.raises(UserError):
        asyncio.run(lm.complete("x", Decoding(max_tokens=2)))


@pytest.mark.slow
def test_continuous_batching_equals_generate_greedy(tiny_model: Path) -> None:
    """The CUDA path (transformers' continuous batching manager) also runs on CPU: same greedy outputs."""
    decoding = Decoding(max_tokens=10, stop=("zz",))

    async def scenario() -> tuple[list[str], list[int]]:
        lm = backend(tiny_model)
        lm.continuous = True
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in PROMPTS))
        await lm.aclose()
        return [r.text for r in results], lm.batches

    continuous, batches = asyncio.run(scenario())
    static = [c.text for c in backend(tiny_model, batch_size=8).generate_sync(PROMPTS, decoding)]
    assert batches == [len(PROMPTS)]
    assert continuous == static


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batched_greedy_equals_one_by_one(tiny_model: Path) -> None:
    decoding = Decoding(max_tokens=10)
    lm = TransformersLM(
        LMSettings(backend="transformers", model=str(tiny_model), device="cuda", dtype="float32")
    )

    async def batched() -> list[str]:
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in PROMPTS * 8))
        return [r.text for r in results]

    texts = asyncio.run(batched())
    single = [lm.generate_sync([p], decoding)[0].text for p in PROMPTS]
    assert texts == single * 8


@pytest.mark.slow
def test_continuous_batching_applies_penalties_like_generate(tiny_model: Path) -> None:
    """Penalised requests take the continuous path (no fallback) and decode as the static path does."""
    decoding = Decoding(max_tokens=10, presence_penalty=1.5, frequency_penalty=0.5)

    async def scenario() -> tuple[list[str], TransformersLM]:
        lm = backend(tiny_model)
        lm.continuous = True
        results = await asyncio.gather(*(lm.complete(p, decoding) for p in PROMPTS))
        managers = dict(lm._managers)
        await lm.aclose()
        lm._managers = managers
        return [r.text for r in results], lm

    continuous, lm = asyncio.run(scenario())
    assert lm.batches == [len(PROMPTS)]
    [(_, penalties)] = lm._managers.values()
    assert penalties is not None and penalties.counts.sum() > 0
    static = backend(tiny_model, batch_size=8)
    assert continuous == [c.text for c in static.generate_sync(PROMPTS, decoding)]
    unpenalised = [c.text for c in static.generate_sync(PROMPTS, Decoding(max_tokens=10))]
    assert continuous != unpenalised


def test_a_model_trained_again_in_the_same_folder_is_another_identity(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "tuned"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"first")
    settings = LMSettings(backend="transformers", model=str(folder))
    first = TransformersLM(settings).identity
    weights.write_bytes(b"second")
    os.utime(weights, ns=(1, 1))  # a rewrite, even one that lands on an older time
    assert TransformersLM(settings).identity != first  # cached replies of the earlier model are not served
    # Checkpoints do not count (training on does not change the saved model), and a Hub id has no stamp.
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "model.safetensors").write_bytes(b"x")
    again = TransformersLM(settings).identity
    (folder / "checkpoints" / "model.safetensors").write_bytes(b"xy")
    assert TransformersLM(settings).identity == again
    assert TransformersLM(LMSettings(backend="transformers", model="org/name")).identity == (
        "transformers:org/name:completion"
    )
