"""`python -m selfinstruct.finetune ...`: the finetune command alone, for `accelerate launch -m` and
`torchrun -m`."""

from __future__ import annotations

import sys

import typer

from selfinstruct.cli.finetune import finetune
from selfinstruct.errors import UserError


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
    app.command()(finetune)
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
