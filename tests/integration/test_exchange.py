"""Legacy token migration through the real ExchangeFunction handler, moto server and the fake Slack.

Legacy pairs are seeded with the operator's import (``slack-tokens import``, ``slack_tokens_cli.legacy_import``)
from tokens the fake Slack minted with ``add_legacy_token``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.app import CLIENT_ID, CLIENT_SECRET, PREFIX, App
from sandbox.lambda_runtime import invoke, load_event
from slack_tokens import entrypoints
from slack_tokens.slack_client import SlackClient
from slack_tokens.store import TokenStore, make_client
from slack_tokens_cli.cmd_import import render
from slack_tokens_cli.legacy_import import import_pairs, read_file
from slack_tokens_cli.output import Out
from tests.conftest import LogCapture


def import_file(path: Path) -> tuple[bool, str]:
    """``slack-tokens import FILE`` against the test's store: whether every row was fine, and what it printed."""
    report = import_pairs(read_file(path), TokenStore(make_client(), PREFIX), dry_run=False)
    out = io.StringIO()
    render(report, Out(out))
    return report.ok, out.getvalue()


BOT = f"{PREFIX}team/T0001/bot"
USER = f"{PREFIX}team/T0001/user/U0001"
OTHER_BOT = f"{PREFIX}team/T0002/bot"


class Crash(BaseException):
    """The Lambda process dies here (timeout, OOM): nothing after this line runs."""


