"""``SecretsManagerInstallationStore`` on its own (moto server over HTTP, the fake Slack, the stack's handlers to
install and rotate): what it finds, what it caches, what it never hands out, and how retiring races rotation and
reinstalls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.oauth.installation_store import Installation

from sandbox.app import PREFIX, App
from slack_tokens import entrypoints
from slack_tokens.installation_store import SaveRefusedError, SecretsManagerInstallationStore
from tests.conftest import LogCapture

BOT = f"{PREFIX}team/T0001/bot"
USER = f"{PREFIX}team/T0001/user/U0001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counted(app: App) -> tuple[Any, list[str]]:
    """A Secrets Manager client on moto that records every GetSecretValue it makes."""
    import boto3

    client = boto3.client("secretsmanager")
    reads: list[str] = []
    client.meta.events.register(
        "before-call.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append(json.loads(params["body"])["SecretId"]),
    )
    return client, reads


def new_store(app: App, **options: Any) -> SecretsManagerInstallationStore:
    return SecretsManagerInstallationStore(prefix=PREFIX, client=app.client, **options)


@pytest.fixture
def with_user_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()


# -- finding ----------------------------------------------------------------------------------------------------


def test_a_workspace_install_is_found_with_its_current_tokens_and_never_a_refresh_token(
    app: App, with_user_scopes: None
) -> None:
    app.slack.set_installation(team_id="T0001", team_name="Acme", incoming_webhook=True)
    assert app.full_install()["statusCode"] == 200
    bot_pair, user_pair = app.stored(BOT), app.stored(USER)
    store = new_store(app)

    bot = store.find_bot(enterprise_id=None, team_id="T0001")
    installation = store.find_installation(enterprise_id=None, team_id="T0001")
    theirs = store.find_installation(enterprise_id=None, team_id="T0001", user_id="U0001")

    assert bot is not None and installation is not None and theirs is not None
    assert bot.bot_token == installation.bot_token == bot_pair["access_token"]
    assert bot.bot_user_id == "B0001" and bot.team_name == "Acme" and bot.bot_scopes == ["chat:write", "commands"]
    assert bot.bot_token_expires_at == bot_pair["expires_at"]
    assert installation.user_id == "U0001"  # the installer, kept from authed_user.id
    assert installation.user_token == theirs.user_token == user_pair["access_token"]
    assert installation.incoming_webhook_url == bot_pair["incoming_webhook"]["url"]
    for found in (bot, installation, theirs):  # Bolt would refresh on its own with one, and spend the rotator's
        assert getattr(found, "bot_refresh_token", None) is None
        assert getattr(found, "user_refresh_token", None) is None
    assert store.find_installation(enterprise_id=None, team_id="T0001", user_id="U0999") is None


def test_a_workspace_inside_a_grid_org_and_an_org_wide_install_are_both_found(app: App) -> None:
    app.install_teams(["T0007"], enterprise_id="E0001")
    app.slack.set_installation(team_id=None, enterprise_id="E0002", enterprise_name="Org", is_enterprise_install=True)
    assert app.full_install()["statusCode"] == 200
    store = new_store(app)

    inside = store.find_bot(enterprise_id="E0001", team_id="T0007")
    org = store.find_bot(enterprise_id="E0002", team_id="T0099", is_enterprise_install=True)
    from_a_team = store.find_installation(enterprise_id="E0002", team_id="T0099")

    assert (
        inside is not None
        and inside.bot_token == app.stored(f"{PREFIX}enterprise/E0001/team/T0007/bot")["access_token"]
    )
    org_token = app.stored(f"{PREFIX}enterprise/E0002/bot")["access_token"]
    assert org is not None and org.bot_token == org_token and org.is_enterprise_install
    assert from_a_team is not None and from_a_team.bot_token == org_token
    assert store.find_bot(enterprise_id=None, team_id="T0008") is None


@pytest.mark.parametrize("team_id", ["t0001", "T0001/../x", "", None])
def test_ids_that_are_not_slack_ids_find_nothing_and_read_nothing(app: App, team_id: str | None) -> None:
    app.install_teams(["T0001"])
    client, reads = counted(app)

    store = SecretsManagerInstallationStore(prefix=PREFIX, client=client)
    assert store.find_bot(enterprise_id=None, team_id=team_id) is None
    assert reads == []


# -- caching ----------------------------------------------------------------------------------------------------


def test_one_read_per_pair_per_cache_period_then_the_rotated_token(app: App) -> None:
    app.slack.token_lifetime = 3600
    app.install_teams(["T0001"])
    client, reads = counted(app)
    clock = Clock()
    store = SecretsManagerInstallationStore(prefix=PREFIX, client=client, cache_seconds=60, monotonic=clock)
    old = store.find_bot(enterprise_id=None, team_id="T0001")
    app.rotate()

    for _ in range(5):
        assert store.find_bot(enterprise_id=None, team_id="T0001").bot_token == old.bot_token  # type: ignore[union-attr]
    clock.now += 61
    new = store.find_bot(enterprise_id=None, team_id="T0001")

    assert new is not None and new.bot_token == app.stored(BOT)["access_token"] != old.bot_token  # type: ignore[union-attr]
    assert reads == [BOT, BOT]


def test_a_token_is_never_cached_past_its_own_expiry(app: App) -> None:
    app.slack.token_lifetime = 90  # expires 90 s after install: within the one-minute margin after 30 s
    app.install_teams(["T0001"])
    client, reads = counted(app)
    clock = Clock()
    store = SecretsManagerInstallationStore(prefix=PREFIX, client=client, cache_seconds=600, monotonic=clock)

    store.find_bot(enterprise_id=None, team_id="T0001")
    clock.now += 31  # the cache entry lived only until a minute before the token's expiry
    store.find_bot(enterprise_id=None, team_id="T0001")

    assert reads == [BOT, BOT]


# -- what it does not hand out ----------------------------------------------------------------------------------


def test_a_pair_that_needs_a_reinstall_is_none_logged_once_without_a_token(app: App, logs: LogCapture) -> None:
    import logging

    app.slack.token_lifetime = 3600
    app.install_teams(["T0001"])
    pair = app.stored(BOT)
    app.slack.revoke(pair["refresh_token"])
    assert app.rotate()["needs_reinstall"] == 1
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("slack_tokens.installation_store").addHandler(handler)
    try:
        store = new_store(app, cache_seconds=0)
        found = [store.find_bot(enterprise_id=None, team_id="T0001") for _ in range(3)]
    finally:
        logging.getLogger("slack_tokens.installation_store").removeHandler(handler)

    assert found == [None, None, None]
    assert [r.getMessage() for r in records] == [f"token pair {BOT} is needs_reinstall: no token for it until the "
                                                 "workspace installs again"]  # fmt: skip
    assert all(pair["access_token"] not in r.getMessage() for r in records)


def test_save_refuses_installs_go_through_the_stacks_callback(app: App) -> None:
    with pytest.raises(SaveRefusedError, match="oauth_redirect"):
        new_store(app).save(Installation(user_id="U0001", team_id="T0001", bot_token="xoxb-x"))


# -- retiring, and its races ------------------------------------------------------------------------------------


def retired(app: App, name: str) -> bool:
    described = app.client.describe_secret(SecretId=name)
    current = next(v for v, stages in described["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    return current.startswith("revoked-") and "DeletedDate" in described


def test_retiring_is_idempotent(app: App) -> None:
    app.install_teams(["T0001"])
    store = new_store(app)

    store.delete_all(enterprise_id=None, team_id="T0001")
    versions = app.client.describe_secret(SecretId=BOT)["VersionIdsToStages"]
    store.delete_all(enterprise_id=None, team_id="T0001")
    store.delete_bot(enterprise_id=None, team_id="T0009")  # nothing there: nothing happens

    assert retired(app, BOT)
    assert app.client.describe_secret(SecretId=BOT)["VersionIdsToStages"] == versions


@pytest.mark.parametrize("step", ["after_refresh", "after_store"])
def test_a_retire_landing_in_the_middle_of_a_rotation_ends_retired(app: App, step: str, logs: LogCapture) -> None:
    app.slack.token_lifetime = 3600
    app.install_teams(["T0001"])
    store = new_store(app)

    def uninstall_now(at: str, name: str) -> None:
        if at == step:
            store.delete_bot(enterprise_id=None, team_id="T0001")

    rotator = entrypoints.rotator()
    rotator._crash_hook = uninstall_now  # test seam: the protocol's named steps
    summary = app.rotate()
    later = app.rotate()

    assert summary["superseded"] == 1 and summary["failed"] == 0, summary
    assert retired(app, BOT)
    assert later["due"] == 0  # never resurrected, never refreshed again
    assert not [r for r in logs.records() if r["level"] == "CRITICAL"]  # no "pair lost" alarm for an uninstall


def test_a_rotation_landing_between_the_retires_read_and_its_swap_is_retired_too(app: App) -> None:
    app.slack.token_lifetime = 3600
    app.install_teams(["T0001"])
    client, _ = counted(app)
    ran: list[dict[str, Any]] = []

    def rotate_first(**_: Any) -> None:
        if not ran:
            ran.append(app.rotate({"secret_id": BOT}))  # another process's rotation promotes meanwhile

    client.meta.events.register("before-call.secrets-manager.UpdateSecretVersionStage", rotate_first)
    SecretsManagerInstallationStore(prefix=PREFIX, client=client).delete_bot(enterprise_id=None, team_id="T0001")

    assert ran and ran[0]["rotated"] == 1
    assert retired(app, BOT)


def test_a_reinstall_landing_between_the_retires_read_and_its_swap_wins(app: App) -> None:
    app.install_teams(["T0001"])
    client, _ = counted(app)
    done: list[bool] = []

    def reinstall_first(**_: Any) -> None:
        if not done:
            done.append(True)
            app.install_teams(["T0001"])  # the workspace installed again after uninstalling

    client.meta.events.register("before-call.secrets-manager.UpdateSecretVersionStage", reinstall_first)
    SecretsManagerInstallationStore(prefix=PREFIX, client=client).delete_bot(enterprise_id=None, team_id="T0001")

    assert done and app.stored(BOT)["status"] == "active"
    assert "DeletedDate" not in app.client.describe_secret(SecretId=BOT)
