"""``slack-tokens``: the operator's command for a slack-token-lifecycle stack (deployed, or ``make run``).

    slack-tokens pairs [--status S] [--team T] [--expiring-within 2h]
    slack-tokens status
    slack-tokens rotate NAME... | --team T | --all
    slack-tokens retire NAME... | --team T [--yes]
    slack-tokens import FILE [--dry-run]
    slack-tokens exchange [--dry-run] [NAME...] [--yes]

Every command takes --stack, --region, --profile (as the AWS CLI has them), --local and --json. Exit status: 0 all
well, 1 something needs attention or did not succeed, 2 a usage error, 3 the stack could not be reached (no
credentials, unknown stack, access denied: the message says which permission).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from slack_tokens_cli import cmd_exchange, cmd_import, cmd_pairs, cmd_retire, cmd_rotate, cmd_status
from slack_tokens_cli.errors import ATTENTION, USAGE, CliError
from slack_tokens_cli.output import Out
from slack_tokens_cli.stack import resolve

COMMANDS = (cmd_pairs, cmd_status, cmd_rotate, cmd_retire, cmd_import, cmd_exchange)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("which stack")
    where.add_argument("--stack", help="CloudFormation stack name (default: samconfig.toml's stack_name)")
    where.add_argument("--region", help="AWS region (default: AWS_REGION, then samconfig.toml's region)")
    where.add_argument("--profile", help="AWS profile from ~/.aws/config")
    where.add_argument("--local", action="store_true", help="the running `make run` (the default when one runs)")
    where.add_argument("--state-file", type=Path, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    top = argparse.ArgumentParser(
        prog="slack-tokens",
        description=__doc__.split("\n")[0] if __doc__ else None,
        epilog="exit status: 0 ok, 1 needs attention, 2 usage error, 3 stack unreachable",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, common)
    return top


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stderr = stderr or sys.stderr
    args = parser().parse_args(argv)
    out = Out(stdout)
    try:
        needs_stack = getattr(args, "needs_stack", lambda _: True)(args)
        target = (
            resolve(
                stack=args.stack, region=args.region, profile=args.profile, local=args.local, state_file=args.state_file
            )
            if needs_stack
            else None
        )
        with _service_logs_to(stderr):
            status: int = args.run(args, target, out)
    except CliError as exc:
        print(f"slack-tokens: {exc}", file=stderr)
        if args.json:  # a script reading stdout gets an answer it can parse, too
            out.json({"error": str(exc), "exit_status": exc.status})
        return exc.status
    except KeyboardInterrupt:
        print("slack-tokens: interrupted", file=stderr)
        return ATTENTION
    return status


@contextmanager
def _service_logs_to(stderr: TextIO) -> Iterator[None]:
    """The layer's Powertools logger prints JSON lines on stdout (Lambda's log stream): here they would mix with
    the command's output. While a command runs, its warnings and errors go to stderr and its info lines nowhere
    (the command prints its own account)."""
    from slack_tokens.observability import logger  # noqa: PLC0415 - Powertools only once a command runs

    service = logging.getLogger(logger.name)
    level = service.level
    handlers = [h for h in service.handlers if type(h) is logging.StreamHandler]
    streams = [h.setStream(stderr) for h in handlers]
    service.setLevel(logging.WARNING)
    try:
        yield
    finally:
        service.setLevel(level)
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


def run() -> int:
    """The console script's entry point."""
    try:
        return main()
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else USAGE


__all__ = ["main", "parser", "run"]