@pytest.fixture
def mig(app: App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Migration:
    monkeypatch.setenv("SLACK_EXCHANGE_PER_MINUTE", "600")
    entrypoints.reset()
    return Migration(app, tmp_path)


class Migration:
    def __init__(self, app: App, tmp_path: Path) -> None:
        self.app = app
        self.slack = app.slack
        self._tmp = tmp_path
        self.legacy: dict[str, str] = {}  # secret name -> legacy token

    def seed(self, *rows: tuple[str, str, str | None]) -> list[str]:
        """Mint legacy tokens (token_type, team_id, user_id) and import them with the operator command."""
        lines = ["team_id,enterprise_id,token_type,token,user_id"]
        names: list[str] = []
        for token_type, team_id, user_id in rows:
            token = self.slack.add_legacy_token(token_type, team_id=team_id, user_id=user_id)  # type: ignore[arg-type]
            name = f"{PREFIX}team/{team_id}/{token_type}" + (f"/{user_id}" if user_id else "")
            lines.append(f"{team_id},,{token_type},{token},{user_id or ''}")
            self.legacy[name] = token
            names.append(name)
        path = self._tmp / "legacy.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        ok, out = import_file(path)
        assert ok, out
        assert not any(token in out for token in self.legacy.values())
        return names

    def exchange(self, event: dict[str, Any] | None = None) -> dict[str, Any]:
        handler = self.app.handlers["exchange"].lambda_handler
        result: dict[str, Any] = invoke(handler, {} if event is None else event, timeout_seconds=900)
        return result

    def exchange_calls(self) -> int:
        return sum(1 for r in self.slack.requests if r.method == "oauth.v2.exchange")

    def snapshot(self) -> dict[str, Any]:
        """Every secret's versions and stages, tags and current value."""
        client = self.app.client
        state: dict[str, Any] = {}
        for page in client.get_paginator("list_secrets").paginate(IncludePlannedDeletion=True):
            for entry in page["SecretList"]:
                name = entry["Name"]
                described = client.describe_secret(SecretId=name)
                value = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
                state[name] = (described["VersionIdsToStages"], described.get("Tags"), value)
        return state

    def crash_once(self, operation: str, name: str, *, pending_only: bool = False) -> None:
        """Kill the run the first time ``operation`` is about to be sent for secret ``name``."""
        fired: list[bool] = []

        def hook(params: dict[str, Any], **_: Any) -> None:
            if fired or params.get("SecretId") != name:
                return
            if pending_only and params.get("VersionStages") != ["AWSPENDING"]:
                return
            fired.append(True)
            raise Crash(operation)

        client = entrypoints.secretsmanager_client()
        client.meta.events.register(f"before-parameter-build.secrets-manager.{operation}", hook)


def assert_migrated(mig: Migration, name: str, legacy_version: str) -> dict[str, Any]:
    stored = mig.app.stored(name)
    assert stored["status"] == "active"
    assert isinstance(stored["refresh_token"], str) and isinstance(stored["expires_at"], int)
    assert stored["legacy_access_token"] == mig.legacy[name]
    assert stored["rotated_from"] == legacy_version
    assert mig.slack.is_access_token_valid(stored["access_token"])
    assert mig.slack.is_refresh_token_valid(stored["refresh_token"])
    assert mig.slack.is_access_token_valid(mig.legacy[name]), "the legacy token works until the first refresh"
    return stored


# -- the happy path --------------------------------------------------------------------------------------------


def test_exchange_turns_legacy_bot_and_user_tokens_into_rotating_pairs(mig: Migration) -> None:
    names = mig.seed(("bot", "T0001", None), ("user", "T0001", "U0001"))
    versions = {name: mig.app.current_version(name) for name in names}

    summary = mig.exchange()

    assert summary["due"] == 2 and summary["exchanged"] == 2 and summary["failed"] == 0, summary
    assert summary["dry_run"] is False and summary["guard"] == "acquired"
    bot = assert_migrated(mig, BOT, versions[BOT])
    user = assert_migrated(mig, USER, versions[USER])
    assert bot["token_type"] == "bot" and bot["access_token"].startswith("xoxe.xoxb-")
    assert user["token_type"] == "user" and user["user_id"] == "U0001"
    assert bot["team_id"] == user["team_id"] == "T0001" and bot["app_id"] == "A0001"
    exchange_requests = [r for r in mig.slack.requests if r.method == "oauth.v2.exchange"]
    assert [r.basic_auth for r in exchange_requests] == [(CLIENT_ID, CLIENT_SECRET)] * 2
    assert sorted(r.form["token"] for r in exchange_requests) == sorted(mig.legacy.values())


def test_a_rerun_over_migrated_pairs_exchanges_nothing(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None), ("user", "T0001", "U0001"))
    mig.exchange()
    before = mig.snapshot()
    mig.slack.clear_requests()

    summary = mig.exchange()

    assert summary["due"] == 0 and summary["exchanged"] == 0 and summary["failed"] == 0
    assert mig.exchange_calls() == 0
    assert mig.snapshot() == before


def test_importing_the_same_file_again_never_overwrites_a_migrated_pair(mig: Migration) -> None:
    (name,) = mig.seed(("bot", "T0001", None))
    mig.exchange()
    migrated = mig.app.stored(name)
    path = mig._tmp / "legacy.csv"

    ok, out = import_file(path)

    assert ok
    assert f"{name}: exists already, left as it is" in out
    assert "0 stored, 1 already there" in out.splitlines()[-1]
    assert mig.app.stored(name) == migrated


def test_dry_run_reports_and_changes_nothing(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None), ("user", "T0001", "U0001"), ("bot", "T0002", None))
    before = mig.snapshot()
    mig.slack.clear_requests()

    summary = mig.exchange(load_event("exchange_dry_run.json"))

    assert summary["dry_run"] is True
    assert summary["would_exchange"] == sorted([BOT, USER, OTHER_BOT])
    assert summary["due"] == 3 and summary["exchanged"] == 0 and summary["failed"] == 0
    assert mig.snapshot() == before  # every secret
    assert summary["guard"] == "not_needed"  # not even the run guard was taken
    assert mig.slack.requests == []


def test_secret_ids_exchange_only_those(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None), ("bot", "T0002", None))

    summary = mig.exchange(load_event("exchange_some.json"))

    assert summary["due"] == 1 and summary["exchanged"] == 1
    assert mig.app.stored(BOT)["refresh_token"] is not None
    assert mig.app.stored(OTHER_BOT)["refresh_token"] is None
    assert mig.exchange_calls() == 1


