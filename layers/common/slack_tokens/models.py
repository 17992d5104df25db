"""The project's own values: token pairs, their identity and how both map to Secrets Manager.

Pure code: no I/O, no clock (callers pass ``now``). Every value that holds a token keeps it out of ``repr`` so
that a stray log line or traceback cannot print it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from slack_tokens.errors import CorruptSecretError

TokenType = Literal["bot", "user"]
TOKEN_TYPES: tuple[TokenType, ...] = ("bot", "user")


class Status(StrEnum):
    """A pair's state: in its value (``status``), its version id and its ``slack:status`` tag."""

    ACTIVE = "active"
    NEEDS_REINSTALL = "needs_reinstall"  # Slack refused its credential for good: only a reinstall helps
    REVOKED = "revoked"  # retired: the app was uninstalled or the tokens revoked; never refreshed, no alarm


SCHEMA_VERSION = 1

# Slack ids are short upper-case alphanumerics (T…, E…, U…, W…, B…, A…). Anything else is refused before it can
# reach a secret name.
_ID = re.compile(r"^[A-Z0-9]{1,32}$")


def valid_slack_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value))


# --------------------------------------------------------------------------------------------------------------
# Identity and secret names
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairKey:
    """Which installation a token pair belongs to; decides the secret's name.

    Names under the prefix (``slack/tokens/`` by default):

    ============================================  ==========================================
    plain workspace, bot / user                    ``team/T1/bot`` / ``team/T1/user/U1``
    workspace inside an Enterprise org             ``enterprise/E1/team/T1/bot`` (``…/user/U1``)
    org-wide install (no team)                     ``enterprise/E1/bot`` (``…/user/U1``)
    ============================================  ==========================================
    """

    token_type: TokenType
    team_id: str | None
    enterprise_id: str | None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if self.token_type not in TOKEN_TYPES:
            raise ValueError(f"token_type must be bot or user, not {self.token_type!r}")
        if self.team_id is None and self.enterprise_id is None:
            raise ValueError("a token pair needs a team id or an enterprise id")
        for label, value in (("team_id", self.team_id), ("enterprise_id", self.enterprise_id)):
            if value is not None and not valid_slack_id(value):
                raise ValueError(f"{label} is not a Slack id")
        if self.token_type == "user":
            if not valid_slack_id(self.user_id):
                raise ValueError("a user token pair needs a valid user id")
        elif self.user_id is not None:
            raise ValueError("a bot token pair has no user id")

    def secret_name(self, prefix: str) -> str:
        parts: list[str] = []
        if self.enterprise_id is not None:
            parts += ["enterprise", self.enterprise_id]
        if self.team_id is not None:
            parts += ["team", self.team_id]
        parts.append(self.token_type)
        if self.user_id is not None:
            parts.append(self.user_id)
        return prefix + "/".join(parts)

    @classmethod
    def from_secret_name(cls, prefix: str, name: str) -> PairKey | None:
        """Inverse of :meth:`secret_name`; ``None`` for names this package did not make."""
        if not name.startswith(prefix):
            return None
        parts = name[len(prefix) :].split("/")
        enterprise_id = team_id = user_id = None
        if parts[:1] == ["enterprise"] and len(parts) >= 2:
            enterprise_id, parts = parts[1], parts[2:]
        if parts[:1] == ["team"] and len(parts) >= 2:
            team_id, parts = parts[1], parts[2:]
        if parts == ["bot"]:
            token_type: TokenType = "bot"
        elif len(parts) == 2 and parts[0] == "user":
            token_type, user_id = "user", parts[1]
        else:
            return None
        try:
            return cls(token_type, team_id, enterprise_id, user_id)
        except ValueError:
            return None

    def tags(self) -> dict[str, str]:
        """Identity tags set at creation so operators can find pairs by team without reading values."""
        tags: dict[str, str] = {"slack:token_type": self.token_type}
        if self.team_id:
            tags["slack:team_id"] = self.team_id
        if self.enterprise_id:
            tags["slack:enterprise_id"] = self.enterprise_id
        if self.user_id:
            tags["slack:user_id"] = self.user_id
        return tags


