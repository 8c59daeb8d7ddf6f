"""Settings of the `eval superni` and `eval tasks` commands: the model that answers, the judge that rates,
and the decoding; one pydantic model, as `RunSettings` is for a run and `FinetuneSettings` for training.

`selfinstruct config --show --for eval` prints them; the eval commands' LM flags are generated from `lm`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_serializer

from selfinstruct.evaluate.run import DEFAULT_MAX_NEW_TOKENS
from selfinstruct.lm.credentials import public_urls
from selfinstruct.lm.settings import LMSettings


class EvalSettings(BaseModel):
    """The knobs both evaluations share, with the same defaults. Which evaluation, its items, the knobs
    whose defaults differ between them (--limit, --postprocess) and the report paths are the command's
    own options (`EvalConfig` holds the whole of one evaluation)."""

    model_config = ConfigDict(extra="forbid")

    lm: LMSettings = Field(default_factory=LMSettings, description="The model that answers the items.")
    judge: LMSettings | None = Field(
        default=None, description="The LLM judge rating replies A-D (eval tasks); none: no ratings."
    )
    max_new_tokens: int = Field(
        default=DEFAULT_MAX_NEW_TOKENS, ge=1, description="Longest reply, in tokens (SuperNI/paper: 128)."
    )
    stop: list[str] = Field(default_factory=list, description="Stop sequences (none by default).")
    early_stop: bool = Field(
        default=True,
        description="With postprocess first-sentence, stop decoding at the first period (same predictions).",
    )
    tasks_filter: str | None = Field(default=None, description="Keep tasks whose name matches (glob/regex).")
    template: str | None = Field(default=None, description="Prompt template instead of the standard one.")

    @field_serializer("lm", "judge", mode="wrap")
    def _lm_without_credentials(self, lm: LMSettings | None, handler: SerializerFunctionWrapHandler) -> Any:
        """A password written into a --base-url never reaches `config --show`."""
        return public_urls(handler(lm), "base_url")
