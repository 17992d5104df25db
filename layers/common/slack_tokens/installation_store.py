"""The app's own code reads the tokens through slack_sdk's ``InstallationStore``: Bolt, or a plain ``WebClient``.

    from slack_bolt import App
    from slack_tokens.installation_store import SecretsManagerInstallationStore

    app = App(signing_secret=..., installation_store=SecretsManagerInstallationStore(), process_before_response=True)
    app.enable_token_revocation_listeners()  # app_uninstalled / tokens_revoked retire the pairs

Reads go to the stack's token-pair secrets (``TOKEN_SECRET_PREFIX``, default ``slack/tokens/``), always the
current version, and are cached in the warm process for ``cache_seconds`` (60), never past the access
token's own expiry less a minute: a token the rotator replaced is picked up within that time (Slack keeps the
previous access token working meanwhile). What ``find_bot`` / ``find_installation`` return **never carries a refresh
token**, so Bolt never refreshes on its own: only the stack's rotator refreshes, and a refresh token is never used
twice. A missing, retired (``revoked``) or ``needs_reinstall`` pair is ``None`` (logged once per process, never with
a token).

``delete_bot`` / ``delete_installation`` / ``delete_all`` (what Bolt's token revocation listeners call) **retire**
pairs: status ``revoked`` in the value and the ``slack:status`` tag, never refreshed again, no alarm, and the secret
scheduled for deletion after ``recovery_window_days`` (7). A later install of the workspace through the stack's
callback restores it, active. Retiring is idempotent and a compare-and-swap: a concurrent rotation is retried over,
a concurrent reinstall wins.

``save`` refuses: installs go through the stack's own callback, which stores pairs the rotator can keep fresh.

slack_sdk is needed by this module only (``pip install "slack-token-lifecycle[bolt]"``); the stack's own functions
never import it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore

from slack_tokens.config import DEFAULT_PREFIX
from slack_tokens.errors import SlackTokensError
from slack_tokens.models import PairKey, Status, TokenPair

DEFAULT_CACHE_SECONDS = 60.0
DEFAULT_RECOVERY_WINDOW_DAYS = 7
_EXPIRY_MARGIN = 60.0  # never hand out a token cached closer than this to its expiry
_WRITE_SECONDS = 30.0  # how long one retirement may keep retrying Secrets Manager
_SAVE_REFUSED = (
    "SecretsManagerInstallationStore does not save installations: installs go through the stack's /slack/install "
    "and /slack/oauth_redirect, which store pairs the rotator keeps fresh"
)


class SaveRefusedError(SlackTokensError):
    """Installs go through the stack's OAuth callback; this store does not write installations."""


