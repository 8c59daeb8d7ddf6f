"""Every run setting becomes a command-line flag, generated from the settings models (one source of truth).

Flags default to None ("not given"), so that precedence defaults < YAML < flags holds.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel

from selfinstruct.config import RunSettings

# Section -> flag prefix. The LM and filter knobs are used most, so they get the short names.
_PREFIX = {"lm": "", "generation": "gen-", "filters": "", "classify": "clf-", "instances": "inst-"}
_RENAME = {
    "generation.classification_only": "classification-only",
    "generation.keep_truncated": "keep-truncated",
    "generation.max_requests": "max-requests",
    "generation.prompt_instructions": "prompt-instructions",
    "generation.prompt_machine_instructions": "prompt-machine-instructions",
    "instances.max_instances": "max-instances",
    "lm.timeout": "request-timeout",
}
_PANEL = {
    "lm": "LM backend",
    "generation": "Stage 1: instructions",
    "filters": "Stage 1: filters",
    "classify": "Stage 2: classification",
    "instances": "Stage 3: instances",
}


def _flag_type(annotation: Any) -> Any:
    """The type typer parses; pydantic validates the rest (ranges, literals)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _flag_type(inner[0])
    if origin is Literal:
        return str
    if origin is list:
        return list[_flag_type(get_args(annotation)[0])]
    return annotation


def _help(description: str | None, annotation: Any, default: Any) -> str:
    """Help text with the choices (for Literal settings) and the default; brackets escaped for rich."""
    text = description or ""
    literal = [a for a in (annotation, *get_args(annotation)) if get_origin(a) is Literal]
    if literal:
        text += f" One of: {', '.join(map(str, get_args(literal[0])))}."
    shown = default if not isinstance(default, list) else " ".join(repr(v) for v in default) or "none"
    return f"{text} \\[default: {shown}]".strip()


def setting_flags() -> list[tuple[str, str, Any, str, str]]:
    """(dotted key, flag name, type, help, panel) for every leaf setting."""
    flags: list[tuple[str, str, Any, str, str]] = []
    for name, field in RunSettings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, subfield in annotation.model_fields.items():
                dotted = f"{name}.{sub}"
                flag = _RENAME.get(dotted, _PREFIX[name] + sub.replace("_", "-"))
                default = subfield.get_default(call_default_factory=True)
                help_text = _help(subfield.description, subfield.annotation, default)
                flags.append((dotted, flag, _flag_type(subfield.annotation), help_text, _PANEL[name]))
        else:
            default = field.get_default(call_default_factory=True)
            help_text = _help(field.description, annotation, default)
            flags.append((name, name.replace("_", "-"), _flag_type(annotation), help_text, "Run"))
    return flags


def with_setting_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one keyword parameter per setting to `func`'s signature; the wrapped function receives them
    collected as `overrides={dotted key: value}` (only those given)."""
    flags = setting_flags()
    params = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "overrides"]
    names = {f"opt_{dotted.replace('.', '__')}": dotted for dotted, *_ in flags}
    for (_, flag, typ, help_text, panel), pname in zip(flags, names, strict=True):
        decl = f"--{flag}/--no-{flag}" if typ is bool else f"--{flag}"
        option = typer.Option(None, decl, help=help_text, rich_help_panel=panel, show_default=False)
        params.append(
            inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=typ | None)
        )

    def wrapper(**kwargs: Any) -> Any:
        overrides = {}
        for pname, dotted in names.items():
            value = kwargs.pop(pname)
            if value is not None and value != []:
                overrides[dotted] = value
        return func(overrides=overrides, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper
