"""Lambda's Invoke API on 127.0.0.1, over the in-process functions: what ``sam local start-lambda`` offers, so
``aws lambda invoke --endpoint-url`` and ``slack-tokens rotate`` / ``exchange`` reach the local stack's functions
exactly as they reach deployed ones (boto3's ``lambda.invoke``, ``AWS_ENDPOINT_URL_LAMBDA``).

``POST /2015-03-31/functions/<name or ARN>/invocations`` with the event as the body: ``RequestResponse`` (default)
answers 200 with the result JSON, or with ``X-Amz-Function-Error: Unhandled`` and ``{"errorType", "errorMessage"}``
when the function raised; ``DryRun`` answers 204; ``Event`` is refused (nothing here queues an invocation). An
unknown function is a 404 ``ResourceNotFoundException``, as Lambda answers. Invocations run one at a time (the
host's lock): the local stand-in for reserved concurrency 1, which waits where Lambda would throttle. Served by
``sandbox.http_server``, like the HTTP API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from local.lambda_host import FunctionError
from sandbox.http_server import Answer, HttpServer, Request

_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
Invoke = Callable[[str, Any], Any]


class LambdaApi:
    max_body_bytes = 6 * 1024 * 1024  # Lambda's limit for a synchronous invocation's payload

    def __init__(self, functions: Collection[str], invoke: Invoke, *, port: int = 0) -> None:
        self._functions = set(functions)
        self._invoke = invoke
        self._server = HttpServer(self, name="lambda-api", port=port)
        self._server.bind()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> LambdaApi:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def function_of(self, raw: str) -> str | None:
        """The logical id a FunctionName means: the id itself, or an ARN (``…:function:<id>[:qualifier]``)."""
        name = raw.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in raw else raw
        return name if name in self._functions else None

    def answer(self, request: Request) -> Answer:
        """Lambda's answer to one HTTP request (``sandbox.http_server`` calls it)."""
        if request.method != "POST":
            status, payload, headers = _error(404, "UnknownOperationException", "Unknown operation")
        else:
            status, payload, headers = self.invocation(
                request.path, request.headers.get("X-Amz-Invocation-Type"), request.body
            )
        return _answer(status, payload, headers)

    def refuse(self, status: int) -> Answer:
        if status == 413:
            return _answer(*_error(413, "RequestEntityTooLargeException", "Request must be smaller than 6 MB"))
        return _answer(*_error(status, "InvalidRequestContentException", "Could not read the request body"))

    def invocation(self, path: str, kind: str | None, body: bytes) -> tuple[int, bytes, dict[str, str]]:
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


def _answer(status: int, body: bytes, headers: dict[str, str]) -> Answer:
    fixed = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
    return Answer(status, [*fixed, *headers.items()], body)


def _error(status: int, kind: str, message: str) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps({"Type": "User", "message": message}).encode(), {"x-amzn-ErrorType": kind}
