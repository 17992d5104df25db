"""The operator view of the token store: every stored pair with its team, type, expiry and status.

    python -m local.pairs [--endpoint URL] [--prefix slack/tokens/] [--json]      (make pairs)

It reads only what ``ListSecrets`` returns (names, tags, version ids, which carry the expiry and status), never a
secret value, so it cannot print a token. By default it finds the running ``make run`` through
``.local/stack.json``; ``--endpoint`` or ``AWS_ENDPOINT_URL`` point it at another Secrets Manager (with the usual
boto3 credentials, it also lists a deployed stack's pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import boto3

from local import state
from slack_tokens.config import DEFAULT_PREFIX
from slack_tokens.errors import StoreError
from slack_tokens.models import ACTIVE, PairKey, parse_version_id
from slack_tokens.store import AWSCURRENT, AWSPENDING, STATUS_TAG, SecretMeta, TokenStore
from tests.support.aws import secretsmanager_client


@dataclass(frozen=True, slots=True)
class PairRow:
    name: str
    team: str  # team id, "E1 (org)" for an org-wide install, "T1 in E1" inside an Enterprise org
    token_type: str  # "bot" or "user U123"
    expires_at: int | None
    status: str
    pending_rotation: bool  # an AWSPENDING version other than AWSCURRENT: stored, not yet promoted
    current_version: str | None

    def expires_in(self, now: float) -> str:
        if self.expires_at is None:
            return "never (legacy)"
        left = self.expires_at - int(now)
        return f"expired {duration(-left)} ago" if left < 0 else duration(left)


def pair_rows(metas: Iterable[SecretMeta], prefix: str) -> list[PairRow]:
    """One row per token-pair secret (other secrets under the prefix, like the rotation lease, are skipped)."""
    rows: list[PairRow] = []
    for meta in metas:
        key = PairKey.from_secret_name(prefix, meta.name)
        if key is None or meta.deleted:
            continue
        current = meta.version_with(AWSCURRENT)
        pending = meta.version_with(AWSPENDING)
        info = parse_version_id(current) if current else None
        status = info.status if info is not None else meta.tags.get(STATUS_TAG, ACTIVE)
        if key.team_id and key.enterprise_id:
            team = f"{key.team_id} in {key.enterprise_id}"
        else:
            team = key.team_id or f"{key.enterprise_id} (org)"
        rows.append(
            PairRow(
                name=meta.name,
                team=team,
                token_type=key.token_type if key.user_id is None else f"user {key.user_id}",
                expires_at=info.expires_at if info is not None else None,
                status=status,
                pending_rotation=pending is not None and pending != current,
                current_version=current,
            )
        )
    return sorted(rows, key=lambda r: r.name)


def table(rows: list[PairRow], now: float) -> str:
    header = ("NAME", "TEAM", "TYPE", "EXPIRES IN", "STATUS")
    cells = [
        (
            r.name,
            r.team,
            r.token_type,
            r.expires_in(now),
            r.status + (" (rotation pending)" if r.pending_rotation else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [header, *cells]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *cells]
    )


def duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _client(endpoint: str | None) -> Any:
    if endpoint is None:
        return boto3.client("secretsmanager")  # the usual boto3 configuration (AWS_ENDPOINT_URL, profile, region)
    return secretsmanager_client(endpoint)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make pairs", description="List the stored Slack token pairs (no tokens).")
    parser.add_argument("--endpoint", help="Secrets Manager endpoint (default: the running `make run`)")
    parser.add_argument("--prefix", help=f"token secret name prefix (default: the stack's, or {DEFAULT_PREFIX})")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args(argv)
    endpoint, prefix = args.endpoint, args.prefix
    where = endpoint
    if endpoint is None and not os.environ.get("AWS_ENDPOINT_URL"):
        try:
            running = state.read()
        except state.NoStackError as exc:
            print(f"{exc}; or set AWS_ENDPOINT_URL / --endpoint", file=sys.stderr)
            return 1
        endpoint = where = running["moto_url"]
        prefix = prefix or running.get("token_prefix")
    prefix = prefix or os.environ.get("TOKEN_SECRET_PREFIX") or DEFAULT_PREFIX
    try:
        rows = pair_rows(TokenStore(_client(endpoint), prefix).list_pairs(), prefix)
    except StoreError as exc:
        print(f"cannot list the pairs: {exc}", file=sys.stderr)
        return 1
    now = time.time()
    if args.json:
        print(json.dumps([asdict(r) | {"expires_in": r.expires_in(now)} for r in rows], indent=2))
        return 0
    if rows:
        print(table(rows, now))
    count = f"{len(rows)} pair{'s' if len(rows) != 1 else ''}"
    print(f"{count} under {prefix} in {where or os.environ.get('AWS_ENDPOINT_URL') or 'AWS'} (values never shown)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
