"""``.local/stack.json``: where a running ``make run`` can be reached (its moto server, HTTP API, Slack sandbox),
so ``make pairs`` and ``make invoke ATTACH=1`` can find it. Written at start, removed at a clean stop; a file left by
a process that no longer runs is reported as stale. It holds URLs and secret ids, never a secret value."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from local.template import ROOT
from slack_tokens_cli.stack import alive

STATE_FILE = ROOT / ".local" / "stack.json"


class NoStackError(Exception):
    """No running local stack could be found."""


def write(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **state}, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def remove(path: Path) -> None:
    """Remove the file if this process wrote it."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def read(path: Path = STATE_FILE) -> dict[str, Any]:
    """The state of the running stack; ``NoStackError`` when none runs."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoStackError("no local stack is running (start one with `make run`)") from None
    except (OSError, ValueError) as exc:
        raise NoStackError(f"{path} is unreadable: {exc}") from None
    pid = state.get("pid")
    if not isinstance(pid, int) or not alive(pid):
        raise NoStackError(f"no local stack is running ({path} is left from process {pid}, which has ended)")
    return dict(state)
