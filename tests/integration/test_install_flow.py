"""Install -> Slack consent -> callback, through the real handlers, moto server and the fake Slack over HTTP."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.app import CLIENT_ID, CLIENT_SECRET, STATE_KEY, App, configure
from slack_tokens.models import Status, parse_version_id
from slack_tokens.state import StateSigner
from tests.support.observed import callback_outcomes

CALLBACK = "https://abc123.execute-api.us-east-1.amazonaws.com/slack/oauth_redirect"


def location_params(response: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response["headers"]["Location"]).query).items()}


def tags_of(app: App, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in app.client.describe_secret(SecretId=name)["Tags"]}


# -- install ----------------------------------------------------------------------------------------------------


def test_install_redirects_to_slack_with_a_signed_state_bound_to_a_cookie(app: App) -> None:
    response = app.install()

    assert response["statusCode"] == 302
    assert response["headers"]["Location"].startswith(app.slack.authorize_url + "?")
    params = location_params(response)
    assert params["client_id"] == CLIENT_ID
    assert params["scope"] == "chat:write,commands"
    assert params["redirect_uri"] == CALLBACK
    assert "code_challenge" not in params
    (cookie,) = response["cookies"]
    # __Host-: the browser keeps it only when Secure, Path=/ and without a Domain, so no sibling subdomain and no
    # plain-http page can set a cookie of that name.
    assert cookie.startswith("__Host-slack_oauth_state=")
    attributes = [a.strip() for a in cookie.split(";")[1:]]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600", "Path=/"):
        assert attribute in attributes
    assert not any(a.lower().startswith("domain") for a in attributes)
    nonce = cookie.split("=", 1)[1].split(";")[0]
    StateSigner(STATE_KEY).verify(params["state"], nonce, int(time.time()))


def test_install_passes_a_valid_team_hint_and_drops_a_bad_one(app: App) -> None:
    assert location_params(app.install({"team": "T0001"}))["team"] == "T0001"
    assert "team" not in location_params(app.install({"team": "<script>"}))


# -- happy paths -------------------------------------------------------------------------------------------------


def test_bot_install_stores_one_pair_in_the_documented_format(app: App) -> None:
    response = app.full_install()

    assert response["statusCode"] == 200
    assert "Installed" in response["body"] and "Sandbox Workspace" in response["body"]
    assert any("Max-Age=0" in c for c in response["cookies"])  # the state cookie is cleared
    assert app.secret_names() == ["slack/tokens/team/T0001/bot"]
    stored = app.stored("slack/tokens/team/T0001/bot")
    assert stored["token_type"] == "bot"
    assert stored["access_token"].startswith("xoxe.xoxb-")
    assert stored["refresh_token"].startswith("xoxe-")
    assert abs(stored["expires_at"] - (time.time() + 43200)) < 60
    assert stored["scope"] == "chat:write,commands"
    assert stored["team_id"] == "T0001" and stored["enterprise_id"] is None
    assert stored["is_enterprise_install"] is False
    assert stored["bot_user_id"] == "B0001" and stored["app_id"] == "A0001"
    assert stored["status"] == Status.ACTIVE
    assert app.slack.is_refresh_token_valid(stored["refresh_token"])
    assert tags_of(app, "slack/tokens/team/T0001/bot") == {
        "slack:token_type": "bot",
        "slack:team_id": "T0001",
        "slack:status": "active",
    }
    meta = app.client.describe_secret(SecretId="slack/tokens/team/T0001/bot")
    (version,) = [v for v, stages in meta["VersionIdsToStages"].items() if "AWSCURRENT" in stages]
    assert parse_version_id(version).expires_at == stored["expires_at"]  # type: ignore[union-attr]


def test_the_code_exchange_uses_basic_auth_and_the_same_redirect_uri(app: App) -> None:
    app.full_install()

    (request,) = [r for r in app.slack.requests if r.method == "oauth.v2.access"]
    assert request.basic_auth == (CLIENT_ID, CLIENT_SECRET)
    assert "client_secret" not in request.form
    assert request.form["redirect_uri"] == CALLBACK
    assert request.form["grant_type"] == "authorization_code"


def test_bot_and_user_install_stores_two_pairs(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    app.slack.set_installation(incoming_webhook=True)
    from slack_tokens import entrypoints

    entrypoints.reset()
    assert app.full_install()["statusCode"] == 200

    assert app.secret_names() == ["slack/tokens/team/T0001/bot", "slack/tokens/team/T0001/user/U0001"]
    user = app.stored("slack/tokens/team/T0001/user/U0001")
    assert user["token_type"] == "user" and user["user_id"] == "U0001"
    assert user["access_token"].startswith("xoxe.xoxp-") and user["scope"] == "search:read"
    assert app.stored("slack/tokens/team/T0001/bot")["incoming_webhook"]["url"].startswith("http")


def test_user_only_install_stores_the_user_pair(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, aws, slack, SLACK_SCOPES="", SLACK_USER_SCOPES="search:read")
    app = App(handlers=handlers, slack=slack, client=aws)

    assert app.full_install()["statusCode"] == 200
    assert app.secret_names() == ["slack/tokens/team/T0001/user/U0001"]


def test_grid_workspace_install_is_named_under_its_enterprise(app: App) -> None:
    app.slack.set_installation(team_id="T0002", enterprise_id="E0001", enterprise_name="Grid Org")

    assert app.full_install()["statusCode"] == 200
    assert app.secret_names() == ["slack/tokens/enterprise/E0001/team/T0002/bot"]
    assert tags_of(app, "slack/tokens/enterprise/E0001/team/T0002/bot")["slack:enterprise_id"] == "E0001"


def test_org_wide_install_is_named_by_enterprise_only(app: App) -> None:
    app.slack.set_installation(
        team_id=None, enterprise_id="E0001", enterprise_name="Grid Org", is_enterprise_install=True
    )

    response = app.full_install()

    assert response["statusCode"] == 200 and "Grid Org" in response["body"]
    assert app.secret_names() == ["slack/tokens/enterprise/E0001/bot"]
    stored = app.stored("slack/tokens/enterprise/E0001/bot")
    assert stored["is_enterprise_install"] is True and stored["team_id"] is None


def test_reinstall_replaces_the_pair_with_the_new_scopes(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app.full_install()
    first = app.stored("slack/tokens/team/T0001/bot")
    monkeypatch.setenv("SLACK_SCOPES", "chat:write,commands,channels:read")
    from slack_tokens import entrypoints

    entrypoints.reset()
    app.full_install()

    second = app.stored("slack/tokens/team/T0001/bot")
    assert second["scope"] == "chat:write,commands,channels:read"
    assert second["access_token"] != first["access_token"]
    versions = app.client.describe_secret(SecretId="slack/tokens/team/T0001/bot")["VersionIdsToStages"]
    # One current and one previous version; AWSPENDING, if any, only beside AWSCURRENT (the bot_id amendment
    # stages then promotes), never a leftover on an older version for the rotator to weigh.
    stages = sorted(stage for stages in versions.values() for stage in stages if stage != "AWSPENDING")
    assert stages == ["AWSCURRENT", "AWSPREVIOUS"]
    assert all("AWSCURRENT" in stages for stages in versions.values() if "AWSPENDING" in stages)


def test_pkce_sends_a_challenge_and_the_matching_verifier(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, aws, slack, SLACK_PKCE_ENABLED="true")
    app = App(handlers=handlers, slack=slack, client=aws)

    install = app.install()
    params = location_params(install)
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert app.callback(app.authorize(install))["statusCode"] == 200
    (request,) = [r for r in slack.requests if r.method == "oauth.v2.access"]
    assert 43 <= len(request.form["code_verifier"]) <= 128


def test_success_url_gets_a_redirect_with_the_team(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, aws, slack, INSTALL_SUCCESS_URL="https://example.com/welcome")
    app = App(handlers=handlers, slack=slack, client=aws)

    response = app.full_install()

    assert response["statusCode"] == 302
    assert response["headers"]["Location"] == "https://example.com/welcome?team=T0001"


def test_the_success_query_goes_before_the_success_urls_fragment(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, aws, slack, INSTALL_SUCCESS_URL="https://example.com/welcome?from=slack#next-steps")
    app = App(handlers=handlers, slack=slack, client=aws)

    response = app.full_install()

    assert response["headers"]["Location"] == "https://example.com/welcome?from=slack&team=T0001#next-steps"


def test_the_failure_reason_goes_before_the_failure_urls_fragment(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, aws, slack, INSTALL_FAILURE_URL="https://example.com/sorry#help")
    app = App(handlers=handlers, slack=slack, client=aws)
    query = app.authorize(app.install())

    response = app.callback({"code": "1.2.not-a-code", "state": query["state"]})

    assert response["headers"]["Location"] == "https://example.com/sorry?reason=missing_code#help"


def test_a_stateless_workspace_install_is_refused_even_when_stateless_org_installs_are_on(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Login CSRF: an attacker's own code, no state, no cookie, sent to a victim's browser. Only an org-wide install
    (which Slack's admin page starts without state) may arrive that way."""
    slack.set_installation(team_id="TATTACK", team_name="Attacker's workspace")
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=CALLBACK)
    configure(monkeypatch, aws, slack, SLACK_ALLOW_STATELESS_ORG_INSTALL="true")
    app = App(handlers=handlers, slack=slack, client=aws)

    response = app.callback({"code": code}, cookies=[])

    assert response["statusCode"] == 400
    assert "start the install from the install link" in response["body"]
    assert app.secret_names() == []
    assert callback_outcomes(capsys.readouterr().out) == ["stateless_not_org"]
    assert len(slack.requests) == 1  # the code was exchanged (and is spent); its tokens were not kept


