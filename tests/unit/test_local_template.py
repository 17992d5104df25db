"""The local stack's template reader: intrinsics, Globals merging, routes, schedules (pure, no I/O but the files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.console import render_function_line
from local.stack import summary
from local.template import NO_VALUE, ROOT, Route, Schedule, Template, TemplateError, load_template

DOCUMENT = """
Parameters:
  Flag: {Type: String, Default: "false", AllowedValues: ["false", "true"]}
  Name: {Type: String, Default: world, AllowedPattern: "^[a-z]+$", MaxLength: 8}
  Count: {Type: Number, Default: 5, MinValue: 1, MaxValue: 10}
  Secret: {Type: String, NoEcho: true, Default: ""}
  NoDefault: {Type: String}
Conditions:
  FlagOn: !Equals [!Ref Flag, "true"]
  FlagOff: !Not [!Condition FlagOn]
  Both: !And [!Condition FlagOff, !Or [!Equals [!Ref Name, world], !Condition FlagOn]]
Mappings:
  Levels:
    WARNING: {Level: WARN}
Resources:
  Thing: {Type: AWS::SecretsManager::Secret, Properties: {SecretString: x}}
  OnlyWhenOn: {Type: AWS::SecretsManager::Secret, Condition: FlagOn, Properties: {SecretString: y}}
"""


def template(**parameters: str) -> Template:
    return Template(load_template(DOCUMENT), parameters=parameters)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Name"}, "world"),
        ({"Ref": "Count"}, "5"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Fn::If": ["FlagOn", "on", "off"]}, "off"),
        ({"Fn::If": ["Both", "both", "no"]}, "both"),
        ({"Fn::Sub": "hello ${Name} in ${AWS::Region}, ${!Literal}"}, "hello world in us-east-1, ${Literal}"),
        ({"Fn::Sub": ["${A}-${Name}", {"A": {"Ref": "Count"}}]}, "5-world"),
        ({"Fn::FindInMap": ["Levels", "WARNING", "Level"]}, "WARN"),
        ({"Fn::Join": ["/", ["a", {"Ref": "Name"}]]}, "a/world"),
        ({"Fn::Select": [1, ["a", "b"]]}, "b"),
        ({"k": {"Fn::If": ["FlagOn", "v", {"Ref": "AWS::NoValue"}]}, "j": 1}, {"j": 1}),
        (["a", {"Fn::If": ["FlagOn", "b", {"Ref": "AWS::NoValue"}]}], ["a"]),
    ],
)
def test_intrinsics_resolve_against_parameter_defaults(value: Any, expected: Any) -> None:
    assert template().resolve(value) == expected


def test_overrides_and_bound_resources_are_used() -> None:
    overridden = template(Flag="true", Name="there")
    overridden.bind("Thing", "arn:thing")

    assert overridden.resolve({"Fn::If": ["FlagOn", {"Ref": "Thing"}, "no"]}) == "arn:thing"
    assert overridden.resolve({"Fn::Sub": "${Name}:${Thing}"}) == "there:arn:thing"
    assert set(overridden.resources_of_type("AWS::SecretsManager::Secret")) == {"Thing", "OnlyWhenOn"}
    assert set(template().resources_of_type("AWS::SecretsManager::Secret")) == {"Thing"}  # Condition FlagOn false
    assert template().resolve({"Ref": "AWS::NoValue"}) is NO_VALUE
    assert template().no_echo_parameters() == {"Secret"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"Ref": "Thing"}, "no stand-in"),
        ({"Ref": "Nothing"}, "no such parameter"),
        ({"Ref": "NoDefault"}, "has no default"),
        ({"Fn::GetAtt": ["Thing", "Arn"]}, "GetAtt Thing.Arn"),
        ({"Fn::Sub": "${Thing.Arn}"}, "attributes"),
        ({"Fn::ImportValue": "x"}, "not supported"),
    ],
)
def test_what_has_no_local_value_is_named(value: Any, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        template().resolve(value)


def test_user_parameters_are_checked_like_cloudformation_does() -> None:
    problems = template().check_parameters(
        {"Flag": "maybe", "Name": "UPPER", "Count": "11", "Unknown": "x", "Secret": "fine"}
    )
    assert len(problems) == 4
    assert any("Flag must be one of false, true" in p for p in problems)
    assert any("Unknown is not a parameter" in p for p in problems)
    assert template().check_parameters({"Name": "ok", "Count": "3"}) == []
    with pytest.raises(TemplateError, match="unknown template parameter"):
        template(Nope="1")


def test_globals_merge_like_sam(tmp_path: Path) -> None:
    (tmp_path / "layer").mkdir()
    document = load_template("""
