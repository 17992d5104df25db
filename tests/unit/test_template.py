"""Static checks of template.yaml: the contract between the SAM template and the function code.

The template is parsed with the local stack's loader (``local.template``), a small SafeLoader that
understands CloudFormation's short-form tags, so these tests need only PyYAML. cfn-lint runs in ``make lint``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.template import Template, load_template
from slack_tokens.config import Settings
from slack_tokens.errors import ConfigError
from slack_tokens.state import StateSigner
from slack_tokens_cli import stack as cli_stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SAMCONFIG_PATH = ROOT / "samconfig.toml"
EVENTS_PATH = ROOT / "events"

APP_SECRET = {
    "Fn::If": [
        "CreateAppCredentialsSecret",
        {"Ref": "AppCredentialsSecret"},
        {"Ref": "ExistingAppCredentialsSecretArn"},
    ]
}
STATE_SECRET = {"Ref": "StateKeySecret"}
TOKEN_SECRETS_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${TokenSecretPrefix}*"
CALLBACK_ACTIONS = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:TagResource",
    # store.save_installation restores a token secret that was scheduled for deletion before writing to it.
    "secretsmanager:RestoreSecret",
}
ROTATE_ACTIONS = {
    "secretsmanager:ListSecrets",
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:TagResource",
}
GUARD_ACTIONS = {"dynamodb:GetItem", "dynamodb:UpdateItem"}  # take, renew, let go: conditional writes on one item
GUARD_TABLE_ARN = "${RunGuardTable.Arn}"
METRICS_NAMESPACE = "SlackTokenLifecycle"
SERVICE = "slack-token-lifecycle"
SHARED_ENVIRONMENT = {
    "SLACK_APP_SECRET_ID",
    "SLACK_STATE_SECRET_ID",
    "TOKEN_SECRET_PREFIX",
    "SLACK_API_URL",
    "SLACK_AUTHORIZE_URL",
    "SLACK_SCOPES",
    "SLACK_USER_SCOPES",
    "SLACK_REDIRECT_URI",
    "SLACK_PKCE_ENABLED",
    "SLACK_ALLOW_STATELESS_ORG_INSTALL",
    "INSTALL_SUCCESS_URL",
    "INSTALL_FAILURE_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_TRACE_DISABLED",
    "LOG_LEVEL",
}
ROUTES = {
    "InstallFunction": "/slack/install",
    "OAuthCallbackFunction": "/slack/oauth_redirect",
}


# -- loading ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(ROUTES) <= set(found)
    return found


# -- helpers ---------------------------------------------------------------------------------------


def referenced_names(value: Any) -> set[str]:
    """Parameters, resources and pseudo parameters that ``value`` refers to (Ref, GetAtt, ${} in Sub)."""
    names: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                names.add(inner)
            elif key == "Fn::GetAtt":
                names.add(inner[0] if isinstance(inner, list) else inner.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                names |= {match.split(".", 1)[0] for match in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(inner, list):
                    names |= referenced_names(inner[1])
            else:
                names |= referenced_names(inner)
    elif isinstance(value, list):
        for inner in value:
            names |= referenced_names(inner)
    return names


def rendered_resources(resource: Any) -> Iterator[str]:
    """Each IAM ``Resource`` entry as text (``${Name}`` for a Ref); both branches of an ``Fn::If``."""
    if isinstance(resource, list):
        for entry in resource:
            yield from rendered_resources(entry)
    elif isinstance(resource, str):
        yield resource
    elif "Ref" in resource:
        yield "${" + resource["Ref"] + "}"
    elif "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        yield sub if isinstance(sub, str) else sub[0]
    elif "Fn::GetAtt" in resource:
        yield "${" + ".".join(resource["Fn::GetAtt"]) + "}"
    elif "Fn::If" in resource:
        _, when_true, when_false = resource["Fn::If"]
        yield from rendered_resources(when_true)
        yield from rendered_resources(when_false)
    else:
        pytest.fail(f"unexpected IAM Resource form: {resource!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_of(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Inline statements of a function's ``Policies``; managed policies and policy templates fail."""
    statements: list[dict[str, Any]] = []
    for policy in as_list(properties.get("Policies", [])):
        assert isinstance(policy, dict), f"managed policy {policy!r}: use inline statements"
        assert set(policy) == {"Statement"}, f"use inline statements, not {sorted(policy)}"
        statements.extend(as_list(policy["Statement"]))
    return statements


