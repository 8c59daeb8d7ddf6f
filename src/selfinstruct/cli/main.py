"""The `selfinstruct` command. One small function per command; the work lives in the packages below."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
import yaml
from rich.console import Console
from rich.table import Table

from selfinstruct.cli.options import RUN_FLAGS, flag_names, with_setting_flags
from selfinstruct.errors import CommandError, UserError
from selfinstruct.lm.base import LMError

app = typer.Typer(
    name="selfinstruct",
    help="Self-Instruct end to end: bootstrap instruction data from any LM, filter it, fine-tune, evaluate.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

RunDirOption = Annotated[
    Path, typer.Option("--out", "-o", help="Run directory (created, or resumed if it exists).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file of settings (same keys as the flags).")
]
InputOption = Annotated[
    Path | None,
    typer.Option(
        "--input",
        "-i",
        help="Instructions from an earlier stage's JSONL file (field 'instruction'; "
        "'is_classification' used if present), imported into RUN_DIR (created if needed).",
    ),
]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show the live progress bar.")]
MinQualityOption = Annotated[
    str,
    typer.Option(
        "--min-quality",
        help="The quality gate on a judge's Table 2 answers (selfinstruct rate): [bold]all[/] keeps "
        "instances with three yes, [bold]output[/] those with a valid task and a correct output, "
        "[bold]none[/] every kept instance (the paper). [bold]auto[/]: all when a judge rated every kept "
        "instance, else none.",
    ),
]
GateJudgeOption = Annotated[
    str | None,
    typer.Option("--gate-judge", help="Whose answers the gate reads \\[default: the judge that rated most]"),
]


def _run_stages(
    run_dir: Path,
    config: Path | None,
    overrides: dict[str, Any],
    stages: tuple[str, ...],
    progress: bool,
    *,
    create: bool,
    export: bool = False,
    input_file: Path | None = None,
) -> None:
    from selfinstruct.errors import BudgetExceeded
    from selfinstruct.export import export_run
    from selfinstruct.pipeline.importing import read_instruction_file
    from selfinstruct.pipeline.session import execute, open_run

    items = read_instruction_file(input_file) if input_file is not None else None
    option = "--out" if create else "RUN_DIR"
    run = open_run(
        run_dir,
        config,
        overrides,
        create=create or items is not None,
        option=option,
        flag_names=flag_names(RUN_FLAGS),
    )
    try:
        if items is not None:
            added = run.store.import_instructions(items, str(input_file))
            console.print(f"Imported {added} new instructions from {input_file}", markup=False)
        if run.resumed:
            _say(f"Resuming {run_dir} (done work is kept; answered requests come from the cache).")
        summary = execute(run, stages=stages, console=console, show_progress=progress)
    except KeyboardInterrupt:
        run.discard_if_unused()
        _say(f"Interrupted. Nothing answered is lost: rerun the same command to resume {run_dir}.", "yellow")
        raise typer.Exit(130) from None
    except BudgetExceeded as stop:
        # A clean stop, not a failure of the LM: what was spent and done, then the one line; exit 1.
        if stop.summary is not None:
            _print_summary(stop.summary)
        _say(str(stop), "yellow")
        raise typer.Exit(stop.exit_code) from None
    except BaseException:
        run.discard_if_unused()  # a run rejected before any work leaves no directory behind
        raise
    finally:
        run.close()
    _print_summary(summary)
    if export:
        exported = export_run(run_dir)
        _say(exported.gate.describe())
        console.print(f"Exported {len(exported.files)} files to {run_dir / 'export'}")


def _say(message: str, style: str | None = None) -> None:
    """One line on stderr, never wrapped (scripts and tests read it whole), paths printed verbatim."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


def _print_summary(summary: Any) -> None:
    from selfinstruct.pipeline.summary import summary_tables

    for table in summary_tables(summary):
        console.print(table)


@app.command()
@with_setting_flags
def generate(
    out: RunDirOption = Path("runs/demo"),
    config: ConfigOption = None,
    progress: ProgressOption = True,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Write RUN_DIR/export at the end.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what the run would cost per stage (requests, tokens; USD with --price-input and "
            "--price-output) from its real prompts, and exit. Touches nothing.",
        ),
    ] = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Run all stages as one streaming pipeline: instructions, classification, instances (then export).

    Kill it at any moment and rerun the same command: it resumes without losing or repeating work."""
    if dry_run:
        from selfinstruct.pipeline.estimate import plan, print_estimate

        print_estimate(console, plan(out, config, overrides, flag_names=flag_names(RUN_FLAGS)))
        return
    _run_stages(
        out,
        config,
        overrides,
        ("instructions", "classify", "instances"),
        progress,
        create=True,
        export=export,
    )


@app.command()
@with_setting_flags
def instructions(
    out: RunDirOption = Path("runs/demo"),
    config: ConfigOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 1 only: bootstrap instructions from the seed pool into RUN_DIR."""
    _run_stages(out, config, overrides, ("instructions",), progress, create=True)


