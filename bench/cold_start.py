"""Cold start: each handler's import + init against the floor ``import boto3, urllib3; boto3.client(...)``.

Every sample is a fresh interpreter (``_probe.py``) that times only the imports and the init, with the layer on
``PYTHONPATH`` as Lambda has /opt/python, and a Lambda-like environment. Floor and handlers run interleaved, in
rounds (floor, then every handler, the handler order rotating), after one discarded warm-up run of each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import paths
from bench.registry import Options, register
from bench.report import Report
from bench.stats import median, p90

BUDGET = 1.15
PROBE = Path(__file__).with_name("_probe.py")
# The init a first invocation performs, per function directory (a function of slack_tokens.entrypoints).
INIT_CALLS = {
    "install": "oauth_flow",
    "oauth_callback": "oauth_flow",
    "rotate": "rotator",
    "exchange": "exchanger",
}
_FAKE_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}"


@dataclass
class Variant:
    label: str
    args: list[str]
    env: dict[str, str]
    init: str  # shown in the report
    informational: bool = False
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    modules: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def lambda_env(function: str, *, trace_disabled: bool = True) -> dict[str, str]:
    """A from-scratch environment like the template gives a function (fake credentials, no ~/.aws files)."""
    nowhere = str(Path(tempfile.gettempdir()) / "slack-token-bench-no-aws-config")
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(paths.LAYER),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": nowhere,
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": f"slack-token-lifecycle-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(paths.FUNCTIONS / function),
        "SLACK_APP_SECRET_ID": _FAKE_ARN.format("slack-app/credentials-AbCdEf"),
        "SLACK_STATE_SECRET_ID": _FAKE_ARN.format("slack-app/state-key-GhIjKl"),
        "SLACK_SCOPES": "chat:write,commands",
        "TOKEN_SECRET_PREFIX": "slack/tokens/",
        "GUARD_TABLE_NAME": "slack-token-lifecycle-RunGuardTable-BENCH",  # rotate and exchange refuse to start without
        "POWERTOOLS_SERVICE_NAME": "slack-token-lifecycle",
        "POWERTOOLS_METRICS_NAMESPACE": "SlackTokenLifecycle",
        "POWERTOOLS_TRACE_DISABLED": "true" if trace_disabled else "false",
        "LOG_LEVEL": "INFO",
    }


def _entrypoint_names() -> set[str] | str:
    """The public names of ``slack_tokens.entrypoints``, or why it cannot be imported right now."""
    paths.ensure_import_paths()
    try:
        from slack_tokens import entrypoints
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return {name for name in dir(entrypoints) if callable(getattr(entrypoints, name))}


def discover(report: Report) -> tuple[list[Variant], bool]:
    """The handler variants to measure, and whether the handler for the X-Ray row (install) exists."""
    names = _entrypoint_names()
    if isinstance(names, str):
        report.note(f"slack_tokens.entrypoints does not import ({names}); handlers are timed import-only")
    variants: list[Variant] = []
    for directory in paths.function_dirs():
        name, app = directory.name, directory / "app.py"
        if not app.is_file():
            report.note(f"functions/{name}/ has no app.py yet: not measured")
            continue
        init = INIT_CALLS.get(name)
        if init is None:
            report.note(f"functions/{name}: no known init call, timed import-only")
        elif isinstance(names, str) or init not in names:
            report.note(f"functions/{name}: entrypoints.{init}() does not exist yet, timed import-only")
            init = None
        variants.append(
            Variant(
                label=name,
                args=["handler", "app", str(app), init or "-"],
                env=lambda_env(name),
                init=f"import + {init}()" if init else "import only",
            )
        )
    return variants, any(v.label == "install" for v in variants)


def probe(command: list[str], env: dict[str, str], cwd: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Run the probe once: its ``BENCH_RESULT`` JSON, or why there is none."""
    try:
        proc = subprocess.run(  # noqa: S603 - our own interpreter and script
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
        )
    except subprocess.TimeoutExpired:
        return None, "probe timed out after 180 s"
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"probe exited {proc.returncode}: {tail}"
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    if result["error"]:
        return None, str(result["error"])
    return result, None


def run_probe(variant: Variant) -> None:
    command = [sys.executable, "-P", str(PROBE), *variant.args]
    result, error = probe(command, variant.env, variant.env["LAMBDA_TASK_ROOT"])
    if result is None:
        variant.errors.append(str(error))
        return
    variant.seconds.append(float(result["seconds"]))
    variant.cpu.append(float(result["cpu"]))
    variant.modules.append(int(result["modules"]))


