"""What a handler leaves behind that a test can observe without patching anything: its metric lines.

Every callback emits ``InstallSucceeded`` or ``InstallFailed`` with a ``reason`` dimension that is the outcome name
of ``slack_tokens.oauth_flow`` (CloudWatch embedded metric format, one JSON object per stdout line).
"""

from __future__ import annotations

import json

_CALLBACK_METRICS = ("InstallSucceeded", "InstallFailed")


def callback_outcomes(stdout: str) -> list[str]:
    """The outcome names of the callbacks whose metrics were printed to ``stdout``, oldest first."""
    outcomes: list[str] = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record or "reason" not in record:
            continue
        if any(name in record for name in _CALLBACK_METRICS):
            outcomes.append(record["reason"])
    return outcomes


def metric_values(stdout: str, name: str, **dimensions: str) -> list[float]:
    """Every value of metric ``name`` printed to ``stdout`` (EMF), from the lines whose dimensions include
    ``dimensions`` (none given: every line that carries the metric)."""
    values: list[float] = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record or name not in record:
            continue
        if all(record.get(key) == value for key, value in dimensions.items()):
            found = record[name]
            values += [float(v) for v in (found if isinstance(found, list) else [found])]
    return values
