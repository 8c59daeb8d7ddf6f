"""One list of commands: the app is built from it at import, `config --show --for` reads every command's
settings from it, and `reproduce` reads its steps through it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
import yaml
from tests.conftest import SELFINSTRUCT

from selfinstruct.cli import registry
from selfinstruct.cli.main import app


def _commands(command: object, prefix: str = "") -> set[str]:
    found = set()
    for name, sub in getattr(command, "commands", {}).items():
        full = f"{prefix}{name}"
        found.add(full)
        found |= _commands(sub, f"{full} ")
    return found


def test_the_imported_app_has_every_command_of_the_list_and_no_other() -> None:
    built = _commands(typer.main.get_command(app))
    assert built == {command.name for command in registry.COMMANDS}
    assert {"eval superni", "finetune", "review", "reproduce", "rate", "contamination"} <= built


@pytest.mark.parametrize("name", [c.name for c in registry.COMMANDS if c.settings is not None])
def test_config_show_prints_every_commands_settings_from_the_list(name: str) -> None:
    done = subprocess.run(
        [*SELFINSTRUCT, "config", "--show", "--for", name], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    shown = yaml.safe_load(done.stdout)
    settings = registry.find(name).settings
    assert settings is not None
    assert shown == settings.model().model_dump(mode="json")  # the defaults, through the same model


def test_config_show_of_a_command_without_settings_and_of_no_command_is_one_line() -> None:
    for name, fragment in (("dedup", "has no settings file"), ("nonsense", "no command 'nonsense'")):
        done = subprocess.run(
            [*SELFINSTRUCT, "config", "--show", "--for", name], capture_output=True, text=True, check=False
        )
        assert done.returncode == 2 and fragment in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_help_groups_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "selfinstruct", "--help"], capture_output=True, text=True)
    for group in (registry.MAKE, registry.CHECK, registry.TRAIN, registry.TOOLS):
        assert group in done.stdout
