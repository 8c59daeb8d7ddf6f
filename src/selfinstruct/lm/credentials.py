"""Credentials written into an endpoint URL (`http://user:secret@host/v1`).

They are split off once: the public URL (no user-info) is what gets stored, printed and logged; the
user name and password only ever travel as the request's Basic `Authorization` header, as curl and
browsers send them. Standard library only: the settings import this, and they must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit


@dataclass(frozen=True)
class UrlCredentials:
    """User name and password from a URL's user-info, percent-decoded. `repr` hides the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"UrlCredentials(username={self.username!r}, password='***')"


def split_credentials(url: str) -> tuple[str, UrlCredentials | None]:
    """(the URL without user-info, the credentials it held or None). Host, port (IPv6 brackets too),
    path and query are kept exactly as written."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None
    username, _, password = userinfo.partition(":")
    public = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return public, UrlCredentials(unquote(username), unquote(password))


def public_url(url: str) -> str:
    """The URL without any user-info: safe to store, print and log."""
    return split_credentials(url)[0]