def every_statement(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            for statement in statements_of(properties):
                yield name, statement
        elif resource["Type"] in {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
            documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
            for document in documents:
                for statement in as_list(document["Statement"]):
                    yield name, statement


def grants(statements: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Action -> rendered resources it is allowed on."""
    granted: dict[str, list[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(rendered_resources(statement["Resource"]))
    return granted


# -- the loader itself -----------------------------------------------------------------------------


def test_loader_turns_short_forms_into_long_forms() -> None:
    document = load_template(
        "A: !Ref X\nB: !GetAtt R.Arn\nC: !Sub 'x-${Y}'\nD: !If [Cond, !Ref P, '']\nE: !Equals [!Ref P, '']\n"
    )

    assert document == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["R", "Arn"]},
        "C": {"Fn::Sub": "x-${Y}"},
        "D": {"Fn::If": ["Cond", {"Ref": "P"}, ""]},
        "E": {"Fn::Equals": [{"Ref": "P"}, ""]},
    }
    assert referenced_names(document) == {"X", "R", "Y", "P"}


# -- functions and layer ---------------------------------------------------------------------------


def test_globals_give_every_function_runtime_architecture_handler_and_layer(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    shared = template["Globals"]["Function"]

    assert shared["Runtime"] == "python3.13"
    assert shared["Architectures"] == ["arm64"]
    assert shared["Handler"] == "app.lambda_handler"
    assert shared["Layers"] == [{"Ref": "SharedLayer"}]
    assert shared["Tracing"] == "Active"
    assert shared["MemorySize"] == 256
    for name, properties in functions.items():
        overridden = {"Runtime", "Architectures", "Handler", "Layers"} & set(properties)
        assert not overridden, f"{name} overrides {sorted(overridden)} from Globals"


def test_every_function_is_built_by_its_makefile_target(template: dict[str, Any]) -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    functions = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions
    for name, resource in {"SharedLayer": template["Resources"]["SharedLayer"], **functions}.items():
        assert resource["Metadata"]["BuildMethod"] == "makefile", name
        assert resource["Metadata"]["ContextPath"] == ".", name
        assert re.search(rf"^(build-\S+ )*build-{name}\b.*:", makefile, re.MULTILINE), f"no build-{name} target"


def test_shared_layer_is_built_for_python313_on_arm64(template: dict[str, Any]) -> None:
    layer = template["Resources"]["SharedLayer"]

    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    # Built by the Makefile's build-SharedLayer (hash-based .pyc; tests/built checks the output).
    assert layer["Metadata"] == {"BuildMethod": "makefile", "ContextPath": ".", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize(
    ("name", "code_uri", "timeout"),
    [
        ("InstallFunction", "functions/install/", 10),
        ("OAuthCallbackFunction", "functions/oauth_callback/", 29),
    ],
)
def test_function_code_and_timeout(
    template: dict[str, Any], functions: dict[str, dict[str, Any]], name: str, code_uri: str, timeout: int
) -> None:
    properties = functions[name]

    assert properties["CodeUri"] == code_uri
    assert properties.get("Timeout", template["Globals"]["Function"]["Timeout"]) == timeout
    assert timeout < 30, "API Gateway HTTP API gives up on a Lambda integration after 30 s"


@pytest.mark.parametrize(("name", "path"), sorted(ROUTES.items()))
def test_route_is_a_get_on_the_http_api_with_payload_v2(
    template: dict[str, Any], functions: dict[str, dict[str, Any]], name: str, path: str
) -> None:
    events = [event["Properties"] for event in functions[name]["Events"].values() if event["Type"] == "HttpApi"]

    assert template["Resources"]["SlackOAuthApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert len(events) == 1
    assert events[0]["ApiId"] == {"Ref": "SlackOAuthApi"}
    assert events[0]["Method"].upper() == "GET"
    assert events[0]["Path"] == path
    assert events[0].get("PayloadFormatVersion", "2.0") == "2.0"


def test_every_function_has_a_log_group_with_retention(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    log_groups = {
        resource["Properties"]["LogGroupName"]["Fn::Sub"]: resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    }

    for name in functions:
        assert "RetentionInDays" in log_groups[f"/aws/lambda/${{{name}}}"]


# -- rotation --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotate(functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert "RotateFunction" in functions
    return functions["RotateFunction"]


@pytest.fixture(scope="module")
def rotation_schedule(rotate: dict[str, Any]) -> dict[str, Any]:
    events = [event for event in rotate["Events"].values() if event["Type"] == "ScheduleV2"]
    assert len(events) == 1, "one EventBridge Scheduler schedule"
    assert len(rotate["Events"]) == 1, "the schedule is the only trigger; everything else invokes directly"
    return events[0]["Properties"]


def assert_encrypted_queue(template: dict[str, Any], name: str) -> None:
    queue = template["Resources"][name]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_rotate_function_runs_alone_for_up_to_15_minutes(template: dict[str, Any], rotate: dict[str, Any]) -> None:
    assert rotate["CodeUri"] == "functions/rotate/"
    assert rotate["Timeout"] == 900, "a sweep of 1,000 pairs at Slack's 600 a minute takes about 2 minutes"
    assert rotate["ReservedConcurrentExecutions"] == 1, "at most one refresh of a pair in flight"
    assert "MemorySize" not in rotate, "memory comes from Globals"
    assert not {"HttpApi", "Api"} & {event["Type"] for event in rotate["Events"].values()}


def test_rotation_schedule_sends_an_empty_sweep_with_retries_and_a_dead_letter_queue(
    template: dict[str, Any], rotation_schedule: dict[str, Any]
) -> None:
    assert rotation_schedule["ScheduleExpression"] == {"Fn::Sub": "rate(${RotationRateMinutes} minutes)"}
    assert rotation_schedule["Input"] == "{}"
    assert rotation_schedule["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 900}
    assert rotation_schedule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["RotationScheduleDLQ", "Arn"]}}
    assert rotation_schedule.get("OmitName") is True, "SAM's default schedule name clashes across stacks"
    assert_encrypted_queue(template, "RotationScheduleDLQ")


def test_rotation_rate_parameter_and_the_failure_alarm_period_cover_every_allowed_rate(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["RotationRateMinutes"]
    periods = template["Mappings"]["RotationAlarmPeriod"]

    assert parameter["Type"] == "Number"
    assert parameter["Default"] in parameter["AllowedValues"]
    assert all(5 <= rate <= 120 for rate in parameter["AllowedValues"])
    assert {str(rate) for rate in parameter["AllowedValues"]} == set(periods)
    for rate, period in periods.items():
        # every period holds a sweep, so two failing periods in a row means two failing sweeps
        assert period["Seconds"] >= max(1800, int(rate) * 60), rate
        assert period["Seconds"] % 60 == 0, rate


@pytest.mark.parametrize("function", ["RotateFunction", "ExchangeFunction"])
def test_a_run_that_died_is_retried_within_minutes_then_goes_to_the_failure_queue(
    template: dict[str, Any], functions: dict[str, dict[str, Any]], function: str
) -> None:
    config = functions[function]["EventInvokeConfig"]

    # Lambda retries a function error (crash, timeout) about 1 minute later, then 2 minutes after that: a pair whose
    # new tokens died with the run is refreshed again while Slack's grace period for the used refresh token lasts.
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 3600, "an older event's work is the next sweep's"
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",  # SAM adds sqs:SendMessage on the queue to the function's role
        "Destination": {"Fn::GetAtt": ["RotationFailureQueue", "Arn"]},
    }
    assert_encrypted_queue(template, "RotationFailureQueue")


def test_only_the_rotator_and_the_exchange_can_touch_the_run_guard(template: dict[str, Any]) -> None:
    """Write it, that is; the operators' policy reads it (``slack-tokens status``: the holder and the last sweep)."""
    table = template["Resources"]["RunGuardTable"]
    statements = list(every_statement(template))
    touching = [(name, s) for name, s in statements if "RunGuardTable" in referenced_names(s)]
    holders = {name for name, _ in touching if name != "TokenOperatorPolicy"}
    operator = {a for name, s in touching if name == "TokenOperatorPolicy" for a in as_list(s["Action"])}
    elsewhere = [
        action
        for _, statement in statements
        if not referenced_names(statement) & {"RunGuardTable", "UsedStateTable"}
        for action in as_list(statement["Action"])
        if action.startswith("dynamodb:")
    ]

    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "name", "KeyType": "HASH"}]
    assert holders == {"RotateFunction", "ExchangeFunction"}, "the callback's role must not be able to block rotation"
    assert operator == {"dynamodb:GetItem"}
    assert elsewhere == []


def test_only_the_callback_can_spend_states_and_only_by_a_put(template: dict[str, Any]) -> None:
    table = template["Resources"]["UsedStateTable"]
    statements = [(name, st) for name, st in every_statement(template) if "UsedStateTable" in referenced_names(st)]

    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "state_id", "KeyType": "HASH"}]
    # DynamoDB deletes spent states some time after they would have expired anyway: the table never grows.
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [name for name, _ in statements] == ["OAuthCallbackFunction"]
    (_, statement) = statements[0]
    assert as_list(statement["Action"]) == ["dynamodb:PutItem"]  # a conditional put; no read, no delete
    assert list(rendered_resources(statement["Resource"])) == ["${UsedStateTable.Arn}"]


