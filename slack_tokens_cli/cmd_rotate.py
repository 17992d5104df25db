"""``slack-tokens rotate NAME... | --team ID | --all``: rotate now through the stack's RotateFunction (so the run
guard is respected), and print each run's summary. Exit status 1 unless every pair rotated."""

from __future__ import annotations

import argparse
from typing import Any

from slack_tokens_cli.errors import ATTENTION, OK, USAGE, CliError
from slack_tokens_cli.invoke import invoke
from slack_tokens_cli.output import Out
from slack_tokens_cli.selection import chosen
from slack_tokens_cli.stack import Target

_COUNTS = ("due", "rotated", "recovered", "failed", "needs_reinstall", "deferred", "superseded")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "rotate", parents=[common], help="rotate pairs now (RotateFunction)", description=__doc__
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="pair names, with or without the prefix")
    parser.add_argument("--team", metavar="ID", help="every active pair of this team (or org) id")
    parser.add_argument("--all", action="store_true", help="a sweep now: every pair that is due")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Out) -> int:
    if args.all:
        if args.names or args.team:
            raise CliError("--all sweeps every due pair: give no names and no --team with it", USAGE)
        runs: list[dict[str, Any]] = [
            {"name": None, "summary": invoke(target, target.rotate_function, "RotateFunction", {})}
        ]
    else:
        names = chosen(target, args.names, args.team)
        runs = [
            {"name": n, "summary": invoke(target, target.rotate_function, "RotateFunction", {"secret_id": n})}
            for n in names
        ]
    ok = all(_ok(r["summary"], sweep=r["name"] is None) for r in runs)
    if args.json:
        out.json({"stack": target.label, "runs": runs, "ok": ok})
    else:
        for r in runs:
            out.line(f"{r['name'] or 'sweep'}: {describe(r['summary'], out, sweep=r['name'] is None)}")
    return OK if ok else ATTENTION


def _ok(summary: dict[str, Any], *, sweep: bool) -> bool:
    if summary.get("error") or summary.get("failed") or summary.get("needs_reinstall") or summary.get("deferred"):
        return False
    return sweep or summary.get("rotated", 0) >= 1


# What one pair's run summary means, first match wins: (count that is set, words, colour).
_OUTCOMES = (
    ("recovered", "recovered (a stored rotation was promoted)", "green"),
    ("rotated", "rotated", "green"),
    ("needs_reinstall", "needs a reinstall (Slack refused its refresh token)", "red"),
    ("failed", "failed", "red"),
    ("deferred", "deferred: the run guard is held", "yellow"),
    ("superseded", "superseded (a reinstall replaced it meanwhile)", "yellow"),
)


def outcome(summary: dict[str, Any]) -> tuple[str, str]:
    """One pair's run summary in a few words, and its colour."""
    if summary.get("error"):
        return f"refused: {summary['error']}", "red"
    for key, words, style in _OUTCOMES:
        if summary.get(key):
            detail = ""
            if key == "failed":
                detail = ": " + (", ".join(summary.get("failures") or {}) or "unknown")
            elif key == "deferred" and summary.get("blocked_by"):
                detail = f" by {summary['blocked_by']}"
            return words + detail, style
    return "skipped (retired, legacy or awaiting a reinstall)", "yellow"


def describe(summary: dict[str, Any], out: Out, *, sweep: bool) -> str:
    if not sweep:
        return out.paint(*outcome(summary))
    counts = [f"{k}={summary[k]}" for k in _COUNTS if summary.get(k)]
    text = " ".join(counts) if summary.get("due") else "nothing due"
    return out.paint(text, "red" if summary.get("failed") or summary.get("needs_reinstall") else "")
