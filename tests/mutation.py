"""Mutation check of the safety-critical lines: the write path that must never lose a pair Slack returned.

    python -m tests.mutation [--sample N] [--seed S] [--jobs 1|2] [--timeout SECONDS] [--list] [--json PATH]
    make mutation MUTATION_ARGS="--sample 40 --seed 1"

Each mutant is one small change to one function listed in ``TARGETS`` (a comparison flipped, ``and``/``or`` swapped,
a boolean constant flipped, a ``not`` removed, a returned value replaced by ``None``, a number moved by one, ``+`` and
``-`` swapped, or a call statement deleted). It is written into a throw-away copy of the repository (the working tree
is never touched) and ``TESTS`` run there with ``-x``, fastest files first, under a timeout. A mutant is *killed*
when the tests fail (or cannot even be collected), *survived* when they pass (each survivor is printed with its
file:line and diff: a line no test pins down), *timeout* when they outrun ``--timeout``.

Why not mutmut (3.8, tried first): it names a module after its path from the working directory, so the layer's
``layers/common/slack_tokens`` (Lambda's ``/opt/python`` layout, which the tests import as ``slack_tokens``) stops
it early ("tests import the source under a different module path"); it runs only in a copy with the package moved
to the top. It mutates whole files (a function is chosen only through its generated mutant names), picks the tests
for each mutant from the calls it saw in the pytest process (the crash tests' rotator runs in a subprocess), and
would add it, libcst and textual to the dev lock. The checks here need none of that: the AST of the listed
functions, a copy per mutant and plain pytest, subprocesses included, since they import the copy too.

Not part of ``make test`` or ``.ci/run``: a full run takes hours; ``--sample`` bounds it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = "layers/common/slack_tokens"

# (module file, function qualnames) whose every line is mutated; nested functions belong to their outer one.
# Update the names here when a function moves or is renamed: a target that is not found stops the run.
TARGETS: dict[str, tuple[str, ...]] = {
    f"{LAYER}/handover.py": (
        "Handover.hand_over",
        "Handover.promote",
        "Handover.recover",
        "Handover.credential_rejected",
        "Handover._mark_reinstall",
    ),
    f"{LAYER}/rotation.py": (
        "is_due",
        "plan",
        "_may_be_unpromoted",
        "Rotator._inherited_first",
        "Rotator._unfinished",
        "Rotator._guarded",
        "Rotator._rotate",
        "Rotator._held_back",
        "Rotator._refresh_and_store",
        "Rotator._refresh",
        "Rotator._ask_again",
    ),
    f"{LAYER}/store.py": (
        "TokenStore.save_installation",
        "TokenStore.create_if_absent",
        "TokenStore.stage",
        "TokenStore.promote",
        "TokenStore._retrying",
        "worst_call_seconds",
    ),
    f"{LAYER}/guard.py": (
        "judge",
        "_by_age",
        "RunGuard.check",
        "RunGuard.note",
        "RunGuard.done",
        "RunGuard.acquire",
        "RunGuard.release",
        "RunGuard._letting_go",
        "RunGuard._held",
        "RunGuard._claim",
        "RunGuard._renew",
        "RunGuard._lose",
        "RunGuard._beat",
        "RunGuard._update",
    ),
    f"{LAYER}/exchange.py": (
        "exchanged",
        "held_back",
        "Exchanger._current",
        "Exchanger._guarded",
        "Exchanger._exchange",
    ),
}

# Fastest first: with -x most mutants die in the first seconds; the crash tests (real processes, ~2 minutes) last.
TESTS = (
    "tests/unit/test_rotation_plan.py",
    "tests/unit/test_guard_judge.py",
    "tests/integration/test_rotation.py",
    "tests/integration/test_guard.py",
    "tests/integration/test_exchange.py",
    "tests/integration/test_rotation_crash.py",
)

# What a copy leaves out: environments, caches, build output.
SKIP = shutil.ignore_patterns(
    ".git", ".venv", ".venv-sam", ".aws-sam", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".coverage", "htmlcov", "artifacts", "mutants",
)  # fmt: skip

_FLIPPED_COMPARISONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the repository
    target: str  # the function's qualname
    line: int
    operator: str
    source: str  # the whole mutated file

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def diff(self, original: str) -> str:
        lines = difflib.unified_diff(
            original.splitlines(), self.source.splitlines(), self.path, self.path, n=0, lineterm=""
        )
        return "\n".join(list(lines)[2:])


@dataclass(frozen=True)
class Result:
    mutant: str
    operator: str
    target: str
    outcome: str  # killed | survived | timeout | error
    seconds: float
    diff: str


# -- finding the targets -----------------------------------------------------------------------------------------


def functions_in(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its qualname (``Class.method``; nested functions are not listed on their own)."""

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield prefix + node.name, node
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.")

    yield from walk(tree.body, "")