def test_the_callback_knows_its_used_state_table(functions: dict[str, dict[str, Any]]) -> None:
    variables = functions["OAuthCallbackFunction"]["Environment"]["Variables"]

    assert variables["USED_STATE_TABLE_NAME"] == {"Ref": "UsedStateTable"}
    assert "USED_STATE_TABLE_NAME" not in functions["InstallFunction"].get("Environment", {}).get("Variables", {})


def test_the_callback_route_is_throttled_by_parameters_whose_defaults_leave_rotation_its_budget(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    event = functions["OAuthCallbackFunction"]["Events"]["OAuthRedirect"]["Properties"]
    parameters = template["Parameters"]

    assert event["RouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "CallbackThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "CallbackThrottleBurst"},
    }
    rate, burst = parameters["CallbackThrottleRate"], parameters["CallbackThrottleBurst"]
    assert (rate["Type"], rate["Default"], rate["MinValue"]) == ("Number", 2, 1)
    assert (burst["Type"], burst["Default"], burst["MinValue"]) == ("Number", 20, 1)
    # Each admitted callback costs at most 2 oauth.v2.access calls: at the defaults, the callbacks of a minute
    # (rate x 60 + a full burst) leave more than 100 of Slack's 600 a minute to rotation.
    assert 2 * (rate["Default"] * 60 + burst["Default"]) <= 600 - 100
    assert rate["MaxValue"] <= 100 and burst["MaxValue"] <= 500


