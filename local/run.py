"""``make run``: the whole product on this machine until Ctrl-C.

    python -m local.run [--port 3000] [--token-lifetime 600] [--rotate-every 60] [--param Name=Value ...]

The same settings come from the environment (``make run PORT=4000 ROTATE_EVERY=10``): ``PORT``, ``PUBLIC_URL``
(the API's URL as the browser reaches it, e.g. an https tunnel), ``TOKEN_LIFETIME`` (sandbox tokens, seconds),
``ROTATE_EVERY`` (seconds between schedule runs), ``PARAMS`` (space-separated ``Name=Value`` template parameter
overrides). With ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` set, real Slack replaces the sandbox (the secret is
read from the environment only, never from the command line, which other users can see).

SIGINT/SIGTERM stop every server and thread and exit 0; a second signal exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from local import state
from local.console import Console
from local.stack import LocalStack, Options
from local.state import STATE_FILE
from local.template import TemplateError


def parse_parameters(items: list[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"template parameters are Name=Value, not {item!r}")
        parameters[name] = value
    return parameters


def options_from(argv: list[str] | None, environ: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(prog="make run", description="Run the whole stack locally until Ctrl-C.")
    parser.add_argument("--port", type=int, default=int(environ.get("PORT") or 3000), help="HTTP API port (3000)")
    parser.add_argument("--public-url", default=environ.get("PUBLIC_URL") or None, help="the API's URL in a browser")
    parser.add_argument(
        "--token-lifetime", type=int, default=int(environ.get("TOKEN_LIFETIME") or 600), help="sandbox token seconds"
    )
    every = environ.get("ROTATE_EVERY")
    parser.add_argument("--rotate-every", type=float, default=float(every) if every else None, help="schedule period")
    parser.add_argument("--param", action="append", default=(environ.get("PARAMS") or "").split(), help="Name=Value")
    parser.add_argument("--state-file", type=Path, default=STATE_FILE, help="where to say how to reach this stack")
    args = parser.parse_args(argv)
    if args.token_lifetime < 1 or (args.rotate_every is not None and args.rotate_every <= 0) or args.port < 0:
        parser.error("PORT, TOKEN_LIFETIME and ROTATE_EVERY must be positive")
    return Options(
        port=args.port,
        public_url=args.public_url,
        token_lifetime=args.token_lifetime,
        rotate_every=args.rotate_every,
        slack_client_id=environ.get("SLACK_CLIENT_ID") or None,
        slack_client_secret=environ.get("SLACK_CLIENT_SECRET") or None,
        parameters=parse_parameters(args.param),
        state_file=args.state_file,
    )


def banner(stack: LocalStack, console: Console) -> None:
    options = stack.options
    sandbox = stack.slack is not None
    lines = [
        "",
        console.bold("Local stack running") + " - no AWS account, no Docker" + (", no Slack app" if sandbox else ""),
        "",
        f"  Install URL   {console.bold(stack.install_url)}",
        f"  Redirect URL  {stack.redirect_url}",
    ]
    lines += [
        f"  HTTP API      {route.route_key} -> {route.function}" for route in (stack.api.routes if stack.api else [])
    ]
    if stack.slack is not None:
        lines.append(f"  Slack         sandbox {stack.slack.base_url} (tokens live {options.token_lifetime} s)")
    else:
        lines.append(f"  Slack         slack.com, app {options.slack_client_id}")
    lines.append(f"  Secrets       moto {stack.moto.url if stack.moto else '-'} (pairs under {stack.store.prefix})")
    lines += [
        f"  Schedule      {s.event} -> {s.function} every {period:g} s (deployed: {s.expression})"
        for s, period in (stack.scheduler.jobs if stack.scheduler else [])
    ]
    lines += [
        "",
        "Next:",
        f"  1. open the install URL in a browser and press Allow{'' if sandbox else ' on Slack'}",
        "  2. the 'store' lines below say where the pair is stored; the 'schedule' lines show it rotated",
        "  3. in another terminal:  make pairs   (lists stored pairs, never a token)",
        "     .venv/bin/slack-tokens status   (health: pairs, the last sweep, the run guard)",
        "     make invoke FN=RotateFunction EVENT=events/rotate_sweep.json ATTACH=1   (a sweep now)",
        "  Ctrl-C stops everything.",
        "",
    ]
    console.text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    try:
        options = options_from(argv, os.environ)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    console = Console(metrics=bool(os.environ.get("SHOW_METRICS")))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's per-request lines
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            os._exit(128 + signum)  # a second Ctrl-C: do not wait for anything
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if options.state_file is not None:
        try:
            other = state.read(options.state_file)
            console.line(
                "stack", f"another `make run` (pid {other['pid']}) is running; this one takes over {options.state_file}"
            )
        except state.NoStackError:
            pass
    stack = LocalStack(options, console=console)
    try:
        stack.start()
    except OSError as exc:
        console.line("stack", f"cannot start: {exc} (is port {options.port} in use? try PORT=<other>)", level="ERROR")
        return 1
    except TemplateError as exc:
        console.line("stack", f"cannot start: {exc}", level="ERROR")
        return 2
    banner(stack, console)
    stopping.wait()
    console.line("stack", "stopping (Ctrl-C again to quit at once)")
    stack.stop()
    console.line("stack", "stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
