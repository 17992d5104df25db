"""What `sam build` left in .aws-sam/build is what Lambda should get (fast; reads files, times nothing).

Every ``.py`` of the layer and of each function has a hash-based ``.pyc`` for Python 3.13 beside it (the only kind
that is still valid after SAM's zip dates every entry 1980-01-01 and Lambda mounts the code read-only), recorded
for exactly the source shipped; the layer holds exactly the locked packages; nothing of the dev checkout leaks in.

``make check-build`` runs this with REQUIRE_BUILD=1: a missing or stale build fails. Under plain ``make test`` a
missing build skips, and so does one older than the sources (``make build`` refreshes it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_locks import LAYER_LOCK, parse_lock

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD_DIR", ROOT / ".aws-sam" / "build"))
REQUIRED = os.environ.get("REQUIRE_BUILD") == "1"
FUNCTIONS = {
    "InstallFunction": "install",
    "OAuthCallbackFunction": "oauth_callback",
    "RotateFunction": "rotate",
    "ExchangeFunction": "exchange",
}
MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of CPython 3.13
FLAG_HASH_BASED, FLAG_CHECK_SOURCE = 0b01, 0b10


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} (run `make build` first)")
    pytest.skip(f"{what}: run `make build`, then `make check-build`")


@pytest.fixture(scope="module")
def build() -> Path:
    if not (BUILD / "template.yaml").is_file():
        _missing(f"no sam build output in {BUILD}")
    layer_sources = {p.relative_to(ROOT / "layers/common"): p.read_bytes() for p in _sources(ROOT / "layers/common")}
    built = {
        p.relative_to(BUILD / "SharedLayer/python"): p.read_bytes()
        for p in _sources(BUILD / "SharedLayer/python/slack_tokens")
    }
    if layer_sources != built:
        _missing(f"{BUILD} is older than layers/common/slack_tokens")
    return BUILD


def _sources(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def pyc_header(pyc: Path) -> tuple[bytes, int, bytes]:
    """(magic, flags, source hash) of a PEP 552 header: magic 0-4, flags 4-8, then hash (or mtime + size) 8-16."""
    header = pyc.read_bytes()[:16]
    if len(header) < 16:
        raise ValueError(f"{pyc}: truncated header")
    return header[:4], int.from_bytes(header[4:8], "little"), header[8:16]


def source_hashes(sources: list[Path]) -> dict[Path, bytes]:
    """importlib.util.source_hash of each file as CPython 3.13 computes it (it is keyed by the magic number)."""
    if sys.version_info[:2] == (3, 13):
        return {path: importlib.util.source_hash(path.read_bytes()) for path in sources}
    python = next(
        (str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python3.13")) if p.is_file()), "python3.13"
    )
    code = "import importlib.util,sys\nfor p in sys.stdin.read().split('\\0'):\n"
    code += "    print(importlib.util.source_hash(open(p,'rb').read()).hex())"
    try:
        out = subprocess.run(  # noqa: S603 - a fixed interpreter and our own snippet
            [python, "-c", code], input="\0".join(map(str, sources)), capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no Python 3.13 to hash the sources with ({exc})")
    return {path: bytes.fromhex(digest) for path, digest in zip(sources, out, strict=True)}


def bytecode_problems(root: Path) -> list[str]:
    """Every reason a module under ``root`` would be compiled at import on Lambda, or runs stale bytecode."""
    problems: list[str] = []
    sources = _sources(root)
    expected = {src: src.parent / "__pycache__" / f"{src.stem}.cpython-313.pyc" for src in sources}
    hashes = source_hashes([src for src, pyc in expected.items() if pyc.is_file()])
    for src, pyc in expected.items():
        name = src.relative_to(root)
        if not pyc.is_file():
            problems.append(f"{name}: no __pycache__/{pyc.name}")
            continue
        magic, flags, recorded = pyc_header(pyc)
        if magic != MAGIC_313:
            problems.append(f"{name}: .pyc magic {magic!r} is not CPython 3.13's")
        elif not flags & FLAG_HASH_BASED:
            problems.append(f"{name}: timestamp-based .pyc (stale once SAM's zip dates it 1980)")
        elif flags & FLAG_CHECK_SOURCE:
            problems.append(f"{name}: checked-hash .pyc (the build compiles unchecked-hash)")
        elif recorded != hashes[src]:
            problems.append(f"{name}: .pyc records another source than the one shipped")
    shipped = set(expected.values())
    problems += [f"{p.relative_to(root)}: no source beside it" for p in root.rglob("*.pyc") if p not in shipped]
    return problems


def test_every_layer_module_has_a_matching_unchecked_hash_pyc(build: Path) -> None:
    layer = build / "SharedLayer" / "python"
    assert len(_sources(layer)) > 100  # boto3, botocore, Powertools, urllib3 and slack_tokens
    assert bytecode_problems(layer) == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_module_has_a_matching_unchecked_hash_pyc(build: Path, function: str) -> None:
    assert bytecode_problems(build / function) == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_artifact_is_its_sources_and_their_bytecode_only(build: Path, function: str) -> None:
    source = ROOT / "functions" / FUNCTIONS[function]
    shipped = {p.relative_to(build / function) for p in (build / function).rglob("*") if p.is_file()}
    wanted = {p.relative_to(source) for p in _sources(source)}
    assert {p for p in shipped if p.suffix != ".pyc"} == wanted
    for path in wanted:
        assert (build / function / path).read_bytes() == (source / path).read_bytes()


def test_layer_holds_exactly_the_locked_packages_and_nothing_of_the_checkout(build: Path) -> None:
    artifact = build / "SharedLayer"
    assert sorted(p.name for p in artifact.iterdir()) == ["python"]
    python = artifact / "python"
    installed: dict[str, str] = {}
    for info in python.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        installed[name.replace("_", "-").lower()] = version
    locked = {pin.name: pin.version for pin in parse_lock(LAYER_LOCK.read_text())}
    assert installed == locked
    leaked = [
        str(p.relative_to(python))
        for p in python.rglob("*")
        if p.name in {"build", "tests", "sandbox", ".pytest_cache", ".mypy_cache"}
        or p.name.endswith(".egg-info")
        or p.name.startswith("requirements")
    ]
    assert leaked == []
    assert not (python / "bin").exists()


@pytest.mark.parametrize("artifact", ["SharedLayer/python", *sorted(FUNCTIONS)])
def test_no_artifact_can_import_the_sandbox_or_the_checkouts_tools(build: Path, artifact: str) -> None:
    """``sandbox/`` (the fakes), ``local/``, ``bench/`` and ``tests/`` sit beside the product, never inside it."""
    root = build / artifact
    assert [name for name in ("sandbox", "local", "bench", "tests") if (root / name).exists()] == []


def test_checks_catch_a_timestamp_pyc_and_a_missing_one(tmp_path: Path) -> None:
    """The checks above can fail: a timestamp .pyc, a stale hash and a missing .pyc are all reported."""
    import py_compile

    for name in ("fresh", "stamped", "stale", "bare"):
        (tmp_path / f"{name}.py").write_text(f"X = {name!r}\n")
    cache = tmp_path / "__pycache__"
    modes = py_compile.PycInvalidationMode
    for name, mode in (("fresh", modes.UNCHECKED_HASH), ("stale", modes.UNCHECKED_HASH), ("stamped", modes.TIMESTAMP)):
        py_compile.compile(str(tmp_path / f"{name}.py"), str(cache / f"{name}.cpython-313.pyc"), invalidation_mode=mode)
    (tmp_path / "stale.py").write_text("X = 'edited after the build'\n")
    if sys.version_info[:2] != (3, 13):
        pytest.skip("the magic number check needs the .pyc written by CPython 3.13")
    problems = bytecode_problems(tmp_path)
    assert sorted(p.split(":")[0] for p in problems) == ["bare.py", "stale.py", "stamped.py"]
