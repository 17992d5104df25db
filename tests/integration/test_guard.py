"""The run guard on DynamoDB (moto server over HTTP): exclusive, released by a dead run within its ttl, renewed by a
live one, loud about values no working run writes, and never a reason for rotation to stop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from sandbox.app import GUARD_TABLE, App
from sandbox.aws import dynamodb_client
from slack_tokens import entrypoints
from slack_tokens.guard import GuardState, Noted, RunGuard, Verdict

TTL = 6.0  # renewals every 2 s: short enough for these tests, long enough for a busy machine


@pytest.fixture
def dynamodb(app: App) -> Any:
    return dynamodb_client(app.client.meta.endpoint_url)


@pytest.fixture
def guards(dynamodb: Any) -> Iterator[list[RunGuard]]:
    made: list[RunGuard] = []
    yield made
    for guard in made:
        guard.release()


def new_guard(dynamodb: Any, guards: list[RunGuard], ttl: float = TTL) -> RunGuard:
    guard = RunGuard(lambda: dynamodb, GUARD_TABLE, ttl=ttl)
    guards.append(guard)
    return guard


def item(dynamodb: Any, name: str = "rotation") -> dict[str, Any]:
    answer = dynamodb.get_item(TableName=GUARD_TABLE, Key={"name": {"S": name}}, ConsistentRead=True)
    return {k: next(iter(v.values())) for k, v in answer.get("Item", {}).items()}


def put_claim(dynamodb: Any, **attributes: dict[str, str]) -> None:
    """The item exactly as some other writer left it."""
    dynamodb.put_item(TableName=GUARD_TABLE, Item={"name": {"S": "rotation"}, **attributes})


def dead_run_claim(now: float, *, expires_in: float, acquired_ago: float = 1.0) -> dict[str, dict[str, str]]:
    return {
        "owner": {"S": "dead-run"},
        "holder": {"S": "RotateFunction/dead"},
        "acquired_at": {"N": str(now - acquired_ago)},
        "expires_at": {"N": str(now + expires_in)},
        "rev": {"S": "rev-of-the-dead-run"},
    }


def test_one_holder_at_a_time_and_letting_go_leaves_the_summary(dynamodb: Any, guards: list[RunGuard]) -> None:
    first, second = new_guard(dynamodb, guards), new_guard(dynamodb, guards)

    assert first.acquire("first", wait=0).state is GuardState.ACQUIRED
    busy = second.acquire("second", wait=0)
    assert busy.state is GuardState.BUSY and busy.holder == "first"
    first.release({"rotated": 3})

    assert second.acquire("second", wait=0).state is GuardState.ACQUIRED
    assert json.loads(item(dynamodb)["last_summary"]) == {"rotated": 3}


def test_a_dead_runs_claim_lapses_and_the_waiting_run_takes_it(dynamodb: Any, guards: list[RunGuard]) -> None:
    now = time.time()
    put_claim(dynamodb, **dead_run_claim(now, expires_in=3))  # what a run killed 12 s into a 15 s claim leaves

    hold = new_guard(dynamodb, guards).acquire("next", wait=10)

    assert hold.state is GuardState.ACQUIRED and hold.took_over is Verdict.LAPSED and hold.watched
    assert 2 <= hold.waited < 6  # it waited for the lapse, not for a whole ttl or longer
    assert item(dynamodb)["holder"] == "next"


def test_a_live_holder_renews_so_a_waiting_run_gives_up_within_a_renewal(dynamodb: Any, guards: list[RunGuard]) -> None:
    holder = new_guard(dynamodb, guards)
    assert holder.acquire("live", wait=0).state is GuardState.ACQUIRED

    hold = new_guard(dynamodb, guards).acquire("other", wait=30)

    assert hold.state is GuardState.BUSY and hold.holder == "live"
    assert hold.waited < TTL  # it saw the renewal; it did not wait out the 30 s
    assert holder.check() and holder.state is GuardState.ACQUIRED


def test_a_guard_taken_again_in_a_warm_process_renews_again(dynamodb: Any, guards: list[RunGuard]) -> None:
    """Lambda keeps the process between invocations, and with it the rotator's guard (entrypoints caches both)."""
    holder = new_guard(dynamodb, guards)
    assert holder.acquire("first", wait=0).state is GuardState.ACQUIRED
    holder.release({"rotated": 1})
    assert holder.acquire("second", wait=0).state is GuardState.ACQUIRED

    hold = new_guard(dynamodb, guards).acquire("other", wait=30)

    assert hold.state is GuardState.BUSY and hold.holder == "second"
    assert hold.waited < TTL