# --------------------------------------------------------------------------------------------------------------
# Version ids: status and expiry travel with the value
# --------------------------------------------------------------------------------------------------------------
#
# Every version this package writes gets a ClientRequestToken (= VersionId) of the form
#     <status>-<expires_at as 10 digits, or "none">-<32 hex random>
# e.g. ``active-1767225600-3f2a…``. ListSecrets returns each secret's version ids with their staging labels, so
# one paginated listing tells the rotator, for every pair, when its current access token expires, whether it
# needs a reinstall and whether a stored-but-unpromoted pair is waiting - without reading a single
# value and without a tag that could drift from the value it describes (a tag is a separate, non-atomic write).

_VERSION_ID = re.compile(r"^(active|reinstall|revoked)-(\d{10}|none)-([0-9a-f]{32})$")
_MARKERS = {Status.ACTIVE: "active", Status.NEEDS_REINSTALL: "reinstall", Status.REVOKED: "revoked"}
_STATUS_OF_MARKER = {marker: status for status, marker in _MARKERS.items()}


class VersionInfo(NamedTuple):
    status: Status
    expires_at: int | None


def new_version_id(status: Status, expires_at: int | None) -> str:
    marker = _MARKERS[status]
    expiry = "none" if expires_at is None else f"{expires_at:010d}"
    return f"{marker}-{expiry}-{os.urandom(16).hex()}"


def parse_version_id(version_id: str) -> VersionInfo | None:
    """What a version id says about its value; ``None`` for versions written by someone else."""
    match = _VERSION_ID.fullmatch(version_id)
    if match is None:
        return None
    status = _STATUS_OF_MARKER[match.group(1)]
    expiry = None if match.group(2) == "none" else int(match.group(2))
    return VersionInfo(status, expiry)


