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


def read_event(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return json.loads(text)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one exit per outcome the docstring lists
    parser = argparse.ArgumentParser(prog="make invoke", description="Run one function of template.yaml once.")
    parser.add_argument("function", help="the function's logical id in template.yaml, e.g. RotateFunction")
    parser.add_argument("event", help="a JSON event file, e.g. events/rotate_sweep.json ('-': stdin)")
    parser.add_argument("--attach", action="store_true", help="use the running `make run` (its store and Slack)")
    parser.add_argument("--param", action="append", default=[], help="template parameter override Name=Value")
    parser.add_argument("--state-file", type=Path, default=state.STATE_FILE, help="where `make run` said it runs")
    args = parser.parse_args(argv)
    try:
        event = read_event(args.event)
    except (OSError, ValueError) as exc:
        print(f"cannot read the event {args.event}: {exc}", file=sys.stderr)
        return 2
    running = None
    if args.attach:
        try:
            running = state.read(args.state_file)
        except state.NoStackError as exc:
            print(exc, file=sys.stderr)
            return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    console = Console(sys.stderr)
    try:
        parameters = parse_parameters(args.param)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    options = Options(
        parameters=parameters,
        serve_http=False,
        run_schedules=False,
        attach=running,
        public_url=running["public_url"] if running else None,
    )
    try:
        with LocalStack(options, console=console) as stack:
            if args.function not in stack.functions:
                known = ", ".join(sorted(stack.functions))
                print(f"no function {args.function} in template.yaml; known: {known}", file=sys.stderr)
                return 2
            result = stack.invoke(args.function, event)
    except FunctionError as exc:
        print(exc, file=sys.stderr)
        return 1
    except TemplateError as exc:
        print(f"template: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
