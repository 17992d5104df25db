"""Run RotateFunction once in its own process, as Lambda would, optionally dying (SIGKILL) at a protocol step.

    python -m tests.support.rotate_process [--kill-at after_refresh|after_store|after_promote] [--timeout S]

Prints the run summary as JSON. The environment (AWS_ENDPOINT_URL, SLACK_*) says where moto and the fake Slack are.
"""

from __future__ import annotations

import argparse
import json
import os
import signal

from slack_tokens import entrypoints
from tests.support.lambda_runtime import invoke, load_handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", choices=["after_refresh", "after_store", "after_promote"])
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    handler = load_handler("rotate")
    if args.kill_at:

        def die(step: str, name: str) -> None:
            if step == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        entrypoints.rotator()._crash_hook = die  # test seam: the protocol's named steps
    print(json.dumps(invoke(handler.lambda_handler, {}, timeout_seconds=args.timeout)))


if __name__ == "__main__":
    main()
