"""The pairs as one ``ListSecrets`` shows them: name, team or org, type, expiry, status. Never a value: the status
and expiry come from the version ids (``active-1767225600-…``), so this cannot print a token.

Retired pairs are listed too (``IncludePlannedDeletion``): their secrets are scheduled for deletion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_tokens.models import PairKey, Status, parse_version_id
from slack_tokens.store import STATUS_TAG, SecretMeta
from slack_tokens_cli.output import duration
from slack_tokens_cli.stack import Target

STATUSES = tuple(Status)
FILTERS = (*STATUSES, "pending", "legacy", "expired")


@dataclass(frozen=True, slots=True)
class PairRow:
    name: str
    key: PairKey
    expires_at: int | None
    status: str
    pending_rotation: bool  # a version stored after the current one, not yet promoted
    current_version: str | None
    retired_at: str | None = None  # retired: when its deletion was scheduled (ISO 8601)

    @property
    def team(self) -> str:
        """The team id, ``E1 (org)`` for an org-wide install, ``T1 in E1`` for a workspace inside an org."""
        if self.key.team_id and self.key.enterprise_id:
            return f"{self.key.team_id} in {self.key.enterprise_id}"
        return self.key.team_id or f"{self.key.enterprise_id} (org)"

    @property
    def token_type(self) -> str:
        return self.key.token_type if self.key.user_id is None else f"user {self.key.user_id}"

    @property
    def legacy(self) -> bool:
        return self.expires_at is None

    def left(self, now: float) -> int | None:
        return None if self.expires_at is None else self.expires_at - int(now)

    def expired(self, now: float) -> bool:
        left = self.left(now)
        return self.status == Status.ACTIVE and left is not None and left <= 0

    def expires_in(self, now: float) -> str:
        left = self.left(now)
        if left is None:
            return "never (legacy)"
        return f"expired {duration(-left)} ago" if left <= 0 else duration(left)

    def belongs_to(self, team: str) -> bool:
        return team in (self.key.team_id, self.key.enterprise_id)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "team_id": self.key.team_id,
            "enterprise_id": self.key.enterprise_id,
            "user_id": self.key.user_id,
            "token_type": self.key.token_type,
            "status": self.status,
            "pending_rotation": self.pending_rotation,
            "legacy": self.legacy,
            "expires_at": self.expires_at,
            "expires_in_seconds": self.left(now),
            "expired": self.expired(now),
            "retired_at": self.retired_at,
        }


def pair_rows(metas: Iterable[SecretMeta], prefix: str) -> list[PairRow]:
    """One row per token-pair secret, by name (other secrets under the prefix are skipped)."""
    rows = [row for row in (_row(meta, prefix) for meta in metas) if row is not None]
    return sorted(rows, key=lambda r: r.name)


def _row(meta: SecretMeta, prefix: str, retired_at: str | None = None) -> PairRow | None:
    key = PairKey.from_secret_name(prefix, meta.name)
    if key is None:
        return None
    info = parse_version_id(meta.current) if meta.current else None
    status = info.status if info is not None else meta.tags.get(STATUS_TAG, Status.ACTIVE)
    return PairRow(
        name=meta.name,
        key=key,
        expires_at=info.expires_at if info is not None else None,
        status=Status.REVOKED if meta.deleted else status,
        pending_rotation=meta.unpromoted is not None,
        current_version=meta.current,
        retired_at=retired_at,
    )


def listing(target: Target) -> list[PairRow]:
    """Every pair of the stack, retired ones included: one paginated ListSecrets."""
    client = target.aws.client("secretsmanager")
    entries = target.aws.pages(
        "list the token pairs",
        client,
        "list_secrets",
        "SecretList",
        Filters=[{"Key": "name", "Values": [target.prefix]}],
        IncludePlannedDeletion=True,
    )
    return sorted(_rows(entries, target.prefix), key=lambda r: r.name)


def _rows(entries: Iterable[dict[str, Any]], prefix: str) -> Iterator[PairRow]:
    for entry in entries:
        if not str(entry.get("Name", "")).startswith(prefix):
            continue
        deleted = entry.get("DeletedDate")
        when = deleted.isoformat() if isinstance(deleted, datetime) else None
        row = _row(SecretMeta.from_api(entry), prefix, when)
        if row is not None:
            yield row


def select(
    rows: Iterable[PairRow], *, status: str | None, team: str | None, within: int | None, now: float
) -> list[PairRow]:
    """The rows that pass every filter given."""
    chosen = []
    for row in rows:
        if team is not None and not row.belongs_to(team):
            continue
        if status is not None and not _has(row, status, now):
            continue
        if within is not None and (row.status != Status.ACTIVE or (left := row.left(now)) is None or left > within):
            continue
        chosen.append(row)
    return chosen


def _has(row: PairRow, status: str, now: float) -> bool:
    if status == "pending":
        return row.pending_rotation
    if status == "legacy":
        return row.legacy
    if status == "expired":
        return row.expired(now)
    return row.status == status
