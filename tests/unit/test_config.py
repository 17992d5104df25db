"""Typed configuration, validated once, naming every problem."""

from __future__ import annotations

import pytest

from slack_tokens.config import AppCredentials, Settings
from slack_tokens.errors import ConfigError

BASE = {"SLACK_APP_SECRET_ID": "app", "SLACK_STATE_SECRET_ID": "state", "SLACK_SCOPES": "chat:write, commands"}


def test_scopes_are_split_on_commas_and_trimmed() -> None:
    """The defaults themselves are checked against the template's (tests/unit/test_template.py)."""
    settings = Settings.from_env(BASE | {"SLACK_USER_SCOPES": " search:read ,users:read"}, need_state=True)

    assert settings.scopes == ("chat:write", "commands")
    assert settings.user_scopes == ("search:read", "users:read")
    assert Settings.from_env(BASE).user_scopes == ()


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "SLACK_PKCE_ENABLED": "maybe",
                "TOKEN_SECRET_PREFIX": "no-slash",
                "SLACK_API_URL": "http://slack.example/api/",
                "ROTATION_MARGIN_SECONDS": "ten",
                "SLACK_SCOPES": "chat:write,DROP TABLE",
            },
            need_state=True,
        )
    message = str(caught.value)
    for fragment in (
        "SLACK_APP_SECRET_ID is required",
        "SLACK_STATE_SECRET_ID is required",
        "SLACK_PKCE_ENABLED",
        "TOKEN_SECRET_PREFIX",
        "SLACK_API_URL must be an https URL",
        "ROTATION_MARGIN_SECONDS",
        "invalid scopes: DROP TABLE",
    ):
        assert fragment in message


def test_install_functions_need_scopes() -> None:
    with pytest.raises(ConfigError, match="SLACK_SCOPES"):
        Settings.from_env({"SLACK_APP_SECRET_ID": "app", "SLACK_STATE_SECRET_ID": "state"}, need_state=True)


def test_http_is_allowed_only_on_loopback_and_flags_parse() -> None:
    settings = Settings.from_env(
        BASE
        | {
            "SLACK_API_URL": "http://127.0.0.1:9000/api/",
            "SLACK_PKCE_ENABLED": "TRUE",
            "SLACK_REDIRECT_URI": "http://localhost:3000/slack/oauth_redirect",
        }
    )
    assert settings.api_url == "http://127.0.0.1:9000/api/" and settings.pkce_enabled
    assert settings.redirect_uri == "http://localhost:3000/slack/oauth_redirect"


def test_state_secret_is_optional_for_functions_that_do_not_install() -> None:
    assert Settings.from_env({"SLACK_APP_SECRET_ID": "app"}).state_secret_id is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "JSON object"),
        ('["a"]', "JSON object"),
        ('{"client_id": "1.2"}', "lacks client_secret"),
        ('{"client_id": " ", "client_secret": 3}', "lacks client_id, client_secret"),
    ],
)
def test_app_credentials_are_validated(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AppCredentials.from_secret_string(raw)


def test_app_credentials_hide_the_secret() -> None:
    credentials = AppCredentials.from_secret_string('{"client_id": "1.2", "client_secret": "s3cr3t-value"}')
    assert credentials.client_id == "1.2" and "s3cr3t-value" not in repr(credentials)


@pytest.mark.parametrize(
    "url",
    [
        "https:evil.com",  # no "//": a browser reads it as a path on the current site
        "https://",
        "https:///welcome",
        "//evil.com/welcome",
        "evil.com/welcome",
        "http://evil.com/welcome",
        "http://localhost.evil.com/",
        "https://user@evil.com/",
        "https://good.example/wel come",
        "https://good.example:99999/",
        "https://good.example/\x00",
        "javascript:alert(1)",
    ],
)
def test_url_settings_must_be_absolute_https_urls_with_a_host(url: str) -> None:
    for name in ("INSTALL_SUCCESS_URL", "INSTALL_FAILURE_URL", "SLACK_REDIRECT_URI", "SLACK_API_URL"):
        with pytest.raises(ConfigError, match=f"{name} must be an https URL"):
            Settings.from_env(BASE | {name: url}, need_state=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://good.example/welcome#done",
        "https://good.example:8443/a?b=1",
        "http://localhost:3000/x",
        "http://127.0.0.1/",
    ],
)
def test_absolute_urls_with_a_host_are_accepted(url: str) -> None:
    assert Settings.from_env(BASE | {"INSTALL_SUCCESS_URL": url}, need_state=True).success_url == url


@pytest.mark.parametrize("raw", ["²", "١٢", "3²", "-1", "1e3"])
def test_a_number_setting_that_is_not_plain_ascii_digits_is_a_config_error(raw: str) -> None:
    # str.isdigit() is true for "²" and Arabic-Indic digits; int() refuses the first, so a check on isdigit alone
    # crashed with ValueError instead of naming the setting.
    with pytest.raises(ConfigError, match="SLACK_REFRESH_PER_MINUTE must be an integer"):
        Settings.from_env({**BASE, "SLACK_REFRESH_PER_MINUTE": raw}, need_guard=True)
