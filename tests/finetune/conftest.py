"""A tiny random-weight Llama and a byte-level BPE tokenizer trained here: real components, no downloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EOS = "<|endoftext|>"
PAD = "<pad>"

FACTS = [
    ("Add the two numbers.", "2 and 3", "5"),
    ("Reverse the word.", "Word: stressed", "desserts"),
    ("Name the capital city.", "Country: France", "Paris"),
    ("Give the opposite of the adjective.", "hot", "cold"),
    ("Translate the greeting to French.", "good morning", "bonjour"),
    ("Count the vowels in the word.", "banana", "3"),
    ("Classify the sentiment of the review.", "I loved every minute of it.", "positive"),
    ("Classify the sentiment of the review.", "Boring and far too long.", "negative"),
    ("Name a primary colour.", "", "red"),
    ("Suggest a name for a pet cat.", "", "Whiskers"),
    ("Write the next number in the sequence.", "2, 4, 6, 8", "10"),
    ("Spell the number in words.", "12", "twelve"),
]


def instance_rows() -> list[dict[str, str]]:
    """Paper-format rows (instruction/input/output), a little varied so there are several dozen."""
    rows = []
    for i in range(4):
        for instruction, inp, out in FACTS:
            suffix = f" (variant {i})" if i else ""
            rows.append({"instruction": instruction + suffix, "input": inp, "output": out})
    return rows


def write_instances(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in instance_rows()) + "\n", encoding="utf-8")
    return path


def build_tiny_base(directory: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [f"{r['instruction']}\nInput: {r['input']}\nOutput: {r['output']}" for r in instance_rows()]
    corpus += ["Task: Answer: Response: Instruction: Here is a task: Output:\n\n", "0123456789 ,.:;!?()"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def instances_file(tmp_path: Path) -> Path:
    return write_instances(tmp_path / "all_generated_instances.jsonl")
