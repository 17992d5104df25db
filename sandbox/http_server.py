"""The one HTTP server of the sandbox: the fake Slack and the local API (``local/http_api.py``) are both served by it.

A ``ThreadingHTTPServer`` in a daemon thread, on 127.0.0.1 and a port the OS picks unless told otherwise. It reads
each request's body (a chunked body is refused with 411, a bad ``Content-Length`` with 400, one over the app's limit
with 413), hands the request to the app and writes the app's answer; an app that answers None drops the connection
unanswered. It never logs: request lines carry OAuth codes, and a traceback could carry a token.

Standard library only. werkzeug (already locked, for moto) was weighed and not taken: its server closes the
connection after every answer, where Slack keeps it alive for the client's pool, it reads what is left of every
body after answering, merges repeated ``Cookie`` headers with commas, and logs each request line (with its query)
unless silenced in two places. It would save about the forty lines of ``_Server`` and ``_send``, and a handler
subclass would still be needed, to silence it and to drop a connection unanswered.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

DRAIN_LIMIT_BYTES = 1024 * 1024  # a refused body up to this size is read, so the client sees the answer, not a reset


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query as sent (an absolute-form target reduced to them)
    headers: Message
    body: bytes
    client_ip: str

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class App(Protocol):
    max_body_bytes: int

    def answer(self, request: Request) -> Answer | None:
        """The answer to ``request``; None drops the connection without one."""

    def refuse(self, status: int) -> Answer:
        """The answer to a body that is not read: 411 (chunked), 400 (bad length), 413 (too large)."""


class HttpServer:
    """``app`` served on ``host:port`` (port 0: the OS picks one); ``keep_alive``: HTTP/1.1, else one request per
    connection (HTTP/1.0)."""

    def __init__(
        self, app: App, *, name: str, host: str = "127.0.0.1", port: int = 0, keep_alive: bool = False
    ) -> None:
        self._app, self._name, self._address, self._keep_alive = app, name, (host, port), keep_alive
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not running")
        return int(self._server.server_address[1])

    def bind(self) -> None:
        """Take the port (so its number is known) without serving yet. ``OSError`` when it is in use."""
        if self._server is None:
            self._server = _Server(self._address, self._app, name=self._name, keep_alive=self._keep_alive)

    def start(self, *, poll_interval: float = 0.05) -> None:
        self.bind()
        server = cast(_Server, self._server)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and end every open connection (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        if thread is not None:
            server.shutdown()
        server.server_close()
        server.close_open_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App, *, name: str, keep_alive: bool) -> None:
        self.app, self.name, self.keep_alive = app, name, keep_alive
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves a host name (getfqdn), which can be slow; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """Silent: a client that went away is normal here, and a traceback must never reach stderr."""

    def close_open_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    sys_version = ""
    timeout = 30.0  # idle keep-alive connections end on their own
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall

    def setup(self) -> None:
        server = cast(_Server, self.server)
        self.app, self.server_version = server.app, server.name
        self.protocol_version = "HTTP/1.1" if server.keep_alive else "HTTP/1.0"
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Never log: request lines and errors could carry codes or tokens."""

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        target = self.path
        if "://" in target:  # absolute-form request target
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.app.answer(Request(self.command, target, self.headers, body, self.client_address[0]))
        if answer is None:
            self.close_connection = True
        else:
            self._send(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes | None:
        """The request body, or None after refusing one that is not read (a small one too large is read first)."""
        refusal = self._refusal()
        if refusal is None:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        status, length = refusal
        if status == 413 and length <= DRAIN_LIMIT_BYTES:
            self.rfile.read(length)  # so the client gets the answer instead of a reset
        else:
            self.close_connection = True
        self._send(self.app.refuse(status))
        return None

    def _refusal(self) -> tuple[int, int] | None:
        """(status, length) for a body not to read: chunked 411, a bad length 400, over the limit 413."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return 411, 0
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 400, 0
        if length < 0:
            return 400, 0
        return (413, length) if length > self.app.max_body_bytes else None

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            if all(name.lower() != "content-length" for name, _ in answer.headers):
                self.send_header("Content-Length", str(len(answer.body)))
            if self.close_connection and self.protocol_version == "HTTP/1.1":
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except OSError:  # the client went away (e.g. after its read timeout)
            self.close_connection = True
