"""The commands behind `reproduce`'s steps, as the loop sees them: each section of its settings is read
through the step's command (its typed settings and the flags the command's parser has), checked when the
plan is built, and each step's command line is parsed by that same command before anything runs. So a
misspelt key or a bad value stops the plan with one line naming the file, the line and the step, and what
the loop writes down is exactly what the child command accepts.

A section may use the command's settings keys (`num_instructions`, `lm: {threads: 2}`, `generation:
{temperature: 0.5}`: the YAML shape of `--config`) or its flag names (`num-instructions`, `threads`): both
read through the command's flag table to one canonical form, the flag names the child is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import typer.main
from pydantic import BaseModel

from selfinstruct.cli import registry
from selfinstruct.cli.options import flags_of
from selfinstruct.errors import CommandError, UserError
from selfinstruct.reproduce.plan import Step

# Which command reads each section of the loop's settings (`eval` applies to both evaluations).
SECTION_COMMANDS: dict[str, tuple[str, ...]] = {
    "generate": ("generate",),
    "prepare": ("prepare",),
    "finetune": ("finetune",),
    "eval": ("eval superni", "eval tasks"),
    "superni": ("eval superni",),
    "user_oriented": ("eval tasks",),
    "compare": ("eval compare",),
}
# Which command a step runs, by the first words of its command line.
STEP_COMMANDS = ("eval superni", "eval tasks", "eval compare", "generate", "prepare", "finetune")

Where = Callable[[str], str]  # a section key -> where it was given ("FILE:LINE: ", "--backend: ", ...)


# Typer builds on its own copy of click's classes: commands, options and errors are used by their attributes.
ParsedCommand = Any


def _option_names(command: ParsedCommand) -> dict[str, tuple[str, bool | None]]:
    """Each long option of a command -> (its canonical name, the bool a `--no-x` form means)."""
    names: dict[str, tuple[str, bool | None]] = {}
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        longs = [o[2:] for o in param.opts if o.startswith("--")]
        if not longs:
            continue
        names[longs[0]] = (longs[0], None)
        for other in longs[1:]:
            names[other] = (longs[0], None)
        for secondary in param.secondary_opts:
            if secondary.startswith("--"):
                names[secondary[2:]] = (longs[0], False)
    return names


def _settings_fields(command: registry.Command) -> tuple[dict[str, str], set[str]]:
    """(dotted settings key -> flag name, names of the settings' sections) of a command with settings."""
    settings = command.settings
    if settings is None or settings.flags is None:
        return {}, set()
    model: type[BaseModel] = settings.model
    sections = {
        name
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }
    return {flag.dotted: flag.name for flag in flags_of(settings.flags)}, sections


class StepCommands:
    """What `reproduce` needs of the CLI: reading a section, the flags that pick an LM, checking a step."""

    def __init__(self) -> None:
        self._root: ParsedCommand = None

    def click(self, name: str) -> ParsedCommand:
        """The parsed command `name` names ("eval superni"): one app is built, on first use, for all steps."""
        if self._root is None:
            self._root = typer.main.get_command(registry.build_app(typer.Typer()))
        command = self._root
        for part in name.split():
            command = command.commands[part]
        return command

    @property
    def lm_flags(self) -> frozenset[str]:
        """The generate command's flags that pick and drive its LM (its `lm` settings): the base model's
        evaluations reuse them when the base generated the data."""
        table = registry.find("generate").settings
        assert table is not None and table.flags is not None
        return frozenset(f.name for f in flags_of(table.flags) if f.dotted.startswith("lm."))

    def normalize(self, section: str, values: Mapping[str, Any], where: Where) -> dict[str, Any]:
        """A section's keys (settings keys or flag names) as the flag names its command takes."""
        names = SECTION_COMMANDS.get(section)
        if names is None:
            return dict(values)
        out: dict[str, Any] = {}
        for key, value in values.items():
            found = [self._flags_for(name, section, str(key), value, where) for name in names]
            for flag, flag_value in found[0]:
                out[flag] = flag_value
        return out

    def _flags_for(
        self, name: str, section: str, key: str, value: Any, where: Where
    ) -> list[tuple[str, Any]]:
        command = registry.find(name)
        options = _option_names(self.click(name))
        dotted_to_flag, nested = _settings_fields(command)
        field = key.lstrip("-").replace("-", "_")
        if field in nested and isinstance(value, Mapping):
            flags = []
            for sub, sub_value in value.items():
                dotted = f"{field}.{str(sub).replace('-', '_')}"
                if dotted not in dotted_to_flag:
                    raise UserError(
                        f"{where(key)}{section}.{key}.{sub}: `selfinstruct {name}` has no such setting"
                    )
                flags.append((dotted_to_flag[dotted], sub_value))
            return flags
        if field in dotted_to_flag:
            return [(dotted_to_flag[field], value)]
        flag = key.lstrip("-").replace("_", "-")
        if flag in options:
            canonical, negated = options[flag]
            if negated is not None and isinstance(value, bool):
                value = not value  # `no-progress: true` is `progress: false`
            return [(canonical, value)]
        raise UserError(f"{where(key)}{section}.{key}: `selfinstruct {name}` has no such setting or flag")

    def check(self, step: Step, where: Callable[[str], str]) -> None:
        """Parse a step's command line with its command, as the child will, and resolve its typed
        settings from it: a value either rejects stops the plan (`where(flag)` says where it was given)."""
        name = next(
            (n for n in STEP_COMMANDS if tuple(step.argv[: len(n.split())]) == tuple(n.split())), None
        )
        if name is None:
            return
        command = self.click(name)
        args = list(step.argv[len(name.split()) :])
        try:
            # A copy: the parser consumes the list it is given, and the message is matched against it.
            ctx = command.make_context(f"selfinstruct {name}", list(args), resilient_parsing=False)
        except Exception as exc:  # the parser's usage errors: a bad value, an unknown flag
            format_message = getattr(exc, "format_message", None)
            if not callable(format_message):
                raise
            message = str(format_message())
            raise UserError(f"{where(_flag_in(message, args))}step {step.name}: {message}") from None
        settings = registry.find(name).settings
        if settings is None or settings.flags is None:
            return
        dotted = {f"opt_{f.dotted.replace('.', '__')}": f for f in flags_of(settings.flags)}
        overrides = {
            dotted[param].dotted: value
            for param, value in ctx.params.items()
            if param in dotted and value is not None and not (isinstance(value, list | tuple) and not value)
        }
        try:
            settings.resolve(None, overrides)
        except CommandError as exc:
            flag = _flag_in(str(exc), [f"--{dotted[p].name}" for p in dotted])
            raise UserError(f"{where(flag)}step {step.name}: {exc}") from None


def _flag_in(message: str, args: list[str]) -> str:
    """The flag a parser's message names (`--threads`), for saying where it was given."""
    for arg in args:
        if arg.startswith("--") and (arg in message or arg.split("=", 1)[0] in message):
            return arg.split("=", 1)[0][2:]
    return ""
