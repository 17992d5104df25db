"""The one module that speaks HTTP to Slack (urllib3).

Calls ``oauth.v2.access`` (authorization_code and refresh_token grants) and ``oauth.v2.exchange`` with the
client credentials in an HTTP Basic header and a form-encoded body, and ``auth.test`` with a bot token (the
callback learns the bot's ``bot_id`` that way), and turns every answer into the project's models or typed errors
(``slack_tokens.errors``).

Retry policy, per method (every retry stays inside the ``deadline`` the caller passes):

===========================  ===========================================================================
all methods                   HTTP 429: wait ``Retry-After`` (or 1 s) if the deadline allows, then retry.
                              HTTP 5xx, the retryable error codes (ratelimited, internal_error, fatal_error,
                              service_unavailable, request_timeout) and connection failures before the
                              request left: retry with capped, jittered exponential backoff.
code (authorization_code)     answer lost after sending (read timeout, reset): retried. The only outcomes are a
                              pair (the code had not been used) or ``invalid_code``; neither can be worse.
auth.test                     a read: an answer lost after sending is asked again; not paced by the limiter.
refresh (refresh_token)       answer lost after sending: retried at once with the same refresh token. Slack
                              keeps a used refresh token valid for a short grace period and a prompt retry is the
                              only way to get a pair whose answer was lost.
exchange (oauth.v2.exchange)  nothing is repeated once the request was sent, except a rate limit (Slack did not
                              act): a lost answer, a 5xx or ``internal_error`` may follow an exchange Slack did,
                              and a legacy token can be exchanged once (a second call can only say
                              ``token_already_exchanged``). The caller is told; the legacy token keeps working.
===========================  ===========================================================================
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from slack_tokens import errors
from slack_tokens.models import OAuthAccess, RefreshedToken, TokenPair, TokenType, valid_slack_id

ACCESS = "oauth.v2.access"
EXCHANGE = "oauth.v2.exchange"
AUTH_TEST = "auth.test"

_MAX_BODY = 1 << 20  # Slack's OAuth answers are a few hundred bytes; anything near this is not Slack


Gate = Callable[[], bool]  # asked before each attempt: may this caller still send? (the rotator's run guard)


class RateLimiter(Protocol):
    """Client-side pacing shared by concurrent callers (see ``slack_tokens.ratelimit``)."""

    def acquire(self, deadline: float) -> bool: ...

    def pause(self, seconds: float) -> None: ...


class RetryPolicy(NamedTuple):
    max_attempts: int = 4
    backoff_base: float = 0.25
    backoff_cap: float = 4.0
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    # Start an attempt only when its full timeouts fit before the deadline. The rotator and the exchange need it:
    # an attempt cut short by the deadline can lose an answer Slack acted on (a new pair seen by nobody).
    whole_attempts: bool = False
    # Rate-limited answers (Slack did not act) that may be waited out without counting as attempts. The rotator and
    # the exchange share the app's budget with every install: they wait for it, within their deadline.
    rate_limit_retries: int = 0

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take."""
        return self.connect_timeout + self.read_timeout