def test_rotation_environment_comes_from_parameters(template: dict[str, Any], rotate: dict[str, Any]) -> None:
    variables = rotate["Environment"]["Variables"]
    parameters = template["Parameters"]

    assert variables == {
        "ROTATION_MARGIN_SECONDS": {"Ref": "RotationMarginSeconds"},
        "SLACK_REFRESH_PER_MINUTE": {"Ref": "RefreshPerMinute"},
        "ROTATION_WORKERS": "8",
        "GUARD_TABLE_NAME": {"Ref": "RunGuardTable"},
        "GUARD_TTL_SECONDS": "15",
    }
    assert not set(variables) & SHARED_ENVIRONMENT, "shared variables belong in Globals"
    # a pair due at the margin must meet at least one sweep (plus its longest run) before it expires
    longest_rate = max(parameters["RotationRateMinutes"]["AllowedValues"]) * 60
    assert parameters["RotationMarginSeconds"]["Default"] >= longest_rate


def test_rotate_function_lists_everything_but_touches_only_token_secrets_and_app_credentials(
    rotate: dict[str, Any],
) -> None:
    statements = statements_of(rotate)
    granted = grants(statements)
    listing = [statement for statement in statements if "secretsmanager:ListSecrets" in as_list(statement["Action"])]

    assert set(granted) == ROTATE_ACTIONS | GUARD_ACTIONS
    assert len(listing) == 1
    assert as_list(listing[0]["Action"]) == ["secretsmanager:ListSecrets"], "ListSecrets stands alone"
    assert listing[0]["Resource"] == "*"
    assert sorted(granted["secretsmanager:GetSecretValue"]) == sorted(
        [TOKEN_SECRETS_ARN, *rendered_resources(APP_SECRET)]
    )
    for action in ROTATE_ACTIONS - {"secretsmanager:ListSecrets", "secretsmanager:GetSecretValue"}:
        assert granted[action] == [TOKEN_SECRETS_ARN], action
    for action in GUARD_ACTIONS:
        assert granted[action] == [GUARD_TABLE_ARN], action


def test_rotate_function_cannot_read_the_state_key(rotate: dict[str, Any]) -> None:
    assert "StateKeySecret" not in referenced_names(rotate["Policies"])
    assert "RestoreSecret" not in json.dumps(rotate["Policies"]), "only a reinstall restores a deleted pair"


@pytest.mark.parametrize(
    ("name", "content"),
    [("rotate_sweep.json", {}), ("rotate_one.json", {"secret_id": "slack/tokens/team/T0001/bot"})],
)
def test_rotation_sample_events(name: str, content: dict[str, Any]) -> None:
    text = (EVENTS_PATH / name).read_text(encoding="utf-8")

    assert json.loads(text) == content
    assert text.endswith("\n")


# -- legacy token exchange -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exchange(functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert "ExchangeFunction" in functions
    return functions["ExchangeFunction"]


