"""Model configs for the GPU benchmarks: random-weight models built offline (the device has no network)."""

from __future__ import annotations

from typing import Any


def qwen2_config(tiny: bool, vocab_size: int = 1024) -> Any:
    """Qwen2.5-0.5B's shape (494M parameters, tied embeddings); `tiny` keeps the shape family only, with
    `vocab_size` tokens (enough for the benchmark's own tokenizer), to check a script on CPU."""
    from transformers import Qwen2Config

    if tiny:
        return Qwen2Config(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
        )
    return Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
    )
