"""The export folder's dataset card (README.md) in the Hugging Face form: a YAML header whose `configs` make
`datasets.load_dataset(EXPORT_DIR)` load the instances (and every other file by its config name), and a body
that says what made the data, what each filter and the quality gate did, how good the data is by the run's
own numbers, and what it must not be mistaken for.

Pure functions from `CardFacts` to text; `export.py` gathers the facts from the run. Text that a model, a
user or a file supplied is escaped wherever it enters the card (`md_text`, `code_block`), and the header is
`yaml.safe_dump` of single-line values: no generated text can end a table, start a heading or close the
header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import yaml

from selfinstruct.analysis.stats import Table1
from selfinstruct.errors import UserError
from selfinstruct.lm.embedded import EMBEDDED_MODEL_ID
from selfinstruct.pipeline.summary import RunSummary
from selfinstruct.quality.gate import GateResult
from selfinstruct.quality.questions import PAPER_TABLE2
from selfinstruct.quality.report import JudgeAgreement, QualitySummary, table2_markdown

CARD_NAME = "README.md"
GEMMA_TERMS = "https://ai.google.dev/gemma/terms"

# ExportResult key -> (config name, what the file holds), in the card's order. The config name is the file's
# stem, so `load_dataset(EXPORT_DIR, "alpaca")` reads alpaca.json.
FILE_CONFIGS: dict[str, tuple[str, str]] = {
    "all_generated_instances": (
        "all_generated_instances",
        "one row per instance: instruction, input, output, is_classification (the paper's file)",
    ),
    "parquet": ("instances", "one row per instance: instruction, input, output, is_classification (Parquet)"),
    "alpaca": ("alpaca", "instruction, input, output (Alpaca's JSON)"),
    "openai-chat": ("chat_messages", "a user and an assistant message per instance (OpenAI's chat format)"),
    "finetune": ("finetune", "prompt/completion pairs encoded as the paper's stage 4 does"),
    "machine_generated_instances": (
        "machine_generated_instances",
        "each instruction with its raw stage-3 reply and its instances (the paper's file)",
    ),
    "machine_generated_instructions": (
        "machine_generated_instructions",
        "every kept instruction with its most similar pool instructions (the paper's file)",
    ),
    "is_clf_or_not": ("is_clf_or_not", "each instruction's stage-2 classification answer (the paper's file)"),
}
# Which file `load_dataset(EXPORT_DIR)` reads: the first of these exported. Instances first, in JSON where
# there are (then the other JSON files load beside them), the fine-tuning pairs only without any.
DEFAULT_ORDER = ("all_generated_instances", "alpaca", "openai-chat", "parquet", "finetune")
JSON_SUFFIXES = (".json", ".jsonl")

# The Hub's size buckets (https://huggingface.co/docs/hub/datasets-cards): n<1K, 1K<n<10K, ..., n>1T.
_SIZE_BOUNDS: tuple[tuple[int, str], ...] = (
    (10**3, "1K"),
    (10**4, "10K"),
    (10**5, "100K"),
    (10**6, "1M"),
    (10**7, "10M"),
    (10**8, "100M"),
    (10**9, "1B"),
    (10**10, "10B"),
    (10**11, "100B"),
    (10**12, "1T"),
)

_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")
# Characters with a meaning inline in Markdown (GFM tables, the Hub's math) that generated text may hold; an
# underscore inside a word never starts emphasis, so only one at a word's edge is escaped.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_INLINE = 300
_MAX_CONTAMINATION_ROWS = 60

CITATION = """@inproceedings{wang-etal-2023-self-instruct,
    title = "Self-Instruct: Aligning Language Models with Self-Generated Instructions",
    author = "Wang, Yizhong and Kordi, Yeganeh and Mishra, Swaroop and Liu, Alisa and
      Smith, Noah A. and Khashabi, Daniel and Hajishirzi, Hannaneh",
    booktitle = "Proceedings of the 61st Annual Meeting of the Association for Computational Linguistics
      (Volume 1: Long Papers)",
    month = jul,
    year = "2023",
    address = "Toronto, Canada",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2023.acl-long.754/",
    doi = "10.18653/v1/2023.acl-long.754",
    pages = "13484--13508",
}"""


@dataclass(frozen=True)
class CardFile:
    """One exported file as the card lists it."""

    key: str  # the ExportResult key (a FILE_CONFIGS key)
    name: str  # path relative to the export folder
    rows: int


@dataclass(frozen=True)
class SettingChange:
    """A run setting whose value is not the default; `default` is None where this version has no such key."""

    key: str
    value: object
    default: object = None
    known: bool = True


@dataclass(frozen=True)
class CardFacts:
    """Everything the card says, read from the run by `export.py`."""

    files: list[CardFile]
    instances: int  # instances exported (after the quality gate)
    backend: str
    model: str | None
    seeds: str | None  # the run's `seeds` setting: None (the default set), a built-in name or a file
    seed_tasks: int
    seed_classification: int
    changes: list[SettingChange]
    settings_recorded: bool
    version: str
    table1: Table1
    summary: RunSummary
    gate: GateResult
    include_seeds: bool = True
    license: str | None = None
    repo_id: str | None = None
    contamination: object | None = None
    examples: list[dict[str, object]] = field(default_factory=list)


# -- checks and small pieces -------------------------------------------------------------------------------
def check_license(license_id: str | None) -> None:
    """A Hub licence id is a short token (apache-2.0, cc-by-4.0, gemma, other): anything else is a mistake."""
    if license_id is not None and not _LICENSE_ID.fullmatch(license_id):
        raise UserError(
            f"--license: {license_id!r} is not a licence id (letters, digits, '.', '+', '-'; "
            "e.g. apache-2.0, cc-by-4.0, other)"
        )


def size_category(n: int) -> str:
    """The Hub's size bucket for n rows."""
    if n < _SIZE_BOUNDS[0][0]:
        return f"n<{_SIZE_BOUNDS[0][1]}"
    for (_, low), (high, name) in pairwise(_SIZE_BOUNDS):
        if n < high:
            return f"{low}<n<{name}"
    return f"n>{_SIZE_BOUNDS[-1][1]}"