def test_stateless_org_install_is_refused_by_default_and_accepted_when_enabled(
    aws: Any, slack: Any, handlers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack.set_installation(team_id=None, enterprise_id="E0001", is_enterprise_install=True)
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=CALLBACK)
    configure(monkeypatch, aws, slack)
    app = App(handlers=handlers, slack=slack, client=aws)
    refused = app.callback({"code": code}, cookies=[])
    assert refused["statusCode"] == 400 and app.secret_names() == []

    monkeypatch.setenv("SLACK_ALLOW_STATELESS_ORG_INSTALL", "true")
    from slack_tokens import entrypoints

    entrypoints.reset()
    assert app.callback({"code": code}, cookies=[])["statusCode"] == 200
    assert app.secret_names() == ["slack/tokens/enterprise/E0001/bot"]


def test_a_pair_that_cannot_be_stored_does_not_stop_the_other(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from botocore.exceptions import ClientError

    from slack_tokens import entrypoints

    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    install = app.install()  # builds the cached client the callback will use
    client = entrypoints.secretsmanager_client()

    def deny_bot_pair(params: dict[str, Any], **_: Any) -> None:
        if json.loads(params["body"])["Name"].endswith("/bot"):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "CreateSecret")

    client.meta.events.register("before-call.secrets-manager.CreateSecret", deny_bot_pair)
    try:
        response = app.callback(app.authorize(install))
    finally:
        client.meta.events.unregister("before-call.secrets-manager.CreateSecret", deny_bot_pair)

    assert response["statusCode"] == 500 and "could not save" in response["body"]
    assert app.secret_names() == ["slack/tokens/team/T0001/user/U0001"]


