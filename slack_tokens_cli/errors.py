"""The errors the command reports in one line (never a stack trace), with its exit status.

Exit status: 0 all well, 1 something needs attention or an operation did not succeed, 2 a usage error, 3 the stack
could not be reached (credentials, region, unknown stack, access denied, endpoint down).
"""

from __future__ import annotations

OK, ATTENTION, USAGE, UNREACHABLE = 0, 1, 2, 3


class CliError(Exception):
    """A problem the operator can act on; ``str()`` is the whole message."""

    def __init__(self, message: str, status: int = UNREACHABLE) -> None:
        super().__init__(message)
        self.status = status
