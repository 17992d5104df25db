"""Which pairs a command acts on: names given (with or without the stack's prefix), or every pair of ``--team``."""

from __future__ import annotations

from collections.abc import Sequence

from slack_tokens.models import PairKey
from slack_tokens_cli.errors import USAGE, CliError
from slack_tokens_cli.pairs import PairRow, listing
from slack_tokens_cli.stack import Target


def full_name(target: Target, name: str) -> str:
    """``team/T1/bot`` -> ``slack/tokens/team/T1/bot``; a full name or an ARN is kept."""
    if name.startswith((target.prefix, "arn:")):
        return name
    return target.prefix + name.lstrip("/")


def chosen(target: Target, names: Sequence[str], team: str | None, *, keep: bool = False) -> list[str]:
    """The secret names; a name that is not a token pair's is a usage error. ``keep``: retired pairs too."""
    if bool(names) == bool(team):
        raise CliError("name the pairs, or give --team ID (one of the two)", USAGE)
    if names:
        full = [full_name(target, n) for n in names]
        wrong = [n for n in full if not n.startswith("arn:") and PairKey.from_secret_name(target.prefix, n) is None]
        if wrong:
            raise CliError(f"not a token pair's name under {target.prefix}: {', '.join(wrong)}", USAGE)
        return full
    rows: list[PairRow] = [r for r in listing(target) if r.belongs_to(str(team)) and (keep or r.status != "revoked")]
    if not rows:
        raise CliError(f"no pair of team {team} under {target.prefix}", USAGE)
    return [r.name for r in rows]
