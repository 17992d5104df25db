"""Deployed-shape cold start: the ``sam build`` output, run as Lambda runs it, against the runtime floor.

``bench.cold_start`` times the dev checkout, where every module's bytecode is already cached. Lambda is different:
SAM zips each artifact with every entry dated 1980-01-01, and mounts it read-only (/opt for the layer, /var/task for
the function), so no bytecode cache can be written and a timestamp-based .pyc is stale. Here, from
``.aws-sam/build`` (or ``BENCH_BUILD_DIR``):

1. each artifact goes through SAM's zip (``ZipInfo`` entries, which date 1980) and back, with the entries' dates
   restored as Lambda's unzip leaves them, then ``chmod -R a-w``;
2. a "runtime" directory holds boto3, botocore, urllib3 and what they need, precompiled (timestamp .pyc, never
   zipped), as the python3.13 runtime ships them; it is last on ``PYTHONPATH``, after the function and the layer;
3. every sample is a whole process (``python3.13 -S``, ``PYTHONDONTWRITEBYTECODE=1``), started and waited for here:
   the floor (``import boto3, urllib3; boto3.client("secretsmanager")`` on the runtime's boto3 alone) alternating
   with each function's import + init, in rounds, after one discarded warm-up of each;
4. one ``python -v`` run of each counts the modules compiled from source at import (0 is the target).

Informational rows: the same functions with a slim layer (the runtime's boto3 instead of the bundled one: the choice
docs/build.md records), and Bolt's ``LambdaS3OAuthFlow`` (import + constructor) packaged like the functions.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import paths
from bench.cold_start import INIT_CALLS, PROBE, lambda_env, probe
from bench.registry import Options, register
from bench.report import Report
from bench.stats import median, p90

BUDGET = 1.15
BUILD = Path(os.environ.get("BENCH_BUILD_DIR", paths.ROOT / ".aws-sam" / "build"))
FUNCTIONS = {
    "InstallFunction": "install",
    "OAuthCallbackFunction": "oauth_callback",
    "RotateFunction": "rotate",
    "ExchangeFunction": "exchange",
}
# What the python3.13 runtime provides beside the standard library (boto3 and what it needs, urllib3 included),
# top-level names as they sit in site-packages. The slim layer leaves out all of these but urllib3, which the layer
# pins as its HTTP client for Slack.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3")
SLIM_LAYER_DROPS = tuple(name for name in RUNTIME_PACKAGES if name != "urllib3")
SLIM_LAYER_DROPS_DIST = tuple(name for name in RUNTIME_DISTRIBUTIONS if name != "urllib3")
# `python -v` says "code object from <x.py>" (unquoted) for a module compiled from source, and
# "code object from '<x.pyc>'" for one read from bytecode.
_COMPILED = re.compile(r"^# code object from '?(?P<path>[^']+\.py)'?$")
_BOLT_APP = (
    "from slack_bolt.adapter.aws_lambda.lambda_s3_oauth_flow import LambdaS3OAuthFlow\n"
    "\n"
    "oauth_flow = LambdaS3OAuthFlow()\n"
)


@dataclass
class Sample:
    label: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    informational: bool = False
    wall: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    compiled: int | None = None
    compiled_where: dict[str, int] = field(default_factory=dict)


def find_python313() -> str | None:
    """A CPython 3.13 interpreter (the .pyc in the build are for 3.13 only): this one, pyenv's, or on PATH."""
    if sys.version_info[:2] == (3, 13):
        return getattr(sys, "_base_executable", None) or sys.executable
    candidates = [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))]
    found = shutil.which("python3.13")
    for candidate in [*candidates, *([found] if found else [])]:
        proc = subprocess.run(  # noqa: S603 - probing a candidate interpreter
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.stdout.strip() == "True":
            return candidate
    return None


def sam_zip(source: Path, target: Path) -> None:
    """Zip ``source`` as ``sam package``/``sam deploy`` do: every file an entry of its own, dated 1980-01-01."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _dirs, files in os.walk(source, followlinks=True):
            for name in sorted(files):
                path = Path(root) / name
                info = zipfile.ZipInfo(str(path.relative_to(source)))  # date_time defaults to 1980-01-01 00:00
                info.create_system = 3
                info.external_attr = (path.stat().st_mode | 0o444) << 16
                archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)


def unzip_like_lambda(archive_path: Path, target: Path) -> None:
    """Extract, keeping each entry's date as the file's mtime (so a timestamp .pyc sees its source dated 1980)."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, target))
            stamp = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(path, (stamp, stamp))


def set_writable(root: Path, writable: bool) -> None:
    """``chmod -R a-w`` (as Lambda's read-only mounts), or back to writable so that it can be removed."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        if writable:
            path.chmod(mode | stat.S_IWUSR)
        else:
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def has_bytecode(root: Path) -> bool:
    return any(root.rglob("*.pyc"))


def copy_sources(source: Path, target: Path, names: tuple[str, ...] = ()) -> None:
    """Copy ``source`` (or only its entries ``names``, packages or modules) without any bytecode."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    entries = [source / n for n in names] if names else list(source.iterdir())
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        module = entry.with_suffix(".py")
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, ignore=ignore)
        elif module.is_file():
            shutil.copy2(module, target / module.name)
        elif entry.is_file():
            shutil.copy2(entry, target / entry.name)