@app.command()
@with_setting_flags
def classify(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding stage-1 results.")],
    config: ConfigOption = None,
    input_file: InputOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 2 only: decide which kept instructions are classification tasks."""
    _run_stages(run_dir, config, overrides, ("classify",), progress, create=False, input_file=input_file)


@app.command()
@with_setting_flags
def instances(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding stage-1/2 results.")],
    config: ConfigOption = None,
    input_file: InputOption = None,
    progress: ProgressOption = True,
    *,
    overrides: dict[str, Any],
) -> None:
    """Stage 3 only: generate and filter instances (classifies first where stage 2 has not run)."""
    _run_stages(
        run_dir, config, overrides, ("classify", "instances"), progress, create=False, input_file=input_file
    )


@app.command()
def prepare(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output JSONL \\[default: RUN_DIR/export/finetune.jsonl]"),
    ] = None,
    seeds: Annotated[
        bool, typer.Option("--seeds/--no-seeds", help="Include the seed tasks' instances.")
    ] = True,
    templates: Annotated[
        str,
        typer.Option(
            "--templates",
            help="paper (the paper's 13 templates and input cleaning) or project (this project's "
            "earlier wording; see docs/pipeline.md).",
        ),
    ] = "paper",
    eos: Annotated[
        str | None,
        typer.Option(
            "--eos",
            help="End-of-sequence text ending each completion \\[default: the run's model's, where its "
            "tokenizer is known offline (embedded Gemma: <eos>), else the paper's <|endoftext|>]",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the sampling, templates and shuffle "
            "\\[default: the run's seed; the paper used 123]",
        ),
    ] = None,
    min_quality: MinQualityOption = "auto",
    gate_judge: GateJudgeOption = None,
    decontaminate: Annotated[
        list[str] | None,
        typer.Option(
            "--decontaminate",
            metavar="SET",
            help="Leave out what overlaps this evaluation set (repeatable; user-oriented, a SuperNI folder "
            "or a seed-format file): every instance sharing a 13-gram with it and every instance of an "
            "instruction with ROUGE-L F > 0.7 to one of its instructions (selfinstruct contamination shows "
            "them). The seed tasks, your own, are not checked.",
        ),
    ] = None,
) -> None:
    """Stage 4: prompt/completion fine-tuning data (the paper's templates, deduplicated, shuffled)."""
    from selfinstruct.pipeline.prepare import prepare_run

    eval_texts = []
    if decontaminate:  # loaded here: the pipeline never imports the evaluation package
        from selfinstruct.evaluate.sets import load_eval_sets

        eval_texts = load_eval_sets(decontaminate, "--decontaminate")
    result = prepare_run(
        run_dir,
        out,
        templates=templates,
        eos=eos,
        seed=seed,
        include_seeds=seeds,
        min_quality=min_quality,
        gate_judge=gate_judge,
        decontaminate=eval_texts,
    )
    _say(result.gate.describe())
    if decontaminate:
        _say(result.describe_decontamination())
    console.print(
        f"Wrote {result.rows} prompt/completion pairs to {result.path} "
        f"(templates {result.templates}, eos {result.eos!r} from {result.eos_source}, seed {result.seed})",
        markup=False,
    )


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder [default: RUN_DIR/export]")
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help="paper, finetune, alpaca, openai-chat, parquet (repeatable) [default: all]"
        ),
    ] = None,
    seeds: Annotated[
        bool, typer.Option("--seeds/--no-seeds", help="Include seed tasks in finetune data.")
    ] = True,
    min_quality: MinQualityOption = "auto",
    gate_judge: GateJudgeOption = None,
    license_id: Annotated[
        str | None,
        typer.Option(
            "--license",
            help="The data's licence as a Hub licence id (apache-2.0, cc-by-4.0, other ...), written into "
            "the dataset card \\[default: none chosen, and the card says so]",
        ),
    ] = None,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            metavar="OWNER/NAME",
            help="Upload the export folder to this Hugging Face dataset repository (created if needed) in "
            "one commit; the token comes from HF_TOKEN or `hf auth login`.",
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="With --push-to-hub: create the repository private.")
    ] = False,
) -> None:
    """Write the run's data: the paper's files, fine-tuning data, Alpaca JSON, chat messages, Parquet, and
    a dataset card (README.md) that `datasets.load_dataset(FOLDER)` reads."""
    from selfinstruct import hub
    from selfinstruct.export import FORMATS, export_run

    if push_to_hub is not None:  # a bad repository id or no token: refused before any work
        hub.check_repo_id(push_to_hub)
        hub.check_token()
    elif private:
        raise UserError("--private: only with --push-to-hub")
    exported = export_run(
        run_dir,
        out,
        fmt or FORMATS,
        include_seeds=seeds,
        min_quality=min_quality,
        gate_judge=gate_judge,
        license_id=license_id,
        repo_id=push_to_hub,
    )
    _say(exported.gate.describe())
    table = Table(title="Exported")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path, rows in exported.files.values():
        table.add_row(str(path), str(rows))
    console.print(table)
    _say(f"Dataset card: {exported.card}")
    if push_to_hub is not None:
        pushed = hub.push_export(exported, push_to_hub, private=private)
        _say(f"Pushed {len(pushed.files)} files to {pushed.url}{' (private)' if pushed.private else ''}")


