"""The run lease in Secrets Manager: exclusive, cheap in versions, and never a reason for rotation to stop."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from slack_tokens import entrypoints
from slack_tokens.store import Lease
from tests.conftest import PREFIX, App

NAME = f"{PREFIX}_lease/rotation"


def lease(app: App, owner: str) -> Lease:
    return Lease(app.client, NAME, owner)


def versions(app: App) -> dict[str, list[str]]:
    result: dict[str, list[str]] = app.client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    return result


def test_one_holder_at_a_time_and_release_frees_it(app: App) -> None:
    first, second = lease(app, "a"), lease(app, "b")
    now = time.time()

    assert first.acquire(now, ttl=600)
    assert not second.acquire(now, ttl=600)
    first.release()
    assert second.acquire(now, ttl=600)


def test_an_expired_claim_can_be_taken_over_and_the_old_holder_cannot_free_it(app: App) -> None:
    dead, alive = lease(app, "dead"), lease(app, "alive")
    now = time.time()
    assert dead.acquire(now, ttl=60)

    assert alive.acquire(now + 61, ttl=600)
    dead.release()  # the dead run's release comes late: it must not free the new holder's claim

    assert not lease(app, "third").acquire(now + 62, ttl=600)


def test_each_run_costs_one_version_and_release_writes_none(app: App) -> None:
    now = time.time()
    holder = lease(app, "a")
    holder.acquire(now, ttl=600)
    holder.release()
    start = len(versions(app))

    for i in range(5):
        run = lease(app, f"run-{i}")
        assert run.acquire(now, ttl=600)
        run.release()

    after = versions(app)
    assert len(after) == start + 5
    assert "AWSCURRENT" in after[Lease.FREE_VERSION] and Lease.FREE_STAGE in after[Lease.FREE_VERSION]


def test_a_sweep_with_nothing_due_takes_no_lease(app: App) -> None:
    app.install_teams(["T0001"])  # 12-hour tokens: not due

    assert app.rotate()["lease"] == "not_needed"
    assert NAME not in [s["Name"] for s in app.client.list_secrets()["SecretList"]]


def test_rotation_goes_on_when_the_lease_cannot_be_written(app: App) -> None:
    app.slack.token_lifetime = 3600
    (name,) = app.install_teams(["T0001"])
    client = entrypoints.secretsmanager_client()

    def quota_reached(params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params["body"])
        if body.get("SecretId") == NAME or body.get("Name") == NAME:
            raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "quota"}}, "PutSecretValue")

    for operation in ("CreateSecret", "PutSecretValue"):
        client.meta.events.register(f"before-call.secrets-manager.{operation}", quota_reached)
    try:
        summary = app.rotate()
    finally:
        for operation in ("CreateSecret", "PutSecretValue"):
            client.meta.events.unregister(f"before-call.secrets-manager.{operation}", quota_reached)

    assert summary["lease"] == "unavailable" and summary["rotated"] == 1
    assert app.slack.is_refresh_token_valid(app.stored(name)["refresh_token"])
