"""The shared Logger, Metrics and Tracer of every function (one place, one configuration).

The X-Ray SDK adds ~350 ms to a cold start (measured by ``make bench``), more than this package's whole budget,
so the Powertools Tracer is built only when tracing is switched on (``POWERTOOLS_TRACE_DISABLED=false``; template
parameter ``EnableXRaySubsegments``). Function-level X-Ray tracing (``Tracing: Active``) works either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "slack-token-lifecycle"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "SlackTokenLifecycle"

F = TypeVar("F", bound=Callable[..., Any])

logger = Logger(service=SERVICE)

# botocore and urllib3 log request and response bodies at DEBUG - for Secrets Manager that is the secret value.
# Keep them at WARNING whatever the root logger is set to.
for _noisy in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class _NoTracer:
    """Stands in for ``Tracer`` when tracing is off, with the same decorator API."""

    def capture_lambda_handler(self, capture_response: bool = True) -> Callable[[F], F]:
        return lambda handler: handler


def _tracing_enabled() -> bool:
    return (os.environ.get("POWERTOOLS_TRACE_DISABLED") or "true").strip().lower() not in {"1", "true"}


def _make_tracer() -> Any:
    if not _tracing_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - deliberately lazy: see module docstring

    return Tracer(service=SERVICE)


tracer = _make_tracer()


class Metric(NamedTuple):
    """One metric a result or run summary reports (``Summary.metrics()`` and the like); ``emit`` sends them."""

    name: str
    value: float = 1
    reason: str | None = None  # the ``reason`` dimension: a breakdown beside the total
    unit: str = MetricUnit.Count.value


def emit(items: Iterable[Metric]) -> None:
    for item in items:
        if item.unit == MetricUnit.Seconds.value:
            seconds(item.name, item.value)
        elif item.reason is None:
            count(item.name, item.value)
        else:
            count(item.name, item.value, reason=item.reason)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Emit a metric: the total under ``name`` and, for each dimension given (e.g. ``reason``), a breakdown."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if dimensions:
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            for key, dimension in dimensions.items():
                metric.add_dimension(name=key, value=dimension)


def seconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)
