"""The callback when Slack or Secrets Manager fails: the right page and log line, retries only where they help.

Slack's failures are injected with the fake's ``fail_next`` knob; Secrets Manager's with a botocore event hook on
the handlers' own cached client (``sandbox.aws_faults``), so the store meets a real ``ClientError`` raised
inside a real botocore call.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sandbox.app import CLIENT_ID, CLIENT_SECRET, App
from sandbox.aws_faults import throttled_create_secret
from slack_tokens import entrypoints
from tests.conftest import LogCapture
from tests.support.observed import callback_outcomes

ACCESS = "oauth.v2.access"
INSTALL_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/slack/install"
BOT_SECRET = "slack/tokens/team/T0001/bot"


def outcome(capsys: pytest.CaptureFixture[str]) -> str:
    (only,) = callback_outcomes(capsys.readouterr().out)
    return only


def statuses(app: App) -> list[int | None]:
    return [r.status for r in app.slack.requests if r.method == ACCESS]


def error_records(logs: LogCapture) -> list[dict[str, Any]]:
    return [r for r in logs.records() if r["level"] == "ERROR"]


# -- Slack refuses the code exchange ------------------------------------------------------------------------------


def test_an_invalid_code_gives_a_400_page_that_links_back_to_the_install(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    app.slack.fail_next(ACCESS, error="invalid_code")

    response = app.full_install()

    assert response["statusCode"] == 400
    assert "Install link already used" in response["body"]
    assert f'href="{INSTALL_URL}"' in response["body"]
    assert outcome(capsys) == "invalid_code"
    assert statuses(app) == [200]  # a grant error is final: not retried
    assert app.secret_names() == []


def test_invalid_code_sent_as_http_400_with_slacks_json_is_still_an_invalid_code(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    app.slack.fail_next(ACCESS, status=400, body=b'{"ok":false,"error":"invalid_code"}')

    response = app.full_install()

    assert response["statusCode"] == 400
    assert "Install link already used" in response["body"]
    assert outcome(capsys) == "invalid_code"
    assert statuses(app) == [400]
    assert app.secret_names() == []


@pytest.mark.parametrize("slack_error", ["bad_client_secret", "invalid_client_id", "bad_redirect_uri"])
def test_a_configuration_error_gives_a_generic_500_page_and_an_error_log_naming_it(
    app: App, capsys: pytest.CaptureFixture[str], logs: LogCapture, slack_error: str
) -> None:
    app.slack.fail_next(ACCESS, error=slack_error)

    response = app.full_install()

    assert response["statusCode"] == 500
    assert "Install unavailable" in response["body"]
    assert slack_error not in response["body"]  # the visitor is not told about our configuration
    assert outcome(capsys) == "slack_config"
    (record,) = error_records(logs)
    assert record["slack_error"] == slack_error
    assert statuses(app) == [200]
    assert app.secret_names() == []


def test_a_wrong_client_secret_is_reported_and_a_corrected_secret_is_used_without_a_cold_start(
    app: App, logs: LogCapture
) -> None:
    credentials = "slack-app/credentials"
    app.client.put_secret_value(
        SecretId=credentials, SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": "not-the-secret"})
    )

    refused = app.full_install()  # the fake's own credential check answers bad_client_secret

    assert refused["statusCode"] == 500
    assert [r["slack_error"] for r in error_records(logs)] == ["bad_client_secret"]
    assert app.secret_names() == []

    # The operator fixes the secret; the warm function re-reads it because Slack rejected the cached one.
    app.client.put_secret_value(
        SecretId=credentials, SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    )
    assert app.full_install()["statusCode"] == 200
    assert app.secret_names() == [BOT_SECRET]


def test_an_org_installed_app_gives_a_403_page(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    app.slack.fail_next(ACCESS, error="cannot_install_an_org_installed_app")

    response = app.full_install()

    assert response["statusCode"] == 403
    assert "Install not allowed" in response["body"]
    assert outcome(capsys) == "permission"
    assert app.secret_names() == []


def test_an_undocumented_slack_error_gives_a_502_page_and_an_error_log(
    app: App, capsys: pytest.CaptureFixture[str], logs: LogCapture
) -> None:
    app.slack.fail_next(ACCESS, error="something_new_at_slack")

    response = app.full_install()

    assert response["statusCode"] == 502
    assert outcome(capsys) == "slack_error"
    assert [r["slack_error"] for r in error_records(logs)] == ["something_new_at_slack"]
    assert statuses(app) == [200]
    assert app.secret_names() == []


# -- Slack is busy or broken for a moment: retried, then installed ------------------------------------------------


def test_a_429_is_retried_after_retry_after_and_the_install_completes(app: App) -> None:
    app.slack.fail_next(ACCESS, status=429, retry_after=1)
    started = time.monotonic()

    response = app.full_install()

    assert response["statusCode"] == 200
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    assert statuses(app) == [429, 200]
    assert app.secret_names() == [BOT_SECRET]


def test_one_500_is_retried_and_the_install_completes(app: App) -> None:
    app.slack.fail_next(ACCESS, status=500)

    response = app.full_install()

    assert response["statusCode"] == 200
    assert statuses(app) == [500, 200]
    assert app.secret_names() == [BOT_SECRET]


def test_a_callback_calls_slack_at_most_twice_however_slack_fails(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    """The callback's Slack calls are bounded: the throttle's rate times two is all it can take of the app's
    shared oauth.v2.access budget (rotation has the rest)."""
    app.slack.fail_next(ACCESS, status=500, times=3)

    response = app.full_install()

    assert response["statusCode"] == 503
    assert outcome(capsys) == "slack_unavailable"
    assert statuses(app) == [500, 500]
    assert app.secret_names() == []


def test_a_non_json_502_from_a_proxy_is_retried_and_the_install_completes(app: App) -> None:
    app.slack.fail_next(ACCESS, status=502, body=b"<html><body>502 Bad Gateway</body></html>")

    response = app.full_install()

    assert response["statusCode"] == 200
    assert statuses(app) == [502, 200]
    assert app.secret_names() == [BOT_SECRET]


# -- Slack stays busy beyond the time the callback has: 503, nothing stored ---------------------------------------


def test_a_retry_after_longer_than_the_budget_gives_a_503_at_once(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    app.slack.fail_next(ACCESS, status=429, retry_after=30)
    started = time.monotonic()

    response = app.full_install()

    assert time.monotonic() - started < 5  # it did not sit out the 30 s
    assert response["statusCode"] == 503
    assert "Slack is busy" in response["body"]
    assert "start the install again" in response["body"]  # the state is spent: the same link cannot be retried
    assert outcome(capsys) == "slack_unavailable"
    assert statuses(app) == [429]
    assert app.secret_names() == []


def test_ratelimited_answers_until_the_budget_runs_out_give_a_503(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    app.slack.fail_next(ACCESS, error="ratelimited", times=50)
    install = app.authorize(app.install())
    started = time.monotonic()

    # A 14.5 s invocation keeps 1 s of margin and 12 s for the writes: the exchange may take 1.5 s, retries included.
    response = app.callback(install, timeout=14.5)

    assert time.monotonic() - started < 4
    assert response["statusCode"] == 503
    assert outcome(capsys) == "slack_unavailable"
    assert len(statuses(app)) == 2  # retried once: a callback never makes more than two calls
    assert app.secret_names() == []


def test_an_answer_lost_after_slack_used_the_code_sends_the_user_to_start_again(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    # Slack processed the exchange but the answer never arrived. The retry can only hear invalid_code: the tokens
    # of the lost answer are beyond reach, and nothing half-done is stored.
    app.slack.fail_next(ACCESS, drop_after_processing=True)

    response = app.full_install()

    assert response["statusCode"] == 400
    assert f'href="{INSTALL_URL}"' in response["body"]
    assert outcome(capsys) == "invalid_code"
    assert [(r.status, r.error) for r in app.slack.requests] == [(None, None), (200, "invalid_code")]
    assert app.secret_names() == []


# -- Secrets Manager fails after Slack issued the tokens ----------------------------------------------------------


@pytest.fixture
def secretsmanager(app: App) -> Any:
    """The cached Secrets Manager client the handlers use (``app`` has configured their environment)."""
    return entrypoints.secretsmanager_client()


def test_a_few_throttled_writes_are_retried_and_the_pair_is_stored_once(app: App, secretsmanager: Any) -> None:
    with throttled_create_secret(secretsmanager, refusals=3) as hook:
        response = app.full_install()

    assert response["statusCode"] == 200
    assert len(hook.bodies) == 4
    assert len({body["ClientRequestToken"] for body in hook.bodies}) == 1  # one version, retried idempotently
    assert app.secret_names() == [BOT_SECRET]
    versions = app.client.describe_secret(SecretId=BOT_SECRET)["VersionIdsToStages"]
    created = hook.bodies[0]["ClientRequestToken"]
    assert created in versions and len(versions) == 2  # the create, then the bot_id amendment made from it
    stored = app.stored(BOT_SECRET)
    assert stored["rotated_from"] == created and stored["bot_id"]
    assert app.slack.is_refresh_token_valid(stored["refresh_token"])


def test_writes_throttled_until_the_deadline_give_a_500_page_and_a_loud_log_without_tokens(
    app: App, secretsmanager: Any, capsys: pytest.CaptureFixture[str], logs: LogCapture
) -> None:
    install = app.authorize(app.install())
    started = time.monotonic()

    # A 16 s invocation: 1 s of margin, 12 s kept for the writes; they are retried while one more attempt at its
    # worst (TokenStore.write_worst_seconds = 9 s) still ends in time, so for about 6 s.
    with throttled_create_secret(secretsmanager, refusals=None) as hook:
        response = app.callback(install, timeout=16)

    assert 3 < time.monotonic() - started < 16
    assert response["statusCode"] == 500
    assert "Install not saved" in response["body"] and "Please install again" in response["body"]
    printed = capsys.readouterr().out
    assert callback_outcomes(printed) == ["storage_failed"]
    (record,) = error_records(logs)
    assert record["secret_name"] == BOT_SECRET
    assert "ThrottlingException" in record["error"]
    assert app.secret_names() == []
    tokens = hook.tokens()
    assert len(tokens) == 2 and len(hook.bodies) > 3
    for text in [*logs.lines, printed, response["body"]]:
        assert not any(token in text for token in tokens)
