"""Table 2 percentages, A–D shares and inter-rater agreement (percent agreement, Cohen's kappa)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from selfinstruct.quality.questions import QUESTIONS
from selfinstruct.quality.stats import cohen_kappa, percent_agreement
from selfinstruct.web.db import GRADES


@dataclass(frozen=True)
class DataSummary:
    rater: str  # '' for everyone
    n: int
    percent_yes: dict[str, float]  # per question, plus 'all' (all three yes)


@dataclass(frozen=True)
class GradeSummary:
    rater: str
    n: int
    percent: dict[str, float]  # A..D


@dataclass(frozen=True)
class Agreement:
    rater_a: str
    rater_b: str
    field: str
    n: int
    percent: float | None
    kappa: float | None


def _data_row(rater: str, rows: list[sqlite3.Row]) -> DataSummary:
    n = len(rows)
    pct: dict[str, float] = {}
    for key, _ in QUESTIONS:
        pct[key] = 100.0 * sum(1 for r in rows if r[key] == 1) / n if n else 0.0
    pct["all"] = 100.0 * sum(1 for r in rows if all(r[k] == 1 for k, _ in QUESTIONS)) / n if n else 0.0
    return DataSummary(rater, n, pct)


def data_summary(rows: list[sqlite3.Row]) -> list[DataSummary]:
    """All ratings pooled first, then one line per rater."""
    by_rater: dict[str, list[sqlite3.Row]] = {}
    for r in rows:
        by_rater.setdefault(r["rater"], []).append(r)
    return [_data_row("", rows)] + [_data_row(k, v) for k, v in sorted(by_rater.items())]


def grade_summary(rows: list[sqlite3.Row]) -> list[GradeSummary]:
    by_rater: dict[str, list[sqlite3.Row]] = {}
    for r in rows:
        by_rater.setdefault(r["rater"], []).append(r)

    def line(rater: str, group: list[sqlite3.Row]) -> GradeSummary:
        counts = Counter(r["grade"] for r in group)
        n = len(group)
        return GradeSummary(rater, n, {g: 100.0 * counts[g] / n if n else 0.0 for g, _ in GRADES})

    return [line("", rows)] + [line(k, v) for k, v in sorted(by_rater.items())]


def agreements(rows: list[sqlite3.Row], fields: Sequence[str]) -> list[Agreement]:
    """For each pair of raters with common items, agreement on each field over those items."""
    by_rater: dict[str, dict[str, sqlite3.Row]] = {}
    for r in rows:
        by_rater.setdefault(r["rater"], {})[r["item_key"]] = r
    out = []
    for ra, rb in combinations(sorted(by_rater), 2):
        common = sorted(by_rater[ra].keys() & by_rater[rb].keys())
        if not common:
            continue
        for field in fields:
            a = [by_rater[ra][k][field] for k in common]
            b = [by_rater[rb][k][field] for k in common]
            out.append(Agreement(ra, rb, field, len(common), percent_agreement(a, b), cohen_kappa(a, b)))
    return out


# -- exports ------------------------------------------------------------------------------------------
EXPORT_FIELDS = (
    "kind",
    "item_key",
    "rater",
    "valid_task",
    "input_ok",
    "output_ok",
    "grade",
    "created_at",
    "updated_at",
    "instruction",
    "input",
    "output",
    "prediction",
    "model",
    "task",
)


def export_records(rows: list[sqlite3.Row]) -> list[dict[str, object]]:
    records = []
    for r in rows:
        try:
            context = json.loads(r["context"])
        except ValueError:
            context = {}
        record: dict[str, object] = {k: r[k] for k in EXPORT_FIELDS[:9]}
        for k in EXPORT_FIELDS[9:]:
            record[k] = context.get(k, "") if isinstance(context, dict) else ""
        records.append(record)
    return records


def _cell(value: object) -> object:
    # Spreadsheet apps run cells starting with these as formulas; LM text must stay text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(records: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS))
    writer.writeheader()
    for rec in records:
        writer.writerow({k: _cell(v) for k, v in rec.items()})
    return buf.getvalue()


def to_jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
