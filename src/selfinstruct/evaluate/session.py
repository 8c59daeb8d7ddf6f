"""Running one evaluation end to end, as the `eval` commands do: its items (from the registry), a model's
replies or given predictions, the judge, the JSON and Markdown reports, with a live progress bar.

The model and the judge are LM clients sharing one SQLite response cache, opened and closed here: a rerun
sends only the requests it lacks, and an interrupted evaluation resumes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from selfinstruct.errors import CommandError, LMError
from selfinstruct.evaluate.items import EvalItem, ItemSpec
from selfinstruct.evaluate.predictions import PredictionSet, load_predictions
from selfinstruct.evaluate.registry import get_evaluation
from selfinstruct.evaluate.report import (
    EvalReport,
    ItemRecord,
    ModelInfo,
    check_report_paths,
    render_markdown,
    write_report,
)
from selfinstruct.evaluate.run import (
    GenerationOptions,
    build_report,
    generate_records,
    given_records,
    judge_records,
)
from selfinstruct.evaluate.template import parse_template
from selfinstruct.lm import eventloop
from selfinstruct.lm.factory import build_client, public_endpoints
from selfinstruct.lm.settings import LMSettings

CACHE_NAME = "eval_cache.sqlite"


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation, as the command line gives it. `lm` answers the items; with `predictions` (outputs
    made elsewhere) no model is asked and `lm` is None. `extra` holds settings of one evaluation only
    (see `ItemSpec`)."""

    evaluation: str
    source: Path
    out: Path
    generation: GenerationOptions
    lm: LMSettings | None = None
    judge: LMSettings | None = None
    limit: int | None = None
    tasks_filter: str | None = None
    template: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    predictions: Path | None = None
    missing_as_empty: bool = False
    cache: Path | None = None
    quiet: bool = False

    @property
    def cache_path(self) -> Path:
        return self.cache or self.out.parent / CACHE_NAME


def model_info(settings: LMSettings) -> ModelInfo:
    """What a report says of a model: the backend names the endpoints it used, without credentials."""
    urls = public_endpoints(settings)
    return ModelInfo(backend=settings.backend, model=settings.model, api=settings.api, base_url=urls)