class SlackClient:
    """Slack's OAuth methods. Build once per cold start; safe to share between threads."""

    def __init__(
        self,
        api_url: str,
        *,
        pool: urllib3.PoolManager | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._pool = pool or urllib3.PoolManager(num_pools=2, maxsize=16, retries=False)
        self._policy = policy or RetryPolicy()
        self._limiter = limiter
        self._monotonic = monotonic
        self._now = now
        self._sleep = sleep

    # -- public methods ----------------------------------------------------------------------------------------

    def exchange_code(
        self,
        *,
        client_id: str,
        client_secret: str,
        code: str,
        redirect_uri: str | None,
        code_verifier: str | None = None,
        deadline: float,
    ) -> OAuthAccess:
        """``oauth.v2.access`` with ``grant_type=authorization_code``."""
        fields = {"grant_type": "authorization_code", "code": code}
        if redirect_uri:
            fields["redirect_uri"] = redirect_uri
        if code_verifier:
            fields["code_verifier"] = code_verifier
        body = self._call(ACCESS, fields, _basic(client_id, client_secret), deadline=deadline, retry_lost_answer=True)
        return parse_oauth_access(body, now=int(self._now()), method=ACCESS)

    def refresh(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_type: TokenType,
        deadline: float,
        gate: Gate | None = None,
        wait_out_rate_limits: bool = True,
    ) -> RefreshedToken:
        """``oauth.v2.access`` with ``grant_type=refresh_token``: returns ONE new access + refresh token, which must
        be of ``token_type`` (the type of the pair refreshed) and complete, or the answer is refused.
        ``wait_out_rate_limits=False``: rate limits count as attempts (a caller asking again on its own clock)."""
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        body = self._call(
            ACCESS,
            fields,
            _basic(client_id, client_secret),
            deadline=deadline,
            retry_lost_answer=True,
            gate=gate,
            patient=wait_out_rate_limits,
        )
        return parse_refresh(body, now=int(self._now()), token_type=token_type)

    def exchange_legacy_token(
        self, *, client_id: str, client_secret: str, token: str, deadline: float, gate: Gate | None = None
    ) -> OAuthAccess:
        """``oauth.v2.exchange``: a legacy xoxb/xoxp token becomes an expiring pair. Never repeated blindly."""
        body = self._call(
            EXCHANGE,
            {"token": token},
            _basic(client_id, client_secret),
            deadline=deadline,
            retry_lost_answer=False,
            gate=gate,
        )
        return parse_oauth_access(body, now=int(self._now()), method=EXCHANGE)

    def bot_id(self, *, token: str, deadline: float) -> str:
        """``auth.test`` with a bot token: the bot's ``bot_id``, which the code exchange does not return. A read, so
        a lost answer is simply asked again; not paced (it has its own rate limit, not ``oauth.v2.access``'s)."""
        headers = {"Authorization": f"Bearer {token}"}
        body = self._call(AUTH_TEST, {}, headers, deadline=deadline, retry_lost_answer=True, paced=False)
        bot_id = _id(body.get("bot_id"), AUTH_TEST, "bot id")
        if bot_id is None:
            raise _malformed(AUTH_TEST, "bot id")
        return bot_id

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take: a caller that must write Slack's answer keeps this much time for it."""
        return self._policy.attempt_seconds

    # -- transport ---------------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        fields: Mapping[str, str],
        authorization: Mapping[str, str],
        *,
        deadline: float,
        retry_lost_answer: bool,
        gate: Gate | None = None,
        paced: bool = True,
        patient: bool = True,
    ) -> dict[str, Any]:
        """Send ``method`` until it answers, within ``deadline``. ``gate`` is asked right before every attempt
        (after any pacing wait): False raises ``GuardLostError`` and nothing more is sent. The error raised when
        no attempt succeeds has ``maybe_acted`` set if an earlier attempt reached Slack and lost its answer: then
        Slack may have acted (a refresh token is in its grace period), whatever the last attempt said. ``patient``:
        the policy's rate-limit retries apply (never once Slack may have acted: the grace period does not wait)."""
        headers = {**authorization, "Content-Type": "application/x-www-form-urlencoded"}
        limiter = self._limiter if paced else None
        shortest = self._policy.attempt_seconds if self._policy.whole_attempts else 0.05
        tries = _Tries(self._policy, patient=patient)
        while tries.left() and self._may_start(deadline, shortest, limiter):
            if gate is not None and not gate():
                raise errors.GuardLostError("this run no longer holds the run guard; nothing was sent")
            try:
                return self._send(method, fields, headers, deadline - self._monotonic())
            except errors.SlackApiError as exc:
                if not tries.failed(exc, at_most_once=not retry_lost_answer):
                    raise
            if not self._wait_to_retry(tries.last_error(method), tries.attempt - 1, deadline, shortest, limiter):
                break
        raise tries.last_error(method)

    def _may_start(self, deadline: float, shortest: float, limiter: RateLimiter | None) -> bool:
        """Whether an attempt can start: ``shortest`` still fits before the deadline, and the limiter gave a permit
        in time."""
        if deadline - self._monotonic() <= shortest:
            return False
        return limiter is None or limiter.acquire(deadline - shortest)

    def _wait_to_retry(
        self, error: errors.SlackApiError, attempt: int, deadline: float, shortest: float, limiter: RateLimiter | None
    ) -> bool:
        """Wait out the backoff before the next attempt; False (without waiting) when no attempt would fit after
        it. A ``Retry-After`` holds back every caller sharing the limiter."""
        wait = self._backoff(attempt, error)
        if self._monotonic() + wait + shortest >= deadline:
            return False
        if error.retry_after is not None and limiter is not None:
            limiter.pause(wait)
        self._sleep(wait)
        return True

    def _send(
        self, method: str, fields: Mapping[str, str], headers: dict[str, str], remaining: float
    ) -> dict[str, Any]:
        """One HTTP attempt: the JSON body, or a typed error (transport failures included)."""
        timeout = urllib3.Timeout(
            connect=min(self._policy.connect_timeout, remaining), read=min(self._policy.read_timeout, remaining)
        )
        try:
            response = self._pool.request(
                "POST",
                self._api_url + method,
                fields=dict(fields),
                encode_multipart=False,
                headers=headers,
                timeout=timeout,
                retries=False,
                redirect=False,
            )
        except HTTPError as exc:
            raise _transport_error(method, exc) from None
        return _interpret(method, response.status, response.headers, response.data)

    def _backoff(self, attempt: int, error: errors.SlackApiError) -> float:
        if error.retry_after is not None:
            return error.retry_after
        if isinstance(error, errors.SlackTransportError) and error.code == "answer_lost":
            return 0.0  # the grace period is short: ask again at once
        ceiling = min(self._policy.backoff_cap, self._policy.backoff_base * (2**attempt))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


