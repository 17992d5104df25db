"""Readable log lines for the local stack: ``12:00:01 component     text``.

Every component (the HTTP API, the scheduler, the store watcher, each function) gets a fixed-width, coloured
prefix; colour only when the stream is a terminal and ``NO_COLOR`` is unset. A function's own output (Powertools'
JSON log lines and EMF metric blobs) goes through ``FunctionOutput``, which turns each JSON line into one readable
line. The layer never logs a token, and nothing here adds one: request lines carry the path, never the query.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

WIDTH = 22  # the longest logical id in the template, OAuthCallbackFunction, plus one

_RESET = "\033[0m"
_DIM = "\033[2m"
_BOLD = "\033[1m"
_PALETTE = ("\033[36m", "\033[35m", "\033[34m", "\033[32m", "\033[33m", "\033[96m", "\033[95m", "\033[94m")
_LEVELS = {"WARNING": "\033[33m", "WARN": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[31m"}

# Keys every Powertools log line carries; the rest are the call's own ``extra`` and are shown.
_STANDARD_KEYS = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
    "exception",
    "exception_name",
    "stack_trace",
}


class Console:
    """Writes one line at a time (threads share it) to ``stream``, stdout by default."""

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None, metrics: bool = False) -> None:
        """``metrics``: also show the functions' EMF metric lines (what CloudWatch would receive)."""
        self.stream = stream if stream is not None else sys.stdout
        self.metrics = metrics
        if color is None:
            color = _isatty(self.stream) and not os.environ.get("NO_COLOR")
        self.color = color
        self._lock = threading.Lock()

    def line(self, component: str, text: str, *, level: str = "INFO") -> None:
        stamp = time.strftime("%H:%M:%S")
        label = component[:WIDTH].ljust(WIDTH)
        body = text
        if self.color:
            stamp = f"{_DIM}{stamp}{_RESET}"
            label = f"{_PALETTE[sum(component.encode()) % len(_PALETTE)]}{label}{_RESET}"
            if level in _LEVELS:
                body = f"{_LEVELS[level]}{body}{_RESET}"
        first, *rest = body.split("\n")
        with self._lock:
            self.stream.write(f"{stamp} {label} {first}\n")
            for more in rest:  # a traceback: keep it under the same prefix
                self.stream.write(f"{' ' * 8} {' ' * WIDTH} {more}\n")
            self.stream.flush()

    def text(self, text: str) -> None:
        """Unprefixed text (the start banner)."""
        with self._lock:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.color else text


class FunctionOutput:
    """A text stream standing in for a function's stdout: each complete line is rendered on the console under
    the name of the function that is running (``current()``)."""

    def __init__(self, console: Console, current: Callable[[], str | None]) -> None:
        self._console = console
        self._current = current
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                level, rendered = render_function_line(line)
                if level != "METRICS" or self._console.metrics:
                    self._console.line(self._current() or "function", rendered, level=level)
        return len(text)

    def flush(self) -> None:
        """Lines are written as they complete; a partial line waits for its newline."""

    def isatty(self) -> bool:
        return False


def render_function_line(line: str) -> tuple[str, str]:
    """(level, readable text) for one line a function printed: a Powertools log line, plain text, or an EMF blob
    (level ``METRICS``)."""
    try:
        document = json.loads(line)
    except ValueError:
        return "INFO", line
    if not isinstance(document, dict):
        return "INFO", line
    if "_aws" in document:
        return "METRICS", _metrics_text(document)
    level = str(document.get("level", "INFO")).upper()
    text = str(document.get("message", ""))
    if level != "INFO":
        text = f"{level} {text}"
    extras = {k: v for k, v in document.items() if k not in _STANDARD_KEYS}
    if extras:
        text += "  " + " ".join(f"{key}={_compact(value)}" for key, value in extras.items())
    if document.get("exception"):
        text += "\n" + str(document["exception"])
    return level, text


def _metrics_text(document: dict[str, Any]) -> str:
    parts: list[str] = []
    for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
        dimensions = [d for group in directive.get("Dimensions", []) for d in group if d != "service"]
        suffix = "".join(f" {d}={document.get(d)}" for d in dimensions)
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            value = document.get(name)
            shown = value[0] if isinstance(value, list) and len(value) == 1 else value
            if isinstance(shown, float) and shown.is_integer():
                shown = int(shown)
            parts.append(f"{name}={_compact(shown)}{suffix}")
    return "metrics " + ", ".join(parts)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