class EvalProgress:
    """A progress bar fed by the LM client's events: finished, cached and failed requests count."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cached {task.fields[cached]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}
        self.cached: dict[str, int] = {}

    def stage(self, name: str, total: int) -> None:
        self.tasks[name] = self.bar.add_task(name, total=total, cached=0)
        self.cached[name] = 0

    def __call__(self, event: Any) -> None:
        task = self.tasks.get(event.stage)
        if task is None or event.kind not in ("finished", "cached", "failed"):
            return
        if event.kind == "cached":
            self.cached[event.stage] += 1
        self.bar.update(task, advance=1, cached=self.cached[event.stage])


def _open_cache(path: Path) -> Any:
    from selfinstruct.lm.cache import SQLiteResponseCache

    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteResponseCache(path)


async def evaluate_records(
    items: list[EvalItem],
    settings: LMSettings | None,
    options: GenerationOptions,
    cache_path: Path,
    judge_settings: LMSettings | None,
    progress: EvalProgress,
    given: PredictionSet | None = None,
) -> tuple[list[ItemRecord], dict[str, dict[str, int]]]:
    """Predictions (generated, or `given` ones scored as they are), then judgements, through LM clients
    sharing one response cache; also returns the requests made per stage, sent and from the cache."""
    usage: dict[str, dict[str, int]] = {}
    if given is not None:
        records = given_records(items, given, options.postprocess)
    else:
        assert settings is not None
        cache = _open_cache(cache_path)
        progress.stage("eval", len(items))
        client = build_client(settings, cache=cache, progress=progress)
        try:
            records = await generate_records(client, items, options)
        finally:
            usage["eval"] = asdict(client.usage.stage("eval"))
            await client.aclose()
    if judge_settings is not None:
        cache = _open_cache(cache_path)
        progress.stage("judge", len(records))
        judge = build_client(judge_settings, cache=cache, progress=progress)
        try:
            records = await judge_records(judge, records)
        finally:
            usage["judge"] = asdict(judge.usage.stage("judge"))
            await judge.aclose()
    return records, usage


def recorded_options(config: EvalConfig, given: PredictionSet | None) -> dict[str, object]:
    """The settings a report records (`eval compare` warns when two reports differ in one); decoding
    settings are left out for given predictions, which no decoding of ours made."""
    generated = given is None
    options = config.generation
    return {
        "tasks": str(config.source),
        "limit": config.limit,
        "tasks_filter": config.tasks_filter,
        "max_new_tokens": options.max_new_tokens if generated else None,
        "template": config.template,
        "stop": (list(options.stop_sequences()) or None) if generated else None,
        "postprocess": options.postprocess,
        "predictions": None if given is None else str(given.path),
        "missing_as_empty": None if given is None or not given.missing else given.missing,
    }


def run_evaluation(config: EvalConfig) -> EvalReport:
    """Check the outputs, build the items, answer (or read) and score them, judge them, write the JSON
    report and the Markdown beside it, and print the result. Ctrl-C propagates (replies so far stay
    cached); a failed LM request is a one-line error saying how to resume."""
    evaluation = get_evaluation(config.evaluation)
    if config.lm is None and config.predictions is None:
        raise ValueError("an evaluation needs a model (lm) or given predictions")
    template = parse_template(config.template, evaluation.template_fields) if config.template else None
    spec = ItemSpec(config.source, config.limit, config.tasks_filter, template, config.extra)
    check_report_paths(config.out, [config.predictions, *evaluation.inputs(spec), config.cache_path])
    item_set = evaluation.load(spec)
    given = None
    if config.predictions is not None:
        given = load_predictions(
            config.predictions,
            item_set.items,
            task_names=item_set.task_names,
            line_order=item_set.line_order,
            missing_as_empty=config.missing_as_empty,
        )
    options = {**recorded_options(config, given), **item_set.options}

    console = Console(stderr=True)
    # A live bar only on a terminal: elsewhere (a log, a pipe) it would leave a stray line per redraw.
    progress = EvalProgress(console, enabled=not config.quiet and console.is_terminal)
    context: AbstractContextManager[Any] = progress.bar if not config.quiet else nullcontext()
    started = time.monotonic()
    try:
        with context:
            records, usage = eventloop.run(
                evaluate_records(
                    item_set.items,
                    None if given is not None else config.lm,
                    config.generation,
                    config.cache_path,
                    config.judge,
                    progress,
                    given,
                )
            )
    except LMError as exc:
        # A runtime failure (the server, the network), not the user's mistake: exit 1, like `generate`.
        raise CommandError(
            f"LM request failed: {exc}. Replies received so far are cached in {config.cache_path}; "
            "rerun to resume."
        ) from exc
    if given is not None:
        model = ModelInfo(backend="predictions", model=str(given.path), api="given")
    else:
        assert config.lm is not None
        model = model_info(config.lm)
    report = build_report(
        evaluation.name,
        records,
        model,
        options,
        judge=model_info(config.judge) if config.judge else None,
        group_by=item_set.group_by,
    )
    report.usage = usage
    report.elapsed_s = round(time.monotonic() - started, 3)
    markdown_path = write_report(report, config.out)
    _print_result(report, config, markdown_path, given, len(item_set.items))
    return report


def _print_result(
    report: EvalReport, config: EvalConfig, markdown_path: Path, given: PredictionSet | None, items: int
) -> None:
    console = Console()
    if config.quiet:
        console.print(f"ROUGE-L {report.overall.rougeL:.2f}  exact match {report.overall.exact_match:.2f}")
        return
    sent = ", ".join(
        f"{stage}: {u['requests'] - u['cache_hits']} sent, {u['cache_hits']} cached"
        for stage, u in report.usage.items()
    )
    done = f"Requests ({sent})"
    if given is not None:
        done = (
            f"{items} given predictions scored ({given.missing} missing scored as empty, "
            f"{given.skipped} rows for other items skipped)" + (f"; requests ({sent})" if sent else "")
        )
    console.print(Markdown(render_markdown(report)))
    console.print(f"{done} in {report.elapsed_s:.1f} s. Wrote {config.out} and {markdown_path}", markup=False)