class SecretsManagerInstallationStore(InstallationStore):
    """slack_sdk's synchronous ``InstallationStore`` over the stack's token-pair secrets (see the module docs)."""

    def __init__(
        self,
        *,
        prefix: str | None = None,
        client: Any = None,
        cache_seconds: float | None = None,
        recovery_window_days: int | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        from slack_tokens.handover import Handover  # noqa: PLC0415 - the write side is needed only to retire
        from slack_tokens.store import TokenStore, make_client  # noqa: PLC0415

        self._prefix = prefix or os.environ.get("TOKEN_SECRET_PREFIX") or DEFAULT_PREFIX
        self._store = TokenStore(client or make_client(), self._prefix)
        self._handover = Handover(self._store, clock=clock)
        self._cache_seconds = _setting(cache_seconds, "TOKEN_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
        days = _setting(recovery_window_days, "RETIRED_PAIR_RECOVERY_DAYS", DEFAULT_RECOVERY_WINDOW_DAYS)
        if not 7 <= days <= 30:
            raise ValueError("recovery_window_days must be from 7 to 30 (Secrets Manager's recovery window)")
        self._recovery_days = int(days)
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, TokenPair | None]] = {}
        self._told: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._logger = logging.getLogger(__name__)

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    # -- reads -------------------------------------------------------------------------------------------------

    def find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        pair = self._bot_pair(enterprise_id, team_id, is_enterprise_install)
        if pair is None:
            return None
        return Bot(
            app_id=pair.app_id,
            enterprise_id=pair.enterprise_id,
            enterprise_name=pair.enterprise_name,
            team_id=pair.team_id,
            team_name=pair.team_name,
            bot_token=pair.access_token,
            bot_id=pair.bot_id or "",
            bot_user_id=pair.bot_user_id or "",
            bot_scopes=pair.scope,
            bot_refresh_token=None,  # never: only the rotator refreshes
            bot_token_expires_at=pair.expires_at,
            is_enterprise_install=pair.is_enterprise_install,
            installed_at=float(pair.updated_at or self._clock()),
        )

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        bot = self._bot_pair(enterprise_id, team_id, is_enterprise_install)
        owner = user_id or (bot.installer_user_id if bot is not None else None)
        user = self._user_pair(enterprise_id, team_id, owner, is_enterprise_install, bot) if owner else None
        if (bot is None and user is None) or (user_id is not None and user is None):
            return None  # asked for a user's installation: without that user's pair there is none
        base = bot or user
        assert base is not None  # noqa: S101 - one of the two, checked above
        return Installation(
            app_id=base.app_id,
            enterprise_id=base.enterprise_id,
            enterprise_name=base.enterprise_name,
            team_id=base.team_id,
            team_name=base.team_name,
            user_id=user.user_id if user is not None and user.user_id else (owner or ""),
            is_enterprise_install=base.is_enterprise_install,
            token_type="bot" if bot else "user",
            installed_at=float(base.updated_at or self._clock()),
            **_bot_fields(bot),
            **_user_fields(user),
        )

    # -- retirement --------------------------------------------------------------------------------------------

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        for name in self._names(enterprise_id, team_id, "bot", None, is_enterprise_install=None):
            self._retire(name, "the bot's tokens were revoked or the app was uninstalled")

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Retire ``user_id``'s pair; without ``user_id``, every user pair of the workspace (or org)."""
        if user_id is not None:
            for name in self._names(enterprise_id, team_id, "user", user_id, is_enterprise_install=None):
                self._retire(name, "the user's tokens were revoked or the app was uninstalled")
            return
        for name in self._user_pair_names(enterprise_id, team_id):
            self._retire(name, "the app was uninstalled")

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        self.delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    def save(self, installation: Installation) -> None:
        raise SaveRefusedError(_SAVE_REFUSED)

    def save_bot(self, bot: Bot) -> None:
        raise SaveRefusedError(_SAVE_REFUSED)

    # -- lookups -----------------------------------------------------------------------------------------------

    def _bot_pair(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> TokenPair | None:
        return self._first(self._names(enterprise_id, team_id, "bot", None, is_enterprise_install))

    def _user_pair(
        self,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str,
        is_enterprise_install: bool | None,
        bot: TokenPair | None,
    ) -> TokenPair | None:
        if bot is not None and bot.is_enterprise_install:  # the org's pair was found: its users are the org's too
            is_enterprise_install = True
        return self._first(self._names(enterprise_id, team_id, "user", user_id, is_enterprise_install))

    def _names(
        self,
        enterprise_id: str | None,
        team_id: str | None,
        token_type: str,
        user_id: str | None,
        is_enterprise_install: bool | None,
    ) -> list[str]:
        """Where that pair may live, most specific first: a workspace's own pair, then (inside an org) the org-wide
        install's. Ids that are not Slack ids give no name at all."""
        keys: list[tuple[str | None, str | None]] = []
        if not is_enterprise_install and team_id:
            keys.append((team_id, enterprise_id))
        if enterprise_id:
            keys.append((None, enterprise_id))
        names = []
        for team, enterprise in keys:
            try:
                key = PairKey(token_type, team, enterprise, user_id)  # type: ignore[arg-type]
            except ValueError:
                continue
            names.append(key.secret_name(self._prefix))
        return names

    def _user_pair_names(self, enterprise_id: str | None, team_id: str | None) -> list[str]:
        found: list[str] = []
        for bot_name in self._names(enterprise_id, team_id, "bot", None, is_enterprise_install=None):
            under = bot_name[len(self._prefix) : -len("bot")] + "user/"
            found += [meta.name for meta in self._store.list_pairs(under) if not meta.deleted]
        return found

    def _first(self, names: list[str]) -> TokenPair | None:
        for name in names:
            pair = self._cached(name)
            if pair is not None:
                return pair
        return None

    def _cached(self, name: str) -> TokenPair | None:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        pair = self._read(name)
        until = now + self._cache_seconds
        if pair is not None and pair.expires_at is not None:
            until = min(until, now + pair.expires_at - self._clock() - _EXPIRY_MARGIN)
        with self._lock:
            self._cache[name] = (until, pair)
        return pair

    def _read(self, name: str) -> TokenPair | None:
        from slack_tokens.errors import SecretNotFoundError  # noqa: PLC0415 - next to its one use

        try:
            pair = self._store.read(name).pair
        except SecretNotFoundError:
            return None  # not installed (or deleted): the normal answer for most lookups, not worth a log line
        if pair.status != Status.ACTIVE:
            self._tell_once(name, pair.status)
            return None
        return pair

    def _retire(self, name: str, reason: str) -> None:
        outcome = self._handover.retire(
            name, reason, recovery_days=self._recovery_days, end=self._monotonic() + _WRITE_SECONDS
        )
        with self._lock:
            self._cache.pop(name, None)
        self._logger.info("token pair retirement: %s %s", name, outcome.result)

    def _tell_once(self, name: str, status: str) -> None:
        with self._lock:
            if (name, status) in self._told:
                return
            self._told.add((name, status))
        self._logger.warning("token pair %s is %s: no token for it until the workspace installs again", name, status)


def _bot_fields(bot: TokenPair | None) -> dict[str, Any]:
    """An ``Installation``'s bot part (and its incoming webhook): never the refresh token (only the rotator
    refreshes)."""
    webhook = dict(bot.incoming_webhook or {}) if bot is not None else {}
    return {
        "bot_token": bot.access_token if bot else None,
        "bot_id": bot.bot_id if bot else None,
        "bot_user_id": bot.bot_user_id if bot else None,
        "bot_scopes": bot.scope if bot else "",
        "bot_refresh_token": None,
        "bot_token_expires_at": bot.expires_at if bot else None,
        "incoming_webhook_url": webhook.get("url"),
        "incoming_webhook_channel": webhook.get("channel"),
        "incoming_webhook_channel_id": webhook.get("channel_id"),
        "incoming_webhook_configuration_url": webhook.get("configuration_url"),
    }


def _user_fields(user: TokenPair | None) -> dict[str, Any]:
    """An ``Installation``'s user token part: never the refresh token."""
    return {
        "user_token": user.access_token if user else None,
        "user_scopes": user.scope if user else "",
        "user_refresh_token": None,
        "user_token_expires_at": user.expires_at if user else None,
    }


def _setting(given: float | None, variable: str, default: float) -> float:
    if given is not None:
        return given
    raw = os.environ.get(variable, "").strip()
    return float(raw) if raw else default


__all__ = [
    "DEFAULT_CACHE_SECONDS",
    "DEFAULT_RECOVERY_WINDOW_DAYS",
    "SaveRefusedError",
    "SecretsManagerInstallationStore",
]
