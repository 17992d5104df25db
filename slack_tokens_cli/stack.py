"""Which stack the command works on, and the names it needs from it.

* ``--local``, or no ``--stack`` while a ``make run`` is running (its ``.local/stack.json``, looked for in the
  current directory and its parents): the local stack's moto server and Lambda API, with fake credentials.
* otherwise CloudFormation: the stack ``--stack`` (default: ``stack_name`` in the nearest ``samconfig.toml``, else
  ``slack-token-lifecycle``) in ``--region`` (default: ``AWS_REGION``, then samconfig's ``region``, then the
  profile's), through ``--profile``. Its outputs give the prefix, the functions and the guard table; its resources
  the queues and the alarms. ``AWS_ENDPOINT_URL`` (boto3's own variable) points every client at an emulator.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from slack_tokens_cli.aws import Aws
from slack_tokens_cli.errors import USAGE, CliError

DEFAULT_STACK = "slack-token-lifecycle"
DEFAULT_PREFIX = "slack/tokens/"
STATE_FILE = Path(".local") / "stack.json"
QUEUES = ("RotationScheduleDLQ", "RotationFailureQueue")
_LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Target:
    """The stack as the commands need it."""

    label: str  # "stack slack-token-lifecycle (us-east-1)" or "the local stack (make run)"
    aws: Aws
    prefix: str
    rotate_function: str | None
    exchange_function: str | None
    guard_table: str | None
    queues: dict[str, str] | None = None  # logical id -> queue URL; None where none exist (the local stack)
    alarms: list[str] | None = None  # the stack's alarm names as CloudFormation lists them; None where none exist
    alarm_prefix: str | None = None  # CloudFormation names an alarm "<stack>-<logical id>-<random>"
    recovery_days: int = 7
    sweep_every: float | None = None  # seconds between scheduled sweeps, when known
    local: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def find_upwards(name: Path, start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / name).is_file():
            return folder / name
    return None


def samconfig(start: Path | None = None) -> dict[str, str]:
    """``stack_name`` and ``region`` of the nearest samconfig.toml's default environment (empty when none)."""
    path = find_upwards(Path("samconfig.toml"), start)
    if path is None:
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8")).get("default", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    found: dict[str, str] = {}
    for command in ("global", "deploy"):
        parameters = config.get(command, {}).get("parameters", {})
        for key in ("stack_name", "region"):
            if isinstance(parameters.get(key), str):
                found.setdefault(key, parameters[key])
    return found


def running_local_stack(state_file: Path | None) -> dict[str, Any] | None:
    """The running ``make run``'s state, or ``None`` (no file, or the process that wrote it has ended)."""
    path = state_file or find_upwards(STATE_FILE)
    if path is None:
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not alive(pid):
        return None
    return dict(state)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (the local stack writes its pid into its state file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve(
    *,
    stack: str | None,
    region: str | None,
    profile: str | None,
    local: bool,
    state_file: Path | None = None,
) -> Target:
    if local or (stack is None and not os.environ.get("AWS_ENDPOINT_URL")):
        running = running_local_stack(state_file)
        if running is not None:
            return local_target(running)
        if local:
            raise CliError("no local stack is running (start one with `make run`)", USAGE)
    config = samconfig()
    name = stack or config.get("stack_name") or DEFAULT_STACK
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or config.get("region")
    return cloud_target(Aws(profile=profile, region=region), name)


def local_target(state: Mapping[str, Any]) -> Target:
    resources = state.get("resources") or {}
    aws = Aws(
        region="us-east-1",
        endpoint=state["moto_url"],
        lambda_endpoint=state.get("lambda_url"),
        credentials=_LOCAL_CREDENTIALS,
    )
    functions = state.get("functions") or {}
    return Target(
        label=f"the local stack (make run, pid {state.get('pid')})",
        aws=aws,
        prefix=str(state.get("token_prefix") or DEFAULT_PREFIX),
        rotate_function=functions.get("RotateFunction") if state.get("lambda_url") else None,
        exchange_function=functions.get("ExchangeFunction") if state.get("lambda_url") else None,
        guard_table=resources.get("RunGuardTable"),
        sweep_every=state.get("rotate_every"),
        local=True,
    )


def cloud_target(aws: Aws, name: str) -> Target:
    cfn = aws.client("cloudformation")
    what = f"read stack {name}"
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        if "does not exist" in str(exc):
            where = aws.region or "the default region"
            raise CliError(
                f"no stack named {name} in {where}: pass --stack NAME (and --region), or set stack_name in "
                "samconfig.toml; for the local stack, start `make run`"
            ) from None
        raise aws.explain(exc, what) from None
    described = stacks[0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    resources = {
        r["LogicalResourceId"]: r
        for r in aws.pages(what, cfn, "list_stack_resources", "StackResourceSummaries", StackName=name)
    }
    physical = {logical: r.get("PhysicalResourceId", "") for logical, r in resources.items()}
    rate = parameters.get("RotationRateMinutes", "")
    return Target(
        label=f"stack {name} ({aws.region or 'default region'})",
        aws=aws,
        prefix=outputs.get("TokenSecretPrefix") or parameters.get("TokenSecretPrefix") or DEFAULT_PREFIX,
        rotate_function=outputs.get("RotateFunctionName") or physical.get("RotateFunction"),
        exchange_function=outputs.get("ExchangeFunctionName") or physical.get("ExchangeFunction"),
        guard_table=outputs.get("RunGuardTableName") or physical.get("RunGuardTable"),
        queues={q: physical[q] for q in QUEUES if physical.get(q)},
        alarms=sorted(
            p for lid, p in physical.items() if p and resources[lid]["ResourceType"] == "AWS::CloudWatch::Alarm"
        ),
        alarm_prefix=f"{name}-",
        recovery_days=int(outputs.get("RetiredPairRecoveryDays") or parameters.get("RetiredPairRecoveryDays") or 7),
        sweep_every=float(rate) * 60 if rate.isascii() and rate.isdigit() else None,
    )
