"""Write a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp loads on top of its base GGUF.

llama.cpp's adapter format: a GGUF file with `general.type = "adapter"`, `general.architecture` equal to the
base model's, `adapter.type = "lora"`, `adapter.lora.alpha`, and for each adapted weight `W` (named as in
the base GGUF, e.g. `blk.3.attn_q.weight`) two tensors `W.lora_a` (rank x in, PEFT's `lora_A`) and
`W.lora_b` (out x rank, PEFT's `lora_B`). llama.cpp adds `alpha / rank * B @ A @ x` to `W @ x`, PEFT adds
`lora_alpha / r * B @ A @ x`: the same when alpha is PEFT's `lora_alpha` (rsLoRA's `alpha / sqrt(r)` scale
is folded into alpha).

The model was trained on the weights transformers loaded from the GGUF. Those are the GGUF's own weights
except where transformers' GGUF loader transforms them; for linear layers that is only llama's query and
key projections, whose rows llama.cpp's converter permuted (its rotary embedding pairs dimensions
differently). The adapter's `B` of those two is permuted the same way, so llama.cpp sees the delta of
its own layout. Architectures whose loader does more than that (fused QKV, transposed weights) are refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfinstruct.errors import AdapterConversionError

ADAPTER_FILE = "adapter.gguf"
# Architectures whose linear weights transformers loads from GGUF unchanged (plus llama's q/k permutation).
SUPPORTED_ARCHITECTURES = frozenset(
    {"llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "starcoder2", "stablelm", "nemotron"}
)
_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class GGUFAdapterInfo:
    """What was written: the adapter file, the base GGUF it belongs to, and what it adapts."""

    path: Path
    base: Path
    architecture: str
    alpha: float
    rank: int
    tensors: int  # adapted weight matrices (each written as a lora_a / lora_b pair)


@dataclass(frozen=True)
class _Base:
    architecture: str
    blocks: int
    heads: int | None
    kv_heads: int | None
    shapes: dict[str, tuple[int, ...]]  # tensor name -> numpy shape (out, in)


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_base(base_gguf: Path) -> _Base:
    """Architecture, block and head counts and tensor shapes of a GGUF model (memory-mapped, no weights)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(base_gguf)
    except (OSError, ValueError) as exc:
        raise AdapterConversionError(f"{base_gguf}: not a readable GGUF file ({exc})") from exc
    architecture = _field(reader, "general.architecture")
    if not architecture:
        raise AdapterConversionError(f"{base_gguf}: no general.architecture")
    blocks = _field(reader, f"{architecture}.block_count")
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return _Base(
        architecture=str(architecture),
        blocks=int(blocks or 0),
        heads=_field(reader, f"{architecture}.attention.head_count"),
        kv_heads=_field(reader, f"{architecture}.attention.head_count_kv"),
        shapes=shapes,
    )


def permute_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's query/key permutation of rows: per head, interleaved rotary pairs -> two halves."""
    size = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, size, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _load_adapter(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    config_file, weights_file = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise AdapterConversionError(f"{adapter_dir}: no PEFT adapter (adapter_config.json + safetensors)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterConversionError(f"{adapter_dir}: a {config.get('peft_type')} adapter, not LoRA")
    for key, what in (
        ("rank_pattern", "per-module ranks"),
        ("alpha_pattern", "per-module alphas"),
        ("modules_to_save", "fully trained modules"),
    ):
        if config.get(key):
            raise AdapterConversionError(f"{adapter_dir}: {what} ({key}) have no llama.cpp adapter form")
    if config.get("use_dora"):
        raise AdapterConversionError(f"{adapter_dir}: DoRA has no llama.cpp adapter form")
    if config.get("bias", "none") != "none":
        raise AdapterConversionError(f"{adapter_dir}: trained biases have no llama.cpp adapter form")
    return config, {k: v.astype(np.float32) for k, v in load_file(str(weights_file)).items()}


def _pairs(weights: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """HF weight name (`model.layers.0.self_attn.q_proj.weight`) -> (lora_A, lora_B)."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        name = key.removeprefix(_PEFT_PREFIX)
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in name:
                module = name.split(marker)[0]
                found.setdefault(module + ".weight", {})[part] = value
                break
        else:
            raise AdapterConversionError(f"adapter tensor {key!r} is not a LoRA A/B matrix")
    pairs = {}
    for name, parts in found.items():
        if set(parts) != {"lora_A", "lora_B"}:
            raise AdapterConversionError(f"adapter has only one of lora_A/lora_B for {name}")
        pairs[name] = (parts["lora_A"], parts["lora_B"])
    return pairs


def write_gguf_adapter(adapter_dir: Path, base_gguf: Path, out: Path) -> GGUFAdapterInfo:
    """Convert the PEFT adapter in `adapter_dir` (trained on `base_gguf` loaded by transformers) to `out`."""
    import gguf

    config, weights = _load_adapter(adapter_dir)
    base = read_base(base_gguf)
    if base.architecture not in SUPPORTED_ARCHITECTURES:
        raise AdapterConversionError(
            f"architecture {base.architecture!r}: transformers reshapes its GGUF weights when loading; "
            "no llama.cpp adapter is written"
        )
    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == base.architecture), None)
    if arch is None:
        raise AdapterConversionError(f"architecture {base.architecture!r} is unknown to the gguf package")
    names = gguf.get_tensor_name_map(arch, base.blocks)
    rank = int(config["r"])
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):
        alpha *= float(np.sqrt(rank))  # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # renamed when complete: no half-written adapter
    writer = gguf.GGUFWriter(str(partial), base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    pairs = _pairs(weights)
    if not pairs:
        raise AdapterConversionError(f"{adapter_dir}: the adapter holds no LoRA matrices")
    for hf_name, (lora_a, lora_b) in sorted(pairs.items()):
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None or name not in base.shapes:
            raise AdapterConversionError(f"{hf_name}: no matching tensor in {base_gguf.name}")
        out_dim, in_dim = base.shapes[name][0], base.shapes[name][-1]
        if lora_a.shape != (rank, in_dim) or lora_b.shape != (out_dim, rank):
            raise AdapterConversionError(
                f"{hf_name}: LoRA shapes {lora_a.shape}, {lora_b.shape} do not fit {name} {base.shapes[name]}"
            )
        if base.architecture == "llama" and (".attn_q." in name or ".attn_k." in name):
            heads = base.heads if ".attn_q." in name else (base.kv_heads or base.heads)
            if not heads:
                raise AdapterConversionError(f"{base_gguf.name}: no attention head count for {name}")
            lora_b = permute_rows(lora_b, int(heads))
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(lora_a))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(lora_b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out)
    return GGUFAdapterInfo(
        path=out, base=base_gguf, architecture=base.architecture, alpha=alpha, rank=rank, tensors=len(pairs)
    )
