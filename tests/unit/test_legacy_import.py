"""The legacy token import (``slack-tokens import``): every row is validated, bad rows are reported by line without
their token."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from slack_tokens.models import TokenPair
from slack_tokens_cli.cmd_import import render
from slack_tokens_cli.legacy_import import import_pairs, read_file, read_rows, to_pair, validate
from slack_tokens_cli.main import main
from slack_tokens_cli.output import Out

BOT_TOKEN = "xoxb-1111-2222-abcdefghijklmnopqrstuvwx"
USER_TOKEN = "xoxp-1111-3333-4444-0123456789abcdef"
HEADER = "team_id,enterprise_id,token_type,token,user_id\n"


def row(**fields: str) -> dict[str, str]:
    return {"team_id": "T0001", "enterprise_id": "", "token_type": "bot", "token": BOT_TOKEN, "user_id": ""} | fields


class RecordingStore:
    def __init__(self) -> None:
        self.saved: list[TokenPair] = []

    def create_if_absent(self, pair: TokenPair, *, deadline: float) -> Any:
        self.saved.append(pair)
        return type("Stored", (), {"name": pair.key.secret_name("slack/tokens/")})()

    def name_for(self, key: Any) -> str:
        return str(key.secret_name("slack/tokens/"))


def test_a_bot_row_becomes_a_legacy_pair() -> None:
    pair = to_pair(row(), now=1_700_000_000)

    assert pair.token_type == "bot" and pair.access_token == BOT_TOKEN
    assert pair.refresh_token is None and pair.expires_at is None and pair.is_legacy
    assert pair.status == "active" and pair.key.secret_name("slack/tokens/") == "slack/tokens/team/T0001/bot"


def test_user_and_org_rows_name_their_secrets() -> None:
    user = to_pair(row(token_type="user", token=USER_TOKEN, user_id="U0001", enterprise_id="E0001"), now=0)
    org = to_pair(row(team_id="", enterprise_id="E0001"), now=0)

    assert user.key.secret_name("p/") == "p/enterprise/E0001/team/T0001/user/U0001"
    assert org.is_enterprise_install and org.key.secret_name("p/") == "p/enterprise/E0001/bot"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"token_type": "app"}, "token_type must be bot or user"),
        ({"token_type": BOT_TOKEN}, "token_type must be bot or user"),  # shifted columns: the token is not quoted
        ({"team_id": "", "enterprise_id": ""}, "needs a team id or an enterprise id"),
        ({"team_id": "t-1"}, "team_id is not a Slack id"),
        ({"enterprise_id": "E 1"}, "enterprise_id is not a Slack id"),
        ({"token": USER_TOKEN}, "token must be a legacy xoxb-"),
        ({"token": ""}, "token must be a legacy xoxb-"),
        ({"token": "xoxe.xoxb-1-rotating"}, "token must be a legacy xoxb-"),
        ({"user_id": "U0001"}, "a bot token pair has no user id"),
        ({"token_type": "user", "token": USER_TOKEN}, "a user token pair needs a valid user id"),
        ({"token_type": "user", "token": BOT_TOKEN, "user_id": "U0001"}, "token must be a legacy xoxp-"),
    ],
)
def test_bad_rows_are_refused_without_quoting_the_token(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        to_pair(row(**fields), now=0)

    assert BOT_TOKEN not in str(caught.value) and USER_TOKEN not in str(caught.value)


def test_csv_rows_carry_their_line_numbers_and_duplicates_are_refused() -> None:
    text = HEADER + f"T0001,,bot,{BOT_TOKEN},\nT0002,,bot,nope,\nT0001,,bot,{BOT_TOKEN},\n"

    good, bad = validate(read_rows(text, json_format=False), now=0)

    assert [p.team_id for p in good] == ["T0001"]
    assert [(b.line, b.problem.split(" ")[0]) for b in bad] == [(3, "token"), (4, "duplicate")]


@pytest.mark.parametrize(
    ("text", "json_format"),
    [("team_id,token\nT1,x\n", False), ('{"team_id": "T1"}', True), ("", False)],
)
def test_an_unreadable_file_is_refused_as_a_whole(text: str, json_format: bool) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the format
        read_rows(text, json_format=json_format)


def test_dry_run_reports_bad_rows_by_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(HEADER + f"T0001,,bot,{BOT_TOKEN},\nT0002,,user,{USER_TOKEN},\n", encoding="utf-8")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a dry run must not call AWS
    out, human = io.StringIO(), io.StringIO()

    status = main(["import", str(path), "--dry-run", "--json"], stdout=out)
    assert main(["import", str(path), "--dry-run"], stdout=human) == 1

    report = json.loads(out.getvalue())
    assert status == 1
    assert human.getvalue().splitlines()[0] == "line 3: a user token pair needs a valid user id"
    assert report == {
        "stack": None,
        "rows": 2,
        "valid": 1,
        "invalid": 1,
        "written": 0,
        "skipped": 0,
        "failed": 0,
        "dry_run": True,
        "problems": [{"line": 3, "problem": "a user token pair needs a valid user id"}],
        "stored": [],
        "exists": [],
        "not_written": [],
        "ok": False,
    }
    for text in (out.getvalue(), human.getvalue()):
        assert BOT_TOKEN not in text and USER_TOKEN not in text


def test_json_rows_are_written(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    rows = [row(), row(token_type="user", token=USER_TOKEN, user_id="U0001"), "not an object"]
    path.write_text(json.dumps(rows), encoding="utf-8")
    out, store = io.StringIO(), RecordingStore()

    report = import_pairs(read_file(path), store, dry_run=False)
    render(report, Out(out))

    assert not report.ok
    assert [p.token_type for p in store.saved] == ["bot", "user"]
    assert "line 3: token_type must be bot or user" in out.getvalue()
    assert report.to_json()["written"] == 2
    assert BOT_TOKEN not in out.getvalue() and USER_TOKEN not in out.getvalue()


def test_an_unreadable_file_is_a_usage_error_that_quotes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(f'[{{"token": "{BOT_TOKEN}"', encoding="utf-8")  # cut short
    err = io.StringIO()

    assert main(["import", str(path), "--dry-run"], stderr=err) == 2
    assert "cannot read" in err.getvalue() and BOT_TOKEN not in err.getvalue()
    assert main(["import", str(tmp_path / "missing.csv"), "--dry-run"], stderr=err) == 2
