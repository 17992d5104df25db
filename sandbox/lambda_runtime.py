"""Run handlers the way Lambda does: each ``functions/<name>/app.py`` under its own module name, a Lambda-like
context, and API Gateway HTTP API (payload 2.0) events built from the samples in ``events/``."""

from __future__ import annotations

import copy
import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def load_handler(function_dir: str) -> ModuleType:
    """Import ``functions/<function_dir>/app.py`` as module ``<function_dir>_app`` (every function has an app.py)."""
    return load_module(ROOT / "functions" / function_dir / "app.py", f"{function_dir}_app")


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as module ``name``, without registering it in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    timeout_seconds: float = 29.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # a new one per invocation, as Lambda
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/29/[$LATEST]0"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def http_event(
    path: str,
    query: dict[str, str] | str | None = None,
    *,
    cookies: list[str] | None = None,
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
) -> dict[str, Any]:
    """An HTTP API v2 GET event for ``path`` shaped like the samples in ``events/``."""
    template = "install.json" if path.endswith("/install") else "oauth_callback.json"
    event = copy.deepcopy(load_event(template))
    raw = query if isinstance(query, str) else urlencode(query or {})
    event["rawPath"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {path}"
    event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = raw
    event["headers"]["host"] = event["requestContext"]["domainName"] = host
    event.pop("queryStringParameters", None)
    if isinstance(query, dict) and query:
        event["queryStringParameters"] = dict(query)
    event.pop("cookies", None)
    if cookies:
        event["cookies"] = list(cookies)
    return event


def invoke(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], **context: Any) -> Any:
    return handler(event, LambdaContext(**context))
