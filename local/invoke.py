"""``make invoke``: run one function once with an event, like ``sam local invoke`` but without Docker.

    python -m local.invoke <logical id> <event file | -> [--attach]

By default it starts its own pieces (moto with the template's secrets, the Slack sandbox) and stops them after;
with ``--attach`` (``make invoke ... ATTACH=1``) it uses the running ``make run`` instead, so a rotation or an
exchange acts on the pairs installed there. The function's result is printed as JSON on stdout; its logs go to
stderr. Exit status 1 when the function raised, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from local import state
from local.console import Console
from local.lambda_host import FunctionError
from local.run import parse_parameters
from local.stack import LocalStack, Options
from local.template import TemplateError


class UsageError(Exception):
    """A mistake in the command line or its inputs: exit status 2."""


def read_event(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the event {source}: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make invoke", description="Run one function of template.yaml once.")
    parser.add_argument("function", help="the function's logical id in template.yaml, e.g. RotateFunction")
    parser.add_argument("event", help="a JSON event file, e.g. events/rotate_sweep.json ('-': stdin)")
    parser.add_argument("--attach", action="store_true", help="use the running `make run` (its store and Slack)")
    parser.add_argument("--param", action="append", default=[], help="template parameter override Name=Value")
    parser.add_argument("--state-file", type=Path, default=state.STATE_FILE, help="where `make run` said it runs")
    return parser


def _options(args: argparse.Namespace) -> Options:
    try:
        running = state.read(args.state_file) if args.attach else None
        parameters = parse_parameters(args.param)
    except (state.NoStackError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return Options(
        parameters=parameters,
        serve_http=False,
        run_schedules=False,
        attach=running,
        public_url=running["public_url"] if running else None,
    )


def _invoke(function: str, event: Any, options: Options) -> Any:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        with LocalStack(options, console=Console(sys.stderr)) as stack:
            if function not in stack.functions:
                known = ", ".join(sorted(stack.functions))
                raise UsageError(f"no function {function} in template.yaml; known: {known}")
            return stack.invoke(function, event)
    except TemplateError as exc:
        raise UsageError(f"template: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = _invoke(args.function, read_event(args.event), _options(args))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except FunctionError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
