"""The deployed-shape benchmark's simulation is faithful where it matters (fast; times nothing).

SAM's zip dates every entry 1980, the unzip keeps that date (so a timestamp .pyc goes stale while a hash-based one
survives), the tree ends read-only, and the `python -v` reading counts only modules compiled from source.
"""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from bench.deployed_cold_start import compiled_sources, sam_zip, set_writable, unzip_like_lambda


def test_zip_round_trip_dates_every_entry_1980_and_ends_read_only(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("X = 1\n")
    archive = tmp_path / "a.zip"

    sam_zip(source, archive)
    with zipfile.ZipFile(archive) as opened:
        assert [(i.filename, i.date_time[:3]) for i in opened.infolist()] == [("pkg/mod.py", (1980, 1, 1))]
    unzip_like_lambda(archive, tmp_path / "out")
    extracted = tmp_path / "out" / "pkg" / "mod.py"
    assert extracted.read_text() == "X = 1\n"
    assert 1979 <= time.localtime(extracted.stat().st_mtime).tm_year <= 1980

    set_writable(tmp_path / "out", False)
    try:
        assert not os.access(extracted, os.W_OK) or os.geteuid() == 0  # root ignores the mode bits
        assert not extracted.stat().st_mode & 0o222
        assert not (tmp_path / "out" / "pkg").stat().st_mode & 0o222
    finally:
        set_writable(tmp_path / "out", True)


@pytest.mark.parametrize(
    ("mode", "compiled"),
    [(py_compile.PycInvalidationMode.TIMESTAMP, True), (py_compile.PycInvalidationMode.UNCHECKED_HASH, False)],
    ids=["timestamp-pyc-is-stale", "hash-pyc-survives"],
)
def test_only_hash_based_bytecode_survives_the_round_trip(
    tmp_path: Path, mode: py_compile.PycInvalidationMode, compiled: bool
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "benchmod.py").write_text("VALUE = 42\n")
    py_compile.compile(str(source / "benchmod.py"), cfile=None, invalidation_mode=mode)
    sam_zip(source, tmp_path / "a.zip")
    unzip_like_lambda(tmp_path / "a.zip", tmp_path / "out")

    proc = subprocess.run(
        [sys.executable, "-S", "-v", "-c", "import benchmod"],
        env={"PYTHONPATH": str(tmp_path / "out"), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "out" / "benchmod.py" in compiled_sources(proc.stderr)) is compiled


def test_verbose_reading_tells_source_compiles_from_bytecode_loads() -> None:
    stderr = (
        "# /x/__pycache__/a.cpython-313.pyc matches /x/a.py\n"
        "# code object from '/x/__pycache__/a.cpython-313.pyc'\n"
        "# code object from /opt/python/b.py\n"
        "import b # <_frozen_importlib_external.SourceFileLoader object>\n"
    )
    assert compiled_sources(stderr) == [Path("/opt/python/b.py")]
