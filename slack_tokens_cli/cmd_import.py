"""``slack-tokens import FILE [--dry-run]``: put legacy (non-expiring) tokens into the stack's store, ready for
``slack-tokens exchange``. CSV with the header ``team_id,enterprise_id,token_type,token,user_id``, or a JSON list
of objects with those keys. Bad rows are reported by line, never with their token. A pair that exists already is
left as it is, so importing twice is harmless. ``--dry-run`` checks the file and needs no AWS at all. Exit status 1
when a row is bad or could not be written."""

from __future__ import annotations

import argparse
from pathlib import Path

from slack_tokens.store import TokenStore
from slack_tokens_cli.errors import ATTENTION, OK, USAGE, CliError
from slack_tokens_cli.legacy_import import Report, import_pairs, read_file
from slack_tokens_cli.output import Out
from slack_tokens_cli.stack import Target


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "import", parents=[common], help="import legacy tokens from a file", description=__doc__
    )
    parser.add_argument("file", type=Path, help="CSV or JSON file of legacy tokens")
    parser.add_argument("--dry-run", action="store_true", help="check the file only; write nothing, call no AWS")
    parser.set_defaults(run=run, needs_stack=lambda args: not args.dry_run)


def run(args: argparse.Namespace, target: Target | None, out: Out) -> int:
    try:
        rows = read_file(args.file)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    store = TokenStore(target.aws.client("secretsmanager"), target.prefix) if target is not None else None
    report = import_pairs(rows, store, dry_run=store is None)
    if args.json:
        out.json({"stack": target.label if target else None, **report.to_json(), "ok": report.ok})
    else:
        render(report, out)
    return OK if report.ok else ATTENTION


def render(report: Report, out: Out) -> None:
    for problem in report.problems:
        out.line(out.paint(f"line {problem.line}: {problem.problem}", "red"))
    for name in report.stored:
        out.line(f"{name}: stored")
    for name in report.existing:
        out.line(f"{name}: exists already, left as it is")
    for name, error in report.failed:
        out.line(out.paint(f"{name}: not written ({error})", "red"))
    summary = report.to_json()
    if report.dry_run:
        out.line(f"{summary['valid']} of {summary['rows']} row(s) valid (dry run: nothing written)")
    else:
        out.line(
            f"{summary['written']} stored, {summary['skipped']} already there, {summary['failed']} not written, "
            f"{summary['invalid']} invalid, of {summary['rows']} row(s)"
        )
