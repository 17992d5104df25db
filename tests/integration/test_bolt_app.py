"""The app's own code on the tokens: the example Bolt app (examples/bolt-app/app.py, real slack_bolt and slack_sdk)
through ``SlackRequestHandler``, with signed Events API requests as API Gateway HTTP API events, against moto server
and the fake Slack. The tokens come from ``SecretsManagerInstallationStore``; the stack's own handlers install and
rotate them."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from sandbox.app import PREFIX, App
from sandbox.lambda_runtime import ROOT, LambdaContext, load_module
from slack_tokens import entrypoints
from tests.conftest import LogCapture

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a made-up signing secret of the fake Slack app
BOT = f"{PREFIX}team/T0001/bot"
USER = f"{PREFIX}team/T0001/user/U0001"


@pytest.fixture
def bolt(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example app, configured as its template configures it."""
    secret = app.client.create_secret(Name="example/signing-secret", SecretString=SIGNING_SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET_ID", secret["ARN"])
    monkeypatch.setenv("TOKEN_CACHE_SECONDS", "0.5")
    module = load_module(ROOT / "examples" / "bolt-app" / "app.py", "bolt_example_app")
    yield module
    module.app.cache_clear()


def signed(body: dict[str, Any], *, secret: str = SIGNING_SECRET, age: float = 0.0) -> dict[str, Any]:
    """An Events API request as API Gateway HTTP API (payload 2.0) hands it to the function."""
    raw = json.dumps(body)
    timestamp = str(int(time.time() - age))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{raw}".encode(), hashlib.sha256).hexdigest()
    return {
        "version": "2.0",
        "routeKey": "POST /slack/events",
        "rawPath": "/slack/events",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
        },
        "requestContext": {"http": {"method": "POST", "path": "/slack/events"}},
        "body": raw,
        "isBase64Encoded": False,
    }


def event_callback(event: dict[str, Any], *, team: str = "T0001", enterprise: str | None = None,
                   org_wide: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "token": "verification-token",
        "team_id": team,
        "enterprise_id": enterprise,
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{time.monotonic_ns()}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": enterprise,
                "team_id": team,
                "user_id": "B0001",
                "is_bot": True,
                "is_enterprise_install": org_wide,
            }
        ],
    }


def mention(text: str = "<@B0001> hello", **where: Any) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    return event_callback(
        {"type": "app_mention", "user": "U0001", "text": text, "ts": ts, "channel": "C0001", "event_ts": ts}, **where
    )


def deliver(bolt: ModuleType, body: dict[str, Any], **signing: Any) -> dict[str, Any]:
    response: dict[str, Any] = bolt.lambda_handler(signed(body, **signing), LambdaContext(function_name="bolt-app"))
    return response