@app.command("config")
@with_setting_flags
def config_command(
    config: ConfigOption = None,
    show: Annotated[bool, typer.Option("--show", help="Print the resolved settings as YAML.")] = True,
    command: Annotated[
        str,
        typer.Option(
            "--for",
            help="Whose settings: [bold]run[/] (generate and the stage commands; the flags below), "
            "[bold]finetune[/] or [bold]eval[/] (defaults < --config only).",
        ),
    ] = "run",
    *,
    overrides: dict[str, Any],
) -> None:
    """Print the resolved settings (defaults < --config file < flags) as YAML, ready to edit and reuse."""
    settings = _resolve_for(command, config, overrides)
    if show:
        sys.stdout.write(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))


def _resolve_for(command: str, config: Path | None, overrides: dict[str, Any]) -> Any:
    """One command's settings through the shared rule; the run's flags shape only the run's settings."""
    from selfinstruct.config import resolve_settings

    if command == "run":
        return resolve_settings(config, overrides, flag_names=flag_names(RUN_FLAGS))
    if command not in ("finetune", "eval"):
        raise UserError(f"--for: expected run, finetune or eval, got {command!r}")
    if overrides:
        given = ", ".join(sorted(overrides))
        raise UserError(f"--for {command}: the flags shown here are run settings ({given}); use --config")
    from selfinstruct.settings_io import resolve

    if command == "finetune":
        from selfinstruct.finetune.config import SECTION, FinetuneSettings

        return resolve(FinetuneSettings, config, section=SECTION)
    from selfinstruct.cli.eval import eval_settings

    return eval_settings({}, config=config)  # as `eval superni/tasks --config` reads it


def _register_optional() -> None:
    """Commands owned by other packages; each module defines one typer function or sub-app."""
    import importlib

    for module_name, attr, name in (
        ("dedup", "dedup", "dedup"),
        ("rate", "rate", "rate"),
        ("finetune", "finetune", "finetune"),
        ("report", "report", "report"),
        ("review", "review", "review"),
        ("eval", "eval_app", "eval"),
        ("seeds", "seeds", "seeds"),
        ("reproduce", "reproduce", "reproduce"),
        ("contamination", "contamination", "contamination"),
    ):
        try:
            module = importlib.import_module(f"selfinstruct.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"selfinstruct.cli.{module_name}":
                raise
            continue
        target = getattr(module, attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


def run() -> None:
    """Entry point. Exit codes a script can trust: 0 done, 1 a runtime failure (the LM, the disk), 2 a
    user's mistake, 130 Ctrl-C; every failure the user can act on is one line on stderr, no traceback."""
    _register_optional()
    sys.exit(_main())


def _click_command() -> Any:
    """The app as a click command whose every command says "Interrupted." on Ctrl-C (typer alone turns
    a KeyboardInterrupt into a silent exit 130). Commands that hold a run catch it first, with their own
    line on how to resume."""
    command = typer.main.get_command(app)
    _say_when_interrupted(command)
    return command


def _say_when_interrupted(command: Any) -> None:
    # Duck-typed: typer builds on its own copy of click's classes.
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        for sub in subcommands.values():
            _say_when_interrupted(sub)
    elif getattr(command, "callback", None) is not None:
        command.callback = _interruptible(command.callback)


def _interruptible(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt:
            _say("Interrupted.", "yellow")
            raise typer.Exit(130) from None

    return wrapper


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")  # one line, never wrapped
    return code


def _main() -> int:
    import errno
    import sqlite3

    from selfinstruct.paths import STORAGE_ERRNOS, database_error

    try:
        # Standalone mode off: our handlers below see the exceptions. click then *returns* the code of a
        # `typer.Exit` instead of exiting with it, so the return value is the exit code.
        code = _click_command().main(standalone_mode=False)
    except CommandError as err:
        return _fail(str(err), err.exit_code)
    except LMError as err:
        return _fail(f"LM request failed: {err}. Rerun the same command to resume.", 1)
    except typer.Exit as exc:  # raised outside click's own handling (e.g. while building the app)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort (after printing a line break); commands that hold a run print
        # their own line and exit 130 through typer.Exit.
        _say("Interrupted.", "yellow")
        return 130
    except OSError as exc:
        # The file system refused (disk full, read-only, permissions): one line naming the path.
        if exc.filename is None and exc.errno not in STORAGE_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return _fail(f"{where}{exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}", 1)
    except sqlite3.Error as exc:
        error = database_error(exc, "the run database")
        if error is None:
            raise
        return _fail(str(error), error.exit_code)
    except Exception as exc:
        # Usage errors (unknown option, bad value) from typer's click layer: its own message, exit 2.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        raise
    return code if isinstance(code, int) else 0
