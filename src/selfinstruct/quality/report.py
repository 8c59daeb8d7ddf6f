"""A run's Table 2 as each judge and each human rater answered it, and how far each judge agrees with each
human on the items both rated: what tells a user whether to trust a judge."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.table import Table

from selfinstruct.quality.questions import KEYS, LABELS, PAPER_TABLE2
from selfinstruct.quality.stats import QuestionAgreement, Table2, agreement, table2
from selfinstruct.store import RunReader

COLUMNS: tuple[str, ...] = (*KEYS, "all")
# LABELS copied key by key: as a whole it is a dict[Question, str], which a dict[str, str] cannot take.
HEADERS: dict[str, str] = {**{key: label for key, label in LABELS.items()}, "all": "all three"}
SHORT: dict[str, str] = {
    "valid_task": "valid task",
    "input_ok": "input ok",
    "output_ok": "output ok",
    "all": "all three",
}


@dataclass(frozen=True)
class JudgeAgreement:
    judge: str
    rater: str
    questions: list[QuestionAgreement]

    def as_dict(self) -> dict[str, object]:
        return {"judge": self.judge, "rater": self.rater, "questions": [q.as_dict() for q in self.questions]}


@dataclass(frozen=True)
class QualitySummary:
    judges: list[Table2] = field(default_factory=list)
    humans: list[Table2] = field(default_factory=list)
    agreements: list[JudgeAgreement] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.judges or self.humans)

    def rows(self) -> list[tuple[str, Table2]]:
        """Each rater's Table 2 with its label, as every rendering lists them: judges, then people."""
        return [
            *((f"judge {t.rater}", t) for t in self.judges),
            *((f"human {t.rater}", t) for t in self.humans),
        ]

    def as_dict(self) -> dict[str, object]:
        return {
            "judges": [t.as_dict() for t in self.judges],
            "humans": [t.as_dict() for t in self.humans],
            "agreement": [a.as_dict() for a in self.agreements],
        }


def quality_summary(run: RunReader) -> QualitySummary:
    """Table 2 per judge (the one that rated most first) and per human rater of the review page, and the
    agreement of every judge with every human on the items both rated."""
    judged = {name: run.quality_answers(name) for name, _ in run.quality_judges()}
    humans = run.human_answers()
    return QualitySummary(
        judges=[table2(name, list(answers.values())) for name, answers in judged.items()],
        humans=[table2(rater, list(answers.values())) for rater, answers in sorted(humans.items())],
        agreements=[
            JudgeAgreement(judge, rater, agreement(j_answers, h_answers))
            for judge, j_answers in judged.items()
            for rater, h_answers in sorted(humans.items())
            if j_answers.keys() & h_answers.keys()
        ],
    )


def cell(table: Table2, key: str) -> str:
    """`62% [48-74]`: the share of yes with its 95% interval; `-` when nothing was rated."""
    share = table.shares[key]
    if share.percent is None:
        return "-"
    low, high = share.interval
    return f"{share.percent:.0f}% [{low:.0f}-{high:.0f}]"


def unrated_note(table: Table2) -> str:
    counts = [f"{HEADERS[k]} {table.shares[k].unrated}" for k in KEYS if table.shares[k].unrated]
    return "unrated: " + ", ".join(counts) if counts else ""


def table2_rich(summary: QualitySummary) -> list[Table]:
    """Table 2 (rows: raters; columns: questions) and, where humans rated, judge-human agreement."""
    tables = []
    main = Table(title="Table 2: share of yes [95% interval]", box=box.SIMPLE_HEAD)
    main.add_column("rated by", overflow="fold")
    main.add_column("items", justify="right")
    for key in COLUMNS:
        main.add_column(SHORT[key], justify="right", no_wrap=True)
    for who, t in summary.rows():
        main.add_row(who, str(t.items), *(cell(t, key).replace(" ", "\n", 1) for key in COLUMNS))
    main.add_row("paper (expert)", "200", *(f"{PAPER_TABLE2[key]:.0f}%" for key in COLUMNS))
    tables.append(main)
    if summary.agreements:
        agree = Table(
            title="Judge vs human: agreement % / Cohen's kappa (items both rated)", box=box.SIMPLE_HEAD
        )
        agree.add_column("judge / human", overflow="fold")
        for key in COLUMNS:
            agree.add_column(SHORT[key], justify="right")
        for a in summary.agreements:
            agree.add_row(f"{a.judge} / {a.rater}", *(agreement_cell(q) for q in a.questions))
        tables.append(agree)
    return tables


def agreement_cell(q: QuestionAgreement) -> str:
    if q.n == 0 or q.percent is None:
        return "-"
    kappa = "-" if q.kappa is None else f"{q.kappa:.2f}"
    return f"{q.percent:.0f}% / {kappa} (n={q.n})"


def table2_markdown(summary: QualitySummary) -> str:
    """The same tables in Markdown (summary.md, the dataset card)."""
    header = "| rated by | items | " + " | ".join(HEADERS[k] for k in COLUMNS) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(COLUMNS)]
    for who, t in summary.rows():
        lines.append(f"| {who} | {t.items} | " + " | ".join(cell(t, k) for k in COLUMNS) + " |")
    lines.append("| paper (expert) | 200 | " + " | ".join(f"{PAPER_TABLE2[k]:.0f}%" for k in COLUMNS) + " |")
    notes = [
        f"{who}: {note}"
        for who, t in ((j.rater, j) for j in [*summary.judges, *summary.humans])
        if (note := unrated_note(t))
    ]
    if notes:
        lines += ["", "Unrated answers (no clear yes or no) are counted apart: " + "; ".join(notes) + "."]
    if summary.agreements:
        lines += [
            "",
            "| judge / human | " + " | ".join(HEADERS[k] for k in COLUMNS) + " |",
            "|---|" + "---:|" * len(COLUMNS),
        ]
        for a in summary.agreements:
            lines.append(
                f"| {a.judge} / {a.rater} | " + " | ".join(agreement_cell(q) for q in a.questions) + " |"
            )
        lines += [
            "",
            "Agreement: percent of items both answered alike / Cohen's kappa, over the items both rated.",
        ]
    return "\n".join(lines) + "\n"