def test_exchange_function_runs_alone_for_up_to_15_minutes(exchange: dict[str, Any], template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ExchangePerMinute"]

    assert exchange["CodeUri"] == "functions/exchange/"
    assert exchange["Timeout"] == 900
    assert exchange["ReservedConcurrentExecutions"] == 1
    assert exchange["Environment"]["Variables"] == {
        "SLACK_EXCHANGE_PER_MINUTE": {"Ref": "ExchangePerMinute"},
        "GUARD_TABLE_NAME": {"Ref": "RunGuardTable"},
        "GUARD_TTL_SECONDS": "15",
    }
    assert parameter["MaxValue"] <= 600, "Slack's limit a minute"


def test_exchange_schedule_is_present_but_disabled_by_default(
    exchange: dict[str, Any], template: dict[str, Any]
) -> None:
    (event,) = exchange["Events"].values()
    properties = event["Properties"]

    assert event["Type"] == "ScheduleV2"
    assert properties["Input"] == "{}"
    assert properties["State"] == {"Fn::If": ["ExchangeScheduleOn", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["ExchangeScheduleOn"] == {"Fn::Equals": [{"Ref": "ExchangeScheduleEnabled"}, "true"]}
    assert template["Parameters"]["ExchangeScheduleEnabled"]["Default"] == "false"


def test_exchange_function_lists_everything_but_touches_only_token_secrets_and_app_credentials(
    exchange: dict[str, Any],
) -> None:
    statements = statements_of(exchange)
    granted = grants(statements)
    listing = [statement for statement in statements if "secretsmanager:ListSecrets" in as_list(statement["Action"])]

    assert set(granted) == ROTATE_ACTIONS | GUARD_ACTIONS  # the same protocol, under the same run guard
    assert len(listing) == 1 and listing[0]["Resource"] == "*"
    assert as_list(listing[0]["Action"]) == ["secretsmanager:ListSecrets"]
    assert sorted(granted["secretsmanager:GetSecretValue"]) == sorted(
        [TOKEN_SECRETS_ARN, *rendered_resources(APP_SECRET)]
    )
    for action in ROTATE_ACTIONS - {"secretsmanager:ListSecrets", "secretsmanager:GetSecretValue"}:
        assert granted[action] == [TOKEN_SECRETS_ARN], action
    for action in GUARD_ACTIONS:
        assert granted[action] == [GUARD_TABLE_ARN], action
    assert "StateKeySecret" not in referenced_names(exchange["Policies"])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("exchange_all.json", {}),
        ("exchange_dry_run.json", {"dry_run": True}),
        ("exchange_some.json", {"secret_ids": ["slack/tokens/team/T0001/bot"]}),
    ],
)
def test_exchange_sample_events(name: str, content: dict[str, Any]) -> None:
    text = (EVENTS_PATH / name).read_text(encoding="utf-8")

    assert json.loads(text) == content
    assert text.endswith("\n")


# -- alarms ----------------------------------------------------------------------------------------


def alarms_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "NeedsReinstallAlarm",
            {"MetricName": "NeedsReinstall", "Statistic": "Sum", "Period": 300, "Threshold": 0}
            | {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1},
        ),
        (
            "RotationFailedAlarm",
            {"MetricName": "RotationFailed", "Statistic": "Sum", "Threshold": 1}
            | {"ComparisonOperator": "GreaterThanOrEqualToThreshold", "EvaluationPeriods": 2, "DatapointsToAlarm": 2},
        ),
        (
            # the most urgent due pair was within 30 minutes of its expiry
            "RotationStalledAlarm",
            {"MetricName": "RotationLagSeconds", "Statistic": "Minimum", "Period": 1800, "Threshold": 1800}
            | {"ComparisonOperator": "LessThanThreshold", "EvaluationPeriods": 1},
        ),
        (
            # every sweep with work, in three sweep periods in a row, found the run guard held by another run
            "RotationBlockedAlarm",
            {"MetricName": "RotationBlocked", "Statistic": "Minimum", "Threshold": 1}
            | {"ComparisonOperator": "GreaterThanOrEqualToThreshold", "EvaluationPeriods": 3, "DatapointsToAlarm": 3}
            | {"Period": {"Fn::FindInMap": ["SweepPeriod", {"Ref": "RotationRateMinutes"}, "Seconds"]}},
        ),
        (
            # a guard value no working run writes was taken over, or DynamoDB could not be used
            "RunGuardAlarm",
            {"MetricName": "RunGuardProblem", "Statistic": "Sum", "Period": 300, "Threshold": 0}
            | {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1},
        ),
    ],
)
def test_rotation_metric_alarms_watch_the_powertools_metrics(
    template: dict[str, Any], name: str, expected: dict[str, Any]
) -> None:
    alarm = alarms_of(template)[name]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    # Powertools Metrics emits under POWERTOOLS_METRICS_NAMESPACE with a `service` dimension
    assert alarm["Namespace"] == METRICS_NAMESPACE == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE
    assert {key: alarm.get(key) for key in expected} == expected


def test_rotation_failed_alarm_period_follows_the_schedule(template: dict[str, Any]) -> None:
    alarm = alarms_of(template)["RotationFailedAlarm"]

    assert alarm["Period"] == {"Fn::FindInMap": ["RotationAlarmPeriod", {"Ref": "RotationRateMinutes"}, "Seconds"]}


@pytest.mark.parametrize(
    ("name", "queue"),
    [("RotationScheduleDLQAlarm", "RotationScheduleDLQ"), ("RotationFailureQueueAlarm", "RotationFailureQueue")],
)
def test_each_rotation_queue_alarms_on_any_message(template: dict[str, Any], name: str, queue: str) -> None:
    alarm = alarms_of(template)[name]

    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0


def test_alarms_ignore_missing_data_and_notify_the_optional_topic(template: dict[str, Any]) -> None:
    alarms = alarms_of(template)
    topic = template["Resources"]["AlarmTopic"]

    assert len(alarms) == 7
    for name, alarm in alarms.items():
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmActions"] == {
            "Fn::If": ["AlarmEmailGiven", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }, name
    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Condition"] == "AlarmEmailGiven"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    assert template["Conditions"]["AlarmEmailGiven"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


# -- IAM -------------------------------------------------------------------------------------------


def test_secretsmanager_statements_name_specific_secrets(template: dict[str, Any]) -> None:
    checked = 0
    for owner, statement in every_statement(template):
        actions = {action.lower() for action in as_list(statement["Action"])}
        if not any(action.startswith("secretsmanager:") for action in actions):
            continue
        checked += 1
        assert not any(action.endswith("*") for action in actions), f"{owner}: wildcard action {actions}"
        if actions == {"secretsmanager:listsecrets"}:
            continue  # ListSecrets cannot be scoped to a resource
        assert "secretsmanager:listsecrets" not in actions, f"{owner}: ListSecrets must stand alone"
        for resource in rendered_resources(statement["Resource"]):
            assert resource != "*", f"{owner}: {sorted(actions)} on every secret"
            assert "*" not in resource or resource == TOKEN_SECRETS_ARN, f"{owner}: wildcard in {resource}"
    assert checked >= 2


