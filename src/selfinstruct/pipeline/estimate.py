"""What a run will cost, before it is spent (`generate --dry-run`).

The prompts are the run's real ones, built from its seed pool and settings exactly as the stages build them
(stage 1 with the run's seed and request numbers; stages 2, 3 and the judge with the run's few-shot
examples, seed tasks standing in for the instructions yet to be generated), and counted with the model's
tokenizer where it is known offline (`lm.tokens`). What the prompts cannot tell, how much the model writes
and how many of its candidates survive the filters, comes from measured runs (`Typical`, documented in
docs/benchmarks.md); the number of stage-1 requests is shown as a range around the typical rate.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from selfinstruct.config import RunSettings, resolve_settings
from selfinstruct.lm.client import Ledger, Prices, format_usd
from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.tokens import TokenCounter, counter_for
from selfinstruct.pipeline.classify import Classifier
from selfinstruct.pipeline.instances import InstanceGenerator
from selfinstruct.pipeline.instructions import build_generation_prompt
from selfinstruct.pipeline.runner import pool_seeds
from selfinstruct.pipeline.summary import SPENT_KEY, prices_of, run_budget
from selfinstruct.quality.judge import JUDGE_DECODING, build_judge_prompt
from selfinstruct.quality.rating import JUDGE_STAGE
from selfinstruct.records import Task
from selfinstruct.seeds import load_seed_tasks
from selfinstruct.store import DB_NAME, RunReader

MAX_COUNTED = 256  # prompts counted one by one per stage; a larger run takes their mean


@dataclass(frozen=True)
class Typical:
    """What the model does, which no prompt tells: measured on the embedded default (Gemma 3 270M, two
    30-instruction runs: 74 candidates from 22 stage-1 replies, 82% kept; docs/benchmarks.md)."""

    candidates_per_request: float = 3.4
    acceptance: float = 0.82
    # The range of kept instructions per stage-1 request: this factor of the typical rate, either way.
    rate_low: float = 0.5
    rate_high: float = 1.5
    classification_share: float = 0.3  # of kept instructions (stage 3's output-first prompt)
    kept_instances: float = 1.5  # kept instances per instruction: what the judge rates
    kept_instances_low: float = 0.5
    # Reply lengths in characters (so they carry over to any tokenizer through its tokens per character).
    # The judge's varied most (18 and 436 characters on two runs): 200 is three short "Yes - reason" lines.
    reply_chars: Mapping[str, float] = field(
        default_factory=lambda: {"instructions": 260, "classify": 4, "instances": 260, JUDGE_STAGE: 200}
    )

    @property
    def kept_per_request(self) -> float:
        return self.candidates_per_request * self.acceptance


@dataclass(frozen=True)
class Span:
    """A typical figure and its range."""

    typical: float
    low: float
    high: float

    def scaled(self, factor: float) -> Span:
        return Span(self.typical * factor, self.low * factor, self.high * factor)


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    requests: Span
    prompt_tokens_each: float  # the mean over the stage's real prompts
    completion_tokens_each: float  # typical, at most max_tokens
    max_tokens: int

    @property
    def prompt_tokens(self) -> Span:
        return self.requests.scaled(self.prompt_tokens_each)

    @property
    def completion_tokens(self) -> Span:
        return self.requests.scaled(self.completion_tokens_each)

    @property
    def completion_bound(self) -> float:
        """Every reply at max_tokens, at the high end of the requests."""
        return self.requests.high * self.max_tokens


@dataclass(frozen=True)
class Estimate:
    instructions: int  # to be made by the run (what is left of its target)
    stages: list[StageEstimate]
    tokenizer: str
    exact: bool
    judge_tokenizer: str | None = None
    typical: Typical = field(default_factory=Typical)
    prices: Prices | None = None
    spent: Ledger = field(default_factory=Ledger)  # what the run spent before (a resumed run)
    first_request: tuple[int, int] = (0, 0)  # the next stage-1 request's prompt tokens and max_tokens
    max_cost: float | None = None
    max_total_tokens: int | None = None
    made_before: int = 0  # instructions a resumed run already holds

    @property
    def tokens(self) -> Span:
        spans = [(s.prompt_tokens, s.completion_tokens) for s in self.stages]
        return Span(
            *(sum(getattr(p, k) + getattr(c, k) for p, c in spans) for k in ("typical", "low", "high"))
        )

    @property
    def tokens_bound(self) -> float:
        return sum(s.prompt_tokens.high + s.completion_bound for s in self.stages)

    def cost(self) -> Span | None:
        if self.prices is None:
            return None
        p = self.prices
        values = [
            sum(p.cost(getattr(s.prompt_tokens, k), getattr(s.completion_tokens, k)) for s in self.stages)
            for k in ("typical", "low", "high")
        ]
        return Span(*values)

    def cost_bound(self) -> float | None:
        if self.prices is None:
            return None
        return sum(self.prices.cost(s.prompt_tokens.high, s.completion_bound) for s in self.stages)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _stage(
    stage: str,
    requests: Span,
    prompts: Sequence[str],
    counter: TokenCounter,
    max_tokens: int,
    typical: Typical,
) -> StageEstimate:
    counted = [counter.count(p) for p in prompts]
    chars = sum(len(p) for p in prompts)
    # The tokenizer's tokens per character on these prompts turns a typical reply length into tokens.
    per_char = sum(counted) / chars if chars else 0.25
    completion = min(float(max_tokens), typical.reply_chars.get(stage, 0.0) * per_char)
    return StageEstimate(stage, requests, _mean(counted), completion, max_tokens)


def _stand_ins(seeds: Sequence[Task]) -> list[Task]:
    """Seed tasks standing in for the instructions the run will generate (their lengths are alike)."""
    return list(seeds)[:MAX_COUNTED]


def estimate_run(
    settings: RunSettings,
    seeds: Sequence[Task],
    *,
    kept: int = 0,
    requests_made: int = 0,
    counter: TokenCounter | None = None,
    judge_counter: TokenCounter | None = None,
    typical: Typical | None = None,
    spent: Ledger | None = None,
) -> Estimate:
    """The estimate of making the instructions a run still lacks (`kept` of them made, `requests_made`
    stage-1 requests sent so far) with every stage of `generate`, and the judge when it is an LLM."""
    typical = typical or Typical()
    counter = counter or counter_for(settings.lm)
    n = max(settings.num_instructions - kept, 0)
    rate = typical.kept_per_request
    window = settings.lm.concurrency
    # Stage 1: the target over the kept-per-request rate, plus the requests still in flight when the target
    # is reached (their replies arrive, and are paid, though no longer needed: half the window typically).
    requests = Span(
        math.ceil(n / rate) + (window - 1) // 2 if n else 0,
        math.ceil(n / (rate * typical.rate_high)) if n else 0,
        math.ceil(n / (rate * typical.rate_low)) + window - 1 if n else 0,
    )
    cap = settings.generation.max_requests
    if cap is not None:
        left = max(cap - requests_made, 0)
        requests = Span(*(min(v, left) for v in (requests.typical, requests.low, requests.high)))
    # Stage 1's real prompts: the run's seed and request numbers (the pool's seed part; generated
    # instructions take 2 of the 8 places later, and are as long as seeds).
    pool = [t.instruction for t in pool_seeds(seeds, settings.generation.classification_only)]
    first = requests_made
    gen_prompts = [
        build_generation_prompt(settings, pool, [], first + i).text
        for i in range(max(1, min(int(requests.high), MAX_COUNTED)))
    ]
    # Kept instructions: the target, passed by part of the last reply (it is processed whole).
    made = Span(
        min(n + round(rate / 2), requests.typical * rate) if n else 0,
        min(n, requests.low * rate * typical.rate_high),
        min(n + math.ceil(rate * typical.rate_high), requests.high * rate * typical.rate_high) if n else 0,
    )
    stand_ins = _stand_ins(seeds)
    classifier = Classifier(settings, seeds)
    generator = InstanceGenerator(settings, seeds)
    share = 1.0 if settings.generation.classification_only else typical.classification_share
    stages = [
        _stage("instructions", requests, gen_prompts, counter, settings.generation.max_tokens, typical),
        _stage(
            "classify",
            made,
            [classifier.prompt(t.instruction) for t in stand_ins],
            counter,
            settings.classify.max_tokens,
            typical,
        ),
        _instances_stage(settings, made, stand_ins, generator, counter, share, typical),
    ]
    judge_lm = settings.judge_lm()
    judge_name = None
    if judge_lm is not None:
        judge_counter = judge_counter or _same_or_new(settings.lm, judge_lm, counter)
        judge_name = judge_counter.name
        limit = settings.instances.max_instances
        rated = Span(
            made.typical * min(typical.kept_instances, limit),
            made.low * min(typical.kept_instances_low, limit),
            made.high * limit,
        )
        prompts = [
            build_judge_prompt(t.instruction, i.input, i.output) for t in stand_ins for i in t.instances[:1]
        ]
        stages.append(_stage(JUDGE_STAGE, rated, prompts, judge_counter, JUDGE_DECODING.max_tokens, typical))
    first_prompt = gen_prompts[0]
    return Estimate(
        instructions=n,
        stages=stages,
        tokenizer=counter.name,
        exact=counter.exact,
        judge_tokenizer=judge_name,
        typical=typical,
        prices=prices_of(settings.cost),
        spent=spent or Ledger(),
        first_request=(counter.count(first_prompt), settings.generation.max_tokens),
        max_cost=settings.cost.max_cost,
        max_total_tokens=settings.cost.max_total_tokens,
        made_before=kept,
    )


def _instances_stage(
    settings: RunSettings,
    made: Span,
    stand_ins: Sequence[Task],
    generator: InstanceGenerator,
    counter: TokenCounter,
    share: float,
    typical: Typical,
) -> StageEstimate:
    """Stage 3: output-first prompts for the classification share, input-first for the rest."""
    modes = [(True, share), (False, 1.0 - share)]
    parts = [
        _stage(
            "instances",
            made,
            [generator.prompt(t.instruction, clf) for t in stand_ins],
            counter,
            settings.instance_decoding(clf).max_tokens,
            typical,
        )
        for clf, _ in modes
    ]
    return StageEstimate(
        "instances",
        made,
        sum(p.prompt_tokens_each * w for p, (_, w) in zip(parts, modes, strict=True)),
        sum(p.completion_tokens_each * w for p, (_, w) in zip(parts, modes, strict=True)),
        max(p.max_tokens for p in parts),
    )


def _same_or_new(lm: LMSettings, judge: LMSettings, counter: TokenCounter) -> TokenCounter:
    same = (judge.backend, judge.model) == (lm.backend, lm.model)
    return counter if same else counter_for(judge)


# -- a run directory, read without touching it ----------------------------------------------------------
@dataclass(frozen=True)
class RunState:
    """What an existing run has done, for the estimate of what is left."""

    saved: dict[str, Any] | None
    seeds: list[Task]
    kept: int
    requests_made: int
    spent: object


def read_run(run_dir: Path) -> RunState | None:
    """An existing run's settings and progress, read without writing anything (not even SQLite's
    shared-memory file: the database is opened immutable, so a run being written is seen as of its last
    checkpoint). None where there is no run."""
    db = run_dir / DB_NAME
    if not db.is_file():
        return None
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        reader = RunReader(conn)
        saved = reader.get_meta("settings")
        return RunState(
            saved if isinstance(saved, dict) else None,
            reader.seed_tasks() if reader.has_seeds() else [],
            reader.count_kept(),
            reader.next_gen_request_id(),
            reader.get_meta(SPENT_KEY),
        )
    finally:
        conn.close()


def plan(
    run_dir: Path | None,
    config_path: Path | None,
    overrides: dict[str, Any],
    *,
    flag_names: Mapping[str, str] | None = None,
    counter_of: Callable[[LMSettings], TokenCounter] = counter_for,
) -> Estimate:
    """`generate --dry-run`: the settings as the run would resolve them (an existing run's saved ones as
    the base), its seeds, and the estimate of what it has left to do. Writes nothing anywhere."""
    state = read_run(run_dir) if run_dir is not None else None
    settings = resolve_settings(
        config_path, overrides, base=state.saved if state else None, flag_names=flag_names
    )
    seeds = state.seeds if state and state.seeds else load_seed_tasks(settings.seeds)
    counter = counter_of(settings.lm)
    judge_lm = settings.judge_lm()
    judge_counter = None if judge_lm is None else _same_or_new(settings.lm, judge_lm, counter)
    budget = run_budget(settings, state.spent if state else None)
    estimate = estimate_run(
        settings,
        seeds,
        kept=state.kept if state else 0,
        requests_made=state.requests_made if state else 0,
        counter=counter,
        judge_counter=judge_counter,
        spent=budget.ledger,
    )
    if budget.limited and estimate.instructions:
        budget.check_alone(*estimate.first_request, "stage-1")  # as the run itself would refuse it
    return estimate


# -- the printed estimate ----------------------------------------------------------------------------------
def _n(value: float) -> str:
    return f"{round(value):,}"


def _span(span: Span) -> str:
    if round(span.low) == round(span.high):
        return _n(span.typical)
    return f"{_n(span.typical)} ({_n(span.low)}-{_n(span.high)})"


def _usd_span(span: Span) -> str:
    return f"{format_usd(span.typical)} ({format_usd(span.low)}-{format_usd(span.high)})"


def estimate_table(estimate: Estimate) -> Table:
    """Per stage: requests (typical and range), then typical prompt and completion tokens, the completions'
    bound (every reply at max_tokens, at the most requests) and, with prices, the typical cost."""
    made = f" ({estimate.made_before:,} made before)" if estimate.made_before else ""
    table = Table(title=f"Estimate: {estimate.instructions:,} instructions to make{made}")
    columns = ["stage", "requests", "prompt tokens", "completion", "at most"]
    if estimate.prices is not None:
        columns.append("USD")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in estimate.stages:
        cells = [s.stage, _span(s.requests), _n(s.prompt_tokens.typical), _n(s.completion_tokens.typical)]
        cells.append(_n(s.completion_bound))
        if estimate.prices is not None:
            usd = estimate.prices.cost(s.prompt_tokens.typical, s.completion_tokens.typical)
            cells.append(format_usd(usd))
        table.add_row(*cells)
    total = [
        "total",
        _n(sum(s.requests.typical for s in estimate.stages)),
        _n(sum(s.prompt_tokens.typical for s in estimate.stages)),
        _n(sum(s.completion_tokens.typical for s in estimate.stages)),
        _n(sum(s.completion_bound for s in estimate.stages)),
    ]
    if (cost := estimate.cost()) is not None:
        total.append(format_usd(cost.typical))
    table.add_row(*total, end_section=True)
    return table


def estimate_lines(estimate: Estimate) -> list[str]:
    """The lines printed under the table: the tokenizer, the rates assumed, the cost and the budget."""
    t = estimate.typical
    lines = [f"Tokens: {estimate.tokenizer}" + ("" if estimate.exact else " (no tokenizer known offline)")]
    if estimate.judge_tokenizer and estimate.judge_tokenizer != estimate.tokenizer:
        lines.append(f"Judge tokens: {estimate.judge_tokenizer}")
    lines += [
        f"Stage 1: {t.kept_per_request:.1f} kept instructions per request typical "
        f"({t.candidates_per_request:g} candidates, {t.acceptance:.0%} kept: the embedded default, "
        f"measured), range {t.kept_per_request * t.rate_low:.1f}-{t.kept_per_request * t.rate_high:.1f}.",
        "Completions: typical lengths measured on the embedded default; 'at most': every reply at "
        "max_tokens, at the most requests.",
        f"Tokens in all: {_span(estimate.tokens)}, at most {_n(estimate.tokens_bound)}.",
    ]
    cost, bound = estimate.cost(), estimate.cost_bound()
    if cost is not None and bound is not None and estimate.prices is not None:
        p = estimate.prices
        lines.append(
            f"Cost at ${p.input:g} in / ${p.output:g} out per 1M tokens: {_usd_span(cost)}, "
            f"at most {format_usd(bound)}."
        )
    else:
        lines.append("Cost: give --price-input and --price-output (USD per million tokens) to see it.")
    spent = estimate.spent.total
    if spent.requests:
        money = ""
        if estimate.prices is not None:
            money = f", {format_usd(estimate.prices.cost(spent.prompt_tokens, spent.completion_tokens))}"
        lines.append(
            f"Spent so far by this run: {spent.tokens:,} tokens in {spent.requests:,} requests{money}."
        )
    if estimate.max_cost is not None or estimate.max_total_tokens is not None:
        lines.append(_budget_line(estimate))
    return lines


def _budget_line(estimate: Estimate) -> str:
    """How far the budget goes at the typical rate (what is left of it, for a resumed run)."""
    spent = estimate.spent.total
    cost = estimate.cost()
    if estimate.max_cost is not None and cost is not None and estimate.prices is not None:
        left = estimate.max_cost - estimate.prices.cost(spent.prompt_tokens, spent.completion_tokens)
        share = left / cost.typical if cost.typical else math.inf
        what = f"--max-cost {format_usd(estimate.max_cost)}"
    else:
        assert estimate.max_total_tokens is not None
        left = estimate.max_total_tokens - spent.tokens
        share = left / estimate.tokens.typical if estimate.tokens.typical else math.inf
        what = f"--max-total-tokens {estimate.max_total_tokens:,}"
    if share >= 1:
        return f"Budget: {what} covers the typical estimate."
    made = max(0, math.floor(estimate.instructions * share))
    return f"Budget: {what} stops the run after about {made:,} of {estimate.instructions:,} instructions."


def print_estimate(console: Console, estimate: Estimate) -> None:
    console.print(estimate_table(estimate))
    for line in estimate_lines(estimate):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
