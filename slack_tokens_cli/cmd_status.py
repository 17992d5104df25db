"""``slack-tokens status``: one screen of health. Exit status 1 when something needs attention (a pair needs a
reinstall or has expired, the guard is blocked, the last sweep failed or is overdue, a queue holds messages, an
alarm is in ALARM)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from slack_tokens_cli.errors import ATTENTION, OK
from slack_tokens_cli.health import Health, alarms_in_alarm, findings, queue_depths, read_guard_table
from slack_tokens_cli.output import Out, ago, duration
from slack_tokens_cli.pairs import listing
from slack_tokens_cli.stack import Target

_COUNTS = ("due", "rotated", "recovered", "failed", "needs_reinstall", "deferred", "superseded")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("status", parents=[common], help="health at a glance", description=__doc__)
    parser.set_defaults(run=run)


def gather(target: Target) -> Health:
    now = time.time()
    guard, sweep = read_guard_table(target, now)
    health = Health(now, listing(target), guard, sweep, queue_depths(target), alarms_in_alarm(target))
    health.findings = findings(health, target)
    return health


def run(args: argparse.Namespace, target: Target, out: Out) -> int:
    health = gather(target)
    if args.json:
        out.json(health.to_json(target))
    else:
        render(health, target, out)
    return ATTENTION if health.findings else OK


def render(health: Health, target: Target, out: Out) -> None:
    out.line(out.paint(target.label, "bold"))
    for label, text in (
        ("Pairs", _pairs(health, out)),
        ("Most urgent", _urgent(health, out)),
        ("Last sweep", _sweep(health.last_sweep, out)),
        ("Run guard", _guard(health.guard, health.now, out)),
        ("Queues", _queues(health.queues, out)),
        ("Alarms", _alarms(health.alarms, out)),
    ):
        out.line(f"  {label:<12} {text}")
    out.line()
    if not health.findings:
        out.line(out.paint("All well.", "green"))
        return
    out.line(out.paint(f"Needs attention ({len(health.findings)}):", "red"))
    for finding in health.findings:
        out.line(f"  - {finding.message}")


def _pairs(health: Health, out: Out) -> str:
    counts = health.pair_counts()
    parts = [f"{counts['total']} total", f"{counts['by_status']['active']} active"]
    for key, style in (("needs_reinstall", "red"), ("revoked", "dim")):
        if counts["by_status"][key]:
            parts.append(out.paint(f"{counts['by_status'][key]} {key}", style))
    for key, label, style in (("expired", "expired", "red"), ("pending_rotation", "rotation pending", "yellow")):
        if counts[key]:
            parts.append(out.paint(f"{counts[key]} {label}", style))
    if counts["legacy"]:
        parts.append(f"{counts['legacy']} legacy")
    return ", ".join(parts)


def _urgent(health: Health, out: Out) -> str:
    urgent = health.most_urgent()
    if urgent is None:
        return "-"
    text = f"{urgent.name} expires in {urgent.expires_in(health.now)}"
    left = urgent.left(health.now)
    return out.paint(text, "red") if left is not None and left < 1800 else text


def _sweep(sweep: dict[str, Any] | None, out: Out) -> str:
    if sweep is None:
        return out.paint("none recorded yet", "yellow")
    summary = sweep["summary"]
    counts = " ".join(f"{k}={summary[k]}" for k in _COUNTS if summary.get(k)) or "nothing due"
    text = f"{ago(sweep['ago_seconds'])}: {counts}, guard {summary.get('guard', '?')}"
    if summary.get("lag_seconds") is not None:
        text += f", most urgent was {duration(summary['lag_seconds'])} from expiry"
    return out.paint(text, "red") if summary.get("failed") else text


def _guard(guard: dict[str, Any] | None, now: float, out: Out) -> str:
    if guard is None:
        return "-"
    if not guard["held"]:
        if guard["verdict"] == "lapsed":
            return "free: a run's claim lapsed without being let go (it died or was cut off); the next run takes it"
        released, last = guard.get("last_released_at"), guard.get("last_summary") or {}
        if not released:
            return "free"
        did = " ".join(f"{k}={last[k]}" for k in _COUNTS if last.get(k)) or "nothing"
        return f"free (last held by a run that ended {ago(now - released)}: {did})"
    until = guard["expires_at"] - now if guard["expires_at"] is not None else None
    text = f"held by {guard['holder'] or '?'}"
    if guard["acquired_at"] is not None:
        text += f" since {ago(now - guard['acquired_at'])}"
    if until is not None:
        text += f", claim ends in {duration(max(0, until))} unless renewed"
    if guard["in_flight"]:
        text += f", refreshing {len(guard['in_flight'])}"
    return out.paint(text + f" ({guard['verdict']})", "red") if guard["verdict"] != "held" else text


def _queues(queues: dict[str, int] | None, out: Out) -> str:
    if queues is None:
        return out.paint("not played locally", "dim")
    return ", ".join(out.paint(f"{q} {n}", "red" if n else "") for q, n in queues.items()) or "-"


def _alarms(alarms: list[str] | None, out: Out) -> str:
    if alarms is None:
        return out.paint("not played locally", "dim")
    return out.paint(", ".join(alarms) + " in ALARM", "red") if alarms else "none in ALARM"
