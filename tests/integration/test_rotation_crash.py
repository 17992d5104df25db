"""Crash recovery in the deployed timeline, with real processes: RotateFunction runs in a subprocess that is
SIGKILLed (or frozen with SIGSTOP) at a step of the protocol, and the next run starts at once, as Lambda's retry
would: nobody waits for the dead run's guard to lapse, and no clock is moved between the crash and the rerun. The
fake Slack keeps a used refresh token valid for 60 s, the most this package assumes of Slack's "short" grace period.

=============================  ==========================================================================
killed where                   the rerun, started at once
=============================  ==========================================================================
after Slack answered           waits out the dead run's claim on the guard (at most its 15 s ttl), then
                               refreshes again with the same refresh token, inside the grace period -> usable
after the store-first write    waits out the claim, then promotes the stored pair with no Slack call -> usable
after the promote              nothing is due -> usable
after Slack answered, rerun    ``needs_reinstall``: the one window no design can close (the new pair existed
only after the grace period    only in the dead process)
=============================  ==========================================================================
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import CLIENT_ID, CLIENT_SECRET, GUARD_TABLE, App
from sandbox.aws import dynamodb_client
from sandbox.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
SHORT, LONG = 3600, 43200
GRACE = 60.0


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:  # overrides conftest's: this Slack's clock can jump ahead
    with FakeSlack(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock, refresh_grace_seconds=GRACE) as fake:
        yield fake


def rotator_process(*args: str, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])}
    return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "sandbox.rotate_process", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def killed(*args: str) -> None:
    process = rotator_process(*args)
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err[-3000:]


def refreshes(app: App) -> list[Any]:
    return [r for r in app.slack.requests if r.form.get("grant_type") == "refresh_token"]


def usable(app: App, name: str) -> bool:
    stored = app.stored(name)
    return (
        stored["status"] == "active"
        and app.slack.is_refresh_token_valid(stored["refresh_token"])
        and app.slack.is_access_token_valid(stored["access_token"])
    )


def due_pairs(app: App, teams: list[str]) -> list[str]:
    """Pairs due now (1-hour tokens, 2-hour margin); pairs refreshed from here on are not due again."""
    app.slack.token_lifetime = SHORT
    names = app.install_teams(teams)
    app.slack.token_lifetime = LONG
    return names


def test_killed_after_slack_answered_a_rerun_started_at_once_refreshes_again_inside_the_grace_period(
    app: App,
) -> None:
    (name,) = due_pairs(app, ["T0001"])
    original = app.stored(name)["refresh_token"]

    killed("--kill-at", "after_refresh")
    assert app.slack.refresh_count(original) == 1  # Slack did answer before the kill; the new pair died with it
    summary = finished(rotator_process())

    assert summary["rotated"] == 1 and summary["needs_reinstall"] == 0, summary
    assert summary["guard"] == "acquired" and summary["guard_took_over"] == "lapsed"  # the dead run's claim
    assert app.slack.refresh_count(original) == 2  # the same refresh token, inside the grace period
    assert usable(app, name)


def test_killed_after_the_store_first_write_a_rerun_started_at_once_promotes_it_with_no_slack_call(
    app: App,
) -> None:
    (name,) = due_pairs(app, ["T0001"])
    original = app.stored(name)["refresh_token"]

    killed("--kill-at", "after_store")
    app.slack.clear_requests()
    summary = finished(rotator_process())

    assert summary["recovered"] == 1 and summary["rotated"] == 1, summary
    assert refreshes(app) == []
    assert app.stored(name)["refresh_token"] != original and usable(app, name)


def test_killed_after_the_promote_the_rerun_has_nothing_to_do(app: App) -> None:
    (name,) = due_pairs(app, ["T0001"])

    killed("--kill-at", "after_promote")
    app.slack.clear_requests()
    summary = finished(rotator_process())

    assert summary["due"] == 0 and summary["guard"] == "not_needed", summary
    assert app.slack.requests == [] and usable(app, name)


def test_killed_after_slack_answered_and_rerun_only_after_the_grace_period_is_the_one_loss(
    app: App, clock: Clock
) -> None:
    (name,) = due_pairs(app, ["T0001"])

    killed("--kill-at", "after_refresh")
    clock.offset = GRACE + 60  # Slack's grace period for the used refresh token is over
    summary = finished(rotator_process())

    assert summary["needs_reinstall"] == 1
    assert app.stored(name)["status"] == "needs_reinstall"


def test_four_rotators_started_together_refresh_each_pair_exactly_once(app: App) -> None:
    names = due_pairs(app, [f"T{i:04d}" for i in range(1, 51)])
    originals = {name: app.stored(name)["refresh_token"] for name in names}

    summaries = [finished(p) for p in [rotator_process() for _ in range(4)]]

    assert sum(s["rotated"] for s in summaries) == 50
    assert sum(s["needs_reinstall"] for s in summaries) == 0
    assert sorted(s["guard"] for s in summaries).count("acquired") >= 1
    for name, refresh_token in originals.items():
        assert app.slack.refresh_count(refresh_token) == 1, name
        assert usable(app, name)


def test_a_run_frozen_past_its_claim_and_resumed_refreshes_nothing_another_run_owns(app: App) -> None:
    names = due_pairs(app, [f"T{i:04d}" for i in range(1, 11)])
    originals = {name: app.stored(name)["refresh_token"] for name in names}
    dynamodb = dynamodb_client(app.client.meta.endpoint_url)
    frozen = rotator_process("--stop-at", "after_promote", "--nth", "3", ROTATION_WORKERS="1")
    wait_until(lambda: process_state(frozen.pid) == "T", what="the run to freeze after its third pair")
    wait_until(lambda: guard_expires_at(dynamodb) < time.time(), what="its claim on the guard to lapse")

    other = finished(rotator_process())  # takes over the lapsed claim and rotates the rest
    resumed_at = time.time()
    os.kill(frozen.pid, signal.SIGCONT)
    late = finished(frozen)

    assert other["rotated"] == 7 and other["guard_took_over"] == "lapsed", other
    assert late["rotated"] == 3 and late["guard"] == "lost", late  # it stopped at the fence
    assert [r for r in refreshes(app) if r.time >= resumed_at] == []  # not one refresh after it woke
    for name, refresh_token in originals.items():
        assert app.slack.refresh_count(refresh_token) == 1, name
        assert usable(app, name)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def guard_expires_at(dynamodb: Any) -> float:
    answer = dynamodb.get_item(TableName=GUARD_TABLE, Key={"name": {"S": "rotation"}}, ConsistentRead=True)
    return float(answer.get("Item", {}).get("expires_at", {}).get("N", "inf"))


def wait_until(condition: Any, *, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_run_that_takes_over_refreshes_first_what_the_dead_run_was_refreshing(app: App) -> None:
    (victim,) = due_pairs(app, ["T0001"])
    original = app.stored(victim)["refresh_token"]
    killed("--kill-at", "after_refresh")  # its used refresh token now lives only for the grace period
    app.slack.token_lifetime = 1800  # ...while five pairs more urgent than it fall due
    more_urgent = app.install_teams([f"T{i:04d}" for i in range(2, 7)])
    app.slack.token_lifetime = LONG
    app.slack.clear_requests()

    summary = finished(rotator_process(ROTATION_WORKERS="1"))

    assert summary["rotated"] == 6 and summary["guard_took_over"] == "lapsed", summary
    first = refreshes(app)[0]
    assert first.form["refresh_token"] == original  # the dead run's pair, before the more urgent ones
    assert all(usable(app, name) for name in [victim, *more_urgent])


def fresh_pair(app: App, team: str = "T0001") -> str:
    """A pair far from due (12-hour tokens): only a rotation by hand refreshes it."""
    app.slack.token_lifetime = LONG
    (name,) = app.install_teams([team])
    return name


def test_a_pair_rotated_by_hand_and_killed_after_slack_answered_is_saved_by_the_next_sweep_though_not_due(
    app: App,
) -> None:
    name = fresh_pair(app)
    original = app.stored(name)["refresh_token"]
    killed("--secret-id", name, "--kill-at", "after_refresh")
    assert app.slack.refresh_count(original) == 1  # used; the pair Slack issued died with the run

    summary = finished(rotator_process())  # a scheduled sweep, started at once, with nothing due

    assert summary["rotated"] == 1 and summary["guard_took_over"] == "lapsed", summary
    assert app.slack.refresh_count(original) == 2  # refreshed again, due or not, inside the grace period
    assert usable(app, name)
    assert "in_flight" not in guard_item(app)  # safe now: its note is gone


def test_a_refresh_slack_acted_on_but_that_could_not_be_stored_leaves_a_note_and_the_next_sweep_saves_the_pair(
    app: App,
) -> None:
    name = fresh_pair(app)
    original = app.stored(name)["refresh_token"]
    # Slack acts on both attempts of the hand rotation, but answers with the other token type (never stored): the
    # run ends normally, the pair unchanged, its refresh token used and in its grace period.
    app.slack.fail_next("oauth.v2.access", times=2, rewrite=lambda body: {**body, "token_type": "user"})
    refused = finished(rotator_process("--secret-id", name))
    assert refused["failures"] == {"invalid_refresh_answer": 1}, refused
    assert guard_item(app)["owner"] == ""  # let go normally...
    assert guard_item(app)["in_flight"]  # ...but the pair's note stays

    summary = finished(rotator_process())  # nothing is due; the note makes it look

    assert summary["rotated"] == 1 and summary["guard"] == "acquired", summary
    assert app.slack.refresh_count(original) == 3 and usable(app, name)
    assert "in_flight" not in guard_item(app)


def test_a_stale_note_costs_no_refresh(app: App) -> None:
    (name,) = due_pairs(app, ["T0001"])
    killed("--kill-at", "after_promote")  # stored and promoted, but dead before its note was dropped
    assert guard_item(app)["in_flight"]
    app.slack.clear_requests()

    summary = finished(rotator_process())

    assert summary["due"] == 0 and summary["guard"] == "not_needed", summary  # the note's version is not current
    assert app.slack.requests == [] and usable(app, name)


def guard_item(app: App) -> dict[str, Any]:
    dynamodb = dynamodb_client(app.client.meta.endpoint_url)
    answer = dynamodb.get_item(TableName=GUARD_TABLE, Key={"name": {"S": "rotation"}}, ConsistentRead=True)
    return {k: next(iter(v.values())) for k, v in answer.get("Item", {}).items()}
