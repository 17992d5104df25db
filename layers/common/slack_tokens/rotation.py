"""Crash-safe rotation of token pairs.

The protocol, for one pair whose current version is ``V`` (the store's words: ``slack_tokens.store``)::

    LIST ──due?──> GUARD ──> READ V ──(unpromoted P made from V stored?)──yes──> PROMOTE P (recovered)
                                │ no
                                v
                  FENCE: does this run still hold the guard?  no ──> stop (another run owns the pairs now)
                                │ yes
                                v
                  REFRESH with V's refresh token  (Slack: the old refresh token now dies after a grace period)
                                │ new pair N, checked: complete and of V's token type
                                v
                  STORE FIRST: N as an unpromoted version   (retried until the invocation's deadline)
                                │
                                v
                  PROMOTE: make N current if V still is   (compare-and-swap)
                                │ conflict: someone else (a reinstall) replaced V -> theirs wins, N is dropped
                                v
                  done: N is current

Guarantees: at most one run works at a time (the run guard, ``slack_tokens.guard``, plus reserved concurrency 1 in
the template), and a dead run stops blocking the others within the guard's ttl (15 s); a run checks the guard right
before every refresh, so a run that was paused past its claim refreshes nothing another run owns; a refresh starts
only when the time left covers a whole Slack attempt and the writes at their worst; a new pair is written before
anything else happens; a run that finds N stored but unpromoted promotes it instead of refreshing again.
The one unavoidable window: a crash after Slack answers and before the first write lands, noticed only after
Slack's grace period for the old refresh token has passed. Within the grace period the next run (Lambda retries a
crashed run after about a minute) refreshes again with the same refresh token and nothing is lost.

Costs per due pair: 1 Slack call, 3 Secrets Manager calls (read, stage, promote: GetSecretValue, PutSecretValue,
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
from slack_tokens.guard import Noted, RunGuard
from slack_tokens.handover import Handover
from slack_tokens.models import PairKey, RefreshedToken, Status, TokenPair, VersionInfo, parse_version_id
from slack_tokens.observability import logger
from slack_tokens.outcomes import Outcome, PairResult, Summary, store_failure
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import SecretMeta, StoredPair, TokenStore

# Failures after which Slack may have issued (store_first_failed: did issue) a pair nobody stored: the pair's note
# stays on the guard, so the next run to hold it refreshes the pair at once, due or not (inside the grace period,
# that saves it; after it, the pair is marked needs_reinstall now rather than when it falls due).
_MAYBE_ACTED = frozenset({"answer_lost", "invalid_refresh_answer", "store_first_failed"})
GRACE_HORIZON = 50.0  # seconds after Slack may have acted on a refresh in which asking again can still save the pair
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
    unpromoted: str | None  # a version stored after the current one and not promoted: maybe a rotation to finish
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
        current, unpromoted = meta.current, meta.unpromoted
        info = parse_version_id(current) if current else None
        unpromoted_info = parse_version_id(unpromoted) if unpromoted else None
        if unpromoted is not None and _may_be_unpromoted(unpromoted_info, info):
            due.append(Candidate(meta.name, current, unpromoted, info.expires_at if info else None))
        elif info is None:  # a version we did not write (edited by hand?): read it to find out
            due.append(Candidate(meta.name, current, None, None))
        elif (
            info.status == Status.ACTIVE
            and info.expires_at is not None
            and is_due(info.expires_at, now, margin, meta.name)
        ):
            due.append(Candidate(meta.name, current, None, info.expires_at))
    return sorted(due, key=lambda c: (c.expires_at is not None, c.expires_at or 0))


def _may_be_unpromoted(unpromoted: VersionInfo | None, current: VersionInfo | None) -> bool:
    """A rotation made from the current version always expires later than it. An unpromoted version that does not
    is a leftover (e.g. a reinstall replaced the pair after a rotation) and needs no read."""
    if unpromoted is None or current is None or unpromoted.expires_at is None or current.expires_at is None:
        return True
    return unpromoted.expires_at > current.expires_at


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
        status=Status.ACTIVE,
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
        guard: RunGuard,
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
        self._guard = guard
        self._margin = margin_seconds
        self._workers = workers
        self._clock = clock
        self._monotonic = monotonic
        # Test seam: called at each named step of the protocol (before_refresh, after_refresh, after_store,
        # after_promote).
        self._crash_hook = crash_hook or (lambda step, name: None)

    # -- entry points ------------------------------------------------------------------------------------------

    def sweep(self, remaining_seconds: float, *, holder: str = "rotation") -> Summary:
        """Rotate every pair that is due (or has a stored-but-unpromoted rotation), and leave the summary on the
        guard table's ``last_sweep`` item for the operators (``slack-tokens status``)."""
        summary = self._sweep(remaining_seconds, holder)
        self._guard.record_sweep(summary.to_json(), holder)
        return summary

    def _sweep(self, remaining_seconds: float, holder: str) -> Summary:
        end = self._monotonic() + remaining_seconds - SAFETY
        candidates = self._plan()
        summary = Summary()
        self._report_plan(summary, candidates)
        if not candidates and not self._unfinished(self._guard.waiting()):
            return summary  # nothing to do: the guard is not even asked for
        with self._guard.hold(holder, wait=self._guard_wait(end), summary=summary.to_json) as hold:
            summary.guard = hold
            if not hold.state.may_work:
                summary.outcomes = [Outcome(c.name, PairResult.DEFERRED, "guard_busy") for c in candidates]
                return summary
            if hold.watched:  # another run may have worked while this one waited: look again
                candidates = self._plan()
                self._report_plan(summary, candidates)
            candidates, forced = self._inherited_first(candidates, hold.inherited)
            summary.due = len(candidates)
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                summary.outcomes = list(pool.map(lambda c: self._guarded(c, end, force=c.name in forced), candidates))
        return summary

    def rotate_one(self, secret_id: str, remaining_seconds: float, *, holder: str = "rotation") -> Summary:
        """Rotate one pair now, due or not (``{"secret_id": ...}``)."""
        end = self._monotonic() + remaining_seconds - SAFETY
        summary = Summary(due=1)
        with self._guard.hold(holder, wait=self._guard_wait(end), summary=summary.to_json) as hold:
            summary.guard = hold
            if not hold.state.may_work:
                summary.outcomes = [Outcome(secret_id, PairResult.DEFERRED, "guard_busy")]
                return summary
            inherited, forced = self._inherited_first([], hold.inherited)
            summary.outcomes = [self._guarded(c, end, force=c.name in forced) for c in inherited]
            candidate = self._candidate(secret_id)
            if candidate is None:
                summary.outcomes.append(Outcome(secret_id, PairResult.FAILED, "not_a_token_pair"))
                return summary
            if candidate.name not in forced:
                summary.outcomes.append(self._guarded(candidate, end, force=True))
        return summary

    def _inherited_first(
        self, candidates: list[Candidate], inherited: tuple[Noted, ...]
    ) -> tuple[list[Candidate], set[str]]:
        """The pairs noted on the guard by a run that stopped mid-refresh come first, and are refreshed due or not:
        their stored refresh token may be used already, and lives only for Slack's grace period. (A pair not in the
        plan, e.g. one rotated by hand, is looked up.) Returns the candidates in order and the names to force."""
        unfinished = self._unfinished(inherited)
        for noted in inherited:
            if noted.name not in unfinished:
                self._guard.done(noted.name)  # its pair moved on since (stored, reinstalled, retired): nothing to do
        forced = {name: c for name, c in unfinished.items() if c is not None}
        planned = {c.name for c in candidates}
        extra = [forced[name] for name in sorted(forced) if name not in planned]
        return extra + sorted(candidates, key=lambda c: c.name not in forced), set(forced)

    def _unfinished(self, noted: tuple[Noted, ...]) -> dict[str, Candidate | None]:
        """The noted pairs whose current version is still the one their refresh was made from (``None``: the pair
        could not be looked at now, so its note stays)."""
        found: dict[str, Candidate | None] = {}
        for entry in noted:
            try:
                candidate = self._candidate(entry.name)
            except errors.StoreError as exc:
                logger.warning("could not look at a noted pair", extra={"secret_name": entry.name, "error": str(exc)})
                found[entry.name] = None
                continue
            if candidate is not None and entry.version in (None, candidate.current_version):
                found[entry.name] = candidate
        return found

    def _candidate(self, secret_id: str) -> Candidate | None:
        meta = self._store.describe(secret_id)
        if meta is None or meta.deleted or PairKey.from_secret_name(self._store.prefix, meta.name) is None:
            return None
        info = parse_version_id(meta.current) if meta.current else None
        return Candidate(meta.name, meta.current, meta.unpromoted, info.expires_at if info else None)

    def _plan(self) -> list[Candidate]:
        return plan(self._store.list_pairs(), self._store.prefix, int(self._clock()), self._margin)

    def _report_plan(self, summary: Summary, candidates: list[Candidate]) -> None:
        summary.due = len(candidates)
        expiries = [c.expires_at for c in candidates if c.expires_at is not None]
        summary.lag_seconds = min(expiries) - int(self._clock()) if expiries else None

    def _guard_wait(self, end: float) -> float:
        return self._guard.patience(end - self._monotonic() - self._handover.write_budget)

    # -- one pair ----------------------------------------------------------------------------------------------

    def _guarded(self, candidate: Candidate, end: float, *, force: bool) -> Outcome:
        try:
            outcome = self._rotate(candidate, end, force=force)
        except errors.GuardLostError:
            outcome = Outcome(candidate.name, PairResult.DEFERRED, "guard_lost")
        except errors.StoreError as exc:
            outcome = Outcome(candidate.name, PairResult.FAILED, store_failure(exc))
            logger.error("rotation failed at Secrets Manager", extra={"secret_name": candidate.name, "error": str(exc)})
        except errors.SlackApiError as exc:
            outcome = self._slack_failure(candidate.name, exc)
        except (errors.SlackTokensError, ValueError):
            # CorruptSecretError, a config problem...: this pair fails, the others go on.
            logger.exception("rotation failed", extra={"secret_name": candidate.name})
            outcome = Outcome(candidate.name, PairResult.FAILED, "unexpected")
        if outcome.reason not in _MAYBE_ACTED:  # safe now: no later run needs to hurry for it
            self._guard.done(candidate.name)
        if outcome.result is not PairResult.FAILED:
            logger.info(
                "rotation outcome",
                extra={"secret_name": outcome.name, "result": outcome.result, "reason": outcome.reason},
            )
        return outcome

    @staticmethod
    def _slack_failure(name: str, exc: errors.SlackApiError) -> Outcome:
        """What a Slack error means for the pair. Nothing was stored over the pair in any case; only an answer Slack
        may have acted on leaves its refresh token spent (then it says so, loudly)."""
        extra = {"secret_name": name, "slack_error": exc.code, "category": str(exc.category)}
        if exc.code == "invalid_response":
            logger.error(
                "Slack's refresh answers were incomplete or of the wrong token type; nothing was stored over the "
                "pair. The used refresh token stays valid for Slack's short grace period only.",
                extra=extra,
            )
            return Outcome(name, PairResult.FAILED, "invalid_refresh_answer")
        if exc.maybe_acted:
            logger.critical(
                "Slack may have issued a new pair whose answer never arrived; the stored refresh token lives only for "
                "Slack's grace period now. If the next run is later than that, the pair needs a reinstall.",
                extra=extra,
            )
            return Outcome(name, PairResult.FAILED, "answer_lost")
        if exc.code == "ratelimited" or (isinstance(exc, errors.SlackTransportError) and not exc.request_sent):
            # Slack did not act (a rate limit whose wait the invocation cannot afford, or no time left to ask).
            logger.warning("refresh deferred to the next run; the pair is unchanged", extra=extra)
            return Outcome(
                name, PairResult.DEFERRED, "rate_limited" if exc.code == "ratelimited" else "invocation_time"
            )
        (logger.warning if exc.retryable else logger.error)(
            "rotation failed at Slack; the pair is unchanged", extra=extra
        )
        return Outcome(name, PairResult.FAILED, f"slack_{exc.category}")

    def _rotate(self, candidate: Candidate, end: float, *, force: bool) -> Outcome:
        if not self._guard.check():
            return Outcome(candidate.name, PairResult.DEFERRED, "guard_lost")
        current = self._store.read(candidate.name)
        if candidate.current_version not in (None, current.version_id):
            candidate = candidate._replace(unpromoted=None)  # the listing is stale: judge from what we read
        # Recover: a previous run stored a refreshed pair made from this version but did not promote it.
        if candidate.unpromoted is not None:
            recovered = self._handover.recover(current, candidate.unpromoted, end)
            if recovered is not None:
                return recovered
        held_back = self._held_back(current, end, force=force)
        return held_back if held_back is not None else self._refresh_and_store(current, end)

    def _held_back(self, current: StoredPair, end: float, *, force: bool) -> Outcome | None:
        """Why this pair is not refreshed now (``None``: it is)."""
        pair, name = current.pair, current.name
        if pair.status == Status.NEEDS_REINSTALL:
            return Outcome(name, PairResult.AWAITING_REINSTALL, pair.status_reason)
        if pair.status == Status.REVOKED:
            return Outcome(name, PairResult.RETIRED, pair.status_reason)
        if pair.is_legacy:
            return Outcome(name, PairResult.LEGACY)
        if (
            not force
            and pair.expires_at is not None
            and not is_due(pair.expires_at, int(self._clock()), self._margin, name)
        ):
            return Outcome(name, PairResult.NOT_DUE)
        if end - self._monotonic() < self._slack.attempt_seconds + self._handover.write_budget:
            return Outcome(name, PairResult.DEFERRED, "invocation_time")
        return None

    def _refresh_and_store(self, current: StoredPair, end: float) -> Outcome:
        """Refresh: from here until the write lands, the new pair exists only in this process."""
        name = current.name
        self._crash_hook("before_refresh", name)
        if not self._guard.note(name, current.version_id):  # on the claim, and the fence: see RunGuard.note
            return Outcome(name, PairResult.DEFERRED, "guard_lost")
        try:
            answer = self._refresh(current.pair, end)
        except errors.InvalidRefreshTokenError:
            reason = "Slack rejected the refresh token (invalid_refresh_token): the customer must reinstall the app"
            return self._handover.credential_rejected(current, "invalid_refresh_token", reason, end)
        new_pair = refreshed(
            current.pair,
            new_access=answer.access_token,
            new_refresh=answer.refresh_token,
            expires_at=answer.expires_at,
            scope=answer.scope,
            rotated_from=current.version_id,
            now=int(self._clock()),
        )
        self._crash_hook("after_refresh", name)
        return self._handover.hand_over(
            name,
            new_pair,
            current.version_id,
            end,
            done=PairResult.ROTATED,
            if_lost=_REFRESH_NOT_STORED,
            on_step=lambda step: self._crash_hook(step, name),
        )

    def _refresh(self, pair: TokenPair, end: float) -> RefreshedToken:
        """One refresh through Slack, fenced by the run guard.

        Once Slack may have acted on it (an answer lost after the request left, or an unusable answer: incomplete,
        or of the other token type, which is never stored), the used refresh token lives only for Slack's grace
        period: asking again, with the same token, is then the only way to keep the pair. So such a call is repeated
        for as long as that can still help (``GRACE_HORIZON``) and the invocation has time, whatever Slack answered
        meanwhile (a rate limit included)."""
        credentials = self._credentials()
        assert pair.refresh_token is not None  # noqa: S101 - legacy pairs never get here
        started, unusable, asked = self._monotonic(), 0, 0
        while True:
            try:
                return self._slack.refresh(
                    client_id=credentials.client_id,
                    client_secret=credentials.client_secret,
                    refresh_token=pair.refresh_token,
                    token_type=pair.token_type,
                    deadline=end - self._handover.write_budget,
                    gate=self._guard.check,
                    wait_out_rate_limits=asked == 0,  # asking again runs on the grace period's clock
                )
            except errors.SlackApiError as exc:
                asked += 1
                unusable += exc.code == "invalid_response"
                exc.maybe_acted = exc.maybe_acted or unusable > 0
                if not self._ask_again(exc, started, end, unusable):
                    raise
                logger.warning(
                    "Slack may have issued a pair whose answer was lost or unusable; asking again inside the used "
                    "refresh token's grace period",
                    extra={"slack_error": exc.code},
                )

    def _ask_again(self, exc: errors.SlackApiError, started: float, end: float, unusable: int) -> bool:
        if not exc.maybe_acted or unusable >= 2 or isinstance(exc, errors.SlackGrantError):
            return False
        if not (exc.retryable or exc.code == "invalid_response"):
            return False
        now = self._monotonic()
        fits = end - now >= self._slack.attempt_seconds + self._handover.write_budget
        return fits and now - started < GRACE_HORIZON


__all__ = ["LEGACY_FIELD", "Candidate", "Rotator", "is_due", "plan", "refreshed", "spread"]
