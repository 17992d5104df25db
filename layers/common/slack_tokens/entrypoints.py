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
from typing import TYPE_CHECKING, Any, Protocol

from slack_tokens import errors
from slack_tokens.config import Settings
from slack_tokens.observability import count, logger, seconds
from slack_tokens.slack_client import RetryPolicy, SlackClient
from slack_tokens.store import ConfigSecrets, TokenStore, make_client

# Each function imports only its own use case (cold start: see `make bench`), so these are imported lazily.
if TYPE_CHECKING:
    from slack_tokens.exchange import Exchanger
    from slack_tokens.guard import RunGuard
    from slack_tokens.handover import Summary
    from slack_tokens.oauth_flow import OAuthFlow, Result
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
    secrets = ConfigSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=settings.state_secret_id)
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
    secrets = ConfigSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=None)
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
    secrets = ConfigSecrets(client, app_secret_id=settings.app_secret_id, state_secret_id=None)
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
    secret_id = event.get("secret_id") if isinstance(event, Mapping) else None
    if secret_id is not None and (not isinstance(secret_id, str) or not 1 <= len(secret_id) <= 2048):
        summary = _refused("secret_id must be a secret name or ARN")
    else:
        remaining = context.get_remaining_time_in_millis() / 1000.0
        holder = f"{context.function_name}/{context.aws_request_id}"
        work = rotator()
        if secret_id:
            summary = work.rotate_one(secret_id, remaining, holder=holder)
        else:
            summary = work.sweep(remaining, holder=holder)
    report = summary.to_json()
    _guard_metrics(summary, blocked_metric="RotationBlocked")
    for key, metric in (
        ("due", "RotationDue"),
        ("rotated", "Rotated"),
        ("recovered", "RotationRecovered"),
        ("failed", "RotationFailed"),
        ("needs_reinstall", "NeedsReinstall"),
        ("superseded", "RotationSuperseded"),
        ("deferred", "RotationDeferred"),
    ):
        count(metric, report[key])
    for reason, failures in report["failures"].items():
        count("RotationFailedByReason", failures, reason=reason)
    if report["lag_seconds"] is not None:
        seconds("RotationLagSeconds", report["lag_seconds"])
    logger.info("rotation run finished", extra={"summary": report})
    return report


def _refused(problem: str) -> Summary:
    """The summary of an invocation refused for its event: every key a summary has, and the error."""
    from slack_tokens.handover import FAILED, Outcome, Summary  # noqa: PLC0415 - lazy, see the imports

    logger.error(problem)
    return Summary(outcomes=[Outcome("(event)", FAILED, "bad_event")], error=problem)


def _guard_metrics(summary: Summary, *, blocked_metric: str | None) -> None:
    """``blocked_metric`` (0 or 1, every run that had work: the alarm watches its minimum) and the run guard's
    problems (``RunGuardProblem``: a claim no working run writes was taken over, or DynamoDB could not be used)."""
    from slack_tokens.guard import GuardState  # noqa: PLC0415 - lazy, see the imports

    state, took_over = summary.guard.state, summary.guard.took_over
    if blocked_metric is not None and state is not GuardState.NOT_NEEDED:
        count(blocked_metric, 1 if state is GuardState.BUSY else 0)
    if took_over is not None and took_over.loud:
        count("RunGuardProblem", reason=f"taken_over_{took_over}")
    elif took_over is not None:
        count("RunGuardLapsed")  # a dead run's claim, taken after it lapsed: the crash itself is the news
    if state is GuardState.UNAVAILABLE:
        count("RunGuardProblem", reason="unavailable")


def exchange(event: object, context: Invocation) -> dict[str, Any]:
    """ExchangeFunction: ``{}`` every legacy pair; ``{"secret_ids": [...]}`` those; ``{"dry_run": true}`` a report."""
    body = event if isinstance(event, Mapping) else {}
    secret_ids = body.get("secret_ids")
    dry_run = body.get("dry_run", False)
    problem = None
    if secret_ids is not None and (
        not isinstance(secret_ids, list) or not all(isinstance(s, str) and 1 <= len(s) <= 2048 for s in secret_ids)
    ):
        problem = "secret_ids must be a list of secret names or ARNs"
    elif not isinstance(dry_run, bool):
        problem = "dry_run must be true or false"
    if problem is not None:
        from slack_tokens.exchange import ExchangeSummary  # noqa: PLC0415 - lazy, see the imports

        summary, dry_run = ExchangeSummary(run=_refused(problem)), False
    else:
        summary = exchanger().run(
            secret_ids,
            dry_run=dry_run,
            remaining_seconds=context.get_remaining_time_in_millis() / 1000.0,
            holder=f"{context.function_name}/{context.aws_request_id}",
        )
    report = summary.to_json()
    _guard_metrics(summary.run, blocked_metric=None)
    if dry_run:
        count("ExchangeWouldExchange", len(report["would_exchange"]))
    else:
        for key, metric in (
            ("due", "ExchangeDue"),
            ("exchanged", "Exchanged"),
            ("recovered", "ExchangeRecovered"),
            ("failed", "ExchangeFailed"),
            ("needs_reinstall", "NeedsReinstall"),
            ("superseded", "ExchangeSuperseded"),
            ("deferred", "ExchangeDeferred"),
        ):
            count(metric, report[key])
        for reason, failures in report["failures"].items():
            count("ExchangeFailedByReason", failures, reason=reason)
        if "stopped" in report:
            count("ExchangeStopped", reason=report["stopped"])
    logger.info("exchange run finished", extra={"summary": report})
    return report


def _http(kind: str, run: Callable[[OAuthFlow], Result]) -> dict[str, Any]:
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
    if kind == "Install":
        count("InstallStarted" if result.ok else "InstallFailed", reason=result.outcome)
    else:
        count("InstallSucceeded" if result.ok else "InstallFailed", reason=result.outcome)
    return result.response.to_api()
