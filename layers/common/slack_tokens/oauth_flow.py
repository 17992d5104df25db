"""The "Add to Slack" flow: start an install, then finish it in the OAuth callback.

The callback is a list of ordered checks, each with a named outcome (used for the page, the log line and the
``InstallFailed`` metric's ``reason``). Everything up to step 4 is cheap: no Slack call.

1. ``bad_request``      the event or its query string is malformed                        -> 400
2. ``cancelled``        Slack sent ``error=access_denied`` (the user chose Cancel)          -> 200 friendly page
   ``slack_error``      Slack sent another ``error``                                          -> 400
3. ``missing_state`` / ``missing_cookie`` / ``invalid_state`` / ``cookie_mismatch`` / ``expired_state``
                        the browser cannot prove it started this install                     -> 400 / 401
4. ``missing_code``     no code of the shape Slack's codes have                               -> 400
5. ``state_used``       the state already reached the code exchange once                     -> 400
   ``state_check_unavailable``  the spent-state table cannot be written (fails closed)        -> 503
6. exchange with Slack (at most two calls): ``invalid_code`` (400), ``permission`` (403), ``slack_config`` (500,
   logged loudly), ``slack_unavailable`` (503), ``slack_error`` (502)
7. ``stateless_not_org`` a stateless callback (allowed by the switch) for a workspace install: nothing stored -> 400
8. store every pair (retried until the invocation's deadline): ``storage_failed``            -> 500
   then ``auth.test`` with the bot token, to add the bot's ``bot_id`` (Bolt needs it) to the stored bot pair by
   compare-and-swap; a failure there is logged and the install still succeeds (the pair works without it)
9. ``installed``        success page, or 302 to ``INSTALL_SUCCESS_URL``.

The pending-install cookie is cleared only by a callback whose state matched it (steps 2 with a matching state, and
4 onwards); any other refusal leaves it alone, so nobody can cancel someone else's install in progress.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple, NoReturn
from urllib.parse import urlsplit

from slack_tokens import errors, http, pages
from slack_tokens.app_secrets import AppSecrets
from slack_tokens.config import Settings
from slack_tokens.handover import Handover
from slack_tokens.models import OAuthAccess
from slack_tokens.observability import logger
from slack_tokens.outcomes import PairResult
from slack_tokens.slack_client import SlackClient
from slack_tokens.state import COOKIE_NAME, STATE_TTL_SECONDS, StateSigner, state_id
from slack_tokens.store import StoredPair, TokenStore
from slack_tokens.used_states import UsedStates

INSTALL_PATH = "/slack/install"
CALLBACK_PATH = "/slack/oauth_redirect"
# Slack's authorization codes: two numbers and a hex string, dot-separated (about 90 characters).
_CODE = re.compile(r"[0-9]{1,20}\.[0-9]{1,20}\.[0-9A-Za-z]{16,128}")
_SLACK_ERROR = re.compile(r"^[a-z0-9_]{1,64}$")
_STATE_STATUS = {"invalid_state": 401, "cookie_mismatch": 401}
_NOT_VALID = "Install link not valid"
_TITLES = {
    "config": "Install unavailable",
    "state_check_unavailable": "Install unavailable",
    "state_used": "Install link already used",
    "stateless_not_org": "Install not accepted",
    "no_tokens": "Install failed",
}
_SLACK_CALL_BUDGET = 12.0  # seconds the code exchange may take, retries included
_STORE_RESERVE = 12.0  # seconds kept for the writes after Slack answers (a read and a write at their worst)
_AUTH_TEST_BUDGET = 3.0  # seconds the optional auth.test may take: the customer is waiting for the page


class _Proof(NamedTuple):
    """How the callback proved it finishes an install this browser started: the verified state and the cookie's
    nonce it was issued for, or neither (a stateless org install, when allowed)."""

    state: str | None
    nonce: str | None


class Result(NamedTuple):
    """What a handler returns (``response``) and records (``outcome`` is the metric reason)."""

    response: http.Response
    outcome: str
    ok: bool
    stored: tuple[str, ...] = ()


class _Refused(Exception):
    """A check refused the callback: ``result`` is the page to answer with."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.outcome)
        self.result = result


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
        try:
            request = http.Request.from_event(event)
        except http.BadRequestError as exc:
            return self._fail(400, "bad_request", "Bad request", str(exc), None)
        try:
            redirect_uri = self._redirect_uri(request)
            credentials = self._secrets.app_credentials()
            issued = self._state_signer().issue(int(self._clock()), pkce=self._settings.pkce_enabled)
        except (errors.ConfigError, errors.StoreError) as exc:
            logger.error("install cannot start: configuration problem", extra={"error": str(exc)})
            return self._fail(
                500,
                "config",
                "Install unavailable",
                "The app is not configured correctly. The operators have been told.",
                None,
            )
        params = {
            "client_id": credentials.client_id,
            "scope": ",".join(self._settings.scopes),
            "user_scope": ",".join(self._settings.user_scopes),
            "redirect_uri": redirect_uri,
            "state": issued.state,
        }
        if issued.code_challenge:
            params.update(code_challenge=issued.code_challenge, code_challenge_method="S256")
        team = request.query.get("team", "")
        if re.fullmatch(r"[TE][A-Z0-9]{1,31}", team):
            params["team"] = team
        cookie = http.set_cookie(COOKIE_NAME, issued.nonce, max_age=STATE_TTL_SECONDS)
        response = http.redirect(http.with_query(self._settings.authorize_url, params), cookies=[cookie])
        return Result(response, "started", ok=True)

    # -- GET /slack/oauth_redirect -----------------------------------------------------------------------------

    def finish_install(self, event: Mapping[str, Any], remaining_seconds: float) -> Result:
        end = self._monotonic() + remaining_seconds - 1.0
        try:
            request = http.Request.from_event(event)
        except http.BadRequestError as exc:
            return self._fail(400, "bad_request", "Bad request", str(exc), None, clear=False)
        install_url = self._install_url(request)
        try:
            return self._finish(request, install_url, end)
        except _Refused as refused:
            return refused.result

    def _finish(self, request: http.Request, install_url: str | None, end: float) -> Result:
        # 1. Slack reported an error (the user pressed Cancel, or something else went wrong at Slack).
        if "error" in request.query:
            return self._slack_sent_error(request, install_url)
        # 2. The browser must prove it started this install: signed state bound to one of its cookies' nonces.
        proof = self._prove(request, install_url)
        # 3. A code to exchange, in the shape Slack's codes have (a cheap refusal: no Slack call).
        code = request.query.get("code", "")
        if not _CODE.fullmatch(code):
            self._refuse(400, "missing_code", "Slack did not send a usable authorization code.", install_url)
        # 4. The state is single-use: spent before the code goes to Slack, refused without a Slack call after.
        if proof.state is not None:
            self._spend(proof.state, install_url)
        # 5. Exchange the code (a bounded number of Slack calls).
        access = self._exchange(request, code, proof.nonce, install_url, end)
        # 6. A stateless callback is taken only for what it is allowed for: an org-wide install.
        if proof.state is None and not access.is_enterprise_install:
            logger.warning("stateless callback for a workspace install refused", extra={"team_id": access.team_id})
            self._refuse(400, "stateless_not_org", "Please start the install from the install link.", install_url)
        return self._store_and_finish(access, install_url, end, stateless=proof.state is None)

    def _slack_sent_error(self, request: http.Request, install_url: str | None) -> Result:
        """Cancel or another Slack error. The pending-install cookie is cleared only when the state matches it:
        anyone can send ``?error=...``, and it must not cancel someone else's install in progress."""
        clear = self._verified_quietly(request)
        slack_error = request.query["error"]
        if slack_error == "access_denied":
            cookies = [self._clear()] if clear else []
            return Result(http.html(200, pages.cancelled(install_url), cookies=cookies), "cancelled", ok=False)
        shown = slack_error if _SLACK_ERROR.fullmatch(slack_error) else "unknown"
        return self._fail(400, "slack_error", "Install failed", f"Slack reported: {shown}.", install_url, clear=clear)

    def _prove(self, request: http.Request, install_url: str | None) -> _Proof:
        state, nonces = request.query.get("state"), request.cookie_values(COOKIE_NAME)
        if not state and not nonces and self._settings.allow_stateless_org_install:
            return _Proof(state=None, nonce=None)
        try:
            nonce = self._state_signer().verify(state, nonces, int(self._clock()))
        except errors.StateError as exc:
            message = f"{exc} Please start the install again from the same browser."
            raise _Refused(
                self._fail(
                    _STATE_STATUS.get(exc.reason, 400), exc.reason, _NOT_VALID, message, install_url, clear=False
                )
            ) from None
        except (errors.ConfigError, errors.StoreError) as exc:
            logger.error("callback cannot verify state: configuration problem", extra={"error": str(exc)})
            self._refuse(500, "config", "The app is not configured correctly.", install_url, clear=False)
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
            self._refuse(500, "config", "The app is not configured correctly.", install_url)
        try:
            first = self._used_states.spend(state_id(state), expires_at=self._state_signer().expires_at(state))
        except errors.StoreError as exc:
            logger.error("callback cannot record the spent state; refusing the install", extra={"error": str(exc)})
            self._refuse(503, "state_check_unavailable", "Please start the install again in a minute.", install_url)
        if not first:
            self._refuse(400, "state_used", "This install link was already used. Please start again.", install_url)

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
            self._refuse(500, "config", "The app is not configured correctly.", install_url)
        if not access.pairs():
            self._refuse(502, "no_tokens", "Slack returned no tokens.", install_url)
        return access

    def _store_and_finish(self, access: OAuthAccess, install_url: str | None, end: float, *, stateless: bool) -> Result:
        # Store every pair before anything else can go wrong: these tokens exist nowhere else. A failure on one
        # pair does not stop the others (the bot pair failing must not lose the user pair too).
        pairs = access.pairs()
        stored: list[StoredPair] = []
        failed: list[str] = []
        for pair in pairs:
            try:
                stored.append(self._store.save_installation(pair, deadline=end))
            except errors.StoreError as exc:
                failed.append(self._store.name_for(pair.key))
                logger.error(
                    "Slack issued tokens but they could not be stored; the customer must install again",
                    extra={
                        "secret_name": failed[-1],
                        "error": str(exc),
                        "team_id": pair.team_id,
                        "enterprise_id": pair.enterprise_id,
                    },
                )
        if failed:
            return self._fail(
                500,
                "storage_failed",
                "Install not saved",
                "Slack approved the install but we could not save it. Please install again.",
                install_url,
                stored=tuple(s.name for s in stored),
            )
        stored = [self._with_bot_id(s, end) for s in stored]
        names = tuple(s.name for s in stored)
        logger.info(
            "installation stored",
            extra={
                "secret_names": list(names),
                "team_id": access.team_id,
                "enterprise_id": access.enterprise_id,
                "is_enterprise_install": access.is_enterprise_install,
                "stateless": stateless,
            },
        )
        cookies = [] if stateless else [self._clear()]
        if self._settings.success_url:
            params = {k: v for k, v in (("team", access.team_id), ("enterprise", access.enterprise_id)) if v}
            return Result(
                http.redirect(http.with_query(self._settings.success_url, params), cookies=cookies),
                "installed",
                ok=True,
                stored=names,
            )
        workspace = pairs[0].team_name or pairs[0].enterprise_name
        return Result(http.html(200, pages.installed(workspace), cookies=cookies), "installed", ok=True, stored=names)

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

    def _slack_failure(self, exc: errors.SlackApiError, install_url: str | None) -> Result:
        category = exc.category
        log = {"slack_error": exc.code, "category": str(category), "http_status": exc.http_status}
        if isinstance(exc, errors.SlackGrantError):
            logger.warning("Slack rejected the authorization code", extra=log)
            return self._fail(
                400,
                "invalid_code",
                "Install link already used",
                "This install link was already used or has expired.",
                install_url,
            )
        if category is errors.Category.PERMISSION:
            logger.warning("Slack refused the install", extra=log)
            return self._fail(403, "permission", "Install not allowed", f"Slack said: {exc.code}.", install_url)
        if category in (errors.Category.CONFIG, errors.Category.REQUEST):
            self._secrets.invalidate()
            logger.error("Slack rejected our app configuration; check the client id/secret and redirect URL", extra=log)
            return self._fail(
                500,
                "slack_config",
                "Install unavailable",
                "The app is not configured correctly. The operators have been told.",
                install_url,
            )
        if category is errors.Category.RETRYABLE:
            logger.warning("Slack unavailable during the code exchange", extra=log)
            return self._fail(
                503,
                "slack_unavailable",
                "Slack is busy",
                "Slack did not answer in time. Please start the install again in a minute (this link is used up).",
                install_url,
            )
        logger.error("Slack returned an unexpected error during the code exchange", extra=log)
        return self._fail(502, "slack_error", "Install failed", f"Slack said: {exc.code}.", install_url)

    def _fail(
        self,
        status: int,
        outcome: str,
        title: str,
        message: str,
        install_url: str | None,
        *,
        stored: tuple[str, ...] = (),
        clear: bool = True,
    ) -> Result:
        """The failure page (or redirect). ``clear``: the callback proved its state, so its pending install is over
        and the cookie goes; a callback that proved nothing leaves the browser's cookie alone."""
        cookies = [self._clear()] if clear else []
        if self._settings.failure_url and status != 500:
            location = http.with_query(self._settings.failure_url, {"reason": outcome})
            return Result(http.redirect(location, cookies=cookies), outcome, ok=False, stored=stored)
        body = pages.failed(title, message, install_url)
        return Result(http.html(status, body, cookies=cookies), outcome, ok=False, stored=stored)

    def _refuse(
        self, status: int, outcome: str, message: str, install_url: str | None, *, clear: bool = True
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