def settings_changes(saved: Mapping[str, object], defaults: Mapping[str, object]) -> list[SettingChange]:
    """Every saved setting (dotted key) whose value differs from the default, in the saved order. Keys the
    run did not record are not guessed; keys this version does not know are listed as such."""
    flat_defaults = _flatten(defaults)
    changes = []
    for key, value in _flatten(saved).items():
        if key not in flat_defaults:
            changes.append(SettingChange(key, value, known=False))
        elif flat_defaults[key] != value:
            changes.append(SettingChange(key, value, flat_defaults[key]))
    return changes


def _flatten(data: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def md_text(value: object, limit: int = _MAX_INLINE) -> str:
    """Any text as one line of literal Markdown: safe inline and in a table cell (whitespace runs, newlines
    included, become one space; every character with an inline meaning is backslash-escaped)."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_name(name: str) -> str:
    """A file or config name of this project's own making as code; anything else as escaped text."""
    return f"`{name}`" if _PLAIN_NAME.fullmatch(name) else md_text(name)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def code_block(text: str, language: str = "") -> str:
    """A fenced block that no backtick run inside `text` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _one_line(text: str, limit: int = 120) -> str:
    """A YAML value that stays on one line (so no line of the header can read `---`)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def model_label(facts: CardFacts) -> str:
    if facts.backend == "embedded" and not facts.model:
        return EMBEDDED_MODEL_ID
    return facts.model or facts.backend


def pretty_name(facts: CardFacts) -> str:
    return _one_line(f"Self-Instruct data made with {model_label(facts)}")


def _embedded_default(facts: CardFacts) -> bool:
    return facts.backend == "embedded" and not facts.model


def _file_order(key: str) -> int:
    return list(FILE_CONFIGS).index(key) if key in FILE_CONFIGS else len(FILE_CONFIGS)


# -- the header ---------------------------------------------------------------------------------------------
def config_files(files: Sequence[CardFile]) -> list[CardFile]:
    """The files that become configs, the default (the instances, where exported) first. An empty file does
    not load, so it is left out; and `datasets` reads every config of a folder with the builder its first
    config's files call for, so only the default's file format (JSON or Parquet) is listed."""
    loadable = [f for f in files if f.rows > 0 and f.key in FILE_CONFIGS]
    ranked = sorted(loadable, key=lambda f: DEFAULT_ORDER.index(f.key) if f.key in DEFAULT_ORDER else 99)
    if not ranked:
        return []
    default = ranked[0]
    chosen = [f for f in loadable if _builder(f.name) == _builder(default.name)]
    return sorted(chosen, key=lambda f: (f != default, _file_order(f.key)))


def _builder(name: str) -> str:
    """The `datasets` builder that reads a file."""
    return "json" if name.endswith(JSON_SUFFIXES) else "parquet"


def configs(files: Sequence[CardFile]) -> list[dict[str, object]]:
    """The header's `configs`: one per file of `config_files`, the first one the default."""
    entries: list[dict[str, object]] = []
    for i, f in enumerate(config_files(files)):
        entry: dict[str, object] = {
            "config_name": FILE_CONFIGS[f.key][0],
            "data_files": [{"split": "train", "path": f.name}],
        }
        if i == 0:
            entry["default"] = True
        entries.append(entry)
    return entries


def card_metadata(facts: CardFacts) -> dict[str, object]:
    meta: dict[str, object] = {}
    if facts.license:
        meta["license"] = facts.license
    meta |= {
        "language": ["en"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(facts.instances)],
        "pretty_name": pretty_name(facts),
        "tags": ["self-instruct", "synthetic", "instruction-tuning", "selfinstruct"],
        "configs": configs(facts.files),
    }
    return meta


def card_header(facts: CardFacts) -> str:
    body = yaml.safe_dump(card_metadata(facts), sort_keys=False, allow_unicode=True, width=10_000)
    if any(line.strip() in ("---", "...") for line in body.splitlines()):  # would end the header early
        raise ValueError("dataset card header: a value produced a document marker")
    return f"---\n{body}---\n"


# -- the body -----------------------------------------------------------------------------------------------
def dataset_card(facts: CardFacts) -> str:
    """The whole README.md."""
    sections = [
        _intro(facts),
        _files_section(facts),
        _made_section(facts),
        _table1_section(facts.table1),
        _funnel_section(facts.summary),
        _gate_section(facts.gate),
        _quality_section(facts.summary.quality),
        _contamination_section(facts.contamination),
        _examples_section(facts.examples),
        _license_section(facts),
        _limitations_section(facts),
        "## Citation\n\nThe method is the paper's:\n\n" + code_block(CITATION, "bibtex"),
    ]
    return card_header(facts) + "\n" + "\n\n".join(s for s in sections if s) + "\n"


def _intro(facts: CardFacts) -> str:
    t = facts.table1
    return (
        f"# {md_text(pretty_name(facts))}\n\n"
        f"Instruction-following data bootstrapped from a language model with Self-Instruct (Wang et al., "
        f"ACL 2023): {t.instructions:,} instructions written by {md_text(model_label(facts))} and "
        f"{facts.instances:,} instances (an input and an output each) that passed the method's filters"
        f"{' and the quality gate' if facts.gate.passed is not None else ''}. Written by selfinstruct "
        f"{md_text(facts.version)}."
    )


def _files_section(facts: CardFacts) -> str:
    where = facts.repo_id or "EXPORT_DIR"  # inside a code block: shown as is
    chosen = config_files(facts.files)
    names = [FILE_CONFIGS[f.key][0] for f in chosen]
    lines = ["## Files", ""]
    if names:
        # The default config and two others as examples of loading by name.
        code = ["from datasets import load_dataset", "", f"data = load_dataset({_json(where)})  # {names[0]}"]
        code += [f"{name} = load_dataset({_json(where)}, {_json(name)})" for name in names[1:3]]
        lines += [code_block("\n".join(code), "python"), ""]
    lines += ["| config | file | rows | what it holds |", "|---|---|---:|---|"]
    left_out = []
    for f in sorted(facts.files, key=lambda f: _file_order(f.key)):
        name, what = FILE_CONFIGS.get(f.key, ("-", ""))
        if f in chosen:
            config = md_name(name) + (" (default)" if name == names[0] else "")
        else:
            config = "- (empty)" if f.rows == 0 else "-"
            left_out += [f] if f.rows else []
        lines.append(f"| {config} | {md_name(f.name)} | {f.rows:,} | {md_text(what)} |")
    if left_out:
        # One line per file: `datasets` reads a folder's configs in one format (`config_files`).
        lines.append("")
        lines += [
            f"{md_name(f.name)} is in another file format than the configs, which `datasets` reads in one "
            f'format: `load_dataset("{_builder(f.name)}", data_files="{f.name}")` in this folder loads it.'
            for f in left_out
        ]
    return "\n".join(lines)


def _made_section(facts: CardFacts) -> str:
    if facts.seeds is None:
        seeds = "selfinstruct's default seed set"
    elif "/" in facts.seeds or "\\" in facts.seeds or facts.seeds.endswith(".jsonl"):
        seeds = f"the seed file {md_text(facts.seeds)}"
    else:
        seeds = f"selfinstruct's built-in seed set {md_text(facts.seeds)}"
    backend = {
        "embedded": "the embedded backend (llama.cpp, offline)",
        "openai": "an OpenAI-compatible server",
        "transformers": "Hugging Face transformers",
    }.get(facts.backend, f"the {md_text(facts.backend)} backend")
    lines = [
        "## How it was made",
        "",
        f"- Model: {md_text(model_label(facts))}, run through {backend}.",
        f"- Seed tasks: {seeds}, {facts.seed_tasks:,} tasks ({facts.seed_classification:,} classification)"
        + (
            "; finetune.jsonl includes them as the paper's training data did."
            if facts.include_seeds and any(f.key == "finetune" for f in facts.files)
            else "."
        ),
        f"- Tool: selfinstruct {md_text(facts.version)}, whose defaults are the paper's settings "
        "(its docs/pipeline.md lists the few deviations).",
        "",
        "### Settings that differ from the defaults",
        "",
    ]
    if not facts.settings_recorded:
        lines.append("The run recorded no settings.")
    elif not facts.changes:
        lines.append("None: every setting is selfinstruct's default.")
    else:
        lines += ["| setting | this run | default |", "|---|---|---|"]
        for c in facts.changes:
            default = md_text(_json(c.default)) if c.known else "(not a setting of this version)"
            lines.append(f"| {md_text(c.key)} | {md_text(_json(c.value))} | {default} |")
    return "\n".join(lines)


def _table1_section(t: Table1) -> str:
    lines = [
        "## Statistics (the paper's Table 1)",
        "",
        "Over the run's kept instructions and the instances exported here.",
        "",
        "| statistic | value |",
        "|---|---:|",
    ]
    lines += [f"| {md_text(label)} | {md_text(value)} |" for label, value in t.rows()]
    return "\n".join(lines)


def _funnel_section(s: RunSummary) -> str:
    lines = [
        "## Filter funnel",
        "",
        "Stage 1 (instructions): where every candidate the model wrote went, filter by filter.",
        "",
        "| step | count | share of candidates |",
        "|---|---:|---:|",
    ]
    lines += [f"| {md_text(name)} | {n:,} | {share} |" for name, n, share in s.acceptance_rows()]
    lines += [
        "",
        "Stage 3 (instances): every instance parsed from the model's replies.",
        "",
        "| step | count | share of parsed |",
        "|---|---:|---:|",
        f"| instances parsed | {s.instances:,} | {_percent(s.instances, s.instances)} |",
    ]
    lines += [
        f"| dropped: {md_text(verdict)} | {n:,} | {_percent(n, s.instances)} |"
        for verdict, n in s.instance_drops()
    ]
    lines.append(f"| instances kept | {s.instances_kept:,} | {_percent(s.instances_kept, s.instances)} |")
    if s.classified:
        lines += [
            "",
            f"Stage 2 judged {s.classification:,} of {s.classified:,} classified instructions to be "
            f"classification tasks ({_percent(s.classification, s.classified)}).",
        ]
    return "\n".join(lines)


def _gate_section(gate: GateResult) -> str:
    lines = ["## Quality gate", "", md_text(gate.describe(), limit=2000) + "."]
    if gate.passed is None:
        lines += ["", "Every instance the filters kept is exported."]
    return "\n".join(lines)


def _escaped_quality(q: QualitySummary) -> QualitySummary:
    """Rater and judge names come from users and settings: escaped before table2_markdown pastes them."""
    return QualitySummary(
        judges=[replace(t, rater=md_text(t.rater)) for t in q.judges],
        humans=[replace(t, rater=md_text(t.rater)) for t in q.humans],
        agreements=[JudgeAgreement(md_text(a.judge), md_text(a.rater), a.questions) for a in q.agreements],
    )


def _quality_section(q: QualitySummary) -> str:
    if not q:
        return ""
    return "\n".join(
        [
            "## Data quality (the paper's Table 2)",
            "",
            "The paper's three questions answered on kept instances: the share of yes with its 95% "
            "interval, beside the paper's expert answers on 200 of GPT-3's instructions.",
            "",
            table2_markdown(_escaped_quality(q)).rstrip(),
        ]
    )


def _contamination_rows(value: object, prefix: str = "") -> list[tuple[str, str]]:
    """Whatever the check recorded, flattened to (dotted key, value) rows; long lists are counted."""
    name = prefix or "value"
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _contamination_rows(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list | tuple):
        if len(value) <= 20 and all(_is_scalar(x) for x in value):
            return [(name, ", ".join(_scalar(x) for x in value) or "(none)")]
        if len(value) <= 20 and all(isinstance(x, Mapping) for x in value):
            # e.g. one entry per evaluation set: each labelled by its name where it has one
            rows = []
            for i, item in enumerate(value):
                label = item.get("name", i)
                rest = {k: v for k, v in item.items() if k != "name"} if "name" in item else item
                rows += _contamination_rows(rest, f"{name}[{label}]")
            return rows
        return [(name, f"{len(value):,} items")]
    return [(name, _scalar(value))]


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: object) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, int | bool) or value is None:
        return _json(value)
    return str(value)


