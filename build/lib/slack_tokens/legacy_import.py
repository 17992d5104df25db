"""Operator command: put existing legacy (non-expiring) tokens into the store, ready for ExchangeFunction.

    PYTHONPATH=layers/common python -m slack_tokens.legacy_import tokens.csv [--dry-run]

The file is CSV with the header ``team_id,enterprise_id,token_type,token,user_id`` or JSON (a list of objects
with those keys). Every row is checked first; bad rows are reported by line (CSV) or position (JSON), never with
their token, and are not written. Good rows are stored as legacy pairs (SPEC 4.2: ``refresh_token`` and
``expires_at`` null). Uses ``TOKEN_SECRET_PREFIX`` and boto3's own configuration (``AWS_ENDPOINT_URL``...).
An import never overwrites: a row whose secret exists already (imported before, exchanged, or reinstalled since)
is skipped, so running the same file again is harmless.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from slack_tokens.config import DEFAULT_PREFIX
from slack_tokens.errors import StoreError
from slack_tokens.models import ACTIVE, TokenPair, valid_slack_id

FIELDS = ("team_id", "enterprise_id", "token_type", "token", "user_id")
_PREFIXES = {"bot": "xoxb-", "user": "xoxp-"}


@dataclass(frozen=True)
class BadRow:
    line: int
    problem: str


def read_rows(text: str, *, json_format: bool) -> list[tuple[int, Mapping[str, Any]]]:
    """(line or position, row) pairs. Raises ``ValueError`` when the file itself is unreadable."""
    if json_format:
        body = json.loads(text)
        if not isinstance(body, list):
            raise ValueError("a JSON file must hold a list of objects")
        return [(index, row if isinstance(row, dict) else {}) for index, row in enumerate(body, start=1)]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(FIELDS) - {name.strip() for name in reader.fieldnames}:
        raise ValueError(f"the CSV header must be {','.join(FIELDS)}")
    return [(reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}) for row in reader]


def to_pair(row: Mapping[str, Any], now: int) -> TokenPair:
    """A legacy token pair from one row. Raises ``ValueError`` with a message that never holds the token."""

    def text(key: str) -> str | None:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be text")
        return value.strip() or None if value is not None else None

    team_id, enterprise_id, user_id = text("team_id"), text("enterprise_id"), text("user_id")
    token_type, token = text("token_type"), text("token")
    if token_type not in _PREFIXES:
        raise ValueError("token_type must be bot or user")
    if team_id is None and enterprise_id is None:
        raise ValueError("team_id or enterprise_id is required")
    for key, value in (("team_id", team_id), ("enterprise_id", enterprise_id)):
        if value is not None and not valid_slack_id(value):
            raise ValueError(f"{key} is not a Slack id")
    if token_type == "user" and not valid_slack_id(user_id):
        raise ValueError("user rows need a valid user_id")
    if token_type == "bot" and user_id is not None:
        raise ValueError("bot rows take no user_id")
    if (
        token is None
        or not token.startswith(_PREFIXES[token_type])
        or len(token) > 4096
        or any(c.isspace() for c in token)
    ):
        raise ValueError(f"token must be a legacy {_PREFIXES[token_type]}… token")
    return TokenPair(
        token_type="bot" if token_type == "bot" else "user",
        access_token=token,
        refresh_token=None,
        expires_at=None,
        scope="",
        app_id=None,
        team_id=team_id,
        enterprise_id=enterprise_id,
        is_enterprise_install=team_id is None,  # an org-wide install has an enterprise and no team
        user_id=user_id if token_type == "user" else None,
        status=ACTIVE,
        updated_at=now,
    )


def validate(rows: Iterable[tuple[int, Mapping[str, Any]]], now: int) -> tuple[list[TokenPair], list[BadRow]]:
    good: list[TokenPair] = []
    bad: list[BadRow] = []
    seen: set[object] = set()
    for line, row in rows:
        try:
            pair = to_pair(row, now)
        except ValueError as exc:
            bad.append(BadRow(line, str(exc)))
            continue
        if pair.key in seen:
            bad.append(BadRow(line, "duplicate of an earlier row for the same pair"))
            continue
        seen.add(pair.key)
        good.append(pair)
    return good, bad


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, store: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slack_tokens.legacy_import", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="CSV or JSON file of legacy tokens")
    parser.add_argument("--dry-run", action="store_true", help="validate and report only; write nothing")
    args = parser.parse_args(argv)
    try:
        text = args.file.read_text(encoding="utf-8")
        rows = read_rows(text, json_format=args.file.suffix.lower() == ".json")
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError; neither message quotes a row
        print(f"cannot read {args.file}: {type(exc).__name__}", file=out)
        return 2
    good, bad = validate(rows, int(time.time()))
    for row in bad:
        print(f"line {row.line}: {row.problem}", file=out)
    written = failed = skipped = 0
    if not args.dry_run and good:
        if store is None:
            from slack_tokens.store import TokenStore, make_client  # noqa: PLC0415 - boto3 only when writing

            store = TokenStore(make_client(), os.environ.get("TOKEN_SECRET_PREFIX") or DEFAULT_PREFIX)
        for pair in good:
            try:
                stored = store.create_if_absent(pair, deadline=time.monotonic() + 30)
            except StoreError as exc:
                failed += 1
                print(f"{store.name_for(pair.key)}: not written ({exc})", file=out)
            else:
                if stored is None:
                    skipped += 1
                    print(f"{store.name_for(pair.key)}: exists already, left as it is", file=out)
                else:
                    written += 1
                    print(f"{stored.name}: stored", file=out)
    summary = {"rows": len(good) + len(bad), "valid": len(good), "invalid": len(bad), "written": written}
    summary |= {"skipped": skipped, "failed": failed, "dry_run": args.dry_run}
    print(json.dumps(summary), file=out)
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
