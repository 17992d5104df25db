"""A fake of Slack's OAuth v2 endpoints on 127.0.0.1, for integration tests and the local sandbox.

Served by ``sandbox.http_server`` (a threaded server in a daemon thread, on 127.0.0.1 and a port the OS picks).
All state sits behind one lock, so the fake can be hit from many client threads at once.

Endpoints (shapes and error codes follow docs.slack.dev):

* ``GET  /oauth/v2/authorize``           HTML consent page with the buttons ``Allow`` and ``Cancel``.
* ``POST /oauth/v2/authorize/decision``  what those buttons post; answers 302 to the redirect URI with
  ``code``+``state`` or ``error=access_denied``+``state`` (``state`` omitted when none was given).
* ``POST /api/oauth.v2.access``          ``authorization_code`` and ``refresh_token`` grants.
* ``POST /api/oauth.v2.exchange``        legacy xoxb-/xoxp- token -> expiring pair.
* ``POST /api/auth.test``                identity of an access token.
* ``POST /api/chat.postMessage``        a message posted with a live access token (kept in ``posts``).

Token rules the fake enforces (the clock is injectable, so tests never sleep):

* Authorization codes are single-use and live 10 minutes. A failed exchange (bad redirect URI, bad PKCE verifier,
  bad client secret) does not consume the code; only a successful one does.
* Access tokens are valid until ``issued + token_lifetime`` (exclusive). They are never revoked by a refresh.
* Refresh tokens are single-use with a grace period. The first successful use starts the grace period; the token
  stays usable while ``clock() < first_use + refresh_grace_seconds``. EVERY successful use, the first and each
  repeat inside the grace period, mints a brand-new, independent access + refresh pair (never the same one
  again), and ``refresh_count`` counts them all. From ``first_use + refresh_grace_seconds`` on the token answers
  ``invalid_refresh_token``. Refresh tokens from a PKCE install also expire 30 days after issue.
* A legacy token stays valid after ``oauth.v2.exchange`` until the new pair's refresh token is first used; from
  then on it is revoked (``auth.test`` answers ``token_revoked``).

Fault knobs (``fail_next``) are taken per API method, first queued first served. A request is recorded in
``requests`` whatever happens to it, unless its body could not be read (411/400/413).

The server never logs: ``log_message`` is silenced, so no token, code or secret can reach stderr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
import random
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.message import Message
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox.http_server import Answer, HttpServer, Request

TokenType = Literal["bot", "user"]

AUTHORIZE_PATH = "/oauth/v2/authorize"
DECISION_PATH = "/oauth/v2/authorize/decision"
API_PREFIX = "/api/"
ACCESS = "oauth.v2.access"
EXCHANGE = "oauth.v2.exchange"
AUTH_TEST = "auth.test"
POST_MESSAGE = "chat.postMessage"
API_METHODS = frozenset({ACCESS, EXCHANGE, AUTH_TEST, POST_MESSAGE})

CODE_LIFETIME_SECONDS = 600.0
PKCE_REFRESH_LIFETIME_SECONDS = 30 * 24 * 3600.0
RATE_LIMIT_WINDOW_SECONDS = 60.0
MAX_BODY_BYTES = 64 * 1024

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
_PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 code_verifier / S256 code_challenge alphabet
_AUTHORIZE_FIELDS = (
    "client_id",
    "scope",
    "user_scope",
    "redirect_uri",
    "state",
    "team",
    "code_challenge",
    "code_challenge_method",
)
_DEFAULT_LEGACY_SCOPE: dict[TokenType, str] = {"bot": "chat:write,commands", "user": "chat:write"}


@dataclass(frozen=True)
class Installation:
    """The workspace (or Enterprise Grid org) a simulated user installs the app into."""

    team_id: str | None = "T0001"
    team_name: str | None = "Sandbox Workspace"
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    is_enterprise_install: bool = False
    user_id: str = "U0001"
    app_id: str = "A0001"
    bot_user_id: str = "B0001"
    bot_id: str = "BBOT0001"
    incoming_webhook: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the fake saw it (header names lower-cased)."""

    method: str
    headers: dict[str, str]
    form: dict[str, str]
    basic_auth: tuple[str, str] | None  # ("", "") when a Basic header was present but unreadable
    time: float  # clock() at arrival
    status: int | None  # HTTP status answered; None when the connection was dropped without an answer
    error: str | None  # Slack error code answered, if any


