"""API Gateway HTTP API on 127.0.0.1: each request becomes the payload format 2.0 event of its route's function,
and the function's result becomes the HTTP response, as API Gateway does it.

Request -> event (``to_event``): ``version`` 2.0, ``routeKey``, ``rawPath``, ``rawQueryString``, ``cookies`` (every
``Cookie`` header split into a list; the header itself is not repeated in ``headers``), ``headers`` with lower-case
names and repeated headers joined with commas, ``queryStringParameters`` with repeated keys joined with commas,
``pathParameters`` for ``{name}``/``{name+}`` routes, ``requestContext`` (``http.method/path/protocol/sourceIp/
userAgent``, ``domainName``, ``stage`` ``$default``, ``requestId``, ``time``, ``timeEpoch``), ``body`` (base64 with
``isBase64Encoded`` for non-text content).

Result -> response (``to_response``): ``statusCode``, ``headers``, each of ``cookies`` as a ``Set-Cookie`` header,
a base64 ``body`` decoded. A result without ``statusCode`` is sent as a 200 JSON body (API Gateway's inference for
2.0). No route: 404 ``{"message":"Not Found"}``; the function raised: 500 ``{"message":"Internal Server Error"}``.

Route throttling (a route's ``RouteSettings``): a token bucket per route holding ``ThrottlingBurstLimit`` requests,
refilled at ``ThrottlingRateLimit`` a second, shared by every client; a request finding it empty is answered 429
``{"message":"Too Many Requests"}`` and its function is not invoked, as API Gateway does.

The request log shows method, path, status, function and time: never the query string, which carries OAuth codes.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.console import Console
from local.template import ACCOUNT_ID, Route, Throttle
from sandbox.http_server import Answer, HttpServer, Request

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API's payload limit
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
)

Invoke = Callable[[str, dict[str, Any]], Any]


def to_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    route: Route,
    path_parameters: dict[str, str],
    source_ip: str,
    request_id: str,
    now: float,
) -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for this request (``target``: path and query as sent)."""
    parts = urlsplit(target)
    raw_path = parts.path or "/"
    joined, cookies = _joined_headers(headers, source_ip=source_ip, now=now)
    event: dict[str, Any] = {"version": "2.0", "routeKey": route.route_key, "rawPath": raw_path}
    event["rawQueryString"] = parts.query
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    query = _joined(parse_qsl(parts.query, keep_blank_values=True))
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = _request_context(
        method, raw_path, joined, route=route, source_ip=source_ip, request_id=request_id, now=now
    )
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event | _body_fields(body, joined.get("content-type", ""))


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names joined with commas, as API Gateway joins repeated headers and query keys."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _joined_headers(
    headers: Iterable[tuple[str, str]], *, source_ip: str, now: float
) -> tuple[dict[str, str], list[str]]:
    """(lower-case headers with the ones API Gateway adds, every cookie of every ``Cookie`` header)."""
    cookies: list[str] = []
    others: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            others.append((name.lower(), value))
    joined = _joined(others)
    host = joined.get("host", "localhost")
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    return joined, cookies


def _request_context(
    method: str, raw_path: str, headers: dict[str, str], *, route: Route, source_ip: str, request_id: str, now: float
) -> dict[str, Any]:
    host = headers.get("host", "localhost")
    return {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }


def _body_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """``body`` as text when its content type is text and it decodes as UTF-8, else base64."""
    if not body:
        return {"isBase64Encoded": False}
    if content_type.lower().startswith(_TEXT_TYPES):
        try:
            return {"body": body.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def to_response(result: Any) -> Answer:
    """The HTTP response API Gateway makes of a payload 2.0 function result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        inferred = result if isinstance(result, str) else json.dumps(result)
        return Answer(200, [("Content-Type", "application/json")], inferred.encode("utf-8"))
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    except (TypeError, ValueError, AttributeError):
        return _message(500, "Internal Server Error")
    return Answer(status, headers, body)


def _message(status: int, message: str) -> Answer:
    return Answer(status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode())


class TokenBucket:
    """API Gateway's throttle: ``burst`` requests at once, refilled at ``rate`` a second."""

    def __init__(self, throttle: Throttle, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._capacity = throttle.rate, float(throttle.burst)
        self._monotonic = monotonic
        self._tokens = self._capacity
        self._at = monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class HttpApi:
    """The routes of the template, served on ``host:port`` (0: the OS picks a free port)."""

    def __init__(
        self,
        routes: Sequence[Route],
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        console: Console | None = None,
    ) -> None:
        self.routes: list[Route] = []
        self._buckets: dict[str, TokenBucket] = {}
        self.use_routes(routes)
        self._invoke = invoke
        self._console = console
        self.max_body_bytes = MAX_BODY_BYTES
        # HTTP/1.0: one request per connection, so no idle keep-alive connection outlives stop().
        self._server = HttpServer(self, name="local-http-api", host=host, port=port)

    def use_routes(self, routes: Sequence[Route]) -> None:
        """Serve these routes (the template's, once its parameters are resolved: a throttle may depend on them)."""
        self._buckets = {r.route_key: TokenBucket(r.throttle) for r in routes if r.throttle is not None}
        self.routes = sorted(routes, key=lambda r: r.specificity)

    def bind(self) -> HttpApi:
        """Take the port (so its number is known) without serving yet. ``OSError`` when it is in use."""
        self._server.bind()
        return self

    def start(self) -> HttpApi:
        self._server.start(poll_interval=0.1)
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def port(self) -> int:
        return self._server.port

    def route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None

    def answer(self, request: Request) -> Answer:
        """The answer to one HTTP request (``sandbox.http_server`` calls it)."""
        headers = list(request.headers.items())
        return self.handle(request.method, request.target, headers, request.body, request.client_ip)

    def refuse(self, status: int) -> Answer:
        messages = {411: "Length Required", 400: "Bad Request", 413: "Request Entity Too Large"}
        return _message(status, messages[status])

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str) -> Answer:
        started = time.monotonic()
        request_id = secrets.token_urlsafe(11)
        path = urlsplit(target).path or "/"
        found = self.route_for(method, path)
        function = "-"
        bucket = self._buckets.get(found[0].route_key) if found is not None else None
        if found is None:
            response = _message(404, "Not Found")
        elif bucket is not None and not bucket.take():
            response = _message(429, "Too Many Requests")
        else:
            route, parameters = found
            function = route.function
            event = to_event(
                method=method,
                target=target,
                headers=headers,
                body=body,
                route=route,
                path_parameters=parameters,
                source_ip=source_ip,
                request_id=request_id,
                now=time.time(),
            )
            try:
                response = to_response(self._invoke(route.function, event))
            except Exception:  # the host has logged it; API Gateway answers a bare 500
                response = _message(500, "Internal Server Error")
        response.headers.append(("apigw-requestid", request_id))
        if self._console is not None:
            elapsed = (time.monotonic() - started) * 1000
            level = "ERROR" if response.status >= 500 else "INFO"
            self._console.line(
                "http-api", f"{method} {path} -> {response.status} {function} ({elapsed:.0f} ms)", level=level
            )
        return response
