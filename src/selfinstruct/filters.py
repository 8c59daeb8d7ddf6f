"""The paper's filters. Each returns a named verdict so every drop is counted and explained."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from selfinstruct.config import FilterSettings
from selfinstruct.novelty.rouge import rouge_l_f, tokenize
from selfinstruct.parse import ParsedInstance
from selfinstruct.records import Instance

KEPT = "kept"

# Every verdict the pipeline stores besides KEPT, in the order its checks run. The end-of-run summary, the
# data report's funnel and the review page list verdicts in this order (docs/pipeline.md, "Verdicts").
# Stage 1: a reply cut by max_tokens, then InstructionFilter's checks, then novelty against the pool.
CANDIDATE_VERDICTS = (
    "truncated",
    "empty",
    "too_short",
    "too_long",
    "blacklist",
    "bad_prefix",
    "punctuation_start",
    "non_ascii_start",
    "novelty",
)
# Stage 3: filter_instances' checks, then the cap of `max_instances` per task.
INSTANCE_VERDICTS = (
    "truncated",
    "empty_output",
    "input_equals_output",
    "ends_with_colon",
    "copied_example",
    "conflicting_outputs",
    "duplicate",
    "over_limit",
)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # KEPT or the name of the filter that dropped the item
    detail: str | None = None

    @property
    def kept(self) -> bool:
        return self.verdict == KEPT


def normalize_instruction(raw: str) -> str:
    """Collapse whitespace, strip, capitalise the first letter."""
    text = " ".join(raw.split())
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class InstructionFilter:
    """Filters 1-5 of stage 1 (novelty, filter 6, needs the pool and lives in the pipeline)."""

    settings: FilterSettings

    @cached_property
    def _blacklist(self) -> re.Pattern[str] | None:
        words = [w for w in (*self.settings.blacklist, *self.settings.blacklist_extra) if w.strip()]
        if not words:
            return None
        alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
        return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def check(self, instruction: str) -> Verdict:
        if not instruction:
            return Verdict("empty")
        words = len(instruction.split())
        if words < self.settings.min_words:
            return Verdict("too_short", f"{words} words")
        if words > self.settings.max_words:
            return Verdict("too_long", f"{words} words")
        if self._blacklist is not None and (match := self._blacklist.search(instruction)):
            return Verdict("blacklist", match.group(0).lower())
        for prefix in self.settings.bad_prefixes:
            if instruction.startswith(prefix):
                return Verdict("bad_prefix", prefix)
        first = instruction[0]
        if first in string.punctuation:
            return Verdict("punctuation_start", first)
        if not first.isascii():
            return Verdict("non_ascii_start", first)
        return Verdict(KEPT)


@dataclass(frozen=True)
class CopyCheck:
    """Finds an instance that reproduces an example shown in the prompt that generated it (not in the
    paper: docs/pipeline.md). Small models copy a few-shot example's input and output under an unrelated
    instruction, whole or shortened. A field is a copy when it has at least `min_tokens` tokens and, against
    the same field of an example, either its ROUGE-L F is at least `threshold` (a near-exact copy, edits
    included) or the two share `ngram` consecutive tokens (a copied passage in a shorter or longer text).
    Tokens are rouge_score's (lowercase alphanumerics), so case, spacing and punctuation hide nothing.
    Short fields (a class label, "Yes") are never copies."""

    examples: Sequence[Instance]
    threshold: float = 0.7
    ngram: int = 8
    min_tokens: int = 4

    @cached_property
    def _fields(self) -> dict[str, list[list[str]]]:
        return {
            name: [t for e in self.examples if len(t := tokenize(getattr(e, name))) >= self.min_tokens]
            for name in ("input", "output")
        }

    @cached_property
    def _ngrams(self) -> dict[str, set[tuple[str, ...]]]:
        return {
            name: {g for tokens in fields for g in _ngrams(tokens, self.ngram)}
            for name, fields in self._fields.items()
        }

    def copied(self, inst: ParsedInstance) -> Verdict | None:
        """`Verdict("copied_example", field and evidence)` when `inst` reproduces an example, else None."""
        for name in ("input", "output"):
            tokens = tokenize(getattr(inst, name))
            if len(tokens) < self.min_tokens:
                continue
            best = max((rouge_l_f(tokens, example) for example in self._fields[name]), default=0.0)
            if best >= self.threshold:
                return Verdict("copied_example", f"{name} ROUGE-L {best:.2f}")
            if not self._ngrams[name].isdisjoint(_ngrams(tokens, self.ngram)):
                return Verdict("copied_example", f"{name} shares {self.ngram} consecutive tokens")
        return None


def _ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def filter_instances(parsed: Sequence[ParsedInstance], copies: CopyCheck | None = None) -> list[Verdict]:
    """Stage 3's instance filters, one verdict per parsed instance, in order.

    Per instance: cut by the length limit, empty output, input == output, input or output ending with ':'
    (a sign of truncation), then (with `copies`) a copy of a prompt example. Then for the task: two
    instances with the same non-empty input but different outputs void all of them; exact duplicates after
    the first are dropped."""
    verdicts: list[Verdict] = []
    for inst in parsed:
        if inst.truncated:
            verdicts.append(Verdict("truncated"))
        elif not inst.output:
            verdicts.append(Verdict("empty_output"))
        elif inst.input == inst.output:
            verdicts.append(Verdict("input_equals_output"))
        elif inst.input.endswith(":") or inst.output.endswith(":"):
            verdicts.append(Verdict("ends_with_colon"))
        elif copies is not None and (copy := copies.copied(inst)) is not None:
            verdicts.append(copy)
        else:
            verdicts.append(Verdict(KEPT))
    outputs_by_input: dict[str, set[str]] = {}
    for inst, verdict in zip(parsed, verdicts, strict=True):
        if verdict.kept and inst.input:
            outputs_by_input.setdefault(inst.input, set()).add(inst.output)
    if any(len(outputs) > 1 for outputs in outputs_by_input.values()):
        return [Verdict("conflicting_outputs") if v.kept else v for v in verdicts]
    seen: set[tuple[str, str]] = set()
    for index, (inst, verdict) in enumerate(zip(parsed, verdicts, strict=True)):
        if not verdict.kept:
            continue
        key = (inst.input, inst.output)
        if key in seen:
            verdicts[index] = Verdict("duplicate")
        seen.add(key)
    return verdicts
