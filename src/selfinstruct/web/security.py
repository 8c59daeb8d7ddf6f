"""Request guards for the review page: Host allow-list (against DNS rebinding), same-origin POSTs, a
per-session CSRF token, and headers that keep any markup that slipped through from running (CSP without
inline script)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

SESSION_COOKIE = "si_session"
_SID_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'example:80' -> 'example', '[::1]:80' -> '::1'."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else ""
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def csrf_token(secret: bytes, session_id: str) -> str:
    return hmac.new(secret, session_id.encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, secret: bytes, token: object) -> bool:
    sid = getattr(request.state, "session_id", "")
    return isinstance(token, str) and bool(sid) and hmac.compare_digest(token, csrf_token(secret, sid))


def _same_origin(request: Request) -> bool:
    """A POST's Origin (or Referer) must name this very server; browsers send one of them on form posts."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True  # non-browser clients; the CSRF token still has to match
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == host


class GuardMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] | None) -> None:
        super().__init__(app)
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        host = request.headers.get("host", "")
        if self.allowed_hosts is not None and host_name(host) not in self.allowed_hosts:
            return PlainTextResponse("Invalid Host header", status_code=400)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            return PlainTextResponse("Cross-origin request refused", status_code=403)
        sid = request.cookies.get(SESSION_COOKIE, "")
        fresh = not _SID_RE.match(sid)
        if fresh:
            sid = secrets.token_urlsafe(32)
        request.state.session_id = sid
        response = await call_next(request)
        if fresh:
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
