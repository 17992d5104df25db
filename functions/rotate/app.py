"""RotateFunction: sweep every due token pair (EventBridge Scheduler), or rotate one (``{"secret_id": ...}``).

Returns the run summary: due, rotated, recovered, failed, skipped, needs_reinstall.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slack_tokens import entrypoints
from slack_tokens.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return entrypoints.rotate(event, context)
