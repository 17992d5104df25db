"""Run the stack's RotateFunction or ExchangeFunction once and return its summary, as a direct ``aws lambda
invoke`` does: so the run guard, reserved concurrency and the function's own role apply.

Never retried blindly (an answer lost after the function ran is reported, not repeated); only a throttled call,
which did not run (a sweep holds the function's one reserved execution), is tried again for up to ``patience``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from slack_tokens_cli.errors import ATTENTION, CliError
from slack_tokens_cli.stack import Target

READ_TIMEOUT = 910.0  # the functions' 900 s timeout, and some
PATIENCE = 60.0


def invoke(
    target: Target,
    function: str | None,
    logical_id: str,
    event: Mapping[str, Any],
    *,
    patience: float = PATIENCE,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    if function is None:
        raise CliError(f"this stack has no {logical_id} to invoke (for `make run`, restart it: it serves one)")
    client = target.aws.client("lambda", read_timeout=READ_TIMEOUT, attempts=1)
    payload = json.dumps(dict(event)).encode("utf-8")
    waited, pause = 0.0, 2.0
    while True:
        try:
            answer = client.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=payload)
            break
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TooManyRequestsException":
                raise target.aws.explain(exc, f"invoke {logical_id}") from None
            if waited >= patience:
                raise CliError(
                    f"{logical_id} is busy (a run holds its one reserved execution); try again shortly", ATTENTION
                ) from None
        except Exception as exc:
            raise target.aws.explain(exc, f"invoke {logical_id}") from None
        sleep(pause)
        waited += pause
        pause = min(pause * 2, 10.0)
    return _result(answer, logical_id)


def _result(answer: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    body = answer["Payload"].read()
    try:
        result = json.loads(body) if body else None
    except ValueError:
        result = None
    if answer.get("FunctionError"):
        kind = result.get("errorType", "error") if isinstance(result, dict) else "error"
        raise CliError(f"{logical_id} failed ({kind}); see its logs", ATTENTION)
    if not isinstance(result, dict):
        raise CliError(f"{logical_id} answered something that is not a run summary", ATTENTION)
    return result
