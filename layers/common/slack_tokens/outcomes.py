"""What rotation and exchange runs report: each pair's ``Outcome`` and the run's summary.

Pure code. A summary's JSON has the same keys on every reply of its function (a refused event and a run stopped by
Slack included): ``SUMMARY_KEYS`` for rotation, ``EXCHANGE_SUMMARY_KEYS`` for the exchange. Each summary also lists
the CloudWatch metrics it stands for (``metrics()``); the handlers only emit them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from slack_tokens import errors
from slack_tokens.guard import Hold
from slack_tokens.observability import Metric


class PairResult(StrEnum):
    """What happened to one pair. The value is what summaries and log lines say."""

    ROTATED = "rotated"
    RECOVERED = "recovered"  # a stored but unpromoted pair, made from the current one, was promoted
    EXCHANGED = "exchanged"  # a legacy token became a rotating pair
    WOULD_EXCHANGE = "would_exchange"  # a dry run's legacy pair
    AMENDED = "amended"  # a field was added to the pair just stored (the callback's bot_id); tokens unchanged
    SUPERSEDED = "superseded"  # a reinstall (or another writer) replaced the pair while we worked: theirs wins
    LOST_RACE = "lost_race"  # the credential was refused because someone else had already replaced the pair
    NOT_DUE = "not_due"
    NOT_LEGACY = "not_legacy"  # the exchange found a rotating pair: nothing to exchange
    LEGACY = "legacy"  # rotation found a legacy pair: the exchange migrates it
    AWAITING_REINSTALL = "awaiting_reinstall"  # marked needs_reinstall earlier: only a reinstall helps
    RETIRED = "retired"  # revoked earlier (uninstalled): never refreshed again
    NOT_ATTEMPTED = "not_attempted"  # the run stopped before this pair
    DEFERRED = "deferred"  # not now (time, rate limit, the guard): the next run
    NEEDS_REINSTALL = "needs_reinstall"  # this run marked the pair: Slack refused its credential for good
    RETIRED_NOW = "retired_now"  # this call retired the pair
    ALREADY_RETIRED = "already_retired"
    MISSING = "missing"
    FAILED = "failed"


# Results that leave the pair as it was, for a reason that is not a failure.
SKIPPED = frozenset(
    {
        PairResult.NOT_DUE,
        PairResult.NOT_LEGACY,
        PairResult.LEGACY,
        PairResult.AWAITING_REINSTALL,
        PairResult.RETIRED,
        PairResult.NOT_ATTEMPTED,
        PairResult.DEFERRED,
        PairResult.LOST_RACE,
        PairResult.SUPERSEDED,
    }
)


class Outcome(NamedTuple):
    name: str
    result: PairResult
    reason: str | None = None


def store_failure(error: errors.StoreError) -> str:
    """The failure reason reported for a Secrets Manager error."""
    return "store_retryable" if error.retryable else "store_error"


SUMMARY_KEYS = frozenset(
    {
        "due",
        "rotated",
        "recovered",
        "failed",
        "skipped",
        "needs_reinstall",
        "deferred",
        "superseded",
        "failures",
        "lag_seconds",
        "guard",
        "guard_took_over",
        "blocked_by",
        "blocked_seconds",
        "guard_waited_seconds",
        "error",
    }
)
EXCHANGE_SUMMARY_KEYS = SUMMARY_KEYS | {"exchanged", "not_attempted", "dry_run", "would_exchange", "stopped"}

# The per-run counts and the metric each becomes, by run kind.
_ROTATION_METRICS = {
    "due": "RotationDue",
    "rotated": "Rotated",
    "recovered": "RotationRecovered",
    "failed": "RotationFailed",
    "needs_reinstall": "NeedsReinstall",
    "superseded": "RotationSuperseded",
    "deferred": "RotationDeferred",
}
_EXCHANGE_METRICS = {
    "due": "ExchangeDue",
    "exchanged": "Exchanged",
    "recovered": "ExchangeRecovered",
    "failed": "ExchangeFailed",
    "needs_reinstall": "NeedsReinstall",
    "superseded": "ExchangeSuperseded",
    "deferred": "ExchangeDeferred",
}


@dataclass
class Summary:
    """A rotation run: how many pairs were due, what happened to each, and the run guard's part."""

    due: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    lag_seconds: int | None = None  # how close to expiry the most urgent due pair got
    guard: Hold = field(default_factory=Hold)
    error: str | None = None  # the invocation itself was refused (a bad event): nothing was attempted

    @classmethod
    def refused(cls, problem: str) -> Summary:
        """The summary of an invocation refused for its event: the same keys as any other, and the error."""
        return cls(outcomes=[Outcome("(event)", PairResult.FAILED, "bad_event")], error=problem)

    def count(self, *results: PairResult) -> int:
        return sum(1 for o in self.outcomes if o.result in results)

    def to_json(self) -> dict[str, Any]:
        failures = Counter(o.reason or "unknown" for o in self.outcomes if o.result is PairResult.FAILED)
        return {
            "due": self.due,
            "rotated": self.count(PairResult.ROTATED, PairResult.RECOVERED),
            "recovered": self.count(PairResult.RECOVERED),
            "failed": self.count(PairResult.FAILED),
            "skipped": sum(1 for o in self.outcomes if o.result in SKIPPED),
            "needs_reinstall": self.count(PairResult.NEEDS_REINSTALL),
            "deferred": self.count(PairResult.DEFERRED),
            "superseded": self.count(PairResult.SUPERSEDED, PairResult.LOST_RACE),
            "failures": dict(failures),
            "lag_seconds": self.lag_seconds,
            **self.guard.to_json(),
            "error": self.error,
        }

    def metrics(self) -> list[Metric]:
        """The metrics of a rotation run: its counts, failures by reason, the lag, and the guard's."""
        report = self.to_json()
        found = [Metric(name, report[key]) for key, name in _ROTATION_METRICS.items()]
        found += [Metric("RotationFailedByReason", n, reason) for reason, n in report["failures"].items()]
        if self.lag_seconds is not None:
            found.append(Metric("RotationLagSeconds", self.lag_seconds, unit="Seconds"))
        return found + self.guard.metrics(blocked_metric="RotationBlocked")