# -- the bot's bot_id (auth.test after the pair is stored) --------------------------------------------------------


BOT_SECRET = "slack/tokens/team/T0001/bot"


def test_the_stored_bot_pair_gets_its_bot_id_from_auth_test_with_the_bot_token(app: App) -> None:
    assert app.full_install()["statusCode"] == 200

    stored = app.stored(BOT_SECRET)
    assert stored["bot_id"] == app.slack.installation.bot_id
    assert stored["installer_user_id"] == "U0001"
    (call,) = [r for r in app.slack.requests if r.method == "auth.test"]
    assert call.headers["authorization"] == f"Bearer {stored['access_token']}"  # the bot token, not the app's
    assert call.basic_auth is None
    meta = app.client.describe_secret(SecretId=BOT_SECRET)
    current = [v for v, stages in meta["VersionIdsToStages"].items() if "AWSCURRENT" in stages]
    pending = [v for v, stages in meta["VersionIdsToStages"].items() if "AWSPENDING" in stages]
    assert pending == current  # nothing left half-done for the rotator to find


@pytest.mark.parametrize(
    "fault",
    [{"status": 500, "times": 8}, {"error": "invalid_auth"}, {"body": b'{"ok": true, "bot_id": "not an id!"}'}],
    ids=["slack-down", "refused", "malformed"],
)
def test_an_install_still_succeeds_when_auth_test_fails(app: App, fault: dict[str, Any]) -> None:
    app.slack.fail_next("auth.test", **fault)

    response = app.full_install()

    assert response["statusCode"] == 200 and "Installed" in response["body"]
    stored = app.stored(BOT_SECRET)
    assert stored["bot_id"] is None and stored["status"] == Status.ACTIVE
    assert app.slack.is_refresh_token_valid(stored["refresh_token"])


def test_a_reinstall_that_lands_before_the_bot_id_is_written_is_never_overwritten(app: App) -> None:
    import json

    newer: dict[str, Any] = {}

    def reinstall_meanwhile(body: dict[str, Any]) -> dict[str, Any]:
        # Another install of the same workspace stores its pair while our auth.test is in flight.
        newer.update(app.stored(BOT_SECRET), access_token="xoxe.xoxb-newer-install", refresh_token="xoxe-1-newer")
        app.client.put_secret_value(SecretId=BOT_SECRET, SecretString=json.dumps(newer))
        return body

    app.slack.fail_next("auth.test", rewrite=reinstall_meanwhile)

    assert app.full_install()["statusCode"] == 200

    stored = app.stored(BOT_SECRET)
    assert stored["access_token"] == "xoxe.xoxb-newer-install" and stored["refresh_token"] == "xoxe-1-newer"
