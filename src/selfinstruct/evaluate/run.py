"""Running an evaluation: generate every prediction through the LM client, score it, optionally judge it.

All requests go through `selfinstruct.lm`'s client, so they share its concurrency limit, retries and
response cache: a rerun with the same model, prompts and decoding sends no request, and a run that was
interrupted resumes with only the missing requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from selfinstruct.evaluate.items import EvalItem
from selfinstruct.evaluate.judge import build_judge_prompt, parse_judgement
from selfinstruct.evaluate.metrics import score_prediction
from selfinstruct.evaluate.predictions import PredictionSet
from selfinstruct.evaluate.report import EvalReport, ItemRecord, JudgeRecord, ModelInfo, aggregate
from selfinstruct.lm.base import Completion, Decoding, Request

Postprocess = Literal["first-sentence", "first-line", "strip"]
POSTPROCESS_CHOICES: tuple[Postprocess, ...] = ("first-sentence", "first-line", "strip")
# SuperNI's evaluation of GPT-3 (which the Self-Instruct paper follows) decodes up to 128 tokens.
DEFAULT_MAX_NEW_TOKENS = 128
JUDGE_MAX_TOKENS = 96


class CompletionClient(Protocol):
    """What evaluation needs of `selfinstruct.lm.client.LMClient`."""

    async def complete_many(self, requests: Sequence[Request]) -> list[Completion]: ...


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    stop: tuple[str, ...] = ()
    postprocess: Postprocess = "first-sentence"
    seed: int | None = None
    early_stop: bool = True

    def stop_sequences(self) -> tuple[str, ...]:
        """The user's stops, plus "." when only the first sentence is scored: greedy decoding makes the
        text before the first period the same either way, and the model stops instead of writing up to
        `max_new_tokens` that would be thrown away (several times faster on a local model)."""
        if self.early_stop and self.postprocess == "first-sentence" and "." not in self.stop:
            return (*self.stop, ".")
        return self.stop

    def decoding(self) -> Decoding:
        # Greedy decoding, as in the paper's evaluation.
        return Decoding(
            temperature=0.0,
            top_p=1.0,
            max_tokens=self.max_new_tokens,
            stop=self.stop_sequences(),
            seed=self.seed,
        )


def postprocess_prediction(text: str, mode: Postprocess) -> str:
    """Turn a raw completion into the prediction that is scored.

    `first-sentence` is what SuperNI's GPT-3 evaluation did (strip, keep the text before the first
    period): a plain LM rarely stops after the answer, so the rest would only dilute ROUGE-L.
    `first-line` keeps the first non-empty line; `strip` keeps everything.
    """
    stripped = text.strip()
    if mode == "first-sentence":
        return stripped.split(".")[0].strip()
    if mode == "first-line":
        return next((line.strip() for line in stripped.splitlines() if line.strip()), "")
    return stripped


async def generate_records(
    client: CompletionClient, items: Sequence[EvalItem], options: GenerationOptions
) -> list[ItemRecord]:
    """One request per item (the cache answers those already made), then the scores of each reply."""
    decoding = options.decoding()
    requests = [Request(item.prompt, decoding, stage="eval", metadata={"id": item.id}) for item in items]
    completions = await client.complete_many(requests)
    return [
        scored_record(item, completion.text, completion.finish_reason, options.postprocess)
        for item, completion in zip(items, completions, strict=True)
    ]


def scored_record(item: EvalItem, raw: str, finish_reason: str, postprocess: Postprocess) -> ItemRecord:
    """One item's record: the reply post-processed, then scored against the item's references."""
    prediction = postprocess_prediction(raw, postprocess)
    return ItemRecord(
        id=item.id,
        task=item.task,
        category=item.category,
        instruction=item.instruction,
        input=item.input,
        prompt=item.prompt,
        prediction=prediction,
        raw_output=raw,
        finish_reason=finish_reason,
        references=list(item.references),
        scores=score_prediction(prediction, item.references, english=item.english),
    )


def given_records(
    items: Sequence[EvalItem], predictions: PredictionSet, postprocess: Postprocess
) -> list[ItemRecord]:
    """Records for predictions made elsewhere: each given text is post-processed and scored exactly like
    a model's reply (`finish_reason` says `given`, or `missing` for an item scored as empty)."""
    records = []
    for item in items:
        given = predictions.by_id[item.id]
        finish = "given" if given.line is not None else "missing"
        records.append(scored_record(item, given.text, finish, postprocess))
    return records


async def judge_records(
    client: CompletionClient, records: Sequence[ItemRecord], max_tokens: int = JUDGE_MAX_TOKENS
) -> list[ItemRecord]:
    """Ask the judge to rate every prediction A-D; replies without a readable letter stay unrated."""
    decoding = Decoding(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    requests = [
        Request(
            build_judge_prompt(record.instruction, record.input, record.references[0], record.prediction),
            decoding,
            stage="judge",
            metadata={"id": record.id},
        )
        for record in records
    ]
    replies = await client.complete_many(requests)
    judged = []
    for record, reply in zip(records, replies, strict=True):
        judgement = parse_judgement(reply.text)
        judge = JudgeRecord(rating=judgement.rating, reason=judgement.reason, raw=reply.text)
        judged.append(record.model_copy(update={"judge": judge}))
    return judged


def build_report(
    kind: str,
    records: Sequence[ItemRecord],
    model: ModelInfo,
    options: dict[str, object],
    judge: ModelInfo | None = None,
    group_by: str = "category",
) -> EvalReport:
    overall, per_category, per_task = aggregate(records)
    return EvalReport(
        kind=kind,
        group_by=group_by,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model=model,
        judge=judge,
        options=options,
        overall=overall,
        per_category=per_category,
        per_task=per_task,
        items=list(records),
    )
