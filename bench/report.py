"""The printed report: headings, aligned tables, notes and PASS/FAIL checks (collected for the summary)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Check:
    benchmark: str
    name: str
    passed: bool
    detail: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


class Report:
    """Prints as the benchmarks go (they can take a while) and keeps every check for the final summary."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.checks: list[Check] = []
        self.benchmark = ""

    def line(self, text: str = "") -> None:
        print(text, file=self._stream, flush=True)

    def heading(self, text: str) -> None:
        self.line()
        self.line(text)
        self.line("=" * len(text))

    def subheading(self, text: str) -> None:
        self.line()
        self.line(text)
        self.line("-" * len(text))

    def note(self, text: str) -> None:
        self.line(f"  note: {text}")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> None:
        """An aligned table; the first ``left`` columns are left-aligned, the others right-aligned."""
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

        def render(row: Sequence[str]) -> str:
            cells = [
                str(cell).ljust(width) if i < left else str(cell).rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            return "  " + "  ".join(cells).rstrip()

        self.line(render(header))
        self.line("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            self.line(render(row))

    def check(self, name: str, passed: bool, detail: str) -> Check:
        result = Check(self.benchmark, name, passed, detail)
        self.checks.append(result)
        self.line(f"  [{result.verdict}] {name}: {detail}")
        return result
