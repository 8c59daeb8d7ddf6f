"""Credentials written into an endpoint URL (`http://user:secret@host/v1`).

They are split off once: the public URL (no user-info) is what gets stored, printed and logged; the
user name and password only ever travel as the request's Basic `Authorization` header, as curl and
browsers send them. Standard library only: the settings import this, and they must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit


@dataclass(frozen=True)
class UrlCredentials:
    """User name and password from a URL's user-info, percent-decoded. `repr` hides the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"UrlCredentials(username={self.username!r}, password='***')"


def split_credentials(url: str) -> tuple[str, UrlCredentials | None]:
    """(the URL without user-info, the credentials it held or None). Only the user-info is cut: scheme,
    host (its case, IPv6 brackets), port, path, query and fragment stay exactly as written."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None
    username, _, password = userinfo.partition(":")
    # Cut the user-info out of the text itself: rebuilding the URL would lowercase the scheme and drop an
    # empty `?` or `#`. urlsplit drops tabs and newlines, so the netloc may not be found: then rebuild.
    start = url.find("//" + parts.netloc) + 2
    if start >= 2:
        public = url[:start] + hostport + url[start + len(parts.netloc) :]
    else:
        public = urlunsplit(parts._replace(netloc=hostport))
    return public, UrlCredentials(unquote(username), unquote(password))


def public_url(url: str) -> str:
    """The URL without any user-info: safe to store, print and log."""
    return split_credentials(url)[0]


def public_urls(dumped: Any, *keys: str) -> Any:
    """A dumped settings mapping with its URL lists under `keys` made public: what the settings' serializers
    return, so a password in a --base-url reaches neither the run store nor `config --show`."""
    if isinstance(dumped, dict):
        for key in keys:
            if isinstance(dumped.get(key), list):
                dumped[key] = [public_url(url) for url in dumped[key]]
    return dumped
