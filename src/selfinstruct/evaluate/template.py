"""User prompt templates: a jinja2 template (`{{ input }}`) or a Python format string (`{input}`)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta

from selfinstruct.errors import UserError


@dataclass(frozen=True)
class PromptTemplate:
    """A template and the field names it may use. Rendering with an unknown field is a user error."""

    text: str
    fields: frozenset[str]

    @property
    def is_jinja(self) -> bool:
        return "{{" in self.text or "{%" in self.text

    def render(self, **values: str) -> str:
        if self.is_jinja:
            env = jinja2.Environment(
                undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
            )
            try:
                return env.from_string(self.text).render(**values)
            except jinja2.TemplateError as exc:
                raise UserError(f"prompt template: {exc}") from exc
        return self.text.format_map(values)


def parse_template(spec: str, fields: set[str] | frozenset[str]) -> PromptTemplate:
    """`spec` is the template itself or `@FILE` to read it from a file. Inline templates may write a
    newline as `\\n` (handy on a command line). Format-string fields are checked against `fields` now,
    so a typo fails before any request is sent."""
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{path}: cannot read the prompt template ({exc.strerror or exc})") from exc
    else:
        text = spec.replace("\\n", "\n").replace("\\t", "\t")
    template = PromptTemplate(text=text, fields=frozenset(fields))
    allowed = ", ".join(sorted(fields))
    if template.is_jinja:
        env = jinja2.Environment()
        try:
            used = meta.find_undeclared_variables(env.parse(text))
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"prompt template: {exc.message} (line {exc.lineno})") from exc
    else:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as exc:
            raise UserError(f"prompt template: {exc}; write a literal brace as {{{{ or }}}}") from exc
        if any(not name or not name.isidentifier() for name in used):
            raise UserError(f"prompt template: use named fields only ({allowed})")
    unknown = sorted(set(used) - set(fields))
    if unknown:
        raise UserError(f"prompt template: unknown field(s) {', '.join(unknown)}; available: {allowed}")
    if "input" not in used:
        raise UserError("prompt template: it must use the instance input ({input} or {{ input }})")
    return template
