"""The `selfinstruct` command: the app built from the registry of commands (`cli.registry`), and the entry
point that turns every failure a user can act on into one line and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer
import typer.main

from selfinstruct.cli.failure import report_failure
from selfinstruct.cli.output import say
from selfinstruct.cli.registry import build_app

app = build_app(
    typer.Typer(
        name="selfinstruct",
        help="Self-Instruct end to end: bootstrap instruction data from any LM, filter it, fine-tune, "
        "evaluate.",
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
)


def run() -> None:
    """Entry point. Exit codes a script can trust: 0 done, 1 a runtime failure (the LM, the disk), 2 a
    user's mistake, 130 Ctrl-C; every failure the user can act on is one line on stderr, no traceback."""
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
            say("Interrupted.", "yellow")
            raise typer.Exit(130) from None

    return wrapper


def _main() -> int:
    try:
        # Standalone mode off: our handlers below see the exceptions. click then *returns* the code of a
        # `typer.Exit` instead of exiting with it, so the return value is the exit code.
        code = _click_command().main(standalone_mode=False)
    except typer.Exit as exc:  # raised outside click's own handling (e.g. while building the app)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort (after printing a line break); commands that hold a run print
        # their own line and exit 130 through typer.Exit.
        say("Interrupted.", "yellow")
        return 130
    except Exception as exc:
        failed = report_failure(exc)  # every error of `selfinstruct.errors`, a refused file or database
        if failed is not None:
            return failed
        # Usage errors (unknown option, bad value) from typer's click layer: its own message, exit 2.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        raise
    return code if isinstance(code, int) else 0
