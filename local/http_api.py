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
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from local.console import Console
from local.template import ACCOUNT_ID, Route, Throttle

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API's payload limit
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
)

Invoke = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


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
    raw_path, raw_query = parts.path or "/", parts.query
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    host = joined.get("host", "localhost")
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        content_type = joined.get("content-type", "").lower()
        if content_type.startswith(_TEXT_TYPES):
            try:
                event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    else:
        event["isBase64Encoded"] = False
    return event


def to_response(result: Any) -> HttpResponse:
    """The HTTP response API Gateway makes of a payload 2.0 function result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        inferred = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("Content-Type", "application/json")], inferred.encode("utf-8"))
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
    return HttpResponse(status, headers, body)


def _message(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode())


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
        self._address = (host, port)
        self._console = console
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def use_routes(self, routes: Sequence[Route]) -> None:
        """Serve these routes (the template's, once its parameters are resolved: a throttle may depend on them)."""
        self._buckets = {r.route_key: TokenBucket(r.throttle) for r in routes if r.throttle is not None}
        self.routes = sorted(routes, key=lambda r: r.specificity)

    def bind(self) -> HttpApi:
        """Take the port (so its number is known) without serving yet. ``OSError`` when it is in use."""
        if self._server is None:
            self._server = _Server(self._address, self)
        return self

    def start(self) -> HttpApi:
        self.bind()
        server = cast(_Server, self._server)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="local-http-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        if thread is not None:
            server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP API is not running")
        return int(self._server.server_address[1])

    def route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> HttpResponse:
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: HttpApi) -> None:
        self.api = api
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves a host name (getfqdn), which can be slow; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client that went away is normal; nothing to print."""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive connection outlives stop().
    server_version = "local-http-api"
    sys_version = ""
    timeout = 30.0

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the query string (OAuth codes). HttpApi logs its own line."""

    def _serve(self) -> None:
        api = cast(_Server, self.server).api
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(_message(411, "Length Required"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(_message(400, "Bad Request"))
            return
        if length > MAX_BODY_BYTES:
            self._send(_message(413, "Request Entity Too Large"))
            return
        body = self.rfile.read(length) if length else b""
        target = self.path
        if "://" in target:  # absolute-form request target
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._send(api.handle(self.command, target, list(self.headers.items()), body, self.client_address[0]))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _send(self, response: HttpResponse) -> None:
        try:
            self.send_response(response.status)
            names = {name.lower() for name, _ in response.headers}
            for name, value in response.headers:
                self.send_header(name, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:  # the client went away
            self.close_connection = True
