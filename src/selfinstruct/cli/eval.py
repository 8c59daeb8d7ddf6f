"""`selfinstruct eval ...`: SuperNI ROUGE-L, seed-format tasks with an optional LLM judge, comparisons.

The commands parse their flags into an `EvalConfig` and call `evaluate.session.run_evaluation`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown

from selfinstruct.cli.failure import report_failure
from selfinstruct.cli.options import FlagTable, flag_names, with_flags
from selfinstruct.errors import UserError
from selfinstruct.evaluate.report import check_report_paths, load_report
from selfinstruct.evaluate.run import POSTPROCESS_CHOICES, GenerationOptions
from selfinstruct.evaluate.session import CACHE_NAME, EvalConfig, run_evaluation
from selfinstruct.evaluate.settings import EvalSettings
from selfinstruct.lm.settings import parse_model_spec
from selfinstruct.paths import atomic_write
from selfinstruct.settings_io import load_yaml, resolve

eval_app = typer.Typer(
    help="Evaluate a model: SuperNI zero-shot ROUGE-L, seed-format task files (optionally rated A-D by an "
    "LLM judge), and paired comparisons of two reports.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

LM_PANEL = "LM backend"
JUDGE_PANEL = "LLM judge"

# The flags `superni` and `tasks` share, generated from `EvalSettings`; the LM's are the run's LM flags.
EVAL_FLAGS = FlagTable(
    EvalSettings,
    fields=frozenset({"lm", "max_new_tokens", "stop", "early_stop", "tasks_filter", "template"}),
    rename={"lm.timeout": "request-timeout"},
    panel={"lm": LM_PANEL},
    # Wording for the command line (markup, repeatable flags).
    help={
        "tasks_filter": "Keep tasks whose name matches a glob ([cyan]task1*[/]) or a regex; "
        "several separated by commas.",
        "template": "Prompt template instead of the standard one: a format string "
        "([cyan]{instruction}\\nInput: {input}\\nOutput:[/]) or jinja2 ([cyan]{{ input }}[/]); "
        "[cyan]@FILE[/] reads it from a file.",
        "stop": "Stop sequence (repeatable; \\n is a newline). None by default.",
        "early_stop": "With --postprocess first-sentence, stop decoding at the first period: same "
        "predictions, less decoding. \\[default: on]",
        "max_new_tokens": "Longest reply, in tokens (SuperNI/paper: 128). \\[default: 128]",
    },
)
# What a judge does not take from the answering LM: judges are chat models, keyed as OpenAI's.
JUDGE_DEFAULTS = {"api": "chat", "api_key_env": "OPENAI_API_KEY"}
JUDGE_FLAG_NAMES = {
    "judge.backend": "judge-backend",
    "judge.model": "judge-model",
    "judge.base_url": "judge-base-url",
    "judge.api": "judge-api",
    "judge.api_key_env": "judge-api-key-env",
}

# Options shared by `superni` and `tasks` (typer reads them from the annotations).
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Evaluate only the first N instances of each task.")
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="JSON report; the Markdown report is written beside it (.md).")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help=f"SQLite response cache (default: {CACHE_NAME} beside --out). A rerun "
        "or a resumed run only sends the requests it lacks.",
    ),
]
EVAL_SECTION = "eval"  # a config file written for several commands keeps these keys under `eval:`
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML file with any of these settings, under [cyan]eval:[/] or at the top (flags win over it); "
        "[cyan]selfinstruct config --show --for eval[/] prints them.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the overall score.")]
PREDICTIONS_PANEL = "Given predictions"
PredictionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--predictions",
        help="Score this JSONL of outputs made elsewhere instead of querying a model (same metrics, judge "
        "and report). A row answers the item whose [cyan]id[/] it gives (as in the reports: a SuperNI "
        "instance id, or [cyan]<task id>-<instance index>[/] for a task file), or the instance "
        "[cyan]index[/] (0-based) of the [cyan]task[/] it names; the output is [cyan]prediction[/] (else "
        "[cyan]response[/]). --postprocess applies to it as to a model's reply.",
        rich_help_panel=PREDICTIONS_PANEL,
    ),
]
MissingAsEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--missing-as-empty",
        help="With --predictions: score items the file has no row for as empty outputs (otherwise an error).",
        rich_help_panel=PREDICTIONS_PANEL,
    ),
]


def eval_settings(
    overrides: dict[str, Any], judge: dict[str, Any] | None = None, config: Path | None = None
) -> EvalSettings:
    """Defaults < the YAML `config` (its `eval:` section, or the whole file) < the flags given
    (`overrides`). The judge, when asked for (by flags, or a `judge:` mapping in the file), starts from the
    answering LM's settings (its endpoints, limits, retries) and takes what is written for it."""
    names = {**flag_names(EVAL_FLAGS), **JUDGE_FLAG_NAMES}
    settings = resolve(EvalSettings, config, overrides, section=EVAL_SECTION, flag_names=names)
    written = load_yaml(config, EVAL_SECTION).get("judge") if config is not None else None
    if judge is None and not isinstance(written, dict):
        return settings
    given = {
        **settings.lm.model_dump(),
        **JUDGE_DEFAULTS,
        **(written if isinstance(written, dict) else {}),
        **{k: v for k, v in (judge or {}).items() if v is not None},
    }
    with_judge = {**overrides, "judge": given}
    return resolve(EvalSettings, config, with_judge, section=EVAL_SECTION, flag_names=names)


