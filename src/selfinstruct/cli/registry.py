"""Every `selfinstruct` command, in one list: its name, the function (or sub-app) that runs it, its group in
`--help`, and its typed settings where it has them. The typer app is built from this list
(`cli.main.app`), `config --show --for NAME` reads it, and `reproduce` checks and renders each step's
settings through the same entries, so the commands, their settings and their flags cannot drift apart.

A command's settings are a pydantic model whose fields become its flags (`cli.options.FlagTable`), read with
one rule: defaults < a YAML file (keys at the top or under `section:`) < flags. Commands without a model
(`dedup`, `export`, `report` ...) take paths and switches on their command line only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from selfinstruct.cli import config as config_cli
from selfinstruct.cli import (
    contamination,
    dedup,
    export,
    finetune,
    prepare,
    rate,
    report,
    reproduce,
    review,
    run,
    seeds,
)
from selfinstruct.cli import eval as eval_cli
from selfinstruct.cli.options import RUN_FLAGS, FlagTable, flag_names
from selfinstruct.config import RunSettings
from selfinstruct.evaluate.settings import EvalSettings
from selfinstruct.finetune.config import SECTION as FINETUNE_SECTION
from selfinstruct.finetune.config import FinetuneSettings
from selfinstruct.pipeline.prepare import PREPARE_SECTION, PrepareSettings
from selfinstruct.reproduce.plan import ReproduceSettings
from selfinstruct.settings_io import resolve

MAKE, CHECK, TRAIN, TOOLS = "Make data", "Check and publish data", "Train and evaluate", "Tools"


@dataclass(frozen=True)
class Settings:
    """A command's typed settings: the model, the table that turns its fields into flags, the YAML section
    its keys may sit under, and how the command resolves them (defaults < YAML < flags)."""

    model: type[BaseModel]
    flags: FlagTable | None = None
    section: str | None = None
    # The command's own reading where it adds to the shared rule (eval's judge starts from the answering
    # LM's settings); None: `settings_io.resolve` with the section and the flag names.
    reader: Callable[[Path | None, Mapping[str, Any]], BaseModel] | None = None

    def resolve(self, config: Path | None, overrides: Mapping[str, Any]) -> BaseModel:
        if self.reader is not None:
            return self.reader(config, overrides)
        names = flag_names(self.flags) if self.flags is not None else None
        return resolve(self.model, config, dict(overrides), section=self.section, flag_names=names)


@dataclass(frozen=True)
class Command:
    """One command. `name` is as typed (`eval superni`); `entry` is its function, or for a group of
    commands (`eval`) the sub-app, listed once under the group's name."""

    name: str
    entry: Callable[..., Any] | typer.Typer
    group: str
    settings: Settings | None = None


RUN = Settings(RunSettings, RUN_FLAGS)
EVAL = Settings(
    EvalSettings,
    eval_cli.EVAL_FLAGS,
    eval_cli.EVAL_SECTION,
    lambda c, o: eval_cli.eval_settings(dict(o), config=c),
)

COMMANDS: tuple[Command, ...] = (
    Command("generate", run.generate, MAKE, RUN),
    Command("instructions", run.instructions, MAKE, RUN),
    Command("classify", run.classify, MAKE, RUN),
    Command("instances", run.instances, MAKE, RUN),
    Command(
        "prepare", prepare.prepare, MAKE, Settings(PrepareSettings, prepare.PREPARE_FLAGS, PREPARE_SECTION)
    ),
    Command("rate", rate.rate, CHECK, Settings(RunSettings, rate.QUALITY_FLAGS)),
    Command("contamination", contamination.contamination, CHECK),
    Command("report", report.report, CHECK),
    Command("review", review.review, CHECK),
    Command("export", export.export_command, CHECK),
    Command("dedup", dedup.dedup, CHECK),
    Command(
        "finetune",
        finetune.finetune,
        TRAIN,
        Settings(FinetuneSettings, finetune.FINETUNE_FLAGS, FINETUNE_SECTION),
    ),
    Command("eval", eval_cli.eval_app, TRAIN),
    Command("eval superni", eval_cli.superni_command, TRAIN, EVAL),
    Command("eval tasks", eval_cli.tasks_command, TRAIN, EVAL),
    Command("eval compare", eval_cli.compare_command, TRAIN),
    Command("reproduce", reproduce.reproduce, TRAIN, Settings(ReproduceSettings)),
    Command("seeds", seeds.seeds, TOOLS),
    Command("config", config_cli.config_command, TOOLS),
)
BY_NAME: dict[str, Command] = {command.name: command for command in COMMANDS}
# `config --for run` names the run commands' settings, as it always has.
ALIASES = {"run": "generate", "eval": "eval superni"}


def find(name: str) -> Command:
    """A command by the name typed (or an alias); a user error lists the names."""
    key = " ".join(name.split())
    found = BY_NAME.get(ALIASES.get(key, key))
    if found is None:
        raise ValueError(key)
    return found


def top_level() -> list[Command]:
    """The commands the app registers itself (a group's members come with its sub-app)."""
    return [c for c in COMMANDS if " " not in c.name]


def build_app(app: typer.Typer) -> typer.Typer:
    """Register every top-level command (or sub-app) on `app`, in the list's order, under its group."""
    for command in top_level():
        if isinstance(command.entry, typer.Typer):
            app.add_typer(command.entry, name=command.name, rich_help_panel=command.group)
        else:
            app.command(command.name, rich_help_panel=command.group)(command.entry)
    return app
