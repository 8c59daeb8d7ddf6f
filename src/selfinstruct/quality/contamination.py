"""Contamination with evaluation sets: which generated instructions and instances overlap the sets a model
will be evaluated on (this project's addition; the paper has no such check). Two checks, per set:

- **Instructions**: a generated instruction is flagged when its ROUGE-L F with an evaluation task's
  instruction (SuperNI: its definition) is above `threshold` (0.7, the paper's novelty threshold), strictly,
  as the novelty filter decides: a score of exactly 0.7 is not flagged. Scores are rouge_score's rougeL
  fmeasure (no stemming), bit for bit, from the exact novelty index built once over the set's instructions.
- **Instances**: a generated instance is flagged when one of its fields (instruction, input, output)
  shares an n-gram of `ngram` tokens (13, GPT-3's rule) with an evaluation instance's input or one of
  its references. Tokens are rouge_score's (`novelty.rouge.tokenize`): lowercased, every run of
  characters outside [a-z0-9] separates (so text in other scripts has no tokens), whitespace and
  punctuation never count. N-grams never cross from one field into another. An evaluation field shorter
  than `ngram` tokens counts whole, as one n-gram of its own length, when it has at least 8 tokens
  (GPT-3's smallest n): a generated field containing it is flagged. Shorter ones (labels such as
  "positive") are skipped: they would match by chance. The evaluation side's n-grams are hashed into one
  sorted table per set, so the check is linear in the generated data; every hit is confirmed token by
  token, so a hash collision never flags anything.

Each flagged item is reported once per set, with its best-scoring evaluation instruction (ties: the
set's first) or the first evaluation instance it shares an n-gram with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from selfinstruct.errors import InputFileError
from selfinstruct.jsonl import json_type_name, read_jsonl
from selfinstruct.novelty import NOVELTY_THRESHOLD
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.novelty.rouge import tokenize
from selfinstruct.records import EvalText
from selfinstruct.store import RunReader

DEFAULT_THRESHOLD = NOVELTY_THRESHOLD  # a knob of its own, starting at the paper's novelty threshold
DEFAULT_NGRAM = 13  # GPT-3's contamination n-gram
MIN_SHORT_FIELD = 8  # GPT-3's smallest n: shorter evaluation fields are not compared
GENERATED_FIELDS = ("instruction", "input", "output")
NORMALISATION = (
    "rouge_score tokens: lowercased, every run of characters outside [a-z0-9] separates, no stemming"
)


# -- the generated side ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratedInstruction:
    """A generated instruction; `where` tells a person where to find it (a run's id, a file's line)."""

    id: int
    text: str
    where: str = ""


@dataclass(frozen=True)
class GeneratedInstance:
    """A generated instance with its instruction (`instruction_id` is a `GeneratedInstruction`'s id)."""

    id: int
    instruction_id: int
    instruction: str
    input: str
    output: str
    where: str = ""


@dataclass(frozen=True)
class GeneratedData:
    instructions: tuple[GeneratedInstruction, ...]
    instances: tuple[GeneratedInstance, ...]


def generated_from_run(run: RunReader) -> GeneratedData:
    """A run's kept instructions (also those without instances) and kept instances, by their store ids."""
    instructions = tuple(
        GeneratedInstruction(k.id, k.instruction, f"instruction {k.id}") for k in run.kept_instructions()
    )
    instances = tuple(
        GeneratedInstance(
            r.instance_id, r.instruction_id, r.instruction, r.input, r.output, f"instance {r.instance_id}"
        )
        for r in run.rating_items()
    )
    return GeneratedData(instructions, instances)


def read_generated_file(path: Path) -> GeneratedData:
    """Generated data from JSONL: `instruction` with `input`/`output` (`all_generated_instances.jsonl`),
    with a seed-style `instances` list, or alone. Rows with the same instruction text are one instruction
    (id: its order of first appearance); instances are numbered from 1 in file order."""
    instructions: dict[str, GeneratedInstruction] = {}
    instances: list[GeneratedInstance] = []
    for number, _, obj in read_jsonl(path):
        text = obj.get("instruction")
        if not isinstance(text, str):
            what = "no 'instruction' field" if text is None else f"'instruction' is a {json_type_name(text)}"
            raise InputFileError(path, number, f"{what}; expected a string")
        if text not in instructions:
            instructions[text] = GeneratedInstruction(len(instructions) + 1, text, f"line {number}")
        rows = _instance_rows(obj, path, number)
        for k, (inp, out) in enumerate(rows, start=1):
            where = f"line {number}" + (f" instance {k}" if "instances" in obj else "")
            instances.append(
                GeneratedInstance(len(instances) + 1, instructions[text].id, text, inp, out, where)
            )
    if not instructions:
        raise InputFileError(path, None, "no rows")
    return GeneratedData(tuple(instructions.values()), tuple(instances))


def _instance_rows(obj: dict[str, object], path: Path, line: int) -> list[tuple[str, str]]:
    if "instances" in obj:
        raw = obj["instances"]
        if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
            raise InputFileError(path, line, "'instances' must be a list of objects")
        return [_pair(item, path, line, f"instance {k}: ") for k, item in enumerate(raw, start=1)]
    if "input" in obj or "output" in obj:
        return [_pair(obj, path, line, "")]
    return []  # an instruction alone (machine_generated_instructions.jsonl)


def _pair(obj: dict[str, object], path: Path, line: int, lead: str) -> tuple[str, str]:
    values = []
    for key in ("input", "output"):
        value = obj.get(key, "")
        if not isinstance(value, str):
            raise InputFileError(path, line, f"{lead}'{key}' must be a string, got {json_type_name(value)}")
        values.append(value)
    return values[0], values[1]


# -- the report ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstructionMatch:
    """A generated instruction whose ROUGE-L F with an evaluation instruction is above the threshold."""

    eval_set: str
    generated_id: int
    generated: str
    eval_task: str
    eval_instruction: str
    score: float
    where: str = ""


@dataclass(frozen=True)
class InstanceMatch:
    """A generated instance sharing an n-gram (`ngram`, normalised tokens) with an evaluation instance:
    `generated_field` (instruction, input or output) with `eval_field` (input, or reference N)."""

    eval_set: str
    generated_id: int
    instruction_id: int
    generated_field: str
    generated_instruction: str
    generated_input: str
    generated_output: str
    eval_task: str
    eval_item: str
    eval_field: str
    eval_input: str
    eval_references: tuple[str, ...]
    ngram: str
    where: str = ""


@dataclass(frozen=True)
class SetCounts:
    """One evaluation set: its size and how many generated instructions and instances it flagged."""

    name: str
    tasks: int
    instances: int
    instructions_flagged: int
    instances_flagged: int


@dataclass(frozen=True)
class ContaminationReport:
    threshold: float
    ngram: int
    generated_instructions: int
    generated_instances: int
    sets: tuple[SetCounts, ...]
    instruction_matches: tuple[InstructionMatch, ...]
    instance_matches: tuple[InstanceMatch, ...]

    @property
    def flagged_instruction_ids(self) -> frozenset[int]:
        return frozenset(m.generated_id for m in self.instruction_matches)

    @property
    def flagged_instance_ids(self) -> frozenset[int]:
        """Instances sharing an n-gram (those of a flagged instruction: see `ids_to_drop`)."""
        return frozenset(m.generated_id for m in self.instance_matches)

    @property
    def found(self) -> bool:
        return bool(self.instruction_matches or self.instance_matches)

    def summary(self) -> dict[str, object]:
        """The counts alone (what a run's meta keeps for its dataset card)."""
        return {
            "threshold": self.threshold,
            "ngram": self.ngram,
            "normalisation": NORMALISATION,
            "generated": {"instructions": self.generated_instructions, "instances": self.generated_instances},
            "flagged": {
                "instructions": len(self.flagged_instruction_ids),
                "instances": len(self.flagged_instance_ids),
            },
            "sets": [asdict(s) for s in self.sets],
        }

    def as_dict(self) -> dict[str, object]:
        """The whole report, JSON-ready."""
        return {
            **self.summary(),
            "instruction_matches": [asdict(m) for m in self.instruction_matches],
            "instance_matches": [
                {**asdict(m), "eval_references": list(m.eval_references)} for m in self.instance_matches
            ],
        }


def ids_to_drop(instances: Iterable[GeneratedInstance], report: ContaminationReport) -> frozenset[int]:
    """The ids of the instances to leave out of training data: each one sharing an n-gram with an
    evaluation instance, and every instance of an instruction the ROUGE-L check flagged."""
    instructions = report.flagged_instruction_ids
    shared = report.flagged_instance_ids
    return frozenset(i.id for i in instances if i.id in shared or i.instruction_id in instructions)


# -- the check -----------------------------------------------------------------------------------------------
def check_contamination(
    instructions: Sequence[GeneratedInstruction],
    instances: Sequence[GeneratedInstance],
    eval_texts: Iterable[EvalText],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = DEFAULT_NGRAM,
) -> ContaminationReport:
    """Both checks of every generated instruction and instance against each evaluation set in
    `eval_texts` (grouped by `set_name`, in order of first appearance)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}")
    by_set: dict[str, list[EvalText]] = {}
    for text in eval_texts:
        by_set.setdefault(text.set_name, []).append(text)
    vocab: dict[str, int] = {}
    tables = {name: _NgramTable(texts, vocab, ngram) for name, texts in by_set.items()}
    generated = _GeneratedFields(instances, vocab)
    counts: list[SetCounts] = []
    by_instruction: list[InstructionMatch] = []
    by_instance: list[InstanceMatch] = []
    for name, texts in by_set.items():
        found_instructions = _instruction_matches(instructions, texts, threshold)
        found_instances = tables[name].matches(generated, instances, texts)
        by_instruction += found_instructions
        by_instance += found_instances
        tasks = len({t.task for t in texts})
        items = sum(1 for t in texts if t.input or t.references)
        counts.append(SetCounts(name, tasks, items, len(found_instructions), len(found_instances)))
    return ContaminationReport(
        threshold,
        ngram,
        len(instructions),
        len(instances),
        tuple(counts),
        tuple(by_instruction),
        tuple(by_instance),
    )


def _instruction_matches(
    instructions: Sequence[GeneratedInstruction], texts: Sequence[EvalText], threshold: float
) -> list[InstructionMatch]:
    if not instructions:
        return []
    task_of: dict[str, str] = {}
    for text in texts:
        task_of.setdefault(text.instruction, text.task)
    # The decision-only index is the fast one (it stops at the first score above the threshold); only the
    # few flagged instructions are asked again, for their best match.
    decide = NoveltyIndex(threshold=threshold, top_k=0)
    for instruction in task_of:
        decide.add(instruction)
    flagged = [g for g in instructions if not decide.check(g.text).kept]
    if not flagged:
        return []
    best = NoveltyIndex(threshold=threshold, top_k=1)
    for instruction in task_of:
        best.add(instruction)
    name = texts[0].set_name
    matches = []
    for g in flagged:
        top = best.check(g.text).most_similar[0]
        matches.append(
            InstructionMatch(
                name, g.id, g.text, task_of[top.instruction], top.instruction, top.score, g.where
            )
        )
    return matches


# -- n-grams -------------------------------------------------------------------------------------------------
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication by it is a bijection mod 2**64


def _mixed(ids: np.ndarray) -> np.ndarray:
    """splitmix64 of each token id: well-spread 64-bit values, so that the window hash mixes well."""
    z = ids.astype(np.uint64) + _MULT
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hashes(mixed: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """A 64-bit hash of each window of `width` mixed token ids from `starts` (wrapping arithmetic; the
    width is hashed too)."""
    h = np.full(len(starts), width, np.uint64)
    for i in range(width):
        h = (h ^ mixed[starts + i]) * _MULT
    return h


def _windows(starts: np.ndarray, lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of `width` tokens inside each text: (its start in the token array, its text)."""
    counts = np.maximum(lengths - width + 1, 0)
    text = np.repeat(np.arange(len(lengths)), counts)
    first = np.cumsum(counts) - counts
    offset = np.arange(int(counts.sum())) - np.repeat(first, counts)
    return starts[text] + offset, text


def _pack(token_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token id lists as one array with each list's start and length."""
    lengths = np.fromiter((len(t) for t in token_lists), np.int64, len(token_lists))
    starts = np.cumsum(lengths) - lengths
    toks = np.fromiter((i for t in token_lists for i in t), np.int64, int(lengths.sum()))
    return toks, starts, lengths


class _GeneratedFields:
    """The generated instances' fields as token ids (-1: a token no evaluation text has), three per
    instance in GENERATED_FIELDS order; an instruction shared by many instances is tokenized once."""

    def __init__(self, instances: Sequence[GeneratedInstance], vocab: dict[str, int]) -> None:
        cache: dict[str, list[int]] = {}

        def ids(text: str) -> list[int]:
            found = cache.get(text)
            if found is None:
                found = cache[text] = [vocab.get(t, -1) for t in tokenize(text)]
            return found

        lists = []
        for inst in instances:
            lists += [
                ids(inst.instruction),
                [vocab.get(t, -1) for t in tokenize(inst.input)],
                ids(inst.output),
            ]
        self.toks, self.starts, self.lengths = _pack(lists)
        self.mixed = _mixed(self.toks)
        # unknown[k] = unknown tokens before position k: a window holding one matches nothing.
        self.unknown = np.concatenate(([0], np.cumsum(self.toks < 0)))


class _NgramTable:
    """One evaluation set's n-grams (inputs and references), hashed and sorted for look-ups."""

    def __init__(self, texts: Sequence[EvalText], vocab: dict[str, int], ngram: int) -> None:
        lists: list[list[int]] = []
        self.owner: list[tuple[int, str]] = []  # per field: its EvalText's index and the field's name
        for index, text in enumerate(texts):
            fields = [("input", text.input)]
            fields += [
                (f"reference {k}" if len(text.references) > 1 else "reference", r)
                for k, r in enumerate(text.references, 1)
            ]
            for label, value in fields:
                tokens = tokenize(value)
                if len(tokens) < min(MIN_SHORT_FIELD, ngram):
                    continue
                lists.append([vocab.setdefault(t, len(vocab)) for t in tokens])
                self.owner.append((index, label))
        self.toks, starts, lengths = _pack(lists)
        self.mixed = _mixed(self.toks)
        # Long fields give every window of `ngram` tokens; a short one (MIN_SHORT_FIELD or more) itself.
        win, field = _windows(starts, lengths, ngram)
        parts = [(win, field, np.full(len(win), ngram, np.int64))]
        short = np.flatnonzero(lengths < ngram)
        for width in np.unique(lengths[short]).tolist():
            chosen = short[lengths[short] == width]
            parts.append((starts[chosen], chosen, np.full(len(chosen), width, np.int64)))
        self.widths = sorted({ngram, *np.unique(lengths[short]).tolist()})
        keys = np.concatenate([self._hash(s, w) for s, _, w in parts])
        order = np.argsort(keys, kind="stable")  # equal keys keep the set's order: the first item wins
        self.keys = keys[order]
        self.start = np.concatenate([p[0] for p in parts])[order]
        self.field = np.concatenate([p[1] for p in parts])[order]
        self.width = np.concatenate([p[2] for p in parts])[order]
        # A byte per slot, addressed by a hash's top bits, 8 to 16 slots per key: most generated windows
        # miss at one random read, and only the rest pay the binary search in `keys`.
        self.bits = max(10, int(8 * len(keys)).bit_length() + 1)
        self.present = np.zeros(1 << self.bits, np.bool_)
        self.present[self._slot(self.keys)] = True

    def _slot(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> np.uint64(64 - self.bits)).astype(np.intp)

    def _hash(self, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
        out = np.empty(len(starts), np.uint64)
        for width in np.unique(widths).tolist():
            chosen = widths == width
            out[chosen] = _hashes(self.mixed, starts[chosen], width)
        return out

    def matches(
        self, gen: _GeneratedFields, instances: Sequence[GeneratedInstance], texts: Sequence[EvalText]
    ) -> list[InstanceMatch]:
        """The first shared n-gram of each generated instance (fields in order, then position)."""
        if len(self.keys) == 0 or len(instances) == 0:
            return []
        hits_field, hits_start, hits_pos, hits_width = [], [], [], []
        for width in self.widths:
            starts, field = _windows(gen.starts, gen.lengths, width)
            known = gen.unknown[starts + width] == gen.unknown[starts]
            starts, field = starts[known], field[known]
            h = _hashes(gen.mixed, starts, width)
            maybe = np.flatnonzero(self.present[self._slot(h)])
            pos = np.searchsorted(self.keys, h[maybe])
            hit = pos < len(self.keys)
            hit[hit] = self.keys[pos[hit]] == h[maybe[hit]]
            found = maybe[hit]
            hits_field.append(field[found])
            hits_start.append(starts[found])
            hits_pos.append(pos[hit])
            hits_width.append(np.full(len(found), width, np.int64))
        field, start = np.concatenate(hits_field), np.concatenate(hits_start)
        pos, width = np.concatenate(hits_pos), np.concatenate(hits_width)
        if len(field) == 0:
            return []
        # Positions in the one token array grow with the field (instance, then its field order): sorting by
        # them orders the hits by instance, field and position; stable, so the shorter n-gram comes first.
        order = np.argsort(start, kind="stable")
        field, start, pos, width = field[order], start[order], pos[order], width[order]
        instance_of = field // len(GENERATED_FIELDS)
        bounds = np.flatnonzero(np.diff(instance_of, prepend=-1))
        ends = np.append(bounds[1:], len(instance_of))
        found_matches = []
        for lo, hi in zip(bounds.tolist(), ends.tolist(), strict=True):
            for k in range(lo, hi):
                entry = self._confirm(gen, int(start[k]), int(width[k]), int(pos[k]))
                if entry is not None:
                    inst = instances[int(instance_of[k])]
                    found_matches.append(
                        self._match(
                            inst,
                            int(field[k]),
                            int(start[k] - gen.starts[field[k]]),
                            int(width[k]),
                            entry,
                            texts,
                        )
                    )
                    break
        return found_matches

    def _confirm(self, gen: _GeneratedFields, start: int, width: int, pos: int) -> int | None:
        """The table entry whose tokens equal the generated window (None: a hash collision)."""
        window = gen.toks[start : start + width]
        key = self.keys[pos]
        while pos < len(self.keys) and self.keys[pos] == key:
            s = int(self.start[pos])
            if self.width[pos] == width and np.array_equal(self.toks[s : s + width], window):
                return pos
            pos += 1
        return None

    def _match(
        self,
        inst: GeneratedInstance,
        field: int,
        offset: int,
        width: int,
        entry: int,
        texts: Sequence[EvalText],
    ) -> InstanceMatch:
        name = GENERATED_FIELDS[field % len(GENERATED_FIELDS)]
        tokens = tokenize(getattr(inst, name))[offset : offset + width]
        index, label = self.owner[int(self.field[entry])]
        text = texts[index]
        return InstanceMatch(
            text.set_name,
            inst.id,
            inst.instruction_id,
            name,
            inst.instruction,
            inst.input,
            inst.output,
            text.task,
            text.item_id,
            label,
            text.input,
            text.references,
            " ".join(tokens),
            inst.where,
        )