@dataclass
class ExchangeSummary:
    """An exchange run: rotation's summary plus ``exchanged``, ``not_attempted``, ``dry_run``, ``would_exchange``
    (the legacy pairs a dry run found; empty otherwise) and ``stopped`` (why the run stopped early, or null)."""

    run: Summary = field(default_factory=Summary)
    dry_run: bool = False
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        report = self.run.to_json()
        report["exchanged"] = self.run.count(PairResult.EXCHANGED, PairResult.RECOVERED)
        report["rotated"] = report["exchanged"]  # in an exchange run, a pair "rotated" is a pair migrated
        report["not_attempted"] = self.run.count(PairResult.NOT_ATTEMPTED)
        report["dry_run"] = self.dry_run
        report["would_exchange"] = [o.name for o in self.run.outcomes if o.result is PairResult.WOULD_EXCHANGE]
        report["stopped"] = self.stopped
        return report

    def metrics(self) -> list[Metric]:
        report = self.to_json()
        found = self.run.guard.metrics(blocked_metric=None)
        if self.dry_run:
            return [*found, Metric("ExchangeWouldExchange", len(report["would_exchange"]))]
        found += [Metric(name, report[key]) for key, name in _EXCHANGE_METRICS.items()]
        found += [Metric("ExchangeFailedByReason", n, reason) for reason, n in report["failures"].items()]
        if self.stopped is not None:
            found.append(Metric("ExchangeStopped", reason=self.stopped))
        return found


__all__ = [
    "EXCHANGE_SUMMARY_KEYS",
    "SKIPPED",
    "SUMMARY_KEYS",
    "ExchangeSummary",
    "Outcome",
    "PairResult",
    "Summary",
    "store_failure",
]
