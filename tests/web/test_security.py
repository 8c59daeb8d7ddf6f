from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import typer
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from selfinstruct.cli.review import review
from selfinstruct.errors import UserError
from selfinstruct.web.app import RATER_COOKIE, ReviewConfig, create_app
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


# -- CSRF on every state-changing route --------------------------------------------------------------
BASE = "http://127.0.0.1:8765"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ITEM_KEY = re.compile(r'name="item_key" value="([^"]+)"')


def _eval_file(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "eval.json"
    item = {"task": "t1", "instruction": "Say hi.", "input": "", "prediction": "hi", "references": ["hi"]}
    items = [{**item, "id": "t1-0"}, {**item, "id": "t1-1", "prediction": "hello"}]
    path.write_text(json.dumps({"kind": "tasks", "model": {"model": "m"}, "items": items}), encoding="utf-8")
    return path


def _client(run_dir: Path, tmp_path: Path) -> TestClient:
    config = ReviewConfig(run_dir, eval_file=_eval_file(tmp_path), sample=2)
    return TestClient(create_app(config), base_url=BASE)


def _token(c: TestClient) -> str:
    found = _CSRF.search(c.get("/rater").text)
    assert found
    return found.group(1)


def _valid_form(c: TestClient, path: str) -> dict[str, str]:
    """A form the route accepts once the right token is added (logs the client in where needed)."""
    if path == "/rater":
        return {"name": "Ann", "next": "/rate"}
    c.post("/rater", data={"csrf": _token(c), "name": "Ann"}, follow_redirects=False)
    key = _ITEM_KEY.search(c.get(path).text)
    assert key
    if path == "/rate":
        return {"item_key": key.group(1), "valid_task": "yes", "input_ok": "yes", "output_ok": "no"}
    return {"item_key": key.group(1), "grade": "B"}


def _state(c: TestClient, run_dir: Path) -> tuple[int, str | None]:
    """What a forged post could change: the stored ratings, the rater cookie."""
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        try:
            ratings = int(conn.execute("SELECT COUNT(*) FROM review_ratings").fetchone()[0])
        except sqlite3.OperationalError:
            ratings = 0
    return ratings, c.cookies.get(RATER_COOKIE)


STATE_CHANGING = ["/rater", "/rate", "/rate-responses"]


def test_the_list_of_state_changing_routes_is_complete(run_dir: Path, tmp_path: Path) -> None:
    app = create_app(ReviewConfig(run_dir))
    unsafe = {
        route.path
        for route in app.routes
        if isinstance(route, Route) and (route.methods or set()) - {"GET", "HEAD", "OPTIONS"}
    }
    assert unsafe == set(STATE_CHANGING)


@pytest.mark.parametrize("path", STATE_CHANGING)
def test_every_state_changing_route_needs_the_session_csrf_token(
    run_dir: Path, tmp_path: Path, path: str
) -> None:
    c = _client(run_dir, tmp_path)
    form = _valid_form(c, path)
    token = _token(c)
    other = _token(_client(run_dir, tmp_path / "other"))  # a valid token, of another session
    before = _state(c, run_dir)
    forged = [
        ({}, {}),
        ({"csrf": ""}, {}),
        ({"csrf": "0" * len(token)}, {}),
        ({"csrf": other}, {}),
        ({"csrf": token}, {"origin": "http://evil.example"}),
    ]
    for extra, headers in forged:
        response = c.post(path, data={**form, **extra}, headers=headers, follow_redirects=False)
        assert response.status_code == 403, (path, extra, headers)
        assert RATER_COOKIE not in response.headers.get("set-cookie", "")
        assert _state(c, run_dir) == before
    # The same form with the right token goes through: the refusals above were the token's doing.
    accepted = c.post(path, data={**form, "csrf": token}, follow_redirects=False)
    assert accepted.status_code == 303
    assert _state(c, run_dir) != before
    if path == "/rater":
        assert RATER_COOKIE in accepted.headers.get("set-cookie", "")
