"""Crash safety and concurrency of rotation with real processes: RotateFunction runs in a subprocess that is
SIGKILLed at each step of the protocol; then a later run must leave every pair usable (SPEC 5).

Crash-point table (asserted below):

=============================  ==========================================================================
killed where                   outcome of the next run
=============================  ==========================================================================
after Slack answered           within Slack's grace period: refreshes again with the same refresh token ->
                               usable. After the grace period: ``needs_reinstall`` (the one window no design
                               can close: the new pair existed only in the dead process).
after the store-first write    recovers: promotes the stored AWSPENDING pair, no Slack call -> usable.
after the promote              nothing left to do -> usable.
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

from slack_tokens import entrypoints
from slack_tokens.rotation import Rotator
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import ConfigSecrets, TokenStore
from tests.conftest import CLIENT_ID, CLIENT_SECRET, PREFIX, App
from tests.support.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
SHORT, LONG = 3600, 43200


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
    with FakeSlack(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock, refresh_grace_seconds=60) as fake:
        yield fake


def run_process(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])}
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "tests.support.rotate_process", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def later_run(app: App, seconds_later: float) -> dict[str, Any]:
    """A run some time later (the dead process's lease has expired by then), in this process."""
    client = entrypoints.secretsmanager_client()
    secrets = ConfigSecrets(client, app_secret_id=os.environ["SLACK_APP_SECRET_ID"], state_secret_id=None)
    rotator = Rotator(
        TokenStore(client, PREFIX),
        SlackClient(app.slack.api_url),
        secrets.app_credentials,
        margin_seconds=7200,
        clock=lambda: time.time() + seconds_later,
    )
    return rotator.sweep(600).to_json()


def usable(app: App, name: str) -> bool:
    stored = app.stored(name)
    return (
        stored["status"] == "active"
        and app.slack.is_refresh_token_valid(stored["refresh_token"])
        and app.slack.is_access_token_valid(stored["access_token"])
    )


@pytest.mark.parametrize(
    ("kill_at", "expected"),
    [
        ("after_refresh", "rotated"),
        ("after_store", "recovered"),
        ("after_promote", None),
    ],
)
def test_killed_at_each_step_the_next_run_leaves_the_pair_usable(app: App, kill_at: str, expected: str | None) -> None:
    app.slack.token_lifetime = SHORT
    (name,) = app.install_teams(["T0001"])
    original = app.stored(name)
    app.slack.token_lifetime = LONG  # pairs refreshed from now on are not due again

    died = run_process("--kill-at", kill_at)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    assert app.slack.refresh_count(original["refresh_token"]) == 1  # Slack did answer before the kill

    app.slack.clear_requests()
    summary = later_run(app, seconds_later=1200)

    assert usable(app, name)
    if expected == "rotated":
        assert summary["rotated"] == 1 and summary["recovered"] == 0
        assert app.slack.refresh_count(original["refresh_token"]) == 2  # the same refresh token, within grace
    elif expected == "recovered":
        assert summary["recovered"] == 1
        assert not [r for r in app.slack.requests if r.form.get("grant_type") == "refresh_token"]
    else:
        assert summary["due"] == 0
    assert app.stored(name)["refresh_token"] != original["refresh_token"]


def test_killed_after_slack_answered_and_noticed_after_the_grace_period_is_the_one_loss(app: App, clock: Clock) -> None:
    app.slack.token_lifetime = SHORT
    (name,) = app.install_teams(["T0001"])

    assert run_process("--kill-at", "after_refresh").returncode == -signal.SIGKILL
    clock.offset = 120  # Slack's grace period for the used refresh token (60 s here) is over

    summary = later_run(app, seconds_later=1200)

    assert summary["needs_reinstall"] == 1
    assert app.stored(name)["status"] == "needs_reinstall"


def test_concurrent_processes_refresh_each_pair_exactly_once(app: App) -> None:
    app.slack.token_lifetime = SHORT
    names = app.install_teams([f"T{i:04d}" for i in range(1, 51)])
    originals = {name: app.stored(name)["refresh_token"] for name in names}
    app.slack.token_lifetime = LONG
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])}

    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.rotate_process"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    summaries = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-2000:]
        summaries.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(s["rotated"] for s in summaries) == 50
    assert sum(s["needs_reinstall"] for s in summaries) == 0
    for name, refresh_token in originals.items():
        assert app.slack.refresh_count(refresh_token) == 1, name
        assert usable(app, name)
