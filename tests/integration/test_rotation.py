"""Scheduled rotation through the real RotateFunction handler, moto server and the fake Slack."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.app import GUARD_TABLE, App
from sandbox.aws import dynamodb_client
from slack_tokens import entrypoints
from slack_tokens.guard import GuardState, RunGuard
from tests.conftest import LogCapture
from tests.support.observed import metric_values

SHORT = 3600  # tokens minted with this lifetime are due at once (margin: 2 hours)
LONG = 43200


@pytest.fixture
def due_app(app: App) -> App:
    app.slack.token_lifetime = SHORT
    return app


def assert_usable(app: App, name: str) -> dict[str, Any]:
    """The pair stored as AWSCURRENT is one Slack still accepts: nothing was lost."""
    stored = app.stored(name)
    assert stored["status"] == "active"
    assert app.slack.is_refresh_token_valid(stored["refresh_token"]), name
    assert app.slack.is_access_token_valid(stored["access_token"]), name
    return stored


def refresh_calls(app: App) -> int:
    return sum(1 for r in app.slack.requests if r.form.get("grant_type") == "refresh_token")


def test_sweep_refreshes_due_pairs_once_and_leaves_the_rest(due_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    due = due_app.install_teams(["T0001", "T0002"]) + due_app.install_teams(["T0003"], enterprise_id="E0001")
    due_app.slack.token_lifetime = LONG
    fresh = due_app.install_teams(["T0009"])
    before = {name: due_app.stored(name) for name in due + fresh}
    due_app.slack.clear_requests()

    summary = due_app.rotate()

    assert summary["due"] == 6  # 3 bot + 3 user pairs
    assert summary["rotated"] == 6 and summary["failed"] == 0 and summary["needs_reinstall"] == 0
    assert refresh_calls(due_app) == 6
    for name in due:
        after = assert_usable(due_app, name)
        assert after["refresh_token"] != before[name]["refresh_token"]
        assert due_app.slack.refresh_count(before[name]["refresh_token"]) == 1
        assert after["expires_at"] > before[name]["expires_at"]
    user = assert_usable(due_app, "slack/tokens/team/T0001/user/U0001")
    assert user["token_type"] == "user"
    assert due_app.stored(fresh[0]) == before[fresh[0]]  # not due: untouched


def test_a_second_sweep_finds_nothing_due(due_app: App) -> None:
    due_app.install_teams(["T0001"])
    due_app.slack.token_lifetime = LONG
    due_app.rotate()
    due_app.slack.clear_requests()

    summary = due_app.rotate()

    assert summary["due"] == 0 and summary["rotated"] == 0
    assert refresh_calls(due_app) == 0


def test_secret_id_rotates_one_pair_even_if_not_due(app: App) -> None:
    (name, other) = app.install_teams(["T0001", "T0002"])
    before = app.stored(name)

    summary = app.rotate({"secret_id": name})

    assert summary["rotated"] == 1 and summary["due"] == 1
    assert assert_usable(app, name)["access_token"] != before["access_token"]
    assert app.slack.refresh_count(app.stored(other)["refresh_token"]) == 0


@pytest.mark.parametrize("secret_id", ["slack/tokens/team/T7777/bot", "slack-app/credentials"])
def test_secret_id_that_is_not_a_pair_is_a_clear_failure(app: App, secret_id: str) -> None:
    summary = app.rotate({"secret_id": secret_id})

    assert summary["failed"] == 1 and summary["failures"] == {"not_a_token_pair": 1}


SUMMARY_KEYS = {  # the documented shape of every RotateFunction reply, a refused event's included
    "due", "rotated", "recovered", "failed", "skipped", "needs_reinstall", "deferred", "superseded", "failures",
    "lag_seconds", "guard", "guard_took_over", "blocked_by", "blocked_seconds", "guard_waited_seconds", "error",
}  # fmt: skip


@pytest.mark.parametrize("event", [{"secret_id": 42}, {"secret_id": ""}, {"secret_id": "x" * 3000}])
def test_bad_secret_id_is_refused_with_the_same_summary_shape(app: App, event: dict[str, Any]) -> None:
    summary = app.rotate(event)

    assert set(summary) == SUMMARY_KEYS
    assert summary["error"] == "secret_id must be a secret name or ARN"
    assert summary["failed"] == 1 and summary["failures"] == {"bad_event": 1} and summary["rotated"] == 0
    assert summary["guard"] == "not_needed"


def test_a_sweep_reply_has_the_same_summary_shape(due_app: App) -> None:
    due_app.install_teams(["T0001"])

    summary = due_app.rotate()

    assert set(summary) == SUMMARY_KEYS and summary["error"] is None and summary["rotated"] == 1


def test_legacy_and_reinstall_pairs_are_not_refreshed(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    due_app.slack.revoke(due_app.stored(name)["refresh_token"])
    assert due_app.rotate()["needs_reinstall"] == 1
    due_app.slack.clear_requests()

    summary = due_app.rotate({"secret_id": name})

    assert summary["skipped"] == 1 and refresh_calls(due_app) == 0


# -- failures at Slack: nothing is lost -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": 1},
        {"status": 500, "times": 2},
        {"error": "internal_error"},
        {"status": 503, "body": b"<html>bad gateway</html>"},
    ],
)
def test_transient_slack_failures_are_retried_in_the_run(due_app: App, fault: dict[str, Any]) -> None:
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)
    due_app.slack.fail_next("oauth.v2.access", **fault)

    summary = due_app.rotate()

    assert summary["rotated"] == 1, summary
    assert assert_usable(due_app, name)["refresh_token"] != old["refresh_token"]


def test_slack_failing_all_run_long_leaves_the_pair_as_it_was(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)
    version = due_app.current_version(name)
    due_app.slack.fail_next("oauth.v2.access", error="service_unavailable", times=50)

    summary = due_app.rotate(timeout=60)

    assert summary["failed"] == 1 and summary["failures"] == {"slack_retryable": 1}
    assert due_app.current_version(name) == version and due_app.stored(name) == old
    assert due_app.slack.is_refresh_token_valid(old["refresh_token"])


def test_a_lost_answer_is_asked_again_at_once_within_the_grace_period(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)
    due_app.slack.fail_next("oauth.v2.access", drop_after_processing=True)

    assert due_app.rotate()["rotated"] == 1
    assert due_app.slack.refresh_count(old["refresh_token"]) == 2  # the lost answer, then the one we kept
    assert_usable(due_app, name)


def test_config_errors_are_reported_not_looped(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    due_app.slack.fail_next("oauth.v2.access", error="bad_client_secret", times=5)

    summary = due_app.rotate()

    assert summary["failures"] == {"slack_config": 1}
    assert refresh_calls(due_app) == 1
    assert_usable(due_app, name)


def test_a_retry_after_longer_than_a_whole_attempt_is_waited_for_when_the_run_has_time(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)["refresh_token"]
    due_app.slack.fail_next("oauth.v2.access", status=429, retry_after=30)
    rotator, waits = virtual_time_rotator()

    summary = rotator.sweep(600).to_json()

    assert summary["rotated"] == 1 and summary["deferred"] == 0, summary
    assert 30 in waits  # it waited out Slack's Retry-After (in virtual time), then refreshed
    assert due_app.slack.refresh_count(old) == 1
    assert_usable(due_app, name)


def test_a_retry_after_the_run_cannot_afford_defers_the_pair_unchanged(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    before = due_app.stored(name)
    due_app.slack.fail_next("oauth.v2.access", status=429, retry_after=120)
    rotator, _ = virtual_time_rotator()

    summary = rotator.sweep(90).to_json()

    assert summary["deferred"] == 1 and summary["failed"] == 0, summary
    assert summary["failures"] == {} and due_app.stored(name) == before
    assert due_app.slack.is_refresh_token_valid(before["refresh_token"])  # Slack did not act: the next run can


def test_a_refresh_slack_may_have_acted_on_is_asked_again_through_rate_limits_inside_the_grace_period(
    due_app: App,
) -> None:
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)["refresh_token"]
    due_app.slack.fail_next("oauth.v2.access", drop_after_processing=True)  # Slack refreshed; the answer was lost
    due_app.slack.fail_next("oauth.v2.access", status=429, retry_after=1, times=4)  # then only rate limits

    summary = due_app.rotate()

    assert summary["rotated"] == 1 and summary["deferred"] == 0, summary  # never "deferred, unchanged"
    assert due_app.slack.refresh_count(old) == 2  # the lost answer's refresh, then the one kept, same token
    assert_usable(due_app, name)


def test_when_asking_again_cannot_help_any_more_the_spent_refresh_token_is_reported_loudly(
    due_app: App, logs: LogCapture
) -> None:
    (name,) = due_app.install_teams(["T0001"])
    before = due_app.stored(name)
    due_app.slack.fail_next("oauth.v2.access", drop_after_processing=True)
    due_app.slack.fail_next("oauth.v2.access", status=429, retry_after=30, times=20)
    rotator, waits = virtual_time_rotator()

    summary = rotator.sweep(900).to_json()

    assert summary["failed"] == 1 and summary["failures"] == {"answer_lost": 1} and summary["deferred"] == 0
    assert 50 <= sum(waits) <= 120  # it kept asking for about the grace horizon, not the whole invocation
    assert due_app.stored(name) == before
    (critical,) = [r for r in logs.records() if r["level"] == "CRITICAL"]
    assert "grace period" in critical["message"] and critical["secret_name"] == name


@pytest.mark.parametrize("answers", [1, 2])
def test_a_refresh_answer_of_the_other_token_type_is_never_stored_over_the_pair(
    due_app: App, monkeypatch: pytest.MonkeyPatch, answers: int
) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    due_app.install_teams(["T0001"])
    user = "slack/tokens/team/T0001/user/U0001"
    before, version = due_app.stored(user), due_app.current_version(user)

    def bot_on_top(body: dict[str, Any]) -> dict[str, Any]:  # python-slack-sdk's mock answers a refresh like this
        return {**body, "token_type": "bot", "access_token": "xoxe.xoxb-1-not-for-a-user", "authed_user": body}

    due_app.slack.fail_next("oauth.v2.access", rewrite=bot_on_top, times=answers)
    summary = due_app.rotate({"secret_id": user})

    if answers == 2:  # asked twice, answered wrongly twice: the pair is left exactly as it was
        assert summary["failed"] == 1 and summary["failures"] == {"invalid_refresh_answer": 1}, summary
        assert due_app.current_version(user) == version and due_app.stored(user) == before
    else:  # the second answer, inside the grace period, was right
        assert summary["rotated"] == 1, summary
        assert assert_usable(due_app, user)["token_type"] == "user"
    assert not due_app.stored(user)["access_token"].startswith("xoxe.xoxb-")


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ({"expires_at": {"N": "4102444800"}, "acquired_at": {"N": "1"}}, "taken_over_implausible"),
        ({"expires_at": {"NULL": True}, "acquired_at": {"N": "1"}}, "taken_over_malformed"),
    ],
    ids=["far-future expiry", "expires_at null"],
)
def test_a_stuck_guard_value_is_taken_over_loudly_and_rotation_proceeds(
    due_app: App, capsys: pytest.CaptureFixture[str], claim: dict[str, Any], reason: str
) -> None:
    (name,) = due_app.install_teams(["T0001"])
    dynamodb_client(due_app.client.meta.endpoint_url).put_item(
        TableName=GUARD_TABLE,
        Item={"name": {"S": "rotation"}, "owner": {"S": "someone"}, "rev": {"S": "r"}, **claim},
    )
    capsys.readouterr()

    summary = due_app.rotate()

    assert summary["rotated"] == 1 and summary["guard"] == "taken_over", summary
    assert metric_values(capsys.readouterr().out, "RunGuardProblem", reason=reason) == [1.0]
    assert_usable(due_app, name)


def test_a_blocked_sweep_reports_its_due_pairs_lag_and_the_blocked_metric(
    due_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    due_app.install_teams(["T0001"])
    holder = RunGuard(entrypoints.dynamodb_client, GUARD_TABLE)
    assert holder.acquire("RotateFunction/long-run", wait=0).state is GuardState.ACQUIRED
    capsys.readouterr()
    try:
        summary = due_app.rotate()
    finally:
        holder.release()

    assert summary["guard"] == "busy" and summary["due"] == 1 and summary["lag_seconds"] is not None
    printed = capsys.readouterr().out
    assert metric_values(printed, "RotationBlocked") == [1.0]
    assert metric_values(printed, "RotationLagSeconds") == [float(summary["lag_seconds"])]


def virtual_time_rotator() -> tuple[Any, list[float]]:
    """The deployed rotator's collaborators, on a clock that sleeps in virtual time (the waits are recorded)."""
    from slack_tokens.app_secrets import AppSecrets
    from slack_tokens.ratelimit import Pacer
    from slack_tokens.rotation import Rotator
    from slack_tokens.slack_client import SlackClient
    from slack_tokens.store import TokenStore

    waits: list[float] = []
    offset = [0.0]

    def monotonic() -> float:
        return __import__("time").monotonic() + offset[0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        offset[0] += seconds

    client = entrypoints.secretsmanager_client()
    secrets = AppSecrets(client, app_secret_id=__import__("os").environ["SLACK_APP_SECRET_ID"], state_secret_id=None)
    slack = SlackClient(
        __import__("os").environ["SLACK_API_URL"],
        policy=entrypoints.PAIR_SLACK_POLICY,
        limiter=Pacer(590, monotonic=monotonic, sleep=sleep),
        monotonic=monotonic,
        sleep=sleep,
    )
    rotator = Rotator(
        TokenStore(client, "slack/tokens/", monotonic=monotonic, sleep=sleep),
        slack,
        secrets.app_credentials,
        guard=RunGuard(entrypoints.dynamodb_client, GUARD_TABLE),
        margin_seconds=7200,
        monotonic=monotonic,
    )
    return rotator, waits


# -- invalid_refresh_token --------------------------------------------------------------------------------------


def test_invalid_refresh_token_with_nothing_newer_marks_needs_reinstall(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    due_app.slack.revoke(due_app.stored(name)["refresh_token"])

    summary = due_app.rotate()

    assert summary["needs_reinstall"] == 1
    stored = due_app.stored(name)
    assert stored["status"] == "needs_reinstall" and "invalid_refresh_token" in stored["status_reason"]
    tags = {t["Key"]: t["Value"] for t in due_app.client.describe_secret(SecretId=name)["Tags"]}
    assert tags["slack:status"] == "needs_reinstall"

    # A reinstall brings it back.
    due_app.slack.token_lifetime = LONG
    due_app.install_teams(["T0001"])
    assert assert_usable(due_app, name)["status"] == "active"
    tags = {t["Key"]: t["Value"] for t in due_app.client.describe_secret(SecretId=name)["Tags"]}
    assert tags["slack:status"] == "active"


def test_invalid_refresh_token_after_someone_else_rotated_is_a_lost_race(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    fired: list[bool] = []

    def reinstall_after_read(parsed: dict[str, Any], **_: Any) -> None:
        if not fired and parsed.get("Name") == name:
            fired.append(True)
            due_app.install_teams(["T0001"])  # a reinstall lands while the rotator talks to Slack...
            due_app.slack.fail_next("oauth.v2.access", error="invalid_refresh_token")  # ...which saw the old token

    client.meta.events.register("after-call.secrets-manager.GetSecretValue", reinstall_after_read)
    try:
        summary = due_app.rotate({"secret_id": name})
    finally:
        client.meta.events.unregister("after-call.secrets-manager.GetSecretValue", reinstall_after_read)

    assert summary["needs_reinstall"] == 0 and summary["superseded"] == 1
    assert_usable(due_app, name)


# -- Secrets Manager failures -----------------------------------------------------------------------------------


def test_throttled_store_first_write_is_retried(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    throttles = [3]

    def throttle(**_: Any) -> None:
        if throttles[0] > 0:
            throttles[0] -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutSecretValue")

    client.meta.events.register("before-call.secrets-manager.PutSecretValue", throttle)
    try:
        summary = due_app.rotate()
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", throttle)

    assert summary["rotated"] == 1 and throttles == [0]
    assert_usable(due_app, name)


def test_a_refreshed_pair_that_cannot_be_stored_is_loud_and_refreshed_first_by_the_next_run(
    app: App, logs: LogCapture
) -> None:
    """Secrets Manager refuses the store-first write for good (here: access denied) after Slack answered a refresh
    of a pair that was not due (``{"secret_id": ...}``). The run says so at CRITICAL, leaves the pair as it was, and
    keeps the pair's note on the guard, so the next run refreshes it first, due or not, while the used refresh
    token still works: the pair is saved, not lost to the next schedule that finds it not due."""
    app.slack.token_lifetime = LONG  # not due
    (name,) = app.install_teams(["T0001"])
    before = app.current_version(name)
    client = entrypoints.secretsmanager_client()

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutSecretValue")

    client.meta.events.register("before-call.secrets-manager.PutSecretValue", refuse)
    try:
        forced = app.rotate({"secret_id": name}, timeout=60)
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", refuse)

    assert forced["failed"] == 1 and forced["failures"] == {"store_first_failed": 1}, forced
    assert app.current_version(name) == before and refresh_calls(app) == 1
    critical = [r for r in logs.records() if r["level"] == "CRITICAL"]
    assert [r["secret_name"] for r in critical] == [name]

    swept = app.rotate()  # a plain sweep, where the pair is not due

    assert swept["rotated"] == 1 and refresh_calls(app) == 2, swept
    assert app.current_version(name) != before
    assert_usable(app, name)


def test_a_pair_retired_while_slack_answered_is_dropped_not_written(due_app: App) -> None:
    """The workspace uninstalled the app (``slack-tokens retire``) while the refresh was in flight: nobody needs the
    new pair, and writing it would bring back a retired secret."""
    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    retired: list[str] = []

    def retire_first(**_: Any) -> None:
        if not retired:
            retired.append(name)
            due_app.client.delete_secret(SecretId=name, RecoveryWindowInDays=7)
            # Secrets Manager's answer to a write on a secret scheduled for deletion (moto lets the write through)
            message = "You tried to perform the operation on a secret that's currently marked deleted."
            raise ClientError({"Error": {"Code": "InvalidRequestException", "Message": message}}, "PutSecretValue")

    client.meta.events.register("before-call.secrets-manager.PutSecretValue", retire_first)
    try:
        summary = due_app.rotate(timeout=60)  # time for one refresh and its writes, not for a write retried to the end
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", retire_first)

    assert retired and summary["superseded"] == 1 and summary["rotated"] == summary["failed"] == 0, summary
    assert "DeletedDate" in due_app.client.describe_secret(SecretId=name)


def test_overlapping_runs_take_turns_through_the_guard(due_app: App) -> None:
    due_app.install_teams(["T0001"])
    other = RunGuard(entrypoints.dynamodb_client, GUARD_TABLE)
    assert other.acquire("RotateFunction/other-run", wait=0).state is GuardState.ACQUIRED

    summary = due_app.rotate()
    assert summary["guard"] == "busy" and summary["blocked_by"] == "RotateFunction/other-run"
    assert summary["due"] == 1 and summary["deferred"] == 1 and summary["lag_seconds"] is not None
    assert refresh_calls(due_app) == 0

    other.release()
    assert due_app.rotate()["rotated"] == 1


def test_a_promote_whose_answer_was_lost_is_still_a_rotation(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    lost = [1]

    def lose_the_answer(**_: Any) -> None:
        if lost[0]:
            lost[0] -= 1
            raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "lost"}}, "UpdateSecretVersionStage")

    client.meta.events.register("after-call.secrets-manager.UpdateSecretVersionStage", lose_the_answer)
    try:
        summary = due_app.rotate()
    finally:
        client.meta.events.unregister("after-call.secrets-manager.UpdateSecretVersionStage", lose_the_answer)

    assert lost == [0]
    assert summary["rotated"] == 1 and summary["superseded"] == 0
    assert_usable(due_app, name)


def test_a_reinstall_landing_while_a_dead_pair_is_being_marked_wins(due_app: App) -> None:
    import json

    (name,) = due_app.install_teams(["T0001"])
    due_app.slack.revoke(due_app.stored(name)["refresh_token"])
    client = entrypoints.secretsmanager_client()
    fired: list[bool] = []

    def reinstall_before_the_mark(params: dict[str, Any], **_: Any) -> None:
        if not fired and "needs_reinstall" in json.loads(params["body"]).get("SecretString", ""):
            fired.append(True)
            due_app.install_teams(["T0001"])  # the customer reinstalls at that very moment

    client.meta.events.register("before-call.secrets-manager.PutSecretValue", reinstall_before_the_mark)
    try:
        summary = due_app.rotate()
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", reinstall_before_the_mark)

    assert fired and summary["needs_reinstall"] == 0 and summary["superseded"] == 1
    assert_usable(due_app, name)  # the reinstall's pair, not the dead one marked


def test_a_reinstall_after_a_rotation_replaces_the_rotated_pair(due_app: App) -> None:
    (name,) = due_app.install_teams(["T0001"])
    assert due_app.rotate()["rotated"] == 1
    rotated = due_app.stored(name)

    due_app.install_teams(["T0001"])

    reinstalled = assert_usable(due_app, name)
    assert reinstalled["access_token"] != rotated["access_token"]
    stages = due_app.client.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert sum("AWSCURRENT" in s for s in stages.values()) == 1


class _Crash(BaseException):
    """The process dies here (BaseException: nothing in the code under test catches it)."""


def test_a_pending_pair_left_from_an_older_version_is_never_promoted_over_a_reinstall(due_app: App) -> None:
    from slack_tokens.app_secrets import AppSecrets
    from slack_tokens.rotation import Rotator
    from slack_tokens.slack_client import SlackClient
    from slack_tokens.store import TokenStore

    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    store = TokenStore(client, "slack/tokens/")
    secrets = AppSecrets(client, app_secret_id=__import__("os").environ["SLACK_APP_SECRET_ID"], state_secret_id=None)

    def die_after_store(step: str, _: str) -> None:
        if step == "after_store":
            raise _Crash

    due_app.slack.token_lifetime = LONG  # the stored-but-unpromoted pair P lives 12 hours...
    dying = Rotator(
        store,
        SlackClient(due_app.slack.api_url),
        secrets.app_credentials,
        guard=RunGuard(entrypoints.dynamodb_client, GUARD_TABLE),
        margin_seconds=7200,
        crash_hook=die_after_store,
    )
    with pytest.raises(_Crash):
        dying.rotate_one(name, 600)
    stale = client.describe_secret(SecretId=name)["VersionIdsToStages"]
    (pending,) = [v for v, stages in stale.items() if "AWSPENDING" in stages and "AWSCURRENT" not in stages]
    due_app.slack.token_lifetime = SHORT  # ...the reinstall R that lands before P's promotion only one hour
    due_app.install_teams(["T0001"])
    reinstalled = due_app.current_version(name)

    summary = due_app.rotate()

    assert summary["recovered"] == 0 and summary["rotated"] == 1
    current = due_app.stored(name)
    assert due_app.current_version(name) != pending
    assert current["rotated_from"] == reinstalled  # a fresh rotation of the reinstall, not the stale P
    assert_usable(due_app, name)


def test_invalid_refresh_token_finds_and_promotes_a_pair_stored_meanwhile(due_app: App) -> None:
    from sandbox.app import CLIENT_ID, CLIENT_SECRET
    from slack_tokens.models import TokenPair
    from slack_tokens.rotation import refreshed
    from slack_tokens.slack_client import SlackClient
    from slack_tokens.store import TokenStore

    (name,) = due_app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()
    stored_meanwhile: list[str] = []

    def an_earlier_run_stored_a_pair(parsed: dict[str, Any], **_: Any) -> None:
        if stored_meanwhile or parsed.get("Name") != name:
            return
        seen = TokenPair.from_secret_string(parsed["SecretString"])
        answer = SlackClient(due_app.slack.api_url).refresh(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=seen.refresh_token or "",
            token_type=seen.token_type,
            deadline=__import__("time").monotonic() + 5,
        )
        pair = refreshed(
            seen,
            new_access=answer.access_token,
            new_refresh=answer.refresh_token,
            expires_at=answer.expires_at,
            scope=answer.scope,
            rotated_from=parsed["VersionId"],
            now=0,
        )
        stored_meanwhile.append(
            TokenStore(client, "slack/tokens/").stage(name, pair, deadline=__import__("time").monotonic() + 5)
        )
        due_app.slack.fail_next("oauth.v2.access", error="invalid_refresh_token")

    client.meta.events.register("after-call.secrets-manager.GetSecretValue", an_earlier_run_stored_a_pair)
    try:
        summary = due_app.rotate({"secret_id": name})
    finally:
        client.meta.events.unregister("after-call.secrets-manager.GetSecretValue", an_earlier_run_stored_a_pair)

    assert summary["recovered"] == 1 and summary["needs_reinstall"] == 0
    assert due_app.current_version(name) == stored_meanwhile[0]
    tags = {t["Key"]: t["Value"] for t in due_app.client.describe_secret(SecretId=name)["Tags"]}
    assert tags["slack:status"] == "active"
    assert_usable(due_app, name)


def test_a_slack_rate_limited_for_longer_than_the_retries_still_gets_the_pair_refreshed_in_the_run(
    due_app: App,
) -> None:
    """Rotation shares oauth.v2.access's 600 a minute with every install: a run of rate limits (Slack did not act)
    is waited out while the run has time, not counted against the pair's attempts."""
    (name,) = due_app.install_teams(["T0001"])
    old = due_app.stored(name)["refresh_token"]
    due_app.slack.fail_next("oauth.v2.access", status=429, retry_after=5, times=8)
    rotator, waits = virtual_time_rotator()

    summary = rotator.sweep(600).to_json()

    assert summary["rotated"] == 1 and summary["failed"] == 0 and summary["deferred"] == 0, summary
    assert waits.count(5) >= 8  # each Retry-After was waited out (in virtual time)
    assert due_app.slack.refresh_count(old) == 1
    assert_usable(due_app, name)
