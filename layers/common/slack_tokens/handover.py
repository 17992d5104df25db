"""The write half of the token-pair protocol, shared by rotation and the legacy exchange.

Both hold a new pair that exists nowhere but in this process the moment Slack answers. Both then:

1. **store first** - write it as a new, unpromoted version (``TokenStore.stage``): stored, not yet current;
2. **promote** - make it the current version with compare-and-swap against the version it was made from
   (``TokenStore.promote``); a conflict means another writer (a reinstall) won, unless the conflict is our own
   earlier attempt that landed;
3. **recover** - a later run that finds an unpromoted version made from the current one promotes it;
4. **mark needs_reinstall** - when Slack says the credential is gone and nothing newer exists: value and tag, the
   secret is kept.

What each step reports is an ``outcomes.Outcome``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_tokens import errors
from slack_tokens.models import Status, TokenPair
from slack_tokens.observability import logger
from slack_tokens.outcomes import Outcome, PairResult
from slack_tokens.store import StoredPair, TokenStore


class Handover:
    """Store-first, compare-and-swap promotion, recovery and ``needs_reinstall`` marking for one store."""

    def __init__(self, store: TokenStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    @property
    def write_budget(self) -> float:
        """Time to keep for the store-first write and the promotion, each at its worst."""
        return 2 * self._store.write_worst_seconds

    def hand_over(
        self,
        name: str,
        new_pair: TokenPair,
        made_from: str,
        end: float,
        *,
        done: PairResult,
        if_lost: str,
        on_step: Callable[[str], None] = lambda step: None,
    ) -> Outcome:
        """Store ``new_pair`` first (unpromoted, retried until ``end``), then promote it over ``made_from``.
        ``done`` is the outcome of a promotion that lands; ``if_lost`` is logged (critical) when the write fails;
        ``on_step`` is called with ``after_store`` and ``after_promote`` (the crash tests' seam)."""
        try:
            version = self._store.stage(name, new_pair, deadline=end)
        except errors.SecretNotFoundError:
            # Retired (the workspace uninstalled the app) while Slack answered: nobody needs this pair any more.
            logger.warning("the pair was retired while it was being refreshed", extra={"secret_name": name})
            return Outcome(name, PairResult.SUPERSEDED, "retired")
        except errors.StoreError as exc:
            logger.critical(if_lost, extra={"secret_name": name, "error": str(exc)})
            return Outcome(name, PairResult.FAILED, "store_first_failed")
        on_step("after_store")
        outcome = self.promote(name, version, made_from, end, done)
        on_step("after_promote")
        return outcome

    def promote(self, name: str, version: str, expected: str, end: float, result: PairResult) -> Outcome:
        try:
            self._store.promote(name, version, expected_current=expected, deadline=end)
        except errors.VersionConflictError:
            meta = self._store.describe(name)
            if meta is not None and meta.current == version:
                return Outcome(name, result)  # our move landed; only its answer was lost and the retry saw it done
            logger.warning(
                "the pair changed while we worked on it (reinstall?); keeping the newer one",
                extra={"secret_name": name},
            )
            return Outcome(name, PairResult.SUPERSEDED)
        return Outcome(name, result)

    def recover(self, current: StoredPair, unpromoted: str, end: float) -> Outcome | None:
        """Promote the ``unpromoted`` version if it was made from ``current``; ``None`` when it is someone else's
        leftover."""
        found = self._store.read(current.name, version_id=unpromoted)
        if found.pair.rotated_from != current.version_id:
            return None
        logger.warning("found a stored but unpromoted pair; promoting it", extra={"secret_name": current.name})
        return self.promote(current.name, unpromoted, current.version_id, end, PairResult.RECOVERED)

    def credential_rejected(self, seen: StoredPair, code: str, reason: str, end: float) -> Outcome:
        """Slack refused the credential of ``seen`` for good. Re-read first: if the pair changed meanwhile, someone
        else won (a reinstall, another run); if a pair made from ``seen`` is stored but unpromoted, promote it;
        only when nothing newer exists is the pair marked ``needs_reinstall``."""
        meta = self._store.describe(seen.name)
        if meta is not None and meta.current is not None and meta.current != seen.version_id:
            return Outcome(seen.name, PairResult.LOST_RACE)
        if meta is not None and meta.unpromoted is not None:
            recovered = self.recover(seen, meta.unpromoted, end)
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
                return Outcome(name, PairResult.MISSING)
            if meta.deleted:  # retired already (its value cannot even be read until it is restored)
                return Outcome(meta.name, PairResult.ALREADY_RETIRED)
            current = self._store.read(meta.name)
            if current.pair.status == Status.REVOKED:
                if not meta.deleted:
                    self._store.schedule_deletion(meta.name, recovery_days=recovery_days, deadline=end)
                return Outcome(meta.name, PairResult.ALREADY_RETIRED)
            marked = current.pair.with_status(Status.REVOKED, reason, int(self._clock()))
            version = self._store.stage(meta.name, marked, deadline=end)
            outcome = self.promote(meta.name, version, current.version_id, end, PairResult.RETIRED_NOW)
            if outcome.result is PairResult.RETIRED_NOW:
                self._store.set_status_tag(meta.name, Status.REVOKED, deadline=end)
                self._store.schedule_deletion(meta.name, recovery_days=recovery_days, deadline=end)
                logger.info("token pair retired", extra={"secret_name": meta.name, "reason": reason})
                return outcome
            winner = self._store.read(meta.name)
            if winner.pair.rotated_from != current.version_id:
                return Outcome(
                    meta.name, PairResult.SUPERSEDED, "reinstalled"
                )  # not a refresh of what we saw: a reinstall
        return Outcome(name, PairResult.FAILED, "kept_changing")

    def _mark_reinstall(self, current: StoredPair, code: str, reason: str, end: float) -> Outcome:
        """The credential is gone for good: keep the secret, mark value and tag, tell the operators.

        The mark is written like any other pair (staged, then compare-and-swap from ``current``): a reinstall that
        lands meanwhile must never be overwritten by a dead pair.
        """
        marked = current.pair.with_status(Status.NEEDS_REINSTALL, reason, int(self._clock()))
        version = self._store.stage(current.name, marked, deadline=end)
        outcome = self.promote(current.name, version, current.version_id, end, PairResult.NEEDS_REINSTALL)
        if outcome.result is PairResult.SUPERSEDED:
            return outcome
        self._store.set_status_tag(current.name, Status.NEEDS_REINSTALL, deadline=end)
        logger.error(
            "token pair needs a reinstall",
            extra={
                "secret_name": current.name,
                "slack_error": code,
                "team_id": current.pair.team_id,
                "enterprise_id": current.pair.enterprise_id,
            },
        )
        return Outcome(current.name, PairResult.NEEDS_REINSTALL, code)
