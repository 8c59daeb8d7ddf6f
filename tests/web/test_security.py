from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selfinstruct.cli.review import review
from selfinstruct.errors import UserError
from selfinstruct.web.security import host_name, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_name() -> None:
    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("[::1]:8765") == "::1"
    assert host_name("localhost") == "localhost"
    assert host_name("[broken") == ""


def test_remote_bind_needs_the_flag(run_dir: Path) -> None:
    app = typer.Typer()
    app.command()(review)
    result = CliRunner().invoke(app, [str(run_dir), "--host", "0.0.0.0", "--port", "0"])
    assert isinstance(result.exception, UserError) and "--allow-remote" in str(result.exception)
