"""``python -m bench [--quick] [--only NAME ...] [--list] [--strict]``: run the benchmarks and print the report."""

from __future__ import annotations

import argparse
import platform
import sys
import time

from bench import paths

paths.ensure_import_paths()

from bench.registry import Options, benchmarks  # noqa: E402 - after the import paths are set
from bench.report import Report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    available = benchmarks()
    names = [b.name for b in available]
    parser = argparse.ArgumentParser(prog="python -m bench", description="Performance budget.")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (cold start: 5 rounds, not 15)")
    parser.add_argument("--only", action="append", choices=names, metavar="NAME", help=f"run only NAME ({names})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget check fails")
    args = parser.parse_args(argv)

    if args.list:
        for bench in available:
            print(f"{bench.name:<12} {bench.title}")
        return 0

    report = Report()
    options = Options(quick=args.quick)
    selected = [b for b in available if not args.only or b.name in args.only]
    import boto3

    report.line(
        f"python {platform.python_version()} ({sys.executable}), boto3 {boto3.__version__}, "
        f"{platform.system()} {platform.machine()}, {'quick' if args.quick else 'full'} run"
    )
    started = time.perf_counter()
    timings: list[tuple[str, float]] = []
    for bench in selected:
        report.benchmark = bench.name
        report.heading(f"[{bench.name}] {bench.title}")
        t0 = time.perf_counter()
        try:
            bench.run(options, report)
        except Exception as exc:
            report.check(bench.name, False, f"the benchmark crashed: {type(exc).__name__}: {exc}")
        timings.append((bench.name, time.perf_counter() - t0))

    report.heading("Summary")
    for check in report.checks:
        report.line(f"  {check.verdict}  [{check.benchmark}] {check.name}: {check.detail}")
    failed = sum(not c.passed for c in report.checks)
    report.line()
    report.line(f"  {len(report.checks) - failed} passed, {failed} failed")
    report.line("  runtime: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in timings))
    report.line(f"  total: {time.perf_counter() - started:.1f} s")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
