"""Can the embedded 270M model tell good rows from bad when asked as log-probabilities? (issue 22, item 5)

Asked the Table 2 questions as a generated Yes/No, the embedded model answers Yes to everything. This asks
each question separately, in a few-shot prompt form (two answered examples, one Yes and one No, written
for this benchmark), and reads the next-token logits of " Yes" and " No" after "Answer:". The score is
logit(Yes) - logit(No); a judge would compare it with a threshold, so what matters is whether the score
ranks the reading's Yes rows above its No rows: the ROC AUC per question (0.5: no better than chance).
A calibrated threshold (the median score) gives the agreement and kappa a gate would reach.

    python benchmarks/quality_logprob.py benchmarks/data/quality_labels.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp_load import load_high_level
from selfinstruct.quality.stats import cohen_kappa, percent_agreement

QUESTIONS = {
    "valid_task": "Does the instruction describe a valid task?",
    "input_ok": "Is the input appropriate for the instruction?",
    "output_ok": "Is the output a correct and acceptable response to the instruction and input?",
}
# Two answered examples per question (one yes, one no), written for this benchmark.
SHOTS = [
    (
        "Name three primary colours.",
        "",
        "Red, blue and yellow.",
        {"valid_task": 1, "input_ok": 1, "output_ok": 1},
    ),
    (
        "How many planets orbit the sun?",
        "I have a red bicycle.",
        "Bicycle",
        {"valid_task": 1, "input_ok": 0, "output_ok": 0},
    ),
]


def block(instruction: str, text_input: str, output: str, question: str) -> str:
    return (
        f"Instruction: {instruction.strip()}\nInput: {text_input.strip() or '(none)'}\n"
        f"Output: {output.strip() or '(empty)'}\nQuestion: {question}\nAnswer:"
    )


def prompt(row: dict[str, Any], key: str) -> str:
    shots = "\n\n".join(
        block(i, x, o, QUESTIONS[key]) + (" Yes" if labels[key] else " No") for i, x, o, labels in SHOTS
    )
    return shots + "\n\n" + block(row["instruction"], row["input"], row["output"], QUESTIONS[key])


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """ROC AUC: the chance that a random Yes row scores above a random No row (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("labels", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import llama_cpp

    llm = load_high_level(
        llama_cpp, embedded_gguf_path(), n_ctx=2048, n_threads=args.threads, logits_all=True, verbose=False
    )
    yes, no = llm.tokenize(b" Yes", add_bos=False)[0], llm.tokenize(b" No", add_bos=False)[0]
    for path in args.labels:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        print(f"\n{path} ({len(rows)} rows)\n")
        print("| question | reading: yes | Yes > No (raw) | AUC | median-threshold agreement | kappa |")
        print("|---|---:|---:|---:|---:|---:|")
        for key in QUESTIONS:
            scores = []
            for row in rows:
                llm.reset()
                llm.eval(llm.tokenize(prompt(row, key).encode("utf-8")))
                logits = llm.scores[llm.n_tokens - 1]
                scores.append(float(logits[yes] - logits[no]))
            labels = [bool(r[key]) for r in rows]
            median = statistics.median(scores)
            judged = [s > median for s in scores]
            area = auc(scores, labels)
            kappa = cohen_kappa(labels, judged)
            print(
                f"| {key} | {sum(labels)} of {len(rows)} | {sum(s > 0 for s in scores)} of {len(rows)} "
                f"| {'-' if area is None else f'{area:.2f}'} | {percent_agreement(labels, judged):.0f}% "
                f"| {'-' if kappa is None else f'{kappa:.2f}'} |"
            )


if __name__ == "__main__":
    main()
