"""Run RotateFunction once in its own process, as Lambda would, optionally dying (SIGKILL) or freezing (SIGSTOP) at a
named step of the rotation protocol, and optionally meeting seeded AWS faults.

    python -m sandbox.rotate_process [--kill-at STEP | --stop-at STEP] [--nth N] [--timeout S]
                                           [--chaos SEED:REFUSE_RATE:LOSE_RATE] [--request-id ID] [--secret-id NAME]

STEP is one of before_refresh, after_refresh, after_store, after_promote; ``--nth``: at its N-th occurrence (1).
``--chaos``: Secrets Manager and DynamoDB calls are throttled before they are sent, and writes lose their answer after
they landed, at those rates (``sandbox.aws_faults.Chaos``). Prints the run summary as JSON, with the faults
injected under ``"chaos"``. The environment (AWS_ENDPOINT_URL, SLACK_*, GUARD_*) says where moto and the fake Slack
are and how the function is configured, as the template's environment would.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal

from sandbox.aws_faults import Chaos
from sandbox.lambda_runtime import invoke, load_handler
from slack_tokens import entrypoints

STEPS = ["before_refresh", "after_refresh", "after_store", "after_promote"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", choices=STEPS)
    parser.add_argument("--stop-at", choices=STEPS)
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--chaos", help="SEED:REFUSE_RATE:LOSE_RATE")
    parser.add_argument("--request-id")
    parser.add_argument("--secret-id", help="rotate this pair now instead of sweeping")
    args = parser.parse_args()
    handler = load_handler("rotate")
    step, sig = (args.kill_at, signal.SIGKILL) if args.kill_at else (args.stop_at, signal.SIGSTOP)
    if step:
        seen = itertools.count(1)

        def hook(at: str, name: str) -> None:
            if at == step and next(seen) == args.nth:
                os.kill(os.getpid(), sig)  # SIGSTOP freezes every thread, the guard's heartbeat included

        entrypoints.rotator()._crash_hook = hook  # test seam: the protocol's named steps
    chaos = None
    if args.chaos:
        seed, refuse, lose = args.chaos.split(":")
        chaos = Chaos(int(seed), float(refuse), float(lose))
        chaos.install(entrypoints.secretsmanager_client(), "secrets-manager")
        chaos.install(entrypoints.dynamodb_client(), "dynamodb")
    context = {"timeout_seconds": args.timeout} | ({"aws_request_id": args.request_id} if args.request_id else {})
    event = {"secret_id": args.secret_id} if args.secret_id else {}
    summary = invoke(handler.lambda_handler, event, **context)
    if chaos is not None:
        summary["chaos"] = chaos.injected
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