def _contamination_section(contamination: object | None) -> str:
    if contamination is None:
        return ""
    rows = _contamination_rows(contamination)
    lines = [
        "## Contamination check",
        "",
        "What the run's check against evaluation data recorded.",
        "",
        "| what | value |",
        "|---|---|",
    ]
    lines += [f"| {md_text(key)} | {md_text(value)} |" for key, value in rows[:_MAX_CONTAMINATION_ROWS]]
    if len(rows) > _MAX_CONTAMINATION_ROWS:
        lines.append(f"| ... | {len(rows) - _MAX_CONTAMINATION_ROWS:,} more |")
    return "\n".join(lines)


def _examples_section(examples: Sequence[Mapping[str, object]]) -> str:
    if not examples:
        return ""
    text = "\n".join(json.dumps(row, ensure_ascii=False, indent=1) for row in examples)
    return f"## Examples\n\nThe first {len(examples)} instances, as the model wrote them.\n\n" + code_block(
        text, "json"
    )


def _license_section(facts: CardFacts) -> str:
    if facts.license:
        lines = [f"Released under the licence `{facts.license}` (the header's `license`)."]
    else:
        lines = [
            "No licence was chosen for this data (`selfinstruct export --license ID` writes one into this "
            "card). Until one is, nobody has been granted a right to reuse it."
        ]
    if _embedded_default(facts):
        lines.append(
            "It was made with the embedded default model, Google's Gemma 3 270M, so the Gemma Terms of Use "
            f"(<{GEMMA_TERMS}>) apply to it: read them before you share the data or train on it (a model "
            "trained on Gemma's outputs can count as a Model Derivative under them; the Hub's licence id for "
            "them is `gemma`)."
        )
    else:
        lines.append(
            f"The terms of use of the model that wrote it ({md_text(model_label(facts))}) may apply too."
        )
    return "## Licence\n\n" + "\n\n".join(lines)


