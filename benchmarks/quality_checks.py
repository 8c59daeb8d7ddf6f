"""How far the model-free checks agree with a careful human reading of the Table 2 questions (issue 22).

Reads labelled rows (instruction, input, output and the three yes/no answers; `benchmarks/data/
quality_labels*.jsonl`, read by the project's lead, criteria in benchmarks/data/README.md) and reports, per
question: the checks' share of yes against the reading's, percent agreement, Cohen's kappa, and how many of
the reading's "no" each check catches (recall) and how often a check's "no" is right (precision), per
check. A check is kept as a default only where it separates good rows from bad on rows it was not tuned on.

    python benchmarks/quality_checks.py benchmarks/data/quality_labels.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from selfinstruct.quality.checks import check_item
from selfinstruct.quality.questions import KEYS
from selfinstruct.quality.stats import cohen_kappa, percent_agreement
from selfinstruct.records import RatingItem


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("labels", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.labels:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        verdicts = [
            check_item(RatingItem(i, i, r["instruction"], r["input"], r["output"]))
            for i, r in enumerate(rows)
        ]
        print(f"\n{path} ({len(rows)} rows)\n")
        print("| question | reading: yes | checks: yes | agreement | kappa | reading's no caught |")
        print("|---|---:|---:|---:|---:|---:|")
        for key in KEYS:
            human = [bool(r[key]) for r in rows]
            judged = [bool(v.answers.get(key)) for v in verdicts]
            caught = sum(1 for h, j in zip(human, judged, strict=True) if not h and not j)
            kappa = cohen_kappa(human, judged)
            print(
                f"| {key} | {sum(human)} | {sum(judged)} | {percent_agreement(human, judged):.0f}% "
                f"| {'-' if kappa is None else f'{kappa:.2f}'} | {caught} of {human.count(False)} |"
            )
        print("\n| check (question: reason) | fired | right (reading says no) |\n|---|---:|---:|")
        fired: Counter[tuple[str, str]] = Counter()
        right: Counter[tuple[str, str]] = Counter()
        for row, verdict in zip(rows, verdicts, strict=True):
            for key, reason in verdict.reasons.items():
                fired[(key, reason)] += 1
                right[(key, reason)] += int(not row[key])
        for (key, reason), n in sorted(fired.items()):
            print(f"| {key}: {reason} | {n} | {right[(key, reason)]} |")


if __name__ == "__main__":
    main()
