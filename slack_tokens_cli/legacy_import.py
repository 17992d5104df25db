"""Put existing legacy (non-expiring) tokens into the store, ready for ExchangeFunction (``slack-tokens import``).

The file is CSV with the header ``team_id,enterprise_id,token_type,token,user_id`` or JSON (a list of objects
with those keys). Every row is checked first; bad rows are reported by line (CSV) or position (JSON), never with
their token, and are not written. Good rows are stored as legacy pairs (``refresh_token`` and
``expires_at`` null) under the stack's prefix.
An import never overwrites: a row whose secret exists already (imported before, exchanged, or reinstalled since)
is skipped, so running the same file again is harmless.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class Report:
    """What an import did, by row: never a token."""

    dry_run: bool
    problems: list[BadRow] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    valid: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.valid + len(self.problems),
            "valid": self.valid,
            "invalid": len(self.problems),
            "written": len(self.stored),
            "skipped": len(self.existing),
            "failed": len(self.failed),
            "dry_run": self.dry_run,
            "problems": [{"line": p.line, "problem": p.problem} for p in self.problems],
            "stored": self.stored,
            "exists": self.existing,
            "not_written": [{"name": n, "error": e} for n, e in self.failed],
        }


def read_file(path: Path) -> list[tuple[int, Mapping[str, Any]]]:
    """The rows of ``path`` (JSON when it ends in .json, else CSV). Raises ``ValueError`` naming only the
    problem's kind: neither message may quote a row, which holds a token."""
    try:
        text = path.read_text(encoding="utf-8")
        return read_rows(text, json_format=path.suffix.lower() == ".json")
    except (OSError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) and str(exc).startswith(("a JSON", "the CSV")) else ""
        raise ValueError(f"cannot read {path}: {detail or type(exc).__name__}") from None


def import_pairs(rows: Sequence[tuple[int, Mapping[str, Any]]], store: Any, *, dry_run: bool) -> Report:
    """Check every row; unless ``dry_run``, create each good row's secret (an existing one is left as it is)."""
    good, bad = validate(rows, int(time.time()))
    report = Report(dry_run=dry_run, problems=bad, valid=len(good))
    if dry_run:
        return report
    for pair in good:
        name = store.name_for(pair.key)
        try:
            stored = store.create_if_absent(pair, deadline=time.monotonic() + 30)
        except StoreError as exc:
            report.failed.append((name, exc.code or "store_error"))
            continue
        (report.existing if stored is None else report.stored).append(name)
    return report