def find_targets(root: Path) -> tuple[list[tuple[str, str, ast.FunctionDef | ast.AsyncFunctionDef]], list[str]]:
    """The target functions found under ``root`` as (path, qualname, node), and the targets that were not."""
    found: list[tuple[str, str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    missing: list[str] = []
    for path, names in TARGETS.items():
        file = root / path
        if not file.is_file():
            missing += [f"{path}::{name} (no such file)" for name in names]
            continue
        functions = dict(functions_in(ast.parse(file.read_text(encoding="utf-8"))))
        for name in names:
            if name in functions:
                found.append((path, name, functions[name]))
            else:
                missing.append(f"{path}::{name}")
    return found, missing


# -- making mutants ----------------------------------------------------------------------------------------------


def _replacements(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(operator, replacement node) for each way ``node`` can be mutated."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            flipped = _FLIPPED_COMPARISONS.get(type(op))
            if flipped is not None:
                ops = [*node.ops]
                ops[index] = flipped()
                yield f"{type(op).__name__}->{flipped.__name__}", ast.Compare(node.left, ops, node.comparators)
    elif isinstance(node, ast.BoolOp):
        swapped = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{type(node.op).__name__}->{type(swapped).__name__}", ast.BoolOp(swapped, node.values)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", node.operand
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        other = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        yield f"{type(node.op).__name__}->{type(other).__name__}", ast.BinOp(node.left, other, node.right)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value}->{not node.value}", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        yield f"{node.value}+1", ast.Constant(node.value + 1)
        yield f"{node.value}-1", ast.Constant(node.value - 1)


def _statement_replacements(node: ast.stmt) -> Iterator[tuple[str, str]]:
    """(operator, replacement text) for a statement: a call's result unused is deleted; a value returned -> None."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _unguarded(node.value):
        yield "delete call", "pass"
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield "return None", "return None"


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _unguarded(call: ast.Call) -> bool:
    """Calls no test should pin down: a log line (the log tests check what a line holds, not that each is there),
    and the crash tests' hook (deleting it breaks the test, not the code)."""
    text = ast.unparse(call.func)
    return text.startswith("logger.") or text.endswith("_crash_hook")


def _nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The function's nodes worth mutating: not its decorators, annotations, docstring, or f-string parts."""
    for node in ast.iter_child_nodes(function):
        if isinstance(node, ast.arguments):
            yield from (default for default in [*node.defaults, *node.kw_defaults] if default is not None)
            continue
        if node in getattr(function, "decorator_list", ()) or node is getattr(function, "returns", None):
            continue
        if isinstance(node, ast.JoinedStr | ast.arg):
            continue
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                yield node.value
                yield from _nodes(node.value)
            continue
        yield node
        yield from _nodes(node)


def _offsets(source: str) -> list[int]:
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _splice(source: str, starts: list[int], node: ast.expr | ast.stmt, text: str) -> str:
    """``source`` with ``node``'s text replaced by ``text``."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    begin = starts[node.lineno - 1] + _column(source, starts, node.lineno, node.col_offset)
    end = starts[node.end_lineno - 1] + _column(source, starts, node.end_lineno, node.end_col_offset)
    return source[:begin] + text + source[end:]


def _column(source: str, starts: list[int], line: int, byte_offset: int) -> int:
    """ast's col_offset counts UTF-8 bytes; the string wants characters."""
    text = source[starts[line - 1] : starts[line]]
    return len(text.encode()[:byte_offset].decode())


def mutants_of(path: str, target: str, function: ast.AST, source: str) -> Iterator[Mutant]:
    starts = _offsets(source)
    for node in _nodes(function):
        if isinstance(node, ast.stmt):
            changes = [(operator, text) for operator, text in _statement_replacements(node)]
        elif isinstance(node, ast.expr):
            changes = [(operator, f"({ast.unparse(new)})") for operator, new in _replacements(node)]
        else:
            continue
        for operator, text in changes:
            mutated = _splice(source, starts, node, text)
            try:
                compile(mutated, path, "exec")
            except SyntaxError:
                continue
            yield Mutant(path, target, node.lineno, operator, mutated)


def all_mutants(root: Path) -> tuple[list[Mutant], list[str]]:
    found, missing = find_targets(root)
    mutants: list[Mutant] = []
    for path, target, function in found:
        mutants += mutants_of(path, target, function, (root / path).read_text(encoding="utf-8"))
    return mutants, missing


# -- running them ------------------------------------------------------------------------------------------------


def run_tests(copy: Path, timeout: float) -> tuple[str, float]:
    """Run ``TESTS`` in ``copy`` with its own sources first on the path (subprocesses inherit it)."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(copy / "layers" / "common"), str(copy)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-m", "pytest", *TESTS, "-x", "-q", "-p", "no:cacheprovider", "--no-header"]
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        command,
        cwd=copy,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so a timeout ends the moto server and rotator processes the tests started too
    )
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "timeout", time.monotonic() - started
    finally:
        _end_group(process.pid)
    outcome = {0: "survived", 1: "killed", 2: "killed"}.get(code, "error")  # 2: a mutant that breaks collection
    return outcome, time.monotonic() - started


def _end_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the tests ended and took every process with them
        os.killpg(group, signal.SIGKILL)


def in_a_copy(action: Callable[[Path], tuple[str, float]], change: tuple[str, str] | None = None) -> tuple[str, float]:
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        copy = Path(scratch) / "repo"
        shutil.copytree(ROOT, copy, ignore=SKIP, symlinks=True)
        if change is not None:
            (copy / change[0]).write_text(change[1], encoding="utf-8")
        return action(copy)


def check_copy_imports_itself() -> None:
    """The copy's sources must win over the editable install, or every mutant would survive."""

    def probe(copy: Path) -> tuple[str, float]:
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "layers" / "common"), str(copy)])}
        out = subprocess.run(
            [sys.executable, "-c", "import slack_tokens; print(slack_tokens.__file__)"],
            cwd=copy,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out, 0.0

    imported, _ = in_a_copy(probe)
    if "mutant-" not in imported:
        sys.exit(f"a copy imports slack_tokens from {imported}, not from itself: mutants would not be tested")


def run_one(mutant: Mutant, original: str, timeout: float) -> Result:
    outcome, seconds = in_a_copy(lambda copy: run_tests(copy, timeout), (mutant.path, mutant.source))
    return Result(
        f"{mutant.where} {mutant.operator}", mutant.operator, mutant.target, outcome, seconds, mutant.diff(original)
    )


# -- the command -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="run N mutants drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2), help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 1.5x the unmutated run + 60)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args(argv)

    mutants, missing = all_mutants(ROOT)
    for target in missing:
        print(f"target not found: {target}", file=sys.stderr)
    if missing:
        print("update TARGETS in tests/mutation.py", file=sys.stderr)
        return 2
    print(f"{len(mutants)} mutants in {sum(map(len, TARGETS.values()))} functions")
    if args.sample is not None and args.sample < len(mutants):
        mutants = sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: (m.path, m.line))
    if args.list:
        for mutant in mutants:
            print(f"{mutant.where} {mutant.target} {mutant.operator}")
        return 0
    return report(run_all(mutants, args.jobs, args.timeout), args.json)


