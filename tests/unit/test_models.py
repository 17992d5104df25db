"""Secret names, version ids and the secret JSON."""

from __future__ import annotations

import json

import pytest

from slack_tokens.errors import CorruptSecretError
from slack_tokens.models import PairKey, Status, TokenPair, new_version_id, parse_version_id

P = "slack/tokens/"


@pytest.mark.parametrize(
    ("key", "name"),
    [
        (PairKey("bot", "T1", None), "slack/tokens/team/T1/bot"),
        (PairKey("user", "T1", None, "U9"), "slack/tokens/team/T1/user/U9"),
        (PairKey("bot", "T1", "E1"), "slack/tokens/enterprise/E1/team/T1/bot"),
        (PairKey("user", "T1", "E1", "W9"), "slack/tokens/enterprise/E1/team/T1/user/W9"),
        (PairKey("bot", None, "E1"), "slack/tokens/enterprise/E1/bot"),
        (PairKey("user", None, "E1", "W9"), "slack/tokens/enterprise/E1/user/W9"),
    ],
)
def test_names_are_deterministic_and_reversible(key: PairKey, name: str) -> None:
    assert key.secret_name(P) == name
    assert PairKey.from_secret_name(P, name) == key


def test_grid_workspace_and_org_wide_installs_get_distinct_names() -> None:
    assert PairKey("bot", "T1", "E1").secret_name(P) != PairKey("bot", None, "E1").secret_name(P)


@pytest.mark.parametrize(
    "name",
    [
        "other/team/T1/bot",
        "slack/tokens/team/T1",
        "slack/tokens/team/T1/bot/extra",
        "slack/tokens/team/t1/bot",
        "slack/tokens/team/T1/user",
        "slack/tokens/bot",
        "slack/tokens/team/T1/robot",
        "slack/tokens/enterprise/E1/user",
    ],
)
def test_foreign_names_are_not_pairs(name: str) -> None:
    assert PairKey.from_secret_name(P, name) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bot", None, None), "team id or an enterprise id"),
        (("bot", "T1/../x", None), "team_id"),
        (("user", "T1", None, None), "user id"),
        (("bot", "T1", None, "U1"), "no user id"),
        (("admin", "T1", None), "bot or user"),
    ],
)
def test_invalid_identities_are_refused(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairKey(*args)  # type: ignore[arg-type]


def test_tags_name_the_installation() -> None:
    assert PairKey("user", "T1", "E1", "U1").tags() == {
        "slack:token_type": "user",
        "slack:team_id": "T1",
        "slack:enterprise_id": "E1",
        "slack:user_id": "U1",
    }


def test_version_ids_carry_status_and_expiry() -> None:
    vid = new_version_id(Status.ACTIVE, 1767225600)

    assert 32 <= len(vid) <= 64
    assert parse_version_id(vid).expires_at == 1767225600  # type: ignore[union-attr]
    assert parse_version_id(vid).status == Status.ACTIVE  # type: ignore[union-attr]
    legacy = parse_version_id(new_version_id(Status.NEEDS_REINSTALL, None))
    assert legacy is not None and legacy.expires_at is None and legacy.status == Status.NEEDS_REINSTALL
    assert new_version_id(Status.ACTIVE, 1) != new_version_id(Status.ACTIVE, 1)
    assert parse_version_id("3f2a0b1c-0000-4000-8000-000000000000") is None


def pair(**changes: object) -> TokenPair:
    base: dict[str, object] = {
        "token_type": "bot",
        "access_token": "xoxe.xoxb-1-secretaccess",
        "refresh_token": "xoxe-1-secretrefresh",
        "expires_at": 1767225600,
        "scope": "chat:write",
        "app_id": "A1",
        "team_id": "T1",
        "enterprise_id": None,
        "is_enterprise_install": False,
        "bot_user_id": "B1",
        "team_name": "Team",
    }
    base.update(changes)
    return TokenPair(**base)  # type: ignore[arg-type]


def test_secret_json_has_the_documented_fields_and_round_trips() -> None:
    original = pair(incoming_webhook={"url": "https://hooks.example/x"})
    body = json.loads(original.to_secret_string())

    for field in (
        "token_type",
        "access_token",
        "refresh_token",
        "expires_at",
        "scope",
        "app_id",
        "team_id",
        "enterprise_id",
        "is_enterprise_install",
        "bot_user_id",
        "status",
        "status_reason",
    ):
        assert field in body
    assert body["status"] == "active"
    assert TokenPair.from_secret_string(original.to_secret_string()) == original


def test_user_pairs_store_user_id_and_legacy_pairs_nulls() -> None:
    legacy = pair(token_type="user", user_id="U1", bot_user_id=None, refresh_token=None, expires_at=None)
    body = legacy.to_json()

    assert body["user_id"] == "U1" and "bot_user_id" not in body
    assert body["refresh_token"] is None and body["expires_at"] is None
    assert legacy.is_legacy and legacy.key == PairKey("user", "T1", None, "U1")


def test_org_wide_pairs_are_keyed_by_enterprise_only() -> None:
    org = pair(team_id=None, enterprise_id="E1", is_enterprise_install=True)
    assert org.key == PairKey("bot", None, "E1")


def test_unknown_fields_survive_a_round_trip() -> None:
    body = pair().to_json() | {"legacy_access_token": "xoxb-old", "future": [1, 2]}
    again = TokenPair.from_json(body).to_json()

    assert again["legacy_access_token"] == "xoxb-old" and again["future"] == [1, 2]


def test_repr_never_shows_tokens() -> None:
    text = repr(pair(incoming_webhook={"url": "https://hooks.example/secret"}))
    assert "secretaccess" not in text and "secretrefresh" not in text and "hooks.example" not in text


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"token_type": "bot"}),
        json.dumps({"token_type": "robot", "access_token": "x"}),
        json.dumps({"token_type": "bot", "access_token": "x", "expires_at": "soon"}),
        json.dumps({"token_type": "bot", "access_token": "x", "expires_at": True}),
        json.dumps({"token_type": "bot", "access_token": "x", "refresh_token": 5}),
        json.dumps({"token_type": "bot", "access_token": "x", "status": "zombie"}),
    ],
)
def test_corrupt_values_raise_a_typed_error(raw: str) -> None:
    with pytest.raises(CorruptSecretError):
        TokenPair.from_secret_string(raw)


@pytest.mark.parametrize("value", ["T1\n", "T1 ", "", "t1", "T" * 33])
def test_ids_with_trailing_newlines_or_bad_shapes_are_not_slack_ids(value: str) -> None:
    from slack_tokens.models import valid_slack_id

    assert not valid_slack_id(value)