def test_letting_go_is_tried_again_when_dynamodb_refuses_once(dynamodb: Any, guards: list[RunGuard]) -> None:
    """A claim left behind would block the next run until it lapses."""
    holder = new_guard(dynamodb, guards)
    assert holder.acquire("me", wait=0).state is GuardState.ACQUIRED
    refused: list[str] = []

    def throttle_once(params: dict[str, Any], **_: Any) -> None:
        if not refused and ":free" in params.get("ExpressionAttributeValues", {}):
            refused.append("release")
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", throttle_once)
    try:
        holder.release({"rotated": 2})
    finally:
        dynamodb.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", throttle_once)

    assert refused and item(dynamodb)["owner"] == ""
    assert json.loads(item(dynamodb)["last_summary"]) == {"rotated": 2}
    assert new_guard(dynamodb, guards).acquire("next", wait=0).state is GuardState.ACQUIRED


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ({"expires_in": 10 * 365 * 86400}, Verdict.IMPLAUSIBLE),  # a far-future expiry: no holder writes that
        ({"expires_in": 10, "acquired_ago": 3600}, Verdict.OVERDUE),  # held longer than any invocation lives
    ],
)
def test_a_claim_no_working_run_writes_is_taken_over_at_once(
    dynamodb: Any, guards: list[RunGuard], claim: dict[str, float], verdict: Verdict
) -> None:
    put_claim(dynamodb, **dead_run_claim(time.time(), **claim))

    hold = new_guard(dynamodb, guards).acquire("next", wait=30)

    assert hold.state is GuardState.TAKEN_OVER and hold.took_over is verdict
    assert hold.waited < 2


@pytest.mark.parametrize(
    "attributes",
    [
        {"owner": {"S": "x"}, "expires_at": {"NULL": True}, "acquired_at": {"N": "1"}, "rev": {"S": "r"}},
        {"owner": {"S": "x"}, "expires_at": {"S": "tomorrow"}, "acquired_at": {"N": "1"}, "rev": {"S": "r"}},
        {"owner": {"N": "7"}, "expires_at": {"N": "99999999999"}},
        {"owner": {"S": "x"}, "expires_at": {"N": "99999999999"}, "acquired_at": {"N": "1"}, "rev": {"N": "3"}},
        {"something": {"S": "else"}},
    ],
)
def test_a_malformed_guard_value_is_taken_over(dynamodb: Any, guards: list[RunGuard], attributes: dict) -> None:
    put_claim(dynamodb, **attributes)

    hold = new_guard(dynamodb, guards).acquire("next", wait=30)

    assert hold.state is GuardState.TAKEN_OVER and hold.took_over is Verdict.MALFORMED
    assert item(dynamodb)["owner"] != "x"


def test_a_holder_whose_claim_another_run_took_is_fenced_for_good(dynamodb: Any, guards: list[RunGuard]) -> None:
    paused = new_guard(dynamodb, guards)
    assert paused.acquire("paused", wait=0).state is GuardState.ACQUIRED
    put_claim(dynamodb, **dead_run_claim(time.time(), expires_in=TTL))  # someone took it (after it had lapsed)

    deadline = time.monotonic() + 3 * TTL
    while paused.state is not GuardState.LOST and time.monotonic() < deadline:
        time.sleep(0.2)  # the heartbeat's next renewal finds the item owned by another run

    assert paused.state is GuardState.LOST
    assert not paused.check()
    assert item(dynamodb)["owner"] == "dead-run"  # the fenced run changed nothing
    paused.release({"rotated": 1})
    assert item(dynamodb)["owner"] == "dead-run"  # and letting go of a guard it no longer owns changes nothing


