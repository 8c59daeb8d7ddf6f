"""The quality gate: which kept instances a judge's Table 2 answers let into the training data.

Levels (`--min-quality`): `all` keeps an instance whose three answers are yes; `output` one whose task is
valid and whose output is correct (the input may be off); `none` keeps every kept instance (the paper's
behaviour). `auto`, the default, is `all` when a judge rated every kept instance and `none` otherwise. An
instance the judge did not rate, or answered without a clear yes or no, does not pass: it is counted
apart, never guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from selfinstruct.errors import UserError
from selfinstruct.quality.questions import LABELS
from selfinstruct.records import Answers, Question
from selfinstruct.store import RunReader

MinQuality = Literal["auto", "all", "output", "none"]
LEVELS: dict[str, tuple[Question, ...]] = {
    "all": ("valid_task", "input_ok", "output_ok"),
    "output": ("valid_task", "output_ok"),
    "none": (),
}
NOT_RATED = "not rated"


@dataclass(frozen=True)
class GateResult:
    """What the gate did: the level applied, the judge it read, the instance ids it let through (None:
    all of them) and, per reason, how many it dropped."""

    level: str
    judge: str | None = None
    passed: frozenset[int] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    considered: int = 0
    note: str = ""

    def describe(self) -> str:
        """One line for the command's output and the dataset card."""
        if self.passed is None:
            return f"quality gate: none{f' ({self.note})' if self.note else ''}"
        reasons = ", ".join(f"{reason} {n}" for reason, n in self.dropped.items()) or "nothing"
        return (
            f"quality gate: {self.level} (judge {self.judge}): kept {len(self.passed)} of {self.considered} "
            f"instances; dropped: {reasons}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "judge": self.judge,
            "kept": None if self.passed is None else len(self.passed),
            "considered": self.considered,
            "dropped": dict(self.dropped),
            "note": self.note,
        }


def verdict(answers: Answers | None, level: str) -> str | None:
    """None when the answers pass the level, else why not (the first failing question in Table 2's
    order)."""
    if answers is None:
        return NOT_RATED
    for key in LEVELS[level]:
        value = answers.get(key)
        if value is None:
            return f"unrated: {LABELS[key]}"
        if value is False:
            return f"no: {LABELS[key]}"
    return None


def choose_judge(run: RunReader, judge: str | None = None) -> str | None:
    """`judge` if it rated the run, else the judge that rated most (None when no judge rated)."""
    judges = dict(run.quality_judges())
    if judge is not None:
        if judge not in judges:
            known = ", ".join(judges) or "none"
            raise UserError(f"--gate-judge: {judge!r} rated nothing in this run (judges: {known})")
        return judge
    return next(iter(judges), None)


def apply_gate(run: RunReader, level: str = "auto", judge: str | None = None) -> GateResult:
    """Decide, for every kept instance of the run, whether it passes `level` by `judge`'s answers."""
    if level not in (*LEVELS, "auto"):
        raise UserError(f"--min-quality: expected auto, all, output or none, got {level!r}")
    chosen = choose_judge(run, judge)
    ids = [item.instance_id for item in run.rating_items()]
    if level == "none":
        return GateResult("none", considered=len(ids), note="asked for")
    if chosen is None:
        if level == "auto":
            return GateResult("none", considered=len(ids), note="the run is not rated")
        raise UserError(
            f"--min-quality {level}: no judge rated this run; rate it first (selfinstruct rate RUN_DIR "
            "--judge ...) or use --min-quality none"
        )
    answers = run.quality_answers(chosen)
    if level == "auto":
        missing = sum(1 for i in ids if i not in answers)
        if missing:
            note = f"judge {chosen} rated {len(ids) - missing} of {len(ids)} kept instances (a sample)"
            return GateResult("none", chosen, considered=len(ids), note=note)
        level = "all"
    reasons = {i: verdict(answers.get(i), level) for i in ids}
    dropped = Counter(reason for reason in reasons.values() if reason is not None)
    passed = frozenset(i for i, reason in reasons.items() if reason is None)
    ordered = {reason: dropped[reason] for reason in sorted(dropped, key=_reason_order)}
    return GateResult(level, chosen, passed, ordered, len(ids))


def _reason_order(reason: str) -> tuple[int, str]:
    order = [NOT_RATED, *(f"{kind}: {LABELS[k]}" for k in LEVELS["all"] for kind in ("no", "unrated"))]
    return (order.index(reason) if reason in order else len(order), reason)