def compile_tree(python: str, root: Path, mode: str) -> None:
    subprocess.run(  # noqa: S603 - the 3.13 interpreter on a tree of ours
        [python, "-m", "compileall", "-q", "--invalidation-mode", mode, str(root)], check=True, capture_output=True
    )


def distributions(root: Path, names: tuple[str, ...]) -> list[Path]:
    return [p for p in root.glob("*.dist-info") if p.name.split("-")[0].lower() in {n.lower() for n in names}]


@dataclass
class Shape:
    """The unzipped, read-only artifacts of one build, and the runtime beside them."""

    root: Path
    runtime: Path
    layer: Path  # as /opt/python
    slim_layer: Path
    tasks: dict[str, Path]  # function directory name -> as /var/task
    bolt_task: Path | None
    layer_zip: int
    layer_unzipped: int
    slim_zip: int
    slim_unzipped: int
    precompiled: bool


@contextmanager
def deployed_shape(python: str, build: Path, report: Report) -> Iterator[Shape]:
    with tempfile.TemporaryDirectory(prefix="deployed-shape-") as tmp:
        root = Path(tmp)
        try:
            yield _prepare(python, build, root, report)
        finally:
            set_writable(root, True)


def _round_trip(source: Path, root: Path, name: str) -> tuple[Path, int]:
    archive = root / "zips" / f"{name}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    sam_zip(source, archive)
    target = root / "mounted" / name
    unzip_like_lambda(archive, target)
    return target, archive.stat().st_size


def _prepare(python: str, build: Path, root: Path, report: Report) -> Shape:
    built_layer = build / "SharedLayer"
    precompiled = has_bytecode(built_layer)
    runtime = root / "runtime"  # as the python3.13 runtime: boto3 & co. precompiled, never zipped
    copy_sources(built_layer / "python", runtime, RUNTIME_PACKAGES)
    for info in distributions(built_layer / "python", RUNTIME_DISTRIBUTIONS):
        shutil.copytree(info, runtime / info.name)
    compile_tree(python, runtime, "timestamp")

    layer_root, layer_zip = _round_trip(built_layer, root, "SharedLayer")
    slim_source = root / "slim-source"
    shutil.copytree(built_layer, slim_source)
    for name in SLIM_LAYER_DROPS:
        target = slim_source / "python" / name
        shutil.rmtree(target) if target.is_dir() else target.with_suffix(".py").unlink()
    for info in distributions(slim_source / "python", SLIM_LAYER_DROPS_DIST):
        shutil.rmtree(info)
    # six.py's bytecode sits in python/__pycache__ beside typing_extensions'
    for pyc in (slim_source / "python" / "__pycache__").glob("six.*.pyc"):
        pyc.unlink()
    slim_root, slim_zip = _round_trip(slim_source, root, "SlimLayer")

    tasks = {}
    for logical_id, directory in FUNCTIONS.items():
        if (build / logical_id / "app.py").is_file():
            tasks[directory], _ = _round_trip(build / logical_id, root, logical_id)
        else:
            report.note(f"{logical_id} is not in {build}: not measured")

    bolt_task = None
    bolt, sdk = importlib.util.find_spec("slack_bolt"), importlib.util.find_spec("slack_sdk")
    if bolt and sdk and bolt.submodule_search_locations and sdk.submodule_search_locations:
        bolt_source = root / "bolt-source"
        for spec in (bolt, sdk):
            package = Path(next(iter(spec.submodule_search_locations)))
            copy_sources(package.parent, bolt_source, (package.name,))
        (bolt_source / "app.py").write_text(_BOLT_APP)
        if precompiled:  # packaged as this build packages the functions: compiled the same way, or not at all
            compile_tree(python, bolt_source, "unchecked-hash")
        bolt_task, _ = _round_trip(bolt_source, root, "BoltFunction")
    else:
        report.note("slack_bolt is not installed here: the Bolt comparison row is skipped (issue 12 quotes ~1.3x)")

    layer, slim = layer_root / "python", slim_root / "python"
    sizes = (layer_zip, tree_size(layer), slim_zip, tree_size(slim))
    shape = Shape(root, runtime, layer, slim, tasks, bolt_task, *sizes, precompiled)
    set_writable(root, False)
    return shape


