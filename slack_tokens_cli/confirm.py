"""Asking before a change: on a terminal, a y/N question; elsewhere, ``--yes`` is required."""

from __future__ import annotations

import sys
from typing import TextIO

from slack_tokens_cli.errors import USAGE, CliError


def confirmed(question: str, *, yes: bool, stdin: TextIO | None = None, stderr: TextIO | None = None) -> bool:
    if yes:
        return True
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    if not stdin.isatty():
        raise CliError(f"{question} - not on a terminal, so pass --yes to go ahead", USAGE)
    print(f"{question} [y/N] ", end="", file=stderr, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")
