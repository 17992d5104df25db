"""Where things are, and the import paths a benchmark needs (Lambda puts the layer at /opt/python)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"


def ensure_import_paths() -> None:
    """Make ``slack_tokens`` (the layer) and ``sandbox`` (the fakes) importable."""
    for path in (str(LAYER), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def function_dirs() -> list[Path]:
    """Every ``functions/<name>/`` directory, sorted by name (with or without an ``app.py`` yet)."""
    return sorted(p for p in FUNCTIONS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