def _env(task: Path, python_path: list[Path], function: str) -> dict[str, str]:
    env = lambda_env(function)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(map(str, python_path)),
            "LAMBDA_TASK_ROOT": str(task),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def samples(shape: Shape) -> tuple[Sample, list[Sample]]:
    floor_dir = shape.root / "mounted"
    floor = Sample("floor", ["floor"], _env(floor_dir, [shape.runtime], "floor"), floor_dir)
    rows: list[Sample] = []
    for slim in (False, True):
        layer = shape.slim_layer if slim else shape.layer
        for directory, task in shape.tasks.items():
            init = INIT_CALLS.get(directory, "-")
            rows.append(
                Sample(
                    f"{directory}, slim layer + runtime's boto3" if slim else directory,
                    ["handler", "app", str(task / "app.py"), init],
                    _env(task, [task, layer, shape.runtime], directory),
                    task,
                    informational=slim,
                )
            )
    if shape.bolt_task is not None:
        env = _env(shape.bolt_task, [shape.bolt_task, shape.layer, shape.runtime], "bolt")
        env.update(
            {
                "SLACK_CLIENT_ID": "1111111111.2222222222",
                "SLACK_CLIENT_SECRET": "bench-not-a-secret",
                "SLACK_STATE_S3_BUCKET_NAME": "bench-state",
                "SLACK_INSTALLATION_S3_BUCKET_NAME": "bench-installations",
            }
        )
        rows.append(
            Sample(
                "Bolt LambdaS3OAuthFlow (import + constructor)",
                ["handler", "app", str(shape.bolt_task / "app.py"), "-"],
                env,
                shape.bolt_task,
                informational=True,
            )
        )
    return floor, rows


def run_whole_process(python: str, sample: Sample) -> None:
    """One sample: the whole process, from spawn to exit, timed here; the probe's own timing kept beside it."""
    start = time.perf_counter()
    result, error = probe([python, "-S", "-P", str(PROBE), *sample.args], sample.env, sample.cwd)
    wall = time.perf_counter() - start
    if result is None:
        sample.errors.append(str(error))
        return
    sample.wall.append(wall)
    sample.inner.append(float(result["seconds"]))