def test_a_lost_answer_on_taking_the_guard_still_ends_with_the_claim_held(
    dynamodb: Any, guards: list[RunGuard]
) -> None:
    lost: list[str] = []

    def lose_the_first_answer(**_: Any) -> None:
        if not lost:
            lost.append("UpdateItem")
            raise ReadTimeoutError(endpoint_url="http://moto")  # the write landed; its answer did not

    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lose_the_first_answer)
    try:
        hold = new_guard(dynamodb, guards).acquire("me", wait=0)
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lose_the_first_answer)

    assert lost and hold.state is GuardState.ACQUIRED
    assert item(dynamodb)["holder"] == "me"
    assert new_guard(dynamodb, guards).acquire("other", wait=0).state is GuardState.BUSY


def test_a_sweep_with_nothing_due_asks_for_no_guard(app: App, dynamodb: Any) -> None:
    app.install_teams(["T0001"])  # 12-hour tokens: not due

    assert app.rotate()["guard"] == "not_needed"
    assert item(dynamodb) == {}


def test_every_sweep_leaves_its_summary_on_the_last_sweep_item(app: App, dynamodb: Any) -> None:
    before = time.time()
    app.install_teams(["T0001"])  # not due: the guard is not needed, the record is written all the same

    first = app.rotate()
    recorded = item(dynamodb, "last_sweep")
    assert json.loads(recorded["summary"]) == first
    assert float(recorded["at"]) >= before and recorded["holder"].startswith("test-function/")

    app.slack.token_lifetime = 60  # due at once: this sweep takes the guard, and its record replaces the first
    app.install_teams(["T0002"])
    second = app.rotate()
    assert second["rotated"] == 1 and json.loads(item(dynamodb, "last_sweep")["summary"]) == second
    assert item(dynamodb)["last_summary"] == item(dynamodb, "last_sweep")["summary"]
    assert "xox" not in json.dumps(item(dynamodb, "last_sweep"))  # counts only, never a token


