"""Reading settings, once for every command: one YAML loader, one error formatter, one precedence rule.

Precedence: model defaults < `base` (e.g. a resumed run's saved settings) < the YAML file < flags.
Errors: a YAML syntax error names `FILE:LINE`; a value the model rejects names its dotted key,
`setting <key>: <message>`, and where it came from (`FILE:LINE: ...` or `(from --flag)`).

Pure data handling: no command-line code here (the `cli` package builds on this, never the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from selfinstruct.errors import InputFileError, UserError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path | str, section: str | None = None) -> dict[str, Any]:
    """A YAML mapping of settings; dashes in keys read as underscores (`max-steps` = `max_steps`).

    `section`: a file written for several commands may nest this command's keys under that name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFileError(path, None, f"cannot read config: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputFileError(path, line, getattr(exc, "problem", None) or "invalid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputFileError(path, 1, "a config file must be a mapping of keys to values")
    if section is not None and isinstance(data.get(section), dict):
        data = data[section]
    return _underscored(data)


def _underscored(data: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): _underscored(v) if isinstance(v, dict) else v for k, v in data.items()}


def line_of_key(path: Path, keys: list[str], section: str | None = None) -> int | None:
    """The 1-based line where a nested key is written (`keys` as in the validation error), if found."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    path_keys = keys
    if section is not None and _child(node, section) is not None:
        path_keys = [section, *keys]
    for key in path_keys:
        found = _child(node, key)
        if found is None:
            break
        key_node, node = found
        line = key_node.start_mark.line + 1
    return line


def _child(node: Any, key: str) -> tuple[Any, Any] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if str(key_node.value).replace("-", "_") == key:
            return key_node, value_node
    return None


def describe(err: ValidationError) -> tuple[list[str], str]:
    """The first problem of a validation error: (key path, `setting <dotted key>: <message>`)."""
    first = err.errors()[0]
    keys = [str(p) for p in first["loc"]]
    # A validator's own message reads better without pydantic's "Value error, " in front of it.
    msg = str(first["msg"]).removeprefix("Value error, ")
    return keys, f"setting {'.'.join(keys)}: {msg}" if keys else f"settings: {msg}"


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """{"generation.temperature": 0.2} -> {"generation": {"temperature": 0.2}}."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` wins; mappings merge key by key, anything else (lists too) is replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(
    model: type[M],
    config_path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    section: str | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> M:
    """Defaults < `base` < YAML file < `overrides` ({dotted key: value}, only the flags given).

    A value rejected from the file names its file and line; one rejected from a flag names the flag
    (`flag_names`: dotted key -> flag, where the command knows them)."""
    data: dict[str, Any] = dict(base or {})
    if config_path is not None:
        path = Path(config_path)
        data = deep_merge(data, load_yaml(path, section))
        try:
            model.model_validate(data)
        except ValidationError as err:
            keys, message = describe(err)
            raise InputFileError(path, line_of_key(path, keys, section), message) from None
    data = deep_merge(data, nest(overrides or {}))
    try:
        return model.model_validate(data)
    except ValidationError as err:
        keys, message = describe(err)
        dotted = ".".join(keys)
        # Named only when that flag was given: a bad value saved in a resumed run is not the flag's fault.
        flag = (flag_names or {}).get(dotted) if _given(nest(overrides or {}), keys) else None
        raise UserError(f"{message} (from --{flag})" if flag else message) from None


def _given(nested: Mapping[str, Any], keys: list[str]) -> bool:
    """Whether the nested overrides hold a value at `keys` (or above it, as a whole section)."""
    node: Any = nested
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True
