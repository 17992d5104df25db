"""OAuthCallbackFunction: ``GET /slack/oauth_redirect`` -> verify state, exchange the code, store every pair.

The event carries the authorization code, the state and the state cookie: it is never logged, and the response
(which sets cookies) is never traced.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slack_tokens import entrypoints
from slack_tokens.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return entrypoints.oauth_callback(event, context.get_remaining_time_in_millis())
