"""``slack-tokens exchange [--dry-run] [NAME...]``: the legacy exchange (``oauth.v2.exchange``) through the stack's
ExchangeFunction, which holds the run guard. Without names, every legacy pair. Asks first unless ``--yes`` or
``--dry-run``. Exit status 1 unless every pair asked for was exchanged (or, on a dry run, the run was refused)."""

from __future__ import annotations

import argparse
from typing import Any

from slack_tokens_cli.confirm import confirmed
from slack_tokens_cli.errors import ATTENTION, OK
from slack_tokens_cli.invoke import invoke
from slack_tokens_cli.output import Out
from slack_tokens_cli.selection import full_name
from slack_tokens_cli.stack import Target

_COUNTS = ("due", "exchanged", "recovered", "failed", "needs_reinstall", "deferred", "skipped", "superseded")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "exchange", parents=[common], help="exchange legacy tokens (ExchangeFunction)", description=__doc__
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="legacy pairs (default: every legacy pair)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be exchanged; change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask first")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Out) -> int:
    event: dict[str, Any] = {"dry_run": True} if args.dry_run else {}
    if args.names:
        event["secret_ids"] = [full_name(target, n) for n in args.names]
    what = f"{len(args.names)} pair(s)" if args.names else "every legacy pair"
    if not args.dry_run and not confirmed(f"Exchange {what} in {target.label}? Slack cannot undo it", yes=args.yes):
        out.line("nothing done")
        return ATTENTION
    summary = invoke(target, target.exchange_function, "ExchangeFunction", event)
    ok = not (summary.get("error") or summary.get("failed") or summary.get("stopped") or summary.get("needs_reinstall"))
    if args.json:
        out.json({"stack": target.label, "summary": summary, "ok": ok})
    elif args.dry_run:
        would = summary.get("would_exchange") or []
        for name in would:
            out.line(f"would exchange {name}")
        out.line(f"{len(would)} legacy pair(s) would be exchanged (dry run: nothing changed)")
    else:
        counts = " ".join(f"{k}={summary[k]}" for k in _COUNTS if summary.get(k)) or "nothing to exchange"
        stopped = f" - stopped: {summary['stopped']}" if summary.get("stopped") else ""
        out.line(out.paint(counts + stopped, "" if ok else "red"))
    return OK if ok else ATTENTION