def test_secret_ids_that_are_not_legacy_pairs_are_reported(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    mig.exchange()

    summary = mig.exchange({"secret_ids": [BOT, f"{PREFIX}team/T9999/bot", "slack-app/credentials"]})

    assert summary["exchanged"] == 0 and summary["skipped"] == 1
    assert summary["failures"] == {"not_a_token_pair": 2}


@pytest.mark.parametrize(
    "event", [{"secret_ids": "slack/tokens/team/T0001/bot"}, {"secret_ids": [1]}, {"dry_run": "yes"}]
)
def test_bad_events_are_refused(mig: Migration, event: dict[str, Any]) -> None:
    summary = mig.exchange(event)

    assert isinstance(summary["error"], str) and summary["exchanged"] == 0 and summary["dry_run"] is False
    assert summary["failures"] == {"bad_event": 1} and summary["guard"] == "not_needed"
    assert set(summary) >= {"due", "rotated", "failed", "skipped", "needs_reinstall", "deferred", "guard"}


# -- after the exchange, the rotator takes over -----------------------------------------------------------------


def test_the_first_forced_rotation_refreshes_the_new_pair_and_drops_the_legacy_token(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    mig.exchange()
    exchanged = mig.app.stored(BOT)

    summary = mig.app.rotate({"secret_id": BOT})

    assert summary["rotated"] == 1, summary
    rotated = mig.app.stored(BOT)
    assert "legacy_access_token" not in rotated
    assert rotated["access_token"] != exchanged["access_token"]
    assert mig.slack.is_refresh_token_valid(rotated["refresh_token"])
    assert not mig.slack.is_access_token_valid(mig.legacy[BOT]), "Slack revokes it at the first refresh"


# -- errors ------------------------------------------------------------------------------------------------------


def test_rotation_not_enabled_stops_the_run_and_says_how_to_fix_it(mig: Migration, logs: LogCapture) -> None:
    names = mig.seed(("bot", "T0001", None), ("bot", "T0002", None))
    before = mig.snapshot()
    mig.slack.rotation_enabled = False

    summary = mig.exchange()

    assert summary["stopped"] == "token_rotation_not_enabled"
    assert summary["failed"] == 1 and summary["not_attempted"] == 1 and summary["exchanged"] == 0
    assert mig.exchange_calls() == 1
    pairs = {k: v for k, v in mig.snapshot().items() if k in names}
    assert pairs == {k: v for k, v in before.items() if k in names}
    errors = [r["message"] for r in logs.records() if r["level"] == "ERROR"]
    assert any("OAuth & Permissions" in m and "irreversible" in m for m in errors), errors


@pytest.mark.parametrize("code", ["bad_client_secret", "invalid_client_id"])
def test_bad_app_credentials_stop_the_run(mig: Migration, code: str) -> None:
    mig.seed(("bot", "T0001", None), ("bot", "T0002", None))
    mig.slack.fail_next("oauth.v2.exchange", error=code)

    summary = mig.exchange()

    assert summary["stopped"] == code
    assert summary["failures"] == {"slack_config": 1} and summary["not_attempted"] == 1
    assert mig.exchange_calls() == 1
    assert mig.app.stored(BOT)["refresh_token"] is None and mig.app.stored(OTHER_BOT)["refresh_token"] is None


def test_already_exchanged_without_a_stored_pair_needs_a_reinstall(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    # someone exchanged the token outside this deployment (or an answer was lost): the new pair is not ours
    SlackClient(mig.slack.api_url).exchange_legacy_token(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token=mig.legacy[BOT], deadline=float("inf")
    )

    summary = mig.exchange()

    assert summary["needs_reinstall"] == 1 and summary["exchanged"] == 0
    stored = mig.app.stored(BOT)
    assert stored["status"] == "needs_reinstall" and "token_already_exchanged" in stored["status_reason"]
    tags = {t["Key"]: t["Value"] for t in mig.app.client.describe_secret(SecretId=BOT)["Tags"]}
    assert tags["slack:status"] == "needs_reinstall"
    assert mig.slack.is_access_token_valid(mig.legacy[BOT]), "never revoked"


def test_already_exchanged_with_a_stored_pending_pair_promotes_it(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    legacy_version = mig.app.current_version(BOT)
    mig.crash_once("UpdateSecretVersionStage", BOT)  # stored as AWSPENDING, then the process died
    with pytest.raises(Crash):
        mig.exchange()
    assert mig.app.stored(BOT)["refresh_token"] is None

    summary = mig.exchange()

    assert summary["exchanged"] == 1 and summary["recovered"] == 1, summary
    assert mig.exchange_calls() == 2  # the second call answered token_already_exchanged
    assert_migrated(mig, BOT, legacy_version)


@pytest.mark.parametrize("how", ["unknown_token", "authorization_not_found"])
def test_a_refused_legacy_token_needs_a_reinstall(mig: Migration, how: str, tmp_path: Path) -> None:
    if how == "unknown_token":  # a token Slack never issued (or long revoked): invalid_token
        path = tmp_path / "rows.json"
        row = {"team_id": "T0001", "enterprise_id": "", "token_type": "bot", "token": "xoxb-1-2-nope", "user_id": ""}
        path.write_text(json.dumps([row]), encoding="utf-8")
        assert import_file(path)[0]
        expected = "invalid_token"
    else:
        mig.seed(("bot", "T0001", None))
        mig.slack.fail_next("oauth.v2.exchange", error="authorization_not_found")
        expected = "authorization_not_found"

    summary = mig.exchange()

    assert summary["needs_reinstall"] == 1, summary
    stored = mig.app.stored(BOT)
    assert stored["status"] == "needs_reinstall" and expected in stored["status_reason"]


def test_slack_unavailable_fails_this_run_and_the_next_run_exchanges(mig: Migration) -> None:
    # A 5xx or a retryable error code may come after Slack exchanged the token, so the call is made once per run.
    mig.seed(("bot", "T0001", None))
    before = mig.snapshot()
    mig.slack.fail_next("oauth.v2.exchange", error="service_unavailable")  # not repeated: Slack may have acted

    summary = mig.exchange()

    assert summary["failed"] == 1 and summary["failures"] == {"slack_retryable": 1}
    assert mig.snapshot()[BOT] == before[BOT]
    assert mig.exchange()["exchanged"] == 1


def test_a_pair_secrets_manager_will_not_read_fails_alone_and_the_run_goes_on(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None), ("bot", "T0002", None))
    before, other_version = mig.snapshot(), mig.app.current_version(OTHER_BOT)

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("SecretId") == BOT:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "GetSecretValue")

    entrypoints.secretsmanager_client().meta.events.register(
        "before-parameter-build.secrets-manager.GetSecretValue", deny
    )

    summary = mig.exchange()

    assert summary["failed"] == 1 and summary["failures"] == {"store_error": 1}, summary
    assert summary["exchanged"] == 1
    assert_migrated(mig, OTHER_BOT, other_version)
    assert mig.snapshot()[BOT] == before[BOT] and mig.exchange_calls() == 1


def test_an_exchange_is_not_started_without_the_time_to_store_its_answer(mig: Migration) -> None:
    """Slack answers an exchange once only: a run whose time left cannot cover a whole Slack attempt and the writes
    at their worst defers the pair (no call, nothing changed) instead of asking and dying before the write."""
    (name,) = mig.seed(("bot", "T0001", None))
    handler = mig.app.handlers["exchange"].lambda_handler

    short = invoke(handler, {}, timeout_seconds=20)

    assert short["deferred"] == 1 and short["exchanged"] == short["failed"] == 0, short
    assert mig.exchange_calls() == 0 and mig.app.stored(name)["refresh_token"] is None
    assert mig.exchange()["exchanged"] == 1  # a run with time does it


def test_a_crash_right_after_slack_answers_loses_the_new_pair_but_not_the_legacy_token(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    mig.crash_once("PutSecretValue", BOT, pending_only=True)  # Slack answered; the store-first write never ran
    with pytest.raises(Crash):
        mig.exchange()
    assert mig.app.stored(BOT)["refresh_token"] is None

    summary = mig.exchange()

    # Slack exchanges a token once; the answer died with the process, so only a reinstall gives a rotating pair.
    assert summary["needs_reinstall"] == 1 and summary["exchanged"] == 0, summary
    stored = mig.app.stored(BOT)
    assert stored["status"] == "needs_reinstall" and stored["access_token"] == mig.legacy[BOT]
    assert mig.slack.is_access_token_valid(mig.legacy[BOT])
    assert mig.exchange_calls() == 2


def test_a_lost_answer_is_not_asked_again(mig: Migration, logs: LogCapture) -> None:
    mig.seed(("bot", "T0001", None))
    mig.slack.fail_next("oauth.v2.exchange", drop_after_processing=True)

    summary = mig.exchange()

    assert summary["failures"] == {"answer_lost": 1} and mig.exchange_calls() == 1
    assert mig.slack.is_access_token_valid(mig.legacy[BOT])
    assert any("keeps working" in r["message"] for r in logs.records() if r["level"] == "ERROR")
    assert mig.exchange()["needs_reinstall"] == 1


# -- log hygiene and the transcript ------------------------------------------------------------------------------


def test_no_token_reaches_the_logs(mig: Migration, logs: LogCapture, capsys: pytest.CaptureFixture[str]) -> None:
    mig.seed(("bot", "T0001", None), ("user", "T0001", "U0001"), ("bot", "T0002", None))
    dry = mig.exchange({"dry_run": True})
    mig.slack.fail_next("oauth.v2.exchange", error="internal_error")  # a one-shot call: this pair fails this run
    real = mig.exchange()
    again = mig.exchange()
    captured = capsys.readouterr()
    with capsys.disabled():  # the transcript, shown with pytest -s
        for label, summary in (("dry run", dry), ("real run", real), ("next run", again)):
            print(f"\n{label}: {json.dumps(summary, sort_keys=True)}")

    secrets = {CLIENT_SECRET, *mig.legacy.values()}
    for name in mig.legacy:
        stored = mig.app.stored(name)
        secrets |= {stored["access_token"], stored["refresh_token"]}
    text = "\n".join(logs.lines) + captured.out + captured.err
    assert logs.lines and any(r["message"] == "exchange run finished" for r in logs.records())
    assert not [s for s in secrets if s in text]


def test_a_legacy_token_refused_after_a_reinstall_landed_leaves_the_reinstall_alone(mig: Migration) -> None:
    mig.seed(("bot", "T0001", None))
    client = entrypoints.secretsmanager_client()
    fired: list[bool] = []

    def reinstall_after_read(parsed: dict[str, Any], **_: Any) -> None:
        if not fired and parsed.get("Name") == BOT:
            fired.append(True)
            mig.app.install_teams(["T0001"])  # the customer reinstalls while the exchange talks to Slack...
            mig.slack.fail_next("oauth.v2.exchange", error="invalid_token")  # ...which revoked the legacy token

    client.meta.events.register("after-call.secrets-manager.GetSecretValue", reinstall_after_read)
    try:
        summary = mig.exchange()
    finally:
        client.meta.events.unregister("after-call.secrets-manager.GetSecretValue", reinstall_after_read)

    assert fired and summary["needs_reinstall"] == 0 and summary["superseded"] == 1
    stored = mig.app.stored(BOT)
    assert stored["status"] == "active" and mig.slack.is_refresh_token_valid(stored["refresh_token"])
