"""Static checks of template.yaml: the contract between the SAM template and the function code.

The template is parsed with a small SafeLoader that understands CloudFormation's short-form tags, so
these tests need only PyYAML. The last test also runs cfn-lint when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SAMCONFIG_PATH = ROOT / "samconfig.toml"

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


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns short-form tags (``!Ref X``, ``!GetAtt A.B``...) into long-form dicts."""


def _short_form(loader: CloudFormationLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _short_form)


def load_template(text: str) -> dict[str, Any]:
    document = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(document, dict)
    return document


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


def test_shared_layer_is_built_for_python313_on_arm64(template: dict[str, Any]) -> None:
    layer = template["Resources"]["SharedLayer"]

    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
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

    assert set(granted) == CALLBACK_ACTIONS
    assert sorted(granted["secretsmanager:GetSecretValue"]) == sorted(rendered_resources([APP_SECRET, STATE_SECRET]))
    for action in CALLBACK_ACTIONS - {"secretsmanager:GetSecretValue"}:
        assert granted[action] == [TOKEN_SECRETS_ARN], action


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


def test_state_key_is_generated(template: dict[str, Any]) -> None:
    secret = template["Resources"]["StateKeySecret"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}


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
    ],
)
def test_parameter_patterns(template: dict[str, Any], parameter: str, value: str, allowed: bool) -> None:
    pattern = template["Parameters"][parameter]["AllowedPattern"]

    assert bool(re.fullmatch(pattern, value)) is allowed


def test_defaults_point_at_slack(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]

    assert parameters["TokenSecretPrefix"]["Default"] == "slack/tokens/"
    assert parameters["SlackApiUrl"]["Default"] == "https://slack.com/api/"
    assert parameters["SlackAuthorizeUrl"]["Default"] == "https://slack.com/oauth/v2/authorize"
    assert parameters["PkceEnabled"]["Default"] == "false"
    assert parameters["AllowStatelessOrgInstall"]["Default"] == "false"
    assert parameters["LogLevel"]["Default"] == "INFO"


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


def test_samconfig_defaults() -> None:
    config = tomllib.loads(SAMCONFIG_PATH.read_text(encoding="utf-8"))

    assert config["default"]["global"]["parameters"]["stack_name"] == "slack-token-lifecycle"
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    assert config["default"]["deploy"]["parameters"]["confirm_changeset"] is True


# -- cfn-lint --------------------------------------------------------------------------------------


@pytest.mark.template
@pytest.mark.skipif(importlib.util.find_spec("cfnlint") is None, reason="cfn-lint is not installed")
def test_cfn_lint_finds_nothing() -> None:
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own interpreter
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            str(TEMPLATE_PATH),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
