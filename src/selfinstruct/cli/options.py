"""A command's flags, generated from its settings model (one source of truth): `RunSettings` for the run
commands, `FinetuneSettings` for finetune, `EvalSettings.lm` for the eval commands' LM.

A `FlagTable` says how one model's keys become flags: a prefix per section, renamed flags (earlier
names, short forms, aliases), help panels, and which keys are left out. Flags default to None ("not
given"), so that precedence defaults < YAML < flags holds (`selfinstruct.settings_io.resolve`).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from selfinstruct.config import RunSettings


@dataclass(frozen=True)
class FlagTable:
    """How one settings model becomes flags."""

    model: type[BaseModel]
    # Section (a nested model's field) -> flag prefix.
    prefix: Mapping[str, str] = field(default_factory=dict)
    # Dotted key -> flag name, or its full declarations ("--learning-rate", "--lr"; "--with-x/--no-x").
    rename: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    # Section or dotted key -> help panel; `default_panel` for the rest (None: the main "Options").
    panel: Mapping[str, str | None] = field(default_factory=dict)
    default_panel: str | None = None
    # Top-level fields that get flags (None: all; a nested model's leaves all do); keys given no flag.
    fields: frozenset[str] | None = None
    skip: frozenset[str] = frozenset()
    # Help text instead of the model's description (for wording that only makes sense on a command line).
    help: Mapping[str, str] = field(default_factory=dict)


class Flag(NamedTuple):
    dotted: str
    decls: tuple[str, ...]
    type: Any
    help: str
    panel: str | None

    @property
    def name(self) -> str:
        """The flag's long name, without dashes (the first declaration)."""
        return self.decls[0].split("/")[0].removeprefix("--")


# Section -> flag prefix. The LM and filter knobs are used most, so they get the short names.
RUN_FLAGS = FlagTable(
    RunSettings,
    prefix={
        "lm": "",
        "generation": "gen-",
        "filters": "",
        "classify": "clf-",
        "instances": "inst-",
        "quality": "",
        "cost": "",
    },
    rename={
        "instances.copy_filter": "copy-filter",
        "instances.copy_threshold": "copy-threshold",
        "instances.copy_ngram": "copy-ngram",
        "generation.classification_only": "classification-only",
        "generation.keep_truncated": "keep-truncated",
        "generation.max_requests": "max-requests",
        "generation.stall_requests": "stall-requests",
        "generation.prompt_instructions": "prompt-instructions",
        "generation.prompt_machine_instructions": "prompt-machine-instructions",
        "instances.max_instances": "max-instances",
        "lm.timeout": "request-timeout",
    },
    panel={
        "lm": "LM backend",
        "generation": "Stage 1: instructions",
        "filters": "Stage 1: filters",
        "classify": "Stage 2: classification",
        "instances": "Stage 3: instances",
        "quality": "Data quality",
        "cost": "Cost and budget",
    },
    default_panel="Run",
)


def _flag_type(annotation: Any) -> Any:
    """The type typer parses; pydantic validates the rest (ranges, literals)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if any(get_origin(a) is Literal for a in inner):
            return str  # a number or a word ("2" or "auto"): pydantic tells them apart
        return _flag_type(inner[0])
    if origin is Literal:
        return str
    if origin is list:
        return types.GenericAlias(list, (_flag_type(get_args(annotation)[0]),))  # list[X] built at runtime
    return annotation


def _help(description: str | None, annotation: Any, default: Any) -> str:
    """Help text with the choices (for Literal settings) and the default; brackets escaped for rich. A
    description that explains its own default (`default: ...`) is not given a second one."""
    text = description or ""
    # Choices only where the setting is nothing but a choice (not "a number or auto").
    members = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    literal = [a for a in (annotation, *members) if get_origin(a) is Literal]
    if literal and (get_origin(annotation) is Literal or all(get_origin(a) is Literal for a in members)):
        text += f" One of: {', '.join(map(str, get_args(literal[0])))}."
    if "default" in text.lower():
        return text.strip()
    shown = default if not isinstance(default, list) else " ".join(repr(v) for v in default) or "none"
    return f"{text} \\[default: {shown}]".strip()


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _flag(table: FlagTable, dotted: str, section: str | None, info: FieldInfo) -> Flag:
    leaf = dotted.rsplit(".", 1)[-1]
    renamed = table.rename.get(dotted)
    typ = _flag_type(info.annotation)
    if isinstance(renamed, tuple):
        decls = renamed  # as written: a bool declared without a --no- form can only turn its setting on
    else:
        name = renamed or table.prefix.get(section or "", "") + leaf.replace("_", "-")
        decls = (f"--{name}/--no-{name}",) if typ is bool else (f"--{name}",)
    default = info.get_default(call_default_factory=True)
    text = table.help.get(dotted) or _help(info.description, info.annotation, default)
    panel = table.panel.get(dotted, table.panel.get(section or "", table.default_panel))
    return Flag(dotted, decls, typ, text, panel)


def flags_of(table: FlagTable) -> list[Flag]:
    """One flag per leaf setting of the table's model, in the model's order."""
    flags: list[Flag] = []
    for name, info in table.model.model_fields.items():
        if (table.fields is not None and name not in table.fields) or name in table.skip:
            continue
        nested = _nested_model(info.annotation)
        if nested is None:
            flags.append(_flag(table, name, None, info))
            continue
        for sub, subinfo in nested.model_fields.items():
            if f"{name}.{sub}" not in table.skip:
                flags.append(_flag(table, f"{name}.{sub}", name, subinfo))
    return flags


def flag_names(table: FlagTable) -> dict[str, str]:
    """Dotted key -> flag name, for error messages that name the flag given."""
    return {flag.dotted: flag.name for flag in flags_of(table)}


def setting_flags(table: FlagTable = RUN_FLAGS) -> list[tuple[str, str, Any, str, str | None]]:
    """(dotted key, flag name, type, help, panel) for every leaf setting."""
    return [(f.dotted, f.name, f.type, f.help, f.panel) for f in flags_of(table)]


def with_flags(table: FlagTable) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one keyword parameter per setting to a command's signature; the command receives them
    collected as `overrides={dotted key: value}` (only those given)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        flags = flags_of(table)
        params = [
            p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "overrides"
        ]
        names = {f"opt_{flag.dotted.replace('.', '__')}": flag.dotted for flag in flags}
        for flag, pname in zip(flags, names, strict=True):
            option = typer.Option(
                None, *flag.decls, help=flag.help, rich_help_panel=flag.panel, show_default=False
            )
            params.append(
                inspect.Parameter(
                    pname, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=flag.type | None
                )
            )

        def wrapper(**kwargs: Any) -> Any:
            overrides = {}
            for pname, dotted in names.items():
                value = kwargs.pop(pname)
                if value is None or value == []:
                    continue
                overrides[dotted] = value
            return func(overrides=overrides, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorate


# The run commands' decorator (generate, instructions, classify, instances, config).
with_setting_flags = with_flags(RUN_FLAGS)