Globals:
  Function:
    Runtime: python3.13
    Handler: app.handler
    Timeout: 10
    Layers: [!Ref Shared]
    Environment: {Variables: {A: global, B: global}}
Resources:
  Shared: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: layer/}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Timeout: 30
      Environment: {Variables: {B: local, C: 3}}
""")
    (fn,) = Template(document, root=tmp_path).functions().values()

    assert fn.environment == {"A": "global", "B": "local", "C": "3"}
    assert fn.timeout == 30
    assert fn.layers == ((tmp_path / "layer").resolve(),)
    assert fn.handler_file == (tmp_path / "fn" / "app.py").resolve()
    assert fn.module_name == "fn_app"


@pytest.mark.parametrize(
    ("route", "method", "path", "expected"),
    [
        (Route("F", "E", "GET", "/slack/install"), "GET", "/slack/install", {}),
        (Route("F", "E", "GET", "/slack/install"), "POST", "/slack/install", None),
        (Route("F", "E", "GET", "/slack/install"), "GET", "/slack/install/x", None),
        (Route("F", "E", "ANY", "/items/{id}"), "DELETE", "/items/42", {"id": "42"}),
        (Route("F", "E", "ANY", "/items/{id}"), "GET", "/items/", None),
        (Route("F", "E", "GET", "/files/{path+}"), "GET", "/files/a/b", {"path": "a/b"}),
        (Route("F", "E", "GET", "/files/{path+}"), "GET", "/files", None),
        (Route("F", "E", "ANY", "$default"), "PATCH", "/whatever", {}),
    ],
)
def test_route_matching(route: Route, method: str, path: str, expected: dict[str, str] | None) -> None:
    assert route.match(method, path) == expected


def test_exact_routes_win_over_parameters_greedy_paths_and_default() -> None:
    routes = [
        Route("D", "E", "ANY", "$default"),
        Route("G", "E", "GET", "/a/{rest+}"),
        Route("P", "E", "GET", "/a/{id}"),
        Route("X", "E", "GET", "/a/b"),
    ]
    assert [r.function for r in sorted(routes, key=lambda r: r.specificity)] == ["X", "P", "G", "D"]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(30 minutes)", 1800), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("cron(0 * * * ? *)", None)],
)
def test_rate_expressions(expression: str, seconds: float | None) -> None:
    assert Schedule("F", "E", expression, {}, True).interval_seconds == seconds


def test_the_project_template_routes_and_outputs() -> None:
    project = Template.load()

    assert {r.route_key: r.function for r in project.routes()} == {
        "GET /slack/install": "InstallFunction",
        "GET /slack/oauth_redirect": "OAuthCallbackFunction",
    }
    assert project.api_outputs("http://localhost:3000") == {
        "InstallUrl": "http://localhost:3000/slack/install",
        "RedirectUrl": "http://localhost:3000/slack/oauth_redirect",
    }
    assert project.layer_dirs() == [ROOT / "layers" / "common"]


def test_functions_get_their_template_environment() -> None:
    project = Template.load(parameters={"SlackApiUrl": "http://127.0.0.1:1/api/"})
    project.bind("AppCredentialsSecret", "arn:app")
    project.bind("StateKeySecret", "arn:state")
    project.bind("RunGuardTable", "guard-table")
    project.bind("UsedStateTable", "used-state-table")

    functions = project.functions()

    rotate = functions["RotateFunction"]
    assert rotate.environment["SLACK_APP_SECRET_ID"] == "arn:app"  # !If CreateAppCredentialsSecret -> !Ref
    assert rotate.environment["SLACK_STATE_SECRET_ID"] == "arn:state"
    assert rotate.environment["SLACK_API_URL"] == "http://127.0.0.1:1/api/"
    assert rotate.environment["ROTATION_MARGIN_SECONDS"] == "7200"  # the function's own, merged with Globals
    assert rotate.environment["GUARD_TABLE_NAME"] == "guard-table"  # Ref of a table: its name
    assert rotate.environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert rotate.timeout == 900 and functions["OAuthCallbackFunction"].timeout == 29
    assert functions["OAuthCallbackFunction"].environment["USED_STATE_TABLE_NAME"] == "used-state-table"
    assert functions["InstallFunction"].timeout == 10  # Globals
    assert rotate.log_level == "INFO"  # LoggingConfig: !FindInMap
    assert [s.event for s in rotate.schedules if s.enabled] == ["RotationSchedule"]
    assert rotate.schedules[0].input == {} and rotate.schedules[0].interval_seconds == 1800
    assert [s.enabled for s in functions["ExchangeFunction"].schedules] == [False]
    assert all(f.layers == (ROOT / "layers" / "common",) for f in functions.values())


def test_function_output_is_rendered_readably() -> None:
    level, text = render_function_line(
        '{"level":"WARNING","message":"slow","service":"s","timestamp":"t","secret_name":"a/b","n":2}'
    )
    assert (level, text) == ("WARNING", "WARNING slow  secret_name=a/b n=2")
    emf = (
        '{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["service","reason"]],"Metrics":[{"Name":"X"}]}]},'
        '"X":[1.0],"reason":"r"}'
    )
    assert render_function_line(emf) == ("METRICS", "metrics X=1 reason=r")
    assert render_function_line("plain text") == ("INFO", "plain text")


def test_run_summaries_show_what_happened() -> None:
    assert summary({"due": 1, "rotated": 1, "failed": 0, "failures": {}, "dry_run": False}) == "due=1 rotated=1"
    assert summary({"due": 0, "failed": 0}) == "nothing to do"
    assert summary({"failed": 1, "failures": {"x": 1}}) == 'failed=1 failures={"x":1}'


def test_the_callback_route_carries_the_templates_throttle_with_parameters_resolved() -> None:
    from local.template import Throttle

    def callback_throttle(project: Template) -> Throttle | None:
        return next(r.throttle for r in project.routes() if r.path == "/slack/oauth_redirect")

    assert callback_throttle(Template.load()) == Throttle(rate=2.0, burst=20)
    tuned = Template.load(parameters={"CallbackThrottleRate": "5", "CallbackThrottleBurst": "50"})
    assert callback_throttle(tuned) == Throttle(rate=5.0, burst=50)
    assert next(r.throttle for r in Template.load().routes() if r.path == "/slack/install") is None


def test_the_local_http_api_throttles_a_route_like_api_gateway_without_invoking_its_function() -> None:
    from local.http_api import HttpApi, TokenBucket
    from local.template import Route, Throttle

    now = [0.0]
    bucket = TokenBucket(Throttle(rate=2.0, burst=3), monotonic=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]  # the burst, then empty
    now[0] += 0.5
    assert [bucket.take(), bucket.take()] == [True, False]  # refilled at 2 a second
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst at once

    invoked: list[str] = []
    route = Route("Fn", "Ev", "GET", "/slack/oauth_redirect", Throttle(rate=0.001, burst=2))
    api = HttpApi([route], lambda fn, event: invoked.append(fn) or {"statusCode": 200, "body": ""})
    statuses = [api.handle("GET", "/slack/oauth_redirect?code=x", [], b"", "127.0.0.1").status for _ in range(4)]

    assert statuses == [200, 200, 429, 429]
    assert invoked == ["Fn", "Fn"]
    refused = api.handle("GET", "/slack/oauth_redirect", [], b"", "127.0.0.1")
    assert refused.body == b'{"message": "Too Many Requests"}'
