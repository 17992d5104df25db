"""Typed configuration, read once per cold start from the function's environment, failing fast.

Only ids and switches live in the environment; the client secret and the state key are read from Secrets
Manager (``store.ConfigSecrets``). ``Settings.from_env`` raises one ``ConfigError`` naming every problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from slack_tokens.errors import ConfigError

DEFAULT_PREFIX = "slack/tokens/"
DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
DEFAULT_ROTATION_MARGIN = 7200
# Slack allows 600 oauth.v2.access calls a minute per app; keep a little for installs happening meanwhile.
DEFAULT_REFRESH_PER_MINUTE = 590
DEFAULT_ROTATION_WORKERS = 8
# oauth.v2.exchange is a Tier 3 method: 50+ calls a minute.
DEFAULT_EXCHANGE_PER_MINUTE = 50
# A dead run blocks the others for at most this long; a live one renews its claim every third of it.
DEFAULT_GUARD_TTL = 15
_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,200}/$")
_SCOPE = re.compile(r"^[a-z0-9_.:-]+$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class AppCredentials:
    """The Slack app's OAuth client credentials (from the app credentials secret)."""

    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def from_secret_string(cls, raw: str) -> AppCredentials:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ConfigError("the app credentials secret must be a JSON object with client_id and client_secret")
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        missing = [
            name
            for name, value in (("client_id", client_id), ("client_secret", client_secret))
            if not isinstance(value, str) or not value.strip()
        ]
        if missing:
            raise ConfigError(f"the app credentials secret lacks {', '.join(missing)}")
        assert isinstance(client_id, str) and isinstance(client_secret, str)  # noqa: S101 - narrowed above
        return cls(client_id.strip(), client_secret.strip())


@dataclass(frozen=True)
class Settings:
    app_secret_id: str
    state_secret_id: str | None
    token_prefix: str = DEFAULT_PREFIX
    api_url: str = DEFAULT_API_URL
    authorize_url: str = DEFAULT_AUTHORIZE_URL
    scopes: tuple[str, ...] = ()
    user_scopes: tuple[str, ...] = ()
    redirect_uri: str | None = None
    pkce_enabled: bool = False
    allow_stateless_org_install: bool = False
    success_url: str | None = None
    failure_url: str | None = None
    rotation_margin_seconds: int = DEFAULT_ROTATION_MARGIN
    refresh_per_minute: int = DEFAULT_REFRESH_PER_MINUTE
    rotation_workers: int = DEFAULT_ROTATION_WORKERS
    exchange_per_minute: int = DEFAULT_EXCHANGE_PER_MINUTE
    guard_table: str | None = None
    guard_ttl_seconds: int = DEFAULT_GUARD_TTL
    used_state_table: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, need_state: bool = False, need_guard: bool = False) -> Settings:
        """Validate the environment. ``need_state``: the function runs the install flow (needs the state key);
        ``need_guard``: it rotates or exchanges pairs (needs the run guard's table)."""
        problems: list[str] = []

        def text(name: str) -> str:
            return env.get(name, "").strip()

        def required(name: str) -> str:
            value = text(name)
            if not value:
                problems.append(f"{name} is required")
            return value

        def flag(name: str) -> bool:
            value = text(name).lower()
            if value not in _TRUE | _FALSE:
                problems.append(f"{name} must be true or false, not {value!r}")
            return value in _TRUE

        def url(name: str, default: str | None) -> str | None:
            value = text(name) or default
            if value is not None and not absolute_url(value):
                problems.append(
                    f"{name} must be an https URL, absolute and with a host (http only for 127.0.0.1/localhost)"
                )
            return value

        def scopes(name: str) -> tuple[str, ...]:
            values = tuple(s.strip() for s in text(name).split(",") if s.strip())
            bad = [s for s in values if not _SCOPE.fullmatch(s)]
            if bad:
                problems.append(f"{name} has invalid scopes: {', '.join(bad)}")
            return values

        app_secret_id = required("SLACK_APP_SECRET_ID")
        state_secret_id = required("SLACK_STATE_SECRET_ID") if need_state else (text("SLACK_STATE_SECRET_ID") or None)
        prefix = text("TOKEN_SECRET_PREFIX") or DEFAULT_PREFIX
        if not _PREFIX.fullmatch(prefix):
            problems.append("TOKEN_SECRET_PREFIX must use only letters, digits and /_+=.@- and end with /")
        margin_text = text("ROTATION_MARGIN_SECONDS") or str(DEFAULT_ROTATION_MARGIN)
        margin = int(margin_text) if margin_text.isdigit() else -1
        if not 300 <= margin <= 39600:
            problems.append("ROTATION_MARGIN_SECONDS must be an integer from 300 to 39600 (11 hours)")

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = text(name) or str(default)
            if not raw.isdigit() or not low <= int(raw) <= high:
                problems.append(f"{name} must be an integer from {low} to {high}")
                return default
            return int(raw)

        settings = cls(
            app_secret_id=app_secret_id,
            state_secret_id=state_secret_id,
            token_prefix=prefix,
            api_url=url("SLACK_API_URL", DEFAULT_API_URL) or DEFAULT_API_URL,
            authorize_url=url("SLACK_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL) or DEFAULT_AUTHORIZE_URL,
            scopes=scopes("SLACK_SCOPES"),
            user_scopes=scopes("SLACK_USER_SCOPES"),
            redirect_uri=url("SLACK_REDIRECT_URI", None),
            pkce_enabled=flag("SLACK_PKCE_ENABLED"),
            allow_stateless_org_install=flag("SLACK_ALLOW_STATELESS_ORG_INSTALL"),
            success_url=url("INSTALL_SUCCESS_URL", None),
            failure_url=url("INSTALL_FAILURE_URL", None),
            rotation_margin_seconds=margin,
            refresh_per_minute=integer("SLACK_REFRESH_PER_MINUTE", DEFAULT_REFRESH_PER_MINUTE, 1, 600),
            rotation_workers=integer("ROTATION_WORKERS", DEFAULT_ROTATION_WORKERS, 1, 64),
            exchange_per_minute=integer("SLACK_EXCHANGE_PER_MINUTE", DEFAULT_EXCHANGE_PER_MINUTE, 1, 600),
            guard_table=required("GUARD_TABLE_NAME") if need_guard else (text("GUARD_TABLE_NAME") or None),
            guard_ttl_seconds=integer("GUARD_TTL_SECONDS", DEFAULT_GUARD_TTL, 5, 60),
            used_state_table=text("USED_STATE_TABLE_NAME") or None,
        )
        if need_state and not settings.scopes and not settings.user_scopes:
            problems.append("set SLACK_SCOPES and/or SLACK_USER_SCOPES (Slack refuses an install with no scopes)")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return settings


def absolute_url(value: str) -> bool:
    """An absolute ``https`` URL with a host (``http`` only for this machine), nothing a browser would read as a
    relative or scheme-relative link (``https:evil.com``, ``https://``, ``https:///path``, spaces)."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return False
    local = parts.hostname in {"127.0.0.1", "localhost"}
    return parts.scheme == "https" or (parts.scheme == "http" and local)
