"""The composition root: what each Lambda handler calls. It builds the collaborators once per cold start, runs the
use case, emits the metrics its result lists, and is the last line of defence that turns an unexpected error into
a plain 500 page (logged with its stack trace, which never includes a token: no message in this package carries
one). Events are checked by ``events``; summaries and their metrics are ``outcomes``'.

Nothing here runs at import time, so a test (or the benchmark) can import a handler before any environment
variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from slack_tokens import errors, events
from slack_tokens.app_secrets import AppSecrets
from slack_tokens.config import Settings
from slack_tokens.observability import count, emit, logger
from slack_tokens.slack_client import RetryPolicy, SlackClient
from slack_tokens.store import TokenStore, make_client

# Each function imports only its own use case (cold start: see `make bench`), so these are imported lazily.
if TYPE_CHECKING:
    from slack_tokens.exchange import Exchanger
    from slack_tokens.guard import RunGuard
    from slack_tokens.oauth_flow import OAuthFlow, Result
    from slack_tokens.outcomes import ExchangeSummary, Summary
    from slack_tokens.rotation import Rotator


class Invocation(Protocol):
    """What the handlers pass of Lambda's context."""

    function_name: str
    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


@cache
def secretsmanager_client() -> Any:
    return make_client()


@cache
def dynamodb_client() -> Any:
    """Made on first use (about 10 ms of a cold start): the guard, and each sweep's ``last_sweep`` record."""
    from slack_tokens.guard import make_client as make_guard_client  # noqa: PLC0415 - lazy, see above

    return make_guard_client()


def _run_guard(settings: Settings) -> RunGuard:
    from slack_tokens.guard import RunGuard  # noqa: PLC0415 - lazy, see the imports

    assert settings.guard_table is not None  # noqa: S101 - need_guard=True makes it required
    return RunGuard(dynamodb_client, settings.guard_table, ttl=settings.guard_ttl_seconds)


def _pair_slack_client(api_url: str, per_minute: int) -> SlackClient:
    """The Slack client of the functions that hold pairs only they have (rotation, exchange): paced, and never
    starting an attempt that the time left cannot finish."""
    from slack_tokens.ratelimit import Pacer  # noqa: PLC0415 - lazy, see the imports

    return SlackClient(api_url, limiter=Pacer(per_minute), policy=PAIR_SLACK_POLICY)


# Rotation and exchange: whole attempts only, and rate limits waited out within the run (installs share the budget).
PAIR_SLACK_POLICY = RetryPolicy(whole_attempts=True, rate_limit_retries=30)

# The callback's own Slack calls are bounded: at most two attempts per callback (a 429 or a 5xx is tried once more
# when its wait fits), so the callbacks the HTTP API's throttle lets through cost the app's shared oauth.v2.access
# budget at most twice their number, and rotation keeps the rest.
CALLBACK_SLACK_POLICY = RetryPolicy(max_attempts=2, read_timeout=8.0)


@cache
def oauth_flow() -> OAuthFlow:
    from slack_tokens.oauth_flow import OAuthFlow  # noqa: PLC0415 - lazy, see the imports
    from slack_tokens.used_states import UsedStates  # noqa: PLC0415

    settings = Settings.from_env(os.environ, need_state=True)
    client = secretsmanager_client()
    secrets = AppSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=settings.state_secret_id)
    used = UsedStates(dynamodb_client, settings.used_state_table) if settings.used_state_table else None
    return OAuthFlow(
        settings,
        secrets,
        SlackClient(settings.api_url, policy=CALLBACK_SLACK_POLICY),
        TokenStore(client, settings.token_prefix),
        used_states=used,
    )


@cache
def rotator() -> Rotator:
    from slack_tokens.rotation import Rotator  # noqa: PLC0415 - lazy, see the imports

    settings = Settings.from_env(os.environ, need_guard=True)
    client = secretsmanager_client()
    secrets = AppSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=None)
    return Rotator(
        TokenStore(client, settings.token_prefix),
        _pair_slack_client(settings.api_url, settings.refresh_per_minute),
        secrets.app_credentials,
        guard=_run_guard(settings),
        margin_seconds=settings.rotation_margin_seconds,
        workers=settings.rotation_workers,
    )


