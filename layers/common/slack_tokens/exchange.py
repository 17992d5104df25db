"""Migration of legacy, non-expiring tokens to rotating pairs with ``oauth.v2.exchange``.

The protocol, for one legacy pair whose current version is ``L`` (``refresh_token`` null)::

    READ L ──> EXCHANGE L's token  (Slack: once only; the answer cannot be asked for again)
                 │ new pair N                      │ token_already_exchanged
                 v                                 v
              STORE FIRST: N as an              unpromoted P made from L stored? ──yes──> PROMOTE P (recovered)
              unpromoted version                   │ no
                 │                                 v
                 v                              mark L needs_reinstall (the new pair is lost; L keeps working)
              PROMOTE: make N current if L still is   (compare-and-swap; conflict: a reinstall won, keep theirs)

N keeps L's token in ``legacy_access_token`` until the rotator's first refresh of N, whose promotion drops it
(Slack revokes the legacy token at that same moment). The legacy token is never revoked here.

Runs hold the same run guard as the rotator (``slack_tokens.guard``), so an exchange and a rotation never work at
once, and the guard is checked right before every exchange call. A dry run reads only: no guard, no Slack call,
no write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from slack_tokens import errors
from slack_tokens.config import AppCredentials
from slack_tokens.guard import RunGuard
from slack_tokens.handover import Handover
from slack_tokens.models import OAuthAccess, PairKey, Status, TokenPair, parse_version_id
from slack_tokens.observability import logger
from slack_tokens.outcomes import ExchangeSummary, Outcome, PairResult, store_failure
from slack_tokens.rotation import LEGACY_FIELD, SAFETY
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import SecretMeta, StoredPair, TokenStore

ROTATION_OFF_HELP = (
    "token rotation is not enabled for this Slack app: turn it on under the app settings, OAuth & Permissions > "
    "Advanced token security via token rotation > Opt in, then run the exchange again. Turning rotation on is "
    "irreversible. No pair was changed and every legacy token keeps working."
)
_EXCHANGE_NOT_STORED = (
    "Slack exchanged the legacy token but the new pair could not be stored; the legacy token keeps working, and "
    "the workspace must reinstall the app to get a rotating pair"
)
ANSWER_LOST_HELP = (
    "the exchange request reached Slack but its answer was lost: the legacy token keeps working, but Slack will "
    "not exchange it again (token_already_exchanged); the workspace must reinstall the app to get a rotating pair"
)


# --------------------------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------------------------


def plan(metas: Iterable[SecretMeta], prefix: str) -> list[str]:
    """The legacy pairs under the prefix, decided from listing metadata (the version ids) alone."""
    names: list[str] = []
    for meta in metas:
        if meta.deleted or PairKey.from_secret_name(prefix, meta.name) is None:
            continue
        info = parse_version_id(meta.current) if meta.current else None
        if info is None or (info.status == Status.ACTIVE and info.expires_at is None):  # unknown versions: read to see
            names.append(meta.name)
    return sorted(names)


def exchanged(old: TokenPair, answer: OAuthAccess, *, legacy_version: str, now: int) -> TokenPair:
    """The rotating pair that replaces ``old``: the answer's pair of the same type, ``old``'s identity."""
    fresh = answer.bot if old.token_type == "bot" else answer.user
    if fresh is None or fresh.refresh_token is None or fresh.expires_at is None:
        raise errors.SlackUnknownError(
            "invalid_response",
            f"the exchange answer holds no rotating {old.token_type} pair",
            method="oauth.v2.exchange",
        )
    return replace(
        old,
        access_token=fresh.access_token,
        refresh_token=fresh.refresh_token,
        expires_at=fresh.expires_at,
        scope=fresh.scope or old.scope,
        app_id=old.app_id or fresh.app_id,
        team_name=old.team_name or fresh.team_name,
        enterprise_name=old.enterprise_name or fresh.enterprise_name,
        status=Status.ACTIVE,
        status_reason=None,
        updated_at=now,
        rotated_from=legacy_version,
        extra={**old.extra, LEGACY_FIELD: old.access_token},
    )


def held_back(current: StoredPair) -> Outcome | None:
    """Why this pair is not exchanged (``None``: it is a legacy pair to exchange)."""
    if current.pair.status == Status.NEEDS_REINSTALL:
        return Outcome(current.name, PairResult.AWAITING_REINSTALL, current.pair.status_reason)
    if current.pair.status == Status.REVOKED:
        return Outcome(current.name, PairResult.RETIRED, current.pair.status_reason)
    if not current.pair.is_legacy:
        return Outcome(current.name, PairResult.NOT_LEGACY)
    return None


class _StopRun(Exception):
    """This pair's error means no other pair can succeed either (app settings or credentials)."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def _slack_failure(name: str, exc: errors.SlackApiError) -> Outcome:
    """What a Slack error (other than the ones that stop the run) means for one legacy pair, which is unchanged."""
    if exc.code == "ratelimited":  # Slack did not act, and the wait does not fit this invocation
        return Outcome(name, PairResult.DEFERRED, "rate_limited")
    if isinstance(exc, errors.SlackTransportError):
        if exc.code == "deadline_exceeded":
            return Outcome(name, PairResult.DEFERRED, "invocation_time")
        if not exc.request_sent:
            logger.warning("could not reach Slack; the next run retries", extra={"secret_name": name})
            return Outcome(name, PairResult.FAILED, "slack_retryable")
        logger.error(ANSWER_LOST_HELP, extra={"secret_name": name, "slack_error": exc.code})
        return Outcome(name, PairResult.FAILED, "answer_lost")
    log = logger.warning if exc.retryable else logger.error
    log(
        "exchange failed at Slack; the pair is unchanged",
        extra={"secret_name": name, "slack_error": exc.code, "category": str(exc.category)},
    )
    return Outcome(name, PairResult.FAILED, f"slack_{exc.category}")


