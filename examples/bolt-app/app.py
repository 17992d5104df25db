"""A Bolt app on AWS Lambda that talks to Slack with the tokens the slack-token-lifecycle stack keeps fresh.

* ``installation_store=SecretsManagerInstallationStore()``: each event's workspace token comes from the stack's
  token-pair secrets (cached for a minute in the warm function, never with a refresh token: only the stack's
  rotator refreshes).
* ``enable_token_revocation_listeners()``: ``app_uninstalled`` and ``tokens_revoked`` retire the workspace's pairs,
  so the rotator stops refreshing them (no ``needs_reinstall`` alarm for normal churn).
* ``app_mention``: replies in the thread.

Environment (``template.yaml`` sets it): ``TOKEN_SECRET_PREFIX`` (the stack's), ``SLACK_SIGNING_SECRET_ID`` (a
Secrets Manager secret holding the app's signing secret, never a plain variable), optionally ``SLACK_API_URL``.
Nothing is built at import time: the first event builds the app.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from slack_bolt import App, Say
from slack_bolt.adapter.aws_lambda import SlackRequestHandler
from slack_sdk import WebClient

from slack_tokens.installation_store import SecretsManagerInstallationStore


@cache
def app() -> App:
    secrets = boto3.client("secretsmanager")
    signing_secret = secrets.get_secret_value(SecretId=os.environ["SLACK_SIGNING_SECRET_ID"], VersionStage="AWSCURRENT")
    bolt = App(
        signing_secret=signing_secret["SecretString"],
        installation_store=SecretsManagerInstallationStore(client=secrets),
        client=WebClient(base_url=os.environ.get("SLACK_API_URL") or "https://slack.com/api/"),
        process_before_response=True,  # Lambda freezes the function once it answers
    )
    bolt.enable_token_revocation_listeners()
    bolt.event("app_mention")(reply)
    return bolt


def reply(event: dict[str, Any], say: Say) -> None:
    say(text=f"Hello <@{event.get('user')}>, I heard you.", thread_ts=event.get("thread_ts") or event.get("ts"))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = SlackRequestHandler(app()).handle(event, context)
    return response
