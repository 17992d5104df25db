"""The crash table, measured in real time: a RotateFunction process is SIGKILLed at a step of the protocol, the next
run starts when Lambda's retry would (at once, and a minute later), and the table says how long the dead run's
claim on the run guard held the next one up, and what became of the pair. No clock is moved.

Slack's grace period for a used refresh token is only documented as "short": the rows are measured with the fake
Slack keeping it 60 s (the most this package assumes), then 30 s and 90 s where the answer depends on it.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from bench.registry import Options, register
from bench.report import Report
from bench.world import World, summary_of

# (crash point, seconds from the kill to the rerun, Slack's grace period, what must become of the pair)
SCENARIOS = [
    ("before_refresh", 0.0, 60.0, "rotated"),
    ("after_refresh", 0.0, 60.0, "rotated"),
    ("after_store", 0.0, 60.0, "recovered"),
    ("after_promote", 0.0, 60.0, "nothing to do"),
    ("after_refresh", 60.0, 90.0, "rotated"),  # Lambda's first retry, inside a 90 s grace period
    ("after_refresh", 60.0, 30.0, "needs_reinstall"),  # ...and past a 30 s one: the one unavoidable loss
]


@register("crash-table", "Crash recovery in real time: kill a run at each step, rerun as Lambda's retry would")
def run(options: Options, report: Report) -> None:
    scenarios = SCENARIOS[:4] if options.quick else SCENARIOS
    rows = []
    for step, delay, grace, expected in scenarios:
        measured = measure(step, delay, grace)
        rows.append(
            [
                step.replace("_", " "),
                f"+{delay:.0f} s",
                f"{grace:.0f} s",
                f"{measured['guard_wait']:.1f} s",
                f"{measured['recovered_after']:.1f} s" if measured["recovered_after"] is not None else "-",
                str(measured["slack_calls"]),
                measured["outcome"],
            ]
        )
        report.check(
            f"killed {step}, rerun +{delay:.0f} s, grace {grace:.0f} s",
            measured["outcome"] == expected,
            f"{measured['outcome']} (expected {expected})",
        )
    header = ["killed", "rerun", "grace", "held up by the dead run", "pair usable after", "refreshes", "outcome"]
    report.table(header, rows)
    report.note(
        "held up: how long the rerun waited for the dead run's claim to lapse (ttl 15 s, from its last renewal)"
    )
    report.note("pair usable after: seconds from the kill until the rerun stored (or promoted) a pair Slack accepts")


def measure(step: str, delay: float, grace: float) -> dict[str, Any]:
    world = World(lifetime=3600, grace=grace).start()  # 1-hour tokens: due at once (margin 300 s + spread)
    try:
        world.slack.token_lifetime = 3600
        name = world.install("T0001")
        world.slack.token_lifetime = 43200  # pairs refreshed from here on are not due again
        world.env["ROTATION_MARGIN_SECONDS"] = "7200"
        dying = world.rotator("--kill-at", step)
        dying.communicate(timeout=120)
        assert dying.returncode == -signal.SIGKILL, "the run was meant to die"
        killed_at = time.time()
        refreshes_before = _refreshes(world)
        time.sleep(delay)
        rerun = world.rotator()
        out, _ = rerun.communicate(timeout=300)
        summary = summary_of(out)
        done_at = time.time()
        outcome = (
            "needs_reinstall"
            if summary["needs_reinstall"]
            else "recovered"
            if summary["recovered"]
            else "rotated"
            if summary["rotated"]
            else "nothing to do"
            if summary["due"] == 0
            else f"failed: {summary['failures']}"
        )
        usable = world.healthy(name)
        return {
            "outcome": outcome if usable or outcome == "needs_reinstall" else f"{outcome} (pair NOT usable)",
            "guard_wait": summary["guard_waited_seconds"],
            "recovered_after": (done_at - killed_at) if usable else None,
            "slack_calls": _refreshes(world) - refreshes_before,
        }
    finally:
        world.stop()


def _refreshes(world: World) -> int:
    return sum(1 for r in world.slack.requests if r.form.get("grant_type") == "refresh_token")