def count_compiled(python: str, sample: Sample, shape: Shape) -> None:
    """Modules compiled from source during one run (``python -v``: a code object read from a .py, not a .pyc)."""
    proc = subprocess.run(  # noqa: S603 - the 3.13 interpreter on our own probe
        [python, "-S", "-P", "-v", str(PROBE), *sample.args],
        env=sample.env,
        cwd=sample.cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    places = {"layer": shape.layer, "slim layer": shape.slim_layer, "runtime": shape.runtime}
    where: dict[str, int] = {}
    compiled = compiled_sources(proc.stderr)
    for path in compiled:
        place = next((name for name, root in places.items() if path.is_relative_to(root)), None)
        if place is None:
            place = "function" if path.is_relative_to(shape.root / "mounted") else "other"
        where[place] = where.get(place, 0) + 1
    sample.compiled, sample.compiled_where = len(compiled), where


def compiled_sources(verbose_stderr: str) -> list[Path]:
    """The source files a ``python -v`` run compiled (read as source, not from a .pyc)."""
    return [Path(m["path"]) for line in verbose_stderr.splitlines() if (m := _COMPILED.match(line))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@register("deployed-cold-start", "Cold start as deployed: sam build output, zipped, read-only, vs the runtime floor")
def run(options: Options, report: Report) -> None:
    if not (BUILD / "SharedLayer").is_dir():
        report.note(f"no sam build output in {BUILD}: run `make build` first (this benchmark measures the artifact)")
        return
    python = find_python313()
    if python is None:
        report.note("no CPython 3.13 found: the build's bytecode is for 3.13, so the deployed shape cannot be run")
        return
    rounds = 5 if options.quick else 15
    with deployed_shape(python, BUILD, report) as shape:
        floor, rows = samples(shape)
        load = os.getloadavg()
        report.line(f"  build: {BUILD} ({'with' if shape.precompiled else 'without'} .pyc); interpreter: {python} -S")
        report.line(
            f"  layer: {_mb(shape.layer_zip)} zipped, {_mb(shape.layer_unzipped)} unzipped; slim layer (runtime's "
            f"boto3): {_mb(shape.slim_zip)} zipped, {_mb(shape.slim_unzipped)} unzipped"
        )
        report.line(
            f"  machine: {os.cpu_count()} CPU(s), load {load[0]:.2f}; {rounds} rounds of: floor, then each of "
            f"{len(rows)} variants (order rotating); 1 warm-up run of each discarded"
        )
        for sample in [floor, *rows]:
            run_whole_process(python, sample)
            sample.wall.clear()
            sample.inner.clear()
        for r in range(rounds):
            shift = r % len(rows)
            for sample in [floor, *rows[shift:], *rows[:shift]]:
                run_whole_process(python, sample)
        for sample in [floor, *rows]:
            count_compiled(python, sample, shape)
        _print(report, floor, rows)


def _print(report: Report, floor: Sample, rows: list[Sample]) -> None:
    if not floor.wall:
        report.check("deployed floor", False, f"the floor failed: {floor.errors[:1] or 'no samples'}")
        return
    floor_wall, floor_inner = median(floor.wall), median(floor.inner)
    table: list[list[str]] = []
    for sample in [floor, *rows]:
        where = ", ".join(f"{k} {v}" for k, v in sorted(sample.compiled_where.items())) or "-"
        if not sample.wall:
            table.append([sample.label, "0", "-", "-", "-", "-", str(sample.compiled), where])
            continue
        table.append(
            [
                sample.label + (" [info]" if sample.informational else ""),
                str(len(sample.wall)),
                _ms(median(sample.wall)),
                _ms(p90(sample.wall)),
                f"{median(sample.wall) / floor_wall:.2f}",
                f"{median(sample.inner) / floor_inner:.2f}",
                str(sample.compiled),
                where,
            ]
        )
    report.table(["variant", "N", "median", "p90", "ratio", "probe ratio", "compiled", "compiled where"], table)
    report.line("  median/p90: whole process, spawn to exit; ratio = median / floor median; probe ratio = the same")
    report.line("  with the probe's own timing (imports + init only, interpreter start-up excluded); compiled =")
    report.line("  modules compiled from source at import in one `python -v` run (0 is the target)")
    report.line()
    for sample in rows:
        if sample.informational:
            continue
        if sample.errors or not sample.wall:
            report.check(f"deployed {sample.label}", False, f"probe failed: {sample.errors[:1]}")
            continue
        ratio = median(sample.wall) / floor_wall
        report.check(
            f"deployed {sample.label} <= {BUDGET:.2f}x runtime floor",
            ratio <= BUDGET,
            f"{ratio:.2f}x ({_ms(median(sample.wall))} vs {_ms(floor_wall)}), {sample.compiled} modules compiled",
        )
        report.check(f"deployed {sample.label} compiles nothing at import", sample.compiled == 0, f"{sample.compiled}")
    callback = next((s for s in rows if s.label == "oauth_callback" and s.wall), None)
    bolt = next((s for s in rows if s.label.startswith("Bolt") and s.wall), None)
    if callback and bolt:
        report.check(
            "deployed oauth_callback ahead of Bolt's LambdaS3OAuthFlow",
            median(callback.wall) < median(bolt.wall),
            f"Bolt {median(bolt.wall) / median(callback.wall):.2f}x the callback "
            f"({_ms(median(bolt.wall))} vs {_ms(median(callback.wall))})",
        )
    elif any(s.label.startswith("Bolt") for s in rows):
        failed = next(s for s in rows if s.label.startswith("Bolt"))
        report.line(f"  [info] Bolt row failed: {failed.errors[:1]}")
