"""The app as the tests, the benchmarks and the local tools drive it: its test credentials and names, a browser's
cookie jar, the real handlers behind a browser's and an operator's actions, and ``configure``, which sets up the
configuration secrets, tables and environment the template would give the functions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from local.template import Template
from sandbox.aws import create_table, dynamodb_client
from sandbox.fake_slack import FakeSlack
from sandbox.lambda_runtime import http_event, invoke
from slack_tokens import entrypoints
from slack_tokens.models import PairKey

CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "fake-client-secret-0123456789abcdef"
STATE_KEY = "state-key-" + "k" * 54
PREFIX = "slack/tokens/"
GUARD_TABLE = "slack-token-lifecycle-RunGuardTable-TEST"
USED_STATE_TABLE = "slack-token-lifecycle-UsedStateTable-TEST"


class Environ(Protocol):
    """Where ``configure`` sets the functions' environment (``pytest.MonkeyPatch`` undoes it afterwards)."""

    def setenv(self, name: str, value: str) -> None: ...


@dataclass
class Browser:
    """The state a browser keeps between the install redirect and the callback."""

    cookies: dict[str, str] = field(default_factory=dict)

    def cookie_list(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.cookies.items()]

    def remember(self, response: dict[str, Any]) -> None:
        for cookie in response.get("cookies", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


@dataclass
class App:
    """The deployed app as a browser and an operator see it, driven through the real handlers."""

    handlers: dict[str, ModuleType]
    slack: FakeSlack
    client: Any
    browser: Browser = field(default_factory=Browser)

    def install(self, query: dict[str, str] | None = None) -> dict[str, Any]:
        response = invoke(self.handlers["install"].lambda_handler, http_event("/slack/install", query))
        self.browser.remember(response)
        return response

    def callback(
        self, query: dict[str, str] | str, *, cookies: list[str] | None = None, timeout: float = 29.0
    ) -> dict[str, Any]:
        event = http_event(
            "/slack/oauth_redirect", query, cookies=self.browser.cookie_list() if cookies is None else cookies
        )
        response = invoke(self.handlers["oauth_callback"].lambda_handler, event, timeout_seconds=timeout)
        self.browser.remember(response)
        return response

    def authorize(self, install_response: dict[str, Any]) -> dict[str, str]:
        """What the user's click on "Allow" does: Slack redirects back with a code and the same state."""
        location = install_response["headers"]["Location"]
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        code = self.slack.grant_code(
            scope=params.get("scope", ""),
            user_scope=params.get("user_scope", ""),
            redirect_uri=params.get("redirect_uri"),
            code_challenge=params.get("code_challenge"),
        )
        return {"code": code, "state": params["state"]}

    def full_install(self) -> dict[str, Any]:
        return self.callback(self.authorize(self.install()))

    def install_teams(self, teams: list[str], *, enterprise_id: str | None = None) -> list[str]:
        """Install into each workspace in turn; returns the bot secret names."""
        for team in teams:
            self.slack.set_installation(team_id=team, team_name=f"Workspace {team}", enterprise_id=enterprise_id)
            response = self.full_install()
            if response["statusCode"] != 200:
                raise AssertionError(response["body"])
        prefix = f"{PREFIX}enterprise/{enterprise_id}/" if enterprise_id else PREFIX
        return [f"{prefix}team/{team}/bot" for team in teams]

    def rotate(self, event: dict[str, Any] | None = None, *, timeout: float = 900.0) -> dict[str, Any]:
        result: dict[str, Any] = invoke(self.handlers["rotate"].lambda_handler, event or {}, timeout_seconds=timeout)
        return result

    def current_version(self, name: str) -> str:
        versions = self.client.describe_secret(SecretId=name)["VersionIdsToStages"]
        return next(v for v, stages in versions.items() if "AWSCURRENT" in stages)

    def secret_names(self) -> list[str]:
        names: list[str] = []
        for page in self.client.get_paginator("list_secrets").paginate():
            names += [s["Name"] for s in page["SecretList"] if PairKey.from_secret_name(PREFIX, s["Name"])]
        return sorted(names)

    def stored(self, name: str) -> dict[str, Any]:
        value = self.client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
        return json.loads(value)


def configure(monkeypatch: Environ, aws: Any, slack: FakeSlack, **overrides: str) -> None:
    """Create the app's two configuration secrets and set the functions' environment, as the template does."""
    app_secret = aws.create_secret(
        Name="slack-app/credentials", SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    )
    state_secret = aws.create_secret(Name="slack-app/state-key", SecretString=STATE_KEY)
    tables = Template.load().resources  # the tables exactly as deployed
    dynamodb = dynamodb_client(aws.meta.endpoint_url)
    create_table(dynamodb, GUARD_TABLE, tables["RunGuardTable"]["Properties"])
    create_table(dynamodb, USED_STATE_TABLE, tables["UsedStateTable"]["Properties"])
    env = {
        "SLACK_APP_SECRET_ID": app_secret["ARN"],
        "SLACK_STATE_SECRET_ID": state_secret["ARN"],
        "TOKEN_SECRET_PREFIX": PREFIX,
        "SLACK_API_URL": slack.api_url,
        "SLACK_AUTHORIZE_URL": slack.authorize_url,
        "SLACK_SCOPES": "chat:write,commands",
        "SLACK_USER_SCOPES": "",
        "SLACK_REDIRECT_URI": "",
        "SLACK_PKCE_ENABLED": "false",
        "SLACK_ALLOW_STATELESS_ORG_INSTALL": "false",
        "INSTALL_SUCCESS_URL": "",
        "INSTALL_FAILURE_URL": "",
        "POWERTOOLS_METRICS_NAMESPACE": "SlackTokenLifecycleTest",
        "GUARD_TABLE_NAME": GUARD_TABLE,
        "USED_STATE_TABLE_NAME": USED_STATE_TABLE,
        **overrides,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    entrypoints.reset()
