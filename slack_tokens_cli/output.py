"""What a person reads: aligned tables, relative times, colour only on a terminal (and never under ``NO_COLOR``),
and the JSON that scripts read instead."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Out:
    """Where the command writes: ``stream`` (stdout), with colour when it is a terminal and ``NO_COLOR`` is unset."""

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if color is None:
            color = _isatty(self.stream) and not os.environ.get("NO_COLOR")
        self.color = color

    def paint(self, text: str, style: str) -> str:
        return f"\033[{_CODES[style]}m{text}\033[0m" if self.color and style in _CODES else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def json(self, value: Any) -> None:
        print(json.dumps(value, indent=2, sort_keys=True), file=self.stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def table(out: Out, header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """Columns aligned on the plain text; each cell is ``(text, style)`` and only the text counts for the width."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(out.paint(h.ljust(w), "bold") for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        cells = [out.paint(text.ljust(w), style) for (text, style), w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """``45s``, ``3m 05s``, ``2h 10m``, ``3d 04h``: the two largest units."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` (or plain seconds) as seconds. ``ValueError`` otherwise."""
    text = text.strip().lower()
    if text.isascii() and text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 30m, 2h, 1d, 1h30m)")
    return sum(int(n) * _UNITS[unit] for n, unit in parts)
