"""The review page: browse a run's instructions and instances, rate data quality (Table 2) and model responses
(A–D), see the summary and export ratings. Server-rendered (Starlette + Jinja2), a little JavaScript for keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from selfinstruct.quality.questions import PAPER_TABLE2, QUESTIONS
from selfinstruct.quality.report import COLUMNS, HEADERS, agreement_cell, cell, quality_summary
from selfinstruct.store import DB_NAME, RunReader, RunStore
from selfinstruct.web import db, summary
from selfinstruct.web.evalitems import ResponseItem, load_eval_items, sample_responses
from selfinstruct.web.security import LOOPBACK_NAMES, GuardMiddleware, check_csrf, csrf_token

RATER_COOKIE = "si_rater"
MAX_RATER_LEN = 60
_MAX_ROWID = 2**63 - 1  # SQLite's largest INTEGER


@dataclass(frozen=True)
class ReviewConfig:
    run_dir: Path
    sample: int = 200
    seed: int = 0
    eval_file: Path | None = None
    # Host names the page answers to; None accepts any (only with --allow-remote).
    allowed_hosts: Collection[str] | None = LOOPBACK_NAMES
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


class ReviewApp:
    """Holds the configuration and the (read-once) evaluation items; one instance per server."""

    def __init__(self, config: ReviewConfig) -> None:
        self.config = config
        RunStore.open(config.run_dir).close()  # a missing run is a UserError; also creates the base schema
        self.db_path = config.run_dir / DB_NAME
        db.init_review_tables(self.db_path)
        self.responses: list[ResponseItem] = []
        if config.eval_file is not None:
            self.responses = sample_responses(load_eval_items(config.eval_file), config.sample, config.seed)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("selfinstruct.web", "templates"),
            autoescape=True,  # everything generated is untrusted text
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1f}%"
        self.env.filters["num"] = lambda v: "–" if v is None else f"{v:.2f}"
        self.env.globals.update(share_cell=cell, agreement_cell=agreement_cell)

    # -- helpers ---------------------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
        html = self.env.get_template(name).render(
            csrf=csrf_token(self.config.secret, request.state.session_id),
            rater=rater_of(request),
            has_responses=bool(self.responses),
            run_dir=str(self.config.run_dir),
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    async def form(self, request: Request) -> dict[str, str] | None:
        """The posted form, or None when its CSRF token is wrong."""
        form = await request.form()
        if not check_csrf(request, self.config.secret, form.get("csrf")):
            return None
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def forbidden(self, request: Request) -> HTMLResponse:
        return self.render(
            request,
            "message.html",
            status=403,
            title="Form expired",
            message="This form's security token does not match your session (the server may have restarted). "
            "Go back, reload the page and try again.",
        )

    # -- pages -----------------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return RedirectResponse("/browse", status_code=302)

    async def browse(self, request: Request) -> Response:
        p = request.query_params
        try:
            page = int(p.get("page", "1"))
        except ValueError:
            page = 1
        query = db.BrowseQuery(
            q=p.get("q", "").strip()[:200],
            status=p.get("status", "all") if p.get("status") in ("all", "kept", "dropped") else "all",
            verdict=p.get("verdict", "")[:60],
            clf=p.get("clf", "") if p.get("clf") in ("yes", "no", "unknown") else "",
            instance_verdict=p.get("inst", "")[:60],
            page=page,
        )
        with db.connect(self.db_path) as conn:
            result = db.browse(conn, query)
            verdicts = db.verdicts(conn)
            instance_verdicts = db.verdicts(conn, "instances")
        params = {
            k: v
            for k, v in (
                ("q", query.q),
                ("status", query.status),
                ("verdict", query.verdict),
                ("clf", query.clf),
                ("inst", query.instance_verdict),
            )
            if v and not (k == "status" and v == "all")
        }

        def page_url(n: int) -> str:
            return "/browse?" + urlencode({**params, "page": n})

        return self.render(
            request,
            "browse.html",
            query=query,
            result=result,
            verdicts=verdicts,
            instance_verdicts=instance_verdicts,
            page_url=page_url,
        )

    async def item(self, request: Request) -> Response:
        cid = int(request.path_params["cid"])
        found = None
        if cid <= _MAX_ROWID:  # a larger number is no row; SQLite could not even bind it (OverflowError)
            with db.connect(self.db_path) as conn:
                found = db.detail(conn, cid)
        if found is None:
            return self.render(
                request,
                "message.html",
                status=404,
                title="Not found",
                message=f"No candidate instruction {cid}.",
            )
        return self.render(request, "item.html", d=found)

    async def rater_page(self, request: Request) -> Response:
        return self.render(request, "rater.html", next=_safe_next(request.query_params.get("next", "/rate")))

    async def rater_post(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.forbidden(request)
        name = " ".join(form.get("name", "").split())[:MAX_RATER_LEN]
        if not name:
            return self.render(
                request,
                "rater.html",
                status=400,
                next=_safe_next(form.get("next", "/rate")),
                error="Enter a name.",
            )
        response = RedirectResponse(_safe_next(form.get("next", "/rate")), status_code=303)
        response.set_cookie(RATER_COOKIE, quote(name), samesite="strict", path="/", max_age=90 * 86400)
        return response

    async def rate(self, request: Request) -> Response:
        rater = rater_of(request)
        if not rater:
            return RedirectResponse("/rater?next=/rate", status_code=302)
        with db.connect(self.db_path) as conn:
            items = db.sample_items(conn, self.config.sample, self.config.seed)
            mine = db.ratings_by_key(conn, "data", rater)
        return self.render(
            request,
            "rate.html",
            **_rating_state(request, items, mine),
            questions=QUESTIONS,
        )

    async def rate_post(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.forbidden(request)
        rater = rater_of(request)
        if not rater:
            return RedirectResponse("/rater?next=/rate", status_code=303)
        with db.connect(self.db_path) as conn:
            items = {it.key: it for it in db.sample_items(conn, self.config.sample, self.config.seed)}
            item = items.get(form.get("item_key", ""))
            answers = {k: {"yes": 1, "no": 0}.get(form.get(k, "")) for k, _ in QUESTIONS}
            if item is None or None in answers.values():
                return self.render(
                    request,
                    "message.html",
                    status=400,
                    title="Incomplete rating",
                    message="Answer all three questions for an item of the sample.",
                )
            db.save_rating(
                conn,
                kind="data",
                item_key=item.key,
                rater=rater,
                answers={k: v for k, v in answers.items() if v is not None},
                context={
                    "instruction": item.instruction,
                    "input": item.input,
                    "output": item.output,
                    "instruction_id": item.instruction_id,
                    "instance_id": item.instance_id,
                },
            )
        return RedirectResponse("/rate", status_code=303)

    async def rate_responses(self, request: Request) -> Response:
        rater = rater_of(request)
        if not rater:
            return RedirectResponse("/rater?next=/rate-responses", status_code=302)
        with db.connect(self.db_path) as conn:
            mine = db.ratings_by_key(conn, "response", rater)
        items = self.responses
        return self.render(
            request,
            "rate_responses.html",
            **_rating_state(request, items, mine),
            grades=db.GRADES,
            eval_file=str(self.config.eval_file or ""),
        )

    async def rate_responses_post(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.forbidden(request)
        rater = rater_of(request)
        if not rater:
            return RedirectResponse("/rater?next=/rate-responses", status_code=303)
        item = next((it for it in self.responses if it.key == form.get("item_key")), None)
        grade = form.get("grade", "")
        if item is None or grade not in {g for g, _ in db.GRADES}:
            return self.render(
                request,
                "message.html",
                status=400,
                title="Incomplete rating",
                message="Pick a grade A–D for an item of the evaluation sample.",
            )
        with db.connect(self.db_path) as conn:
            db.save_rating(
                conn,
                kind="response",
                item_key=item.key,
                rater=rater,
                grade=grade,
                context={
                    "instruction": item.instruction,
                    "input": item.input,
                    "prediction": item.prediction,
                    "model": item.model,
                    "task": item.task,
                    "id": item.id,
                },
            )
        return RedirectResponse("/rate-responses", status_code=303)

    async def summary_page(self, request: Request) -> Response:
        with db.connect(self.db_path) as conn:
            data_rows = db.all_ratings(conn, "data")
            resp_rows = db.all_ratings(conn, "response")
            judged = quality_summary(RunReader(conn))
        return self.render(
            request,
            "summary.html",
            judged=judged,
            columns=[(key, HEADERS[key]) for key in COLUMNS],
            paper=PAPER_TABLE2,
            data=summary.data_summary(data_rows),
            data_agreement=summary.agreements(data_rows, [k for k, _ in QUESTIONS]),
            grades=summary.grade_summary(resp_rows),
            grade_agreement=summary.agreements(resp_rows, ["grade"]),
            questions=QUESTIONS,
            grade_names=db.GRADES,
            sample=self.config.sample,
        )

    async def export(self, request: Request) -> Response:
        fmt = request.path_params["fmt"]
        kind = request.query_params.get("kind")
        with db.connect(self.db_path) as conn:
            records = summary.export_records(
                db.all_ratings(conn, kind if kind in ("data", "response") else None)
            )
        if fmt == "csv":
            body, media = summary.to_csv(records), "text/csv; charset=utf-8"
        elif fmt == "jsonl":
            body, media = summary.to_jsonl(records), "application/x-ndjson; charset=utf-8"
        else:
            return PlainTextResponse("unknown format", status_code=404)
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="ratings.{fmt}"'}
        )


def rater_of(request: Request) -> str:
    return " ".join(unquote(request.cookies.get(RATER_COOKIE, "")).split())[:MAX_RATER_LEN]


def _safe_next(target: str) -> str:
    """Only local paths: never redirect to another site."""
    return (
        target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/rate"
    )


def _rating_state(request: Request, items: list[Any], mine: dict[str, Any]) -> dict[str, Any]:
    """What both rating pages show: the item at `?pos=` (else the first this rater has not rated),
    how many are done, and the rater's earlier answer for it."""
    first_open = next((i for i, it in enumerate(items) if it.key not in mine), None)
    pos = _position(request, len(items), first_open)
    item = items[pos] if pos is not None else None
    return {
        "items": items,
        "item": item,
        "pos": pos,
        "done": sum(1 for it in items if it.key in mine),
        "existing": mine.get(item.key) if item else None,
    }


def _position(request: Request, count: int, default: int | None) -> int | None:
    raw = request.query_params.get("pos")
    if raw is not None and raw.isdigit() and int(raw) < count:
        return int(raw)
    return default


def create_app(config: ReviewConfig) -> Starlette:
    review = ReviewApp(config)
    static = Path(__file__).parent / "static"
    routes = [
        Route("/", review.index),
        Route("/browse", review.browse),
        Route("/item/{cid:int}", review.item),
        Route("/rater", review.rater_page, methods=["GET"]),
        Route("/rater", review.rater_post, methods=["POST"]),
        Route("/rate", review.rate, methods=["GET"]),
        Route("/rate", review.rate_post, methods=["POST"]),
        Route("/rate-responses", review.rate_responses, methods=["GET"]),
        Route("/rate-responses", review.rate_responses_post, methods=["POST"]),
        Route("/summary", review.summary_page),
        Route("/export/ratings.{fmt}", review.export),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(GuardMiddleware, allowed_hosts=config.allowed_hosts)
    app.state.review = review
    return app
