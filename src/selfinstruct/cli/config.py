"""`selfinstruct config --show [--for COMMAND]`: a command's settings resolved (defaults < --config < flags),
printed as YAML ready to edit and reuse, for every command of the registry that has settings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from selfinstruct.cli.options import with_setting_flags
from selfinstruct.errors import UserError


@with_setting_flags
def config_command(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file of settings (same keys as the flags).")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the resolved settings as YAML.")] = True,
    command: Annotated[
        str,
        typer.Option(
            "--for",
            help="Whose settings: a command with settings of its own ([bold]generate[/] (also [bold]run[/]), "
            "instructions, classify, instances, prepare, rate, finetune, [bold]eval[/] superni/tasks, "
            "reproduce). The run flags below shape the run commands' settings; for the others, --config.",
        ),
    ] = "run",
    *,
    overrides: dict[str, Any],
) -> None:
    """Print the resolved settings (defaults < --config file < flags) as YAML, ready to edit and reuse."""
    settings = resolve_for(command, config, overrides)
    if show:
        sys.stdout.write(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))


def resolve_for(name: str, config: Path | None, overrides: dict[str, Any]) -> Any:
    """One command's settings through the registry; the run flags shape only the run's settings."""
    from selfinstruct.cli import registry  # the registry lists this command too

    try:
        command = registry.find(name)
    except ValueError:
        known = ", ".join(c.name for c in registry.COMMANDS if c.settings is not None)
        raise UserError(f"--for: no command {name!r}; commands with settings: {known}") from None
    if command.settings is None:
        raise UserError(
            f"--for {command.name}: it has no settings file; its options are flags (selfinstruct "
            f"{command.name} --help)"
        )
    if overrides and command.settings is not registry.RUN:
        given = ", ".join(sorted(overrides))
        raise UserError(
            f"--for {command.name}: the flags shown here are run settings ({given}); use --config"
        )
    return command.settings.resolve(config, overrides)
