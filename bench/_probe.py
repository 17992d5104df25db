"""Cold-start probe, run as a script in a fresh interpreter by ``bench.cold_start`` (never imported).

Usage: ``python -P _probe.py floor`` or ``python -P _probe.py handler <module name> <app.py path> <init function>``
(init function: a name in ``slack_tokens.entrypoints``, or ``-`` for import only).

Times with ``time.perf_counter()`` only what a cold start adds after the interpreter is up: the imports and the
init (and their CPU time, which other processes on a busy machine disturb less), then prints one line
``BENCH_RESULT {json}`` on stdout. Nothing else is imported before the clock starts (``importlib.util`` is, in
both modes: Lambda's runtime loads the handler with importlib).
"""

from __future__ import annotations

import importlib.util
import sys
import time


def _floor() -> None:
    import boto3
    import urllib3  # noqa: F401 - part of the floor: the layer's HTTP client

    boto3.client("secretsmanager")


def _handler(module_name: str, path: str, init: str) -> None:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if init != "-":
        from slack_tokens import entrypoints

        getattr(entrypoints, init)()


def main(argv: list[str]) -> int:
    modules_before = len(sys.modules)
    error: str | None = None
    cpu_start = time.process_time()
    start = time.perf_counter()
    try:
        if argv[0] == "floor":
            _floor()
        else:
            _handler(argv[1], argv[2], argv[3])
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    modules = len(sys.modules) - modules_before

    import json

    print(
        "BENCH_RESULT " + json.dumps({"seconds": seconds, "cpu": cpu, "modules": modules, "error": error}), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
