"""`selfinstruct review`: a local web page to browse a run and rate its data and model responses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfinstruct.errors import UserError


def review(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory (holds run.sqlite).", show_default=False)
    ],
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")] = 8765,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind. Anything but localhost needs [bold]--allow-remote[/]."),
    ] = "127.0.0.1",
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow binding to a non-loopback address: anyone who reaches it can read the run and rate.",
        ),
    ] = False,
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help="Evaluation results JSON (selfinstruct eval ... --out) to rate A–D."),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=1, help="How many kept instructions (and responses) to rate.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the rating sample.")] = 0,
) -> None:
    """Serve the review page: browse instructions and instances, rate data quality (Table 2) and model
    responses (A–D), see the summary with inter-rater agreement, export ratings as CSV/JSONL."""
    import uvicorn

    from selfinstruct.web.app import ReviewConfig, create_app
    from selfinstruct.web.security import LOOPBACK_NAMES, is_loopback

    console = Console(stderr=True)
    local = is_loopback(host)
    if not local and not allow_remote:
        raise UserError(
            f"--host {host} is not a loopback address; add --allow-remote to serve it on the network"
        )
    if not local:
        console.print(
            f"[bold yellow]warning:[/] serving on {host}: anyone who can reach this address can read the run "
            "and add ratings (no login; traffic is not encrypted)."
        )
    app = create_app(
        ReviewConfig(
            run_dir=run_dir,
            sample=sample,
            seed=seed,
            eval_file=eval_file,
            allowed_hosts=LOOPBACK_NAMES if local else None,
        )
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Review page: http://{shown}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
