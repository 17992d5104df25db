"""The write half of the token-pair protocol, shared by rotation and the legacy exchange.

Both hold a new pair that exists nowhere but in this process the moment Slack answers. Both then:

1. **store first** - write it as a new version staged ``AWSPENDING`` only (``TokenStore.stage_pending``);
2. **promote** - move ``AWSCURRENT`` onto it with compare-and-swap against the version it was made from; a conflict
   means another writer (a reinstall) won, unless the conflict is our own earlier attempt that landed;
3. **recover** - a later run that finds an ``AWSPENDING`` version made from the current one promotes it;
4. **mark needs_reinstall** - when Slack says the credential is gone and nothing newer exists: value and tag, the
   secret is kept.

This module also holds what both report: the per-pair ``Outcome`` and the run ``Summary``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from slack_tokens import errors
from slack_tokens.guard import GuardState, Hold
from slack_tokens.models import NEEDS_REINSTALL, REVOKED, TokenPair
from slack_tokens.observability import logger
from slack_tokens.store import AWSCURRENT, AWSPENDING, StoredPair, TokenStore

# --------------------------------------------------------------------------------------------------------------
# Outcomes and the run summary
# --------------------------------------------------------------------------------------------------------------

ROTATED = "rotated"
RECOVERED = "recovered"
AMENDED = "amended"  # a field was added to the pair just stored (the callback's bot_id); tokens unchanged
SUPERSEDED = "superseded"  # a reinstall (or another writer) replaced the pair while we worked: theirs wins
LOST_RACE = "lost_race"  # the credential was refused because someone else had already replaced the pair
NOT_DUE = "not_due"
SKIPPED_LEGACY = "legacy"
SKIPPED_REINSTALL = "awaiting_reinstall"
DEFERRED = "deferred"  # not enough time left in this invocation: next run
MARKED_REINSTALL = "needs_reinstall"
SKIPPED_RETIRED = "retired"  # revoked (uninstalled): never refreshed again
RETIRED = "retired_now"  # this call retired the pair
ALREADY_RETIRED = "already_retired"
MISSING = "missing"
FAILED = "failed"


def store_failure(error: errors.StoreError) -> str:
    """The failure reason reported for a Secrets Manager error."""
    return "store_retryable" if error.retryable else "store_error"


class Outcome(NamedTuple):
    name: str
    result: str
    reason: str | None = None


@dataclass
class Summary:
    due: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    lag_seconds: int | None = None  # how close to expiry the most urgent due pair got
    guard: Hold = field(default_factory=Hold)
    error: str | None = None  # the invocation itself was refused (a bad event): nothing was attempted

    def to_json(self) -> dict[str, Any]:
        by_result = Counter(o.result for o in self.outcomes)
        failures = Counter(o.reason or "unknown" for o in self.outcomes if o.result == FAILED)
        skipped = sum(
            by_result[r]
            for r in (NOT_DUE, SKIPPED_LEGACY, SKIPPED_REINSTALL, SKIPPED_RETIRED, DEFERRED, LOST_RACE, SUPERSEDED)
        )
        return {
            "due": self.due,
            "rotated": by_result[ROTATED] + by_result[RECOVERED],
            "recovered": by_result[RECOVERED],
            "failed": by_result[FAILED],
            "skipped": skipped,
            "needs_reinstall": by_result[MARKED_REINSTALL],
            "deferred": by_result[DEFERRED],
            "superseded": by_result[SUPERSEDED] + by_result[LOST_RACE],
            "failures": dict(failures),
            "lag_seconds": self.lag_seconds,
            "guard": str(self.guard.state),
            "guard_took_over": str(self.guard.took_over) if self.guard.took_over else None,
            "blocked_by": self.guard.holder if self.guard.state is GuardState.BUSY else None,
            "blocked_seconds": round(self.guard.held_for) if self.guard.held_for is not None else None,
            "guard_waited_seconds": round(self.guard.waited, 1),
            "error": self.error,
        }


# --------------------------------------------------------------------------------------------------------------
# The shared steps
# --------------------------------------------------------------------------------------------------------------


class Handover:
    """Store-first, compare-and-swap promotion, recovery and ``needs_reinstall`` marking for one store."""

    def __init__(self, store: TokenStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    @property
    def write_budget(self) -> float:
        """Time to keep for the store-first write and the promotion, each at its worst."""
        return 2 * self._store.write_worst_seconds

    def store_first(self, name: str, new_pair: TokenPair, end: float, *, if_lost: str) -> str | Outcome:
        """Write ``new_pair`` as AWSPENDING (retried until ``end``); its version id, or the failure outcome."""
        try:
            return self._store.stage_pending(name, new_pair, deadline=end)
        except errors.SecretNotFoundError:
            # Retired (the workspace uninstalled the app) while Slack answered: nobody needs this pair any more.
            logger.warning("the pair was retired while it was being refreshed", extra={"secret_name": name})
            return Outcome(name, SUPERSEDED, "retired")
        except errors.StoreError as exc:
            logger.critical(if_lost, extra={"secret_name": name, "error": str(exc)})
            return Outcome(name, FAILED, "store_first_failed")

    def promote(self, name: str, version: str, expected: str, end: float, result: str) -> Outcome:
        try:
            self._store.promote(name, version, expected_current=expected, deadline=end)
        except errors.VersionConflictError:
            meta = self._store.describe(name)
            if meta is not None and meta.version_with(AWSCURRENT) == version:
                return Outcome(name, result)  # our move landed; only its answer was lost and the retry saw it done
            logger.warning(
                "the pair changed while we worked on it (reinstall?); keeping the newer one",
                extra={"secret_name": name},
            )
            return Outcome(name, SUPERSEDED)
        return Outcome(name, result)

    def recover(self, current: StoredPair, pending_version: str, end: float) -> Outcome | None:
        """Promote ``pending_version`` if it was made from ``current``; ``None`` when it is someone else's leftover."""
        pending = self._store.read(current.name, version_id=pending_version)
        if pending.pair.rotated_from != current.version_id:
            return None
        logger.warning("found a stored but unpromoted pair; promoting it", extra={"secret_name": current.name})
        return self.promote(current.name, pending_version, current.version_id, end, RECOVERED)

    def credential_rejected(self, seen: StoredPair, code: str, reason: str, end: float) -> Outcome:
        """Slack refused the credential of ``seen`` for good. Re-read first: if the pair changed meanwhile, someone
        else won (a reinstall, another run); if a pair made from ``seen`` is stored but unpromoted, promote it;
        only when nothing newer exists is the pair marked ``needs_reinstall``."""
        meta = self._store.describe(seen.name)
        current = meta.version_with(AWSCURRENT) if meta else None
        if current is not None and current != seen.version_id:
            return Outcome(seen.name, LOST_RACE)
        pending = meta.version_with(AWSPENDING) if meta else None
        if pending is not None and pending != current:
            recovered = self.recover(seen, pending, end)
            if recovered is not None:
                return recovered
        return self._mark_reinstall(seen, code, reason, end)

    def retire(self, name: str, reason: str, *, recovery_days: int, end: float) -> Outcome:
        """The workspace uninstalled the app (or revoked this pair's tokens): mark the pair ``revoked`` (value and
        tag) and schedule its secret's deletion after ``recovery_days``. Idempotent.

        The mark is a compare-and-swap from the version read. If a rotation replaced that version meanwhile, the
        retirement is tried again on the rotated pair; if a reinstall did, the reinstall wins (it came after the
        uninstall) and nothing is marked.
        """
        for _ in range(3):
            meta = self._store.describe(name)
            if meta is None:
                return Outcome(name, MISSING)
            if meta.deleted:  # retired already (its value cannot even be read until it is restored)
                return Outcome(meta.name, ALREADY_RETIRED)
            current = self._store.read(meta.name)
            if current.pair.status == REVOKED:
                if not meta.deleted:
                    self._store.schedule_deletion(meta.name, recovery_days=recovery_days, deadline=end)
                return Outcome(meta.name, ALREADY_RETIRED)
            marked = current.pair.with_status(REVOKED, reason, int(self._clock()))
            version = self._store.stage_pending(meta.name, marked, deadline=end)
            outcome = self.promote(meta.name, version, current.version_id, end, RETIRED)
            if outcome.result == RETIRED:
                self._store.set_status_tag(meta.name, REVOKED, deadline=end)
                self._store.schedule_deletion(meta.name, recovery_days=recovery_days, deadline=end)
                logger.info("token pair retired", extra={"secret_name": meta.name, "reason": reason})
                return outcome
            winner = self._store.read(meta.name)
            if winner.pair.rotated_from != current.version_id:
                return Outcome(meta.name, SUPERSEDED, "reinstalled")  # not a refresh of what we saw: a reinstall
        return Outcome(name, FAILED, "kept_changing")

    def _mark_reinstall(self, current: StoredPair, code: str, reason: str, end: float) -> Outcome:
        """The credential is gone for good: keep the secret, mark value and tag, tell the operators.

        The mark is written like any other pair (staged, then compare-and-swap from ``current``): a reinstall that
        lands meanwhile must never be overwritten by a dead pair.
        """
        marked = current.pair.with_status(NEEDS_REINSTALL, reason, int(self._clock()))
        version = self._store.stage_pending(current.name, marked, deadline=end)
        outcome = self.promote(current.name, version, current.version_id, end, MARKED_REINSTALL)
        if outcome.result == SUPERSEDED:
            return outcome
        self._store.set_status_tag(current.name, NEEDS_REINSTALL, deadline=end)
        logger.error(
            "token pair needs a reinstall",
            extra={
                "secret_name": current.name,
                "slack_error": code,
                "team_id": current.pair.team_id,
                "enterprise_id": current.pair.enterprise_id,
            },
        )
        return Outcome(current.name, MARKED_REINSTALL, code)
