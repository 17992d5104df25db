"""Typed configuration, read once per cold start from the function's environment, failing fast.

Only ids and switches live in the environment; the client secret and the state key are read from Secrets
Manager (``app_secrets.AppSecrets``). ``Settings.from_env`` raises one ``ConfigError`` naming every problem.
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
        read = _EnvReader(env)
        settings = cls(
            app_secret_id=read.required("SLACK_APP_SECRET_ID"),
            state_secret_id=read.name("SLACK_STATE_SECRET_ID", required=need_state),
            token_prefix=read.prefix("TOKEN_SECRET_PREFIX"),
            rotation_margin_seconds=read.integer(
                "ROTATION_MARGIN_SECONDS", DEFAULT_ROTATION_MARGIN, 300, 39600, note=" (11 hours)"
            ),
            api_url=read.url("SLACK_API_URL", DEFAULT_API_URL),
            authorize_url=read.url("SLACK_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL),
            scopes=read.scopes("SLACK_SCOPES"),
            user_scopes=read.scopes("SLACK_USER_SCOPES"),
            redirect_uri=read.optional_url("SLACK_REDIRECT_URI"),
            pkce_enabled=read.flag("SLACK_PKCE_ENABLED"),
            allow_stateless_org_install=read.flag("SLACK_ALLOW_STATELESS_ORG_INSTALL"),
            success_url=read.optional_url("INSTALL_SUCCESS_URL"),
            failure_url=read.optional_url("INSTALL_FAILURE_URL"),
            refresh_per_minute=read.integer("SLACK_REFRESH_PER_MINUTE", DEFAULT_REFRESH_PER_MINUTE, 1, 600),
            rotation_workers=read.integer("ROTATION_WORKERS", DEFAULT_ROTATION_WORKERS, 1, 64),
            exchange_per_minute=read.integer("SLACK_EXCHANGE_PER_MINUTE", DEFAULT_EXCHANGE_PER_MINUTE, 1, 600),
            guard_table=read.name("GUARD_TABLE_NAME", required=need_guard),
            guard_ttl_seconds=read.integer("GUARD_TTL_SECONDS", DEFAULT_GUARD_TTL, 5, 60),
            used_state_table=read.name("USED_STATE_TABLE_NAME", required=False),
        )
        if need_state and not settings.scopes and not settings.user_scopes:
            read.problem("set SLACK_SCOPES and/or SLACK_USER_SCOPES (Slack refuses an install with no scopes)")
        read.raise_problems()
        return settings


class _EnvReader:
    """Reads typed values from one environment, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._problems: list[str] = []

    def problem(self, text: str) -> None:
        self._problems.append(text)

    def raise_problems(self) -> None:
        if self._problems:
            raise ConfigError("invalid configuration: " + "; ".join(self._problems))

    def text(self, name: str) -> str:
        return self._env.get(name, "").strip()

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            self.problem(f"{name} is required")
        return value

    def name(self, variable: str, *, required: bool) -> str | None:
        """A resource name (a secret id, a table): ``None`` when unset and not ``required``."""
        return self.required(variable) if required else (self.text(variable) or None)

    def flag(self, name: str) -> bool:
        value = self.text(name).lower()
        if value not in _TRUE | _FALSE:
            self.problem(f"{name} must be true or false, not {value!r}")
        return value in _TRUE

    def integer(self, name: str, default: int, low: int, high: int, *, note: str = "") -> int:
        raw = self.text(name) or str(default)
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:  # "²".isdigit() is true
            self.problem(f"{name} must be an integer from {low} to {high}{note}")
            return default
        return int(raw)

    def url(self, name: str, default: str) -> str:
        return self._checked_url(name, self.text(name) or default)

    def optional_url(self, name: str) -> str | None:
        value = self.text(name)
        return self._checked_url(name, value) if value else None

    def _checked_url(self, name: str, value: str) -> str:
        if not absolute_url(value):
            self.problem(f"{name} must be an https URL, absolute and with a host (http only for 127.0.0.1/localhost)")
        return value

    def scopes(self, name: str) -> tuple[str, ...]:
        values = tuple(s.strip() for s in self.text(name).split(",") if s.strip())
        bad = [s for s in values if not _SCOPE.fullmatch(s)]
        if bad:
            self.problem(f"{name} has invalid scopes: {', '.join(bad)}")
        return values

    def prefix(self, name: str) -> str:
        value = self.text(name) or DEFAULT_PREFIX
        if not _PREFIX.fullmatch(value):
            self.problem(f"{name} must use only letters, digits and /_+=.@- and end with /")
        return value


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
