"""Reads model responses to rate A–D from an evaluation results JSON (`selfinstruct eval ... --out`).

Read defensively: the file is parsed as plain JSON (never trusted to match a schema), every field is optional
except an item's prediction, and whatever is present is shown.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import InputFileError, UserError

_PREDICTION_KEYS = ("prediction", "response", "output", "completion")
_INSTRUCTION_KEYS = ("instruction", "definition")


@dataclass(frozen=True)
class ResponseItem:
    key: str  # unique across eval files and models: '<source>:<model>:<id>'
    id: str
    task: str
    instruction: str
    input: str
    prediction: str
    references: tuple[str, ...]
    scores: tuple[tuple[str, float], ...]
    judge: str  # the LLM judge's rating, if any
    model: str


def _s(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _first(obj: dict[str, object], keys: tuple[str, ...]) -> str:
    for key in keys:
        if isinstance(obj.get(key), str):
            return str(obj[key])
    return ""


def _model_label(doc: dict[str, object]) -> str:
    model = doc.get("model")
    if isinstance(model, dict):
        return _s(model.get("model") or model.get("backend"))
    return _s(model)


def load_eval_items(path: Path) -> list[ResponseItem]:
    if not path.exists():
        raise UserError(f"{path}: no such evaluation file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, None, f"cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(path, exc.lineno, f"not valid JSON: {exc.msg}") from exc
    if isinstance(doc, list):
        raw_items, model = doc, ""
    elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
        raw_items, model = doc["items"], _model_label(doc)
    else:
        raise InputFileError(path, None, "expected an evaluation report with an 'items' list")
    items: list[ResponseItem] = []
    for index, obj in enumerate(raw_items):
        if not isinstance(obj, dict) or (not _first(obj, _PREDICTION_KEYS) and "prediction" not in obj):
            continue  # nothing to rate
        refs = obj.get("references", obj.get("reference", ()))
        references = (refs,) if isinstance(refs, str) else tuple(_s(r) for r in refs or () if r is not None)
        scores_obj = obj.get("scores")
        scores = tuple(
            (str(k), float(v))
            for k, v in (scores_obj.items() if isinstance(scores_obj, dict) else ())
            if isinstance(v, int | float)
        )
        judge_obj = obj.get("judge")
        judge = _s(judge_obj.get("rating")) if isinstance(judge_obj, dict) else ""
        item_id = _s(obj.get("id")) or str(index)
        items.append(
            ResponseItem(
                key=f"{path.name}:{model}:{item_id}",
                id=item_id,
                task=_s(obj.get("task")),
                instruction=_first(obj, _INSTRUCTION_KEYS),
                input=_s(obj.get("input")),
                prediction=_first(obj, _PREDICTION_KEYS),
                references=references,
                scores=scores,
                judge=judge,
                model=model,
            )
        )
    return items


def sample_responses(items: list[ResponseItem], size: int, seed: int) -> list[ResponseItem]:
    """A reproducible sample in file order."""
    if size >= len(items):
        return list(items)
    picked = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[i] for i in picked]