class _Tries:
    """The count of one call's attempts: rate limits Slack did not act on may be waited out without counting as
    attempts (``patient``, up to the policy's ``rate_limit_retries``), never once an earlier attempt may have acted."""

    def __init__(self, policy: RetryPolicy, *, patient: bool) -> None:
        self._policy = policy
        self._patient = patient
        self.attempt = 0
        self._limited = 0
        self._acted = False
        self._last: errors.SlackApiError | None = None

    def left(self) -> bool:
        return self.attempt < self._policy.max_attempts

    def failed(self, error: errors.SlackApiError, *, at_most_once: bool) -> bool:
        """Count a failed attempt; whether it may be made again. Marks ``maybe_acted`` on ``error`` when this or an
        earlier attempt reached Slack and lost its answer."""
        error.maybe_acted = self._acted = self._acted or _reached_slack(error)
        if not _may_repeat(error, at_most_once=at_most_once):
            return False
        self._last = error
        waited_out = error.code == "ratelimited" and self._patient and not self._acted
        if waited_out and self._limited < self._policy.rate_limit_retries:
            self._limited += 1
        else:
            self.attempt += 1
        return True

    def last_error(self, method: str) -> errors.SlackApiError:
        """What the call raises when it gives up: the last failure, or a deadline error if nothing was sent."""
        if self._last is None:
            return errors.SlackTransportError(
                "deadline_exceeded", "no time left to call Slack", method=method, request_sent=False
            )
        return self._last


def _transport_error(method: str, exc: HTTPError) -> errors.SlackTransportError:
    """A failed HTTP attempt: before the request left (connection failures), or after (the answer was lost)."""
    if isinstance(exc, ConnectTimeoutError | NewConnectionError):
        return errors.SlackTransportError(
            "connection_failed",
            f"could not connect to Slack ({type(exc).__name__})",
            method=method,
            request_sent=False,
        )
    return errors.SlackTransportError(
        "answer_lost",
        f"the request was sent but no answer came back ({type(exc).__name__})",
        method=method,
        request_sent=True,
    )