def _limitations_section(facts: CardFacts) -> str:
    s = facts.summary
    items = [
        "A language model wrote every instruction, input and output; the filters check form and novelty, "
        "not truth. Expect wrong outputs, unclear tasks and the model's own biases."
    ]
    if s.candidates or s.instances:
        items.append(
            f"The filters kept {s.kept:,} of {s.candidates:,} candidate instructions "
            f"({_percent(s.kept, s.candidates)}) and {s.instances_kept:,} of {s.instances:,} parsed "
            f"instances ({_percent(s.instances_kept, s.instances)}): the rest failed a check, and what "
            "passed can still be wrong."
        )
    if _embedded_default(facts):
        items.append(
            "The embedded model has 270M parameters and no instruction tuning: its data is weak. Use it to "
            "try the method, not to train a model you rely on."
        )
    items.append(_rating_limitation(s.quality, facts.gate))
    if facts.gate.passed is None:
        items.append("No quality gate removed anything: every instance the filters kept is here.")
    if facts.contamination is None:
        items.append("No contamination check against evaluation data was recorded for this run.")
    return "## Known limitations\n\n" + "\n".join(f"- {item}" for item in items)


def _rating_limitation(q: QualitySummary, gate: GateResult) -> str:
    if not q.judges and not q.humans:
        return (
            "Nobody rated this data on the paper's quality questions, so its quality is unmeasured "
            "(`selfinstruct rate` or the review page would measure it)."
        )
    t = (q.humans or q.judges)[0]
    asked = {"valid_task": "valid task", "output_ok": "correct output", "all": "all three"}
    shares = ", ".join(
        f"{label} {'-' if (p := t.shares[key].percent) is None else f'{p:.0f}%'}"
        for key, label in asked.items()
    )
    paper = ", ".join(f"{PAPER_TABLE2[key]:.0f}%" for key in asked)
    who = "person" if q.humans else "judge"
    text = (
        f"Rated by {who} {md_text(t.rater)} on {t.items:,} instances: {shares} (the paper's experts on "
        f"GPT-3's data: {paper})."
    )
    if t.rater == "checks" and not q.humans:
        text += (
            " The model-free checks only catch mechanical faults: a yes means no fault found, so these "
            "shares are upper bounds."
        )
    if gate.passed is not None:
        text += f" They describe the data before the quality gate, which kept {len(gate.passed):,} instances."
    return text