@dataclass(frozen=True)
class Post:
    """One ``chat.postMessage`` the fake accepted, and the token it was posted with."""

    channel: str
    text: str = field(repr=False)
    token: str = field(repr=False)
    token_type: TokenType
    ts: str


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def answer(self) -> Answer:
        return Answer(self.status, [("Content-Type", self.content_type), *self.headers.items()], self.body)


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str | None
    body: bytes | None
    retry_after: int | None
    delay: float
    drop: bool
    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def canned(self) -> _Response | None:
        """The answer that replaces normal processing, or None when the fault only delays or drops."""
        if self.status == 200 and self.error is None and self.body is None:
            return None
        headers: dict[str, str] = {}
        if self.status == 429 or self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after if self.retry_after is not None else 1)
        if self.body is not None:
            return _Response(self.status, self.body, _sniff_content_type(self.body), headers)
        return _slack_error(self.error or _default_error(self.status), status=self.status, headers=headers)


@dataclass
class _Grant:
    scope: str
    user_scope: str
    redirect_uri: str | None
    code_challenge: str | None
    installation: Installation
    expires_at: float
    used: bool = False


@dataclass
class _AccessToken:
    token_type: TokenType
    scope: str
    installation: Installation
    user_id: str  # the user a user token belongs to; for a bot token, the installing user
    expires_at: float | None  # None: legacy, non-expiring
    revoked: bool = False
    exchanged: bool = False


@dataclass
class _RefreshToken:
    token_type: TokenType
    scope: str
    installation: Installation
    user_id: str
    pkce: bool
    expires_at: float | None
    legacy_parent: str | None = None  # the legacy token this pair replaced (oauth.v2.exchange)
    first_used_at: float | None = None
    uses: int = 0
    revoked: bool = False


@dataclass(frozen=True)
class _Call:
    form: dict[str, str]
    basic: tuple[str, str] | None
    bearer: str | None
    now: float


@dataclass(frozen=True)
class _AuthorizeRequest:
    scope: str
    user_scope: str
    redirect_uri: str | None  # as sent by the client (None: not sent)
    target: str  # where the browser goes back to
    state: str | None
    code_challenge: str | None
    fields: dict[str, str]  # the recognised parameters, carried through the consent form


