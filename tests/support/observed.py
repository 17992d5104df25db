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
