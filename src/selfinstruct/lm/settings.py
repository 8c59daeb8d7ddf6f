"""Settings of the LM layer: which backend, how to reach it, how hard to push it."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfinstruct.errors import UserError

# The names of `lm.factory.BACKENDS`, the registry (a test holds the two equal; a Literal because pydantic
# validates against it and the generated --backend flag lists its choices in --help).
BackendName = Literal["embedded", "openai", "transformers"]


class LMSettings(BaseModel):
    """Everything needed to build a backend and the client around it. Keys never live here: only the
    name of the environment variable that holds one."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = Field(
        default="embedded",
        description="embedded (offline Gemma 3 270M via llama.cpp), openai (any OpenAI-compatible server), "
        "transformers (a local Hugging Face model).",
    )
    model: str | None = Field(
        default=None,
        description="Model name (openai), path or Hugging Face id (transformers), or a GGUF path (embedded).",
    )
    base_url: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000/v1"],
        description="OpenAI-compatible endpoint(s); several spread the load.",
    )
    api: Literal["completion", "chat"] = Field(
        default="completion",
        description="openai backend: completion for base models (raw prompts), chat for instruction models.",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the API key (local servers need none).",
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        description="Requests in flight at once (embedded: decoded together, one KV cache of "
        "context_length tokens each; 1 decodes one at a time, token-identical to llama-cpp-python).",
    )
    timeout: float = Field(default=120.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(
        default=6, ge=0, description="Retries on 429/5xx/timeouts (exponential backoff)."
    )
    reply_retries: int = Field(
        default=4,
        ge=0,
        description="Retries of an empty or malformed reply, a budget apart from --max-retries "
        "(then an empty reply is accepted, a malformed one fails).",
    )
    requests_per_minute: float | None = Field(default=None, gt=0, description="Optional request rate limit.")
    tokens_per_minute: float | None = Field(default=None, gt=0, description="Optional token rate limit.")
    threads: int | Literal["auto"] = Field(
        default="auto",
        description="CPU threads of the embedded model: a number, or auto (one per physical core this "
        "process may use; OpenMP waits passively, so a busy machine does not collapse).",
    )
    lora: str | None = Field(
        default=None,
        description="embedded: a LoRA adapter in llama.cpp's GGUF format (finetune writes OUT/adapter.gguf), "
        "applied on the base model.",
    )
    context_length: int = Field(default=2048, ge=256, description="Context window of the embedded model.")
    batch_invariant: bool = Field(
        default=True,
        description="embedded: replies independent of what they are batched with, so a run is the same at "
        "any concurrency, thread count or timing; --no-batch-invariant takes llama.cpp's default kernels "
        "(up to 1.1x faster in evaluation, replies depend on the batch; docs/benchmarks.md).",
    )
    device: str | None = Field(default=None, description="transformers device: cpu, cuda, cuda:1 ...")
    batch_size: int = Field(default=16, ge=1, description="transformers: prompts decoded together.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="transformers: weight dtype."
    )
    endpoint_backoff: float = Field(default=30.0, ge=0, description="Seconds a failing endpoint rests.")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, value: object) -> int | str:
        """A number of threads (1 or more) or `auto`; one message for any other value."""
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
            raise ValueError(f"expected a number of threads (1 or more) or auto, got {value!r}")
        return int(text)


def parse_model_spec(spec: str, option: str = "--judge") -> tuple[BackendName, str | None]:
    """`BACKEND/MODEL` (`openai/gpt-4o-mini`, `transformers/Qwen/Qwen2.5-7B-Instruct`, `embedded/x.gguf`),
    a backend alone (`embedded`: its default model), or a bare model name, which means an OpenAI-compatible
    server. `option` names the flag in errors."""
    spec = spec.strip()
    if not spec:
        raise UserError(f"{option}: give BACKEND/MODEL, for example openai/gpt-4o-mini")
    backends: tuple[BackendName, ...] = get_args(BackendName)
    head, sep, rest = spec.partition("/")
    for backend in backends:
        if head == backend:
            if sep and not rest.strip():
                raise UserError(
                    f"{option} {spec}: give the model after the slash, for example openai/gpt-4o-mini"
                )
            return backend, rest or None
    return "openai", spec
