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
from slack_tokens.models import PairKey, Status, TokenPair

FIELDS = ("team_id", "enterprise_id", "token_type", "token", "user_id")
_PREFIXES: dict[str, str] = {"bot": "xoxb-", "user": "xoxp-"}


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
    """A legacy token pair from one row. Raises ``ValueError`` with a message that never holds the token: the ids
    are checked by ``PairKey``, the token here."""
    team_id, enterprise_id, user_id = _text(row, "team_id"), _text(row, "enterprise_id"), _text(row, "user_id")
    token_type, token = _text(row, "token_type"), _text(row, "token")
    # Checked before PairKey, whose message quotes the value: a row with shifted columns has its token there.
    if token_type not in _PREFIXES:
        raise ValueError("token_type must be bot or user")
    key = PairKey("bot" if token_type == "bot" else "user", team_id, enterprise_id, user_id)
    prefix = _PREFIXES[key.token_type]
    if token is None or not token.startswith(prefix) or len(token) > 4096 or any(c.isspace() for c in token):
        raise ValueError(f"token must be a legacy {prefix}… token")
    return TokenPair(
        token_type=key.token_type,
        access_token=token,
        refresh_token=None,
        expires_at=None,
        scope="",
        app_id=None,
        team_id=key.team_id,
        enterprise_id=key.enterprise_id,
        is_enterprise_install=key.team_id is None,  # an org-wide install has an enterprise and no team
        user_id=key.user_id,
        status=Status.ACTIVE,
        updated_at=now,
    )


def _text(row: Mapping[str, Any], key: str) -> str | None:
    """A column's text, stripped; ``None`` when absent or blank."""
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return value.strip() or None


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