class _SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _PageError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class FakeSlack:
    """Slack's OAuth v2 endpoints, served on ``127.0.0.1`` (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        client_id: str = "111.222",
        client_secret: str = "fake-client-secret",
        token_lifetime: int = 43200,
        refresh_grace_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        rotation_enabled: bool = True,
        latency: float | tuple[float, float] = 0.0,
        rate_limits: Mapping[str, int] | None = None,
        default_redirect_uri: str | None = None,
    ) -> None:
        """``latency``: seconds added before every API answer, or a ``(low, high)`` range drawn uniformly.
        ``rate_limits``: calls per 60 s (per the clock) per API method, e.g. ``{"oauth.v2.access": 600}``;
        over the limit the method answers 429 with ``Retry-After``. ``default_redirect_uri``: where the consent
        page sends the browser when the authorize URL carries no ``redirect_uri`` (Slack uses the app's first
        configured one)."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.refresh_grace_seconds = refresh_grace_seconds
        self.clock = clock
        self.rotation_enabled = rotation_enabled
        self.latency = latency
        self.default_redirect_uri = default_redirect_uri
        self._rate_limits = dict(rate_limits or {})
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._installation = Installation()
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._requests: list[RecordedRequest] = []
        self._posts: list[Post] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._recent_calls: dict[str, deque[float]] = {}
        self._methods: dict[str, Callable[[_Call], dict[str, Any]]] = {
            ACCESS: self._oauth_access,
            EXCHANGE: self._oauth_exchange,
            AUTH_TEST: self._auth_test,
            POST_MESSAGE: self._post_message,
        }
        self.max_body_bytes = MAX_BODY_BYTES
        self._server = HttpServer(self, name="FakeSlack/1.0", keep_alive=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        if self._server.running:
            raise RuntimeError("FakeSlack is already running")
        self._stopping.clear()
        self._server.start(poll_interval=0.02)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes up delayed answers, which then close without answering
        self._server.stop()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self._server.running:
            raise RuntimeError("FakeSlack is not running; call start() first")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def authorize_url(self) -> str:
        return self.base_url + AUTHORIZE_PATH

    # ------------------------------------------------------------------ set-up

    @property
    def installation(self) -> Installation:
        with self._lock:
            return self._installation

    def set_installation(
        self,
        *,
        team_id: str | None = "T0001",
        team_name: str | None = "Sandbox Workspace",
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
        is_enterprise_install: bool = False,
        user_id: str = "U0001",
        app_id: str = "A0001",
        bot_user_id: str = "B0001",
        bot_id: str = "BBOT0001",
        incoming_webhook: bool = False,
    ) -> None:
        """Where the next grants install. Codes already granted keep the installation they were granted for.
        An org-wide install (``is_enterprise_install``) has an enterprise and no team, as on Slack."""
        if is_enterprise_install and (enterprise_id is None or team_id is not None):
            raise ValueError("an org-wide install needs enterprise_id and team_id=None")
        if not is_enterprise_install and team_id is None:
            raise ValueError("a workspace install needs a team_id")
        installation = Installation(
            team_id=team_id,
            team_name=team_name if team_id is not None else None,
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name if enterprise_id is not None else None,
            is_enterprise_install=is_enterprise_install,
            user_id=user_id,
            app_id=app_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            incoming_webhook=incoming_webhook,
        )
        with self._lock:
            self._installation = installation

    def grant_code(
        self, *, scope: str, user_scope: str, redirect_uri: str | None, code_challenge: str | None = None
    ) -> str:
        """What clicking "Allow" does: a fresh single-use code, valid 10 minutes per the clock."""
        if not scope.strip() and not user_scope.strip():
            raise ValueError("no_scopes: ask for at least one bot or user scope")
        with self._lock:
            code = f"{_digits(13)}.{_digits(13)}.{secrets.token_hex(32)}"
            self._codes[code] = _Grant(
                scope=scope.strip(),
                user_scope=user_scope.strip(),
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                installation=self._installation,
                expires_at=self.clock() + CODE_LIFETIME_SECONDS,
            )
        return code

    def add_legacy_token(
        self,
        token_type: TokenType = "bot",
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        scope: str | None = None,
    ) -> str:
        """Mint a legacy, non-expiring xoxb-/xoxp- token (for ``oauth.v2.exchange``) in the current installation.
        ``team_id`` overrides the installation's team; ``user_id`` is the token's user (user token) or installer
        (bot token), by default the installation's user."""
        if token_type not in ("bot", "user"):
            raise ValueError("token_type must be 'bot' or 'user'")
        with self._lock:
            installation = self._installation
            if team_id is not None and team_id != installation.team_id:
                installation = replace(
                    installation, team_id=team_id, team_name=f"Workspace {team_id}", is_enterprise_install=False
                )
            minted = self._mint(
                token_type,
                scope if scope is not None else _DEFAULT_LEGACY_SCOPE[token_type],
                installation,
                user_id or installation.user_id,
                self.clock(),
                rotating=False,
                pkce=False,
            )
        return cast(str, minted["access_token"])

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token at once (the app was uninstalled, or an admin revoked it)."""
        with self._lock:
            if token in self._access:
                self._access[token].revoked = True
            elif token in self._refresh:
                self._refresh[token].revoked = True
            else:
                raise KeyError("unknown token")

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 200,
        error: str | None = None,
        body: bytes | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop_after_processing: bool = False,
        rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Queue a canned behaviour for the next ``times`` calls of ``method``.

        status 429: ``Retry-After`` (``retry_after`` or 1) and ``{"ok":false,"error":"ratelimited"}``;
        status 200 + ``error``: ``{"ok":false,"error":error}``; any status + ``body``: that raw body;
        other statuses: a JSON error (``error`` or internal_error/invalid_arguments). These are answered
        without processing the request. ``delay``: the request is processed (if not canned) at once and
        the answer is sent ``delay`` seconds later (a client read timeout then loses an answer Slack acted
        on). ``drop_after_processing``: the request IS processed, then the connection is closed unanswered.
        ``rewrite``: the request IS processed, and its JSON answer is passed through ``rewrite`` before it is sent
        (an answer Slack acted on but that is not what the client expects, e.g. of the other token type).
        """
        if method not in API_METHODS:
            raise ValueError(f"unknown API method {method!r}; known: {sorted(API_METHODS)}")
        if times < 1 or not 100 <= status <= 599 or delay < 0:
            raise ValueError("times must be >= 1, status an HTTP status and delay >= 0")
        fault = _Fault(
            status=status,
            error=error,
            body=body,
            retry_after=retry_after,
            delay=delay,
            drop=drop_after_processing,
            rewrite=rewrite,
        )
        with self._lock:
            self._faults.setdefault(method, deque()).extend([fault] * times)

    # ------------------------------------------------------------------ ledgers

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every API request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def refresh_count(self, refresh_token: str) -> int:
        """How many times that refresh token was presented successfully."""
        with self._lock:
            record = self._refresh.get(refresh_token)
            return record.uses if record is not None else 0

    def is_refresh_token_valid(self, refresh_token: str) -> bool:
        with self._lock:
            record = self._refresh.get(refresh_token)
            return record is not None and self._refresh_usable(record, self.clock())

    def is_access_token_valid(self, access_token: str) -> bool:
        with self._lock:
            record = self._access.get(access_token)
            return record is not None and _access_problem(record, self.clock()) is None

    # ------------------------------------------------------------------ HTTP entry points (handler threads)

    def answer(self, request: Request) -> Answer | None:
        """The answer to one HTTP request (``sandbox.http_server`` calls it); None drops the connection."""
        path = request.path
        if request.method == "POST" and path.startswith(API_PREFIX):
            response, delay = self._api_call(path.removeprefix(API_PREFIX), request.headers, request.body)
            if delay > 0 and self._stopping.wait(delay):
                return None  # the server is stopping: give up on the answer
            return response.answer() if response is not None else None
        if request.method == "POST" and path == DECISION_PATH:
            return self._decide(request.headers.get("Content-Type"), request.body).answer()
        if request.method == "GET" and path == AUTHORIZE_PATH:
            return self._authorize_page(request.query).answer()
        if path.startswith(API_PREFIX) and request.method != "POST":
            return _slack_error("method_not_allowed", status=405, headers={"Allow": "POST"}).answer()
        return _html_error("not_found", "Nothing here.", status=404).answer()

    def refuse(self, status: int) -> Answer:
        codes = {411: "length_required", 400: "invalid_form_data", 413: "request_too_large"}
        return _slack_error(codes[status], status=status).answer()

    def _api_call(self, method: str, headers: Message, body: bytes) -> tuple[_Response | None, float]:
        """Decide the answer to one API request: (response or None to drop the connection, delay seconds)."""
        basic, bearer = _parse_authorization(headers.get("Authorization"))
        form, form_error = _parse_form(headers.get("Content-Type"), body)
        with self._lock:
            now = self.clock()
            fault = self._take_fault(method)
            canned = fault.canned() if fault is not None else None
            response: _Response | None
            if method not in API_METHODS:
                response = _slack_error("unknown_method", status=404)
            elif canned is not None and not (fault is not None and fault.drop):
                response = canned
            else:
                response = self._process(method, _Call(form, basic, bearer, now), form_error)
                if fault is not None and fault.rewrite is not None:
                    response = _Response(
                        response.status, _json_bytes(fault.rewrite(json.loads(response.body))), JSON_CONTENT_TYPE
                    )
            if fault is not None and fault.drop:
                response = None
            self._requests.append(
                RecordedRequest(
                    method=method,
                    headers={k.lower(): v for k, v in headers.items()},
                    form=form,
                    basic_auth=basic,
                    time=now,
                    status=response.status if response is not None else None,
                    error=response.error if response is not None else None,
                )
            )
        delay = (fault.delay if fault is not None else 0.0) + self._latency_seconds()
        return response, delay

    def _authorize_page(self, query: str) -> _Response:
        try:
            request = self._authorize_request(dict(parse_qsl(query, keep_blank_values=True)))
        except _PageError as exc:
            return _html_error(exc.code, exc.detail)
        return _Response(
            200,
            _consent_html(request, self.installation).encode("utf-8"),
            HTML_CONTENT_TYPE,
            {"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    def _decide(self, content_type: str | None, body: bytes) -> _Response:
        form, form_error = _parse_form(content_type, body)
        try:
            if form_error is not None:
                raise _PageError(form_error, "The consent form could not be read.")
            request = self._authorize_request(form)
            decision = form.get("decision")
            if decision == "allow":
                params = [
                    (
                        "code",
                        self.grant_code(
                            scope=request.scope,
                            user_scope=request.user_scope,
                            redirect_uri=request.redirect_uri,
                            code_challenge=request.code_challenge,
                        ),
                    )
                ]
            elif decision == "cancel":
                params = [("error", "access_denied")]
            else:
                raise _PageError("invalid_decision", "Choose Allow or Cancel.")
        except _PageError as exc:
            return _html_error(exc.code, exc.detail)
        if request.state:
            params.append(("state", request.state))
        return _Response(
            302, b"", HTML_CONTENT_TYPE, {"Location": _with_query(request.target, params), "Cache-Control": "no-store"}
        )

    # ------------------------------------------------------------------ internals (callers hold the lock)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        return queue.popleft() if queue else None

    def _latency_seconds(self) -> float:
        latency = self.latency
        if isinstance(latency, tuple):
            return random.uniform(*latency)
        return latency

    def _process(self, method: str, call: _Call, form_error: str | None) -> _Response:
        if form_error is not None:
            return _slack_error(form_error)
        retry_after = self._rate_limited(method, call.now)
        if retry_after is not None:
            return _slack_error("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        try:
            payload = self._methods[method](call)
        except _SlackError as exc:
            return _slack_error(exc.code)
        return _Response(200, _json_bytes(payload), JSON_CONTENT_TYPE)

    def _rate_limited(self, method: str, now: float) -> int | None:
        """Seconds to wait when ``method`` is over its limit in the sliding window, else None (and count it)."""
        limit = self._rate_limits.get(method)
        if limit is None:
            return None
        window = self._recent_calls.setdefault(method, deque())
        while window and window[0] <= now - RATE_LIMIT_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + RATE_LIMIT_WINDOW_SECONDS - now))
        window.append(now)
        return None

    def _authenticate(self, call: _Call, *, public_client: bool) -> None:
        """Client credentials from HTTP Basic (preferred) or the body. A PKCE grant may omit the secret."""
        if call.basic is not None:
            client_id, secret = call.basic
        else:
            client_id, secret = call.form.get("client_id", ""), call.form.get("client_secret", "")
        if not hmac.compare_digest(client_id.encode(), self.client_id.encode()):
            raise _SlackError("invalid_client_id")
        if not secret and public_client:
            return
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            raise _SlackError("bad_client_secret")

    def _oauth_access(self, call: _Call) -> dict[str, Any]:
        grant_type = call.form.get("grant_type")
        if grant_type is None:
            grant_type = (
                "refresh_token" if "refresh_token" in call.form and "code" not in call.form else "authorization_code"
            )
        if grant_type == "authorization_code":
            return self._code_grant(call)
        if grant_type == "refresh_token":
            return self._refresh_grant(call)
        self._authenticate(call, public_client=False)
        raise _SlackError("invalid_grant_type")

    def _code_grant(self, call: _Call) -> dict[str, Any]:
        grant = self._codes.get(call.form.get("code", ""))
        self._authenticate(call, public_client=grant is not None and grant.code_challenge is not None)
        if grant is None or grant.used or call.now >= grant.expires_at:
            raise _SlackError("invalid_code")
        if grant.redirect_uri is not None and call.form.get("redirect_uri") != grant.redirect_uri:
            raise _SlackError("bad_redirect_uri")
        if grant.code_challenge is not None and not _pkce_matches(call.form.get("code_verifier"), grant.code_challenge):
            raise _SlackError("invalid_code_verifier")
        grant.used = True
        installation = grant.installation
        rotating, pkce = self.rotation_enabled, grant.code_challenge is not None
        body: dict[str, Any] = {"ok": True, "app_id": installation.app_id}
        authed_user: dict[str, Any] = {"id": installation.user_id}
        if grant.user_scope:
            minted = self._mint(
                "user", grant.user_scope, installation, installation.user_id, call.now, rotating=rotating, pkce=pkce
            )
            authed_user |= {"scope": grant.user_scope, "token_type": "user", **minted}
        body["authed_user"] = authed_user
        if grant.scope:
            minted = self._mint(
                "bot", grant.scope, installation, installation.user_id, call.now, rotating=rotating, pkce=pkce
            )
            body |= {"scope": grant.scope, "token_type": "bot", "bot_user_id": installation.bot_user_id, **minted}
        body |= _identity(installation)
        if installation.incoming_webhook:
            body["incoming_webhook"] = self._webhook(installation)
        return body

    def _refresh_grant(self, call: _Call) -> dict[str, Any]:
        record = self._refresh.get(call.form.get("refresh_token", ""))
        self._authenticate(call, public_client=record is not None and record.pkce)
        if record is None or not self._refresh_usable(record, call.now):
            raise _SlackError("invalid_refresh_token")
        if record.first_used_at is None:
            record.first_used_at = call.now
            if record.legacy_parent is not None:
                self._access[record.legacy_parent].revoked = True
        record.uses += 1
        installation = record.installation
        minted = self._mint(
            record.token_type, record.scope, installation, record.user_id, call.now, rotating=True, pkce=record.pkce
        )
        return _pair_answer(record, minted)

    def _oauth_exchange(self, call: _Call) -> dict[str, Any]:
        self._authenticate(call, public_client=False)
        token = call.form.get("token", "")
        if not token:
            raise _SlackError("invalid_arguments")
        if not self.rotation_enabled:
            raise _SlackError("token_rotation_not_enabled")
        record = self._access.get(token)
        if record is None or record.expires_at is not None:
            raise _SlackError("invalid_token")
        if record.exchanged:
            raise _SlackError("token_already_exchanged")
        record.exchanged = True
        installation = record.installation
        minted = self._mint(
            record.token_type,
            record.scope,
            installation,
            record.user_id,
            call.now,
            rotating=True,
            pkce=False,
            legacy_parent=token,
        )
        return _pair_answer(record, minted, authed_user={"id": record.user_id})

    def _auth_test(self, call: _Call) -> dict[str, Any]:
        token = call.bearer or call.form.get("token", "")
        if not token:
            raise _SlackError("not_authed")
        record = self._access.get(token)
        if record is None:
            raise _SlackError("invalid_auth")
        problem = _access_problem(record, call.now)
        if problem is not None:
            raise _SlackError(problem)
        installation = record.installation
        bot = record.token_type == "bot"
        name = installation.team_name or installation.enterprise_name or "sandbox"
        body: dict[str, Any] = {
            "ok": True,
            "url": f"https://{_slug(name)}.slack.com/",
            "team": name,
            "user": "sandbox-bot" if bot else f"user-{record.user_id.lower()}",
            "team_id": installation.team_id or installation.enterprise_id,
            "user_id": installation.bot_user_id if bot else record.user_id,
        }
        if bot:
            body["bot_id"] = installation.bot_id
        if installation.enterprise_id is not None:
            body["enterprise_id"] = installation.enterprise_id
        body["is_enterprise_install"] = installation.is_enterprise_install
        return body

    def _post_message(self, call: _Call) -> dict[str, Any]:
        """``chat.postMessage``: the token must be a live access token; the message is kept in ``posts``."""
        token = call.bearer or call.form.get("token", "")
        record = self._access.get(token) if token else None
        if record is None:
            raise _SlackError("not_authed" if not token else "invalid_auth")
        problem = _access_problem(record, call.now)
        if problem is not None:
            raise _SlackError(problem)
        channel, text = call.form.get("channel", ""), call.form.get("text", "")
        if not channel:
            raise _SlackError("channel_not_found")
        if not text:
            raise _SlackError("no_text")
        ts = f"{call.now:.6f}"
        self._posts.append(Post(channel=channel, text=text, token=token, token_type=record.token_type, ts=ts))
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": text, "type": "message", "ts": ts}}

    @property
    def posts(self) -> list[Post]:
        """Every message posted so far, oldest first."""
        with self._lock:
            return list(self._posts)

    def _refresh_usable(self, record: _RefreshToken, now: float) -> bool:
        if record.revoked or (record.expires_at is not None and now >= record.expires_at):
            return False
        return record.first_used_at is None or now < record.first_used_at + self.refresh_grace_seconds

    def _mint(
        self,
        token_type: TokenType,
        scope: str,
        installation: Installation,
        user_id: str,
        now: float,
        *,
        rotating: bool,
        pkce: bool,
        legacy_parent: str | None = None,
    ) -> dict[str, Any]:
        """Create and remember a token (pair); returns the token fields of the answer."""
        if not rotating:
            access = self._unused(lambda: _legacy_token(token_type))
            self._access[access] = _AccessToken(token_type, scope, installation, user_id, expires_at=None)
            return {"access_token": access}
        letter = "b" if token_type == "bot" else "p"
        access = self._unused(lambda: f"xoxe.xox{letter}-1-{secrets.token_urlsafe(30)}")
        refresh = self._unused(lambda: f"xoxe-1-{secrets.token_urlsafe(45)}")
        self._access[access] = _AccessToken(
            token_type, scope, installation, user_id, expires_at=now + self.token_lifetime
        )
        self._refresh[refresh] = _RefreshToken(
            token_type,
            scope,
            installation,
            user_id,
            pkce=pkce,
            expires_at=now + PKCE_REFRESH_LIFETIME_SECONDS if pkce else None,
            legacy_parent=legacy_parent,
        )
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.token_lifetime}

    def _unused(self, make: Callable[[], str]) -> str:
        while True:
            token = make()
            if token not in self._access and token not in self._refresh:
                return token

    def _webhook(self, installation: Installation) -> dict[str, str]:
        team = installation.team_id or installation.enterprise_id
        return {
            "url": f"{self.base_url}/services/{team}/{installation.bot_id}/{secrets.token_urlsafe(18)}",
            "channel": "#general",
            "channel_id": "C0001",
            "configuration_url": f"{self.base_url}/services/{installation.bot_id}",
        }

    def _authorize_request(self, params: Mapping[str, str]) -> _AuthorizeRequest:
        """Validate the authorize parameters (the page and the decision check the same rules)."""
        if params.get("client_id") != self.client_id:
            raise _PageError("invalid_client_id", "This link is for an app that does not exist.")
        scope, user_scope = params.get("scope", "").strip(), params.get("user_scope", "").strip()
        if not scope and not user_scope:
            raise _PageError("no_scopes", "The app asked for no permissions (scope and user_scope are empty).")
        redirect_uri = params.get("redirect_uri") or None
        target = redirect_uri or self.default_redirect_uri
        if target is None:
            raise _PageError("bad_redirect_uri", "No redirect_uri was given and the app has none configured.")
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise _PageError("bad_redirect_uri", "The redirect_uri must be an absolute http(s) URL.")
        challenge = params.get("code_challenge") or None
        if challenge is not None:
            if params.get("code_challenge_method") != "S256":
                raise _PageError("invalid_code_challenge_method", "code_challenge_method must be S256.")
            if not _PKCE_VALUE.fullmatch(challenge):
                raise _PageError("invalid_code_challenge", "code_challenge is not a valid S256 challenge.")
        fields = {name: params[name] for name in _AUTHORIZE_FIELDS if params.get(name)}
        return _AuthorizeRequest(
            scope=scope,
            user_scope=user_scope,
            redirect_uri=redirect_uri,
            target=target,
            state=params.get("state") or None,
            code_challenge=challenge,
            fields=fields,
        )


# ---------------------------------------------------------------------- helpers


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _slack_error(code: str, *, status: int = 200, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, _json_bytes({"ok": False, "error": code}), JSON_CONTENT_TYPE, headers or {}, code)


def _default_error(status: int) -> str:
    if status == 429:
        return "ratelimited"
    if status >= 500:
        return "internal_error"
    return "invalid_arguments"


def _sniff_content_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return HTML_CONTENT_TYPE
    return JSON_CONTENT_TYPE


def _parse_authorization(header: str | None) -> tuple[tuple[str, str] | None, str | None]:
    """(Basic credentials, Bearer token) from an Authorization header."""
    scheme, _, value = (header or "").strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return None, value or None
    if scheme != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return ("", ""), None
    client_id, colon, secret = decoded.partition(":")
    return ((client_id, secret) if colon else ("", "")), None


def _parse_form(content_type: str | None, body: bytes) -> tuple[dict[str, str], str | None]:
    """A form-encoded body as a dict (last value wins), or a Slack error code for a body that is not one."""
    if not body:
        return {}, None
    if not content_type:
        return {}, "missing_post_type"
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() == "application/json":  # what WebClient sends for chat.postMessage
        return _parse_json(body)
    if message.get_content_type() != "application/x-www-form-urlencoded":
        return {}, "invalid_post_type"
    if (message.get_content_charset() or "utf-8") not in ("utf-8", "utf8"):
        return {}, "invalid_charset"
    return _parse_urlencoded(body)


def _parse_urlencoded(body: bytes) -> tuple[dict[str, str], str | None]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        return {}, "invalid_form_data"
    return dict(pairs), None


def _parse_json(body: bytes) -> tuple[dict[str, str], str | None]:
    """A JSON object body as a dict of strings (other values as their JSON), or Slack's error code."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}, "invalid_json"
    if not isinstance(document, dict):
        return {}, "json_not_object"
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}, None


def _pkce_matches(verifier: str | None, challenge: str) -> bool:
    if verifier is None or not _PKCE_VALUE.fullmatch(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(expected, challenge)


def _access_problem(record: _AccessToken, now: float) -> str | None:
    if record.revoked:
        return "token_revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return "token_expired"
    return None


def _pair_answer(record: _AccessToken | _RefreshToken, minted: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A refresh's or an exchange's answer: one pair of ``record``'s type, and its installation's identity."""
    installation = record.installation
    body: dict[str, Any] = {
        "ok": True,
        "app_id": installation.app_id,
        **extra,
        "token_type": record.token_type,
        "scope": record.scope,
        **minted,
    }
    if record.token_type == "bot":
        body["bot_user_id"] = installation.bot_user_id
    return body | _identity(installation)


def _identity(installation: Installation) -> dict[str, Any]:
    team = {"id": installation.team_id, "name": installation.team_name} if installation.team_id else None
    enterprise = (
        {"id": installation.enterprise_id, "name": installation.enterprise_name} if installation.enterprise_id else None
    )
    return {"team": team, "enterprise": enterprise, "is_enterprise_install": installation.is_enterprise_install}


def _digits(count: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(count))


def _legacy_token(token_type: TokenType) -> str:
    alphabet = string.ascii_letters + string.digits
    if token_type == "bot":
        return f"xoxb-{_digits(12)}-{_digits(13)}-{''.join(secrets.choice(alphabet) for _ in range(24))}"
    return f"xoxp-{_digits(12)}-{_digits(12)}-{_digits(13)}-{secrets.token_hex(16)}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "sandbox"


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


def _html_error(code: str, detail: str, *, status: int = 400) -> _Response:
    page = _page(
        "Something went wrong",
        f"<h1>Something went wrong</h1>\n<p><code>{html.escape(code)}</code>: {html.escape(detail)}</p>",
    )
    return _Response(status, page.encode("utf-8"), HTML_CONTENT_TYPE, {"Cache-Control": "no-store"})


def _scope_list(title: str, scopes: str) -> str:
    items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in re.split(r"[,\s]+", scopes) if s)
    return f"<h2>{html.escape(title)}</h2>\n<ul>{items}</ul>\n" if items else ""


