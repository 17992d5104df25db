"""Run the template's functions in this process, as Lambda would run each of them.

For every function: its layers on ``sys.path`` (Lambda mounts them under ``/opt/python``), its handler file
imported under its own module name (every function has an ``app.py``) while its environment is in place (Lambda's
init phase), and each invocation with

* the function's environment from the template (Globals merged, intrinsics resolved) plus what Lambda itself sets
  (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_LOG_LEVEL``, region, credentials; here also ``AWS_ENDPOINT_URL``);
  the host's own ``AWS_*`` variables are hidden, as they would be on Lambda;
* a Lambda-like context whose remaining time counts down from the function's ``Timeout``;
* its stdout (Powertools log lines, EMF metrics) rendered on the console under the function's name.

All functions share one process, so invocations run one at a time, and ``on_environment_change`` (the layer's
cache reset) runs whenever the next invocation's environment differs from the last: no function sees settings
cached under another's environment. Timeouts are reported by the context, not enforced.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from local import mount_layers
from local.console import Console, FunctionOutput
from local.template import ACCOUNT_ID, REGION, Function
from sandbox.lambda_runtime import LambdaContext, load_module

Handler = Callable[[Any, Any], Any]


class FunctionError(Exception):
    """The function raised: Lambda would report an ``Unhandled`` error for this invocation."""


class FunctionHost:
    def __init__(
        self,
        functions: Mapping[str, Function],
        *,
        aws_environment: Mapping[str, str],
        console: Console | None = None,
        on_environment_change: Callable[[], None] | None = None,
    ) -> None:
        self.functions = dict(functions)
        self._aws_environment = dict(aws_environment)
        self._console = console
        self._on_environment_change = on_environment_change
        self._lock = threading.RLock()
        self._handlers: dict[str, Handler] = {}
        self._current: str | None = None
        self._last_environment: dict[str, str] | None = None
        self._output = FunctionOutput(console, lambda: self._current) if console is not None else None
        self._redirected: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    # -- lifecycle

    def start(self) -> FunctionHost:
        """Mount the layers and import every handler (Lambda's init phase), each under its own environment."""
        for function in self.functions.values():
            if not function.runtime.startswith("python"):
                raise FunctionError(f"{function.logical_id}: runtime {function.runtime} cannot run in this process")
            mount_layers(function.layers)
        with self._lock:
            for name, function in self.functions.items():
                with lambda_environment(self.environment(name)):
                    module = load_module(function.handler_file, function.module_name)
                handler = getattr(module, function.handler_attribute, None)
                if not callable(handler):
                    raise FunctionError(f"{name}: {function.handler} is not a function")
                self._handlers[name] = handler
            self._capture_service_loggers()
        return self

    def stop(self) -> None:
        with self._lock:
            for handler, stream in self._redirected:
                handler.setStream(stream)
            self._redirected.clear()
            if self._on_environment_change is not None:
                self._on_environment_change()
            self._last_environment = None

    # -- invocations

    def environment(self, logical_id: str) -> dict[str, str]:
        """The environment a function runs with: what Lambda sets, then the template's variables."""
        function = self.functions[logical_id]
        environment = {
            **self._aws_environment,
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "_HANDLER": function.handler,
        }
        if function.log_level:
            environment["AWS_LAMBDA_LOG_LEVEL"] = function.log_level
        if function.log_format:
            environment["AWS_LAMBDA_LOG_FORMAT"] = function.log_format
        environment.update(function.environment)
        return environment

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run the function once with (a copy of) ``event``; returns what the handler returned.
        Raises ``KeyError`` for an unknown function and ``FunctionError`` when the handler raises."""
        if logical_id not in self.functions:
            raise KeyError(f"no function {logical_id} in the template; known: {', '.join(sorted(self.functions))}")
        function = self.functions[logical_id]
        environment = self.environment(logical_id)
        with self._lock, lambda_environment(environment), self._stdout():
            if environment != self._last_environment:
                if self._on_environment_change is not None:
                    self._on_environment_change()
                self._last_environment = environment
            request_id = str(uuid.uuid4())
            context = LambdaContext(
                function_name=logical_id,
                memory_limit_in_mb=function.memory,
                timeout_seconds=float(function.timeout),
                aws_request_id=request_id,
                invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}",
                log_group_name=f"/aws/lambda/{logical_id}",
                log_stream_name=f"local/[$LATEST]{request_id.replace('-', '')}",
            )
            self._current = logical_id
            try:
                return self._handlers[logical_id](copy.deepcopy(event), context)
            except Exception as exc:
                if self._console is not None:  # as Lambda logs an unhandled error (no message here carries a token)
                    self._console.line(logical_id, traceback.format_exc().rstrip(), level="ERROR")
                raise FunctionError(f"{logical_id} raised {type(exc).__name__}") from exc
            finally:
                self._current = None

    @contextlib.contextmanager
    def _stdout(self) -> Iterator[None]:
        if self._output is None:
            yield
            return
        with contextlib.redirect_stdout(self._output):
            yield

    def _capture_service_loggers(self) -> None:
        """Point the Powertools loggers' stdout handlers (one per ``POWERTOOLS_SERVICE_NAME``) at the console."""
        if self._output is None:
            return
        services = {f.environment.get("POWERTOOLS_SERVICE_NAME") for f in self.functions.values()}
        for service in sorted(s for s in services if s):
            for handler in logging.getLogger(service).handlers:
                if type(handler) is logging.StreamHandler:
                    self._redirected.append((handler, handler.setStream(self._output)))  # type: ignore[arg-type]


@contextlib.contextmanager
def lambda_environment(environment: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` as a function sees it: the host's ``AWS_*`` variables hidden, ``environment`` set; restored
    afterwards key by key (other threads never see an empty environment)."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("AWS_") and k not in environment]:
        del os.environ[key]
    os.environ.update(environment)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in saved]:
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
