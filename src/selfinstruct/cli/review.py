"""`selfinstruct review`: a local web page to browse a run and rate its data and model responses."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfinstruct.errors import ResourceBusyError, UserError


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
    # Bound before the URL is printed: a busy port is said at once, not after a URL that does not work.
    sock = listen_socket(host, port)
    port = int(sock.getsockname()[1])  # the real one when --port 0 let the system choose
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Review page: http://{shown}:{port}/  (Ctrl+C to stop)", markup=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn would bind it; a busy port or an address this machine
    does not have is one line naming the option."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restarts need no wait
        sock.bind((host, port))
        # Listening now, not when uvicorn starts serving: a client that follows the printed URL at once
        # is queued in the backlog instead of refused (CI saw ECONNREFUSED in that gap).
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ResourceBusyError(
                f"--port {port}: the port is already in use on {host} (another program, or another "
                "review page, listens there); choose another --port"
            ) from None
        raise UserError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    return sock