def _consent_html(request: _AuthorizeRequest, installation: Installation) -> str:
    where = (
        installation.enterprise_name or installation.enterprise_id
        if installation.is_enterprise_install
        else installation.team_name or installation.team_id
    ) or "your workspace"
    kind = "organization" if installation.is_enterprise_install else "workspace"
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">\n'
        for name, value in request.fields.items()
    )
    body = (
        f"<h1>App {html.escape(request.fields['client_id'])} is requesting permission to access the "
        f"<strong>{html.escape(where)}</strong> Slack {kind}</h1>\n"
        f"<p>Signed in as <code>{html.escape(installation.user_id)}</code>. "
        f"Redirects to <code>{html.escape(request.target)}</code>.</p>\n"
        + _scope_list("What the app's bot will be able to do (scope)", request.scope)
        + _scope_list("What the app will be able to do on your behalf (user_scope)", request.user_scope)
        + f'<form method="post" action="{DECISION_PATH}">\n{hidden}'
        '<button type="submit" name="decision" value="cancel">Cancel</button>\n'
        '<button type="submit" name="decision" value="allow">Allow</button>\n</form>'
    )
    return _page(f"Install to {where} | FakeSlack", body)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}"
        "button{font-size:1.1em;margin-right:1em;padding:.4em 1.2em}</style>\n"
        f"</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
