"""``slack-tokens pairs``: every pair, with filters; from the listing only, never a value."""

from __future__ import annotations

import argparse
import time

from slack_tokens.models import Status
from slack_tokens_cli.errors import OK
from slack_tokens_cli.output import Out, parse_duration, table
from slack_tokens_cli.pairs import FILTERS, PairRow, listing, select
from slack_tokens_cli.stack import Target

_STYLE: dict[str, str] = {Status.ACTIVE: "green", Status.NEEDS_REINSTALL: "red", Status.REVOKED: "dim"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "pairs", parents=[common], help="list the token pairs (never a token)", description=__doc__
    )
    parser.add_argument("--status", choices=FILTERS, help="only pairs with this status (pending: rotation pending)")
    parser.add_argument("--team", metavar="ID", help="only the pairs of this team (or Enterprise org) id")
    parser.add_argument(
        "--expiring-within", metavar="DURATION", type=_duration, help="only active pairs expiring within e.g. 2h"
    )
    parser.set_defaults(run=run)


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace, target: Target, out: Out) -> int:
    now = time.time()
    rows = select(listing(target), status=args.status, team=args.team, within=args.expiring_within, now=now)
    if args.json:
        out.json(
            {"stack": target.label, "prefix": target.prefix, "now": int(now), "pairs": [r.to_json(now) for r in rows]}
        )
        return OK
    if rows:
        out.line(render(rows, now, out))
    count = f"{len(rows)} pair{'s' if len(rows) != 1 else ''}"
    out.line(out.paint(f"{count} under {target.prefix} in {target.label} (values never shown)", "dim"))
    return OK


def render(rows: list[PairRow], now: float, out: Out) -> str:
    cells = []
    for row in rows:
        left = row.left(now)
        soon = left is not None and row.status == Status.ACTIVE and left < 1800
        status = row.status + (" (rotation pending)" if row.pending_rotation else "")
        cells.append(
            [
                (row.name, ""),
                (row.team, ""),
                (row.token_type, ""),
                (row.expires_in(now), "red" if soon else ""),
                (status, _STYLE.get(row.status, "")),
            ]
        )
    return table(out, ("NAME", "TEAM", "TYPE", "EXPIRES IN", "STATUS"), cells)
