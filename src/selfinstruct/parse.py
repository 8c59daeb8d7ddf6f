"""Turning untrusted LM text back into candidate instructions and instances. Never raises on odd text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LIST_ITEM = re.compile(r"^\s*\d+\s*[.)]\s?", re.MULTILINE)
_EXAMPLE_SPLIT = re.compile(r"^[ \t]*Example\s*\d+[ \t]*:?", re.MULTILINE)
_OUTPUT_SPLIT = re.compile(r"Output\s*\d*\s*:", re.IGNORECASE)
_INPUT_PREFIX = re.compile(r"^\s*Input\s*\d*\s*:", re.IGNORECASE)
_CLASS_LABEL = re.compile(r"Class\s*label\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedInstance:
    input: str
    output: str
    truncated: bool = False  # the last instance of a reply cut by the length limit


def split_instructions(reply: str, first_number: int = 9) -> list[str]:
    """Split a stage-1 reply (the continuation after `first_number.`) on its list numbers."""
    text = f"{first_number}. {reply.lstrip()}" if reply.strip() else ""
    items = _LIST_ITEM.split(text)
    return [item.strip() for item in items if item.strip()]


def parse_input_first(reply: str, truncated: bool) -> list[ParsedInstance]:
    """`Example N / Input: ... / Output: ...` blocks, or a lone `Output: ...` for input-free tasks."""
    blocks = [b for b in _EXAMPLE_SPLIT.split(reply) if b.strip()]
    parsed: list[ParsedInstance] = []
    for block in blocks:
        pieces = _OUTPUT_SPLIT.split(block, maxsplit=1)
        if len(pieces) == 1:
            # No output marker: an input without an output (dropped later as empty output).
            inp, out = pieces[0], ""
        else:
            inp, out = pieces
        inp = _INPUT_PREFIX.sub("", inp, count=1)
        parsed.append(ParsedInstance(inp.strip(), out.strip()))
    return _mark_last_truncated(parsed, truncated)


def parse_output_first(reply: str, truncated: bool) -> list[ParsedInstance]:
    """`Class label: L / Input: ...` blocks: the first line is the label (the output), the rest the input."""
    blocks = _CLASS_LABEL.split(reply)
    parsed: list[ParsedInstance] = []
    for block in blocks[1:]:
        label, _, rest = block.strip().partition("\n")
        rest = _INPUT_PREFIX.sub("", rest, count=1)
        parsed.append(ParsedInstance(rest.strip(), label.strip()))
    return _mark_last_truncated(parsed, truncated)


def parse_yes_no(reply: str) -> bool:
    """Stage 2: only an answer in {Yes, yes, YES} counts as classification (the paper's rule)."""
    words = reply.strip().split()
    return bool(words) and words[0].strip(".,:;!") in {"Yes", "yes", "YES"}


def _mark_last_truncated(parsed: list[ParsedInstance], truncated: bool) -> list[ParsedInstance]:
    if truncated and parsed:
        last = parsed[-1]
        parsed[-1] = ParsedInstance(last.input, last.output, truncated=True)
    return parsed