def _basic(client_id: str, client_secret: str) -> dict[str, str]:
    """The client credentials as an HTTP Basic header (how Slack's OAuth methods take them)."""
    return urllib3.util.make_headers(basic_auth=f"{client_id}:{client_secret}")


def _reached_slack(error: errors.SlackApiError) -> bool:
    """Whether Slack may have acted on the attempt that failed: its answer was lost after the request left."""
    return isinstance(error, errors.SlackTransportError) and error.request_sent


def _may_repeat(error: errors.SlackApiError, *, at_most_once: bool) -> bool:
    """Whether a failed attempt may be made again. An at-most-once call (the exchange) is repeated only when the
    failure proves Slack did not act: a rate limit, or a connection that never carried the request."""
    if not error.retryable:
        return False
    if not at_most_once:
        return True
    return error.code == "ratelimited" or (isinstance(error, errors.SlackTransportError) and not _reached_slack(error))


def _interpret(method: str, status: int, headers: Mapping[str, str], data: bytes) -> dict[str, Any]:
    """Turn one HTTP answer into a JSON body or a typed error."""
    if status == 429:
        raise errors.error_for(
            "ratelimited", method=method, http_status=status, retry_after=_retry_after(headers.get("Retry-After"))
        )
    body = _json_object(data)
    if status == 200 and body is not None:
        if body.get("ok") is True:
            return body
        code = body.get("error")
        raise errors.error_for(
            code if isinstance(code, str) and code else "unknown_error", method=method, http_status=status
        )
    if body is not None and isinstance(body.get("error"), str) and body["error"]:
        # Some failures arrive as HTTP 400 with Slack's usual JSON body: trust the code.
        raise errors.error_for(body["error"], method=method, http_status=status)
    if status >= 500 or status == 200:
        # 5xx, or a 200 that is not JSON (a proxy's page): Slack did not answer; safe to treat as transient.
        raise errors.SlackTransportError(
            f"http_{status}", "Slack returned an unusable answer", method=method, request_sent=True, http_status=status
        )
    raise errors.SlackUnknownError(
        f"http_{status}", "Slack returned an unexpected HTTP status", method=method, http_status=status
    )


def _json_object(data: bytes) -> dict[str, Any] | None:
    if len(data) > _MAX_BODY:
        return None
    try:
        body = json.loads(data)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), 120.0)


# --------------------------------------------------------------------------------------------------------------
# Parsing (pure)
# --------------------------------------------------------------------------------------------------------------


