"""Settings of the LM layer: which backend, how to reach it, how hard to push it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BackendName = Literal["embedded", "openai", "transformers"]


class LMSettings(BaseModel):
    """Everything needed to build a backend and the client around it. Keys never live here: only the
    name of the environment variable that holds one."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "embedded"
    model: str | None = Field(
        default=None,
        description="Model name (openai), path or Hugging Face id (transformers), or a GGUF path (embedded).",
    )
    base_url: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000/v1"],
        description="OpenAI-compatible endpoint(s); several spread the load.",
    )
    api: Literal["completion", "chat"] = "completion"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    timeout: float = Field(default=120.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(default=6, ge=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    threads: int = Field(default=1, ge=1, description="CPU threads of the embedded model.")
    context_length: int = Field(default=2048, ge=256, description="Context window of the embedded model.")
    device: str | None = Field(default=None, description="transformers device: cpu, cuda, cuda:1 ...")
    batch_size: int = Field(default=16, ge=1, description="transformers: prompts decoded together.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    endpoint_backoff: float = Field(default=30.0, ge=0, description="Seconds a failing endpoint rests.")
