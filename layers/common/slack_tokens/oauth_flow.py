"""The "Add to Slack" flow: start an install, then finish it in the OAuth callback.

Every request ends in one ``InstallOutcome``: it picks the page (or redirect) answered, the log line, and the
``reason`` of the request's metric (``Result.metrics``). Starting an install (``GET /slack/install``) is
``started``, or ``bad_request`` (400) / ``config`` (500). The callback is a list of ordered checks, each with its
named outcomes; steps 1 to 5 make no Slack call.

1. ``bad_request``      the event or its query string is malformed                              -> 400
2. ``cancelled``        Slack sent ``error=access_denied`` (the user chose Cancel)              -> 200 friendly page
   ``slack_error``      Slack sent another ``error``                                            -> 400
3. ``missing_state`` / ``missing_cookie`` / ``invalid_state`` / ``cookie_mismatch`` / ``expired_state``
                        the browser cannot prove it started this install (``state.StateRefusal``) -> 400 / 401
   ``config``           the state key cannot be read                                            -> 500
4. ``missing_code``     no code of the shape Slack's codes have                                 -> 400
5. ``state_used``       the state already reached the code exchange once                        -> 400
   ``state_check_unavailable``  the spent-state table cannot be written (fails closed)          -> 503
   ``config``           no spent-state table is configured                                      -> 500
6. exchange with Slack (at most two calls): ``invalid_code`` (400), ``permission`` (403), ``slack_config`` (500,
   logged loudly), ``slack_unavailable`` (503), ``slack_error`` (502); ``no_tokens`` (502) when Slack's answer
   holds no pair; ``config`` (500) when the app credentials cannot be read
7. ``stateless_not_org`` a stateless callback (allowed by the switch) for a workspace install: nothing stored -> 400
8. store every pair (retried until the invocation's deadline): ``storage_failed``               -> 500
   then ``auth.test`` with the bot token, to add the bot's ``bot_id`` (Bolt needs it) to the stored bot pair by
   compare-and-swap; a failure there is logged and the install still succeeds (the pair works without it)
9. ``installed``        success page, or 302 to ``INSTALL_SUCCESS_URL``.

The pending-install cookie is cleared only by a callback whose state matched it (step 2 with a matching state, and
step 4 onwards); any other refusal leaves it alone, so nobody can cancel someone else's install in progress.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any, NamedTuple, NoReturn
from urllib.parse import urlsplit

from slack_tokens import errors, http, pages
from slack_tokens.app_secrets import AppSecrets
from slack_tokens.config import Settings
from slack_tokens.handover import Handover
from slack_tokens.models import OAuthAccess, TokenPair
from slack_tokens.observability import Metric, logger
from slack_tokens.outcomes import PairResult
from slack_tokens.slack_client import SlackClient
from slack_tokens.state import COOKIE_NAME, STATE_TTL_SECONDS, InstallState, StateRefusal, StateSigner, state_id
from slack_tokens.store import StoredPair, TokenStore
from slack_tokens.used_states import UsedStates

INSTALL_PATH = "/slack/install"
CALLBACK_PATH = "/slack/oauth_redirect"


class InstallOutcome(StrEnum):
    """How a request ended, in the order of the module docstring's steps (the value is the metric's ``reason``)."""

    STARTED = "started"  # the install start redirected the browser to Slack
    BAD_REQUEST = "bad_request"
    CONFIG = "config"
    CANCELLED = "cancelled"
    SLACK_ERROR = "slack_error"
    MISSING_STATE = StateRefusal.MISSING_STATE.value
    MISSING_COOKIE = StateRefusal.MISSING_COOKIE.value
    INVALID_STATE = StateRefusal.INVALID_STATE.value
    COOKIE_MISMATCH = StateRefusal.COOKIE_MISMATCH.value
    EXPIRED_STATE = StateRefusal.EXPIRED_STATE.value
    MISSING_CODE = "missing_code"
    STATE_USED = "state_used"
    STATE_CHECK_UNAVAILABLE = "state_check_unavailable"
    INVALID_CODE = "invalid_code"
    PERMISSION = "permission"
    SLACK_CONFIG = "slack_config"
    SLACK_UNAVAILABLE = "slack_unavailable"
    NO_TOKENS = "no_tokens"
    STATELESS_NOT_ORG = "stateless_not_org"
    STORAGE_FAILED = "storage_failed"
    INSTALLED = "installed"


class Route(StrEnum):
    """Which request a result answers."""

    INSTALL = "install"  # GET /slack/install (``start_install``)
    CALLBACK = "callback"  # GET /slack/oauth_redirect (``finish_install``)


_SUCCESS = {
    Route.INSTALL: (InstallOutcome.STARTED, "InstallStarted"),
    Route.CALLBACK: (InstallOutcome.INSTALLED, "InstallSucceeded"),
}


class Result(NamedTuple):
    """What a handler returns (``response``) and records (``metrics``)."""

    route: Route
    response: http.Response
    outcome: InstallOutcome

    @property
    def ok(self) -> bool:
        """The install started (``Route.INSTALL``) or was stored (``Route.CALLBACK``)."""
        return self.outcome is _SUCCESS[self.route][0]

    def metrics(self) -> list[Metric]:
        """``InstallStarted`` / ``InstallSucceeded`` when ``ok``, else ``InstallFailed``; the reason is the outcome."""
        name = _SUCCESS[self.route][1] if self.ok else "InstallFailed"
        return [Metric(name, reason=self.outcome.value)]


class _Answer(NamedTuple):
    """A result before ``start_install`` / ``finish_install`` says which route it answers."""

    response: http.Response
    outcome: InstallOutcome


# Slack's authorization codes: two numbers and a hex string, dot-separated (about 90 characters).
_CODE = re.compile(r"[0-9]{1,20}\.[0-9]{1,20}\.[0-9A-Za-z]{16,128}")
_SLACK_ERROR = re.compile(r"^[a-z0-9_]{1,64}$")
_TEAM = re.compile(r"[TE][A-Z0-9]{1,31}")
_STATE_STATUS = {InstallOutcome.INVALID_STATE: 401, InstallOutcome.COOKIE_MISMATCH: 401}
_NOT_VALID = "Install link not valid"
_NOT_CONFIGURED = "The app is not configured correctly."
_TITLES = {
    InstallOutcome.CONFIG: "Install unavailable",
    InstallOutcome.STATE_CHECK_UNAVAILABLE: "Install unavailable",
    InstallOutcome.STATE_USED: "Install link already used",
    InstallOutcome.STATELESS_NOT_ORG: "Install not accepted",
    InstallOutcome.NO_TOKENS: "Install failed",
    InstallOutcome.STORAGE_FAILED: "Install not saved",
}
_SLACK_CALL_BUDGET = 12.0  # seconds the code exchange may take, retries included
_STORE_RESERVE = 12.0  # seconds kept for the writes after Slack answers (a read and a write at their worst)
_AUTH_TEST_BUDGET = 3.0  # seconds the optional auth.test may take: the customer is waiting for the page


class _SlackRefusal(NamedTuple):
    """How the callback answers one kind of failed code exchange (``{code}``: Slack's error code)."""

    status: int
    outcome: InstallOutcome
    title: str
    message: str
    warn: bool  # a warning (the customer's or Slack's doing), else an error (ours: an operator must look)
    log: str


_SLACK_CONFIG = _SlackRefusal(
    500,
    InstallOutcome.SLACK_CONFIG,
    "Install unavailable",
    "The app is not configured correctly. The operators have been told.",
    False,
    "Slack rejected our app configuration; check the client id/secret and redirect URL",
)
_SLACK_REFUSALS = {
    errors.Category.GRANT: _SlackRefusal(
        400,
        InstallOutcome.INVALID_CODE,
        "Install link already used",
        "This install link was already used or has expired.",
        True,
        "Slack rejected the authorization code",
    ),
    errors.Category.PERMISSION: _SlackRefusal(
        403, InstallOutcome.PERMISSION, "Install not allowed", "Slack said: {code}.", True, "Slack refused the install"
    ),
    errors.Category.CONFIG: _SLACK_CONFIG,
    errors.Category.REQUEST: _SLACK_CONFIG,
    errors.Category.RETRYABLE: _SlackRefusal(
        503,
        InstallOutcome.SLACK_UNAVAILABLE,
        "Slack is busy",
        "Slack did not answer in time. Please start the install again in a minute (this link is used up).",
        True,
        "Slack unavailable during the code exchange",
    ),
}
_SLACK_UNEXPECTED = _SlackRefusal(
    502,
    InstallOutcome.SLACK_ERROR,
    "Install failed",
    "Slack said: {code}.",
    False,
    "Slack returned an unexpected error during the code exchange",
)


class _Proof(NamedTuple):
    """How the callback proved it finishes an install this browser started: the verified state and the cookie's
    nonce it was issued for, or neither (a stateless org install, when allowed)."""

    state: str | None
    nonce: str | None


class _Refused(Exception):
    """A check refused the callback: ``answer`` is the page to answer with."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.outcome)
        self.answer = answer


class OAuthFlow:
    def __init__(
        self,
        settings: Settings,
        secrets: AppSecrets,
        slack: SlackClient,
        store: TokenStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        used_states: UsedStates | None = None,
    ) -> None:
        self._settings = settings
        self._used_states = used_states
        self._secrets = secrets
        self._slack = slack
        self._store = store
        self._handover = Handover(store, clock=clock)
        self._clock = clock
        self._monotonic = monotonic
        self._signer: tuple[str, StateSigner] | None = None

    # -- GET /slack/install ------------------------------------------------------------------------------------

    def start_install(self, event: Mapping[str, Any]) -> Result:
        return Result(Route.INSTALL, *self._start(event))

    def _start(self, event: Mapping[str, Any]) -> _Answer:
        try:
            request = http.Request.from_event(event)
        except http.BadRequestError as exc:
            return self._fail(400, InstallOutcome.BAD_REQUEST, "Bad request", str(exc), None)
        try:
            redirect_uri = self._redirect_uri(request)
            credentials = self._secrets.app_credentials()
            issued = self._state_signer().issue(int(self._clock()), pkce=self._settings.pkce_enabled)
        except (errors.ConfigError, errors.StoreError) as exc:
            logger.error("install cannot start: configuration problem", extra={"error": str(exc)})
            message = f"{_NOT_CONFIGURED} The operators have been told."
            return self._fail(500, InstallOutcome.CONFIG, "Install unavailable", message, None)
        params = self._authorize_params(request, credentials.client_id, redirect_uri, issued)
        cookie = http.set_cookie(COOKIE_NAME, issued.nonce, max_age=STATE_TTL_SECONDS)
        response = http.redirect(http.with_query(self._settings.authorize_url, params), cookies=[cookie])
        return _Answer(response, InstallOutcome.STARTED)

    def _authorize_params(
        self, request: http.Request, client_id: str, redirect_uri: str, issued: InstallState
    ) -> dict[str, str]:
        """Slack's authorize parameters (``team`` only when the install link names a valid one)."""
        params = {
            "client_id": client_id,
            "scope": ",".join(self._settings.scopes),
            "user_scope": ",".join(self._settings.user_scopes),
            "redirect_uri": redirect_uri,
            "state": issued.state,
        }
        if issued.code_challenge:
            params.update(code_challenge=issued.code_challenge, code_challenge_method="S256")
        team = request.query.get("team", "")
        if _TEAM.fullmatch(team):
            params["team"] = team
        return params

    # -- GET /slack/oauth_redirect -----------------------------------------------------------------------------

    def finish_install(self, event: Mapping[str, Any], remaining_seconds: float) -> Result:
        end = self._monotonic() + remaining_seconds - 1.0
        try:
            answer = self._finish(event, end)
        except _Refused as refused:
            answer = refused.answer
        return Result(Route.CALLBACK, *answer)

    def _finish(self, event: Mapping[str, Any], end: float) -> _Answer:
        # 1. A request this function can read at all.
        try:
            request = http.Request.from_event(event)
        except http.BadRequestError as exc:
            return self._fail(400, InstallOutcome.BAD_REQUEST, "Bad request", str(exc), None, clear=False)
        install_url = self._install_url(request)
        # 2. Slack reported an error (the user pressed Cancel, or something else went wrong at Slack).
        if "error" in request.query:
            return self._slack_sent_error(request, install_url)
        # 3. The browser must prove it started this install: signed state bound to one of its cookies' nonces.
        proof = self._prove(request, install_url)
        # 4. A code to exchange, in the shape Slack's codes have (a cheap refusal: no Slack call).
        code = request.query.get("code", "")
        if not _CODE.fullmatch(code):
            self._refuse(
                400, InstallOutcome.MISSING_CODE, "Slack did not send a usable authorization code.", install_url
            )
        # 5. The state is single-use: spent before the code goes to Slack, refused without a Slack call after.
        if proof.state is not None:
            self._spend(proof.state, install_url)
        # 6. Exchange the code (a bounded number of Slack calls).
        access = self._exchange(request, code, proof.nonce, install_url, end)
        # 7. A stateless callback is taken only for what it is allowed for: an org-wide install.
        if proof.state is None and not access.is_enterprise_install:
            logger.warning("stateless callback for a workspace install refused", extra={"team_id": access.team_id})
            message = "Please start the install from the install link."
            self._refuse(400, InstallOutcome.STATELESS_NOT_ORG, message, install_url)
        # 8. Store every pair (and add the bot's id), then 9. the success page.
        self._store_all(access, end, install_url, stateless=proof.state is None)
        return self._installed(access, stateless=proof.state is None)

    def _slack_sent_error(self, request: http.Request, install_url: str | None) -> _Answer:
        """Cancel or another Slack error. The pending-install cookie is cleared only when the state matches it:
        anyone can send ``?error=...``, and it must not cancel someone else's install in progress."""
        clear = self._verified_quietly(request)
        slack_error = request.query["error"]
        if slack_error == "access_denied":
            cookies = [self._clear()] if clear else []
            return _Answer(http.html(200, pages.cancelled(install_url), cookies=cookies), InstallOutcome.CANCELLED)
        shown = slack_error if _SLACK_ERROR.fullmatch(slack_error) else "unknown"
        message = f"Slack reported: {shown}."
        return self._fail(400, InstallOutcome.SLACK_ERROR, "Install failed", message, install_url, clear=clear)

    def _prove(self, request: http.Request, install_url: str | None) -> _Proof:
        state, nonces = request.query.get("state"), request.cookie_values(COOKIE_NAME)
        if not state and not nonces and self._settings.allow_stateless_org_install:
            return _Proof(state=None, nonce=None)
        try:
            nonce = self._state_signer().verify(state, nonces, int(self._clock()))
        except errors.StateError as exc:
            outcome = InstallOutcome(exc.reason)
            message = f"{exc} Please start the install again from the same browser."
            status = _STATE_STATUS.get(outcome, 400)
            raise _Refused(self._fail(status, outcome, _NOT_VALID, message, install_url, clear=False)) from None
        except (errors.ConfigError, errors.StoreError) as exc:
            logger.error("callback cannot verify state: configuration problem", extra={"error": str(exc)})
            self._refuse(500, InstallOutcome.CONFIG, _NOT_CONFIGURED, install_url, clear=False)
        assert state is not None  # noqa: S101 - verify refuses a missing state
        return _Proof(state=state, nonce=nonce)

    def _verified_quietly(self, request: http.Request) -> bool:
        try:
            self._state_signer().verify(
                request.query.get("state"), request.cookie_values(COOKIE_NAME), int(self._clock())
            )
        except (errors.StateError, errors.ConfigError, errors.StoreError):
            return False
        return True

    def _spend(self, state: str, install_url: str | None) -> None:
        if self._used_states is None:
            logger.error("callback cannot check state reuse: USED_STATE_TABLE_NAME is not set")
            self._refuse(500, InstallOutcome.CONFIG, _NOT_CONFIGURED, install_url)
        try:
            first = self._used_states.spend(state_id(state), expires_at=self._state_signer().expires_at(state))
        except errors.StoreError as exc:
            logger.error("callback cannot record the spent state; refusing the install", extra={"error": str(exc)})
            message = "Please start the install again in a minute."
            self._refuse(503, InstallOutcome.STATE_CHECK_UNAVAILABLE, message, install_url)
        if not first:
            message = "This install link was already used. Please start again."
            self._refuse(400, InstallOutcome.STATE_USED, message, install_url)

    def _exchange(
        self, request: http.Request, code: str, nonce: str | None, install_url: str | None, end: float
    ) -> OAuthAccess:
        try:
            credentials = self._secrets.app_credentials()
            verifier = self._state_signer().pkce_verifier(nonce) if self._settings.pkce_enabled and nonce else None
            access = self._slack.exchange_code(
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                code=code,
                redirect_uri=self._redirect_uri(request),
                code_verifier=verifier,
                deadline=min(self._monotonic() + _SLACK_CALL_BUDGET, end - _STORE_RESERVE),
            )
        except errors.SlackApiError as exc:
            raise _Refused(self._slack_failure(exc, install_url)) from None
        except (errors.ConfigError, errors.StoreError) as exc:
            logger.error("callback cannot exchange the code: configuration problem", extra={"error": str(exc)})
            self._refuse(500, InstallOutcome.CONFIG, _NOT_CONFIGURED, install_url)
        if not access.pairs():
            self._refuse(502, InstallOutcome.NO_TOKENS, "Slack returned no tokens.", install_url)
        return access

    def _store_all(self, access: OAuthAccess, end: float, install_url: str | None, *, stateless: bool) -> None:
        """Store every pair before anything else can go wrong: these tokens exist nowhere else. A failure on one
        pair does not stop the others (the bot pair failing must not lose the user pair too)."""
        stored: list[StoredPair] = []
        failed = False
        for pair in access.pairs():
            try:
                stored.append(self._store.save_installation(pair, deadline=end))
            except errors.StoreError as exc:
                failed = True
                self._log_unsaved(pair, exc)
        if failed:
            message = "Slack approved the install but we could not save it. Please install again."
            self._refuse(500, InstallOutcome.STORAGE_FAILED, message, install_url)
        stored = [self._with_bot_id(s, end) for s in stored]
        logger.info(
            "installation stored",
            extra={
                "secret_names": [s.name for s in stored],
                "team_id": access.team_id,
                "enterprise_id": access.enterprise_id,
                "is_enterprise_install": access.is_enterprise_install,
                "stateless": stateless,
            },
        )

    def _log_unsaved(self, pair: TokenPair, exc: errors.StoreError) -> None:
        logger.error(
            "Slack issued tokens but they could not be stored; the customer must install again",
            extra={
                "secret_name": self._store.name_for(pair.key),
                "error": str(exc),
                "team_id": pair.team_id,
                "enterprise_id": pair.enterprise_id,
            },
        )

    def _installed(self, access: OAuthAccess, *, stateless: bool) -> _Answer:
        cookies = [] if stateless else [self._clear()]
        if self._settings.success_url:
            params = {k: v for k, v in (("team", access.team_id), ("enterprise", access.enterprise_id)) if v}
            response = http.redirect(http.with_query(self._settings.success_url, params), cookies=cookies)
        else:
            first = access.pairs()[0]
            response = http.html(200, pages.installed(first.team_name or first.enterprise_name), cookies=cookies)
        return _Answer(response, InstallOutcome.INSTALLED)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _with_bot_id(self, stored: StoredPair, end: float) -> StoredPair:
        """Add the bot's ``bot_id`` (from ``auth.test``) to a freshly stored bot pair; best effort, never fatal.

        The pair is already safe, so this only ever adds a field: the amended pair is staged, then promoted by
        compare-and-swap from the version just stored, so a reinstall or rotation that landed meanwhile wins. Its
        ``rotated_from`` names that version, so a crash between the two writes is finished by the next rotation
        like any stored-but-unpromoted pair."""
        pair = stored.pair
        if pair.token_type != "bot" or pair.bot_id:
            return stored
        log = {"secret_name": stored.name, "team_id": pair.team_id, "enterprise_id": pair.enterprise_id}
        writes = self._handover.write_budget
        deadline = min(self._monotonic() + _AUTH_TEST_BUDGET, end - writes)
        try:
            bot_id = self._slack.bot_id(token=pair.access_token, deadline=deadline)
        except errors.SlackApiError as exc:
            logger.warning(
                "auth.test failed; the bot pair is stored without its bot_id", extra=log | {"slack_error": exc.code}
            )
            return stored
        amended = replace(pair, bot_id=bot_id, rotated_from=stored.version_id)
        try:
            version = self._store.stage(stored.name, amended, deadline=end)
            outcome = self._handover.promote(stored.name, version, stored.version_id, end, PairResult.AMENDED)
        except errors.StoreError as exc:
            logger.warning("could not add bot_id to the stored bot pair", extra=log | {"error": str(exc)})
            return stored
        if outcome.result is not PairResult.AMENDED:
            return stored  # superseded: a newer pair is current, and it is not ours to change
        return StoredPair(name=stored.name, version_id=version, pair=amended)

    def _slack_failure(self, exc: errors.SlackApiError, install_url: str | None) -> _Answer:
        refusal = _SLACK_REFUSALS.get(exc.category, _SLACK_UNEXPECTED)
        log = {"slack_error": exc.code, "category": str(exc.category), "http_status": exc.http_status}
        if refusal is _SLACK_CONFIG:  # the credentials may have changed since they were cached
            self._secrets.invalidate()
        (logger.warning if refusal.warn else logger.error)(refusal.log, extra=log)
        message = refusal.message.format(code=exc.code)
        return self._fail(refusal.status, refusal.outcome, refusal.title, message, install_url)

    def _fail(
        self,
        status: int,
        outcome: InstallOutcome,
        title: str,
        message: str,
        install_url: str | None,
        *,
        clear: bool = True,
    ) -> _Answer:
        """The failure page (or redirect). ``clear``: the callback proved its state, so its pending install is over
        and the cookie goes; a callback that proved nothing leaves the browser's cookie alone."""
        cookies = [self._clear()] if clear else []
        if self._settings.failure_url and status != 500:
            location = http.with_query(self._settings.failure_url, {"reason": outcome.value})
            return _Answer(http.redirect(location, cookies=cookies), outcome)
        return _Answer(http.html(status, pages.failed(title, message, install_url), cookies=cookies), outcome)

    def _refuse(
        self, status: int, outcome: InstallOutcome, message: str, install_url: str | None, *, clear: bool = True
    ) -> NoReturn:
        title = _TITLES.get(outcome, _NOT_VALID)
        raise _Refused(self._fail(status, outcome, title, message, install_url, clear=clear))

    @staticmethod
    def _clear() -> str:
        return http.clear_cookie(COOKIE_NAME)

    def _state_signer(self) -> StateSigner:
        key = self._secrets.state_key()
        if self._signer is None or self._signer[0] != key:
            self._signer = (key, StateSigner(key))
        return self._signer[1]

    def _redirect_uri(self, request: http.Request) -> str:
        if self._settings.redirect_uri:
            return self._settings.redirect_uri
        if not request.host:
            raise errors.ConfigError("SLACK_REDIRECT_URI is not set and the request has no host to derive it from")
        return f"https://{request.host}{CALLBACK_PATH}"

    def _install_url(self, request: http.Request) -> str | None:
        try:
            parts = urlsplit(self._redirect_uri(request))
        except errors.ConfigError:
            return None
        return f"{parts.scheme}://{parts.netloc}{INSTALL_PATH}"
