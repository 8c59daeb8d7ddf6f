"""Loading the base model and tokenizer: a Hugging Face directory or id, a GGUF file, or the embedded one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.errors import UserError
from selfinstruct.finetune.config import EMBEDDED_BASE

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def resolve_precision(precision: str) -> str:
    """'auto' picks bf16 on a CUDA device that supports it, fp32 otherwise (CPU bf16 is slow to train)."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def torch_dtype(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def gguf_location(base: str) -> tuple[Path, str] | None:
    """(directory, file name) when `base` names a GGUF file or the embedded model, else None."""
    if base == EMBEDDED_BASE:
        from selfinstruct.lm.embedded import embedded_gguf_path

        path = embedded_gguf_path()
        return path.parent, path.name
    if base.endswith(".gguf"):
        path = Path(base)
        if not path.is_file():
            raise UserError(f"--base {base}: no such GGUF file")
        return path.parent, path.name
    return None


def make_serializable(model: PreTrainedModel) -> None:
    """A GGUF-loaded model is dequantized in memory, but still flagged as quantized, which blocks training
    helpers and `save_pretrained`. The weights are plain tensors, so dropping the flag is safe."""
    # Attributes the loader sets, undeclared on the class: torch types an undeclared attribute as a Tensor
    # or a Module (`Module.__setattr__`), so they are set through an untyped name.
    loaded: Any = model
    if getattr(model, "hf_quantizer", None) is not None:
        loaded.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        loaded.is_quantized = False


def load_base(
    base: str, *, dtype: torch.dtype, attn_implementation: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer for training. Download-free when `base` is local or 'embedded'."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_location(base)
    source: str | Path = base
    kwargs: dict[str, Any] = {}
    if gguf is not None:
        source, kwargs["gguf_file"] = gguf
    model_kwargs: dict[str, Any] = {"dtype": dtype, **kwargs}
    if attn_implementation:
        model_kwargs["attn_implementation"] = attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--base {base}: cannot load the model ({first})") from None
    make_serializable(model)
    if tokenizer.eos_token is None:
        raise UserError(f"--base {base}: the tokenizer has no end-of-sequence token to end completions with")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
