"""The end-of-run table: where the candidates went, per filter, and what the LM cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from selfinstruct.filters import CANDIDATE_VERDICTS, INSTANCE_VERDICTS, KEPT
from selfinstruct.store import RunReader


@dataclass
class RunSummary:
    gen_requests: int
    gen_requests_truncated: int
    candidates: int
    kept: int
    candidate_verdicts: dict[str, int]
    classified: int
    classification: int
    instructions_with_instances: int
    instances: int
    instances_kept: int
    instance_verdicts: dict[str, int]
    usage: list[dict[str, object]] = field(default_factory=list)
    endpoints: list[dict[str, object]] = field(default_factory=list)
    wall_seconds: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def acceptance_rows(self) -> list[tuple[str, int, str]]:
        """(stage/filter, count, share of candidates) in the filters' order."""
        total = max(self.candidates, 1)
        order = list(CANDIDATE_VERDICTS)
        rows = [("candidates", self.candidates, "100.0%")]
        for name in order + sorted(set(self.candidate_verdicts) - set(order) - {KEPT}):
            n = self.candidate_verdicts.get(name, 0)
            rows.append((f"dropped: {name}", n, f"{100 * n / total:.1f}%"))
        rows.append(("kept", self.kept, f"{100 * self.kept / total:.1f}%"))
        return rows

    def instance_drops(self) -> list[tuple[str, int]]:
        """(verdict, count) of the dropped instances, in the order stage 3 applies its filters."""
        present = [v for v in INSTANCE_VERDICTS if v in self.instance_verdicts]
        others = sorted(set(self.instance_verdicts) - set(INSTANCE_VERDICTS) - {KEPT})
        return [(v, self.instance_verdicts[v]) for v in (*present, *others)]


def usage_line(row: dict[str, object]) -> tuple[str, str]:
    """One stage's LM usage for the end-of-run table: requests (cache hits), retries, requests that
    failed for good, tokens."""
    tokens = int(row.get("prompt_tokens", 0)) + int(row.get("completion_tokens", 0))  # type: ignore[call-overload]
    return (
        f"LM {row.get('stage')}: requests (cached) / retries / failed / tokens",
        f"{row.get('requests')} ({row.get('cache_hits', 0)}) / {row.get('retries', 0)}"
        f" / {row.get('errors', 0)} / {tokens:,}",
    )


def summarize(store: RunReader) -> RunSummary:
    counts = store.counts()
    return RunSummary(
        gen_requests=counts.gen_requests_done,
        gen_requests_truncated=counts.gen_requests_truncated,
        candidates=sum(counts.candidate_verdicts.values()),
        kept=counts.kept,
        candidate_verdicts=counts.candidate_verdicts,
        classified=counts.classified,
        classification=counts.classification,
        instructions_with_instances=counts.instructions_with_instances,
        instances=sum(counts.instance_verdicts.values()),
        instances_kept=counts.instance_verdicts.get(KEPT, 0),
        instance_verdicts=counts.instance_verdicts,
    )


def summary_markdown(summary: RunSummary) -> str:
    lines = ["| step | count | share of candidates |", "|---|---:|---:|"]
    lines += [f"| {name} | {n} | {share} |" for name, n, share in summary.acceptance_rows()]
    lines += [
        "",
        "| | count |",
        "|---|---:|",
        f"| stage-1 requests | {summary.gen_requests} |",
        f"| stage-1 replies cut by max_tokens | {summary.gen_requests_truncated} |",
        f"| kept instructions classified | {summary.classified} |",
        f"| classification tasks | {summary.classification} |",
        f"| instructions with kept instances | {summary.instructions_with_instances} |",
        f"| instances parsed | {summary.instances} |",
        f"| instances kept | {summary.instances_kept} |",
    ]
    lines += [f"| instances dropped: {k} | {v} |" for k, v in summary.instance_drops()]
    for rows in (summary.usage, summary.endpoints):
        if rows:
            keys = list(rows[0])
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"
