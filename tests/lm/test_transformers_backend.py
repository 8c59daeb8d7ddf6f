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
from selfinstruct.lm.transformers_backend import TransformersLM, _penalty_processor  # noqa: E402

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


def backend(path: Path, **settings: object) -> TransformersLM:
    return TransformersLM(LMSettings(backend="transformers", model=str(path), device="cpu", **settings))


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