def _unescape(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.replace("\\n", "\n").replace("\\t", "\t") for v in values or [])


def _evaluate(config: EvalConfig) -> None:
    try:
        run_evaluation(config)
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"Interrupted. Replies received so far are cached in {config.cache_path}; rerun to resume."
        )
        raise typer.Exit(130) from None


def _user_errors(func: Callable[[], None]) -> None:
    """Run a command's body; a failure the user can act on goes through the CLI's one printer and exits with
    its code, also when this sub-app runs on its own (tests invoke it without `cli.main`)."""
    try:
        func()
    except Exception as exc:
        code = report_failure(exc)
        if code is None:
            raise
        raise typer.Exit(code) from exc


@eval_app.command("superni")
@with_flags(EVAL_FLAGS)
def superni_command(
    tasks: Annotated[
        Path,
        typer.Option("--tasks", help="SuperNI data folder (holding [cyan]tasks/[/]) or the tasks folder."),
    ],
    split: Annotated[
        Path | None,
        typer.Option(
            "--split",
            help="File listing the task names to run (default: test_tasks.txt beside the "
            "tasks, else every task file).",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Evaluate the first N instances of each task (the official test split uses the first 100).",
        ),
    ] = 100,
    pos_examples: Annotated[
        int,
        typer.Option(
            "--pos-examples", min=0, help="Add the first N positive examples (SuperNI uses 0 or 2)."
        ),
    ] = 0,
    postprocess: Annotated[
        str,
        typer.Option(
            "--postprocess",
            help="How a reply becomes the scored prediction: [bold]first-sentence[/] "
            "(SuperNI's GPT-3 evaluation: text before the first period), [bold]first-line[/] or "
            "[bold]strip[/].",
        ),
    ] = "first-sentence",
    out: OutOpt = Path("eval/superni.json"),
    cache: CacheOpt = None,
    predictions: PredictionsOpt = None,
    missing_as_empty: MissingAsEmptyOpt = False,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Zero-shot SuperNI: definition + input -> greedy reply, scored by ROUGE-L and exact match.

    With --predictions, a file of outputs made elsewhere is scored instead (rows need an id, or task and
    index)."""

    def body() -> None:
        settings = eval_settings(overrides, config=config)
        eval_config = EvalConfig(
            "superni",
            tasks,
            out,
            _generation_options(settings.max_new_tokens, settings.stop, postprocess, settings.early_stop),
            lm=settings.lm if predictions is None else None,
            limit=limit,
            tasks_filter=settings.tasks_filter,
            template=settings.template,
            extra={"split": split, "pos_examples": pos_examples},
            predictions=predictions,
            missing_as_empty=missing_as_empty,
            cache=cache,
            quiet=quiet,
        )
        _evaluate(eval_config)

    _user_errors(body)


def _generation_options(
    max_new_tokens: int, stop: list[str] | None, postprocess: str, early_stop: bool
) -> GenerationOptions:
    if postprocess not in POSTPROCESS_CHOICES:
        raise UserError(f"--postprocess: expected first-sentence, first-line or strip, got {postprocess!r}")
    options = GenerationOptions(
        max_new_tokens=max_new_tokens,
        stop=_unescape(stop),
        postprocess=postprocess,
        early_stop=early_stop,
    )
    if len(options.stop_sequences()) > 4:
        raise UserError(
            "--stop: at most 4 stop sequences in all (the OpenAI API limit), --early-stop's included"
        )
    return options


@eval_app.command("tasks")
@with_flags(EVAL_FLAGS)
def tasks_command(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            help="Seed-format JSONL (instruction, instances with input/output), or a built-in set: "
            "[cyan]user-oriented[/] (the paper's 252 user-oriented tasks) or a seed set name.",
        ),
    ],
    limit: LimitOpt = None,
    postprocess: Annotated[
        str,
        typer.Option(
            "--postprocess",
            help="How a reply becomes the prediction: [bold]strip[/] (whole reply), "
            "[bold]first-line[/] or [bold]first-sentence[/].",
        ),
    ] = "strip",
    out: OutOpt = Path("eval/tasks.json"),
    cache: CacheOpt = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Rate every reply A-D with this LM: [cyan]BACKEND/MODEL[/] "
            "([cyan]openai/gpt-4o-mini[/]); a bare name means an OpenAI-compatible server.",
            rich_help_panel=JUDGE_PANEL,
        ),
    ] = None,
    judge_backend: Annotated[
        str | None,
        typer.Option(
            "--judge-backend", help="Judge backend (overrides --judge).", rich_help_panel=JUDGE_PANEL
        ),
    ] = None,
    judge_model: Annotated[
        str | None,
        typer.Option("--judge-model", help="Judge model (overrides --judge).", rich_help_panel=JUDGE_PANEL),
    ] = None,
    judge_base_url: Annotated[
        list[str] | None,
        typer.Option(
            "--judge-base-url",
            help="Judge endpoint(s), repeatable (default: --base-url).",
            rich_help_panel=JUDGE_PANEL,
        ),
    ] = None,
    judge_api: Annotated[
        str | None,
        typer.Option(
            "--judge-api",
            help="Judge API: [bold]chat[/] or [bold]completion[/]. \\[default: chat]",
            rich_help_panel=JUDGE_PANEL,
        ),
    ] = None,
    judge_api_key_env: Annotated[
        str | None,
        typer.Option(
            "--judge-api-key-env",
            help="Environment variable holding the judge's API key. \\[default: OPENAI_API_KEY]",
            rich_help_panel=JUDGE_PANEL,
        ),
    ] = None,
    predictions: PredictionsOpt = None,
    missing_as_empty: MissingAsEmptyOpt = False,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Seed-format task file: ROUGE-L against the reference, optionally rated A-D by an LLM judge.

    The paper's scale: A valid and satisfying; B acceptable with minor errors; C relevant but with
    significant errors; D irrelevant or invalid. The report gives the share of each rating, overall and
    per group (a task file's [cyan]motivation_app[/], as in the paper's user-oriented set, else
    classification or not). [cyan]--tasks user-oriented[/] is the paper's 252-task set, built in.

    With --predictions, a file of outputs made elsewhere is scored instead; the paper's own prediction
    files (fields prompt, instruction, input, response; no id) are read too: row i answers the i-th
    instance of the task file, and its instruction and input must match that instance's."""

    def body() -> None:
        judge_spec = None
        if judge or judge_backend or judge_model:
            spec_backend, spec_model = parse_model_spec(judge) if judge else ("openai", None)
            judge_spec = {
                "backend": judge_backend or spec_backend,
                "model": judge_model or spec_model,
                "base_url": list(judge_base_url) if judge_base_url else None,
                "api": judge_api,
                "api_key_env": judge_api_key_env,
            }
        settings = eval_settings(overrides, judge_spec, config)
        eval_config = EvalConfig(
            "tasks",
            tasks,
            out,
            _generation_options(settings.max_new_tokens, settings.stop, postprocess, settings.early_stop),
            lm=settings.lm if predictions is None else None,
            judge=settings.judge,
            limit=limit,
            tasks_filter=settings.tasks_filter,
            template=settings.template,
            predictions=predictions,
            missing_as_empty=missing_as_empty,
            cache=cache,
            quiet=quiet,
        )
        _evaluate(eval_config)

    _user_errors(body)


@eval_app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Report A (the baseline), from eval superni/tasks --out.")],
    b: Annotated[Path, typer.Argument(help="Report B (the candidate).")],
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="[bold]rougeL[/], [bold]exact_match[/] or [bold]rating[/] (judge ratings as A=4 ... D=1).",
        ),
    ] = "rougeL",
    samples: Annotated[int, typer.Option("--samples", min=1, help="Bootstrap resamples.")] = 1000,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence level of the interval.")
    ] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the comparison as JSON here (and Markdown beside it).")
    ] = None,
) -> None:
    """Two reports side by side per task and category, with B - A and a paired bootstrap interval."""

    def body() -> None:
        from selfinstruct.evaluate.compare import compare_reports, render_comparison_markdown

        if metric not in ("rougeL", "exact_match", "rating"):
            raise UserError(f"--metric: expected rougeL, exact_match or rating, got {metric!r}")
        comparison = compare_reports(
            load_report(a),
            load_report(b),
            metric=metric,  # type: ignore[arg-type]
            samples=samples,
            confidence=confidence,
            seed=seed,
            a_name=str(a),
            b_name=str(b),
        )
        markdown = render_comparison_markdown(comparison)
        Console().print(Markdown(markdown))
        if out is not None:
            check_report_paths(out, [a, b])
            with atomic_write(out) as handle:
                handle.write(comparison.model_dump_json(indent=2))
            with atomic_write(out.with_suffix(".md")) as handle:
                handle.write(markdown)

    _user_errors(body)