def _malformed(method: str, what: str) -> errors.SlackApiError:
    return errors.SlackUnknownError(
        "invalid_response", f"Slack's answer is missing or has an invalid {what}", method=method
    )


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(value: object, method: str, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not valid_slack_id(value):
        raise _malformed(method, what)
    return str(value)


def _expiry(expires_in: object, now: int, method: str) -> int | None:
    if expires_in is None:
        return None
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise _malformed(method, "expires_in")
    return now + expires_in


def _token(value: object, method: str, what: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise _malformed(method, what)
    return value


def parse_oauth_access(body: Mapping[str, Any], *, now: int, method: str = ACCESS) -> OAuthAccess:
    """Parse a code-exchange (or ``oauth.v2.exchange``) answer. Either pair may be absent."""
    pairs = _Pairs(_installation(body, method), now, method)
    authed_user = _object(body.get("authed_user"))
    user_id = _id(authed_user.get("id") or body.get("user_id"), method, "user id")
    bot, user = _top_level_pair(body, user_id, pairs)
    if authed_user.get("access_token") is not None:
        if user_id is None:
            raise _malformed(method, "authed_user id")
        user = pairs.pair(authed_user, "user", user_id=user_id)
    return OAuthAccess(
        bot=bot,
        user=user,
        app_id=pairs.common["app_id"],
        team_id=pairs.common["team_id"],
        enterprise_id=pairs.common["enterprise_id"],
        is_enterprise_install=pairs.common["is_enterprise_install"],
    )


def _installation(body: Mapping[str, Any], method: str) -> dict[str, Any]:
    """What every pair of one answer shares: the app, the workspace and/or the org, and the kind of install."""
    team = _object(body.get("team"))
    enterprise = _object(body.get("enterprise"))
    is_enterprise_install = body.get("is_enterprise_install") is True
    team_id = _id(team.get("id"), method, "team id")
    enterprise_id = _id(enterprise.get("id"), method, "enterprise id")
    app_id = _id(body.get("app_id"), method, "app id")
    if team_id is None and enterprise_id is None:
        raise _malformed(method, "team and enterprise")
    if is_enterprise_install and enterprise_id is None:
        raise _malformed(method, "enterprise (org-wide install without one)")
    return {
        "app_id": app_id,
        "team_id": team_id,
        "team_name": team.get("name") if isinstance(team.get("name"), str) else None,
        "enterprise_id": enterprise_id,
        "enterprise_name": enterprise.get("name") if isinstance(enterprise.get("name"), str) else None,
        "is_enterprise_install": is_enterprise_install,
    }


def _top_level_pair(
    body: Mapping[str, Any], user_id: str | None, pairs: _Pairs
) -> tuple[TokenPair | None, TokenPair | None]:
    """The (bot, user) pair at the answer's top level: a bot pair, or (``oauth.v2.exchange`` of a user token) the
    user pair; neither when the answer has no top-level token."""
    if body.get("access_token") is None:
        return None, None
    top_type = body.get("token_type", "bot")
    if top_type == "bot":
        webhook = body.get("incoming_webhook")
        bot = pairs.pair(
            body,
            "bot",
            bot_user_id=_id(body.get("bot_user_id"), pairs.method, "bot user id"),
            installer_user_id=user_id,
            incoming_webhook=webhook if isinstance(webhook, dict) else None,
        )
        return bot, None
    if top_type == "user":
        if user_id is None and pairs.method != EXCHANGE:  # the exchange knows whose token it sent: keep the pair
            raise _malformed(pairs.method, "user id")
        return None, pairs.pair(body, "user", user_id=user_id)
    raise _malformed(pairs.method, "token_type")


class _Pairs(NamedTuple):
    """Builds the pairs of one answer: what they share, when it came, and the method that answered."""

    common: Mapping[str, Any]
    now: int
    method: str

    def pair(self, source: Mapping[str, Any], token_type: TokenType, **who: Any) -> TokenPair:
        method = self.method
        access = _token(source.get("access_token"), method, f"{token_type} access_token", required=True)
        assert access is not None  # noqa: S101 - required=True guarantees it; narrows the type
        refresh = _token(source.get("refresh_token"), method, f"{token_type} refresh_token", required=False)
        expires_at = _expiry(source.get("expires_in"), self.now, method)
        if (refresh is None) != (expires_at is None):
            raise _malformed(method, f"{token_type} refresh_token/expires_in combination")
        scope = source.get("scope")
        return TokenPair(
            token_type=token_type,
            access_token=access,
            refresh_token=refresh,
            expires_at=expires_at,
            scope=scope if isinstance(scope, str) else "",
            updated_at=self.now,
            **self.common,
            **who,
        )


def parse_refresh(body: Mapping[str, Any], *, now: int, token_type: TokenType) -> RefreshedToken:
    """Parse a refresh answer defensively: only access_token, refresh_token, expires_in and token_type are required,
    and the token type must be the refreshed pair's (a bot token must never land in a user pair, or the reverse)."""
    if body.get("token_type") != token_type:
        raise _malformed(ACCESS, f"token_type (not the refreshed pair's: {token_type})")
    access = _token(body.get("access_token"), ACCESS, "access_token", required=True)
    refresh = _token(body.get("refresh_token"), ACCESS, "refresh_token", required=True)
    expires_at = _expiry(body.get("expires_in"), now, ACCESS)
    if access is None or refresh is None or expires_at is None:
        raise _malformed(ACCESS, "refresh answer")
    scope = body.get("scope")
    return RefreshedToken(
        token_type=token_type,
        access_token=access,
        refresh_token=refresh,
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else None,
    )
