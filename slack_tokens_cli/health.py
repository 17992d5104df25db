"""What ``status`` gathers: the pairs by status, the run guard and the last sweep (two DynamoDB reads), the queue
depths and the alarms in ALARM; and the findings that need an operator (each makes ``status`` exit 1)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from slack_tokens.guard import LAST_SWEEP, ROTATION, Claim, Verdict, judge
from slack_tokens_cli.output import duration
from slack_tokens_cli.pairs import STATUSES, PairRow
from slack_tokens_cli.stack import Target

_DEPTHS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
STALE_SWEEPS = 3  # a last sweep older than this many schedule periods is overdue


@dataclass
class Finding:
    code: str
    message: str


@dataclass
class Health:
    now: float
    pairs: list[PairRow]
    guard: dict[str, Any] | None
    last_sweep: dict[str, Any] | None
    queues: dict[str, int] | None
    alarms: list[str] | None
    findings: list[Finding] = field(default_factory=list)

    def pair_counts(self) -> dict[str, Any]:
        by_status = Counter(r.status for r in self.pairs)
        return {
            "total": len(self.pairs),
            "by_status": {s: by_status[s] for s in STATUSES},
            "pending_rotation": sum(r.pending_rotation for r in self.pairs),
            "legacy": sum(r.legacy and r.status != "revoked" for r in self.pairs),
            "expired": sum(r.expired(self.now) for r in self.pairs),
        }

    def most_urgent(self) -> PairRow | None:
        timed = [r for r in self.pairs if r.status == "active" and r.expires_at is not None]
        return min(timed, key=lambda r: r.expires_at or 0) if timed else None

    def to_json(self, target: Target) -> dict[str, Any]:
        urgent = self.most_urgent()
        return {
            "stack": target.label,
            "prefix": target.prefix,
            "now": int(self.now),
            "pairs": self.pair_counts(),
            "most_urgent": None
            if urgent is None
            else {"name": urgent.name, "expires_at": urgent.expires_at, "expires_in_seconds": urgent.left(self.now)},
            "last_sweep": self.last_sweep,
            "guard": self.guard,
            "queues": self.queues,
            "alarms_in_alarm": self.alarms,
            "attention": [{"code": f.code, "message": f.message} for f in self.findings],
            "ok": not self.findings,
        }


def read_guard_table(target: Target, now: float) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The guard (who holds it, until when, what a watcher would make of it) and the last sweep's record."""
    if target.guard_table is None:
        return None, None
    client, table = target.aws.client("dynamodb"), target.guard_table
    items = {}
    for name in (ROTATION, LAST_SWEEP):
        read = partial(client.get_item, TableName=table, Key={"name": {"S": name}}, ConsistentRead=True)
        items[name] = target.aws.call("read the run guard", read).get("Item")
    return _guard(items[ROTATION], now), _sweep(items[LAST_SWEEP], now)


def _guard(item: dict[str, Any] | None, now: float) -> dict[str, Any]:
    claim = Claim.from_item(item) if item else None
    verdict = judge(claim, "", now)  # as a run that wants it would judge it
    held = verdict is Verdict.HELD or verdict.loud
    return {
        "held": held,
        "verdict": str(verdict),
        "holder": claim.holder if claim and held else None,
        "acquired_at": claim.acquired_at if claim and held else None,
        "expires_at": claim.expires_at if claim and held else None,
        "in_flight": [noted.name for noted in claim.in_flight] if claim else [],  # pairs a run is refreshing
        "last_released_at": _number(item, "released_at"),
        "last_summary": _json(item, "last_summary"),  # what the last run that held it did
    }