def test_install_function_only_reads_app_credentials_and_state_key(
    functions: dict[str, dict[str, Any]],
) -> None:
    granted = grants(statements_of(functions["InstallFunction"]))

    assert set(granted) == {"secretsmanager:GetSecretValue"}
    assert sorted(granted["secretsmanager:GetSecretValue"]) == sorted(rendered_resources([APP_SECRET, STATE_SECRET]))


def test_callback_function_reads_config_secrets_and_writes_only_token_secrets(
    functions: dict[str, dict[str, Any]],
) -> None:
    granted = grants(statements_of(functions["OAuthCallbackFunction"]))

    assert set(granted) == CALLBACK_ACTIONS | {"dynamodb:PutItem"}
    assert sorted(granted["secretsmanager:GetSecretValue"]) == sorted(rendered_resources([APP_SECRET, STATE_SECRET]))
    for action in CALLBACK_ACTIONS - {"secretsmanager:GetSecretValue"}:
        assert granted[action] == [TOKEN_SECRETS_ARN], action
    assert granted["dynamodb:PutItem"] == ["${UsedStateTable.Arn}"]  # its own table, never the run guard


# -- configuration and secrets ---------------------------------------------------------------------


def test_globals_environment_is_the_configuration_contract(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert set(variables) == SHARED_ENVIRONMENT
    assert variables["SLACK_APP_SECRET_ID"] == APP_SECRET
    assert variables["SLACK_STATE_SECRET_ID"] == STATE_SECRET
    assert variables["TOKEN_SECRET_PREFIX"] == {"Ref": "TokenSecretPrefix"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "slack-token-lifecycle"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "SlackTokenLifecycle"
    assert variables["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["XRaySubsegmentsEnabled", "false", "true"]}
    assert template["Conditions"]["XRaySubsegmentsEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableXRaySubsegments"}, "true"]
    }
    assert template["Parameters"]["EnableXRaySubsegments"]["Default"] == "false"


def test_no_environment_variable_carries_the_client_secret(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    environments = [template["Globals"]["Function"].get("Environment", {})]
    environments += [properties.get("Environment", {}) for properties in functions.values()]

    for environment in environments:
        for name, value in environment.get("Variables", {}).items():
            assert "SlackClientSecret" not in referenced_names(value), name
            assert "SlackClientSecret" not in json.dumps(value), name


def test_client_secret_parameter_is_hidden_and_used_only_by_the_app_credentials_secret(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["SlackClientSecret"]
    users = {
        name for name, resource in template["Resources"].items() if "SlackClientSecret" in referenced_names(resource)
    }

    assert parameter["NoEcho"] is True
    assert parameter.get("Default", "") == ""
    assert users == {"AppCredentialsSecret"}
    assert "SlackClientSecret" not in referenced_names(template["Outputs"])


def test_app_credentials_secret_is_created_only_without_an_existing_arn(template: dict[str, Any]) -> None:
    secret = template["Resources"]["AppCredentialsSecret"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == "CreateAppCredentialsSecret"
    assert template["Conditions"]["CreateAppCredentialsSecret"] == {
        "Fn::Equals": [{"Ref": "ExistingAppCredentialsSecretArn"}, ""]
    }
    assert template["Parameters"]["ExistingAppCredentialsSecretArn"]["Default"] == ""


def test_the_generated_state_key_is_one_the_state_signer_takes(template: dict[str, Any]) -> None:
    secret = template["Resources"]["StateKeySecret"]
    generated = secret["Properties"]["GenerateSecretString"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    StateSigner("k" * generated["PasswordLength"])  # raises on a key shorter than the signer needs


def test_every_string_parameter_is_constrained_and_its_default_passes(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        if parameter["Type"] != "String":
            continue
        assert "AllowedPattern" in parameter or "AllowedValues" in parameter, name
        if "Default" not in parameter:
            continue
        if "AllowedPattern" in parameter:
            assert re.fullmatch(parameter["AllowedPattern"], parameter["Default"]), name
        if "AllowedValues" in parameter:
            assert parameter["Default"] in parameter["AllowedValues"], name


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("SlackClientId", "1234567890.1234567890", True),
        ("SlackClientId", "abc", False),
        ("TokenSecretPrefix", "slack/tokens/", True),
        ("TokenSecretPrefix", "slack/tokens", False),
        ("TokenSecretPrefix", "slack//", False),
        ("SlackScopes", "chat:write,commands,links.embed:write", True),
        ("SlackScopes", "chat:write, commands", False),
        ("RedirectUri", "http://example.com/slack/oauth_redirect", False),
        (
            "ExistingAppCredentialsSecretArn",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbC123",
            True,
        ),
        (
            "ExistingAppCredentialsSecretArn",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack",
            False,
        ),
        ("SlackApiUrl", "https://slack.com/api", False),
        ("AlarmEmail", "ops@example.com", True),
        ("AlarmEmail", "ops@example", False),
        ("AlarmEmail", "ops @example.com", False),
    ],
)
def test_parameter_patterns(template: dict[str, Any], parameter: str, value: str, allowed: bool) -> None:
    pattern = template["Parameters"][parameter]["AllowedPattern"]

    assert bool(re.fullmatch(pattern, value)) is allowed


SETTINGS_BASE = {"SLACK_APP_SECRET_ID": "app", "SLACK_STATE_SECRET_ID": "state", "SLACK_SCOPES": "chat:write"}
DEFAULTED = (
    "TOKEN_SECRET_PREFIX",
    "SLACK_API_URL",
    "SLACK_AUTHORIZE_URL",
    "SLACK_PKCE_ENABLED",
    "SLACK_ALLOW_STATELESS_ORG_INSTALL",
    "ROTATION_MARGIN_SECONDS",
    "SLACK_REFRESH_PER_MINUTE",
    "ROTATION_WORKERS",
    "GUARD_TTL_SECONDS",
    "SLACK_EXCHANGE_PER_MINUTE",
)
# Number parameters and the variable each becomes: the template's bounds must be the code's.
BOUNDED = {
    "RotationMarginSeconds": "ROTATION_MARGIN_SECONDS",
    "RefreshPerMinute": "SLACK_REFRESH_PER_MINUTE",
    "ExchangePerMinute": "SLACK_EXCHANGE_PER_MINUTE",
}


def deployed_environment(parameters: dict[str, str] | None = None) -> dict[str, str]:
    """``DEFAULTED`` as the template sets them (rotator and exchange), at its defaults and ``parameters``."""
    stack = Template.load(TEMPLATE_PATH, parameters=parameters)
    variables = dict(stack.document["Globals"]["Function"]["Environment"]["Variables"])
    for function in ("RotateFunction", "ExchangeFunction"):
        variables |= stack.document["Resources"][function]["Properties"]["Environment"]["Variables"]
    return {name: str(stack.resolve(variables[name])) for name in DEFAULTED}


def test_a_stack_deployed_with_the_defaults_is_configured_as_the_code_is_without_them() -> None:
    """The template's defaults and Settings' own agree, so the local stack and the tests run as a default deploy."""
    assert Settings.from_env(SETTINGS_BASE | deployed_environment()) == Settings.from_env(SETTINGS_BASE)
    assert Settings.from_env(SETTINGS_BASE).api_url == "https://slack.com/api/"


@pytest.mark.parametrize(("parameter", "variable"), sorted(BOUNDED.items()))
def test_what_a_number_parameter_allows_is_what_the_code_takes(
    template: dict[str, Any], parameter: str, variable: str
) -> None:
    spec = template["Parameters"][parameter]

    for allowed in (spec["MinValue"], spec["MaxValue"]):
        environment = deployed_environment({parameter: str(allowed)})
        assert environment[variable] == str(allowed)
        Settings.from_env(SETTINGS_BASE | environment)  # accepted
    for refused in (spec["MinValue"] - 1, spec["MaxValue"] + 1):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env(SETTINGS_BASE | {variable: str(refused)})


# -- outputs and deploy settings -------------------------------------------------------------------


def test_outputs_give_the_urls_and_secrets_a_user_needs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    host = "https://${SlackOAuthApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"

    assert {
        "InstallUrl",
        "RedirectUrl",
        "AppCredentialsSecretArn",
        "StateKeySecretArn",
        "TokenSecretPrefix",
    } <= set(outputs)
    assert outputs["InstallUrl"]["Value"] == {"Fn::Sub": f"{host}/slack/install"}
    assert outputs["RedirectUrl"]["Value"] == {"Fn::Sub": f"{host}/slack/oauth_redirect"}
    assert outputs["AppCredentialsSecretArn"]["Value"] == APP_SECRET
    assert outputs["StateKeySecretArn"]["Value"] == STATE_SECRET
    assert outputs["AlarmTopicArn"] == {
        "Condition": "AlarmEmailGiven",
        "Description": outputs["AlarmTopicArn"]["Description"],
        "Value": {"Ref": "AlarmTopic"},
    }


def test_the_outputs_slack_tokens_reads_name_the_resources_it_would_look_up_otherwise(template: dict[str, Any]) -> None:
    """``slack_tokens_cli.stack`` reads ``outputs.get("X") or physical.get("Y")``: output X must be Y's name."""
    read = re.findall(r'outputs\.get\("(\w+)"\) or physical\.get\("(\w+)"\)', Path(cli_stack.__file__).read_text())

    assert len(read) >= 3
    for output, resource in read:
        assert template["Outputs"][output]["Value"] == {"Ref": resource}, output


def test_sam_deploy_defaults_find_the_stack_slack_tokens_looks_for_with_the_capability_it_needs(
    template: dict[str, Any],
) -> None:
    config = tomllib.loads(SAMCONFIG_PATH.read_text(encoding="utf-8"))
    named = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::") and {"RoleName", "ManagedPolicyName"} & set(resource["Properties"])
    ]

    assert config["default"]["global"]["parameters"]["stack_name"] == cli_stack.DEFAULT_STACK
    # The stack creates IAM roles and policies, none with a name of its own: CAPABILITY_NAMED_IAM is not needed.
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    assert named == []


# -- what the app's own functions attach -----------------------------------------------------------------------


def managed_policy(template: dict[str, Any], name: str) -> dict[str, list[str]]:
    resource = template["Resources"][name]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    return grants(as_list(resource["Properties"]["PolicyDocument"]["Statement"]))


def test_the_reader_policy_reads_token_pairs_and_nothing_else(template: dict[str, Any]) -> None:
    granted = managed_policy(template, "TokenReaderPolicy")

    assert granted == {
        "secretsmanager:GetSecretValue": [TOKEN_SECRETS_ARN],
        "secretsmanager:DescribeSecret": [TOKEN_SECRETS_ARN],
    }


def test_the_retirer_policy_also_marks_tags_and_schedules_deletion_only_under_the_prefix(
    template: dict[str, Any],
) -> None:
    granted = managed_policy(template, "TokenRetirerPolicy")
    document = template["Resources"]["TokenRetirerPolicy"]["Properties"]["PolicyDocument"]

    assert granted.pop("secretsmanager:ListSecrets") == ["*"]  # names only, never a value
    assert set(granted) == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:TagResource",
        "secretsmanager:DeleteSecret",
    }
    assert all(resources == [TOKEN_SECRETS_ARN] for resources in granted.values())
    assert not {"AppCredentialsSecret", "StateKeySecret", "RunGuardTable"} & referenced_names(document)


def test_the_operator_policy_grants_what_slack_tokens_calls_and_writes_only_token_pairs(
    template: dict[str, Any],
) -> None:
    granted = managed_policy(template, "TokenOperatorPolicy")
    document = template["Resources"]["TokenOperatorPolicy"]["Properties"]["PolicyDocument"]
    stack = "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"

    assert granted == {
        "cloudformation:DescribeStacks": [stack],
        "cloudformation:ListStackResources": [stack],
        "secretsmanager:ListSecrets": ["*"],  # names, tags and version ids: never a value
        **{
            f"secretsmanager:{action}": [TOKEN_SECRETS_ARN]
            for action in (
                "GetSecretValue",  # retire rewrites the value with status revoked
                "DescribeSecret",
                "PutSecretValue",
                "UpdateSecretVersionStage",
                "TagResource",
                "DeleteSecret",
                "CreateSecret",  # import
            )
        },
        "dynamodb:GetItem": [GUARD_TABLE_ARN],  # the guard and the last sweep: read, never written
        "sqs:GetQueueAttributes": ["${RotationScheduleDLQ.Arn}", "${RotationFailureQueue.Arn}"],
        "cloudwatch:DescribeAlarms": ["arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"],
        "lambda:InvokeFunction": ["${RotateFunction.Arn}", "${ExchangeFunction.Arn}"],  # rotate, exchange
    }
    assert not {"AppCredentialsSecret", "StateKeySecret"} & referenced_names(document)
    assert template["Outputs"]["TokenOperatorPolicyArn"]["Value"] == {"Ref": "TokenOperatorPolicy"}


def test_the_rotator_records_each_sweep_with_the_guard_permissions_it_has(rotate: dict[str, Any]) -> None:
    """The last_sweep item is an UpdateItem on the guard's table: no new action, no PutItem or DeleteItem."""
    granted = grants(statements_of(rotate))
    assert {a for a in granted if a.startswith("dynamodb:")} == GUARD_ACTIONS
    assert all(resources == [GUARD_TABLE_ARN] for a, resources in granted.items() if a.startswith("dynamodb:"))


def test_the_layer_policies_prefix_and_recovery_window_are_exported_for_the_apps_stacks(
    template: dict[str, Any],
) -> None:
    outputs = template["Outputs"]
    exported = {o["Export"]["Name"]["Fn::Sub"]: o["Value"] for o in outputs.values() if "Export" in o}
    window = template["Parameters"]["RetiredPairRecoveryDays"]

    assert exported == {
        "${AWS::StackName}-SharedLayerArn": {"Ref": "SharedLayer"},
        "${AWS::StackName}-TokenReaderPolicyArn": {"Ref": "TokenReaderPolicy"},
        "${AWS::StackName}-TokenRetirerPolicyArn": {"Ref": "TokenRetirerPolicy"},
        "${AWS::StackName}-TokenSecretPrefix": {"Ref": "TokenSecretPrefix"},
        "${AWS::StackName}-RetiredPairRecoveryDays": {"Ref": "RetiredPairRecoveryDays"},
    }
    assert (window["Default"], window["MinValue"], window["MaxValue"]) == (7, 7, 30)  # Secrets Manager's own bounds


def test_the_example_bolt_app_imports_only_what_the_stack_exports() -> None:
    example = load_template((ROOT / "examples" / "bolt-app" / "template.yaml").read_text(encoding="utf-8"))
    imports = {
        value["Fn::ImportValue"]["Fn::Sub"].removeprefix("${TokenStackName}-")
        for value in _walk(example)
        if isinstance(value, dict) and "Fn::ImportValue" in value
    }
    exported = {
        o["Export"]["Name"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for o in load_template(TEMPLATE_PATH.read_text(encoding="utf-8"))["Outputs"].values()
        if "Export" in o
    }

    assert imports == {"SharedLayerArn", "TokenSecretPrefix", "RetiredPairRecoveryDays", "TokenRetirerPolicyArn"}
    assert imports <= exported


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
