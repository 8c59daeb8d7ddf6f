"""What every command prints on: one stderr console, and one-line messages that scripts can read whole."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)


def say(message: str, style: str | None = None) -> None:
    """One line on stderr, never wrapped (scripts and tests read it whole), paths printed verbatim."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)
