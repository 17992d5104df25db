"""Lambda's Invoke API on 127.0.0.1, over the in-process functions: what ``sam local start-lambda`` offers, so
``aws lambda invoke --endpoint-url`` and ``slack-tokens rotate`` / ``exchange`` reach the local stack's functions
exactly as they reach deployed ones (boto3's ``lambda.invoke``, ``AWS_ENDPOINT_URL_LAMBDA``).

``POST /2015-03-31/functions/<name or ARN>/invocations`` with the event as the body: ``RequestResponse`` (default)
answers 200 with the result JSON, or with ``X-Amz-Function-Error: Unhandled`` and ``{"errorType", "errorMessage"}``
when the function raised; ``DryRun`` answers 204; ``Event`` is refused (nothing here queues an invocation). An
unknown function is a 404 ``ResourceNotFoundException``, as Lambda answers. Invocations run one at a time (the
host's lock): the local stand-in for reserved concurrency 1, which waits where Lambda would throttle.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.lambda_host import FunctionError

_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
Invoke = Callable[[str, Any], Any]


class LambdaApi:
    def __init__(self, functions: Collection[str], invoke: Invoke, *, port: int = 0) -> None:
        self._functions = set(functions)
        self._invoke = invoke
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LambdaApi:
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def function_of(self, raw: str) -> str | None:
        """The logical id a FunctionName means: the id itself, or an ARN (``…:function:<id>[:qualifier]``)."""
        name = raw.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in raw else raw
        return name if name in self._functions else None

    def answer(self, path: str, kind: str | None, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers of Lambda's answer to one Invoke request."""
        match = _PATH.match(path.split("?", 1)[0])
        function = self.function_of(match.group(1)) if match else None
        if match is None or function is None:
            what = f"Function not found: {match.group(1)}" if match else "Unknown operation"
            return _error(404, "ResourceNotFoundException" if match else "UnknownOperationException", what)
        if kind == "DryRun":
            return 204, b"", {}
        if kind not in (None, "RequestResponse"):
            return _error(400, "InvalidParameterValueException", "only RequestResponse invocations run locally")
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        try:
            result = self._invoke(function, event)
        except FunctionError as exc:
            cause = exc.__cause__
            error = {"errorType": type(cause).__name__ if cause else "Error", "errorMessage": str(exc)}
            return 200, json.dumps(error).encode(), {"X-Amz-Function-Error": "Unhandled"}
        return 200, json.dumps(result).encode(), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, headers = api.answer(self.path, self.headers.get("X-Amz-Invocation-Type"), body)
                self._send(status, payload, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the function's own log lines say what it did

        return Handler


def _error(status: int, kind: str, message: str) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps({"Type": "User", "message": message}).encode(), {"x-amzn-ErrorType": kind}
