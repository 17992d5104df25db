"""``slack-tokens`` against real pieces: the local stack (``make run``'s moto server, Slack sandbox and its Lambda
Invoke API, found through its state file), and a "deployed" stack that CloudFormation (moto's) describes, with its
queues and alarms, whose functions are reached through ``AWS_ENDPOINT_URL_LAMBDA`` (moto cannot run Lambda code
without Docker; the local stack's Lambda API runs the real handlers behind botocore's real ``Invoke``).

Every output of every command here is kept and scanned at the end for any token the sandbox issued.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.console import Console
from local.lambda_api import LambdaApi
from local.lambda_host import FunctionError
from local.stack import LocalStack, Options
from slack_tokens.models import TokenPair
from slack_tokens_cli.main import main
from tests.integration.test_local_stack import Browser, consent

pytestmark = pytest.mark.integration

PREFIX = "cli/tokens/"  # moto's state is shared within the process: keep clear of the other local stacks
STACK = "cli-test-stack"
ROOT = Path(__file__).resolve().parents[2]
SEEN: list[str] = []  # every stdout and stderr of every command: no token may appear in any
TOKENS: set[str] = set()  # every token this module's Slack sandbox issued or we minted
TOKEN_SHAPE = re.compile(r"xox[a-z]-|xoxe\.")


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*argv: str, state: Path | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, *(["--state-file", str(state)] if state is not None else [])]
    status = main(args, stdout=out, stderr=err)
    SEEN.extend([out.getvalue(), err.getvalue()])
    return Run(status, out.getvalue(), err.getvalue())


# -- the stacks -----------------------------------------------------------------------------------------------------


@dataclass
class Local:
    stack: LocalStack
    state: Path
    browser: Browser

    def install(self, team: str) -> str:
        assert self.stack.slack is not None
        self.stack.slack.set_installation(team_id=team, team_name=f"Workspace {team}")
        assert self.browser.get(consent(self.browser, self.stack, "allow")).status == 200
        name = f"{PREFIX}team/{team}/bot"
        self.remember(name)
        return name

    def pair(self, name: str) -> TokenPair:
        pair = self.stack.store.read(name).pair
        TOKENS.update(t for t in (pair.access_token, pair.refresh_token) if t)
        return pair

    def remember(self, name: str) -> None:
        self.pair(name)

    def client(self, service: str) -> Any:
        assert self.stack.moto is not None
        return boto3.client(
            service,
            endpoint_url=self.stack.moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def guard_table(self) -> str:
        return str(json.loads(self.state.read_text())["resources"]["RunGuardTable"])


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    state = tmp_path_factory.mktemp("cli") / "stack.json"
    options = Options(port=0, run_schedules=False, state_file=state, parameters={"TokenSecretPrefix": PREFIX})
    with LocalStack(options, console=Console(io.StringIO())) as stack:
        yield Local(stack, state, Browser())


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says where AWS is; nothing leaks in from the machine (or another test)."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


DEPLOYED_TEMPLATE = {
    "Parameters": {"RotationRateMinutes": {"Type": "Number", "Default": 30}},
    "Resources": {
        "RotationScheduleDLQ": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "RotationFailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
    },
}


@pytest.fixture(scope="module")
def deployed(local: Local) -> Iterator[dict[str, str]]:
    """A stack CloudFormation knows, with the deployed template's output names; its functions and table are the
    local stack's. Yields the environment that points boto3 at it."""
    assert local.stack.moto is not None and local.stack.lambda_api is not None
    outputs = {
        "TokenSecretPrefix": PREFIX,
        "RotateFunctionName": "RotateFunction",
        "ExchangeFunctionName": "ExchangeFunction",
        "RunGuardTableName": local.guard_table,
        "RetiredPairRecoveryDays": "7",
    }
    template = {**DEPLOYED_TEMPLATE, "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    cfn = local.client("cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    yield {
        "AWS_ENDPOINT_URL": local.stack.moto.url,
        "AWS_ENDPOINT_URL_LAMBDA": local.stack.lambda_api.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    cfn.delete_stack(StackName=STACK)


@pytest.fixture
def cloud(deployed: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in deployed.items():
        monkeypatch.setenv(key, value)
    return deployed


def queue_url(local: Local, logical_id: str) -> str:
    resources = local.client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    return str(next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == logical_id))


PAIR_KEYS = {
    "name",
    "team_id",
    "enterprise_id",
    "user_id",
    "token_type",
    "status",
    "pending_rotation",
    "legacy",
    "expires_at",
    "expires_in_seconds",
    "expired",
    "retired_at",
}


# -- pairs ----------------------------------------------------------------------------------------------------------


def test_pairs_lists_an_installed_pair_of_the_running_local_stack(local: Local) -> None:
    name = local.install("TCLI1")

    run = cli("pairs", state=local.state)

    assert run.status == 0, run.err
    header, *rows, footer = run.out.splitlines()
    assert header.split() == ["NAME", "TEAM", "TYPE", "EXPIRES", "IN", "STATUS"]
    (row,) = [r for r in rows if r.startswith(name)]
    assert row.split()[:3] == [name, "TCLI1", "bot"] and row.split()[-1] == "active"
    assert header.index("TEAM") == row.index("  TCLI1") + 2  # aligned
    assert "\033[" not in run.out  # not a terminal: no colour
    assert footer.endswith("(values never shown)") and PREFIX in footer


def test_pairs_json_has_one_object_per_pair_with_a_fixed_schema(local: Local) -> None:
    name = local.install("TCLI2")

    report = cli("pairs", "--json", state=local.state).json()

    assert set(report) == {"stack", "prefix", "now", "pairs"} and report["prefix"] == PREFIX
    (entry,) = [p for p in report["pairs"] if p["name"] == name]
    assert set(entry) == PAIR_KEYS
    assert entry["team_id"] == "TCLI2" and entry["token_type"] == "bot" and entry["status"] == "active"
    assert entry["expires_at"] - report["now"] == entry["expires_in_seconds"] > 0
    assert entry["legacy"] is entry["expired"] is entry["pending_rotation"] is False


def test_pairs_filters_by_team_status_and_expiry(local: Local) -> None:
    mine = local.install("TCLI3")

    by_team = cli("pairs", "--team", "TCLI3", "--json", state=local.state).json()["pairs"]
    soon = cli("pairs", "--expiring-within", "1h", "--json", state=local.state).json()["pairs"]
    later = cli("pairs", "--expiring-within", "30s", "--json", state=local.state).json()["pairs"]
    revoked = cli("pairs", "--status", "revoked", "--team", "TCLI3", "--json", state=local.state).json()["pairs"]

    assert [p["name"] for p in by_team] == [mine]
    assert mine in [p["name"] for p in soon]  # the sandbox's tokens live 10 minutes
    assert mine not in [p["name"] for p in later]
    assert revoked == []


def test_a_bad_filter_is_a_usage_error(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["pairs", "--expiring-within", "soon", "--state-file", str(local.state)])
    assert exit_.value.code == 2 and "not a duration" in capsys.readouterr().err


# -- status ---------------------------------------------------------------------------------------------------------

STATUS_KEYS = {
    "stack",
    "prefix",
    "now",
    "pairs",
    "most_urgent",
    "last_sweep",
    "guard",
    "queues",
    "alarms_in_alarm",
    "attention",
    "ok",
}


def test_status_of_a_healthy_local_stack_shows_the_last_sweep_and_exits_0(local: Local) -> None:
    name = local.install("TCLI4")
    assert cli("rotate", "--all", state=local.state).status == 0  # a sweep: leaves the last_sweep record

    run = cli("status", state=local.state)
    report = cli("status", "--json", state=local.state).json()

    assert run.status == 0, run.out
    assert "All well." in run.out and re.search(r"Last sweep +(just now|\d+s ago): ", run.out)
    assert "Run guard    free" in run.out and "not played locally" in run.out
    assert set(report) == STATUS_KEYS and report["ok"] is True and report["attention"] == []
    assert set(report["pairs"]) == {"total", "by_status", "pending_rotation", "legacy", "expired"}
    assert report["pairs"]["by_status"]["active"] >= 1
    assert report["last_sweep"]["summary"]["failed"] == 0 and 0 <= report["last_sweep"]["ago_seconds"] < 60
    assert report["last_sweep"]["holder"].startswith("RotateFunction/")
    assert report["guard"]["held"] is False and report["queues"] is None and report["alarms_in_alarm"] is None
    assert report["most_urgent"]["expires_in_seconds"] <= 600 and name.startswith(PREFIX)


def test_status_exits_1_and_names_a_pair_that_needs_a_reinstall(local: Local) -> None:
    name = local.install("TCLI5")
    assert local.stack.slack is not None
    local.stack.slack.revoke(str(local.pair(name).refresh_token))

    rotated = cli("rotate", name, state=local.state)
    run = cli("status", state=local.state)
    report = cli("status", "--json", state=local.state).json()
    listed = cli("pairs", "--status", "needs_reinstall", "--json", state=local.state).json()["pairs"]

    assert rotated.status == 1 and "needs a reinstall" in rotated.out
    assert run.status == 1 and "Needs attention" in run.out and name in run.out
    assert report["ok"] is False and "needs_reinstall" in [f["code"] for f in report["attention"]]
    assert report["pairs"]["by_status"]["needs_reinstall"] >= 1
    assert name in [p["name"] for p in listed]
    local.install("TCLI5")  # a reinstall makes it well again, for the tests after this one


def test_status_sees_a_guard_claim_no_working_run_writes(local: Local) -> None:
    dynamodb = local.client("dynamodb")
    now = time.time()
    stuck = {
        "name": {"S": "rotation"},
        "owner": {"S": "stuck-run"},
        "holder": {"S": "RotateFunction/stuck"},
        "acquired_at": {"N": str(now - 5)},
        "expires_at": {"N": str(now + 3600)},  # no holder ever claims an hour
        "rev": {"S": "rev"},
        "in_flight": {"SS": [f"{PREFIX}team/TCLI1/bot#active-{int(now):010d}-{'0' * 32}"]},
    }
    dynamodb.put_item(TableName=local.guard_table, Item=stuck)
    try:
        run = cli("status", state=local.state)
        guard = cli("status", "--json", state=local.state).json()["guard"]
    finally:
        dynamodb.delete_item(TableName=local.guard_table, Key={"name": {"S": "rotation"}})

    assert run.status == 1 and "held by RotateFunction/stuck" in run.out and "implausible" in run.out
    assert guard["held"] is True and guard["verdict"] == "implausible" and guard["holder"] == "RotateFunction/stuck"
    assert guard["in_flight"] == [f"{PREFIX}team/TCLI1/bot"] and "refreshing 1" in run.out


def test_status_of_a_deployed_stack_reads_its_queues_and_alarms(local: Local, cloud: dict[str, str]) -> None:
    cloudwatch, sqs = local.client("cloudwatch"), local.client("sqs")
    alarm = f"{STACK}-RotationFailedAlarm-ABC123"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="SlackTokenLifecycle",
        MetricName="RotationFailed",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="no failures")
    healthy = cli("status", "--stack", STACK, "--json")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    sqs.send_message(QueueUrl=queue_url(local, "RotationFailureQueue"), MessageBody='{"requestPayload": {}}')
    try:
        run = cli("status", "--stack", STACK)
        report = cli("status", "--stack", STACK, "--json").json()
    finally:
        sqs.purge_queue(QueueUrl=queue_url(local, "RotationFailureQueue"))
        cloudwatch.delete_alarms(AlarmNames=[alarm])

    assert healthy.status == 0, healthy.json()["attention"]
    assert healthy.json()["queues"] == {"RotationScheduleDLQ": 0, "RotationFailureQueue": 0}
    assert healthy.json()["alarms_in_alarm"] == [] and healthy.json()["stack"] == f"stack {STACK} (us-east-1)"
    assert run.status == 1 and "RotationFailureQueue 1" in run.out and f"{alarm} in ALARM" in run.out
    assert {f["code"] for f in report["attention"]} == {"queue_messages", "alarm"}
    assert report["queues"]["RotationFailureQueue"] == 1 and report["alarms_in_alarm"] == [alarm]


# -- rotate ---------------------------------------------------------------------------------------------------------


def test_rotate_one_pair_through_the_local_function(local: Local) -> None:
    name = local.install("TCLI6")
    before = local.pair(name)

    run = cli("rotate", "team/TCLI6/bot", state=local.state)  # a name without the prefix is completed

    after = local.pair(name)
    assert run.status == 0 and run.out.strip() == f"{name}: rotated"
    assert after.access_token != before.access_token


def test_rotate_a_team_through_the_deployed_function_reports_json(local: Local, cloud: dict[str, str]) -> None:
    name = local.install("TCLI7")
    before = local.pair(name)

    run = cli("rotate", "--team", "TCLI7", "--stack", STACK, "--json")

    report = run.json()
    assert run.status == 0, run.err
    assert set(report) == {"stack", "runs", "ok"} and report["ok"] is True
    (one,) = report["runs"]
    assert one["name"] == name and one["summary"]["rotated"] == 1 and one["summary"]["guard"] == "acquired"
    assert local.pair(name).access_token != before.access_token


def test_rotate_needs_names_or_a_team_and_refuses_a_name_that_is_not_a_pair(local: Local) -> None:
    assert cli("rotate", state=local.state).status == 2
    wrong = cli("rotate", "not-a-pair", state=local.state)
    none = cli("rotate", "--team", "TNOBODY", state=local.state)
    both = cli("rotate", "--all", "--team", "T1", state=local.state)

    assert wrong.status == 2 and "not a token pair's name" in wrong.err
    assert none.status == 2 and "no pair of team TNOBODY" in none.err
    assert both.status == 2


def test_a_function_that_raises_is_reported_in_one_line(local: Local, tmp_path: Path) -> None:
    def broken(function: str, event: Any) -> Any:
        try:
            raise RuntimeError("the handler broke")
        except RuntimeError as exc:
            raise FunctionError(f"{function} raised RuntimeError") from exc

    api = LambdaApi(["RotateFunction"], broken).start()
    state = tmp_path / "stack.json"
    running = json.loads(local.state.read_text())
    state.write_text(json.dumps(running | {"pid": os.getpid(), "lambda_url": api.url}), encoding="utf-8")
    try:
        run = cli("rotate", "--all", state=state)
        missing = cli("exchange", "--dry-run", state=state)  # this Lambda API has no ExchangeFunction
    finally:
        api.stop()

    assert run.status == 1 and "RotateFunction failed (RuntimeError); see its logs" in run.err
    assert missing.status == 3 and "ResourceNotFoundException" in missing.err
    assert "Traceback" not in run.err + missing.err


# -- retire ---------------------------------------------------------------------------------------------------------


def test_retire_asks_first_then_retires_every_pair_of_a_team(local: Local) -> None:
    name = local.install("TCLI8")

    refused = cli("retire", "--team", "TCLI8", state=local.state)  # not a terminal and no --yes
    done = cli("retire", "--team", "TCLI8", "--yes", "--json", state=local.state)
    again = cli("retire", name, "--yes", state=local.state)
    listed = cli("pairs", "--team", "TCLI8", "--json", state=local.state).json()["pairs"]

    assert refused.status == 2 and "--yes" in refused.err
    assert done.status == 0, done.out
    assert done.json()["results"] == [{"name": name, "result": "retired_now", "reason": None}]
    assert again.status == 0 and f"{name}: already retired" in again.out
    (entry,) = listed
    assert entry["status"] == "revoked" and entry["retired_at"] is not None


# -- import and exchange --------------------------------------------------------------------------------------------


def test_import_then_exchange_a_legacy_token(local: Local, tmp_path: Path) -> None:
    assert local.stack.slack is not None
    local.stack.slack.set_installation(team_id="TCLI9", team_name="Legacy")
    token = local.stack.slack.add_legacy_token("bot", team_id="TCLI9")
    TOKENS.add(token)
    path = tmp_path / "legacy.csv"
    path.write_text(f"team_id,enterprise_id,token_type,token,user_id\nTCLI9,,bot,{token},\n", encoding="utf-8")
    name = f"{PREFIX}team/TCLI9/bot"

    checked = cli("import", str(path), "--dry-run")  # no stack needed
    imported = cli("import", str(path), state=local.state)
    legacy = cli("pairs", "--status", "legacy", "--json", state=local.state).json()["pairs"]
    would = cli("exchange", "--dry-run", state=local.state)
    refused = cli("exchange", name, state=local.state)
    exchanged = cli("exchange", name, "--yes", "--json", state=local.state)

    assert checked.status == 0 and "1 of 1 row(s) valid (dry run" in checked.out
    assert imported.status == 0 and f"{name}: stored" in imported.out
    assert [p["name"] for p in legacy] == [name]
    assert would.status == 0 and f"would exchange {name}" in would.out
    assert refused.status == 2 and "--yes" in refused.err
    assert exchanged.status == 0, exchanged.out
    assert exchanged.json()["summary"]["exchanged"] == 1
    local.remember(name)
    assert local.pair(name).refresh_token is not None


# -- errors ---------------------------------------------------------------------------------------------------------


def test_an_unknown_stack_is_named_with_what_to_do(cloud: dict[str, str]) -> None:
    run = cli("status", "--stack", "no-such-stack")
    scripted = cli("status", "--stack", "no-such-stack", "--json")

    assert run.status == 3 and run.out == ""
    assert "no stack named no-such-stack in us-east-1" in run.err and "--stack" in run.err
    assert scripted.status == 3 and scripted.json() == {
        "error": run.err.strip()[len("slack-tokens: ") :],
        "exit_status": 3,
    }


def test_missing_credentials_are_one_line_and_exit_3(local: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.stack.moto is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", local.stack.moto.url)

    run = cli("pairs", "--stack", STACK, "--region", "us-east-1")

    assert run.status == 3 and "no AWS credentials found" in run.err and "Traceback" not in run.err


def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    run = cli("status", "--profile", "nobody", "--stack", STACK)

    assert run.status == 3 and "profile 'nobody'" in run.err


def test_an_unreachable_endpoint_is_named(monkeypatch: pytest.MonkeyPatch, cloud: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    run = cli("pairs", "--stack", STACK)

    assert run.status == 3 and "127.0.0.1:9" in run.err


@pytest.mark.parametrize(
    "case",
    [
        (["pairs"], "secretsmanager.ListSecrets", "secretsmanager:ListSecrets"),
        (["status"], "dynamodb.GetItem", "dynamodb:GetItem"),
        (["status"], "sqs.GetQueueAttributes", "sqs:GetQueueAttributes"),
        (["status"], "cloudwatch.DescribeAlarms", "cloudwatch:DescribeAlarms"),
        (["rotate", "--all"], "lambda.Invoke", "lambda:InvokeFunction"),
        (["retire", "team/TCLI1/bot", "--yes"], "secretsmanager.DescribeSecret", "secretsmanager:DescribeSecret"),
    ],
)
def test_access_denied_names_the_missing_permission(
    local: Local, cloud: dict[str, str], monkeypatch: pytest.MonkeyPatch, case: tuple[list[str], str, str]
) -> None:
    """AWS's own AccessDenied answer, given to botocore in place of the call (moto enforces no IAM here)."""
    from slack_tokens_cli import aws

    command, operation, permission = case
    made = aws.Aws.client

    def denying(self: aws.Aws, service: str, **kwargs: Any) -> Any:
        client = made(self, service, **kwargs)
        client.meta.events.register(f"before-call.{operation}", deny, unique_id="deny")
        return client

    monkeypatch.setattr(aws.Aws, "client", denying)
    local.install("TCLI1")

    run = cli(*command, "--stack", STACK)

    assert run.status == 3, run.out + run.err
    assert f"lacks {permission}" in run.err and "TokenOperatorPolicy" in run.err
    assert "Traceback" not in run.err


def deny(model: Any, **_: Any) -> tuple[Any, dict[str, Any]]:
    response = type("Denied", (), {"status_code": 400, "headers": {}, "content": b""})()
    error = {"Code": "AccessDeniedException", "Message": f"not authorized to perform {model.name}"}
    return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}


def test_local_without_a_running_stack_is_a_usage_error(tmp_path: Path) -> None:
    run = cli("pairs", "--local", state=tmp_path / "none.json")

    assert run.status == 2 and "make run" in run.err


# -- the console script, on a terminal and off it -------------------------------------------------------------------


def script() -> list[str]:
    installed = Path(sys.executable).parent / "slack-tokens"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "slack_tokens_cli"]


def on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=ROOT)  # noqa: S603
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(controller)
    return b"".join(chunks).decode()