@cache
def exchanger() -> Exchanger:
    from slack_tokens.exchange import Exchanger  # noqa: PLC0415 - lazy, see the imports

    settings = Settings.from_env(os.environ, need_guard=True)
    client = secretsmanager_client()
    secrets = AppSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=None)
    return Exchanger(
        TokenStore(client, settings.token_prefix),
        _pair_slack_client(settings.api_url, settings.exchange_per_minute),
        secrets.app_credentials,
        guard=_run_guard(settings),
    )


def reset() -> None:
    """Forget the cached collaborators (tests change the environment between scenarios)."""
    rotator.cache_clear()
    exchanger.cache_clear()
    oauth_flow.cache_clear()
    secretsmanager_client.cache_clear()
    dynamodb_client.cache_clear()


def install(event: Mapping[str, Any]) -> dict[str, Any]:
    """GET /slack/install."""
    return _http("Install", lambda flow: flow.start_install(event))


def oauth_callback(event: Mapping[str, Any], remaining_ms: int) -> dict[str, Any]:
    """GET /slack/oauth_redirect."""
    return _http("Callback", lambda flow: flow.finish_install(event, remaining_ms / 1000.0))


def rotate(event: object, context: Invocation) -> dict[str, Any]:
    """RotateFunction: a schedule's event (anything) sweeps; ``{"secret_id": ...}`` rotates that pair now.

    A run that ends returns its summary, failed pairs included, and is not retried; a run that dies (crash,
    timeout) is retried by Lambda about a minute later (the template's async retries)."""
    from slack_tokens.outcomes import Summary  # noqa: PLC0415 - lazy, see the imports

    try:
        request = events.rotate_request(event)
    except events.BadEvent as problem:
        return _finished("rotation", Summary.refused(_refusal(problem)))
    remaining, holder = context.get_remaining_time_in_millis() / 1000.0, _holder(context)
    if request.secret_id is not None:
        return _finished("rotation", rotator().rotate_one(request.secret_id, remaining, holder=holder))
    return _finished("rotation", rotator().sweep(remaining, holder=holder))


def exchange(event: object, context: Invocation) -> dict[str, Any]:
    """ExchangeFunction: ``{}`` every legacy pair; ``{"secret_ids": [...]}`` those; ``{"dry_run": true}`` a report."""
    from slack_tokens.outcomes import ExchangeSummary, Summary  # noqa: PLC0415 - lazy, see the imports

    try:
        request = events.exchange_request(event)
    except events.BadEvent as problem:
        return _finished("exchange", ExchangeSummary(run=Summary.refused(_refusal(problem))))
    summary = exchanger().run(
        request.secret_ids,
        dry_run=request.dry_run,
        remaining_seconds=context.get_remaining_time_in_millis() / 1000.0,
        holder=_holder(context),
    )
    return _finished("exchange", summary)


def _holder(context: Invocation) -> str:
    return f"{context.function_name}/{context.aws_request_id}"


def _refusal(problem: events.BadEvent) -> str:
    logger.error(str(problem))
    return str(problem)


def _finished(run: str, summary: Summary | ExchangeSummary) -> dict[str, Any]:
    """Emit the run's metrics, log its summary (counts, never a token) and return it as the function's answer."""
    report = summary.to_json()
    emit(summary.metrics())
    logger.info(f"{run} run finished", extra={"summary": report})
    return report


def _http(kind: str, run: Callable[[OAuthFlow], Result]) -> dict[str, Any]:
    """Run one of the install routes; an error the flow did not turn into a page becomes a plain 500 here."""
    from slack_tokens import http, pages  # noqa: PLC0415 - lazy, see the imports

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
    emit(result.metrics())
    return result.response.to_api()
