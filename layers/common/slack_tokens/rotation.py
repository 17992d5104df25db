"""Crash-safe rotation of token pairs (SPEC 5).

The protocol, for one pair whose ``AWSCURRENT`` version is ``V``::

    LIST ──due?──> READ V ──(AWSPENDING P made from V exists?)──yes──> PROMOTE P (recovered)
                     │ no
                     v
                  REFRESH with V's refresh token  (Slack: the old refresh token now dies after a grace period)
                     │ new pair N
                     v
                  STORE FIRST: PutSecretValue N as AWSPENDING   (retried until the invocation's deadline)
                     │
                     v
                  PROMOTE: move AWSCURRENT V -> N, RemoveFromVersionId=V   (compare-and-swap)
                     │ conflict: someone else (a reinstall) moved AWSCURRENT -> theirs wins, N is dropped
                     v
                  done: AWSCURRENT = AWSPENDING = N

Guarantees: at most one run works at a time (``Lease`` in the store, plus reserved concurrency 1 in the
template); a refresh starts only when the time left covers Slack's call and the write; a new pair is written
before anything else happens; a run that finds N stored but unpromoted promotes it instead of refreshing again.
The one unavoidable window: a crash after Slack answers and before the first write lands, noticed only after
Slack's grace period for the old refresh token has passed. Within the grace period the next run refreshes again
with the same refresh token and nothing is lost.

Costs per due pair: 1 Slack call, 3 Secrets Manager calls (GetSecretValue, PutSecretValue,
UpdateSecretVersionStage); deciding which pairs are due costs one paginated ListSecrets for all of them.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import NamedTuple

from slack_tokens import errors
from slack_tokens.config import AppCredentials
from slack_tokens.handover import (
    DEFERRED,
    FAILED,
    NOT_DUE,
    ROTATED,
    SKIPPED_LEGACY,
    SKIPPED_REINSTALL,
    Handover,
    Outcome,
    Summary,
    store_failure,
)
from slack_tokens.models import ACTIVE, NEEDS_REINSTALL, PairKey, TokenPair, VersionInfo, parse_version_id
from slack_tokens.observability import logger
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import AWSCURRENT, AWSPENDING, CALL_WORST_SECONDS, SecretMeta, TokenStore

SLACK_BUDGET = 20.0  # seconds one refresh may take, retries included
WRITE_BUDGET = 2 * CALL_WORST_SECONDS  # the store-first write and the promotion, each at its worst
SAFETY = 5.0  # seconds kept at the end of the invocation for the summary and metric flush
LEGACY_FIELD = "legacy_access_token"
_REFRESH_NOT_STORED = (
    "Slack issued a new pair that could not be stored; a run within Slack's grace period can still recover it "
    "by refreshing again"
)


# --------------------------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------------------------


class Candidate(NamedTuple):
    name: str
    current_version: str | None
    pending_version: str | None  # AWSPENDING on a version that is not AWSCURRENT: maybe an unpromoted rotation
    expires_at: int | None


def spread(name: str, margin: int) -> int:
    """A stable per-pair offset in [0, margin/2): pairs installed together do not all fall due together."""
    return zlib.crc32(name.encode("utf-8")) % max(1, margin // 2)


def is_due(expires_at: int, now: int, margin: int, name: str) -> bool:
    return expires_at - now <= margin + spread(name, margin)


def plan(metas: Iterable[SecretMeta], prefix: str, now: int, margin: int) -> list[Candidate]:
    """Which pairs this run must look at, most urgent first, decided from listing metadata alone."""
    due: list[Candidate] = []
    for meta in metas:
        if meta.deleted or PairKey.from_secret_name(prefix, meta.name) is None:
            continue
        current = meta.version_with(AWSCURRENT)
        pending = meta.version_with(AWSPENDING)
        pending = pending if pending != current else None
        info = parse_version_id(current) if current else None
        pending_info = parse_version_id(pending) if pending else None
        if pending is not None and _may_be_unpromoted(pending_info, info):
            due.append(Candidate(meta.name, current, pending, info.expires_at if info else None))
        elif info is None:  # a version we did not write (edited by hand?): read it to find out
            due.append(Candidate(meta.name, current, None, None))
        elif info.status == ACTIVE and info.expires_at is not None and is_due(info.expires_at, now, margin, meta.name):
            due.append(Candidate(meta.name, current, None, info.expires_at))
    return sorted(due, key=lambda c: (c.expires_at is not None, c.expires_at or 0))


def _may_be_unpromoted(pending: VersionInfo | None, current: VersionInfo | None) -> bool:
    """A rotation made from the current version always expires later than it. A pending version that does not
    is a leftover (e.g. a reinstall replaced the pair after a rotation) and needs no read."""
    if pending is None or current is None or pending.expires_at is None or current.expires_at is None:
        return True
    return pending.expires_at > current.expires_at


def refreshed(
    old: TokenPair,
    *,
    new_access: str,
    new_refresh: str,
    expires_at: int,
    scope: str | None,
    rotated_from: str,
    now: int,
) -> TokenPair:
    """The pair after a refresh. The legacy token (kept after an exchange) is dropped with this promotion."""
    extra = {k: v for k, v in old.extra.items() if k != LEGACY_FIELD}
    return replace(
        old,
        access_token=new_access,
        refresh_token=new_refresh,
        expires_at=expires_at,
        scope=scope or old.scope,
        status=ACTIVE,
        status_reason=None,
        updated_at=now,
        rotated_from=rotated_from,
        extra=extra,
    )


# --------------------------------------------------------------------------------------------------------------
# The rotator
# --------------------------------------------------------------------------------------------------------------


class Rotator:
    def __init__(
        self,
        store: TokenStore,
        slack: SlackClient,
        credentials: Callable[[], AppCredentials],
        *,
        margin_seconds: int,
        workers: int = 8,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        crash_hook: Callable[[str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._handover = Handover(store, clock=clock)
        self._slack = slack
        self._credentials = credentials
        self._margin = margin_seconds
        self._workers = workers
        self._clock = clock
        self._monotonic = monotonic
        # Test seam: called at each named step of the protocol (after_refresh, after_store, after_promote).
        self._crash_hook = crash_hook or (lambda step, name: None)

    # -- entry points ------------------------------------------------------------------------------------------

    def sweep(self, remaining_seconds: float) -> Summary:
        """Rotate every pair that is due (or has a stored-but-unpromoted rotation)."""
        end = self._monotonic() + remaining_seconds - SAFETY
        now = int(self._clock())
        candidates = plan(self._store.list_pairs(), self._store.prefix, now, self._margin)
        if not candidates:  # nothing to do: no lease taken, nothing written
            return Summary(lease="not_needed")
        with self._handover.leased(remaining_seconds) as summary:
            if summary.lease == "busy":
                return summary
            summary.due = len(candidates)
            expiries = [c.expires_at for c in candidates if c.expires_at is not None]
            summary.lag_seconds = min(expiries) - now if expiries else None
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                summary.outcomes = list(pool.map(lambda c: self._guarded(c, end, force=False), candidates))
            return summary

    def rotate_one(self, secret_id: str, remaining_seconds: float) -> Summary:
        """Rotate one pair now, due or not (``{"secret_id": ...}``)."""
        end = self._monotonic() + remaining_seconds - SAFETY
        with self._handover.leased(remaining_seconds) as summary:
            if summary.lease == "busy":
                return summary
            meta = self._store.describe(secret_id)
            if meta is None or PairKey.from_secret_name(self._store.prefix, meta.name) is None:
                summary.outcomes = [Outcome(secret_id, FAILED, "not_a_token_pair")]
                return summary
            current = meta.version_with(AWSCURRENT)
            pending = meta.version_with(AWSPENDING)
            info = parse_version_id(current) if current else None
            candidate = Candidate(
                meta.name, current, pending if pending != current else None, info.expires_at if info else None
            )
            summary.due = 1
            summary.outcomes = [self._guarded(candidate, end, force=True)]
            return summary

    # -- one pair ----------------------------------------------------------------------------------------------

    def _guarded(self, candidate: Candidate, end: float, *, force: bool) -> Outcome:
        try:
            outcome = self._rotate(candidate, end, force=force)
        except errors.StoreError as exc:
            outcome = Outcome(candidate.name, FAILED, store_failure(exc))
            logger.error("rotation failed at Secrets Manager", extra={"secret_name": candidate.name, "error": str(exc)})
        except errors.SlackApiError as exc:
            outcome = Outcome(candidate.name, FAILED, f"slack_{exc.category}")
            log = logger.warning if exc.retryable else logger.error
            log(
                "rotation failed at Slack; the pair is unchanged",
                extra={"secret_name": candidate.name, "slack_error": exc.code, "category": str(exc.category)},
            )
        except (errors.SlackTokensError, ValueError):
            # CorruptSecretError, a config problem...: this pair fails, the others go on.
            logger.exception("rotation failed", extra={"secret_name": candidate.name})
            outcome = Outcome(candidate.name, FAILED, "unexpected")
        if outcome.result != FAILED:
            logger.info(
                "rotation outcome",
                extra={"secret_name": outcome.name, "result": outcome.result, "reason": outcome.reason},
            )
        return outcome

    def _rotate(self, candidate: Candidate, end: float, *, force: bool) -> Outcome:
        name = candidate.name
        current = self._store.read(name)
        if current.version_id != candidate.current_version and candidate.current_version is not None:
            candidate = candidate._replace(pending_version=None)  # the listing is stale: judge from what we read
        pair = current.pair

        # Recover: a previous run stored a refreshed pair made from this version but did not promote it.
        if candidate.pending_version is not None:
            recovered = self._handover.recover(current, candidate.pending_version, end)
            if recovered is not None:
                return recovered

        if pair.status == NEEDS_REINSTALL:
            return Outcome(name, SKIPPED_REINSTALL, pair.status_reason)
        if pair.is_legacy:
            return Outcome(name, SKIPPED_LEGACY)
        now = int(self._clock())
        if not force and pair.expires_at is not None and not is_due(pair.expires_at, now, self._margin, name):
            return Outcome(name, NOT_DUE)
        if end - self._monotonic() < SLACK_BUDGET + WRITE_BUDGET:
            return Outcome(name, DEFERRED, "invocation_time")

        # Refresh: from here until the write lands, the new pair exists only in this process.
        credentials = self._credentials()
        assert pair.refresh_token is not None  # noqa: S101 - legacy pairs returned above
        try:
            answer = self._slack.refresh(
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                refresh_token=pair.refresh_token,
                deadline=min(end - WRITE_BUDGET, self._monotonic() + SLACK_BUDGET),
            )
        except errors.InvalidRefreshTokenError:
            reason = "Slack rejected the refresh token (invalid_refresh_token): the customer must reinstall the app"
            return self._handover.credential_rejected(current, "invalid_refresh_token", reason, end)
        new_pair = refreshed(
            pair,
            new_access=answer.access_token,
            new_refresh=answer.refresh_token,
            expires_at=answer.expires_at,
            scope=answer.scope,
            rotated_from=current.version_id,
            now=int(self._clock()),
        )
        self._crash_hook("after_refresh", name)

        # Store first.
        pending_version = self._handover.store_first(name, new_pair, end, if_lost=_REFRESH_NOT_STORED)
        if isinstance(pending_version, Outcome):
            return pending_version
        self._crash_hook("after_store", name)

        # Promote (compare-and-swap).
        outcome = self._handover.promote(name, pending_version, current.version_id, end, ROTATED)
        self._crash_hook("after_promote", name)
        return outcome


__all__ = ["LEGACY_FIELD", "Candidate", "Rotator", "is_due", "plan", "refreshed", "spread"]