def retired(app: App, name: str) -> bool:
    """Marked revoked (value and tag) and scheduled for deletion. A deleted secret's value cannot be read (AWS and
    moto alike), but its current version id carries the status the value was written with."""
    described = app.client.describe_secret(SecretId=name)
    current = next(v for v, stages in described["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    return (
        current.startswith("revoked-")
        and {"Key": "slack:status", "Value": "revoked"} in described["Tags"]
        and "DeletedDate" in described
    )


def oauth_calls(app: App) -> list[Any]:
    return [r for r in app.slack.requests if r.method == "oauth.v2.access"]


def test_a_mention_is_answered_with_the_workspaces_current_bot_token(app: App, bolt: ModuleType) -> None:
    app.install_teams(["T0001"])
    app.slack.clear_requests()

    response = deliver(bolt, mention())

    assert response["statusCode"] == 200
    (post,) = app.slack.posts
    assert post.token == app.stored(BOT)["access_token"] and post.token_type == "bot"
    assert post.channel == "C0001" and "U0001" in post.text
    assert oauth_calls(app) == []  # Bolt never refreshes: it never sees a refresh token


def test_after_a_rotation_the_new_token_is_used_once_the_cache_period_passes(
    app: App, bolt: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slack_tokens.installation_store import SecretsManagerInstallationStore

    # The store's cache runs on a clock the test moves (a busy machine must not decide what "inside" means).
    now = [1000.0]
    store = functools.partial(SecretsManagerInstallationStore, monotonic=lambda: now[0])
    monkeypatch.setattr(bolt, "SecretsManagerInstallationStore", store)
    app.slack.token_lifetime = 3600  # due at once
    app.install_teams(["T0001"])
    old = app.stored(BOT)["access_token"]
    deliver(bolt, mention())
    assert app.rotate()["rotated"] == 1
    new = app.stored(BOT)["access_token"]

    now[0] += 0.4
    deliver(bolt, mention())  # inside the cache period (0.5 s): the old token, which Slack still accepts
    now[0] += 0.2
    app.slack.clear_requests()
    deliver(bolt, mention())

    assert [p.token for p in app.slack.posts] == [old, old, new]
    assert oauth_calls(app) == []


def test_bolt_ignores_the_bots_own_events_by_the_bot_id_the_callback_stored(app: App, bolt: ModuleType) -> None:
    app.install_teams(["T0001"])
    own = app.stored(BOT)["bot_id"]
    assert own == app.slack.installation.bot_id  # from auth.test at install time

    def from_bot(bot_id: str) -> dict[str, Any]:
        body = mention()
        body["event"].update(bot_id=bot_id, user="U0BOTUSER")
        return body

    assert deliver(bolt, from_bot(own))["statusCode"] == 200
    assert app.slack.posts == []  # its own message: ignored, no reply loop
    deliver(bolt, from_bot("BOTHER001"))
    assert len(app.slack.posts) == 1  # another bot's mention is answered


def test_app_uninstalled_retires_every_pair_of_the_workspace_and_the_next_sweep_refreshes_none(
    app: App, bolt: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    app.slack.token_lifetime = 3600  # both pairs due at the next sweep
    app.install_teams(["T0001", "T0002"])
    others = [f"{PREFIX}team/T0002/bot", f"{PREFIX}team/T0002/user/U0001"]
    their_refresh_tokens = {app.stored(name)["refresh_token"] for name in others}

    response = deliver(bolt, event_callback({"type": "app_uninstalled"}))

    assert response["statusCode"] == 200
    assert retired(app, BOT) and retired(app, USER)
    app.slack.clear_requests()
    summary = app.rotate()
    assert summary["needs_reinstall"] == 0 and summary["failed"] == 0, summary
    assert {r.form["refresh_token"] for r in oauth_calls(app)} == their_refresh_tokens  # the other workspace's only
    assert all(app.stored(name)["status"] == "active" for name in others)
    assert deliver(bolt, mention())["statusCode"] == 200 and app.slack.posts == []  # no token for it any more


def test_tokens_revoked_for_a_user_retires_that_users_pair_only(
    app: App, bolt: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    app.install_teams(["T0001"])
    bot_before = app.stored(BOT)

    deliver(bolt, event_callback({"type": "tokens_revoked", "tokens": {"oauth": ["U0001"], "bot": []}}))

    assert retired(app, USER)
    assert app.stored(BOT) == bot_before
    deliver(bolt, mention())
    assert [p.token_type for p in app.slack.posts] == ["bot"]


@pytest.mark.parametrize(
    "signing",
    [{"secret": "0" * 32}, {"age": 600}],
    ids=["wrong signing secret", "stale timestamp"],
)
def test_a_bad_or_stale_signature_is_refused_and_nothing_changes(
    app: App, bolt: ModuleType, signing: dict[str, Any]
) -> None:
    app.install_teams(["T0001"])
    before = app.stored(BOT)

    for body in (mention(), event_callback({"type": "app_uninstalled"})):
        assert deliver(bolt, body, **signing)["statusCode"] == 401

    assert app.stored(BOT) == before and app.slack.posts == []


def test_a_reinstall_after_an_uninstall_brings_the_pair_back_active(app: App, bolt: ModuleType) -> None:
    app.install_teams(["T0001"])
    deliver(bolt, event_callback({"type": "app_uninstalled"}))
    assert retired(app, BOT)

    app.install_teams(["T0001"])
    time.sleep(0.6)  # the store's cache period: it had cached "no token" for the retired pair

    assert app.stored(BOT)["status"] == "active"
    assert "DeletedDate" not in app.client.describe_secret(SecretId=BOT)
    deliver(bolt, mention())
    assert [p.token for p in app.slack.posts] == [app.stored(BOT)["access_token"]]


def test_an_org_wide_install_is_found_from_a_team_inside_the_org(app: App, bolt: ModuleType) -> None:
    app.slack.set_installation(team_id=None, enterprise_id="E0001", enterprise_name="Org", is_enterprise_install=True)
    response = app.full_install()
    assert response["statusCode"] == 200, response["body"]

    deliver(bolt, mention(team="T0042", enterprise="E0001", org_wide=True))

    (post,) = app.slack.posts
    assert post.token == app.stored(f"{PREFIX}enterprise/E0001/bot")["access_token"]


def test_no_token_reaches_a_log_line_on_the_apps_paths(
    app: App, bolt: ModuleType, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    import logging

    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    app.slack.token_lifetime = 3600
    # Bolt's SlackRequestHandler removes the root logger's handlers, so listen on the named loggers themselves.
    lines: list[str] = []
    listener = logging.Handler(logging.DEBUG)
    listener.emit = lambda record: lines.append(f"{record.name} {record.getMessage()}")  # type: ignore[method-assign]
    watched = [logging.getLogger(name) for name in ("slack_tokens", "slack_bolt", "slack_sdk")]
    for watched_logger in watched:
        watched_logger.addHandler(listener)
        watched_logger.setLevel(logging.DEBUG)
    try:
        app.install_teams(["T0001"])
        secrets = {SIGNING_SECRET}
        for name in (BOT, USER):
            secrets |= {app.stored(name)["access_token"], app.stored(name)["refresh_token"]}
        deliver(bolt, mention())
        app.rotate()
        secrets |= {app.stored(BOT)["access_token"], app.stored(BOT)["refresh_token"]}
        time.sleep(0.6)
        deliver(bolt, mention())
        deliver(bolt, event_callback({"type": "tokens_revoked", "tokens": {"oauth": ["U0001"], "bot": []}}))
        deliver(bolt, event_callback({"type": "app_uninstalled"}))
        deliver(bolt, mention())  # a retired workspace: "no token" is logged, never a token
    finally:
        for watched_logger in watched:
            watched_logger.removeHandler(listener)
            watched_logger.setLevel(logging.NOTSET)

    ours = [line for line in lines if line.startswith("slack_tokens")] + logs.lines
    assert any("retirement" in line for line in ours) and any("revoked" in line for line in ours)
    leaked = [s for s in secrets for line in ours + lines if s in line]
    assert leaked == []  # ours, and Bolt's and slack_sdk's own lines at DEBUG too
