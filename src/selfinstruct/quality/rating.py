"""Judges and the rating of a run's kept instances: each answer stored in the run as it arrives, so a rating
interrupted at any moment resumes with what it lacks (and an LLM judge's replies come from the run's
response cache, so a rerun costs nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from selfinstruct.config import RunSettings
from selfinstruct.lm.base import Request
from selfinstruct.lm.cache import ResponseCache
from selfinstruct.lm.client import LMClient, one_error
from selfinstruct.lm.factory import build_lm
from selfinstruct.lm.settings import LMSettings
from selfinstruct.quality.checks import check_item
from selfinstruct.quality.judge import (
    CHAT_JUDGE_DECODING,
    JUDGE_DECODING,
    Verdict,
    build_judge_prompt,
    parse_verdict,
)
from selfinstruct.records import RatingItem
from selfinstruct.store import RunStore

CHECKS = "checks"  # the model-free judge's name (`--judge checks`)
JUDGE_STAGE = "judge"  # the LM usage of an LLM judge is counted under this stage


class Judge(Protocol):
    """Answers the three Table 2 questions on one kept instance. `name` identifies it in the run."""

    @property
    def name(self) -> str: ...

    async def judge(self, item: RatingItem) -> Verdict: ...


class LLMJudge:
    """A language model asked the three questions (one request per instance, through the LM client)."""

    def __init__(self, client: LMClient) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return self.client.lm.identity

    def request(self, item: RatingItem) -> Request:
        prompt = build_judge_prompt(item.instruction, item.input, item.output)
        decoding = CHAT_JUDGE_DECODING if self.client.settings.api == "chat" else JUDGE_DECODING
        return Request(prompt, decoding, JUDGE_STAGE)

    async def judge(self, item: RatingItem) -> Verdict:
        reply = await self.client.complete(self.request(item))
        return parse_verdict(reply.text)


class ChecksJudge:
    """The model-free checks (`selfinstruct.quality.checks`): free, instant and the same on every run."""

    name = CHECKS

    async def judge(self, item: RatingItem) -> Verdict:
        return check_item(item)


def make_judge(
    settings: RunSettings, cache: ResponseCache | None, generator: LMClient | None = None
) -> tuple[Judge | None, LMClient | None]:
    """The run's judge (`quality.judge`) and the LM client it asks, if any. An embedded judge that is the
    generating model itself shares its loaded model (one copy in memory, one decoding thread); its usage
    is counted with the generator's, under the stage `judge`."""
    spec = settings.quality.judge
    if spec is None:
        return None, None
    if spec.strip() == CHECKS:
        return ChecksJudge(), None
    judge_lm = settings.judge_lm()
    assert judge_lm is not None
    same = (
        generator is not None
        and judge_lm.backend == "embedded"
        and settings.lm.backend == "embedded"
        and not settings.lm.lora
        and _model_fields(judge_lm) == _model_fields(settings.lm)
    )
    lm = generator.lm if same and generator is not None else build_lm(judge_lm)
    client = LMClient(lm, judge_lm, cache)
    client.spend_label = " (judge)"  # its endpoints apart from the generator's in the run's spending
    if generator is not None:
        client.usage = generator.usage
    return LLMJudge(client), client


def _model_fields(lm: LMSettings) -> tuple[object, ...]:
    return (lm.model, lm.threads, lm.context_length, lm.batch_invariant)


async def rate_items(
    judge: Judge,
    items: Sequence[RatingItem],
    store: RunStore,
    *,
    on_done: Callable[[RatingItem, Verdict], None] | None = None,
) -> int:
    """Rate every item (all in flight at once: the LM client limits how many are sent) and store each
    verdict when it arrives. A failure stops the others and is raised; what was stored stays. Returns the
    number rated."""
    done = 0

    async def one(item: RatingItem) -> None:
        nonlocal done
        verdict = await judge.judge(item)
        store.save_quality_rating(
            item.instance_id, judge.name, verdict.answers, verdict.reasons, verdict.reply
        )
        done += 1
        if on_done is not None:
            on_done(item, verdict)

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
    except BaseExceptionGroup as failed:
        error = one_error(failed)
        raise error from error.__cause__
    return done


def unrated(store: RunStore, judge: str, items: Sequence[RatingItem]) -> list[RatingItem]:
    """The items `judge` has not rated yet."""
    rated = store.rated_instance_ids(judge)
    return [item for item in items if item.instance_id not in rated]
