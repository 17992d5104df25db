"""``slack-tokens retire NAME... | --team ID``: what an uninstall does (``SecretsManagerInstallationStore``'s
``delete_*``): mark each pair ``revoked`` by compare-and-swap (a reinstall that lands meanwhile wins), never
refreshed again, no alarm, and its secret scheduled for deletion after the stack's ``RetiredPairRecoveryDays``. A
later install restores it. Asks first unless ``--yes``. Exit status 1 unless every pair ended retired."""

from __future__ import annotations

import argparse
import time

from slack_tokens.errors import StoreError
from slack_tokens.handover import Handover
from slack_tokens.outcomes import Outcome, PairResult
from slack_tokens.store import TokenStore
from slack_tokens_cli.aws import access_denied
from slack_tokens_cli.confirm import confirmed
from slack_tokens_cli.errors import ATTENTION, OK
from slack_tokens_cli.output import Out
from slack_tokens_cli.selection import chosen
from slack_tokens_cli.stack import Target

WRITE_SECONDS = 30.0
_WORDS = {
    PairResult.RETIRED_NOW: ("retired", "green"),
    PairResult.ALREADY_RETIRED: ("already retired", "dim"),
    "missing": ("no such pair", "yellow"),
    "superseded": ("not retired: a reinstall replaced it meanwhile", "yellow"),
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "retire", parents=[common], help="retire pairs, as an uninstall does", description=__doc__
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="pair names, with or without the prefix")
    parser.add_argument("--team", metavar="ID", help="every pair of this team (or org) id")
    parser.add_argument("--reason", default="retired by an operator (slack-tokens retire)", help="kept on the pair")
    parser.add_argument("--yes", action="store_true", help="do not ask first")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Out) -> int:
    names = chosen(target, args.names, args.team)
    if not args.json:
        for name in names:
            out.line(f"  {name}")
    question = f"Retire {len(names)} pair(s) in {target.label}? Their tokens stop being refreshed"
    if not confirmed(question, yes=args.yes):
        out.line("nothing done")
        return ATTENTION
    handover = Handover(TokenStore(target.aws.client("secretsmanager"), target.prefix))
    outcomes = [_retire(handover, target, name, args.reason) for name in names]
    ok = all(o.result in (PairResult.RETIRED_NOW, PairResult.ALREADY_RETIRED) for o in outcomes)
    if args.json:
        results = [{"name": o.name, "result": o.result, "reason": o.reason} for o in outcomes]
        out.json({"stack": target.label, "recovery_days": target.recovery_days, "results": results, "ok": ok})
        return OK if ok else ATTENTION
    for o in outcomes:
        text, style = _WORDS.get(o.result, (f"failed: {o.reason}", "red"))
        out.line(f"{o.name}: {out.paint(text, style)}")
    out.line(f"deletion scheduled after {target.recovery_days} days; an install of the workspace restores a pair")
    return OK if ok else ATTENTION


def _retire(handover: Handover, target: Target, name: str, reason: str) -> Outcome:
    try:
        return handover.retire(name, reason, recovery_days=target.recovery_days, end=time.monotonic() + WRITE_SECONDS)
    except StoreError as exc:
        if exc.code in ("AccessDeniedException", "AccessDenied"):
            raise access_denied(f"retire {name}", target.aws.denied) from None
        return Outcome(name, PairResult.FAILED, exc.code or "store_error")