# --------------------------------------------------------------------------------------------------------------
# The exchanger
# --------------------------------------------------------------------------------------------------------------


class Exchanger:
    def __init__(
        self,
        store: TokenStore,
        slack: SlackClient,
        credentials: Callable[[], AppCredentials],
        *,
        guard: RunGuard,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._handover = Handover(store, clock=clock)
        self._slack = slack
        self._credentials = credentials
        self._guard = guard
        self._clock = clock
        self._monotonic = monotonic

    def run(
        self, secret_ids: Sequence[str] | None, *, dry_run: bool, remaining_seconds: float, holder: str = "exchange"
    ) -> ExchangeSummary:
        """Exchange the given pairs, or every legacy pair under the prefix when ``secret_ids`` is None."""
        end = self._monotonic() + remaining_seconds - SAFETY
        if dry_run:
            return self._dry_run(secret_ids)
        result = ExchangeSummary()
        summary = result.run
        wait = self._guard.patience(end - self._monotonic() - self._handover.write_budget)
        with self._guard.hold(holder, wait=wait, summary=result.to_json) as hold:
            summary.guard = hold
            if not hold.state.may_work:
                return result
            names = self._candidates(secret_ids)
            summary.due = len(names)
            for index, name in enumerate(names):
                try:
                    summary.outcomes.append(self._guarded(name, end))
                except _StopRun as stop:
                    result.stopped = stop.reason
                    summary.outcomes.append(stop.outcome)
                    summary.outcomes += [
                        Outcome(rest, PairResult.NOT_ATTEMPTED, stop.reason) for rest in names[index + 1 :]
                    ]
                    break
        return result

    # -- candidates --------------------------------------------------------------------------------------------

    def _candidates(self, secret_ids: Sequence[str] | None) -> list[str]:
        if secret_ids is None:
            return plan(self._store.list_pairs(), self._store.prefix)
        return list(dict.fromkeys(secret_ids))

    def _dry_run(self, secret_ids: Sequence[str] | None) -> ExchangeSummary:
        result = ExchangeSummary(dry_run=True)
        names = self._candidates(secret_ids)
        result.run.due = len(names)
        for name in names:
            try:
                current = self._current(name)
            except errors.StoreError as exc:
                result.run.outcomes.append(Outcome(name, PairResult.FAILED, store_failure(exc)))
                continue
            if current is None:
                result.run.outcomes.append(Outcome(name, PairResult.FAILED, "not_a_token_pair"))
            else:
                result.run.outcomes.append(held_back(current) or Outcome(current.name, PairResult.WOULD_EXCHANGE))
        logger.info("exchange dry run: nothing was changed", extra={"would_exchange": len(result.run.outcomes)})
        return result

    def _current(self, name: str) -> StoredPair | None:
        """The current version of pair ``name`` (a name or ARN); ``None`` when it is not a pair of this store."""
        meta = self._store.describe(name)
        if meta is None or meta.deleted or PairKey.from_secret_name(self._store.prefix, meta.name) is None:
            return None
        return self._store.read(meta.name)

    # -- one pair ----------------------------------------------------------------------------------------------

    def _guarded(self, name: str, end: float) -> Outcome:
        try:
            outcome = self._exchange(name, end)
        except errors.GuardLostError:
            raise _StopRun(Outcome(name, PairResult.DEFERRED, "guard_lost"), "guard_lost") from None
        except errors.TokenRotationNotEnabledError:
            logger.error(ROTATION_OFF_HELP, extra={"secret_name": name, "slack_error": "token_rotation_not_enabled"})
            raise _StopRun(
                Outcome(name, PairResult.FAILED, "token_rotation_not_enabled"), "token_rotation_not_enabled"
            ) from None
        except errors.SlackConfigError as exc:
            logger.error(
                "Slack refused the app credentials; fix the app credentials secret, then run the exchange again",
                extra={"secret_name": name, "slack_error": exc.code},
            )
            raise _StopRun(Outcome(name, PairResult.FAILED, "slack_config"), exc.code) from None
        except errors.SlackApiError as exc:
            outcome = _slack_failure(name, exc)
        except errors.StoreError as exc:
            logger.error("exchange failed at Secrets Manager", extra={"secret_name": name, "error": str(exc)})
            return Outcome(name, PairResult.FAILED, store_failure(exc))
        except (errors.SlackTokensError, ValueError):
            logger.exception("exchange failed", extra={"secret_name": name})
            return Outcome(name, PairResult.FAILED, "unexpected")
        if outcome.result is not PairResult.FAILED:
            logger.info(
                "exchange outcome", extra={"secret_name": name, "result": outcome.result, "reason": outcome.reason}
            )
        return outcome

    def _exchange(self, name: str, end: float) -> Outcome:
        current = self._current(name)
        if current is None:
            return Outcome(name, PairResult.FAILED, "not_a_token_pair")
        not_legacy = held_back(current)
        if not_legacy is not None:
            return not_legacy
        name = current.name
        if end - self._monotonic() < self._slack.attempt_seconds + self._handover.write_budget:
            return Outcome(name, PairResult.DEFERRED, "invocation_time")

        # Exchange: from here until the write lands, the new pair exists only in this process.
        credentials = self._credentials()
        try:
            answer = self._slack.exchange_legacy_token(
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                token=current.pair.access_token,
                deadline=end - self._handover.write_budget,
                gate=self._guard.check,
            )
        except errors.TokenAlreadyExchangedError:
            # A stored-but-unpromoted exchange made from this version wins; without one the new pair is lost.
            reason = (
                "the legacy token was already exchanged (token_already_exchanged) and no stored pair came from it; "
                "the legacy token keeps working until then, but the customer must reinstall the app"
            )
            return self._handover.credential_rejected(current, "token_already_exchanged", reason, end)
        except errors.SlackGrantError as exc:  # invalid_token, authorization_not_found
            reason = f"Slack refused the legacy token ({exc.code})"
            return self._handover.credential_rejected(current, exc.code, reason, end)
        new_pair = exchanged(current.pair, answer, legacy_version=current.version_id, now=int(self._clock()))

        return self._handover.hand_over(
            name, new_pair, current.version_id, end, done=PairResult.EXCHANGED, if_lost=_EXCHANGE_NOT_STORED
        )


__all__ = ["Exchanger", "exchanged", "held_back", "plan"]