def run_all(mutants: list[Mutant], jobs: int, timeout: float | None) -> list[Result]:
    check_copy_imports_itself()
    outcome, baseline = in_a_copy(lambda copy: run_tests(copy, 1800))
    if outcome != "survived":
        sys.exit(f"the tests do not pass on the unmutated code ({outcome}): fix that first")
    timeout = timeout or 1.5 * baseline + 60  # a mutant that loops forever costs this much
    print(f"unmutated run: {baseline:.0f} s; timeout per mutant {timeout:.0f} s; {len(mutants)} mutants, {jobs} jobs")
    originals = {path: (ROOT / path).read_text(encoding="utf-8") for path in TARGETS}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(run_one, mutant, originals[mutant.path], timeout) for mutant in mutants]
        for done, future in enumerate(as_completed(running), 1):
            result = future.result()
            print(f"  {done:3}/{len(mutants)} {result.outcome:8} {result.seconds:4.0f} s  {result.mutant}", flush=True)
    return [future.result() for future in running]  # in the sample's order


def report(results: list[Result], json_path: Path | None) -> int:
    counts = {name: sum(r.outcome == name for r in results) for name in ("killed", "survived", "timeout", "error")}
    print(
        f"\nkilled {counts['killed']}/{len(results)}"
        f" (survived {counts['survived']}, timeout {counts['timeout']}, error {counts['error']})"
    )
    for result in results:
        if result.outcome != "killed":
            print(f"\n{result.outcome}: {result.mutant} in {result.target}\n{result.diff}")
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
