"""What each Lambda handler calls: builds the collaborators once per cold start, runs the use case, records
metrics, and is the last line of defence that turns an unexpected error into a plain 500 page (logged with its
stack trace, which never includes a token: no message in this package carries one).

Nothing here runs at import time, so a test (or the benchmark) can import a handler before any environment
variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from slack_tokens import errors, http, pages
from slack_tokens.config import Settings
from slack_tokens.oauth_flow import OAuthFlow, Result
from slack_tokens.observability import count, logger
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import ConfigSecrets, TokenStore, make_client


@cache
def secretsmanager_client() -> Any:
    return make_client()


@cache
def oauth_flow() -> OAuthFlow:
    settings = Settings.from_env(os.environ, need_state=True)
    client = secretsmanager_client()
    secrets = ConfigSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=settings.state_secret_id)
    return OAuthFlow(settings, secrets, SlackClient(settings.api_url), TokenStore(client, settings.token_prefix))


def reset() -> None:
    """Forget the cached collaborators (tests change the environment between scenarios)."""
    oauth_flow.cache_clear()
    secretsmanager_client.cache_clear()


def install(event: Mapping[str, Any]) -> dict[str, Any]:
    """GET /slack/install."""
    return _http("Install", lambda flow: flow.start_install(event))


def oauth_callback(event: Mapping[str, Any], remaining_ms: int) -> dict[str, Any]:
    """GET /slack/oauth_redirect."""
    return _http("Callback", lambda flow: flow.finish_install(event, remaining_ms / 1000.0))


def _http(kind: str, run: Callable[[OAuthFlow], Result]) -> dict[str, Any]:
    try:
        result = run(oauth_flow())
    except errors.ConfigError as exc:
        logger.error("invalid configuration", extra={"error": str(exc)})
        count(f"{kind}Failed", reason="config")
        return http.html(
            500, pages.page("Install unavailable", "The app is not configured correctly.", ok=False)
        ).to_api()
    except Exception:
        logger.exception("unexpected error")
        count(f"{kind}Failed", reason="unexpected")
        return http.html(500, pages.page("Something went wrong", "Please try again later.", ok=False)).to_api()
    if kind == "Install":
        count("InstallStarted" if result.ok else "InstallFailed", reason=result.outcome)
    else:
        count("InstallSucceeded" if result.ok else "InstallFailed", reason=result.outcome)
    return result.response.to_api()