def _sweep(item: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    at = _number(item, "at")
    if item is None or at is None:
        return None
    holder = item.get("holder", {}).get("S")
    return {"at": at, "ago_seconds": int(now - at), "holder": holder, "summary": _json(item, "summary") or {}}


def _json(item: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(item[key]["S"]) if item and key in item else None
    except (KeyError, TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(item: dict[str, Any] | None, key: str) -> float | None:
    try:
        return float(item[key]["N"]) if item and key in item else None
    except (KeyError, TypeError, ValueError):
        return None


def queue_depths(target: Target) -> dict[str, int] | None:
    if target.queues is None:
        return None
    client = target.aws.client("sqs")
    depths = {}
    for logical, url in target.queues.items():
        read = partial(client.get_queue_attributes, QueueUrl=url, AttributeNames=list(_DEPTHS))
        answer = target.aws.call(f"read queue {logical}", read)
        attributes = answer.get("Attributes", {})
        depths[logical] = sum(int(attributes.get(k, 0)) for k in _DEPTHS)
    return depths


def alarms_in_alarm(target: Target) -> list[str] | None:
    """The stack's alarms in ALARM: one DescribeAlarms by the names CloudFormation gives them (``<stack>-…``), kept
    to the alarms the stack lists when it lists any."""
    if target.alarms is None or target.alarm_prefix is None:
        return None
    client = target.aws.client("cloudwatch")
    alarms = target.aws.pages(
        "read the alarms",
        client,
        "describe_alarms",
        "MetricAlarms",
        AlarmNamePrefix=target.alarm_prefix,
        StateValue="ALARM",
    )
    names = [a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM"]  # moto drops StateValue with a prefix
    return sorted(n for n in names if not target.alarms or n in target.alarms)


def findings(health: Health, target: Target) -> list[Finding]:
    """What needs an operator, most important first."""
    found: list[Finding] = []
    counts = health.pair_counts()
    if counts["by_status"]["needs_reinstall"]:
        names = [r.name for r in health.pairs if r.status == "needs_reinstall"]
        found.append(Finding("needs_reinstall", f"{len(names)} pair(s) need a reinstall: {', '.join(names[:5])}"))
    if counts["expired"]:
        names = [r.name for r in health.pairs if r.expired(health.now)]
        found.append(Finding("expired", f"{len(names)} active pair(s) expired: {', '.join(names[:5])}"))
    found += _guard_findings(health)
    found += _sweep_findings(health, target)
    for logical, depth in (health.queues or {}).items():
        if depth:
            found.append(Finding("queue_messages", f"{logical} holds {depth} message(s)"))
    for alarm in health.alarms or []:
        found.append(Finding("alarm", f"alarm {alarm} is in ALARM"))
    return found


def _guard_findings(health: Health) -> list[Finding]:
    guard, sweep = health.guard, health.last_sweep
    found = []
    if guard is not None and Verdict(guard["verdict"]).loud:
        found.append(
            Finding("guard_blocked", f"the run guard holds a value no working run writes ({guard['verdict']})")
        )
    if sweep is not None and sweep["summary"].get("guard") == "busy":
        holder = sweep["summary"].get("blocked_by") or "another run"
        found.append(Finding("guard_blocked", f"the last sweep was turned away by the run guard (held by {holder})"))
    if sweep is not None and sweep["summary"].get("guard") in ("unavailable", "lost"):
        found.append(Finding("guard_problem", f"the last sweep reported guard: {sweep['summary']['guard']}"))
    return found


def _sweep_findings(health: Health, target: Target) -> list[Finding]:
    sweep = health.last_sweep
    if sweep is None:
        return []
    found = []
    summary = sweep["summary"]
    if summary.get("failed"):
        found.append(
            Finding("sweep_failed", f"the last sweep failed {summary['failed']} pair(s): {summary.get('failures')}")
        )
    if target.sweep_every and sweep["ago_seconds"] > STALE_SWEEPS * target.sweep_every:
        found.append(
            Finding(
                "sweep_overdue",
                f"the last sweep ran {duration(sweep['ago_seconds'])} ago "
                f"(scheduled every {duration(target.sweep_every)})",
            )
        )
    return found
