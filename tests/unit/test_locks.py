"""The two locks: every pin hashed, the layer's direct pins honoured, and the tests run on the deployed set.

The dev lock (``requirements-dev.txt``, what ``make venv`` installs) must hold every package of the layer lock
(``layers/common/requirements.txt``, what ``make build`` ships) at the same version: otherwise the suite passes on a
botocore or a jmespath that Lambda never runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_IN = ROOT / "layers/common/requirements.in"
LAYER_LOCK = ROOT / "layers/common/requirements.txt"
DEV_IN = ROOT / "requirements-dev.in"
DEV_LOCK = ROOT / "requirements-dev.txt"

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)\s*"
    r"(?P<marker>;.*?)?\s*(?=--hash|$)"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[Pin]:
    """The pins of a hashed lock: ``name==version [; marker] \\`` then ``--hash=...`` continuation lines."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    if current.strip():
        logical.append(current.strip())
    pins: list[Pin] = []
    for entry in logical:
        match = _PIN.match(entry)
        if match is None:
            raise ValueError(f"not a pinned requirement: {entry!r}")
        hashes = tuple(re.findall(r"--hash=(\S+)", entry))
        pins.append(
            Pin(_canonical(match["name"]), match["version"], (match["marker"] or "").lstrip("; ").strip(), hashes)
        )
    return pins


def direct_pins(text: str) -> dict[str, str]:
    """``name==version`` lines of an .in file (comments and ``-r``/``-c`` lines skipped)."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"an .in requirement is not pinned with ==: {line!r}")
        pins[_canonical(match["name"])] = match["version"]
    return pins


def versions(pins: list[Pin]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for pin in pins:
        found.setdefault(pin.name, set()).add(pin.version)
    return found


@pytest.mark.parametrize("lock", [LAYER_LOCK, DEV_LOCK], ids=["layer", "dev"])
def test_every_pin_carries_a_sha256(lock: Path) -> None:
    pins = parse_lock(lock.read_text())
    assert pins
    unhashed = [p.name for p in pins if not p.hashes or not all(h.startswith("sha256:") for h in p.hashes)]
    assert unhashed == [], f"{lock.name}: pins without sha256 hashes (pip --require-hashes refuses them): {unhashed}"


def test_layer_lock_is_exact_and_unconditional() -> None:
    """One version per package and no environment markers: the layer is built for one target only."""
    pins = parse_lock(LAYER_LOCK.read_text())
    assert [p.name for p in pins if p.marker] == []
    assert len({p.name for p in pins}) == len(pins)


@pytest.mark.parametrize(("source", "lock"), [(LAYER_IN, LAYER_LOCK), (DEV_IN, DEV_LOCK)], ids=["layer", "dev"])
def test_lock_honours_the_direct_pins(source: Path, lock: Path) -> None:
    locked = versions(parse_lock(lock.read_text()))
    wanted = direct_pins(source.read_text())
    if source == DEV_IN:
        wanted |= direct_pins(LAYER_IN.read_text())  # -r layers/common/requirements.in
    stale = {name: (version, sorted(locked.get(name, set()))) for name, version in wanted.items()}
    stale = {name: found for name, found in stale.items() if [found[0]] != found[1]}
    assert stale == {}, f"{lock.name} disagrees with {source.name} (run `make lock`): {stale}"


def test_dev_lock_runs_the_tests_on_the_deployed_versions() -> None:
    layer = {p.name: p.version for p in parse_lock(LAYER_LOCK.read_text())}
    dev = versions(parse_lock(DEV_LOCK.read_text()))
    differ = {name: (version, sorted(dev.get(name, set()))) for name, version in layer.items()}
    differ = {name: found for name, found in differ.items() if [found[0]] != found[1]}
    assert differ == {}, f"the dev lock does not pin the layer's packages at the layer lock's versions: {differ}"


def test_parser_reads_markers_and_continuations() -> None:
    text = (
        "# header\n"
        "boto3==1.2.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via -r x.in\n"
        "networkx==3.6.1 ; python_full_version < '3.12' \\\n    --hash=sha256:cc\n"
    )
    assert parse_lock(text) == [
        Pin("boto3", "1.2.3", "", ("sha256:aa", "sha256:bb")),
        Pin("networkx", "3.6.1", "python_full_version < '3.12'", ("sha256:cc",)),
    ]
    with pytest.raises(ValueError, match="not pinned"):
        direct_pins("boto3>=1\n")