def test_the_console_script_colours_only_a_terminal_and_never_under_no_color(local: Local) -> None:
    local.install("TCLI10")
    argv = [*script(), "pairs", "--state-file", str(local.state)]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}

    piped = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=60)  # noqa: S603
    coloured = on_a_terminal(argv, env)
    plain = on_a_terminal(argv, env | {"NO_COLOR": "1"})
    SEEN.extend([piped.stdout, piped.stderr, coloured, plain])

    assert piped.returncode == 0 and "TCLI10" in piped.stdout and "\033[" not in piped.stdout
    assert "\033[" in coloured and "TCLI10" in coloured
    assert "\033[" not in plain and "TCLI10" in plain


def test_help_lists_every_command() -> None:
    run = subprocess.run([*script(), "--help"], capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
    SEEN.append(run.stdout)

    assert run.returncode == 0
    for command in ("pairs", "status", "rotate", "retire", "import", "exchange"):
        assert command in run.stdout


# -- last: nothing any command printed holds a token ----------------------------------------------------------------


def test_no_output_of_any_command_holds_a_token(local: Local) -> None:
    for name in [p["name"] for p in cli("pairs", "--json", state=local.state).json()["pairs"]]:
        try:
            local.remember(name)
        except Exception:  # noqa: S112 - a retired pair's value cannot be read: its tokens were seen when installed
            continue
    assert len(TOKENS) >= 10 and len(SEEN) >= 40
    printed = "\n".join(SEEN)
    assert not [t for t in TOKENS if t in printed]
    assert not TOKEN_SHAPE.search(printed)
