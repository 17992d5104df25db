"""API Gateway HTTP API (payload format 2.0) requests and responses, as plain values.

Query strings are parsed from ``rawQueryString`` strictly: a parameter given twice is ambiguous (HTTP API would
join the values with a comma in ``queryStringParameters``), so it is refused rather than guessed. Cookies come from
the ``cookies`` list (payload 2.0) and, failing that, a ``Cookie`` header; every value of a name is kept, in order
(``cookie_values``), because a browser sends two cookies of one name when another site planted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_MAX_QUERY = 8192
_MAX_COOKIES = 50

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",  # the callback URL carries a code: never leak it to the next site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000",
}


class BadRequestError(ValueError):
    """The request itself is malformed (not a problem with OAuth state or Slack)."""


@dataclass(slots=True, eq=False)
class Request:
    method: str
    path: str
    query: dict[str, str]
    cookies: dict[str, str] = field(repr=False)  # the first value of each name
    host: str | None
    cookie_pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def cookie_values(self, name: str) -> list[str]:
        """Every value the browser sent for cookie ``name``, in the order it sent them."""
        return [value for key, value in self.cookie_pairs if key == name]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        if not isinstance(event, Mapping):
            raise BadRequestError("the event is not an API Gateway HTTP API event")
        context = _mapping(event.get("requestContext"))
        http = _mapping(context.get("http"))
        headers = {str(k).lower(): str(v) for k, v in _mapping(event.get("headers")).items()}
        pairs = parse_cookie_pairs(event.get("cookies"), headers.get("cookie"))
        return cls(
            method=str(http.get("method", "GET")).upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            query=parse_query(event.get("rawQueryString")),
            cookies=_first_values(pairs),
            host=_host(context.get("domainName") or headers.get("host")),
            cookie_pairs=pairs,
        )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _host(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > 253:
        return None
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-:")
    return value.lower() if set(value.lower()) <= allowed else None


def parse_query(raw: object) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise BadRequestError("the query string is not text")
    if len(raw) > _MAX_QUERY:
        raise BadRequestError("the query string is too long")
    try:
        pairs = parse_qsl(
            raw, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict", max_num_fields=50
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("the query string is not valid UTF-8 form data") from exc
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            raise BadRequestError(f"the query parameter {key!r} appears more than once")
        query[key] = value
    return query


def parse_cookie_pairs(cookie_list: object, header: str | None) -> tuple[tuple[str, str], ...]:
    items: list[str] = []
    if isinstance(cookie_list, list):
        items = [str(c) for c in cookie_list]
    elif header:
        items = header.split(";")
    pairs: list[tuple[str, str]] = []
    for item in items[:_MAX_COOKIES]:
        name, sep, value = item.strip().partition("=")
        if sep and name:
            pairs.append((name, value.strip()))
    return tuple(pairs)


def parse_cookies(cookie_list: object, header: str | None) -> dict[str, str]:
    return _first_values(parse_cookie_pairs(cookie_list, header))


def _first_values(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for name, value in pairs:
        cookies.setdefault(name, value)
    return cookies


@dataclass(slots=True, eq=False)
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list, repr=False)

    def to_api(self) -> dict[str, Any]:
        """The HTTP API v2 response object."""
        return {
            "statusCode": self.status,
            "headers": {**SECURITY_HEADERS, **self.headers},
            "cookies": list(self.cookies),
            "body": self.body,
            "isBase64Encoded": False,
        }


def html(status: int, body: str, *, cookies: list[str] | None = None) -> Response:
    return Response(status, body, {"Content-Type": "text/html; charset=utf-8"}, cookies or [])


def redirect(location: str, *, cookies: list[str] | None = None) -> Response:
    return Response(302, "", {"Location": location}, cookies or [])


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query (before any ``#fragment``, where a query belongs)."""
    parts = urlsplit(url)
    added = urlencode(params)
    query = f"{parts.query}&{added}" if parts.query and added else parts.query or added
    return urlunsplit(parts._replace(query=query))


def set_cookie(name: str, value: str, *, max_age: int) -> str:
    return f"{name}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"


def clear_cookie(name: str) -> str:
    return f"{name}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