# --------------------------------------------------------------------------------------------------------------
# Token pairs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    """One secret's value (docs/secret-contract.md describes every field).

    ``refresh_token``/``expires_at`` are ``None`` for legacy tokens."""

    token_type: TokenType
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: int | None
    scope: str
    app_id: str | None
    team_id: str | None
    enterprise_id: str | None
    is_enterprise_install: bool
    bot_user_id: str | None = None
    user_id: str | None = None
    # Bot pairs: who installed the app (``authed_user.id``) and the bot's ``bot_id`` (from ``auth.test``, which the
    # code exchange does not return). slack_sdk's ``Installation`` needs the first; Bolt ignores its own events by
    # the second. Pairs stored before these existed have neither.
    installer_user_id: str | None = None
    bot_id: str | None = None
    team_name: str | None = None
    enterprise_name: str | None = None
    incoming_webhook: Mapping[str, Any] | None = field(default=None, repr=False)
    status: Status = Status.ACTIVE
    status_reason: str | None = None
    updated_at: int | None = None
    # The version id this pair was refreshed from: how a later run recognises a stored-but-unpromoted rotation.
    rotated_from: str | None = None
    # Fields written by newer versions of this package are kept as they are, so an older reader never drops them.
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> PairKey:
        user_id = self.user_id if self.token_type == "user" else None
        team_id = None if self.is_enterprise_install else self.team_id
        return PairKey(self.token_type, team_id, self.enterprise_id, user_id)

    @property
    def is_legacy(self) -> bool:
        return self.refresh_token is None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.extra)
        body.update(
            schema_version=SCHEMA_VERSION,
            token_type=self.token_type,
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            expires_at=self.expires_at,
            scope=self.scope,
            app_id=self.app_id,
            team_id=self.team_id,
            team_name=self.team_name,
            enterprise_id=self.enterprise_id,
            enterprise_name=self.enterprise_name,
            is_enterprise_install=self.is_enterprise_install,
            status=self.status,
            status_reason=self.status_reason,
            updated_at=self.updated_at,
        )
        if self.rotated_from is not None:
            body["rotated_from"] = self.rotated_from
        if self.token_type == "bot":
            body["bot_user_id"] = self.bot_user_id
            body["installer_user_id"] = self.installer_user_id
            body["bot_id"] = self.bot_id
            body["incoming_webhook"] = dict(self.incoming_webhook) if self.incoming_webhook else None
        else:
            body["user_id"] = self.user_id
        return body

    def to_secret_string(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_secret_string(cls, raw: str) -> TokenPair:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise CorruptSecretError("secret value is not JSON") from exc
        if not isinstance(body, dict):
            raise CorruptSecretError("secret value is not a JSON object")
        return cls.from_json(body)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TokenPair:
        _check(body)
        webhook, updated_at = body.get("incoming_webhook"), body.get("updated_at")
        return cls(
            token_type=body["token_type"],
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=body.get("expires_at"),
            scope=_str_or(body.get("scope"), ""),
            is_enterprise_install=bool(body.get("is_enterprise_install", False)),
            incoming_webhook=webhook if isinstance(webhook, dict) else None,
            status=Status(body.get("status", Status.ACTIVE)),
            updated_at=updated_at if isinstance(updated_at, int) else None,
            extra={k: v for k, v in body.items() if k not in _KNOWN_KEYS},
            **{name: _opt_str(body.get(name)) for name in _OPTIONAL_STRINGS},
        )

    def with_status(self, status: Status, reason: str | None, now: int) -> TokenPair:
        return replace(self, status=status, status_reason=reason, updated_at=now)


# The JSON keys this version writes: the field names (``extra`` holds the rest) and the schema version.
_KNOWN_KEYS = frozenset(f.name for f in fields(TokenPair) if f.name != "extra") | {"schema_version"}


# Optional string fields: an empty or non-string value reads as absent.
_OPTIONAL_STRINGS = (
    "app_id",
    "team_id",
    "enterprise_id",
    "bot_user_id",
    "installer_user_id",
    "bot_id",
    "user_id",
    "team_name",
    "enterprise_name",
    "status_reason",
    "rotated_from",
)


def _check(body: Mapping[str, Any]) -> None:
    """Refuse a value whose required fields are missing or of the wrong type (``CorruptSecretError``)."""
    if body.get("token_type") not in TOKEN_TYPES:
        raise CorruptSecretError("token_type must be 'bot' or 'user'")
    access_token, refresh_token, expires_at = (
        body.get("access_token"),
        body.get("refresh_token"),
        body.get("expires_at"),
    )
    if not isinstance(access_token, str) or not access_token:
        raise CorruptSecretError("access_token is missing")
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise CorruptSecretError("refresh_token must be a string or null")
    if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, int)):
        raise CorruptSecretError("expires_at must be integer Unix seconds or null")
    if body.get("status", Status.ACTIVE) not in tuple(Status):  # (a tuple: an unhashable value is just unequal)
        raise CorruptSecretError("status must be 'active', 'needs_reinstall' or 'revoked'")


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _str_or(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


class OAuthAccess(NamedTuple):
    """A parsed ``oauth.v2.access`` (authorization_code) or ``oauth.v2.exchange`` answer: zero, one or two pairs."""

    bot: TokenPair | None
    user: TokenPair | None
    app_id: str | None
    team_id: str | None
    enterprise_id: str | None
    is_enterprise_install: bool

    def pairs(self) -> list[TokenPair]:
        return [pair for pair in (self.bot, self.user) if pair is not None]


@dataclass(frozen=True)
class RefreshedToken:
    """A parsed ``grant_type=refresh_token`` answer: one new access token and its new refresh token."""

    token_type: TokenType
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: int
    scope: str | None