def import_profile(variant: Variant) -> dict[str, float]:
    """Import self time per top-level package (seconds), from one ``-X importtime`` run of the probe."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-X", "importtime", "-P", str(PROBE), *variant.args],
        env=variant.env,
        cwd=variant.env["LAMBDA_TASK_ROOT"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        root = fields[2].strip().split(".")[0]
        totals[root] = totals.get(root, 0.0) + int(fields[0]) / 1e6
    return totals


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@register(
    "cold-start",
    "Cold start, cached bytecode (dev checkout, not the deployed shape): handler import + init vs the boto3 floor",
)
def run(options: Options, report: Report) -> None:
    rounds = 5 if options.quick else 15
    handlers, has_install = discover(report)
    floor_dir = paths.FUNCTIONS  # the floor imports nothing of ours; any directory will do as its cwd
    floor = Variant(
        label="floor",
        args=["floor"],
        env={**lambda_env("floor"), "LAMBDA_TASK_ROOT": str(floor_dir)},
        init="import boto3, urllib3; boto3.client()",
    )
    extras: list[Variant] = []
    if not has_install:
        report.note("X-Ray row skipped: functions/install/app.py does not exist")
    elif importlib.util.find_spec("aws_xray_sdk") is None:
        report.note("X-Ray row skipped: aws-xray-sdk is not installed in this environment")
    else:
        install = next(v for v in handlers if v.label == "install")
        extras.append(
            Variant(
                label="install, X-Ray tracer (POWERTOOLS_TRACE_DISABLED=false)",
                args=install.args,
                env=lambda_env("install", trace_disabled=False),
                init=install.init,
                informational=True,
            )
        )
    others = handlers + extras
    load = os.getloadavg()
    report.line(f"  machine: {os.cpu_count()} CPU(s), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
    report.line(
        f"  {rounds} rounds of: floor, then each of {len(others)} handler variant(s) (order rotating per round); "
        "1 warm-up run of each discarded"
    )
    for variant in [floor, *others]:
        run_probe(variant)
        variant.seconds.clear()
        variant.cpu.clear()
        variant.modules.clear()
    for r in range(rounds):
        shift = r % len(others) if others else 0
        for variant in [floor, *others[shift:], *others[:shift]]:
            run_probe(variant)
    _print_results(report, floor, handlers, extras)
    busiest = max(load[0], os.getloadavg()[0])
    if busiest > (os.cpu_count() or 1) * 0.75:
        report.note(
            f"the machine was busy (1-minute load up to {busiest:.2f} on {os.cpu_count()} CPU(s)): wall-time ratios "
            "are noisy; look at the CPU ratio too, and rerun on an idle machine before trusting a verdict"
        )
    _print_import_profiles(report, floor, [v for v in [*handlers, *extras] if not v.errors])


def _print_import_profiles(report: Report, floor: Variant, variants: list[Variant]) -> None:
    if not variants:
        return
    report.line()
    report.line("  Imports beyond the floor (one -X importtime run each, indicative): self time per top-level")
    report.line("  package the floor does not import, largest first")
    baseline = import_profile(floor)
    for variant in variants:
        extra = {name: secs for name, secs in import_profile(variant).items() if name not in baseline}
        top = sorted(extra.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{name} {_ms(secs)}" for name, secs in top[:5])
        rest = f", {len(top) - 5} more {_ms(sum(secs for _, secs in top[5:]))}" if len(top) > 5 else ""
        report.line(f"    {variant.label}: total {_ms(sum(extra.values()))} = {shown}{rest}")


def _print_results(report: Report, floor: Variant, handlers: list[Variant], extras: list[Variant]) -> None:
    if floor.errors or not floor.seconds:
        report.check("floor", False, f"the floor probe failed: {floor.errors[0] if floor.errors else 'no samples'}")
        return
    floor_median, floor_cpu = median(floor.seconds), median(floor.cpu)
    rows: list[list[str]] = []
    for variant in [floor, *handlers, *extras]:
        if not variant.seconds:
            rows.append([variant.label, variant.init, "0", *["-"] * 6])
            continue
        rows.append(
            [
                variant.label + (" [info]" if variant.informational else ""),
                variant.init,
                str(len(variant.seconds)),
                _ms(median(variant.seconds)),
                _ms(p90(variant.seconds)),
                _ms(min(variant.seconds)),
                str(int(median(variant.modules))),
                f"{median(variant.seconds) / floor_median:.3f}",
                f"{median(variant.cpu) / floor_cpu:.2f}",
            ]
        )
    report.table(["variant", "timed", "N", "median", "p90", "min", "modules", "ratio", "CPU ratio"], rows, left=2)
    report.line("  median/p90/min: wall time inside the fresh interpreter (start-up excluded); ratio = median / floor")
    report.line("  median (the budget); CPU ratio = same with process CPU time (less disturbed by a busy machine);")
    report.line("  modules = modules newly imported by the timed code")
    report.line()
    for variant in handlers:
        if variant.errors:
            report.check(f"cold start {variant.label}", False, f"probe failed: {variant.errors[0]}")
            continue
        ratio = median(variant.seconds) / floor_median
        report.check(
            f"cold start {variant.label} <= {BUDGET:.2f}x floor",
            ratio <= BUDGET,
            f"{ratio:.3f}x ({_ms(median(variant.seconds))} vs {_ms(floor_median)}; CPU "
            f"{median(variant.cpu) / floor_cpu:.3f}x)",
        )
    install = next((v for v in handlers if v.label == "install" and v.seconds), None)
    for variant in extras:
        if variant.errors:
            report.line(f"  [info] {variant.label}: probe failed: {variant.errors[0]}")
            continue
        versus = f", +{_ms(median(variant.seconds) - median(install.seconds))} over install untraced" if install else ""
        report.line(f"  [info] {variant.label}: {median(variant.seconds) / floor_median:.2f}x the floor{versus}.")
        report.line("         X-Ray SDK cost, not held to the budget (the template's default is tracing off).")
