"""A small registry of named benchmarks.

A benchmark module defines ``run(options, report)`` and decorates it with ``@register(name, title)``; listing the
module in ``MODULES`` makes ``python -m bench`` (and ``--only name``) find it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from bench.report import Report

# Modules that register benchmarks, in the order they run. Add e.g. "bench.rotation" here.
MODULES: tuple[str, ...] = (
    "bench.cold_start",
    "bench.deployed_cold_start",
    "bench.aws_calls",
    "bench.rotation",
    "bench.installation_store",
    "bench.crash_table",
)


@dataclass(frozen=True)
class Options:
    quick: bool = False


Runner = Callable[[Options, Report], None]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Runner


_REGISTRY: dict[str, Benchmark] = {}


def register(name: str, title: str) -> Callable[[Runner], Runner]:
    def decorate(run: Runner) -> Runner:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"benchmark {name!r} is registered twice")
        _REGISTRY[name] = Benchmark(name, title, run)
        return run

    return decorate


def benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in ``MODULES`` order (importing the modules registers them)."""
    for module in MODULES:
        importlib.import_module(module)
    return list(_REGISTRY.values())