def test_a_sweep_whose_record_cannot_be_written_still_reports_its_work(app: App) -> None:
    client = entrypoints.dynamodb_client()

    def throttled(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    client.meta.events.register("before-call.dynamodb.UpdateItem", throttled)
    try:
        summary = app.rotate()
    finally:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", throttled)
    assert summary["failed"] == 0 and summary["due"] == 0


def test_rotation_goes_on_when_the_guard_cannot_be_used(app: App) -> None:
    app.slack.token_lifetime = 3600
    (name,) = app.install_teams(["T0001"])
    client = entrypoints.dynamodb_client()

    def access_denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetItem")

    client.meta.events.register("before-call.dynamodb.GetItem", access_denied)
    try:
        summary = app.rotate()
    finally:
        client.meta.events.unregister("before-call.dynamodb.GetItem", access_denied)

    assert summary["guard"] == "unavailable" and summary["rotated"] == 1
    assert app.slack.is_refresh_token_valid(app.stored(name)["refresh_token"])


def test_noted_pairs_stay_on_the_claim_until_safe_and_a_run_taking_over_inherits_them(
    dynamodb: Any, guards: list[RunGuard]
) -> None:
    dying = new_guard(dynamodb, guards)
    assert dying.acquire("dying", wait=0).state is GuardState.ACQUIRED
    assert dying.note("slack/tokens/team/T1/bot", "v1") and dying.note("slack/tokens/team/T2/bot", "v2")
    dying.done("slack/tokens/team/T1/bot")
    assert dying._renew()  # the next renewal drops what is safe
    assert set(item(dynamodb)["in_flight"]) == {"slack/tokens/team/T2/bot#v2"}  # with the version refreshed from
    dying._stop.set()  # the run dies: no more renewals, and no letting go

    hold = new_guard(dynamodb, guards).acquire("next", wait=2 * TTL)

    assert hold.took_over is Verdict.LAPSED and hold.inherited == (Noted("slack/tokens/team/T2/bot", "v2"),)


def test_noting_a_pair_is_also_the_fence(dynamodb: Any, guards: list[RunGuard]) -> None:
    paused = new_guard(dynamodb, guards)
    assert paused.acquire("paused", wait=0).state is GuardState.ACQUIRED
    put_claim(dynamodb, **dead_run_claim(time.time(), expires_in=TTL))  # another run owns it now

    assert not paused.note("slack/tokens/team/T1/bot", "v1")  # refused by DynamoDB, however fresh the local view
    assert paused.state is GuardState.LOST and "in_flight" not in item(dynamodb)


def test_a_note_dynamodb_cannot_take_is_decided_by_how_fresh_the_claim_is(
    dynamodb: Any, guards: list[RunGuard]
) -> None:
    """While DynamoDB is unreachable the run goes on only as long as its last confirmed claim could not have lapsed:
    after that another run may hold the guard, so the note says stop."""
    guard = new_guard(dynamodb, guards, ttl=5.0)
    assert guard.acquire("me", wait=0).state is GuardState.ACQUIRED

    def unreachable(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="http://moto")

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", unreachable)
    try:
        assert guard.note("slack/tokens/team/T1/bot", "v1") is True  # confirmed moments ago
        time.sleep(3.6)  # past two thirds of the ttl: the claim may lapse before a refresh could finish
        assert guard.note("slack/tokens/team/T2/bot", "v1") is False
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", unreachable)


def test_letting_go_clears_the_notes_of_safe_pairs(dynamodb: Any, guards: list[RunGuard]) -> None:
    guard = new_guard(dynamodb, guards)
    guard.acquire("me", wait=0)
    guard.note("slack/tokens/team/T1/bot", "v1")
    guard.done("slack/tokens/team/T1/bot")

    guard.release({"rotated": 1})

    assert "in_flight" not in item(dynamodb) and item(dynamodb)["owner"] == ""


def test_a_note_of_a_pair_not_safe_yet_outlives_a_normal_release_and_the_next_holder_gets_it(
    dynamodb: Any, guards: list[RunGuard]
) -> None:
    # Slack may have acted on a refresh whose answer never came: the run ends normally, its note stays.
    first = new_guard(dynamodb, guards)
    first.acquire("first", wait=0)
    first.note("slack/tokens/team/T1/bot", "v1")
    first.note("slack/tokens/team/T2/bot", "v7")
    first.done("slack/tokens/team/T2/bot")
    first.release({"failed": 1})
    assert item(dynamodb)["owner"] == "" and item(dynamodb)["in_flight"] == ["slack/tokens/team/T1/bot#v1"]

    second = new_guard(dynamodb, guards)
    assert second.waiting() == (Noted("slack/tokens/team/T1/bot", "v1"),)  # a sweep with nothing due looks here
    hold = second.acquire("second", wait=0)
    assert hold.took_over is None and hold.inherited == (Noted("slack/tokens/team/T1/bot", "v1"),)
    second.done("slack/tokens/team/T1/bot")
    second.release({"rotated": 1})
    assert "in_flight" not in item(dynamodb)


def test_of_two_runs_that_read_the_guard_free_only_the_first_writer_holds_it(
    app: App, dynamodb: Any, guards: list[RunGuard]
) -> None:
    """Both runs read the item free; the other run's claim lands between this run's read and its write. This
    run's write is conditional on what it read, so it fails, and the run must see a guard that is busy, not one it
    holds: two holders would refresh the same pairs."""
    other = new_guard(dynamodb, guards)  # its own client, outside the hook
    this_client = dynamodb_client(app.client.meta.endpoint_url)
    this = new_guard(this_client, guards)
    raced: list[GuardState] = []

    def the_other_run_writes_first(**_: Any) -> None:
        if not raced:
            raced.append(other.acquire("RotateFunction/other", wait=0).state)

    this_client.meta.events.register("before-call.dynamodb.UpdateItem", the_other_run_writes_first)
    try:
        hold = this.acquire("RotateFunction/this", wait=0)
    finally:
        this_client.meta.events.unregister("before-call.dynamodb.UpdateItem", the_other_run_writes_first)

    assert raced == [GuardState.ACQUIRED]
    assert hold.state is GuardState.BUSY and hold.holder == "RotateFunction/other"
    assert not this.check() and other.check()
    assert item(dynamodb)["holder"] == "RotateFunction/other"
